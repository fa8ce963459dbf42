// One flow (a correlation id, or an order) drawn as a sequence diagram
// across services, like ADR-0006's, from the recorded events: the audit
// trail in causal order, the dead letters of every service, the order.
import { api } from './api.js';
import { $, el, svg, time, duration, service, kind, correlationOf, CONSUMING } from './util.js';

const BUS = 'Event bus';
const LANES = ['Client', 'order', BUS, 'inventory', 'payment', 'shipping', 'notification'];
let timer = null;
let currentId = '';

async function resolve(id) {
  const byCorrelation = await api('/api/v1/admin/events?limit=1000&correlationId=' + encodeURIComponent(id));
  if (byCorrelation.events.length) return { correlationId: id, events: byCorrelation.events };
  // Perhaps an order id: its saga's events name the correlation id.
  try {
    const saga = await api('/api/v1/orders/' + encodeURIComponent(id) + '/events');
    if (saga.events.length) {
      const correlationId = saga.events[0].correlationId;
      const all = await api('/api/v1/admin/events?limit=1000&correlationId=' + encodeURIComponent(correlationId));
      return { correlationId, events: all.events.length ? all.events : saga.events };
    }
  } catch { /* not an order */ }
  return { correlationId: id, events: [] };
}

async function deadLetters(correlationId) {
  const out = [];
  await Promise.all(CONSUMING.map(async (svc) => {
    try {
      const list = await api(`/api/v1/admin/dlq/${svc}?limit=500`);
      for (const d of list.deadLetters) if (correlationOf(d) === correlationId) out.push({ ...d, service: svc });
    } catch { /* not run, or no group */ }
  }));
  return out;
}

function requestLabel(e) {
  if (e.eventType === 'OrderCreated') return 'POST /orders';
  if (e.eventType === 'OrderCancelled') return 'POST /orders/{id}/cancel';
  return 'request → ' + e.eventType;
}

// rows turns the events (causes first) and dead letters into arrows.
function rows(events, letters) {
  const byId = new Map(events.map((e) => [e.eventId, e]));
  const t0 = events.length ? Date.parse(events[0].timestamp) : 0;
  const delivered = new Set();
  const out = [];
  const pending = [];
  const lettersOf = new Map();
  for (const d of letters) {
    const k = byId.has(d.eventId) ? d.eventId : '';
    if (!lettersOf.has(k)) lettersOf.set(k, []);
    lettersOf.get(k).push(d);
  }
  const letterRow = (d) => ({
    from: BUS, to: d.service, label: `✗ ${d.eventType || 'record'}: dead letter after ${d.attempts} attempts`, kind: 'failure',
    note: (d.status === 'redriven' ? `↻ redriven at ${time(d.updatedAt)} · ` : d.status === 'discarded' ? 'discarded · ' : '') + d.error,
    at: `+${duration(Date.parse(d.deadAt) - t0)}`, t: Date.parse(d.deadAt),
  });
  // A dead letter goes after its event's publication, where its time puts it.
  const place = (row, after) => {
    let i = after;
    while (i < out.length && out[i].t <= row.t) i++;
    out.splice(i, 0, row);
  };
  for (const e of events) {
    const src = service(e.source);
    const ts = Date.parse(e.timestamp);
    const cause = byId.get(e.causationId);
    if (!cause || cause.eventId === e.eventId) {
      out.push({ from: 'Client', to: src, label: requestLabel(e), kind: 'request', at: `+${duration(ts - t0)}`, t: ts });
    } else if (!delivered.has(cause.eventId + '>' + src)) {
      delivered.add(cause.eventId + '>' + src);
      out.push({ from: BUS, to: src, label: cause.eventType, kind: 'deliver', at: `+${duration(ts - t0)}`, t: ts, note: `handled ${duration(ts - Date.parse(cause.timestamp))} after publish` });
    }
    out.push({ from: src, to: BUS, label: e.eventType, kind: kind(e.eventType), at: `+${duration(ts - t0)}`, t: ts, title: JSON.stringify(e.data) });
    pending.push(...(lettersOf.get(e.eventId) || []).map((d) => [letterRow(d), out.length]));
  }
  for (const d of lettersOf.get('') || []) pending.push([letterRow(d), out.length]);
  // Placed last, from the latest anchor back, so anchors stay valid.
  for (const [row, after] of pending.reverse()) place(row, after);
  return out;
}

