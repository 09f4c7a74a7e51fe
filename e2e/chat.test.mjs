// The chat demo (web/static/chat.html, served by herald at /chat.html): two pages in headless
// Chromium talk to each other over /ws, through a real herald binary.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { launch, missing, tempDir, cleanup, startHerald } from './lib.mjs';

const why = missing();

test('two chat pages see each other\'s messages', { skip: why || false, timeout: 60000 }, async () => {
  const dir = tempDir();
  const h = await startHerald({ dataDir: dir, engine: 'memory', args: ['--ws-allow-anonymous-publish=true'] });
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
