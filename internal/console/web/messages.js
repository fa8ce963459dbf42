// Messages: browse a topic's records by partition and offset, key or time;
// read the envelopes; follow a correlation id to its Flow.
import { api } from './api.js';
import { $, el, time, service, kind } from './util.js';

let filled = false;

async function fill() {
  if (filled) return;
  try {
    const r = await api('/api/v1/admin/topics');
    const sel = $('#messages-form [name=topic]');
    for (const t of r.topics) sel.append(el('option', { value: t.name }, `${t.name} (${t.partitions} partitions)`));
    sel.value = 'order-events';
    filled = true;
  } catch { /* typed topic names still work */ }
}

function show(m) {
  const pre = $('#messages-inspect');
  pre.textContent = `${m.topic} / ${m.partition} @ ${m.offset}, key ${m.key}, ${m.timestamp}\n\n` + JSON.stringify(m.envelope, null, 2);
  pre.hidden = false;
  pre.scrollIntoView({ block: 'nearest' });
}

async function load() {
  const f = new FormData($('#messages-form'));
  const q = new URLSearchParams({ topic: f.get('topic'), limit: f.get('limit') || '50' });
  for (const k of ['partition', 'offset', 'key']) if (f.get(k).trim()) q.set(k, f.get(k).trim());
  if (f.get('from')) q.set('from', new Date(f.get('from')).toISOString().replace(/\.\d+Z$/, 'Z'));
  $('#messages-inspect').hidden = true;
  try {
    const r = await api('/api/v1/admin/messages?' + q);
    $('#messages-status').textContent = `${r.messages.length} record(s), ${r.scanned} read. Click a row for its envelope.`;
    $('#messages-rows').replaceChildren(...r.messages.map((m) => el('tr', { class: 'ev clickable', onclick: () => show(m) },
      el('td', { class: 'mono num' }, `${m.partition} @ ${m.offset}`),
      el('td', { class: 'mono' }, time(m.timestamp)),
      el('td', {}, el('span', { class: 'badge ' + kind(m.eventType) }, m.eventType || '(no type)')),
      el('td', {}, service(m.source)),
      el('td', { class: 'mono small' }, m.key),
      el('td', { class: 'mono small' }, m.correlationId ? el('a', { href: '#flow=' + encodeURIComponent(m.correlationId), title: 'Draw this flow', onclick: (e) => e.stopPropagation() }, m.correlationId) : ''))));
  } catch (err) {
    $('#messages-rows').replaceChildren();
    $('#messages-status').textContent = 'Failed: ' + err.message;
  }
}

export function init() {
  $('#messages-form').addEventListener('submit', (e) => { e.preventDefault(); load(); });
}
export async function enter() { await fill(); load(); }
