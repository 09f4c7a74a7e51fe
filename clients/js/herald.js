// herald.js: the browser client of Herald. A zero-dependency ES module; served by herald at /herald.js.
//
//   import { connect } from '/herald.js';
//   const h = connect('https://push.example.com', { getToken: () => fetch('/token').then(r => r.text()) });
//   h.subscribe(['orders/42', 'news/*'], { onMessage: (m) => console.log(m.topic, m.data), onGap: reload });
//
// All tabs of an origin share one connection: they elect a leader (Web Locks, else BroadcastChannel
// heartbeats) that holds the stream and relays messages over a BroadcastChannel. Every tab keeps
// the last id it saw, so whichever tab leads next resumes from there, and drops ids it has seen.
// @ts-check

/**
 * @typedef {object} Message
 * @property {string} id       opaque, ordered by the server; resume after it with options.lastId
 * @property {string} topic
 * @property {string[]} [topics] every topic, when published to more than one
 * @property {string} [event]  event type, if the publisher gave one
 * @property {string} data
 * @property {string} [time]   RFC 3339
 *
 * @typedef {object} Gap  the server could not replay what was missed: reload your state
 * @property {string} reason  "epoch" | "trimmed" | "unknown-id" | "bad-id"
 * @property {string} lastEventId
 * @property {string} message
 *
 * @typedef {object} Status
 * @property {'connecting'|'open'|'reconnecting'|'closed'} state
 * @property {string} [transport] 'fetch' | 'eventsource' | 'poll' | 'ws'
 * @property {boolean} [leader]  whether this tab holds the connection
 * @property {number} [delay]    ms until the next attempt, when reconnecting
 * @property {number} [status]   HTTP status that ended the connection, if any
 * @property {string} [error]
 *
 * @typedef {object} Handlers
 * @property {(m: Message) => void} [onMessage]  every message that onEvent does not handle
 * @property {Record<string, (m: Message) => void>} [onEvent]  by event type
 * @property {(g: Gap) => void} [onGap]
 * @property {(s: Status) => void} [onStatus]
 *
 * @typedef {object} Options
 * @property {string} [token]  sent as Authorization: Bearer (fetch and poll) or ?token= (ws)
 * @property {() => string | Promise<string>} [getToken]  called first and again after a 401
 * @property {'auto'|'fetch'|'eventsource'|'poll'|'ws'} [transport]  'auto' (default): fetch-streamed
 *   SSE, then long polling if a proxy holds the stream back; EventSource where fetch cannot stream
 * @property {boolean} [share]  one connection for all tabs of this origin (default true)
 * @property {string} [lastId]  resume after this id instead of starting from the current state
 * @property {number} [heartbeatTimeout]  ms of silence before a connection is reopened (45000)
 * @property {number} [minBackoff]  ms; base of the backoff when the server advised no retry (1000)
 * @property {number} [maxBackoff]  ms (30000)
 * @property {number} [stableAfter] ms a connection must last for the backoff to reset (10000)
 * @property {number} [pollTimeout] s a long poll may wait (25)
 * @property {number} [connectTimeout] ms an attempt may take to deliver its first byte (10000)
 */

const DEFAULTS = {
  transport: 'auto', share: true, heartbeatTimeout: 45000, minBackoff: 1000, maxBackoff: 30000,
  stableAfter: 10000, pollTimeout: 25, connectTimeout: 10000,
};
const GAP = 'herald.gap';

/** Whether topic matches pattern: '*' is one segment, a final '**' one or more. */
export function match(pattern, topic) {
  const p = pattern.split('/'), t = topic.split('/');
  for (let i = 0; i < p.length; i++) {
    if (p[i] === '**') return i < t.length;
    if (i >= t.length || (p[i] !== '*' && p[i] !== t[i])) return false;
  }
  return p.length === t.length;
}

/** Full-jitter backoff: uniform in [0, min(cap, base·2^attempt)); a server's base beats the cap. */
export function fullJitter(base, cap, attempt, random = Math.random) {
  const d = Math.min(Math.max(cap, base), base * 2 ** Math.min(attempt, 30));
  return Math.floor(random() * d);
}

/** Remembers the last `size` ids, to drop a message delivered twice (a replay after a takeover). */
export class Dedup {
  constructor(size = 2048) { this.size = size; this.ids = new Set(); }
  /** @param {string} id @returns {boolean} whether id was seen before; records it */
  seen(id) {
    if (!id) return false;
    if (this.ids.has(id)) return true;
    this.ids.add(id);
    if (this.ids.size > this.size) this.ids.delete(this.ids.values().next().value);
    return false;
  }
}