function draw(rs) {
  const lanes = [...LANES];
  for (const r of rs) for (const l of [r.from, r.to]) if (!lanes.includes(l)) lanes.push(l);
  const left = 90, laneW = 156, top = 56, rowH = 46;
  const width = left + lanes.length * laneW + 20;
  const height = top + rs.length * rowH + 30;
  const x = (l) => left + lanes.indexOf(l) * laneW + laneW / 2;
  const s = svg('svg', { width, height, viewBox: `0 0 ${width} ${height}`, class: 'seq', role: 'img', 'aria-label': 'sequence diagram' });
  const defs = svg('defs');
  for (const k of ['request', 'publish', 'deliver', 'compensation', 'failure', 'done']) {
    defs.append(svg('marker', { id: 'arrow-' + k, viewBox: '0 0 10 10', refX: 10, refY: 5, markerWidth: 7, markerHeight: 7, orient: 'auto-start-reverse' },
      svg('path', { d: 'M 0 0 L 10 5 L 0 10 z', class: 'head ' + k })));
  }
  s.append(defs);
  for (const l of lanes) {
    const cx = x(l);
    s.append(svg('line', { x1: cx, y1: top - 8, x2: cx, y2: height - 10, class: 'lifeline' + (l === BUS ? ' bus' : '') }));
    s.append(svg('rect', { x: cx - laneW / 2 + 8, y: 8, width: laneW - 16, height: 32, rx: 6, class: 'lane' + (l === BUS ? ' bus' : '') }));
    s.append(svg('text', { x: cx, y: 29, class: 'lane-name' }, l === 'Client' || l === BUS ? l : l + ' service'));
  }
  rs.forEach((r, i) => {
    const y = top + i * rowH + 26;
    const x1 = x(r.from), x2 = x(r.to);
    const g = svg('g', { class: 'row ' + r.kind, 'data-label': r.label });
    if (r.title) g.append(svg('title', {}, r.title));
    g.append(svg('text', { x: 8, y: y + 4, class: 'at' }, r.at));
    if (x1 === x2) {
      g.append(svg('path', { d: `M ${x1} ${y - 8} h 36 v 16 h -36`, class: 'arrow ' + r.kind, 'marker-end': `url(#arrow-${r.kind})` }));
    } else {
      g.append(svg('line', { x1, y1: y, x2: x2 + (x2 > x1 ? -2 : 2), y2: y, class: 'arrow ' + r.kind, 'marker-end': `url(#arrow-${r.kind})` }));
    }
    const mid = x1 === x2 ? x1 + 42 : (x1 + x2) / 2;
    g.append(svg('text', { x: mid, y: y - 7, class: 'label' + (x1 === x2 ? ' start' : '') }, r.label));
    if (r.note) {
      const nx = Math.min(x1, x2) + 4;
      const fit = Math.max(20, Math.floor((width - nx - 10) / 6.4)); // characters that fit before the edge
      const note = r.note.length > fit ? r.note.slice(0, fit - 1) + '…' : r.note;
      const n = svg('text', { x: nx, y: y + 15, class: 'note ' + r.kind }, note);
      n.append(svg('title', {}, r.note));
      g.append(n);
    }
    s.append(g);
  });
  return s;
}

async function load(id, quiet) {
  const summary = $('#flow-summary');
  if (!quiet) summary.textContent = 'Loading…';
  try {
    const { correlationId, events } = await resolve(id);
    if (id !== currentId) return;
    const letters = await deadLetters(correlationId);
    let orderLine = '', orderID = '';
    const created = events.find((e) => e.eventType === 'OrderCreated');
    if (created) {
      try {
        const o = await api('/api/v1/orders/' + created.data.orderId);
        orderID = o.id;
        orderLine = `Order ${o.id}: ${o.status}${o.reason ? ' (' + o.reason + ')' : ''}`;
      } catch { /* the order service is away */ }
    }
    if (id !== currentId) return;
    if (!events.length) {
      summary.textContent = `No events recorded for ${id} (yet).`;
      $('#flow-diagram').replaceChildren();
      $('#flow-legend').hidden = true;
      return;
    }
    const span = Date.parse(events.at(-1).timestamp) - Date.parse(events[0].timestamp);
    const dead = letters.filter((d) => d.status === 'dead').length;
    summary.replaceChildren(
      orderLine ? el('strong', { id: 'flow-order', class: 'badge ' + (orderLine.endsWith('SHIPPED') ? 'done' : orderLine.includes('CANCELLED') ? 'compensation' : 'publish') }, orderLine) : '',
      orderID ? el('span', {}, ' ', el('a', { id: 'flow-history', href: '#history=order:' + orderID }, 'history')) : '',
      ` Correlation id ${correlationId} · ${events.length} events over ${duration(span)} from ${time(events[0].timestamp)}`,
      letters.length ? ` · ${letters.length} dead letter(s), ${dead} still dead` : '');
    $('#flow-diagram').replaceChildren(draw(rows(events, letters)));
    $('#flow-legend').hidden = false;
  } catch (err) {
    summary.textContent = 'Failed: ' + err.message;
  }
}

function follow() {
  clearInterval(timer);
  timer = null;
  if (currentId && $('#flow-form [name=follow]').checked) timer = setInterval(() => load(currentId, true), 2000);
}

export function init() {
  $('#flow-form').addEventListener('submit', (e) => {
    e.preventDefault();
    location.hash = 'flow=' + encodeURIComponent(new FormData(e.target).get('id').trim());
  });
  $('#flow-form [name=follow]').addEventListener('change', follow);
}

export function enter(id) {
  $('#flow-form [name=id]').value = id;
  currentId = id;
  if (id) load(id);
  else { $('#flow-summary').textContent = 'Enter a correlation id or an order id, or pick an event in the live stream.'; $('#flow-diagram').replaceChildren(); }
  follow();
}

export function leave() { clearInterval(timer); timer = null; }
