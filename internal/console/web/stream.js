// Live stream: the topics' new events (audit-events too), filtered, newest
// on top, in time order across topics.
import { stream, api } from './api.js';
import { $, el, time, service, kind } from './util.js';

const MAX_ROWS = 500;
let controller = null;
let received = 0, dropped = 0;
let filledTypes = false;

function status(text, cls = '') {
  const s = $('#stream-status');
  s.textContent = text;
  s.className = 'status ' + cls;
}

function row(ev) {
  const flow = '#flow=' + encodeURIComponent(ev.correlationId);
  return el('tr', { class: 'ev ' + kind(ev.eventType), dataset: { type: ev.eventType, correlation: ev.correlationId, at: Date.parse(ev.timestamp) } },
    el('td', { class: 'mono' }, time(ev.timestamp)),
    el('td', {}, el('span', { class: 'badge ' + kind(ev.eventType) }, ev.eventType)),
    el('td', {}, service(ev.source)),
    el('td', { class: 'mono' }, `${ev.topic} / ${ev.partition} @ ${ev.offset}`),
    el('td', { class: 'mono small' }, ev.key),
    el('td', { class: 'mono small' }, el('a', { href: flow, title: 'Draw this flow' }, ev.correlationId)));
}

async function start(params) {
  stop();
  controller = new AbortController();
  const q = new URLSearchParams(Object.entries(params).filter(([, v]) => v)).toString();
  received = dropped = 0;
  status('Connecting…');
  const rows = $('#stream-rows');
  const ctl = controller;
  try {
    await stream('/api/v1/admin/stream' + (q ? '?' + q : ''), ctl.signal, (name, data) => {
      if (name === 'ready') status(`Live: watching ${data.topics.join(', ')}.`, 'live');
      if (name === 'event') {
        received++;
        // Newest on top, by the record's time: a row older than the top one
        // (another partition's, read a moment later) goes in its place.
        const r = row(data), at = Number(r.dataset.at);
        let before = rows.firstElementChild;
        while (before && Number(before.dataset.at) > at) before = before.nextElementSibling;
        rows.insertBefore(r, before);
        while (rows.childElementCount > MAX_ROWS) rows.lastElementChild.remove();
        status(`Live: ${received} events${dropped ? `, ${dropped} dropped (too slow)` : ''}.`, 'live');
      }
      if (name === 'dropped') { dropped += data.dropped; status(`Live: ${received} events, ${dropped} dropped (too slow).`, 'live warn'); }
      if (name === 'error') status('Bus error: ' + data.error.message + ' (still trying)', 'warn');
    });
    if (ctl === controller) status('The server ended the stream.', 'warn');
  } catch (err) {
    if (err.name !== 'AbortError' && ctl === controller) status('Stream failed: ' + err.message, 'error');
  }
}

function stop() {
  if (controller) { controller.abort(); controller = null; status('Stopped.'); }
}

function params() {
  const f = new FormData($('#stream-form'));
  return { topic: f.get('topic'), type: f.get('type').replace(/\s+/g, ''), correlationId: f.get('correlationId').trim(), since: f.get('since') };
}

async function fillChoices() {
  if (filledTypes) return;
  try {
    const topo = await api('/api/v1/admin/topics');
    const sel = $('#stream-form select[name=topic]');
    for (const t of topo.topics) sel.append(el('option', { value: t.name }, t.name));
    const types = new Set();
    for (const c of topo.consumers) for (const t of c.eventTypes) types.add(t);
    const list = $('#event-types');
    for (const t of [...types].sort()) list.append(el('option', { value: t }));
    filledTypes = true;
  } catch { /* the form works without the choices */ }
}

export function init() {
  $('#stream-form').addEventListener('submit', (e) => { e.preventDefault(); start(params()); });
  $('#stream-stop').addEventListener('click', stop);
  $('#stream-clear').addEventListener('click', () => { $('#stream-rows').replaceChildren(); received = 0; });
}

export function enter() {
  fillChoices();
  if (!controller) start(params());
}

export function leave() { stop(); }