/**
 * An event-stream parser that behaves as EventSource does: CR, LF or CRLF line ends (also split
 * across chunks), comments, data lines joined with LF, ids without NUL, numeric retry, and events
 * without data not dispatched though their id is recorded.
 */
export class SSEParser {
  /** @param {{event?: (e: {id: string, event: string, data: string}) => void, id?: (id: string) => void, retry?: (ms: number) => void, comment?: (text: string) => void}} on */
  constructor(on) {
    this.on = on; this.buf = ''; this.skipLF = false; this.lastId = '';
    this.data = ''; this.hasData = false; this.event = ''; this.idSeen = false;
  }
  /** @param {string} chunk */
  push(chunk) {
    let s = this.buf + chunk, start = 0;
    if (this.skipLF && s[0] === '\n') start = 1;
    this.skipLF = false;
    for (let i = start; i < s.length; i++) {
      const c = s[i];
      if (c !== '\n' && c !== '\r') continue;
      this.line(s.slice(start, i));
      if (c === '\r') {
        if (i + 1 === s.length) this.skipLF = true;
        else if (s[i + 1] === '\n') i++;
      }
      start = i + 1;
    }
    this.buf = s.slice(start);
  }
  /** @param {string} line */
  line(line) {
    if (line === '') return this.dispatch();
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value[0] === ' ') value = value.slice(1);
    switch (field) {
      case '': this.on.comment?.(value); break;
      case 'data': this.data += value + '\n'; this.hasData = true; break;
      case 'event': this.event = value; break;
      case 'id': if (!value.includes('\0')) { this.lastId = value; this.idSeen = true; } break;
      case 'retry': if (/^\d+$/.test(value)) this.on.retry?.(Number(value)); break;
    }
  }
  dispatch() {
    const { hasData, data, event } = this;
    if (this.idSeen && !hasData) this.on.id?.(this.lastId);
    this.data = ''; this.hasData = false; this.event = ''; this.idSeen = false;
    if (hasData) this.on.event?.({ id: this.lastId, event: event || 'message', data: data.slice(0, -1) });
  }
}

/**
 * Connects to the Herald server at url: its origin and any path prefix; empty for the page's origin.
 * @param {string} url
 * @param {Options} [options]
 */
export function connect(url, options = {}) { return new Herald(url, options); }

/**
 * A refused or failed publish. code is the server's error code ('unauthorized', 'forbidden',
 * 'bad_topic', 'rate_limited', ...; docs/api.md) or 'closed' (the connection ended before the
 * answer: the message may or may not have been published) or 'timeout'.
 */
export class HeraldError extends Error {
  /** @param {string} code @param {string} message */
  constructor(code, message) {
    super(`herald: ${code}: ${message}`);
    this.name = 'HeraldError';
    this.code = code;
  }
}

/** Maps a WebSocket error code to the HTTP status that means the same, for the stop rules. */
const WS_STATUS = { unauthorized: 401, forbidden: 403, bad_topic: 400, bad_request: 400, bad_event: 400, too_many: 400 };

/**
 * Maps a WebSocket close code to an HTTP status for the same stop rules: 4001 is a 401 (refresh
 * the token), 4003 a 403, and 1007/1008/1009 a client bug (400) that retrying cannot fix. Other
 * codes (1001, 1011, 1012 restart, 1013/4029 try later, 4008 slow) reconnect and resume.
 */
const WS_CLOSE = { 4001: 401, 4003: 403, 1007: 400, 1008: 400, 1009: 400 };
const CLOSE_CODE = { 4001: 'unauthorized', 4003: 'forbidden', 4029: 'rate_limited', 1013: 'overloaded' };

