import t from 'tap';
import { readRequestHead, readResponseHead } from '../src/http1/head.js';
import {
  Ev, F_CHUNKED, F_CONTENT_LENGTH, F_TRANSFER_ENCODING, Limit, Parser, ParserPool, TYPE_REQUEST, TYPE_RESPONSE, defaultMaxParsers, llhttpBuild,
} from '../src/http1/llhttp.js';

const limits = { maxHeadBytes: 16384, maxHeaders: 100, maxUriBytes: 8192 };

t.test('the loaded build is llhttp 9 wasm from undici 7', async (t) => {
  t.match(llhttpBuild(), /^llhttp 9 \(wasm( simd)?\) from undici 7\./);
});

t.test('a request head: method, target, version, headers in order, where the head ends', async (t) => {
  const p = new Parser(TYPE_REQUEST, limits);
  p.reset();
  const head = 'GET /chat?x=1 HTTP/1.1\r\nHost: example.com\r\nX-Empty:\r\nX-Pad:   padded value  \r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n';
  const chunk = Buffer.from(head + 'EARLY');
  t.equal(p.execute(chunk, 0), Ev.Head);
  t.equal(p.offset, head.length, 'offset is the first byte after the head');
  const h = readRequestHead(p);
  t.equal(h.method, 'GET');
  t.equal(h.target, '/chat?x=1');
  t.same([h.versionMajor, h.versionMinor], [1, 1]);
  t.same(h.names, ['Host', 'X-Empty', 'X-Pad', 'Upgrade', 'Connection']);
  t.same(h.values, ['example.com', '', 'padded value', 'websocket', 'Upgrade']);
  t.equal(h.headBytes, head.length);
});

t.test('a head split at every byte boundary parses the same', async (t) => {
  const head = 'POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nX-Split-Name: split-value\r\n\r\nabc';
  const bytes = Buffer.from(head);
  for (let cut = 1; cut < bytes.length; cut++) {
    const p = new Parser(TYPE_REQUEST, limits);
    p.reset();
    let ev = p.execute(bytes.subarray(0, cut), 0);
    let second = bytes.subarray(cut);
    if (ev === Ev.More) ev = p.execute(second, 0);
    else second = bytes.subarray(p.offset); // head complete within the first part
    if (ev !== Ev.Head) { t.fail(`cut ${cut}: ${ev}`); continue; }
    const h = readRequestHead(p);
    if (h.names.join() !== 'Host,Content-Length,X-Split-Name' || h.values.join() !== 'h,3,split-value' || h.contentLength !== 3) {
      t.fail(`cut ${cut}: ${h.names.join()} ${h.values.join()}`);
    }
    p.destroy();
  }
  t.pass('every cut');
});

t.test('flags and Content-Length are read from llhttp\'s own state', async (t) => {
  const p = new Parser(TYPE_REQUEST, limits);
  p.reset();
  p.execute(Buffer.from('POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 12345\r\n\r\n'), 0);
  t.ok(p.flags & F_CONTENT_LENGTH);
  t.equal(p.contentLength, 12345);
  p.reset();
  p.execute(Buffer.from('POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n'), 0);
  t.ok(p.flags & F_CHUNKED && p.flags & F_TRANSFER_ENCODING);
});

t.test('body framing: the end of a chunked message is found, pipelined bytes follow', async (t) => {
  const p = new Parser(TYPE_REQUEST, limits);
  p.reset();
  const msg = Buffer.from('POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nGET /next HTTP/1.1\r\nHost: h\r\n\r\n');
  t.equal(p.execute(msg, 0), Ev.Head);
  t.equal(p.execute(msg, p.offset), Ev.End);
  t.equal(msg.subarray(p.offset).toString().slice(0, 9), 'GET /next');
  t.equal(p.execute(msg, p.offset), Ev.Head);
  t.equal(readRequestHead(p).target, '/next');
});

t.test('limits: head size, header count, target length', async (t) => {
  const small = { maxHeadBytes: 1024, maxHeaders: 3, maxUriBytes: 64 };
  const p = new Parser(TYPE_REQUEST, small);
  p.reset();
  t.equal(p.execute(Buffer.from(`GET / HTTP/1.1\r\nX: ${'a'.repeat(2000)}`), 0), Ev.Error);
  t.equal(p.limit, Limit.HeadTooLarge);
  p.reset();
  t.equal(p.execute(Buffer.from('GET / HTTP/1.1\r\nA: 1\r\nB: 1\r\nC: 1\r\nD: 1\r\n\r\n'), 0), Ev.Error);
  t.equal(p.limit, Limit.TooManyHeaders);
  p.reset();
  t.equal(p.execute(Buffer.from(`GET /${'a'.repeat(100)} HTTP/1.1\r\nHost: h\r\n\r\n`), 0), Ev.Error);
  t.equal(p.limit, Limit.UriTooLong);
});

