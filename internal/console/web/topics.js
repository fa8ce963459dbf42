// Topics: partitions, retention, records kept, and each group's lag.
import { api } from './api.js';
import { $, el, duration } from './util.js';

let timer = null;

function groups(t) {
  if (!t.groups.length) return el('span', { class: 'muted' }, 'no consumer group');
  return el('div', { class: 'groups' }, t.groups.map((g) => {
    const behind = g.partitions.filter((p) => p.Lag > 0);
    return el('details', { class: 'group' },
      el('summary', {}, el('span', { class: 'group-name' }, g.group), ' ', el('span', { class: 'badge ' + (g.lag > 0 ? 'lag' : 'ok'), 'data-lag': g.lag }, `lag ${g.lag}`)),
      el('table', { class: 'partitions' },
        el('thead', {}, el('tr', {}, el('th', {}, 'Partition'), el('th', {}, 'Committed'), el('th', {}, 'End'), el('th', {}, 'Lag'))),
        el('tbody', {}, (behind.length ? behind : g.partitions.filter((p) => p.End > 0)).map((p) =>
          el('tr', {}, el('td', { class: 'num' }, p.Partition), el('td', { class: 'num' }, p.Committed), el('td', { class: 'num' }, p.End), el('td', { class: 'num' }, p.Lag))))));
  }));
}

async function load() {
  try {
    const r = await api('/api/v1/admin/topics');
    const total = r.topics.reduce((n, t) => n + t.groups.reduce((m, g) => m + g.lag, 0), 0);
    $('#topics-status').textContent = `${r.topics.length} topics, ${r.consumers.length} consumer groups, total lag ${total}. ` +
      'Open a group for its partitions (those behind, or those with records).' + (r.warnings.length ? ' Warnings: ' + r.warnings.join('; ') : '');
    $('#topics-rows').replaceChildren(...r.topics.map((t) => el('tr', { dataset: { topic: t.name } },
      el('td', { class: 'mono' }, t.name), el('td', { class: 'num' }, t.partitions),
      el('td', {}, t.retentionMs ? duration(t.retentionMs) : 'forever'), el('td', { class: 'num' }, t.messages), el('td', {}, groups(t)))));
  } catch (err) {
    $('#topics-status').textContent = 'Failed: ' + err.message;
  }
}

export function init() { $('#topics-refresh').addEventListener('click', load); }
export function enter() { load(); clearInterval(timer); timer = setInterval(load, 5000); }
export function leave() { clearInterval(timer); timer = null; }