class Herald {
  /** @param {string} url @param {Options} options */
  constructor(url, options) {
    this.url = new URL(url || '/', globalThis.location?.href).href.replace(/\/+$/, '');
    this.opts = { ...DEFAULTS, ...options };
    /** @type {Set<{patterns: string[], h: Handlers}>} */
    this.subs = new Set();
    this.dedup = new Dedup();
    this.lastId = this.opts.lastId || '';
    this.tab = Math.random().toString(36).slice(2, 10);
    this.leader = false;
    this.closed = false;
    /** @type {Status} */
    this.status = { state: 'connecting' };
    /** @type {Map<string, {patterns: string[], types: string[]}>} the leader's view of the other tabs */
    this.peers = new Map();
    this.known = []; // the topics the leader last streamed, in case this tab leads next
    this.acks = new Map(); // publish ref -> {resolve, reject, timer}
    this.ref = 0;
    this.stream = null;
    this.streamKey = '';
    this.timers = [];
    if (this.opts.share && typeof BroadcastChannel === 'function') this.share();
    else this.lead();
  }

  /**
   * Receives the messages of topics and patterns ('orders/42', 'news/*', 'news/**').
   * @param {string | string[]} patterns
   * @param {Handlers} [handlers]
   * @returns {{unsubscribe: () => void}}
   */
  subscribe(patterns, handlers = {}) {
    const sub = { patterns: [].concat(patterns), h: handlers };
    this.subs.add(sub);
    this.changed();
    handlers.onStatus?.(this.status);
    return { unsubscribe: () => { this.subs.delete(sub); this.changed(); } };
  }

  /**
   * Publishes over WebSocket; resolves to the message's id, rejects with a HeraldError whose
   * code is the server's ('unauthorized', 'forbidden', ...). Needs a token with publish rights:
   * never give a browser a publisher key. With transport 'ws' it goes over the stream's own
   * socket, else over a second one opened on demand. In a follower tab the leader publishes on
   * its behalf.
   * @param {string | string[]} topic  one topic, or several for one message
   * @param {any} data  a string, or any JSON value (delivered as its compact JSON text)
   * @param {{event?: string, retain?: boolean, idempotencyKey?: string}} [opts]
   * @returns {Promise<string>}
   */
  publish(topic, data, opts = {}) {
    const msg = {
      ...(Array.isArray(topic) ? { topics: topic } : { topic }), data,
      event: opts.event || undefined, retain: opts.retain || undefined, idempotencyKey: opts.idempotencyKey || undefined,
    };
    if (this.closed) return Promise.reject(new HeraldError('closed', 'client closed'));
    return new Promise((resolve, reject) => {
      const ref = this.tab + ':' + ++this.ref;
      const timer = setTimeout(() => this.settle(ref, new HeraldError('timeout', 'no answer in 10s')), 10000);
      this.acks.set(ref, { resolve, reject, timer });
      if (this.leader) this.publishWS(ref, msg);
      else this.post({ t: 'pub', ref, msg });
    });
  }

  /** Closes the connection (a follower tab hands nothing over; a leader lets the next tab lead). */
  close() {
    if (this.closed) return;
    this.closed = true;
    this.stream?.stop();
    this.pws?.close();
    for (const t of this.timers) clearInterval(t);
    for (const ref of [...this.acks.keys()]) this.settle(ref, new HeraldError('closed', 'client closed'));
    this.post({ t: 'bye', tab: this.tab });
    this.releaseLock?.();
    this.lockAbort?.abort();
    this.bc?.close();
    this.setStatus({ state: 'closed' });
  }

  // ---- subscriptions and dispatch

  changed() {
    if (this.pending) return;
    this.pending = true;
    queueMicrotask(() => {
      this.pending = false;
      if (this.closed) return;
      if (this.leader) this.restream();
      else this.post({ t: 'subs', tab: this.tab, ...this.interest() });
    });
  }

  /** This tab's patterns and the event types its handlers name (EventSource must name them). */
  interest() {
    const patterns = new Set(), types = new Set();
    for (const s of this.subs) {
      s.patterns.forEach((p) => patterns.add(p));
      Object.keys(s.h.onEvent || {}).forEach((t) => types.add(t));
    }
    return { patterns: [...patterns], types: [...types] };
  }

  /** Leader: (re)opens the stream when the union of every tab's interest changed. */
  restream() {
    const all = [this.interest(), ...this.peers.values()];
    const topics = [...new Set(all.flatMap((i) => i.patterns))].sort();
    const types = [...new Set(all.flatMap((i) => i.types))].sort();
    const key = topics.join(' ') + '|' + types.join(' ');
    if (key === this.streamKey) return;
    this.streamKey = key;
    this.stream?.stop();
    this.stream = topics.length ? new Stream(this, topics, types) : null;
    this.known = topics;
    this.post({ t: 'topics', topics });
  }

