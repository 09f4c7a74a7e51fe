// Shared by the end-to-end tests: a real herald process, headless Chromium, and pages served
// on herald's own origin (through Playwright routing), so they reach /events as a real app would.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import http from 'node:http';

const here = dirname(fileURLToPath(import.meta.url));
export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

/** Why the tests cannot run here, or '' when they can. Under CI=true a missing piece fails instead. */
export function missing() {
  const why = !process.env.HERALD_BIN ? 'HERALD_BIN is not set (go build -o bin/herald ./cmd/herald)'
    : !existsSync(CHROMIUM) ? `${CHROMIUM} is missing (apt-get install chromium)` : '';
  if (why && process.env.CI === 'true') throw new Error('end-to-end tests cannot run: ' + why);
  return why;
}

export function tempDir() { return mkdtempSync(join(tmpdir(), 'herald-e2e-')); }

/**
 * Starts `herald serve` on 127.0.0.1 (port 0 picks a free one) and resolves once it listens.
 * `args` are extra serve flags (e.g. TLS, --ws-allow-anonymous-publish=true).
 * @returns {Promise<{url: string, port: number, key: string, stop: () => Promise<void>, stderr: () => string}>}
 */
export function startHerald({ dataDir, port = 0, engine, retry = '200ms', args = [] }) {
  const argv = ['serve', '--addr', `127.0.0.1:${port}`, '--data-dir', dataDir, '--sse-retry', retry, '--sse-heartbeat', '2s'];
  if (engine) argv.push('--engine', engine);
  argv.push(...args);
  const proc = spawn(process.env.HERALD_BIN, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
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
      const m = out.match(/Herald is listening on (https?:\/\/127\.0\.0\.1:(\d+))/);
      if (!m) return;
      clearTimeout(timer);
      const key = readFileSync(join(dataDir, 'publisher.key'), 'utf8').trim();
      resolve({ url: m[1], port: Number(m[2]), key, stop, stderr: () => stderr });
    });
  });
}

/** Publishes one message on a fresh connection (Connection: close), so it leaves no socket open. */
export function publish(h, msg) {
  const body = JSON.stringify(msg);
  return new Promise((resolve, reject) => {
    const req = http.request(h.url + '/publish', {
      method: 'POST', agent: false,
      headers: { 'Content-Type': 'application/json', Authorization: 'Bearer ' + h.key, Connection: 'close' },
    }, (res) => {
      let text = '';
      res.on('data', (b) => { text += b; });
      res.on('end', () => (res.statusCode === 200 ? resolve(JSON.parse(text).id) : reject(new Error(`${res.statusCode} ${text}`))));
    });
    req.on('error', reject);
    req.end(body);
  });
}

/**
 * Open TCP connections to 127.0.0.1:port, counted on the server side from /proc/net/tcp. Only
 * 127.0.0.1: on a shared machine another program's client socket on 127.0.0.2 may get the same
 * port number as its ephemeral port.
 */
export function connectionsTo(port) {
  const hex = '0100007F:' + port.toString(16).toUpperCase().padStart(4, '0');
  let n = 0;
  for (const f of ['/proc/net/tcp', '/proc/net/tcp6']) {
    if (!existsSync(f)) continue;
    for (const line of readFileSync(f, 'utf8').split('\n').slice(1)) {
      const [, local, , state] = line.trim().split(/\s+/);
      if (local?.endsWith(hex) && state === '01') n++;
    }
  }
  return n;
}

/** Polls cond every 50ms until it returns a truthy value; fails with what it last saw. */
export async function until(what, cond, timeout = 10000) {
  const end = Date.now() + timeout;
  let last;
  for (;;) {
    last = await cond();
    if (last) return last;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what} (last: ${JSON.stringify(last)})`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const TYPES = { '.js': 'text/javascript', '.html': 'text/html; charset=utf-8', '.mjs': 'text/javascript' };

/**
 * Serves the test pages, herald.js and fetch-event-source's ESM build on herald's own origin.
 * Only these paths are intercepted; /events, /publish and the rest reach the real server.
 */
export async function routePages(context, origin) {
  const fes = join(here, 'node_modules/@microsoft/fetch-event-source/lib/esm');
  const files = (path) => {
    if (path === '/herald.js') return join(here, '../clients/js/herald.js');
    if (path.startsWith('/__e2e/fes/')) {
      const f = path.slice('/__e2e/fes/'.length);
      return join(fes, extname(f) ? f : f + '.js'); // the ESM build imports './fetch' without .js
    }
    if (path.startsWith('/__e2e/examples/')) return join(here, '..', path.slice('/__e2e/'.length));
    return join(here, 'pages', path.slice('/__e2e/'.length));
  };
  const handler = async (route) => {
    const path = new URL(route.request().url()).pathname;
    const file = files(path);
    if (!existsSync(file)) return route.fulfill({ status: 404, body: 'not found' });
    await route.fulfill({ status: 200, contentType: TYPES[extname(file)] || 'application/octet-stream', body: readFileSync(file) });
  };
  await context.route(origin + '/herald.js', handler);
  await context.route(origin + '/__e2e/**', handler);
}

export async function launch() {
  const { chromium } = await import('playwright-core');
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
}

export function cleanup(...dirs) { for (const d of dirs) rmSync(d, { recursive: true, force: true }); }
