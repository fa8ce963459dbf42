// Topology: services → topics (what they publish, observed) → services
// (consumer groups: declared subscriptions and causation links), with rates.
import { api } from './api.js';
import { $, el, svg, service } from './util.js';

let timer = null;
const rate = (n) => (n >= 10 ? n.toFixed(0) : n.toFixed(n >= 1 ? 1 : 2)) + '/min';

// bezier is the point at t of the edge's curve from (x1, y1) to (x2, y2).
function bezier(x1, y1, x2, y2, t) {
  const mx = (x1 + x2) / 2, u = 1 - t;
  return [u * u * u * x1 + 3 * u * u * t * mx + 3 * u * t * t * mx + t * t * t * x2,
    u * u * u * y1 + 3 * u * u * t * y1 + 3 * u * t * t * y2 + t * t * t * y2];
}

function draw(t) {
  const pubServices = [...new Set(t.publishes.map((p) => p.service))].sort();
  const consServices = [...new Set(t.consumes.map((c) => c.service))].sort();
  const topics = t.topics;
  // Three columns spread over the whole width (the svg scales to its box).
  const width = 1240, boxW = 200, boxH = 32, gap = 16, top = 40;
  const colX = [boxW / 2 + 10, width / 2, width - boxW / 2 - 10];
  const rows = Math.max(pubServices.length, topics.length, consServices.length, 1);
  const height = top + rows * (boxH + gap) + 20;
  const yOf = (list, name) => {
    // Each column centred vertically, so short columns do not hug the top.
    const offset = (rows - list.length) * (boxH + gap) / 2;
    return top + offset + list.indexOf(name) * (boxH + gap) + boxH / 2;
  };
  const s = svg('svg', { viewBox: `0 0 ${width} ${height}`, class: 'topo', role: 'img', 'aria-label': 'topology' });
  s.append(svg('text', { x: colX[0], y: 20, class: 'col-title' }, 'publishers'));
  s.append(svg('text', { x: colX[1], y: 20, class: 'col-title' }, 'topics'));
  s.append(svg('text', { x: colX[2], y: 20, class: 'col-title' }, 'consumer groups'));
  const edges = svg('g', {}), labels = [];
  const edge = (x1, y1, x2, y2, cls, label, title) => {
    const g = svg('g', { class: 'edge ' + cls });
    const mx = (x1 + x2) / 2;
    g.append(svg('path', { d: `M ${x1} ${y1} C ${mx} ${y1}, ${mx} ${y2}, ${x2} ${y2}`, class: 'edge-line' }));
    g.append(svg('title', {}, title));
    edges.append(g);
    if (label) labels.push({ x1, y1, x2, y2, label, title, cls });
  };
  // publisher → topic: one edge per pair, the types in the tooltip.
  const pairs = new Map();
  for (const p of t.publishes) {
    const k = p.service + '|' + p.topic;
    const e = pairs.get(k) || { service: p.service, topic: p.topic, perMinute: 0, types: [] };
    e.perMinute += p.perMinute;
    e.types.push(`${p.eventType} ${rate(p.perMinute)}`);
    pairs.set(k, e);
  }
  for (const e of pairs.values()) {
    edge(colX[0] + boxW / 2, yOf(pubServices, e.service), colX[1] - boxW / 2, yOf(topics, e.topic), 'pub', rate(e.perMinute), `${service(e.service)} → ${e.topic}: ${e.types.join(', ')}`);
  }
  const cpairs = new Map();
  for (const c of t.consumes) {
    const k = c.service + '|' + c.topic;
    const e = cpairs.get(k) || { service: c.service, topic: c.topic, perMinute: 0, observed: false, types: [] };
    e.perMinute += c.perMinute;
    e.observed ||= c.observed;
    e.types.push(c.eventType + (c.observed ? ` (${rate(c.perMinute)} causing events)` : ''));
    cpairs.set(k, e);
  }
  for (const e of cpairs.values()) {
    if (!topics.includes(e.topic)) continue; // no node to start from
    edge(colX[1] + boxW / 2, yOf(topics, e.topic), colX[2] - boxW / 2, yOf(consServices, e.service), e.observed ? 'cons observed' : 'cons',
      e.observed ? rate(e.perMinute) : '', `${e.topic} → ${service(e.service)}: ${e.types.join(', ')}`);
  }
  s.append(edges);
  // Labels go over every edge, each on its own edge's curve at the first
  // spot (from the middle outwards) where it overlaps no other label.
  const placed = [];
  const overlaps = (b) => placed.some((p) => b.x < p.x + p.w && p.x < b.x + b.w && b.y < p.y + p.h && p.y < b.y + b.h);
  const layer = svg('g', { class: 'labels' });
  for (const l of labels) {
    const w = 7 * l.label.length + 10, h = 16;
    let box = null;
    for (const at of [0.5, 0.4, 0.6, 0.3, 0.7, 0.22, 0.78, 0.15, 0.85]) {
      const [x, y] = bezier(l.x1, l.y1, l.x2, l.y2, at);
      const b = { x: x - w / 2, y: y - h / 2, w, h };
      if (!overlaps(b)) { box = b; break; }
      box ||= b;
    }
    placed.push(box);
    const g = svg('g', { class: 'edge-tag ' + l.cls });
    g.append(svg('rect', { x: box.x, y: box.y, width: box.w, height: box.h, rx: 8, class: 'label-bg' }));
    g.append(svg('text', { x: box.x + box.w / 2, y: box.y + 12, class: 'edge-label' }, l.label));
    g.append(svg('title', {}, l.title));
    layer.append(g);
  }
  const box = (x, y, name, cls) => {
    s.append(svg('rect', { x: x - boxW / 2, y: y - boxH / 2, width: boxW, height: boxH, rx: 6, class: 'node ' + cls }));
    s.append(svg('text', { x, y: y + 4, class: 'node-name' }, name));
  };
  pubServices.forEach((n) => box(colX[0], yOf(pubServices, n), service(n), 'svc'));
  topics.forEach((n) => box(colX[1], yOf(topics, n), n, n === 'audit-events' ? 'topic audit' : 'topic'));
  consServices.forEach((n) => box(colX[2], yOf(consServices, n), service(n), 'svc'));
  s.append(layer);
  return s;
}