  /** @param {Message} m */
  deliver(m) {
    if (!m || !m.id || this.dedup.seen(m.id)) return;
    this.lastId = m.id;
    if (this.leader) this.post({ t: 'msg', m });
    const topics = m.topics || [m.topic];
    for (const s of [...this.subs]) {
      if (!s.patterns.some((p) => topics.some((t) => match(p, t)))) continue;
      const on = m.event && s.h.onEvent?.[m.event];
      try { on ? on(m) : s.h.onMessage?.(m); } catch (e) { setTimeout(() => { throw e; }); }
    }
  }

  /** @param {string} id the stream's position when it had no message to send */
  position(id) {
    this.lastId = id;
    if (this.leader) this.post({ t: 'pos', id });
  }

  /** @param {Gap} g */
  gap(g) {
    if (this.leader) this.post({ t: 'gap', g });
    for (const s of [...this.subs]) s.h.onGap?.(g);
  }

  /** @param {Status} s */
  setStatus(s) {
    this.status = { ...s, leader: this.leader };
    if (this.leader) this.post({ t: 'status', s });
    for (const sub of [...this.subs]) sub.h.onStatus?.(this.status);
  }

  async token(refresh) {
    if (!this.opts.getToken) return this.opts.token || '';
    if (refresh || this.tok === undefined) this.tok = await this.opts.getToken();
    return this.tok;
  }

  // ---- publishing over WebSocket

  publishWS(ref, msg) {
    const frame = { op: 'publish', ...msg, ref };
    if (this.stream?.sendWS(frame)) return; // transport 'ws', subscribed: one socket does both
    this.pubSocket().then(({ ws, refs }) => {
      refs.add(ref);
      ws.send(JSON.stringify(frame));
    }, (err) => this.settle(ref, err));
  }

  /** @returns {Promise<{ws: WebSocket, refs: Set<string>}>} one socket for publishing, opened on demand, and the refs sent on it awaiting an answer */
  pubSocket() {
    if (this.pwsReady) return this.pwsReady;
    /** @type {Set<string>} */
    const refs = new Set();
    this.pwsReady = this.token(!!this.pwsStale).then((token) => new Promise((resolve, reject) => {
      const ws = new WebSocket(wsURL(this.url, token));
      this.pws = ws;
      this.pwsStale = false;
      ws.onopen = () => resolve({ ws, refs });
      ws.onmessage = (e) => this.answer(parse(e.data), refs);
      ws.onclose = (e) => {
        if (this.pws === ws) this.pws = this.pwsReady = null;
        // 4001: the token was refused or expired; the next publish asks getToken() for a new one.
        if (e.code === 4001 && this.opts.getToken) this.pwsStale = true;
        const err = closeError(e);
        reject(err);
        for (const ref of refs) this.settle(ref, err);
        refs.clear();
      };
    }));
    this.pwsReady.catch(() => { this.pwsReady = null; });
    return this.pwsReady;
  }

  /** Settles the publish a WebSocket ack or error frame answers. @param {any} f @param {Set<string>} refs */
  answer(f, refs) {
    if (!f || typeof f.ref !== 'string' || !refs.has(f.ref)) return false;
    if (f.type === 'ack') this.settle(f.ref, null, f.id);
    else if (f.type === 'error') this.settle(f.ref, new HeraldError(f.code, f.message));
    else return false;
    refs.delete(f.ref);
    return true;
  }

  settle(ref, err, id) {
    const a = this.acks.get(ref);
    if (a) {
      this.acks.delete(ref);
      clearTimeout(a.timer);
      err ? a.reject(err) : a.resolve(id);
      return;
    }
    // Someone else's publish, made on a follower's behalf: send the answer back.
    if (this.leader && ref) this.post({ t: 'ack', ref, id, code: err?.code || (err && 'internal'), error: err?.message });
  }

  // ---- tab sharing

  post(m) { try { this.bc?.postMessage(m); } catch { /* closed */ } }

