// Browser test of the event-flow console: Debian's chromium driven by
// playwright-core against the real binary (`eventmart run` on a temporary
// data directory and a free port).
//
// It logs in as the admin, places an order through the API and watches its
// flow appear in the live stream, opens its sequence diagram (the ADR's
// steps, the order SHIPPED), looks at the topology and the topics, then
// restarts the product with shipping failing: a second order is
// dead-lettered and shows as stuck; restarted healthy, the dead letter is
// redriven with the console's button and the order ships. A webhook
// endpoint on a local receiver gets the first order's events, each
// attempt listed in the console's Webhooks tab. The History tab steps
// through the product's stock and the first order's payment. The scheduled
// export, set to run just after the start, shows its run in the Batch tab;
// the Region tab shows the process as the primary, with no replication.
// Three declined payments make one FraudSuspected in the Analytics tab,
// whose charts draw the orders.
//
//   EVENTMART_BIN   the binary (default ../../bin/eventmart)
//   CHROMIUM        the browser (default /usr/bin/chromium)
// It also reads the Charts and the Messages tabs, follows a stuck saga to its
// dead letter, and shoots every tab again at a phone's 390px width (the page
// must not scroll sideways). Screenshots go to test/browser/screenshots/
// (gitignored).
import { chromium } from 'playwright-core';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, createWriteStream } from 'node:fs';
import { createServer } from 'node:net';
import { createServer as createHTTPServer } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const BIN = process.env.EVENTMART_BIN || resolve(here, '../../bin/eventmart');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const SHOTS = join(here, 'screenshots');
const ADMIN = { email: 'admin@example.com', password: 'console admin passphrase' };
const TIMEOUT = 20000;
const started = Date.now();

const log = (...a) => console.log(`[${((Date.now() - started) / 1000).toFixed(1)}s]`, ...a);

function freePort() {
  return new Promise((ok, fail) => {
    const s = createServer();
    s.on('error', fail);
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => ok(port)); });
  });
}

// until polls fn until it returns a truthy value, or fails after TIMEOUT.
async function until(what, fn, timeout = TIMEOUT) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    try { const v = await fn(); if (v) return v; } catch (err) { last = err; }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? ': ' + last.message : ''}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

// App is one `eventmart run` process.
class App {
  constructor(dataDir, port, env = {}) { this.dataDir = dataDir; this.port = port; this.env = env; }

