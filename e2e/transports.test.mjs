// herald.js over every transport against a real herald: WebSocket and long polling deliver what
// SSE delivers, with the same ids; a restart on the same data dir loses nothing; publishing over
// WebSocket works and a refusal carries the server's error code; 'auto' falls back to long
// polling when streaming is blocked; and tabs share one WebSocket.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { cleanup, connectionsTo, launch, missing, publish, routePages, startHerald, tempDir, until } from './lib.mjs';

const skip = missing() || false;
const epoch = (id) => id.slice(0, id.lastIndexOf('-'));

/**
 * A context whose pages are served on herald's origin. Chromium's Local Network Access checks
 * treat a page fulfilled by Playwright's router as public and block its WebSockets to loopback
 * (net::ERR_BLOCKED_BY_LOCAL_NETWORK_ACCESS_CHECKS); a real deployment serves the page from a
 * real origin, so the test grants what that origin would have.
 */
async function newContext(browser, herald, options = {}) {
  const context = await browser.newContext({ viewport: { width: 1100, height: 520 }, permissions: ['local-network-access'], ...options });
  await routePages(context, herald.url);
  return context;
}

async function openPage(context, herald) {
  const page = await context.newPage();
  page.on('pageerror', (e) => console.error('page error:', e));
  await page.goto(herald.url + '/__e2e/transports.html');
  await page.waitForFunction(() => window.pageReady);
  return page;
}

/** Mints a token with `herald token`, signed with the secret serve generated in dir. */
async function token(dir, ...args) {
  const { stdout } = await promisify(execFile)(process.env.HERALD_BIN, ['token', '--data-dir', dir, '--ttl', '1h', ...args]);
  return stdout.trim();
}

async function screenshot(page, name) {
  const shot = join(tmpdir(), `herald-e2e-${name}.png`);
  await page.screenshot({ path: shot, fullPage: true });
  console.log('screenshot:', shot);
}

/** What each client received, once every one of them has at least n messages. */
function received(page, names, n) {
  return until(`${names.join(', ')} to receive ${n} messages`, () => page.evaluate(({ names, n }) =>
    names.every((c) => window.got[c].length >= n) && window.got, { names, n }))
    .catch(async (e) => {
      console.error(await page.evaluate(() => JSON.stringify({ got: window.got, statuses: window.statuses })));
      throw e;
    });
}

test('WebSocket and long polling deliver what SSE delivers, with the same ids', { skip, timeout: 60000 }, async (t) => {
  const dir = tempDir();
  const herald = await startHerald({ dataDir: dir, engine: 'memory' });
  const browser = await launch();
  t.after(async () => { await browser.close(); await herald.stop(); cleanup(dir); });
  const page = await openPage(await newContext(browser, herald), herald);

  const names = ['fetch', 'ws', 'poll'];
  await page.evaluate((names) => Promise.all(names.map((n) => window.start(n, ['e2e/*'], { transport: n, share: false }))), names);

  const sent = [
    { topic: 'e2e/a', data: 'plain' },
    { topic: 'e2e/b', event: 'order.updated', data: { status: 'paid' } },
    { topic: 'e2e/a', data: 'two\nlines\r\nand a CRLF' },
    { topic: 'other', data: 'not subscribed' },
    { topics: ['e2e/a', 'e2e/b'], data: 'both topics, delivered once' },
    { topic: 'e2e/c', data: 'ünïcödé ✓' },
  ];
  const ids = [];
  for (const m of sent) ids.push(await publish(herald, m));
  const want = ids.filter((_, i) => sent[i].topic !== 'other');

  const got = await received(page, names, want.length);
  for (const n of names) {
    assert.deepEqual(got[n].map((m) => m.id), want, `${n}: ids`);
    assert.deepEqual(got[n], got.fetch, `${n}: every field as SSE delivers it`);
  }
  assert.deepEqual(got.ws.map((m) => m.data), ['plain', '{"status":"paid"}', 'two\nlines\r\nand a CRLF', 'both topics, delivered once', 'ünïcödé ✓']);
  assert.equal(got.ws[1].event, 'order.updated');
  assert.deepEqual(got.poll[3].topics, ['e2e/a', 'e2e/b']);
  assert.deepEqual(await page.evaluate(() => window.gaps), { fetch: [], ws: [], poll: [] });
  await screenshot(page, 'transports');
});

