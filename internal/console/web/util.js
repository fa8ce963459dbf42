// Small DOM and formatting helpers.

// el builds an element: el('td', {class: 'x', onclick: fn}, 'text', child…).
export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else if (k === 'dataset') Object.assign(e.dataset, v);
    else e.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    e.append(c instanceof Node ? c : String(c));
  }
  return e;
}

export const $ = (sel, root = document) => root.querySelector(sel);

// svg builds an SVG element.
export function svg(tag, attrs = {}, ...children) {
  const e = document.createElementNS('http://www.w3.org/2000/svg', tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== undefined && v !== null) e.setAttribute(k, v);
  for (const c of children.flat()) if (c !== undefined && c !== null) e.append(c instanceof Node ? c : String(c));
  return e;
}

export function time(t) {
  const d = new Date(t);
  return d.toLocaleTimeString([], { hour12: false }) + '.' + String(d.getMilliseconds()).padStart(3, '0');
}

export function duration(ms) {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(s < 10 ? 1 : 0)} s`;
  const m = s / 60;
  if (m < 60) return `${m.toFixed(1)} min`;
  const h = m / 60;
  if (h < 48) return `${h.toFixed(1)} h`;
  const d = h / 24;
  if (d < 365) return `${Math.round(d)} days`;
  return `${(d / 365).toFixed(1)} years`;
}

// service turns an envelope source ("order-service") into a lane name.
export const service = (source) => (source || '').replace(/-service$/, '');

// Event types that undo earlier steps of a saga, and those that report a failure.
export const COMPENSATIONS = new Set(['OrderCancelled', 'InventoryReleased', 'PaymentRefunded', 'ShippingCancelled']);
export const FAILURES = new Set(['PaymentFailed', 'InventoryReservationFailed', 'NotificationFailed']);
export const SUCCESSES = new Set(['OrderShipped', 'ShippingDelivered']);

export function kind(type) {
  if (FAILURES.has(type)) return 'failure';
  if (COMPENSATIONS.has(type)) return 'compensation';
  if (SUCCESSES.has(type)) return 'done';
  return 'publish';
}

// The services that have a consumer group (and so a dead-letter queue).
export const CONSUMING = ['catalog', 'inventory', 'cart', 'order', 'payment', 'shipping', 'notification', 'audit', 'webhook'];

// correlationOf reads the correlation id of a dead letter: from its
// headers, else from the envelope it holds.
export function correlationOf(letter) {
  for (const h of letter.headers || []) {
    if (h.Key === 'correlationId') { try { return atob(h.Value); } catch { /* not base64 */ } }
  }
  try { return JSON.parse(letter.value).correlationId || ''; } catch { return ''; }
}