t.test('strict parsing: llhttp\'s lenient flags stay off', async (t) => {
  const p = new Parser(TYPE_REQUEST, limits);
  for (const bad of [
    'GET / HTTP/1.1\nHost: h\n\n',                  // bare LF
    'GET / HTTP/1.1\r\nHost: h\r\n folded\r\n\r\n', // obs-fold
    'GET / HTTP/1.1\r\nHost : h\r\n\r\n',           // space before colon
    'GET / HTTP/1.1\r\nX: a\0b\r\n\r\n',            // NUL in a value
    'POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n',
    'POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n',
  ]) {
    p.reset();
    let ev = p.execute(Buffer.from(bad), 0);
    if (ev === Ev.Head) ev = p.execute(Buffer.from(bad), p.offset);
    t.equal(ev, Ev.Error, JSON.stringify(bad));
  }
});

t.test('response heads, and a pool that reuses parsers', async (t) => {
  const pool = new ParserPool(TYPE_RESPONSE, limits);
  const p = pool.acquire()!;
  t.equal(p.execute(Buffer.from('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n'), 0), Ev.Head);
  const r = readResponseHead(p);
  t.equal(r.status, 101);
  t.equal(r.reason, 'Switching Protocols');
  pool.release(p);
  const q = pool.acquire()!;
  t.equal(q, p, 'the same parser comes back, reset');
  t.equal(q.execute(Buffer.from('HTTP/1.1 204 No Content\r\n\r\n'), 0), Ev.Head);
  t.equal(readResponseHead(q).status, 204);
});

t.test('a pool never holds more than its cap: acquire answers null, a release makes room', async (t) => {
  const pool = new ParserPool(TYPE_REQUEST, limits, 2);
  const a = pool.acquire();
  const b = pool.acquire();
  t.ok(a !== null && b !== null, 'two parsers');
  t.equal(pool.acquire(), null, 'the third is refused');
  t.equal(pool.refusals, 1);
  t.equal(pool.inUse, 2);
  pool.release(a!);
  t.equal(pool.acquire(), a, 'the released one comes back');
  t.equal(defaultMaxParsers(16384), 32768, 'default: 1 GiB of regions over both directions');
  t.equal(defaultMaxParsers(512 * 1024), 1024);
});

// Kept last: it grows this process's wasm memory to its 4 GiB limit (virtual; few pages are touched).
t.test('parsers past 2 GiB of wasm memory work, and past 4 GiB acquire answers null instead of throwing', async (t) => {
  const big = { maxHeadBytes: 64 * 1024 * 1024, maxHeaders: 100, maxUriBytes: 8192 };
  const pool = new ParserPool(TYPE_REQUEST, big, 100);
  const ps: Parser[] = [];
  let refused = 0;
  for (let i = 0; i < 80; i++) {
    const p = pool.acquire();
    if (p === null) {
      refused++;
      continue;
    }
    ps.push(p);
    // Split head: the first part is copied into the region, the rest lands behind it.
    if (p.execute(Buffer.from(`GET /p${i} HTTP/1.1\r\nHost: h${i}\r\n`), 0) !== Ev.More) t.fail(`parser ${i}: head part`);
  }
  t.ok(ps.length > 32, `${ps.length} parsers of 64 MiB: past 2 GiB`);
  t.ok(refused > 0, `${refused} refused once the 4 GiB wasm32 memory was spent`);
  let good = 0;
  ps.forEach((p, i) => {
    const ev = p.execute(Buffer.from('X-N: v\r\n\r\n'), 0);
    const h = readRequestHead(p);
    if (ev === Ev.Head && h.target === `/p${i}` && h.values.join() === `h${i},v`) good++;
  });
  t.equal(good, ps.length, 'every parser, below and above 2 GiB, parsed its head');
  const last = ps.at(-1)!;
  last.reset();
  t.equal(last.execute(Buffer.from('GET / HTTP/1.1\r\nBad Name: x\r\n\r\n'), 0), Ev.Error);
  t.match(last.reason, /header|token|character/i, 'errors above 2 GiB have their reason');
  t.equal(last.offset, 'GET / HTTP/1.1\r\nBad'.length, 'and their position');
});
