// Region: cross-region replication as this process sees it (docs/regions.md)
// — its role, the primary, why writes are refused on a standby, replication
// lag per topic, MirrorMaker's heartbeats, checkpoints and offset syncs.
import { api } from './api.js';
import { $, el, duration } from './util.js';

let timer = null;

const secs = (s) => duration(s * 1000);
const when = (t) => new Date(t).toISOString().slice(0, 19).replace('T', ' ') + ' UTC';

function row(name, value, attrs = {}) {
  return el('tr', { dataset: { field: name } }, el('th', {}, name), el('td', attrs, value));
}

// tail describes the newest record of one of MirrorMaker's topics.
function tail(t) {
  if (!t.last) return `${t.topic}: empty`;
  return `${t.topic}: ${when(t.last)} (${secs(t.ageSeconds)} ago), ${t.records} record(s)`;
}

const MIRROR = {
  running: ['ok', 'running'],
  stopped: ['failure', 'stopped'],
  absent: ['', 'not replicating into this region'],
};

async function load() {
  try {
    const s = await api('/api/v1/admin/region');
    const standby = s.role === 'standby';
    $('#region-status').textContent = standby
      ? 'This region is a warm standby: it serves reads from its replica and refuses writes until promoted (eventmart region failover).'
      : s.bus === 'embedded'
        ? 'This region is the primary. On the embedded bus there is no cross-region replication (it needs Kafka and MirrorMaker 2).'
        : 'This region is the primary: it takes the writes.';
    const rows = [
      row('Role', el('span', { class: 'badge ' + (standby ? 'lag' : 'ok') }, s.role), { dataset: { role: s.role } }),
      row('Primary region', s.primary || (standby ? 'unknown: EVENTMART_REGION_PRIMARY is unset' : 'this one')),
      row('Logins', s.logins),
      row('Work held until promotion', `${s.heldWork} consumer(s), relay(s) and job(s)`),
    ];
    if (standby) rows.splice(2, 0, row('Writes refused', s.writesRefused, { dataset: { refused: '' } }));
    const c = s.cluster;
    if (c) {
      rows.push(row('Recorded role', c.role ? `${c.role.role}, set ${when(c.role.at)} by ${c.role.by}` : 'none recorded (each process follows EVENTMART_REGION_ROLE)'));
      const [cls, text] = MIRROR[c.mirrorMaker] || ['', c.mirrorMaker];
      const beat = c.heartbeats?.last ? ` newest heartbeat ${when(c.heartbeats.last)} (${secs(c.heartbeats.ageSeconds)} ago)` : '';
      rows.push(row('MirrorMaker', [el('span', { class: 'badge ' + cls }, text), beat],
        { dataset: { mirror: c.mirrorMaker } }));
      rows.push(row('Last checkpoint', c.checkpoints.length ? c.checkpoints.map(tail).join('; ') : 'none: no checkpoints topic here'));
      rows.push(row('Last offset sync', c.offsetSyncs.length ? c.offsetSyncs.map(tail).join('; ') : 'none: no offset-syncs topic here'));
    } else if (s.clusterError) {
      rows.push(row('Kafka cluster', s.clusterError));
    }
    $('#region-rows').replaceChildren(...rows);
    $('#region-lag-table').hidden = !s.lag.length;
    $('#region-lag-status').textContent = s.lag.length ? ''
      : standby ? 'Replication lag: no replicated record read yet.' : 'Replication lag: measured by a standby only (this region is the primary).';
    $('#region-lag').replaceChildren(...s.lag.map((l) => el('tr', { dataset: { topic: l.topic } },
      el('td', { class: 'mono' }, l.topic), el('td', {}, secs(l.p50Seconds)), el('td', {}, secs(l.p99Seconds)),
      el('td', {}, `${secs(l.lastSeconds)} at ${when(l.lastAt)}`), el('td', {}, String(l.count)))));
  } catch (err) {
    $('#region-rows').replaceChildren();
    $('#region-status').textContent = 'Failed: ' + err.message;
  }
}

export function init() { $('#region-refresh').addEventListener('click', load); }
export function enter() { load(); clearInterval(timer); timer = setInterval(load, 5000); }
export function leave() { clearInterval(timer); timer = null; }