test('over WebSocket and long polling, a restart on the same data dir loses nothing', { skip, timeout: 60000 }, async (t) => {
  const dir = tempDir();
  let herald = await startHerald({ dataDir: dir }); // the default, embedded engine
  const browser = await launch();
  t.after(async () => { await browser.close(); await herald.stop(); cleanup(dir); });
  const context = await newContext(browser, herald); // the origin survives the restart: same port
  const page = await openPage(context, herald);

  // The quiet clients receive nothing before the restart: only the position the server gave
  // when they subscribed tells them where to resume.
  const names = ['ws', 'poll'], quiet = ['ws quiet', 'poll quiet'];
  await page.evaluate(({ names, quiet }) => Promise.all([
    ...names.map((n) => window.start(n, ['restart/*'], { transport: n, share: false, minBackoff: 100, maxBackoff: 1000 })),
    ...quiet.map((n) => window.start(n, ['quiet/*'], { transport: n.split(' ')[0], share: false, minBackoff: 100, maxBackoff: 1000 })),
  ]), { names, quiet });

  const before = [];
  for (let i = 0; i < 3; i++) before.push(await publish(herald, { topic: 'restart/x', data: 'before ' + i }));
  await received(page, names, before.length);

  // Offline, the page cannot reconnect before the messages below are published: only resuming
  // from its last id can deliver them.
  await context.setOffline(true);
  await herald.stop();
  herald = await startHerald({ dataDir: dir, port: herald.port });
  const during = [];
  for (let i = 0; i < 3; i++) during.push(await publish(herald, { topic: 'restart/x', data: 'during ' + i }));
  const quietDuring = await publish(herald, { topic: 'quiet/x', data: 'while the quiet ones were away' });
  assert.equal(epoch(during[0]), epoch(before[0]), 'the default engine keeps its log across a restart');
  await context.setOffline(false);

  await until('every client to reconnect', () => page.evaluate((names) =>
    names.every((n) => window.statuses[n].filter((s) => s.state === 'open').length >= 2), [...names, ...quiet]));
  const after = await publish(herald, { topic: 'restart/x', data: 'after' });
  const got = await received(page, names, before.length + during.length + 1);
  for (const n of names) {
    assert.deepEqual(got[n].map((m) => m.id), [...before, ...during, after], `${n}: every message once, in order`);
    assert.ok(got[n].slice(3, 6).every((m, i) => m.data === 'during ' + i), `${n}: the messages published while it was away`);
  }
  const quietGot = await received(page, quiet, 1);
  for (const n of quiet) assert.deepEqual(quietGot[n].map((m) => m.id), [quietDuring], `${n}: the message published while it was away`);
  assert.deepEqual(await page.evaluate(() => window.gaps), { ws: [], poll: [], 'ws quiet': [], 'poll quiet': [] });
  const reconnects = await page.evaluate((names) => names.map((n) => window.statuses[n].filter((s) => s.state === 'reconnecting').length), names);
  assert.ok(reconnects.every((r) => r >= 1), `each client reconnected (reconnecting statuses: ${reconnects})`);
});

test('publishing over WebSocket: ids, and refusals with the server\'s error code', { skip, timeout: 60000 }, async (t) => {
  const dir = tempDir();
  const herald = await startHerald({ dataDir: dir, engine: 'memory' });
  const browser = await launch();
  t.after(async () => { await browser.close(); await herald.stop(); cleanup(dir); });
  const page = await openPage(await newContext(browser, herald), herald);

  const writer = await token(dir, '--sub', 'page', '--publish', 'chat/*', '--subscribe', 'chat/*');
  const reader = await token(dir, '--sub', 'reader', '--subscribe', 'chat/*');
  await page.evaluate(async ({ writer, reader }) => {
    await window.start('sse', ['chat/*'], { transport: 'fetch', share: false });
    await window.start('ws', ['chat/*'], { transport: 'ws', share: false, token: writer });
    await window.start('reader', ['chat/*'], { transport: 'ws', share: false, token: reader });
    window.make('fetch+ws', { transport: 'fetch', share: false, token: writer }); // publishes on a second socket
    window.make('anonymous', { share: false });
    window.make('bad token', { share: false, token: 'not.a.token' });
  }, { writer, reader });

  const pub = (name, topic, data, opts) => page.evaluate((a) => window.pub(...a), [name, topic, data, opts]);
  const ok = [
    await pub('ws', 'chat/room1', 'over the stream socket'),
    await pub('fetch+ws', 'chat/room1', { text: 'JSON data' }, { event: 'chat.said' }),
    await pub('ws', ['chat/room1', 'chat/room2'], 'two topics'),
  ];
  for (const r of ok) assert.match(r.id || '', /^.+-\d+$/, `publish answered ${JSON.stringify(r)}, want an id`);
  const want = ok.map((r) => r.id);
  const got = await received(page, ['sse', 'ws', 'reader'], want.length);
  for (const n of ['sse', 'ws', 'reader']) assert.deepEqual(got[n].map((m) => m.id), want, `${n}: the published ids`);
  assert.deepEqual(got.sse.map((m) => [m.event, m.data]), [[undefined, 'over the stream socket'], ['chat.said', '{"text":"JSON data"}'], [undefined, 'two topics']]);

  const refusals = {
    'no credentials': [await pub('anonymous', 'chat/room1', 'x'), 'unauthorized'],
    'a bad token': [await pub('bad token', 'chat/room1', 'x'), 'unauthorized'],
    'no publish rights': [await pub('reader', 'chat/room1', 'x'), 'forbidden'],
    'a topic outside its rights': [await pub('ws', 'news/x', 'x'), 'forbidden'],
    'a bad topic': [await pub('ws', 'chat/a b', 'x'), 'bad_topic'],
  };
  for (const [why, [r, code]] of Object.entries(refusals)) {
    assert.equal(r.code, code, `publish with ${why}: got ${JSON.stringify(r)}, want code ${code}`);
    assert.match(r.error, new RegExp(`^herald: ${code}: `), `publish with ${why}: the message names the code`);
  }
  // The stream survives its refused publishes, and the key works where a token would.
  const after = await pub('ws', 'chat/room1', 'still connected');
  const key = await page.evaluate((key) => { window.make('key', { share: false, token: key }); return window.pub('key', 'anything/goes', 'with the publisher key'); }, herald.key);
  assert.ok(key.id, `publish with the publisher key: ${JSON.stringify(key)}`);
  await received(page, ['ws'], want.length + 1);
  assert.equal((await page.evaluate(() => window.got.ws.at(-1).id)), after.id);
  await screenshot(page, 'transports-publish');
});

