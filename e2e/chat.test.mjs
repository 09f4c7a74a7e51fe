// The chat demo (web/static/chat.html, served by herald at /chat.html): two pages in headless
// Chromium talk to each other over /ws, through a real herald binary.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { launch, missing, tempDir, cleanup } from './lib.mjs';

/** Starts herald with anonymous WebSocket publishing on (the demo needs it). */
function startHerald(dataDir) {
  const proc = spawn(process.env.HERALD_BIN, ['serve', '--addr', '127.0.0.1:0', '--data-dir', dataDir,
    '--engine', 'memory', '--ws-allow-anonymous-publish=true'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  proc.stderr.on('data', (b) => { stderr += b; });
  const exited = new Promise((resolve) => proc.on('exit', resolve));
  const stop = async () => { if (proc.exitCode === null) proc.kill('SIGTERM'); await exited; };
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => { stop(); reject(new Error('herald did not start in 10s: ' + stderr)); }, 10000);
    proc.on('exit', (code) => { clearTimeout(timer); reject(new Error(`herald exited with ${code}: ${stderr}`)); });
    proc.stdout.on('data', (b) => {
      out += b;
      const m = out.match(/Herald is listening on (http:\/\/127\.0\.0\.1:\d+)/);
      if (m) { clearTimeout(timer); resolve({ url: m[1], stop }); }
    });
  });
}

const why = missing();

test('two chat pages see each other\'s messages', { skip: why || false, timeout: 60000 }, async () => {
  const dir = tempDir();
  const h = await startHerald(dir);
  const browser = await launch();
  try {
    const open = async (name) => {
      const page = await (await browser.newContext()).newPage();
      page.on('pageerror', (e) => assert.fail(`${name}: ${e}`));
      await page.goto(`${h.url}/chat.html?room=e2e&name=${name}`);
      await page.locator('#status.up').waitFor(); // subscribed
      return page;
    };
    const alice = await open('alice');
    const bob = await open('bob');
    const say = async (page, text) => {
      await page.fill('#text', text);
      await page.click('#go');
    };
    await say(alice, 'hello bob <b>not bold</b>');
    await say(bob, 'hi alice');
    for (const page of [alice, bob]) {
      await page.locator('.msg .text', { hasText: 'hi alice' }).waitFor();
      const texts = await page.locator('.msg .text').allTextContents();
      assert.deepEqual(texts, ['hello bob <b>not bold</b>', 'hi alice'], 'both pages, in order, markup shown as text');
    }
    assert.equal(await alice.locator('.msg.mine').count(), 1, 'alice sees her own message as hers');
    assert.equal(await alice.locator('.note.error').count(), 0);
    if (process.env.SCREENSHOT_DIR) await alice.screenshot({ path: join(process.env.SCREENSHOT_DIR, 'chat.png') });
  } finally {
    await browser.close();
    await h.stop();
    cleanup(dir);
  }
});