  share() {
    const name = 'herald:' + this.url;
    this.bc = new BroadcastChannel(name);
    this.bc.onmessage = (e) => this.onBus(e.data);
    globalThis.addEventListener?.('pagehide', () => this.close());
    const locks = globalThis.navigator?.locks;
    if (locks) {
      // Whoever holds the lock leads until its tab closes or close() releases it; the browser
      // releases it when the tab dies, and the next waiting tab takes over.
      this.lockAbort = new AbortController();
      locks.request(name, { signal: this.lockAbort.signal }, () => {
        if (this.closed) return;
        this.lead();
        return new Promise((resolve) => { this.releaseLock = resolve; });
      }).catch(() => { /* aborted by close() */ });
    } else {
      // No Web Locks: the leader beats every second; a tab that hears none for 3s takes over,
      // and of two leaders the one with the smaller tab id stays.
      this.heard = Date.now() - 2500; // a lone first tab leads after ~0.5s
      this.timers.push(setInterval(() => {
        if (this.leader) this.post({ t: 'hb', tab: this.tab });
        else if (Date.now() - this.heard > 3000) this.lead();
      }, 500));
    }
    this.post({ t: 'subs', tab: this.tab, ...this.interest(), hello: true });
  }

  lead() {
    if (this.closed || this.leader) return;
    this.leader = true;
    // Until the other tabs answer, stream what the last leader streamed: nothing is missed.
    if (this.known.length) {
      this.peers.set('?', { patterns: this.known, types: [] });
      const t = setTimeout(() => { this.peers.delete('?'); this.leader && this.restream(); }, 2000);
      this.timers.push(t);
    }
    this.post({ t: 'leader', tab: this.tab });
    this.restream();
  }

  follow() {
    this.leader = false;
    this.stream?.stop();
    this.stream = null;
    this.streamKey = '';
    this.peers.clear();
    this.post({ t: 'subs', tab: this.tab, ...this.interest() });
  }

  onBus(m) {
    if (this.closed || !m) return;
    switch (m.t) {
      case 'subs': // a follower's interest
        if (!this.leader) return;
        this.peers.set(m.tab, { patterns: m.patterns, types: m.types });
        this.restream();
        if (m.hello) { this.post({ t: 'topics', topics: this.known }); this.post({ t: 'status', s: this.status }); }
        return;
      case 'bye':
        if (this.leader && this.peers.delete(m.tab)) this.restream();
        return;
      case 'hb':
      case 'leader':
        this.heard = Date.now();
        if (this.leader && m.tab < this.tab) this.follow();
        else if (!this.leader && m.t === 'leader') this.post({ t: 'subs', tab: this.tab, ...this.interest() });
        return;
      case 'pub':
        if (this.leader) this.publishWS(m.ref, m.msg);
        return;
      case 'ack':
        if (this.acks.has(m.ref)) this.settle(m.ref, m.code ? relayed(m.code, m.error) : null, m.id);
        return;
    }
    if (this.leader) return;
    this.heard = Date.now();
    switch (m.t) {
      case 'msg': this.deliver(m.m); break;
      case 'pos': this.lastId = m.id; break;
      case 'gap': this.gap(m.g); break;
      case 'status': this.setStatus(m.s); break;
      case 'topics': this.known = m.topics; break;
    }
  }
}

/**
 * One logical stream, over whichever transport, with reconnects. Each attempt gets a generation
 * number: callbacks of an attempt that was replaced are ignored.
 */
class Stream {
  /** @param {Herald} o @param {string[]} topics @param {string[]} types */
  constructor(o, topics, types) {
    this.o = o; this.topics = topics; this.types = types;
    this.kind = pick(o.opts.transport);
    this.attempt = 0; this.retry = 0; this.starved = 0; this.gen = 0; this.refreshed = false;
    this.stopped = false;
    this.open();
  }

  stop() { this.stopped = true; this.gen++; this.close?.(); clearTimeout(this.timer); clearTimeout(this.dog); }

  /** Sends a frame on this stream's WebSocket if it is one and subscribed. @returns {boolean} */
  sendWS(frame) {
    if (!this.sock || this.sock.readyState !== WebSocket.OPEN || !this.subscribed) return false;
    this.sent.add(frame.ref);
    this.sock.send(JSON.stringify(frame));
    return true;
  }

  query(extra = {}) {
    const q = new URLSearchParams();
    this.topics.forEach((t) => q.append('topic', t));
    for (const [k, v] of Object.entries(extra)) if (v) q.set(k, String(v));
    return q.toString();
  }

