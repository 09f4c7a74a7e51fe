// A herald restart in the middle of a stream: herald.js reconnects, resumes from its last id and
// receives what was published while it was away, or, when the log did not survive the restart
// (a memory log starts a new epoch), an explicit gap notice instead of a silent loss.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cleanup, launch, missing, publish, routePages, startHerald, tempDir, until } from './lib.mjs';

const epoch = (id) => id.slice(0, id.lastIndexOf('-'));

test('a server restart loses nothing silently', { skip: missing() || false }, async (t) => {
  const dir = tempDir();
  let herald = await startHerald({ dataDir: dir }); // the default, embedded engine
  const browser = await launch();
  t.after(async () => { await browser.close(); await herald.stop(); cleanup(dir); });

  const context = await browser.newContext();
  await routePages(context, herald.url); // the origin survives the restart: same port
  const page = await context.newPage();
  await page.goto(herald.url + '/__e2e/index.html');
  await page.waitForFunction(() => window.harnessReady);
  await page.evaluate(() => window.startHerald(['restart/*'], { share: false, minBackoff: 100, maxBackoff: 1000 }));

  const before = [];
  for (let i = 0; i < 3; i++) before.push(await publish(herald, { topic: 'restart/x', data: 'before ' + i }));
  await until('the first messages', () => page.evaluate((n) => window.got.herald.length >= n, before.length));

  // Offline, the page cannot reconnect before the messages below are published: only resuming
  // from its last id can deliver them.
  await context.setOffline(true);
  await herald.stop();
  herald = await startHerald({ dataDir: dir, port: herald.port });
  const during = [];
  for (let i = 0; i < 3; i++) during.push(await publish(herald, { topic: 'restart/x', data: 'during ' + i }));
  const durable = epoch(during[0]) === epoch(before[0]);
  if (!durable) console.log(`note: the log did not survive the restart (epoch ${epoch(before[0])} -> ${epoch(during[0])}): expecting a gap notice`);

  await context.setOffline(false);
  await until('the client to reconnect', () => page.evaluate(() => window.statuses.filter((s) => s.state === 'open').length >= 2));
  const after = await publish(herald, { topic: 'restart/x', data: 'after' });
  const got = await until('the message published after reconnecting', () => page.evaluate((id) => {
    const ids = window.got.herald.map((m) => m.id);
    return ids.includes(id) && { ids, gaps: window.gaps };
  }, after));

  if (durable) {
    assert.deepEqual(got.ids, [...before, ...during, after], 'every message once, in order');
    assert.deepEqual(got.gaps, []);
  } else {
    assert.deepEqual(got.ids, [...before, after], 'nothing from the lost log, nothing twice');
    assert.equal(got.gaps.length, 1, 'one gap notice');
    assert.equal(got.gaps[0].reason, 'epoch');
    assert.equal(got.gaps[0].lastEventId, before.at(-1), 'the gap names the last id the client had');
  }
});
