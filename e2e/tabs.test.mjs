// Three tabs of one origin share one connection to herald, counted on the server's side, and
// keep receiving every message, once, when the tab holding the connection closes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cleanup, connectionsTo, launch, missing, publish, routePages, startHerald, tempDir, until } from './lib.mjs';

for (const mode of ['Web Locks', 'BroadcastChannel heartbeats']) {
  test(`three tabs share one connection (${mode})`, { skip: missing() || false }, async (t) => {
    const dir = tempDir();
    const herald = await startHerald({ dataDir: dir, engine: 'memory' });
    const browser = await launch();
    t.after(async () => { await browser.close(); await herald.stop(); cleanup(dir); });

    const context = await browser.newContext();
    if (mode !== 'Web Locks') {
      // A browser without Web Locks: the client falls back to heartbeats on the BroadcastChannel.
      await context.addInitScript(() => { Object.defineProperty(Navigator.prototype, 'locks', { get: () => undefined }); });
    }
    await routePages(context, herald.url);
    const tabs = [];
    for (let i = 0; i < 3; i++) {
      const page = await context.newPage();
      await page.goto(herald.url + '/__e2e/index.html');
      await page.waitForFunction(() => window.harnessReady);
      // Each tab subscribes to its own topic and a shared one: the leader streams the union.
      await page.evaluate((i) => window.startHerald(['tabs/all', `tabs/${i}`], { minBackoff: 100 }), i);
      tabs.push(page);
    }
    assert.equal(await tabs[0].evaluate(() => 'locks' in navigator && !!navigator.locks), mode === 'Web Locks');
    await until('one connection for three tabs', () => connectionsTo(herald.port) === 1, 10000);
    const leaders = async (pages) => (await Promise.all(pages.map((p) => p.evaluate(() => window.h.leader)))).filter(Boolean).length;
    assert.equal(await leaders(tabs), 1, 'exactly one leader');

    const ids = (page) => page.evaluate(() => window.got.herald.map((m) => m.id));
    const first = await publish(herald, { topic: 'tabs/all', data: 'to everyone' });
    const own = await publish(herald, { topic: 'tabs/2', data: 'to tab 2 only' });
    for (const [i, page] of tabs.entries()) {
      const want = i === 2 ? [first, own] : [first];
      await until(`tab ${i} to receive ${want}`, async () => (await ids(page)).length >= want.length);
      assert.deepEqual(await ids(page), want, `tab ${i}`);
    }

    // Close the leader; publish at once, before anyone has taken over.
    const leader = (await Promise.all(tabs.map((p) => p.evaluate(() => window.h.leader)))).indexOf(true);
    await tabs[leader].close();
    const rest = tabs.filter((_, i) => i !== leader);
    const during = await publish(herald, { topic: 'tabs/all', data: 'while nobody leads' });
    await until('a new leader', async () => (await leaders(rest)) === 1);
    const after = await publish(herald, { topic: 'tabs/all', data: 'after the takeover' });
    for (const page of rest) {
      await until('the survivors to receive both', async () => (await ids(page)).includes(after));
      const got = (await ids(page)).filter((id) => id !== own);
      assert.deepEqual(got, [first, during, after], 'no loss and no duplicate across the takeover');
    }
    await until('one connection again', () => connectionsTo(herald.port) === 1, 10000);
  });
}