  async open() {
    const gen = ++this.gen;
    this.openedAt = 0;
    this.gotData = false;
    this.o.setStatus({ state: this.attempt ? 'reconnecting' : 'connecting', transport: this.kind });
    let token = '';
    try { token = await this.o.token(false); } catch (e) { return this.end(gen, { error: 'getToken: ' + e }); }
    if (gen !== this.gen) return;
    const live = () => gen === this.gen;
    const io = {
      opened: () => {
        if (!live()) return;
        this.openedAt = Date.now();
        this.o.setStatus({ state: 'open', transport: this.kind });
      },
      data: () => { if (live()) { this.gotData = true; this.watch(gen); } },
      message: (m) => live() && this.o.deliver(m),
      gap: (g) => live() && this.o.gap(g),
      position: (id) => live() && this.o.position(id),
      retry: (ms) => { if (live()) this.retry = ms; },
      ended: (why) => this.end(gen, why),
    };
    this.watch(gen);
    this.close = this[this.kind](io, token);
  }

  /**
   * The watchdog: an attempt that received nothing within connectTimeout (a long poll: its own
   * timeout plus 10s), or a stream silent for heartbeatTimeout, is reopened. EventSource hides
   * heartbeats, so only its first byte is watched.
   */
  watch(gen) {
    clearTimeout(this.dog);
    const o = this.o.opts;
    let ms = this.gotData ? o.heartbeatTimeout : o.connectTimeout;
    if (this.kind === 'poll') ms = o.pollTimeout * 1000 + 10000;
    else if (this.kind === 'eventsource' && this.gotData) return;
    this.dog = setTimeout(() => this.end(gen, { error: this.gotData ? 'no heartbeat' : 'no answer' }), ms);
  }

  end(gen, { status = 0, error = '', wait = 0 }) {
    if (gen !== this.gen || this.stopped) return;
    this.gen++;
    this.close?.();
    clearTimeout(this.dog);
    const opts = this.o.opts;
    if (status === 204 || status === 403 || status === 400 || (status === 401 && !opts.getToken)) {
      this.stopped = true;
      return this.o.setStatus({ state: 'closed', transport: this.kind, status, error });
    }
    if (status === 401 && !this.refreshed) {
      // The token expired: fetch a new one and retry at once, once.
      this.refreshed = true;
      return void this.o.token(true).then(() => this.open(), (e) => this.end(this.gen, { error: 'getToken: ' + e }));
    }
    if (status !== 401) this.refreshed = false;
    if (this.openedAt && Date.now() - this.openedAt >= opts.stableAfter) this.attempt = 0;
    // An attempt that got no byte is being held back (a buffering proxy, a firewall): after
    // two of those, 'auto' falls back to long polling.
    if (opts.transport === 'auto' && this.kind !== 'poll' && !this.gotData && !status) {
      if (++this.starved >= 2) this.kind = 'poll';
    } else if (this.gotData) this.starved = 0;
    const delay = wait || fullJitter(this.retry || opts.minBackoff, opts.maxBackoff, this.attempt++);
    this.o.setStatus({ state: 'reconnecting', transport: this.kind, delay, status: status || undefined, error });
    this.timer = setTimeout(() => this.open(), delay);
  }

  // ---- transports: each starts one attempt and returns its close function

