// Sagas in flight (PENDING, CONFIRMED orders) and the stuck ones.
import { api } from './api.js';
import { $, el, duration } from './util.js';

let timer = null;

async function load() {
  const after = new FormData($('#sagas-form')).get('stuckAfter').trim();
  try {
    const r = await api('/api/v1/admin/sagas?limit=100' + (after ? '&stuckAfter=' + encodeURIComponent(after) : ''));
    $('#sagas-status').textContent = `In flight: ${r.inFlight.PENDING} PENDING, ${r.inFlight.CONFIRMED} CONFIRMED; ${r.stuck} stuck (no change for ${r.stuckAfter}). Longest idle first.`;
    $('#sagas-rows').replaceChildren(...r.sagas.map((s) => el('tr', { class: s.stuck ? 'stuck' : '' },
      el('td', { class: 'mono' }, el('a', { href: '#flow=' + s.correlationId }, s.orderId), ' ', el('a', { href: '#history=order:' + s.orderId, class: 'small history-link' }, 'history')),
      el('td', {}, s.status), el('td', { class: 'num' }, duration(s.ageMs)), el('td', { class: 'num' }, duration(s.idleMs)),
      el('td', {}, s.stuck ? [el('span', { class: 'badge failure' }, 'stuck'), ' ', el('a', { href: '#dlq=' + s.correlationId, class: 'small', title: 'The dead letters of this flow, if any' }, 'dead letters')] : ''),
      el('td', { class: 'mono small' }, s.correlationId))));
  } catch (err) {
    $('#sagas-status').textContent = 'Failed: ' + err.message;
  }
}

export function init() { $('#sagas-form').addEventListener('submit', (e) => { e.preventDefault(); load(); }); }
export function enter() { load(); clearInterval(timer); timer = setInterval(load, 5000); }
export function leave() { clearInterval(timer); timer = null; }
