// Analytics: the analytics service's figures drawn over time (the last
// hour by minute, the last day by hour), updated live, and the pattern
// detections with links to their evidence's flow.
import { api } from './api.js';
import { $, el, svg, time } from './util.js';

const W = 560, H = 150, PAD = { l: 48, r: 8, t: 20, b: 22 };
const COLORS = ['#2563eb', '#dc2626', '#16a34a', '#d97706', '#7c3aed', '#0891b2'];
let timer = null;

function sizeOf() { return new FormData($('#analytics-form')).get('size') || 'minute'; }

// series turns the answer's windows into one value per window of the
// range, 0 where no event came (the API lists only windows with events).
function slots(r) {
  const step = r.size === 'hour' ? 3600e3 : 60e3;
  const from = Date.parse(r.from), to = Date.parse(r.to);
  const byStart = new Map(r.windows.map((w) => [Date.parse(w.start), w]));
  const out = [];
  for (let t = from; t < to; t += step) out.push({ t, w: byStart.get(t) });
  return out;
}

function label(t, size) {
  const d = new Date(t);
  const hm = String(d.getHours()).padStart(2, '0') + ':' + String(d.getMinutes()).padStart(2, '0');
  return size === 'hour' ? `${d.getMonth() + 1}/${d.getDate()} ${hm}` : hm;
}

// chart draws series ({name, values}) over the slots as bars (one series)
// or lines (several), with the largest value and a few time labels.
function chart(title, id, ss, series, size, fmt = (v) => String(Math.round(v * 100) / 100)) {
  const n = ss.length;
  const max = Math.max(1e-9, ...series.flatMap((s) => s.values));
  const x = (i) => PAD.l + (i + 0.5) * (W - PAD.l - PAD.r) / n;
  const y = (v) => H - PAD.b - v / max * (H - PAD.t - PAD.b);
  const g = [];
  g.push(svg('text', { x: PAD.l, y: 13, class: 'chart-title' }, title));
  g.push(svg('line', { x1: PAD.l, y1: H - PAD.b, x2: W - PAD.r, y2: H - PAD.b, class: 'axis' }));
  g.push(svg('line', { x1: PAD.l, y1: PAD.t, x2: PAD.l, y2: H - PAD.b, class: 'axis' }));
  g.push(svg('text', { x: PAD.l - 4, y: PAD.t + 4, 'text-anchor': 'end', class: 'tick' }, fmt(max)));
  g.push(svg('text', { x: PAD.l - 4, y: H - PAD.b, 'text-anchor': 'end', class: 'tick' }, '0'));
  for (const i of [0, Math.floor(n / 2), n - 1]) {
    g.push(svg('text', { x: x(i), y: H - 6, 'text-anchor': 'middle', class: 'tick' }, label(ss[i].t, size)));
  }
  if (series.length === 1) {
    const bw = Math.max(1, (W - PAD.l - PAD.r) / n - 2);
    series[0].values.forEach((v, i) => {
      if (v > 0) {
        g.push(svg('rect', { x: x(i) - bw / 2, y: y(v), width: bw, height: H - PAD.b - y(v), fill: COLORS[0] },
          svg('title', {}, `${label(ss[i].t, size)}: ${fmt(v)}`)));
      }
    });
  } else {
    series.forEach((s, k) => {
      g.push(svg('polyline', { points: s.values.map((v, i) => `${x(i)},${y(v)}`).join(' '), fill: 'none', stroke: COLORS[k % COLORS.length], 'stroke-width': 1.5 }));
      g.push(svg('text', { x: W - PAD.r - 4, y: 13 + 11 * k, 'text-anchor': 'end', fill: COLORS[k % COLORS.length], class: 'tick' }, s.name));
    });
  }
  return svg('svg', { id, class: 'chart', viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: 'img', 'aria-label': title }, g);
}

function charts(r) {
  const ss = slots(r), size = r.size;
  const currencies = [...new Set(r.windows.flatMap((w) => w.orders.map((o) => o.currency)))].sort();
  const cur = (w, c) => (w?.orders || []).find((o) => o.currency === c) || {};
  const orders = { name: 'orders', values: ss.map((s) => (s.w?.orders || []).reduce((a, o) => a + o.count, 0)) };
  const revenue = currencies.map((c) => ({ name: c, values: ss.map((s) => (cur(s.w, c).paidAmountCents || 0) / 100) }));
  const aov = currencies.map((c) => ({ name: c, values: ss.map((s) => (cur(s.w, c).averageOrderCents || 0) / 100) }));
  const funnel = ['carts', 'orders', 'paid', 'shipped'].map((k) => ({ name: k, values: ss.map((s) => s.w?.funnel[k] || 0) }));
  const declines = { name: 'decline rate', values: ss.map((s) => s.w?.payments.declineRate || 0) };
  const ship = ['p50Ms', 'p95Ms'].map((k) => ({ name: k.slice(0, 3), values: ss.map((s) => (s.w?.orderToShipped?.[k] || 0) / 1000) }));
  const pct = (v) => Math.round(v * 1000) / 10 + ' %';
  const secs = (v) => (v >= 100 ? Math.round(v) : Math.round(v * 10) / 10) + ' s';
  return [
    chart('Orders placed', 'analytics-chart-orders', ss, [orders], size),
    chart('Revenue (captured) per currency', 'analytics-chart-revenue', ss, revenue.length ? revenue : [{ name: '', values: ss.map(() => 0) }], size),
    chart('Average order value per currency', 'analytics-chart-aov', ss, aov.length ? aov : [{ name: '', values: ss.map(() => 0) }], size),
    chart('Funnel: carts → orders → paid → shipped', 'analytics-chart-funnel', ss, funnel, size),
    chart('Payment decline rate', 'analytics-chart-declines', ss, [declines], size, pct),
    chart('Order → shipped time (p50, p95; in the window it shipped)', 'analytics-chart-shipped', ss, ship, size, secs),
  ];
}