  fetch(io, token) {
    const ac = new AbortController();
    const headers = { Accept: 'text/event-stream' };
    if (token) headers.Authorization = 'Bearer ' + token;
    if (this.o.lastId) headers['Last-Event-ID'] = this.o.lastId;
    (async () => {
      const res = await fetch(this.o.url + '/events?' + this.query({ format: 'envelope' }), { headers, signal: ac.signal, cache: 'no-store' });
      if (res.status !== 200) return io.ended(await failure(res));
      if (!(res.headers.get('content-type') || '').startsWith('text/event-stream')) return io.ended({ error: 'not an event stream' });
      io.opened();
      const p = new SSEParser({
        event: (e) => (e.event === GAP ? io.gap(parse(e.data)) : io.message(parse(e.data))),
        id: io.position, retry: io.retry,
      });
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        io.data();
        p.push(value);
      }
      io.ended({ error: 'stream ended' });
    })().catch((e) => io.ended({ error: String(e) }));
    return () => ac.abort();
  }

  eventsource(io) {
    const es = new EventSource(this.o.url + '/events?' + this.query({ format: 'envelope', lastEventId: this.o.lastId }));
    const on = (e) => { io.data(); io.message(parse(e.data)); };
    es.onopen = () => { io.opened(); io.data(); };
    es.onmessage = on;
    // EventSource dispatches a typed event only to listeners of that type.
    this.types.forEach((t) => es.addEventListener(t, on));
    es.addEventListener(GAP, (e) => { io.data(); io.gap(parse(e.data)); });
    es.onerror = () => { if (es.readyState === EventSource.CLOSED) io.ended({ error: 'EventSource failed' }); };
    return () => es.close();
  }

  poll(io, token) {
    const ac = new AbortController();
    const headers = token ? { Authorization: 'Bearer ' + token } : {};
    (async () => {
      for (let first = true; ; first = false) {
        // The first request of an attempt does not wait: its answer establishes the cursor (the
        // current position when there is none yet), so 'open' means subscribed, as for SSE.
        const q = this.query({ since: this.o.lastId, timeout: first ? '0' : this.o.opts.pollTimeout });
        const res = await fetch(this.o.url + '/poll?' + q, { headers, signal: ac.signal, cache: 'no-store' });
        if (res.status !== 200) return io.ended(await failure(res));
        const body = await res.json();
        if (first) io.opened();
        io.data();
        if (body.gap) io.gap(body.gap);
        for (const m of body.messages || []) io.message(m);
        if (body.next) io.position(body.next);
      }
    })().catch((e) => io.ended({ error: String(e) }));
    return () => ac.abort();
  }

  ws(io, token) {
    const ws = new WebSocket(wsURL(this.o.url, token));
    const sent = this.sent = new Set(); // publishes on this socket awaiting their ack
    this.sock = ws;
    this.subscribed = false;
    let ping;
    // Publishes sent on this socket that were not answered may or may not have been published.
    const fail = (err) => {
      for (const ref of sent) this.o.settle(ref, err);
      sent.clear();
    };
    ws.onopen = () => {
      ws.send(JSON.stringify({ op: 'subscribe', topics: this.topics, since: this.o.lastId || undefined, ref: 'sub' }));
      ping = setInterval(() => ws.send('{"op":"ping"}'), this.o.opts.heartbeatTimeout / 3);
    };
    ws.onmessage = (e) => {
      io.data();
      const f = parse(e.data);
      if (!f || this.o.answer(f, sent)) return;
      switch (f.type) {
        case 'message': { const { type, ...m } = f; io.message(m); break; }
        case 'gap': { const { type, ref, ...g } = f; io.gap(g); break; }
        case 'subscribed': // catch-up is done: from here on the subscription is live
          this.subscribed = true;
          if (f.position) io.position(f.position);
          io.opened();
          break;
        case 'error':
          if (f.ref === 'sub') io.ended({ status: WS_STATUS[f.code] || 0, error: `${f.code}: ${f.message}` });
          break;
      }
    };
    ws.onclose = (e) => {
      clearInterval(ping);
      fail(closeError(e));
      io.ended({ status: WS_CLOSE[e.code] || 0, error: `closed ${e.code}${e.reason ? ': ' + e.reason : ''}` });
    };
    return () => {
      clearInterval(ping);
      ws.onclose = null;
      fail(new HeraldError('closed', 'connection replaced'));
      if (this.sock === ws) this.sock = null;
      ws.close();
    };
  }
}

function pick(transport) {
  if (transport && transport !== 'auto') return transport;
  const streams = typeof ReadableStream === 'function' && typeof TextDecoderStream === 'function';
  if (typeof fetch === 'function' && streams) return 'fetch';
  return typeof EventSource === 'function' ? 'eventsource' : 'poll';
}

async function failure(res) {
  let error = '';
  try { const b = await res.json(); error = b.message || b.error || ''; } catch { /* not JSON */ }
  const s = Number(res.headers.get('retry-after'));
  return { status: res.status, error, wait: s > 0 ? Math.min(s, 300) * 1000 : 0 };
}

function wsURL(base, token) {
  const u = new URL(base + '/ws');
  u.protocol = u.protocol === 'https:' ? 'wss:' : 'ws:';
  if (token) u.searchParams.set('token', token); // browsers cannot set headers on a WebSocket
  return u.href;
}

function parse(text) { try { return JSON.parse(text); } catch { return null; } }

/** The error for publishes left unanswered when their socket closed. @param {CloseEvent} e */
function closeError(e) {
  return new HeraldError(CLOSE_CODE[e.code] || 'closed', `connection closed (${e.code}${e.reason ? ': ' + e.reason : ''}) before the answer`);
}

/** A publish error relayed from the leader tab. */
function relayed(code, message) {
  const e = new HeraldError(code, '');
  e.message = message || e.message;
  return e;
}

export default { connect, HeraldError };
