// History: an order's, a product's stock or a payment's ledger, event by
// event, stepping through its states (the state after each event beside
// it); for an order, its state as of an instant. #history=<kind>:<id>,
// optionally @<RFC 3339 instant> for an order.
import { api } from './api.js';
import { $, el, time } from './util.js';

const PAGE = 500;

// Each kind reads one page of its history into entries of
// {version, type, at, details: {…}, state: {…}}.
const kinds = {
  order: {
    label: 'Order',
    async page(id, offset) {
      const r = await api(`/api/v1/orders/${encodeURIComponent(id)}/history?limit=${PAGE}&offset=${offset}`);
      return { title: `Order ${id}`, entries: r.items.map((i) => ({ version: i.version, type: i.type, at: i.at, details: i.data || {}, state: i.state || {} })), more: r.items.length === (r.limit || PAGE) };
    },
  },
  product: {
    label: 'Product stock',
    async page(id, offset) {
      const r = await api(`/api/v1/inventory/${encodeURIComponent(id)}/history?limit=${PAGE}&offset=${offset}`);
      return {
        title: `Stock of product ${id}`,
        entries: r.history.map((m) => ({
          version: m.version, type: m.type, at: m.time,
          details: pick(m, ['orderId', 'quantity', 'delta', 'reason', 'userId']),
          state: { onHand: m.onHand, reserved: m.reserved, available: m.available, level: m.level },
        })),
        more: r.history.length === PAGE,
      };
    },
  },
  payment: {
    label: 'Payment ledger',
    // A payment id, or the id of the order it pays.
    async page(id) {
      let l;
      try {
        l = await api(`/api/v1/payments/${encodeURIComponent(id)}/ledger`);
      } catch (err) {
        if (err.status !== 404) throw err;
        const r = await api(`/api/v1/payments?orderId=${encodeURIComponent(id)}`).catch(() => ({ payments: [] }));
        if (!r.payments?.length) throw err;
        l = await api(`/api/v1/payments/${encodeURIComponent(r.payments[0].id)}/ledger`);
      }
      return {
        title: `Payment ${l.paymentId}`, orderId: l.orderId,
        entries: l.entries.map((e) => ({
          version: e.version, type: e.type, at: e.time,
          details: pick(e, ['amountCents', 'currency', 'authCode', 'code', 'reason']),
          state: { status: e.status, balanceCents: e.balanceCents },
        })),
        more: false,
      };
    },
  },
};

// pick returns the keys of o that are set (not empty, not zero).
function pick(o, keys) {
  const out = {};
  for (const k of keys) if (o[k] !== undefined && o[k] !== '' && o[k] !== 0) out[k] = o[k];
  return out;
}

const show = (v) => (v !== null && typeof v === 'object' ? JSON.stringify(v) : String(v));

let cur = null; // {kind, id, title, orderId, entries, more, at: selected index, asOf: {at, state} | null}

function parse(arg) {
  const i = arg.indexOf(':');
  if (i < 0) return { kind: 'order', id: arg, asOf: '' };
  const kind = kinds[arg.slice(0, i)] ? arg.slice(0, i) : 'order';
  let id = arg.slice(i + 1), asOf = '';
  const j = id.indexOf('@');
  if (j >= 0) [id, asOf] = [id.slice(0, j), id.slice(j + 1)];
  return { kind, id, asOf };
}

function details(d) {
  return Object.entries(d).map(([k, v]) => el('span', { class: 'kv' }, el('span', { class: 'muted' }, k + ' '), show(v)));
}

function renderState() {
  const { entries, at, asOf } = cur;
  const e = entries[at];
  const prev = at > 0 ? entries[at - 1].state : {};
  $('#history-pos').textContent = entries.length ? `${at + 1} of ${entries.length}${cur.more ? '+' : ''}` : '';
  $('#history-prev').disabled = at <= 0;
  $('#history-next').disabled = at >= entries.length - 1;
  for (const tr of document.querySelectorAll('#history-rows tr')) {
    const sel = Number(tr.dataset.index) === at;
    tr.classList.toggle('selected', sel);
    if (sel) tr.setAttribute('aria-current', 'step'); else tr.removeAttribute('aria-current');
  }
  if (!e) return;
  $('#history-state-title').replaceChildren(`After #${e.version} `, el('strong', {}, e.type), el('span', { class: 'muted small' }, ' at ' + new Date(e.at).toISOString()));
  $('#history-state').replaceChildren(...Object.entries(e.state).map(([k, v]) =>
    el('tr', { class: show(prev[k]) !== show(v) ? 'changed' : '', dataset: { field: k } }, el('th', {}, k), el('td', { class: 'mono' }, show(v)))));
  $('#history-asof-state').hidden = !asOf;
  if (asOf) {
    $('#history-asof-state').replaceChildren(el('h3', {}, `As of ${asOf.at}`),
      asOf.state
        ? el('table', { id: 'history-asof-table' }, Object.entries(asOf.state).map(([k, v]) => el('tr', { dataset: { field: k } }, el('th', {}, k), el('td', { class: 'mono' }, show(v)))))
        : el('p', { class: 'muted' }, 'The order did not exist yet.'));
  }
}

