// Charts: events per second per topic, handler p99 per group, consumer lag
// per group and dead letters over a chosen range, drawn on canvases. GET
// /admin/samples answers from the process's bounded sample history (a
// sample every 10s, the last hour) or, with EVENTMART_PROMETHEUS_URL, from
// Prometheus (source "prometheus"): only then are 6h and 24h offered.
import { api } from './api.js';
import { $, el } from './util.js';

let timer = null;
const COLORS = ['#2457c5', '#c2410c', '#15803d', '#6d28d9', '#b45309', '#0e7490', '#be185d', '#4d7c0f', '#475569', '#c62828'];

// draw plots series {name: [[t, v]…]} on canvas, with a y axis from 0.
function draw(canvas, series, unit) {
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth, h = canvas.clientHeight;
  canvas.width = w * dpr; canvas.height = h * dpr;
  const g = canvas.getContext('2d');
  g.scale(dpr, dpr);
  g.clearRect(0, 0, w, h);
  const pts = Object.values(series).flat();
  const pad = { l: 48, r: 10, t: 10, b: 22 };
  g.font = '11px system-ui, sans-serif';
  g.fillStyle = '#667085';
  if (pts.length === 0) { g.fillText('no samples in this range', pad.l, h / 2); return; }
  const t0 = Math.min(...pts.map((p) => p[0])), t1 = Math.max(...pts.map((p) => p[0]), t0 + 1);
  const vmax = Math.max(Math.max(...pts.map((p) => p[1])) * 1.1, unit === '' ? 1 : 0.1);
  const x = (t) => pad.l + (t - t0) / (t1 - t0) * (w - pad.l - pad.r);
  const y = (v) => h - pad.b - v / vmax * (h - pad.t - pad.b);
  g.strokeStyle = '#e5e7eb'; g.lineWidth = 1;
  for (let i = 0; i <= 4; i++) {
    const v = vmax * i / 4, yy = y(v);
    g.beginPath(); g.moveTo(pad.l, yy); g.lineTo(w - pad.r, yy); g.stroke();
    g.fillText((v >= 10 ? v.toFixed(0) : v.toFixed(1)) + unit, 2, yy + 4);
  }
  for (const t of [t0, (t0 + t1) / 2, t1]) {
    const s = new Date(t).toLocaleTimeString([], { hour12: false });
    g.fillText(s, Math.max(pad.l - 20, Math.min(x(t) - 20, w - 52)), h - 6);
  }
  Object.entries(series).forEach(([, p], i) => {
    g.strokeStyle = COLORS[i % COLORS.length]; g.lineWidth = 1.8;
    g.beginPath();
    p.forEach(([t, v], j) => (j ? g.lineTo(x(t), y(v)) : g.moveTo(x(t), y(v))));
    g.stroke();
  });
}

function legend(id, series) {
  $(id).replaceChildren(...Object.keys(series).map((n, i) => {
    const k = el('span', { class: 'k' }, n);
    k.style.setProperty('--c', COLORS[i % COLORS.length]); // through the CSSOM: the page's CSP forbids style attributes
    return k;
  }));
}

// seriesOf turns samples into {name: [[t, v]…]} for the field (a map by
// name, or a number), dropping names that are zero throughout.
function seriesOf(samples, field) {
  const out = {};
  for (const s of samples) {
    const t = Date.parse(s.at);
    const v = s[field];
    if (typeof v === 'number') (out.total ||= []).push([t, v]);
    else for (const [k, n] of Object.entries(v || {})) (out[k] ||= []).push([t, n]);
  }
  for (const [k, p] of Object.entries(out)) if (p.every(([, v]) => v === 0) && field !== 'deadLetters') delete out[k];
  return out;
}

const CHARTS = [
  ['eventsPerSecond', '#chart-events', '#legend-events', '/s'],
  ['handlerP99Ms', '#chart-p99', '#legend-p99', 'ms'],
  ['lag', '#chart-lag', '#legend-lag', ''],
  ['deadLetters', '#chart-dead', '#legend-dead', ''],
];

async function load() {
  const range = new FormData($('#charts-form')).get('range');
  try {
    const r = await api('/api/v1/admin/samples?range=' + range);
    const prom = r.source === 'prometheus';
    for (const o of $('#charts-form [name=range]').options) {
      if (o.value === '6h' || o.value === '24h') { o.hidden = !prom; o.disabled = !prom; }
    }
    $('#charts-status').textContent = prom
      ? `Source: Prometheus at ${r.prometheus}, ${r.samples.length} points over the last ${r.range} (one every ${r.every})${r.truncated ? '; only the first 20 series of a chart are shown' : ''}.`
      : `Source: this process, ${r.samples.length} samples over the last ${r.range} (one every ${r.every}, kept in the process for an hour).`;
    for (const [field, canvas, leg, unit] of CHARTS) {
      const s = seriesOf(r.samples, field);
      draw($(canvas), s, unit);
      legend(leg, s);
    }
  } catch (err) {
    $('#charts-status').textContent = 'Failed: ' + err.message;
    for (const [, canvas, leg] of CHARTS) { // no stale lines under an error
      draw($(canvas), {}, '');
      $(leg).replaceChildren();
    }
  }
}

export function init() {
  $('#charts-form').addEventListener('submit', (e) => { e.preventDefault(); load(); });
  $('#charts-form [name=range]').addEventListener('change', load);
}
export function enter() { load(); clearInterval(timer); timer = setInterval(load, 10000); }
export function leave() { clearInterval(timer); timer = null; }
