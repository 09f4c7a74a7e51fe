// The parts of herald.js that need no browser: the SSE parser, backoff, dedup and matching.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SSEParser, fullJitter, Dedup, match } from '../herald.js';

function parseAll(chunks) {
  const out = [];
  const p = new SSEParser({
    event: (e) => out.push(['event', e.id, e.event, e.data]),
    id: (id) => out.push(['id', id]),
    retry: (ms) => out.push(['retry', ms]),
    comment: (c) => out.push(['comment', c]),
  });
  for (const c of chunks) p.push(c);
  return out;
}

test('SSE parser dispatches events as EventSource does', () => {
  const cases = [
    { name: 'one event', in: ['id: a-1\nevent: e\ndata: x\n\n'], want: [['event', 'a-1', 'e', 'x']] },
    { name: 'default type and no space', in: ['data:x\n\n'], want: [['event', '', 'message', 'x']] },
    { name: 'data lines joined with LF', in: ['data: a\ndata: b\n\n'], want: [['event', '', 'message', 'a\nb']] },
    { name: 'CR and CRLF line ends', in: ['data: a\r\rdata: b\r\n\r\n'], want: [['event', '', 'message', 'a'], ['event', '', 'message', 'b']] },
    { name: 'CRLF split across chunks', in: ['data: a\r', '\n\r', '\ndata: b\n\n'], want: [['event', '', 'message', 'a'], ['event', '', 'message', 'b']] },
    { name: 'field split across chunks', in: ['da', 'ta: he', 'llo\n', '\n'], want: [['event', '', 'message', 'hello']] },
    { name: 'comments and heartbeats', in: [': hi\n\n:\n\n'], want: [['comment', 'hi'], ['comment', '']] },
    { name: 'retry digits only', in: ['retry: 2000\n\nretry: 2s\n\n'], want: [['retry', 2000]] },
    { name: 'id without data is a position', in: ['id: a-9\n\n'], want: [['id', 'a-9']] },
    { name: 'id persists to later events', in: ['id: a-1\ndata: x\n\ndata: y\n\n'], want: [['event', 'a-1', 'message', 'x'], ['event', 'a-1', 'message', 'y']] },
    { name: 'id with NUL ignored', in: ['id: a\0b\ndata: x\n\n'], want: [['event', '', 'message', 'x']] },
    { name: 'empty data line', in: ['data\n\n'], want: [['event', '', 'message', '']] },
    { name: 'no dispatch without blank line', in: ['data: x\n'], want: [] },
    { name: 'unknown fields ignored', in: ['foo: bar\ndata: x\n\n'], want: [['event', '', 'message', 'x']] },
    { name: 'gap notice', in: ['event: herald.gap\ndata: {"reason":"epoch"}\n\n'], want: [['event', '', 'herald.gap', '{"reason":"epoch"}']] },
  ];
  for (const c of cases) assert.deepEqual(parseAll(c.in), c.want, c.name);
});

test('SSE parser handles a stream byte by byte', () => {
  const stream = 'retry: 50\n\nid: e-1\ndata: {"a":1}\r\n\r\n:\n\nid: e-2\n\n';
  assert.deepEqual(parseAll([...stream]), [['retry', 50], ['event', 'e-1', 'message', '{"a":1}'], ['comment', ''], ['id', 'e-2']]);
});

test('full jitter stays in [0, min(cap, base*2^attempt))', () => {
  const cases = [
    { base: 1000, cap: 30000, attempt: 0, upper: 1000 },
    { base: 1000, cap: 30000, attempt: 3, upper: 8000 },
    { base: 1000, cap: 30000, attempt: 20, upper: 30000 },
    { base: 1000, cap: 30000, attempt: 5000, upper: 30000 },
    { base: 60000, cap: 30000, attempt: 0, upper: 60000 }, // the server's retry beats the cap
  ];
  for (const c of cases) {
    assert.equal(fullJitter(c.base, c.cap, c.attempt, () => 0), 0);
    const top = fullJitter(c.base, c.cap, c.attempt, () => 0.999999);
    assert.ok(top < c.upper && top >= c.upper * 0.99, `${JSON.stringify(c)}: top ${top}`);
  }
});

test('dedup remembers a bounded window of ids', () => {
  const d = new Dedup(3);
  assert.equal(d.seen('a'), false);
  assert.equal(d.seen('a'), true);
  d.seen('b'); d.seen('c'); d.seen('d'); // 'a' falls out
  assert.equal(d.seen('a'), false);
  assert.equal(d.seen('d'), true);
  assert.equal(d.seen(''), false, 'messages without id are never dropped');
});

test('patterns match as the server matches them', () => {
  const cases = [
    ['news', 'news', true],
    ['news', 'news/sport', false],
    ['news/*', 'news/sport', true],
    ['news/*', 'news/sport/tennis', false],
    ['news/*', 'news', false],
    ['news/**', 'news/sport/tennis', true],
    ['news/**', 'news', false],
    ['*/42', 'orders/42', true],
    ['**', 'a/b', true],
  ];
  for (const [p, t, want] of cases) assert.equal(match(p, t), want, `match(${p}, ${t})`);
});
