// Webhook endpoints: their deliveries with every attempt; send a test
// message, replay a delivery.
import { api } from './api.js';
import { $, el, time } from './util.js';

function endpoint() { return new FormData($('#webhooks-form')).get('endpoint'); }

async function act(path, body, what) {
  try {
    const r = await api(path, { method: 'POST', body: body ?? {} });
    $('#webhooks-status').textContent = r.attempt
      ? `Test message ${r.webhookId}: ${r.delivered ? 'delivered' : 'not delivered'} (${r.attempt.statusCode || r.attempt.error}, ${r.attempt.latencyMs} ms).`
      : `${what}: ${r.queued} delivery(ies) queued.`;
  } catch (err) {
    $('#webhooks-status').textContent = `${what} failed: ${err.message}`;
  }
  await loadDeliveries(true);
}

function attempts(d) {
  return el('ol', { class: 'attempts' }, d.attemptLog.map((a) => el('li', { class: a.statusCode >= 200 && a.statusCode < 300 ? 'ok' : 'failure' },
    `${time(a.at)} · ${a.statusCode || 'no answer'} · ${a.latencyMs} ms`, a.error ? ` · ${a.error}` : '',
    a.response ? el('code', { class: 'small' }, ' ' + a.response.slice(0, 120)) : '')));
}

async function loadDeliveries(keepStatus) {
  const id = endpoint();
  if (!id) { $('#webhooks-rows').replaceChildren(); return; }
  try {
    const r = await api(`/api/v1/webhooks/endpoints/${id}/deliveries?limit=100`);
    if (!keepStatus) $('#webhooks-status').textContent = `${r.deliveries.length} recent delivery(ies).`;
    $('#webhooks-rows').replaceChildren(...r.deliveries.map((d) => el('tr', { dataset: { id: d.id, status: d.status } },
      el('td', { class: 'mono small' }, d.id), el('td', {}, d.eventType), el('td', {}, el('span', { class: 'badge ' + (d.status === 'delivered' ? 'ok' : d.status === 'failed' ? 'failure' : '') }, d.status)),
      el('td', { class: 'num' }, d.attempts), el('td', {}, attempts(d)),
      el('td', { class: 'actions' }, el('button', { type: 'button', class: 'replay', onclick: () => act(`/api/v1/webhooks/endpoints/${id}/replay`, { deliveryId: d.id }, `Replay of ${d.id}`) }, 'Replay')))));
  } catch (err) {
    $('#webhooks-rows').replaceChildren();
    $('#webhooks-status').textContent = err.status === 404 ? 'No webhook service here (not run).' : 'Failed: ' + err.message;
  }
}

async function loadEndpoints() {
  const sel = $('#webhooks-form [name=endpoint]');
  const keep = sel.value;
  try {
    const r = await api('/api/v1/webhooks/endpoints?limit=500');
    sel.replaceChildren(...r.endpoints.map((e) => el('option', { value: e.id },
      `${e.description || e.url} — ${e.url}${e.enabled ? '' : ' (disabled: ' + e.disabledReason + ')'}`)));
    if (r.endpoints.some((e) => e.id === keep)) sel.value = keep;
    if (!r.endpoints.length) $('#webhooks-status').textContent = 'No endpoints registered (POST /api/v1/webhooks/endpoints, or eventmart webhooks create URL).';
  } catch (err) {
    $('#webhooks-status').textContent = err.status === 404 ? 'No webhook service here (not run).' : 'Failed: ' + err.message;
  }
}

export function init() {
  $('#webhooks-form').addEventListener('submit', (e) => { e.preventDefault(); loadDeliveries(); });
  $('#webhooks-form [name=endpoint]').addEventListener('change', () => loadDeliveries());
  $('#webhooks-test').addEventListener('click', () => act(`/api/v1/webhooks/endpoints/${endpoint()}/test`, null, 'Test'));
}

export async function enter() {
  await loadEndpoints();
  await loadDeliveries();
}