function summary(t) {
  const pct = (v) => (Math.round(v * 1000) / 10) + ' %';
  const money = (c, cents) => `${(cents / 100).toFixed(2)} ${c}`;
  const list = (l) => l.length ? l.map((x) => `${x.label} ${x.count}`).join(', ') : '—';
  return el('dl', { class: 'analytics-summary' },
    el('dt', {}, 'Orders'), el('dd', { id: 'analytics-total-orders' }, t.orders.map((o) => `${o.count} (${money(o.currency, o.valueCents)}, average ${money(o.currency, o.averageOrderCents)})`).join('; ') || '0'),
    el('dt', {}, 'Revenue'), el('dd', {}, t.revenue.map((m) => money(m.currency, m.amountCents)).join('; ') || '0'),
    el('dt', {}, 'Funnel'), el('dd', { id: 'analytics-total-funnel' }, `${t.funnel.carts} carts → ${t.funnel.orders} orders (${pct(t.funnel.cartToOrder)}) → ${t.funnel.paid} paid (${pct(t.funnel.orderToPaid)}) → ${t.funnel.shipped} shipped (${pct(t.funnel.paidToShipped)})`),
    el('dt', {}, 'Payments declined'), el('dd', {}, `${t.payments.declined} of ${t.payments.processed + t.payments.declined} (${pct(t.payments.declineRate)})`),
    el('dt', {}, 'Cancellations'), el('dd', {}, list(t.cancellations)),
    el('dt', {}, 'Top products'), el('dd', {}, list(t.topProducts)),
    el('dt', {}, 'Stockouts'), el('dd', {}, list(t.stockouts)),
    el('dt', {}, 'Order → shipped'), el('dd', { id: 'analytics-total-shipped' }, t.orderToShipped?.count
      ? `${t.orderToShipped.count} shipped: p50 ${t.orderToShipped.p50Ms / 1000} s, p95 ${t.orderToShipped.p95Ms / 1000} s` : '—'));
}

// toFlow opens the flow of an evidence event: its correlation id, from the audit trail.
async function toFlow(eventId) {
  try {
    const r = await api('/api/v1/admin/events?eventId=' + encodeURIComponent(eventId));
    if (r.events.length) { location.hash = '#flow=' + encodeURIComponent(r.events[0].correlationId); return; }
    $('#analytics-status').textContent = `Event ${eventId} is not in the audit trail (yet).`;
  } catch (err) {
    $('#analytics-status').textContent = `Event ${eventId}: ${err.message}`;
  }
}

function detectionRows(ds) {
  return ds.map((d) => el('tr', { dataset: { rule: d.rule } },
    el('td', {}, time(d.at)), el('td', {}, d.type, d.dryRun ? el('span', { class: 'badge' }, ' dry run') : ''),
    el('td', { class: 'mono small' }, d.rule === 'OrderSlaBreached' ? el('a', { href: '#flow=' + encodeURIComponent(d.key) }, d.key) : d.key),
    el('td', { class: 'small' }, d.evidence.map((id, i) => [i ? ' ' : '', el('a', { href: '#', class: 'evidence mono', onclick: (e) => { e.preventDefault(); toFlow(id); } }, '…' + id.slice(-8))]).flat(),
      d.holders ? ` (${d.holders} carts)` : '')));
}

async function load() {
  try {
    const [w, d] = await Promise.all([api('/api/v1/analytics/windows?size=' + sizeOf()), api('/api/v1/analytics/detections?limit=50')]);
    $('#analytics-charts').replaceChildren(...charts(w));
    $('#analytics-summary').replaceChildren(summary(w.total));
    $('#analytics-detections').replaceChildren(...detectionRows(d.detections));
    $('#analytics-status').textContent = `${w.windows.length} window(s) with events from ${time(w.from)} to ${time(w.to)}; ${d.detections.length} recent detection(s). Updated ${time(Date.now())}.`;
  } catch (err) {
    $('#analytics-status').textContent = err.status === 404 ? 'No analytics service here (not run).' : 'Failed: ' + err.message;
  }
}

function follow() {
  clearInterval(timer);
  timer = null;
  if ($('#analytics-form [name=follow]').checked) timer = setInterval(load, 3000);
}

export function init() {
  $('#analytics-form').addEventListener('submit', (e) => { e.preventDefault(); load(); });
  $('#analytics-form [name=size]').addEventListener('change', load);
  $('#analytics-form [name=follow]').addEventListener('change', follow);
}

export async function enter() {
  await load();
  follow();
}

export function leave() {
  clearInterval(timer);
  timer = null;
}
