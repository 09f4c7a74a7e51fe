// herald over HTTPS (tls.cert/tls.key, a self-signed certificate made with openssl) in Chromium:
// ten SSE streams in one tab, far past HTTP/1.1's six connections per origin, share one HTTP/2
// connection, and herald.js over WebSocket and long polling works next to them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cleanup, connectionsTo, launch, missing, routePages, startHerald, tempDir, until } from './lib.mjs';

function opensslMissing() {
  try { execFileSync('openssl', ['version']); return ''; } catch { return 'openssl is missing'; }
}
const skip = missing() || opensslMissing() || false;

/** A self-signed certificate for 127.0.0.1. */
function certificate(dir) {
  const cert = join(dir, 'cert.pem'), key = join(dir, 'key.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
    '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
  return { cert, key };
}

/** Publishes over HTTPS, trusting the test certificate only. */
function publish(h, ca, msg) {
  return new Promise((resolve, reject) => {
    const req = https.request(h.url + '/publish', {
      method: 'POST', agent: false, ca,
      headers: { 'Content-Type': 'application/json', Authorization: 'Bearer ' + h.key, Connection: 'close' },
    }, (res) => {
      let text = '';
      res.on('data', (b) => { text += b; });
      res.on('end', () => (res.statusCode === 200 ? resolve(JSON.parse(text).id) : reject(new Error(`${res.statusCode} ${text}`))));
    });
    req.on('error', reject);
    req.end(JSON.stringify(msg));
  });
}

test('over HTTPS, ten streams in one tab share one HTTP/2 connection', { skip, timeout: 60000 }, async (t) => {
  const dir = tempDir();
  const { cert, key } = certificate(dir);
  const herald = await startHerald({ dataDir: dir, engine: 'memory', args: ['--tls-cert', cert, '--tls-key', key, '--shutdown-drain', '100ms'] });
  const browser = await launch();
  t.after(async () => { await browser.close(); await herald.stop(); cleanup(dir); });

  // The page trusts the self-signed certificate as a real one would be trusted; see
  // transports.test.mjs for the local-network-access permission.
  const context = await browser.newContext({ ignoreHTTPSErrors: true, permissions: ['local-network-access'], viewport: { width: 1100, height: 700 } });
  await routePages(context, herald.url);
  const page = await context.newPage();
  page.on('pageerror', (e) => console.error('page error:', e));
  await page.goto(herald.url + '/__e2e/transports.html');
  await page.waitForFunction(() => window.pageReady);

  const sse = Array.from({ length: 10 }, (_, i) => `sse ${i}`);
  const names = [...sse, 'ws', 'poll'];
  await page.evaluate((sse) => Promise.all([
    ...sse.map((n) => window.start(n, ['tls/*'], { transport: 'fetch', share: false })),
    window.start('ws', ['tls/*'], { transport: 'ws', share: false }),
    window.start('poll', ['tls/*'], { transport: 'poll', share: false }),
  ]), sse);

  const ca = readFileSync(cert);
  const ids = [];
  for (let i = 0; i < 3; i++) ids.push(await publish(herald, ca, { topic: 'tls/' + i, data: 'over TLS ' + i }));
  const got = await until('every client to receive 3 messages', () => page.evaluate((names) =>
    names.every((n) => window.got[n].length >= 3) && window.got, names));
  for (const n of names) assert.deepEqual(got[n].map((m) => m.id), ids, `${n}: ids`);

  // The SSE streams and polls multiplex on one HTTP/2 connection; the WebSocket has its own
  // (Go's HTTP/2 server does not offer WebSocket over HTTP/2, RFC 8441). Over HTTP/1.1, ten
  // streams would need ten connections, and the seventh would hang.
  // (until: the server may not have closed the last publish's connection yet.)
  const conns = await until('the clients to hold at most 2 connections', () => { const n = connectionsTo(herald.port); return n <= 2 && n; })
    .catch((e) => { throw new Error(`${names.length} clients use ${connectionsTo(herald.port)} TCP connections, want at most 2 (one HTTP/2, one WebSocket): ${e.message}`); });
  const shot = join(tmpdir(), 'herald-e2e-tls.png');
  await page.screenshot({ path: shot, fullPage: true });
  console.log('screenshot:', shot, `(${conns} connections)`);
});