test('ws.allow_anonymous_publish lets a page without credentials publish', { skip, timeout: 60000 }, async (t) => {
  const dir = tempDir();
  process.env.HERALD_WS_ALLOW_ANONYMOUS_PUBLISH = 'true'; // inherited by the spawned herald only
  const herald = await startHerald({ dataDir: dir, engine: 'memory' }).finally(() => delete process.env.HERALD_WS_ALLOW_ANONYMOUS_PUBLISH);
  const browser = await launch();
  t.after(async () => { await browser.close(); await herald.stop(); cleanup(dir); });
  const page = await openPage(await newContext(browser, herald), herald);
  await page.evaluate(() => window.start('ws', ['lobby'], { transport: 'ws', share: false }));
  const r = await page.evaluate(() => window.pub('ws', 'lobby', 'hello'));
  assert.ok(r.id, `anonymous publish: ${JSON.stringify(r)}`);
  assert.deepEqual((await received(page, ['ws'], 1)).ws.map((m) => m.id), [r.id]);
});

for (const how of ['aborted', 'stalled']) {
  test(`'auto' falls back to long polling when streaming is ${how}`, { skip, timeout: 60000 }, async (t) => {
    const dir = tempDir();
    const herald = await startHerald({ dataDir: dir, engine: 'memory' });
    const browser = await launch();
    t.after(async () => { await browser.close(); await herald.stop(); cleanup(dir); });
    const context = await newContext(browser, herald);
    // A proxy in the way of streaming: /events and /ws fail at once, or never answer.
    const stalled = [];
    await context.route(herald.url + '/events?*', (route) => (how === 'aborted' ? route.abort('connectionreset') : stalled.push(route)));
    await context.routeWebSocket(herald.url.replace('http', 'ws') + '/ws**', (ws) => { if (how === 'aborted') ws.close({ code: 1006 }); });
    const page = await openPage(context, herald);

    await page.evaluate(() => window.start('auto', ['fb/*'], { share: false, connectTimeout: 1000, minBackoff: 100, maxBackoff: 500 }));
    const statuses = await page.evaluate(() => window.statuses.auto);
    const tried = statuses.filter((s) => s.state === 'reconnecting').map((s) => s.transport);
    assert.equal(statuses.at(-1).transport, 'poll', `open via ${statuses.at(-1).transport}, want poll`);
    assert.ok(statuses.some((s) => s.transport === 'fetch'), `tried streaming first (statuses: ${JSON.stringify(statuses)})`);
    assert.ok(tried.length >= 2, `gave up on streaming after two attempts, not before (reconnects: ${tried})`);

    // Everything arrives: one at a time, while a poll is held, and a burst within one poll.
    const ids = [await publish(herald, { topic: 'fb/a', data: 'first' })];
    await received(page, ['auto'], 1);
    ids.push(...await Promise.all([1, 2, 3, 4, 5].map((i) => publish(herald, { topic: 'fb/b', data: 'burst ' + i }))));
    ids.push(await publish(herald, { topic: 'fb/a', event: 'done', data: 'last' }));
    const got = await received(page, ['auto'], ids.length);
    assert.deepEqual(new Set(got.auto.map((m) => m.id)), new Set(ids), 'every message');
    assert.deepEqual(got.auto.map((m) => m.id), [...got.auto.map((m) => m.id)].sort(byId), 'in id order');
    for (const r of stalled) r.abort().catch(() => {});
  });
}

