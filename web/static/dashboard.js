// Herald's dashboard: polls /api/stats every second, derives rates from successive samples,
// draws the last five minutes, and lets you watch a topic and publish to it. No dependencies.
'use strict';
const $ = (id) => document.getElementById(id);
const HISTORY = 300; // samples (seconds) kept for the chart
const samples = [];  // {t, pub, del} rates per second
let prev = null;

const fmt = new Intl.NumberFormat('en', { maximumFractionDigits: 1 });
const num = (n) => (n >= 1e6 ? fmt.format(n / 1e6) + 'M' : n >= 1e4 ? fmt.format(n / 1e3) + 'k' : fmt.format(n));
const bytes = (n) => (n >= 1 << 20 ? fmt.format(n / (1 << 20)) + ' MB' : n >= 1024 ? fmt.format(n / 1024) + ' kB' : Math.round(n) + ' B');

function setState(text, cls) {
  const el = $('state');
  el.textContent = text;
  el.className = 'pill ' + cls;
}

async function poll() {
  let s;
  try {
    const r = await fetch('/api/stats', { cache: 'no-store' });
    if (!r.ok) throw new Error(r.status);
    s = await r.json();
  } catch (e) {
    setState('unreachable', 'bad');
    return;
  }
  if (s.draining) setState('shutting down', 'warn');
  else if (!s.ready) setState('log unavailable', 'bad');
  else setState('live', 'ok');
  $('build').textContent = `${s.version} · ${s.engine} engine`;

  const c = s.connections || {};
  const total = Object.values(c).reduce((a, b) => a + b, 0);
  $('conns').textContent = num(total);
  $('conns-by').textContent = `SSE ${num(c.sse || 0)} · WebSocket ${num(c.ws || 0)} · polling ${num(c.poll || 0)}`;
  $('subs').textContent = num(s.subscriptions);
  $('resumed').textContent = `${num(s.resumed)} resumed from history`;
  $('pub-total').textContent = `${num(s.published)} in all`;
  $('del-total').textContent = `${num(s.delivered)} in all`;
  $('evicted').textContent = `${num(s.evicted)} slow clients disconnected`;

  if (prev && s.time > prev.time) {
    const dt = (s.time - prev.time) / 1000;
    const rate = (k) => Math.max(0, (s[k] - prev[k]) / dt);
    const pub = rate('published'), del = rate('delivered');
    $('pub-rate').textContent = num(pub);
    $('del-rate').textContent = num(del);
    $('bytes-rate').textContent = bytes(rate('bytesWritten'));
    samples.push({ t: s.time, pub, del });
    if (samples.length > HISTORY) samples.shift();
    draw();
  }
  prev = s;
  topTopics(s.topTopics || []);
}

function topTopics(list) {
  const body = $('top').tBodies[0];
  body.replaceChildren();
  if (!list.length) {
    const tr = body.insertRow();
    const td = tr.insertCell();
    td.colSpan = 2; td.className = 'muted'; td.textContent = 'No subscriptions yet.';
    return;
  }
  const max = list[0].subscribers;
  for (const { topic, subscribers } of list) {
    const tr = body.insertRow();
    const name = tr.insertCell();
    name.className = 'topic'; name.textContent = topic;
    const n = tr.insertCell();
    n.className = 'num';
    const bar = document.createElement('span');
    bar.className = 'meter';
    bar.style.width = Math.max(4, 80 * subscribers / max) + 'px';
    n.append(bar, num(subscribers));
  }
}