function step(to) {
  if (!cur || to < 0 || to >= cur.entries.length) return;
  cur.at = to;
  renderState();
  document.querySelector(`#history-rows tr[data-index="${to}"]`)?.scrollIntoView({ block: 'nearest' });
}

function renderRows() {
  $('#history-rows').replaceChildren(...cur.entries.map((e, i) => el('tr', { dataset: { index: i, version: e.version, type: e.type }, onclick: () => step(i) },
    el('td', { class: 'num' }, e.version), el('td', { class: 'small', title: new Date(e.at).toISOString() }, time(e.at)),
    el('td', {}, e.type), el('td', { class: 'small' }, details(e.details)))));
  $('#history-more').hidden = !cur.more;
}

async function loadMore() {
  try {
    const p = await kinds[cur.kind].page(cur.id, cur.entries.length);
    cur.entries.push(...p.entries);
    cur.more = p.more;
    renderRows();
    renderState();
  } catch (err) {
    $('#history-status').textContent = 'Failed: ' + err.message;
  }
}

async function load({ kind, id, asOf }) {
  const status = $('#history-status');
  status.textContent = 'Loading…';
  $('#history-body').hidden = true;
  try {
    const p = await kinds[kind].page(id, 0);
    cur = { kind, id, ...p, at: Math.max(p.entries.length - 1, 0), asOf: null };
    if (kind === 'order' && asOf) {
      // The state as the API answers it, and the last event at or before it.
      let state = null;
      try { state = await api(`/api/v1/orders/${encodeURIComponent(id)}?asOf=${encodeURIComponent(asOf)}`); } catch (err) { if (err.status !== 404) throw err; }
      cur.asOf = { at: asOf, state };
      const t = Date.parse(asOf);
      const before = cur.entries.filter((e) => Date.parse(e.at) <= t).length;
      cur.at = Math.max(before - 1, 0);
    }
    status.replaceChildren(el('strong', {}, cur.title), ` · ${cur.entries.length}${cur.more ? '+' : ''} event(s)`,
      cur.orderId ? el('span', {}, ' · order ', el('a', { href: '#history=order:' + cur.orderId }, cur.orderId)) : '',
      kind === 'order' ? el('span', {}, ' · ', el('a', { href: '#flow=' + id }, 'flow')) : '');
    $('#history-body').hidden = !cur.entries.length;
    renderRows();
    renderState();
  } catch (err) {
    cur = null;
    status.textContent = err.status === 404 ? `No ${kinds[kind].label.toLowerCase()} history for ${id}.` : 'Failed: ' + err.message;
  }
}

// toLocalInput turns an RFC 3339 instant into a datetime-local value (the
// browser's time zone).
function toLocalInput(iso) {
  const d = new Date(iso);
  if (isNaN(d)) return '';
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

function syncAsOf() {
  const order = $('#history-form [name=kind]').value === 'order';
  $('#history-asof').hidden = !order;
}

export function init() {
  $('#history-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const f = new FormData(e.target);
    const kind = f.get('kind'), id = f.get('id').trim();
    const local = f.get('asOf');
    const asOf = kind === 'order' && local ? new Date(local).toISOString() : '';
    location.hash = 'history=' + encodeURIComponent(`${kind}:${id}${asOf ? '@' + asOf : ''}`);
  });
  $('#history-form [name=kind]').addEventListener('change', syncAsOf);
  $('#history-prev').addEventListener('click', () => step(cur.at - 1));
  $('#history-next').addEventListener('click', () => step(cur.at + 1));
  $('#history-more').addEventListener('click', loadMore);
  $('#history-body').addEventListener('keydown', (e) => {
    if (e.key === 'ArrowLeft' || e.key === 'ArrowUp') { e.preventDefault(); step(cur.at - 1); }
    if (e.key === 'ArrowRight' || e.key === 'ArrowDown') { e.preventDefault(); step(cur.at + 1); }
  });
}

export function enter(arg) {
  const a = parse(arg);
  $('#history-form [name=kind]').value = a.kind;
  $('#history-form [name=id]').value = a.id;
  $('#history-form [name=asOf]').value = a.asOf ? toLocalInput(a.asOf) : '';
  syncAsOf();
  if (a.id) load(a);
  else {
    cur = null;
    $('#history-body').hidden = true;
    $('#history-status').textContent = 'Enter an order id, a product id or a payment id (or the id of the order it pays) to step through its history.';
  }
}
