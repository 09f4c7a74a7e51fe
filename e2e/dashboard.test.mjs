// The dashboard and the ticker demo in headless Chromium against a real herald: the elements
// are there, the numbers move when a burst of messages is published, and screenshots are taken
// (written to $SCREENSHOT_DIR, or a temporary directory, and checked to be non-blank).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import http from 'node:http';
import { launch, missing, startHerald, until } from './lib.mjs';

const skip = missing();
const shots = process.env.SCREENSHOT_DIR || mkdtempSync(join(tmpdir(), 'herald-shots-'));
let herald, browser, dataDir;

/** POSTs a JSON array of messages in one request. */
function publishBatch(h, msgs) {
  return new Promise((resolve, reject) => {
    const req = http.request(h.url + '/publish', {
      method: 'POST', agent: false,
      headers: { 'Content-Type': 'application/json', Authorization: 'Bearer ' + h.key, Connection: 'close' },
    }, (res) => {
      let text = '';
      res.on('data', (b) => { text += b; });
      res.on('end', () => (res.statusCode === 200 ? resolve(JSON.parse(text)) : reject(new Error(`${res.statusCode} ${text}`))));
    });
    req.on('error', reject);
    req.end(JSON.stringify(msgs));
  });
}

async function screenshot(page, name) {
  const path = join(shots, name);
  await page.screenshot({ path, fullPage: true });
  // A blank page compresses to almost nothing; a rendered dashboard does not.
  assert.ok(statSync(path).size > 20000, `${path} is ${statSync(path).size} bytes: blank?`);
  console.log('screenshot:', path);
}

const number = (text) => {
  const m = text.replace(/,/g, '').match(/([\d.]+)\s*([kM]?)/);
  return m ? Number(m[1]) * ({ k: 1e3, M: 1e6 }[m[2]] || 1) : NaN;
};

before(async () => {
  if (skip) return;
  dataDir = mkdtempSync(join(tmpdir(), 'herald-e2e-'));
  herald = await startHerald({ dataDir, engine: 'memory' });
  browser = await launch();
});

after(async () => {
  await browser?.close();
  await herald?.stop();
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

test('dashboard shows live numbers that move with a burst', { skip: skip || false }, async () => {
  const page = await browser.newPage({ viewport: { width: 1280, height: 860 } });
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(herald.url + '/');
  await page.waitForFunction(() => document.getElementById('state').textContent === 'live');

  for (const id of ['conns', 'subs', 'pub-rate', 'del-rate', 'bytes-rate', 'chart', 'top', 'watch', 'publish', 'messages']) {
    assert.equal(await page.locator('#' + id).count(), 1, `#${id} missing`);
  }
  for (const href of ['/ticker.html', '/chat.html', '/herald.js']) {
    assert.equal(await page.locator(`a[href="${href}"]`).count() > 0, true, `no link to ${href}`);
  }

  // Subscribers from outside the page, then a burst spread over a few seconds.
  const streams = [];
  for (let i = 0; i < 3; i++) {
    const ctl = new AbortController();
    const r = await fetch(herald.url + '/events?topic=bench/a&topic=bench/b', { signal: ctl.signal });
    assert.equal(r.status, 200);
    streams.push(ctl);
  }
  const pubBefore = number(await page.locator('#pub-total').textContent());
  let sent = 0;
  let sawRate = false;
  for (let round = 0; round < 8; round++) {
    const batch = Array.from({ length: 100 }, (_, i) => ({ topic: 'bench/a', data: `m${round}-${i}` }));
    await publishBatch(herald, batch);
    sent += batch.length;
    await new Promise((r) => setTimeout(r, 300));
    if (number(await page.locator('#pub-rate').textContent()) > 0) sawRate = true;
  }
  await until('published total to include the burst', async () =>
    number(await page.locator('#pub-total').textContent()) >= pubBefore + sent);
  await until('a publish rate above zero', async () => sawRate || number(await page.locator('#pub-rate').textContent()) > 0);
  await until('connections to count the three streams and the page', async () =>
    number(await page.locator('#conns').textContent()) >= 4);
  await until('bench/a at the top of the topics', async () =>
    (await page.locator('#top tbody tr').first().textContent()).startsWith('bench/a'));
  assert.ok(number(await page.locator('#del-total').textContent()) >= sent * 3, 'delivered counts every subscriber');

  // The watch panel shows messages of the watched topic ("demo" by default), of any event type.
  await publishBatch(herald, [{ topic: 'demo', event: 'greeting', data: 'hello from the test' }]);
  await page.locator('#messages li', { hasText: 'hello from the test' }).waitFor();

  // The publish form posts with the key typed in.
  await page.fill('#pub-key', herald.key);
  await page.fill('#pub-data', 'typed in the form');
  await page.click('#publish button');
  await page.locator('#pub-result', { hasText: 'published as' }).waitFor();
  await page.locator('#messages li', { hasText: 'typed in the form' }).waitFor();

  await screenshot(page, 'dashboard.png');
  streams.forEach((c) => c.abort());
  assert.deepEqual(errors, []);
  await page.close();
});

test('ticker demo: many topics on one connection', { skip: skip || false }, async () => {
  const page = await browser.newPage({ viewport: { width: 1280, height: 720 } });
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  const events = [];
  page.on('request', (r) => { if (new URL(r.url()).pathname === '/events') events.push(r.url()); });
  await page.goto(herald.url + '/ticker.html');
  await page.waitForFunction(() => document.getElementById('state').textContent === 'live');
  assert.equal(events.length, 1, 'one /events connection');
  assert.ok(new URL(events[0]).searchParams.getAll('topic').length >= 10, 'many topics on it');

  const symbols = ['ACME', 'GLOBX', 'HOOLI', 'STARK'];
  await publishBatch(herald, symbols.map((s, i) => ({ topic: 'ticker/' + s, data: { price: 100 + i } })));
  await publishBatch(herald, symbols.map((s, i) => ({ topic: 'ticker/' + s, data: { price: 101.5 + i } })));
  for (const [i, s] of symbols.entries()) {
    await page.locator(`.tick[data-symbol="${s}"] .px`, { hasText: (101.5 + i).toFixed(2) }).waitFor();
  }
  assert.match(await page.locator(`.tick[data-symbol="ACME"] .chg`).textContent(), /^\+1\.50% since open/);

  // The simulated feed publishes with the key and the tiles keep moving.
  await page.fill('#key', herald.key);
  await page.click('#run');
  await page.locator('#feed-state', { hasText: 'published' }).waitFor();
  await until('the feed to update every quiet symbol', async () =>
    (await page.locator('.tick .px', { hasText: '–' }).count()) === 0);
  await page.click('#run');
  await screenshot(page, 'ticker.png');
  assert.deepEqual(errors, []);
  await page.close();
});