function draw() {
  const cv = $('chart');
  const dpr = window.devicePixelRatio || 1;
  const w = cv.clientWidth, h = cv.clientHeight;
  if (cv.width !== w * dpr) { cv.width = w * dpr; cv.height = h * dpr; }
  const g = cv.getContext('2d');
  g.setTransform(dpr, 0, 0, dpr, 0, 0);
  g.clearRect(0, 0, w, h);
  const left = 44, bottom = h - 18, top = 8, right = w - 4;
  const peak = Math.max(1, ...samples.map((p) => Math.max(p.pub, p.del)));
  const scale = niceCeil(peak);
  g.font = '11px system-ui, sans-serif';
  g.fillStyle = '#667085';
  g.strokeStyle = '#eef0f3';
  g.lineWidth = 1;
  for (let i = 0; i <= 4; i++) {
    const y = Math.round(bottom - (bottom - top) * i / 4) + .5;
    g.beginPath(); g.moveTo(left, y); g.lineTo(right, y); g.stroke();
    g.textAlign = 'right';
    g.fillText(num(scale * i / 4), left - 6, y + 4);
  }
  g.textAlign = 'left'; g.fillText('-5 min', left, h - 4);
  g.textAlign = 'right'; g.fillText('now', right, h - 4);
  const x = (i) => right - (samples.length - 1 - i) * (right - left) / (HISTORY - 1);
  const y = (v) => bottom - (bottom - top) * v / scale;
  for (const [key, color] of [['del', '#0d9488'], ['pub', '#2563eb']]) {
    g.beginPath();
    samples.forEach((p, i) => (i ? g.lineTo(x(i), y(p[key])) : g.moveTo(x(i), y(p[key]))));
    g.strokeStyle = color; g.lineWidth = 1.75; g.stroke();
  }
}

function niceCeil(v) {
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

// Watching a topic reads the SSE stream with fetch, so that events of every type show (an
// EventSource only reports the event types it was told to listen for).
let watching = null;
async function watch(topic) {
  if (watching) watching.abort();
  const ctl = new AbortController();
  watching = ctl;
  const list = $('messages');
  list.replaceChildren();
  $('watch-state').textContent = 'connecting…';
  try {
    const r = await fetch('/events?format=envelope&topic=' + encodeURIComponent(topic), { signal: ctl.signal });
    if (!r.ok) {
      const e = await r.json().catch(() => ({ message: r.statusText }));
      $('watch-state').textContent = e.message;
      return;
    }
    $('watch-state').textContent = 'watching ' + topic;
    const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
    let buf = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += value;
      let i;
      while ((i = buf.indexOf('\n\n')) >= 0) {
        const frame = buf.slice(0, i);
        buf = buf.slice(i + 2);
        onFrame(frame, list);
      }
    }
    $('watch-state').textContent = 'stream ended';
  } catch (e) {
    if (ctl.signal.aborted) return;
    $('watch-state').textContent = 'disconnected: ' + e.message;
  }
}

function onFrame(frame, list) {
  let event = 'message', data = [];
  for (const line of frame.split('\n')) {
    if (line.startsWith('event:')) event = line.slice(6).trim();
    else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
  }
  if (!data.length) return;
  const li = document.createElement('li');
  li.className = 'new';
  if (event === 'herald.gap') {
    li.className = 'note';
    li.textContent = 'gap: ' + JSON.parse(data.join('\n')).message;
  } else {
    const m = JSON.parse(data.join('\n'));
    const cell = (cls, text) => { const s = document.createElement('span'); s.className = cls; s.textContent = text; s.title = text; return s; };
    li.append(cell('muted', new Date(m.time || Date.now()).toLocaleTimeString([], { hour12: false })), cell('ev', m.event || m.topic), cell('data', m.data));
  }
  list.prepend(li);
  while (list.children.length > 50) list.lastChild.remove();
}

$('watch').onsubmit = (e) => { e.preventDefault(); watch($('watch-topic').value.trim()); };

$('pub-key').value = sessionStorage.getItem('herald.key') || '';
$('publish').onsubmit = async (e) => {
  e.preventDefault();
  const key = $('pub-key').value.trim();
  sessionStorage.setItem('herald.key', key);
  const msg = { topic: $('pub-topic').value.trim(), data: $('pub-data').value };
  if ($('pub-event').value.trim()) msg.event = $('pub-event').value.trim();
  const r = await fetch('/publish', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Authorization: 'Bearer ' + key },
    body: JSON.stringify(msg),
  });
  const body = await r.json().catch(() => ({}));
  $('pub-result').textContent = r.ok ? 'published as ' + body.id : `${r.status}: ${body.message || r.statusText}`;
};

$('curl').textContent = `curl -H "Authorization: Bearer $(cat herald-data/publisher.key)" -d topic=demo -d data=hello ${location.origin}/publish`;
window.addEventListener('resize', draw);
watch($('watch-topic').value);
poll();
setInterval(poll, 1000);