function table(id, head, rows) {
  $(id).replaceChildren(el('thead', {}, el('tr', {}, head.map((h) => el('th', {}, h)))), el('tbody', {}, rows));
}

async function load() {
  const window = new FormData($('#topology-form')).get('window');
  try {
    const t = await api('/api/v1/admin/topology?window=' + window);
    $('#topology-summary').textContent = `${t.records} events in the last ${window}` + (t.truncated ? ' (busy partitions: newest 2000 each)' : '') +
      (t.warnings.length ? ' · ' + t.warnings.join('; ') : '') + '. Hover an edge for its event types.';
    $('#topology-diagram').replaceChildren(draw(t));
    table('#topology-pub', ['Service', 'Event type', 'Topic', 'Count', 'Rate'],
      t.publishes.map((p) => el('tr', {}, el('td', {}, service(p.service)), el('td', {}, p.eventType), el('td', {}, p.topic), el('td', { class: 'num' }, p.count), el('td', { class: 'num' }, rate(p.perMinute)))));
    // One row per group and topic; the types seen causing events are bold with their rate.
    const byGroup = new Map();
    for (const c of t.consumes) {
      const k = c.service + '|' + c.topic;
      if (!byGroup.has(k)) byGroup.set(k, { service: c.service, topic: c.topic, types: [] });
      byGroup.get(k).types.push(c);
    }
    table('#topology-cons', ['Group', 'Topic', 'Event types (bold: seen causing events, with rate; grey: seen, not subscribed)'],
      [...byGroup.values()].map((g) => el('tr', {}, el('td', {}, service(g.service)), el('td', {}, g.topic),
        el('td', { class: 'types' }, g.types.map((c) => el(c.declared ? (c.observed ? 'strong' : 'span') : 'em', c.declared ? {} : { class: 'muted', title: 'not subscribed' },
          c.eventType + (c.observed ? ` ${rate(c.perMinute)}` : ''))).flatMap((x, i) => (i ? [', ', x] : [x]))))));
  } catch (err) {
    $('#topology-summary').textContent = 'Failed: ' + err.message;
  }
}

export function init() {
  $('#topology-form').addEventListener('submit', (e) => { e.preventDefault(); load(); });
}
export function enter() { load(); clearInterval(timer); timer = setInterval(load, 10000); }
export function leave() { clearInterval(timer); timer = null; }