  async start(name) {
    const logFile = createWriteStream(join(this.dataDir, `${name}.log`));
    this.proc = spawn(BIN, ['run', '--data', this.dataDir, '--addr', `127.0.0.1:${this.port}`], {
      env: {
        PATH: process.env.PATH, HOME: process.env.HOME,
        EVENTMART_ADMIN_EMAIL: ADMIN.email, EVENTMART_ADMIN_PASSWORD: ADMIN.password, EVENTMART_LOG_LEVEL: 'warn',
        ...this.env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.proc.stdout.pipe(logFile);
    this.proc.stderr.pipe(logFile);
    this.exited = new Promise((r) => this.proc.on('exit', (code, signal) => r({ code, signal })));
    await until(`${name} to be ready`, async () => (await fetch(`http://127.0.0.1:${this.port}/readyz`)).ok);
    log(`${name} ready on port ${this.port}`);
  }

  async stop() {
    if (!this.proc || this.proc.exitCode !== null) return;
    this.proc.kill('SIGTERM');
    const { code } = await this.exited;
    assert.equal(code, 0, 'eventmart exits 0 on SIGTERM (console streams must not hold the shutdown up)');
  }
}

// api calls the gateway as a client would.
async function api(base, method, path, token, body) {
  const headers = { 'Content-Type': 'application/json' };
  if (token) headers.Authorization = 'Bearer ' + token;
  const resp = await fetch(base + '/api/v1' + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await resp.text();
  return { status: resp.status, headers: resp.headers, body: text ? JSON.parse(text) : null };
}

async function must(base, method, path, token, body, want) {
  const r = await api(base, method, path, token, body);
  assert.equal(r.status, want, `${method} ${path}: ${r.status} ${JSON.stringify(r.body)}`);
  return r;
}

// placeOrder orders one unit of product as the customer; it returns the
// order id and its correlation id.
async function placeOrder(base, token, product, card = '4242424242424242') {
  const r = await must(base, 'POST', '/orders', token, {
    items: [{ productId: product, quantity: 1 }], payment: { card },
    shippingAddress: { name: 'Ada', line1: '1 Main St', city: 'London', postalCode: 'N1', country: 'GB' },
  }, 202);
  return { order: r.body.id, correlation: r.headers.get('x-correlation-id') };
}

async function orderStatus(base, token, id) {
  return (await must(base, 'GET', '/orders/' + id, token, undefined, 200)).body.status;
}

async function main() {
  const dataDir = mkdtempSync(join(tmpdir(), 'eventmart-browser-'));
  rmSync(SHOTS, { recursive: true, force: true });
  mkdirSync(SHOTS, { recursive: true });
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  // The scheduled export runs ten seconds after the first start (its time
  // is a duration past midnight UTC; past 24h it is the next day's).
  const exportAt = Math.floor((Date.now() % 86400000) / 1000) + 10;
  // Three partitions per topic (the embedded log's default is one): the
  // Topics tab shows the log's count and a group's lag per partition.
  const fast = { EVENTMART_LOG_PARTITIONS: '3', EVENTMART_RETRY_DELAYS: '100ms', EVENTMART_RETRY_ATTEMPTS: '2', EVENTMART_WEBHOOK_ALLOW: '127.0.0.1/32',
    EVENTMART_EXPORT_DIR: join(dataDir, 'exports'), EVENTMART_EXPORT_AT: `${exportAt}s` };
  // A webhook receiver on loopback: it answers 204 and keeps the webhook-ids.
  const hooks = [];
  const receiver = createHTTPServer((req, res) => { req.resume(); req.on('end', () => { hooks.push(req.headers['webhook-id']); res.writeHead(204).end(); }); });
  await new Promise((ok) => receiver.listen(0, '127.0.0.1', ok));
  let app = new App(dataDir, port, fast);
  const profile = mkdtempSync(join(tmpdir(), 'eventmart-chromium-'));
  let browser;
  const problems = [];
  try {
    await app.start('eventmart');
    // A fresh profile (--user-data-dir) in a temporary directory.
    browser = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      viewport: { width: 1440, height: 1000 },
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
        '--disable-component-update', '--disable-sync'],
    });
    const page = browser.pages()[0] || await browser.newPage();
    page.setDefaultTimeout(TIMEOUT);
    page.on('pageerror', (err) => problems.push('page error: ' + err.message));
    page.on('requestfailed', (req) => {
      // Streams are aborted on purpose when leaving the view or on restarts.
      if (!req.url().includes('/admin/stream')) problems.push(`request failed: ${req.url()} ${req.failure()?.errorText}`);
    });
    page.on('request', (req) => { if (!req.url().startsWith(base)) problems.push('request outside the gateway: ' + req.url()); });
    // 404s the console asks for on purpose: the History tab tries an id as a
    // payment's before reading it as the id of the order it pays, and an
    // order "as of" an instant before it existed is not found.
    const expected404 = [/\/api\/v1\/payments\/[^/]+\/ledger$/, /\/api\/v1\/orders\/[^/?]+\?asOf=2000-01-01/];
    page.on('response', (resp) => {
      if (resp.status() === 404 && !expected404.some((re) => re.test(resp.url()))) problems.push('404: ' + resp.url());
    });
    // Redrive and discard ask for a confirmation: accept it, and keep what it said.
    const dialogs = [];
    page.on('dialog', (d) => { dialogs.push(d.message()); d.accept(); });
    await page.setViewportSize({ width: 1280, height: 900 });
    const shot = async (name) => {
      const path = join(SHOTS, name + '.png');
      await page.screenshot({ path, fullPage: true });
      log('screenshot', path);
    };

    // Log in: a customer is refused, the admin gets the console.
    await page.goto(base + '/console');
    await page.locator('#login-form').waitFor();
    await page.fill('#login-form [name=email]', ADMIN.email);
    await page.fill('#login-form [name=password]', 'wrong password');
    await page.click('#login-form button[type=submit]');
    await page.locator('#login-error', { hasText: '401' }).waitFor();
    await page.fill('#login-form [name=password]', ADMIN.password);
    await page.click('#login-form button[type=submit]');
    await page.locator('#stream-status', { hasText: 'Live' }).waitFor();
    log('logged in; the live stream is connected');

    // Set up a product and a customer through the API, as a user would with curl.
    const admin = (await must(base, 'POST', '/auth/token', '', ADMIN, 200)).body.token;
    const product = (await must(base, 'POST', '/products', admin, { sku: 'MUG-1', name: 'Mug', priceCents: 1200, currency: 'EUR' }, 201)).body.id;
    await until('inventory to know the product', async () => (await api(base, 'PUT', '/inventory/' + product, admin, { onHand: 10 })).status === 200);
    const customer = { email: 'ada@example.com', password: 'a long passphrase', name: 'Ada' };
    await must(base, 'POST', '/users', '', customer, 201);
    const token = (await must(base, 'POST', '/auth/token', '', { email: customer.email, password: customer.password }, 200)).body.token;
    await until('the welcome notification', async () => JSON.stringify((await api(base, 'GET', '/notifications', token)).body).includes('welcome'));

    const endpoint = (await must(base, 'POST', '/webhooks/endpoints', admin,
      { url: `http://127.0.0.1:${receiver.address().port}/hooks`, eventTypes: ['OrderCreated', 'OrderShipped'], description: 'ERP' }, 201)).body;

    // An order flows through the services: the stream shows its steps.
    const first = await placeOrder(base, token, product);
    log('placed order', first.order);
    const saga = ['OrderCreated', 'InventoryReserved', 'PaymentProcessed', 'ShippingCreated', 'OrderShipped', 'NotificationSent']; // the e-mail follows OrderShipped
    for (const type of saga) {
      await page.locator(`#stream-rows tr[data-correlation="${first.correlation}"][data-type="${type}"]`).first().waitFor();
    }
    await until('the order to ship', async () => (await orderStatus(base, token, first.order)) === 'SHIPPED');
    log('the stream showed the saga; the order SHIPPED');
    await shot('1-live-stream');

    // Its sequence diagram, from the stream's link.
    await page.locator(`#stream-rows tr[data-correlation="${first.correlation}"][data-type="OrderCreated"] a`).click();
    await page.locator('#flow-order', { hasText: 'SHIPPED' }).waitFor();
    const labels = await page.locator('#flow-diagram svg g.row').evaluateAll((gs) => gs.map((g) => g.dataset.label));
    let at = -1;
    for (const type of ['POST /orders', ...saga]) {
      const i = labels.indexOf(type, at + 1);
      assert.ok(i > at, `the diagram shows ${type} after the steps before it: ${labels.join(' | ')}`);
      at = i;
    }
    assert.ok(labels.includes('InventoryReserved') && labels.filter((l) => l === 'OrderCreated').length >= 2, 'OrderCreated is published and delivered');
    await shot('2-sequence-diagram');

    await page.click('#tabs a[data-tab=topology]');
    await page.locator('#topology-diagram svg .edge.pub').first().waitFor();
    const topoText = await page.locator('#topology-pub').innerText();
    assert.match(topoText, /order\s+OrderCreated\s+order-events/);
    // Every topic has a node (audit-events too, where the audit service's
    // subscriptions start); rates sit on their edges, over the lines.
    await page.locator('#topology-diagram svg .node.topic.audit').waitFor();
    assert.ok(await page.locator('#topology-diagram svg .labels .edge-tag').count() > 0, 'edge labels drawn');
    await shot('3-topology');

    // Charts over the process's sample history (a sample every 10s).
    await page.click('#tabs a[data-tab=charts]');
    await until('a chart sample', async () => {
      await page.click('#charts-form button[type=submit]');
      return /^Source: this process, [1-9]\d* samples/.test(await page.locator('#charts-status').innerText());
    }, 40000);
    // Without a Prometheus, the longer ranges are not offered.
    assert.ok(await page.locator('#charts-form [name=range] option[value="24h"]').evaluate((o) => o.hidden && o.disabled), '24h offered without Prometheus');
    await page.locator('#legend-events .k', { hasText: 'order-events' }).waitFor();
    await shot('3b-charts');

    // The message browser: the order's records by key, an envelope, its flow.
    await page.click('#tabs a[data-tab=messages]');
    await page.locator('#messages-form [name=topic] option[value="order-events"]').waitFor({ state: 'attached' });
    await page.selectOption('#messages-form [name=topic]', 'order-events');
    await page.fill('#messages-form [name=key]', first.order);
    await page.click('#messages-form button[type=submit]');
    await page.locator('#messages-rows tr', { hasText: 'OrderCreated' }).first().click();
    await page.locator('#messages-inspect', { hasText: first.order }).waitFor();
    await shot('3c-messages');
    await page.locator('#messages-rows tr', { hasText: 'OrderCreated' }).first().locator('a').click();
    await page.locator('#flow-order', { hasText: 'SHIPPED' }).waitFor();

    await page.click('#tabs a[data-tab=topics]');
    await page.locator('#topics-rows tr[data-topic="order-events"] .group-name', { hasText: 'payment-service' }).waitFor();
    await until('every group to catch up', async () => (await page.locator('#topics-rows .badge.lag').count()) === 0);
    assert.equal(await page.locator('#topics-rows tr[data-topic="order-events"] td').nth(1).innerText(), '3');
    await page.locator('#topics-rows tr[data-topic="order-events"] details').first().click();
    await shot('4-topics-lag');

    // The webhook deliveries of the first order, each with its attempt.
    await until('two webhook deliveries', async () => hooks.length >= 2);
    await page.click('#tabs a[data-tab=webhooks]');
    await page.locator('#webhooks-form [name=endpoint] option', { hasText: 'ERP' }).waitFor({ state: 'attached' });
    for (const type of ['OrderCreated', 'OrderShipped']) {
      await page.locator('#webhooks-rows tr[data-status=delivered]', { hasText: type }).locator('ol.attempts li.ok', { hasText: '204' }).waitFor();
    }
    await page.click('#webhooks-test');
    await page.locator('#webhooks-status', { hasText: 'delivered (204' }).waitFor();
    assert.ok(hooks.some((id) => id.startsWith('msg_test_')), 'the test message reached the receiver');
    assert.equal(endpoint.secret.startsWith('whsec_'), true);
    await shot('4b-webhooks');

    // History: the product's stock and the first order's payment, stepped
    // through event by event, the state after each beside it. The Flow tab
    // links the order to its history.
    await page.goto(`${base}/console/#flow=${first.correlation}`);
    await page.locator('#flow-order', { hasText: 'SHIPPED' }).waitFor();
    assert.equal(await page.locator('#flow-history').getAttribute('href'), '#history=order:' + first.order);
    await page.click('#tabs a[data-tab=history]');
    await page.selectOption('#history-form [name=kind]', 'product');
    assert.equal(await page.locator('#history-asof').isHidden(), true, '"as of" is for orders only');
    await page.fill('#history-form [name=id]', product);
    await page.click('#history-form button[type=submit]');
    const stockSteps = ['StockRegistered', 'StockAdjusted', 'StockReserved', 'StockShipped'];
    await until('the stock history', async () => (await page.locator('#history-rows tr').count()) === stockSteps.length);
    assert.deepEqual(await page.locator('#history-rows tr').evaluateAll((trs) => trs.map((tr) => tr.dataset.type)), stockSteps);
    const stateOf = () => page.locator('#history-state tr').evaluateAll((trs) => Object.fromEntries(trs.map((tr) => [tr.dataset.field, tr.querySelector('td').textContent])));
    // The latest state first: shipped, one unit off the shelf.
    await page.locator('#history-rows tr.selected[data-type=StockShipped]').waitFor();
    assert.deepEqual(await stateOf(), { onHand: '9', reserved: '0', available: '9', level: '3' });
    assert.equal(await page.locator('#history-pos').innerText(), '4 of 4');
    assert.equal(await page.locator('#history-next').isDisabled(), true);
    await page.click('#history-prev');
    await page.locator('#history-rows tr.selected[data-type=StockReserved]').waitFor();
    assert.deepEqual(await stateOf(), { onHand: '10', reserved: '1', available: '9', level: '2' });
    assert.deepEqual(await page.locator('#history-state tr.changed').evaluateAll((trs) => trs.map((tr) => tr.dataset.field)), ['reserved', 'available', 'level']);
    await page.locator('#history-rows tr[data-type=StockAdjusted]').click();
    assert.deepEqual(await stateOf(), { onHand: '10', reserved: '0', available: '10', level: '1' });
    await page.setViewportSize({ width: 1280, height: 900 });
    await shot('4c-history-stock-1280');
    await page.setViewportSize({ width: 390, height: 844 });
    await shot('4d-history-stock-390');
    await page.setViewportSize({ width: 1440, height: 1000 });

    // The payment, found from the order's id; then by its own id.
    await page.selectOption('#history-form [name=kind]', 'payment');
    await page.fill('#history-form [name=id]', first.order);
    await page.click('#history-form button[type=submit]');
    await page.locator('#history-rows tr[data-type=ChargeCaptured]').waitFor();
    const ledgerSteps = await page.locator('#history-rows tr').evaluateAll((trs) => trs.map((tr) => tr.dataset.type));
    assert.deepEqual(ledgerSteps.filter((t) => t.startsWith('Charge')), ['ChargeAuthorised', 'ChargeCaptured'], ledgerSteps.join(' '));
    const captured = await page.locator('#history-rows tr[data-type=ChargeCaptured]').innerText();
    const paid = captured.match(/amountCents (\d+)/)[1];
    assert.deepEqual(await stateOf(), { status: 'processed', balanceCents: paid });
    const paymentTitle = await page.locator('#history-status strong').innerText();
    assert.match(paymentTitle, /^Payment [0-9a-f-]{36}$/);
    await page.click('#history-prev');
    await page.locator('#history-rows tr.selected[data-type=ChargeAuthorised]').waitFor();
    assert.deepEqual(await stateOf(), { status: 'awaiting', balanceCents: '0' });
    await page.setViewportSize({ width: 1280, height: 900 });
    await shot('4e-history-payment-1280');
    await page.goto(`${base}/console/#history=payment:${paymentTitle.slice('Payment '.length)}`);
    await page.locator('#history-rows tr.selected[data-type=ChargeCaptured]').waitFor();
    await page.locator('#history-status a', { hasText: first.order }).waitFor();
    await page.setViewportSize({ width: 390, height: 844 });
    await shot('4f-history-payment-390');
    await page.setViewportSize({ width: 1440, height: 1000 });
    log('the History tab stepped through the stock and the payment');

    // The first order's own history: placed PENDING, then SHIPPED at its
    // last event; as of now it is SHIPPED, as of a time before it was
    // placed it did not exist.
    await page.goto(`${base}/console/#history=order:${first.order}`);
    await page.locator('#history-rows tr.selected[data-type=OrderDispatched]').waitFor();
    const orderSteps = await page.locator('#history-rows tr').evaluateAll((trs) => trs.map((tr) => tr.dataset.type));
    assert.equal(orderSteps[0], 'OrderPlaced', orderSteps.join(' '));
    assert.equal((await stateOf()).status, 'SHIPPED');
    await page.locator('#history-rows tr[data-type=OrderPlaced]').click();
    assert.equal((await stateOf()).status, 'PENDING');
    await page.goto(`${base}/console/#history=order:${first.order}@${new Date().toISOString()}`);
    await page.locator('#history-asof-table tr[data-field=status] td', { hasText: 'SHIPPED' }).waitFor();
    await page.setViewportSize({ width: 1280, height: 900 });
    await shot('4h-history-order-1280');
    await page.goto(`${base}/console/#history=order:${first.order}@2000-01-01T00:00:00.000Z`);
    await page.locator('#history-asof-state', { hasText: 'The order did not exist yet.' }).waitFor();
    await page.setViewportSize({ width: 1440, height: 1000 });
    log('the History tab stepped through the order and read it as of an instant');

    // The scheduled export's last run, lag and failures (Batch tab).
    await page.click('#tabs a[data-tab=batch]');
    await page.locator('#batch-rows td[data-result=ok]').waitFor({ timeout: 3 * TIMEOUT });
    assert.equal(await page.locator('#batch-rows td[data-failures]').getAttribute('data-failures'), '0');
    const lag = Number(await page.locator('#batch-rows td[data-lag]').getAttribute('data-lag'));
    assert.ok(lag > 0 && lag <= 86400 + 60, `the lag is how long ago the day exported ended: ${lag} s`);
    assert.match(await page.locator('#batch-status').innerText(), /Last run ok; 0 failure\(s\) in 1 run\(s\)/);
    await shot('4g-batch');

    // Region: on the embedded bus this process is the primary and nothing
    // replicates into it; logins are served here.
    await page.click('#tabs a[data-tab=region]');
    await page.locator('#region-rows td[data-role=primary]').waitFor();
    assert.match(await page.locator('#region-status').innerText(), /primary\. On the embedded bus there is no cross-region replication/);
    assert.equal(await page.locator('#region-rows tr[data-field=Logins] td').innerText(), 'served here');
    assert.equal(await page.locator('#region-rows tr[data-field="Writes refused"]').count(), 0, 'a primary refuses no writes');
    assert.match(await page.locator('#region-lag-status').innerText(), /measured by a standby only/);
    assert.equal(await page.locator('#region-lag-table').isHidden(), true, 'no lag table in a primary');
    await shot('4i-region');

    // Analytics: three declined payments of one customer make one
    // FraudSuspected; the charts and figures show the four orders; the
    // detection's evidence opens the flow of a declined order.
    for (let i = 0; i < 3; i++) await placeOrder(base, token, product, '4000000000000002'); // the simulated provider declines it
    await page.click('#tabs a[data-tab=analytics]');
    await page.locator('#analytics-detections tr[data-rule=FraudSuspected]').waitFor();
    await page.locator('#analytics-total-orders', { hasText: /^4 \(48\.00 EUR/ }).waitFor();
    assert.equal(await page.locator('#analytics-detections tr[data-rule=FraudSuspected]').count(), 1, 'one FraudSuspected');
    assert.equal(await page.locator('#analytics-detections tr[data-rule=FraudSuspected] a.evidence').count(), 3, 'three pieces of evidence');
    assert.ok(await page.locator('#analytics-chart-orders rect').count() >= 1, 'the orders chart has bars');
    assert.ok(await page.locator('#analytics-chart-funnel polyline').count() === 4, 'the funnel chart has its four lines');
    await page.locator('#analytics-total-shipped', { hasText: /^1 shipped: p50 / }).waitFor(); // the first order; the declined ones never ship
    assert.equal(await page.locator('#analytics-chart-shipped polyline').count(), 2, 'the order → shipped chart has its p50 and p95 lines');
    await shot('4c-analytics');
    await page.locator('#analytics-detections tr[data-rule=FraudSuspected] a.evidence').first().click();
    await page.locator('#flow-diagram svg g.row[data-label="PaymentFailed"]').first().waitFor();
    await shot('4d-fraud-evidence-flow');
    log('analytics: one FraudSuspected, its evidence opens the flow');
    // A view that does not poll while the product restarts — once the
    // deliveries it reads on entering have come: the rows of an earlier
    // visit are still there, and the product must not stop under that read.
    await Promise.all([
      page.waitForResponse((r) => r.url().includes('/deliveries?limit=100')),
      page.click('#tabs a[data-tab=webhooks]'),
    ]);
    await page.locator('#webhooks-rows tr[data-status=delivered]').first().waitFor();

    // Break shipping: the next order is dead-lettered and stuck CONFIRMED.
    await app.stop();
    app = new App(dataDir, port, { ...fast, EVENTMART_FAIL_EVENTS: 'shipping:PaymentProcessed' });
    await app.start('eventmart (shipping failing)');
    const second = await placeOrder(base, token, product);
    log('placed order', second.order, 'with shipping failing');
    await until('the dead letter', async () => JSON.stringify((await api(base, 'GET', '/admin/dlq/shipping?status=dead', admin)).body).includes(second.correlation));
    await page.goto(`${base}/console/#flow=${second.correlation}`);
    await page.locator('#flow-order', { hasText: 'CONFIRMED' }).waitFor();
    await page.locator('#flow-diagram g.row.failure', { hasText: 'dead letter' }).waitFor();
    await shot('5-sequence-dead-letter');

    await page.click('#tabs a[data-tab=sagas]');
    await page.fill('#sagas-form [name=stuckAfter]', '1s');
    await page.click('#sagas-form button[type=submit]');
    await page.locator('#sagas-rows tr.stuck', { hasText: second.order }).waitFor();
    assert.equal(await page.locator('#sagas-rows tr.stuck', { hasText: second.order }).locator('a.history-link').getAttribute('href'), '#history=order:' + second.order);
    await shot('6-sagas-stuck');
    // The stuck saga links to its dead letter.
    await page.locator('#sagas-rows tr.stuck', { hasText: second.order }).getByRole('link', { name: 'dead letters' }).click();
    await page.locator('#dlq-status', { hasText: `1 dead letter(s) of flow ${second.correlation}` }).waitFor();

    // Heal shipping and redrive the dead letter with the button.
    await app.stop();
    app = new App(dataDir, port, fast);
    await app.start('eventmart (healed)');
    await page.click('#tabs a[data-tab=dlq]');
    const row = page.locator('#dlq-rows tr[data-status=dead]', { hasText: second.correlation });
    await row.waitFor();
    await page.locator('#dlq-total', { hasText: 'across services: shipping 1' }).waitFor();
    await row.getByRole('button', { name: 'Inspect' }).click();
    await page.locator('#dlq-inspect', { hasText: 'PaymentProcessed' }).waitFor();
    await shot('7-dead-letter-inspect');
    await row.getByRole('button', { name: 'Redrive' }).click();
    await page.locator('#dlq-status', { hasText: 'Redriven letter' }).waitFor();
    assert.ok(dialogs.some((m) => m.startsWith('Redrive letter')), `a confirmation before the redrive: ${dialogs}`);
    await until('the redriven order to ship', async () => (await orderStatus(base, token, second.order)) === 'SHIPPED');
    log('redriven; the second order SHIPPED');
    await page.goto(`${base}/console/#flow=${second.correlation}`);
    await page.locator('#flow-order', { hasText: 'SHIPPED' }).waitFor();
    await page.locator('#flow-diagram g.row.failure', { hasText: 'dead letter' }).waitFor();
    await page.locator('#flow-diagram .note.failure', { hasText: 'redriven' }).waitFor();
    await page.locator('#flow-diagram g.row.done', { hasText: 'OrderShipped' }).waitFor();
    await shot('8-sequence-redriven');

    // At a phone's 390px the page does not scroll sideways: wide tables
    // scroll inside their box.
    await page.setViewportSize({ width: 390, height: 844 });
    for (const tab of ['stream', 'charts', 'messages', 'topology', 'topics', 'sagas', 'dlq', 'region']) {
      await page.goto(`${base}/console/#${tab}`);
      await page.locator('#view-' + tab).waitFor();
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      assert.ok(overflow <= 1, `#${tab} at 390px scrolls the page sideways by ${overflow}px`);
      await shot('390-' + tab);
    }

    assert.deepEqual(problems, [], 'no page errors, no failed requests, nothing loaded from outside the gateway');
    log(`passed; screenshots in ${SHOTS}`);
  } finally {
    receiver.close();
    await browser?.close();
    await app.stop().catch((err) => console.error('stop:', err.message));
    rmSync(profile, { recursive: true, force: true });
    if (process.exitCode) console.error(`logs kept in ${dataDir}`);
    else rmSync(dataDir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error('FAIL:', err.stack || err.message);
  process.exitCode = 1;
});