/** Orders ids of one epoch by sequence. */
function byId(a, b) { return Number(a.slice(a.lastIndexOf('-') + 1)) - Number(b.slice(b.lastIndexOf('-') + 1)); }

test('three tabs share one WebSocket, publish through it, and survive closing the leader', { skip, timeout: 60000 }, async (t) => {
  const dir = tempDir();
  const herald = await startHerald({ dataDir: dir, engine: 'memory' });
  const browser = await launch();
  t.after(async () => { await browser.close(); await herald.stop(); cleanup(dir); });
  const writer = await token(dir, '--sub', 'tabs', '--publish', 'tabs/*', '--subscribe', 'tabs/*');
  const context = await newContext(browser, herald);
  const tabs = [];
  for (let i = 0; i < 3; i++) {
    const page = await openPage(context, herald);
    // Each tab subscribes to its own topic and a shared one: the leader streams the union.
    await page.evaluate(({ i, writer }) => window.start('tab', ['tabs/all', `tabs/${i}`], { transport: 'ws', token: writer, minBackoff: 100 }), { i, writer });
    tabs.push(page);
  }
  // Each new tab widens the union, and the leader reopens its stream (resuming from its last id).
  const streaming = () => Promise.all(tabs.map((p) => p.evaluate(() => window.clients.tab.stream?.subscribed && window.clients.tab.stream.topics)));
  await until('the leader to stream every tab\'s topics', async () => (await streaming()).some((t) => t?.length === 4));
  await until('one connection for three tabs', () => connectionsTo(herald.port) === 1);
  const leaderOf = async (pages) => (await Promise.all(pages.map((p) => p.evaluate(() => window.clients.tab.leader))));
  assert.equal((await leaderOf(tabs)).filter(Boolean).length, 1, 'exactly one leader');
  const ids = (page) => page.evaluate(() => window.got.tab.map((m) => m.id));

  const first = await publish(herald, { topic: 'tabs/all', data: 'to everyone' });
  const own = await publish(herald, { topic: 'tabs/2', data: 'to tab 2 only' });
  // A follower publishes: the leader sends it on the one socket and relays the ack.
  const follower = (await leaderOf(tabs)).indexOf(false);
  const fromTab = await tabs[follower].evaluate(() => window.pub('tab', 'tabs/all', 'from a follower'));
  assert.ok(fromTab.id, `a follower's publish: ${JSON.stringify(fromTab)}`);
  const refused = await tabs[follower].evaluate(() => window.pub('tab', 'elsewhere', 'not allowed'));
  assert.equal(refused.code, 'forbidden', `a follower's refused publish: ${JSON.stringify(refused)}`);
  assert.equal(connectionsTo(herald.port), 1, 'publishing opened no second connection');
  assert.deepEqual(await Promise.all(tabs.map((p) => p.evaluate(() => !!window.clients.tab.pws))), [false, false, false], 'no tab opened a publish socket');
  for (const [i, page] of tabs.entries()) {
    const want = i === 2 ? [first, own, fromTab.id] : [first, fromTab.id];
    await until(`tab ${i} to receive ${want}`, async () => (await ids(page)).length >= want.length);
    assert.deepEqual(await ids(page), want, `tab ${i}`);
  }

  // Close the leader; publish at once, before anyone has taken over.
  const leader = (await leaderOf(tabs)).indexOf(true);
  await tabs[leader].close();
  const rest = tabs.filter((_, i) => i !== leader);
  const during = await publish(herald, { topic: 'tabs/all', data: 'while nobody leads' });
  await until('a new leader', async () => (await leaderOf(rest)).filter(Boolean).length === 1);
  const after = await publish(herald, { topic: 'tabs/all', data: 'after the takeover' });
  for (const page of rest) {
    await until('the survivors to receive both', async () => (await ids(page)).includes(after));
    const got = (await ids(page)).filter((id) => id !== own);
    assert.deepEqual(got, [first, fromTab.id, during, after], 'no loss and no duplicate across the takeover');
  }
  await until('one connection again', () => connectionsTo(herald.port) === 1);
  const transports = await Promise.all(rest.map((p) => p.evaluate(() => window.statuses.tab.at(-1).transport)));
  assert.deepEqual(transports, ['ws', 'ws']);
  await screenshot(rest[0], 'transports-tabs');
});
