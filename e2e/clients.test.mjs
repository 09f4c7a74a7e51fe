// Native EventSource, @microsoft/fetch-event-source and herald.js receive the same events with
// the same ids from one real herald.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cleanup, launch, missing, publish, routePages, startHerald, tempDir, until } from './lib.mjs';

test('EventSource, fetch-event-source and herald.js agree', { skip: missing() || false }, async (t) => {
  const dir = tempDir();
  const herald = await startHerald({ dataDir: dir, engine: 'memory' });
  const browser = await launch();
  t.after(async () => { await browser.close(); await herald.stop(); cleanup(dir); });

  const context = await browser.newContext({ viewport: { width: 980, height: 420 } });
  await routePages(context, herald.url);
  const page = await context.newPage();
  page.on('pageerror', (e) => console.error('page error:', e));
  await page.goto(herald.url + '/__e2e/index.html');
  await page.waitForFunction(() => window.harnessReady);

  const topics = ['e2e/*'];
  await page.evaluate(async (topics) => {
    await Promise.all([
      window.startNative(topics, ['order.updated']),
      window.startFES(topics),
      window.startHerald(topics, { share: false }),
    ]);
  }, topics);

  const sent = [
    { topic: 'e2e/a', data: 'plain' },
    { topic: 'e2e/b', event: 'order.updated', data: '{"status":"paid"}' },
    { topic: 'e2e/a', data: 'two\nlines' },
    { topic: 'other', data: 'not subscribed' },
    { topics: ['e2e/a', 'e2e/b'], data: 'both topics, delivered once' },
  ];
  const ids = [];
  for (const m of sent) ids.push(await publish(herald, m));
  const want = ids.filter((_, i) => sent[i].topic !== 'other');

  const got = await until('every client to receive 4 messages', () => page.evaluate(() => {
    const g = window.got;
    return g.native.length >= 4 && g.fes.length >= 4 && g.herald.length >= 4 && g;
  })).catch(async (e) => {
    console.error(await page.evaluate(() => JSON.stringify({ got: window.got, statuses: window.statuses })));
    throw e;
  });
  for (const client of ['native', 'fes', 'herald']) {
    assert.deepEqual(got[client].map((m) => m.id), want, `${client} ids`);
    assert.deepEqual(got[client].map((m) => m.data), ['plain', '{"status":"paid"}', 'two\nlines', 'both topics, delivered once'], `${client} data`);
  }
  assert.deepEqual(got.native.map((m) => m.lastEventId), want, 'the SSE id field matches the envelope id');
  assert.deepEqual(got.fes.map((m) => m.lastEventId), want);
  assert.equal(got.herald[1].event, 'order.updated');

  const shot = join(tmpdir(), 'herald-e2e-clients.png');
  await page.screenshot({ path: shot });
  console.log('screenshot:', shot);
});
