// The plain HTML example works as written against a real herald.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cleanup, launch, missing, publish, routePages, startHerald, tempDir, until } from './lib.mjs';

test('examples/plain-html shows live messages', { skip: missing() || false }, async (t) => {
  const dir = tempDir();
  const herald = await startHerald({ dataDir: dir, engine: 'memory' });
  const browser = await launch();
  t.after(async () => { await browser.close(); await herald.stop(); cleanup(dir); });

  const context = await browser.newContext({ viewport: { width: 800, height: 360 } });
  await routePages(context, herald.url);
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  await page.goto(herald.url + '/__e2e/examples/plain-html/index.html');
  await until('the page to connect', async () => (await page.textContent('#status')).startsWith('open'));

  const id = await publish(herald, { topic: 'news/sport', data: 'Kick-off!' });
  await publish(herald, { topic: 'demo', event: 'greeting', data: 'Hello from curl' });
  await until('both messages on the page', async () => (await page.locator('#log li').count()) === 2);
  const items = await page.locator('#log li').allTextContents();
  assert.deepEqual(items, ['greeting: Hello from curl', `${id}  news/sport  Kick-off!`]);
  assert.deepEqual(errors, []);
  const shot = join(tmpdir(), 'herald-e2e-plain-html.png');
  await page.screenshot({ path: shot });
  console.log('screenshot:', shot);
});
