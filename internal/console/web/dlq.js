// Dead letters: the total across services; a service's letters to inspect,
// redrive (one or all, after a confirmation) or discard.
import { api } from './api.js';
import { $, el, time, correlationOf, CONSUMING } from './util.js';

function svc() { return new FormData($('#dlq-form')).get('service'); }

function inspect(d) {
  const pre = $('#dlq-inspect');
  let value = d.value;
  try { value = JSON.stringify(JSON.parse(d.value), null, 2); } catch { /* not JSON */ }
  const headers = (d.headers || []).map((h) => { let v = h.Value; try { v = atob(h.Value); } catch { /* raw */ } return `${h.Key}: ${v}`; });
  pre.textContent = `Dead letter ${d.id} of ${d.group} (${d.status})\n${d.topic} / ${d.partition} @ ${d.offset}, key ${d.key}\n` +
    `first failed ${d.firstFailedAt}, dead at ${d.deadAt}, ${d.attempts} attempts${d.permanent ? ', permanent' : ''}\nerror: ${d.error}\n\n` +
    `headers:\n  ${headers.join('\n  ')}\n\nvalue:\n${value}`;
  pre.hidden = false;
  pre.scrollIntoView({ block: 'nearest' });
}

async function redrive(path, what) {
  if (!window.confirm(`Redrive ${what}? The consumer handles the event(s) again now.`)) return;
  try {
    const r = await api(path, { method: 'POST' });
    $('#dlq-status').textContent = `Redriven ${what}: ${r.redriven} letter(s) handed back to the consumer.`;
  } catch (err) {
    $('#dlq-status').textContent = 'Redrive failed: ' + err.message;
  }
  await load(true);
  total();
}

async function discard(d) {
  if (!window.confirm(`Discard dead letter ${d.id} (${d.eventType || 'undecodable'})? It will not be handled; it stays listed as discarded.`)) return;
  try {
    await api(`/api/v1/admin/dlq/${svc()}/${d.id}/discard`, { method: 'POST' });
    $('#dlq-status').textContent = `Discarded letter ${d.id}.`;
  } catch (err) {
    $('#dlq-status').textContent = 'Discard failed: ' + err.message;
  }
  await load(true);
  total();
}

// total counts every service's dead letters (the lists are capped at 500).
async function total() {
  const counts = await Promise.all(CONSUMING.map((s) => api(`/api/v1/admin/dlq/${s}?status=dead&limit=500`).then((r) => r.deadLetters.length).catch(() => 0)));
  const sum = counts.reduce((a, b) => a + b, 0);
  const by = CONSUMING.map((s, i) => [s, counts[i]]).filter(([, n]) => n > 0).map(([s, n]) => `${s} ${n}`);
  $('#dlq-total').textContent = sum ? `${sum} dead letter(s) across services: ${by.join(', ')}.` : 'No dead letters in any service.';
  $('#dlq-total').className = 'status' + (sum ? ' warn' : '');
  return counts;
}

async function load(keepStatus) {
  const f = new FormData($('#dlq-form'));
  const q = new URLSearchParams({ limit: '200' });
  if (f.get('status')) q.set('status', f.get('status'));
  try {
    const r = await api(`/api/v1/admin/dlq/${svc()}?${q}`);
    if (!keepStatus) $('#dlq-status').textContent = `${r.deadLetters.length} letter(s) in ${svc()}'s queue.`;
    $('#dlq-rows').replaceChildren(...r.deadLetters.map((d) => {
      const corr = correlationOf(d);
      return el('tr', { dataset: { id: d.id, status: d.status } },
        el('td', { class: 'num' }, d.id), el('td', {}, d.eventType || '(undecodable)'),
        el('td', { class: 'mono small' }, corr ? el('a', { href: '#flow=' + corr }, corr) : ''),
        el('td', { class: 'error-text', title: d.error }, d.error.length > 90 ? d.error.slice(0, 87) + '…' : d.error),
        el('td', { class: 'num' }, d.attempts), el('td', { class: 'mono' }, time(d.deadAt)), el('td', {}, el('span', { class: 'badge ' + (d.status === 'dead' ? 'failure' : 'ok') }, d.status)),
        el('td', { class: 'actions' },
          el('button', { type: 'button', onclick: () => inspect(d) }, 'Inspect'),
          d.status === 'dead' ? el('button', { type: 'button', class: 'redrive', onclick: () => redrive(`/api/v1/admin/dlq/${svc()}/${d.id}/redrive`, `letter ${d.id}`) }, 'Redrive') : '',
          d.status === 'dead' ? el('button', { type: 'button', class: 'discard', onclick: () => discard(d) }, 'Discard') : ''));
    }));
  } catch (err) {
    $('#dlq-rows').replaceChildren();
    $('#dlq-status').textContent = err.status === 404 ? `${svc()} has no dead-letter queue here (not run, or consumes nothing).` : 'Failed: ' + err.message;
  }
}

export function init() {
  const sel = $('#dlq-form [name=service]');
  for (const s of CONSUMING) sel.append(el('option', { value: s }, s));
  sel.value = 'shipping';
  $('#dlq-form').addEventListener('submit', (e) => { e.preventDefault(); $('#dlq-inspect').hidden = true; load(); });
  sel.addEventListener('change', () => { $('#dlq-inspect').hidden = true; load(); });
  $('#dlq-form [name=status]').addEventListener('change', () => load());
  $('#dlq-redrive-all').addEventListener('click', () => redrive(`/api/v1/admin/dlq/${svc()}/redrive`, `all of ${svc()}`));
}

export async function enter(correlation) {
  // Open the first service with dead letters, if any; with a correlation
  // id (#dlq=ID, from a stuck saga), the first holding one of that flow.
  const counts = await total();
  let first = CONSUMING.find((s, i) => counts[i] > 0);
  if (correlation) {
    for (const [i, s] of CONSUMING.entries()) {
      if (!counts[i]) continue;
      const r = await api(`/api/v1/admin/dlq/${s}?status=dead&limit=500`).catch(() => ({ deadLetters: [] }));
      if (r.deadLetters.some((d) => correlationOf(d) === correlation)) { first = s; break; }
    }
  }
  if (first) $('#dlq-form [name=service]').value = first;
  await load();
  if (correlation) {
    const rows = [...document.querySelectorAll('#dlq-rows tr')].filter((tr) => tr.textContent.includes(correlation));
    for (const tr of rows) tr.classList.add('stuck');
    $('#dlq-status').textContent = rows.length ? `${rows.length} dead letter(s) of flow ${correlation} (highlighted).` : `No dead letter of flow ${correlation}.`;
  }
}
