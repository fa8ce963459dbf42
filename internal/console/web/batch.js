// Batch: the scheduled export (EVENTMART_EXPORT_DIR) — its last run, lag
// and failures, from the process running the audit service.
import { api } from './api.js';
import { $, el, duration } from './util.js';

let timer = null;

// when shows a date and time in UTC, as the schedule is set.
const when = (t) => new Date(t).toISOString().slice(0, 19).replace('T', ' ') + ' UTC';

function row(name, value, attrs = {}) {
  return el('tr', { dataset: { field: name } }, el('th', {}, name), el('td', attrs, value));
}

async function load() {
  try {
    const s = await api('/api/v1/admin/export');
    if (!s.enabled) {
      $('#batch-status').textContent = 'The scheduled export is off: set EVENTMART_EXPORT_DIR on the process running the audit service.';
      $('#batch-rows').replaceChildren();
      return;
    }
    $('#batch-status').textContent = s.lastRun
      ? `Last run ${s.lastResult}; ${s.failures} failure(s) in ${s.runs} run(s) since the audit service started.`
      : `No run yet since the audit service started; the next one is at ${when(s.nextRun)}.`;
    const result = s.lastResult || 'not run yet';
    $('#batch-rows').replaceChildren(
      row('Directory', s.dir, { class: 'mono' }),
      row('Runs at', `${s.at} past midnight UTC; next ${when(s.nextRun)}`),
      row('Last run', s.lastRun ? when(s.lastRun) : '—'),
      row('Result', el('span', { class: 'badge ' + (s.lastResult === 'ok' ? 'ok' : s.lastResult === 'failed' ? 'failure' : '') }, result),
        { dataset: { result } }),
      row('Last error', s.lastError || '—'),
      row('Exported up to', s.exportedTill ? when(s.exportedTill) : '—'),
      row('Lag', s.exportedTill ? duration(s.lagSeconds * 1000) : '—', { dataset: { lag: s.lagSeconds } }),
      row('Failures', `${s.failures} of ${s.runs} run(s)`, { dataset: { failures: s.failures } }),
    );
  } catch (err) {
    $('#batch-rows').replaceChildren();
    $('#batch-status').textContent = 'Failed: ' + err.message;
  }
}

export function init() { $('#batch-refresh').addEventListener('click', load); }
export function enter() { load(); clearInterval(timer); timer = setInterval(load, 5000); }
export function leave() { clearInterval(timer); timer = null; }
