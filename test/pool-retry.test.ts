/**
 * Safe retries: a backend that accepts and then closes or resets before any response byte is
 * retried on the next one for idempotent requests and upgrades, never once a response byte
 * reached the client, never for a POST unless `non_idempotent`, bounded by `tries`.
 */
import t, { type Test } from 'tap';
import {
  echo101, frontPort, namedBackend, openTunnel, parseResponse, rawBackend, rawExchange, type Front, type RawBackend,
} from './support/index.js';
import { createProxy, type ProxyOptions } from '../src/index.js';

/** Closes (or resets) every connection as soon as a whole request head arrived. */
function dropper(reset = false): Promise<RawBackend> {
  return rawBackend((sock, data) => {
    if (data.indexOf('\r\n\r\n') < 0) return;
    if (reset) sock.resetAndDestroy();
    else sock.destroy();
  });
}

const GET = 'GET /r HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n';
const up = (bs: RawBackend[], extra: Partial<ProxyOptions['upstreams'][string]> = {}): ProxyOptions => ({
  upstreams: { u: { servers: bs.map((b) => `127.0.0.1:${b.port}`), maxFails: 0, ...extra } },
});

/** A proxy over `bs`, reached through `front` (its listener, or an app's node:http server calling proxy.web). */
async function setup(t: Test, bs: RawBackend[], extra: Partial<ProxyOptions['upstreams'][string]> = {}, front: Front = 'listener'): Promise<number> {
  const proxy = createProxy(up(bs, extra));
  const p = await frontPort(proxy, front);
  t.teardown(async () => { await proxy.close(); for (const b of bs) await b.close(); });
  return p;
}

const FRONTS = ['listener', 'proxy.web'] as const;

for (const front of FRONTS) for (const reset of [false, true]) {
  t.test(`${front}: a GET whose backend ${reset ? 'resets' : 'closes'} before any response byte goes to the next backend`, async (t) => {
    const a = await dropper(reset);
    const b = await namedBackend('b');
    const p = await setup(t, [a, b], {}, front);
    const r = parseResponse(await rawExchange(p, GET));
    t.equal(r.status, 200);
    t.equal(r.body, 'b');
    t.equal(a.received.length, 1, 'the first backend got the request');
    t.equal(b.received.length, 1, 'and the second one answered it');
  });
}

t.test('an upgrade whose backend closes before the 101 is retried: the tunnel opens on the next', async (t) => {
  const a = await dropper();
  const b = await echo101();
  const p = await setup(t, [a, b]);
  const s = await openTunnel(p);
  t.teardown(() => s.destroy());
  s.resume();
  const echoed = new Promise<string>((r) => s.once('data', (d: Buffer) => r(d.toString())));
  s.write('hello');
  t.equal(await echoed, 'hello');
  t.equal(a.received.length, 1);
});

for (const front of FRONTS) t.test(`${front}: a POST is never sent twice unless non_idempotent`, async (t) => {
  const post = 'POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc';
  {
    const a = await dropper();
    const b = await namedBackend('b');
    const p = await setup(t, [a, b], {}, front);
    t.equal(parseResponse(await rawExchange(p, post)).status, 502);
    t.equal(b.received.length, 0, 'the second backend never saw it');
  }
  {
    const a = await dropper();
    const b = await namedBackend('b');
    const p = await setup(t, [a, b], { nextUpstream: { on: ['error', 'timeout', 'non_idempotent'] } }, front);
    const empty = 'POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n';
    t.equal(parseResponse(await rawExchange(p, empty)).body, 'b', 'non_idempotent: a POST whose body never left the proxy moves on');
  }
  {
    // A fresh group, so the first pick is the dropping backend (a retry passes over tried backends, which moves the rotation).
    const a = await dropper();
    const b = await namedBackend('b');
    const p = await setup(t, [a, b], { nextUpstream: { on: ['error', 'timeout', 'non_idempotent'] } }, front);
    t.equal(parseResponse(await rawExchange(p, post)).status, 502, 'a body already sent cannot be sent again');
    t.equal(b.received.length, 0, 'the second backend never saw it');
  }
});

t.test('never once a response byte reached the client', async (t) => {
  // An interim 100 Continue went out; then the backend closes.
  const a = await rawBackend((sock, data) => {
    if (data.indexOf('\r\n\r\n') < 0) return;
    sock.write('HTTP/1.1 100 Continue\r\n\r\n');
    setImmediate(() => sock.destroy());
  });
  const b = await namedBackend('b');
  const p = await setup(t, [a, b]);
  const text = await rawExchange(p, GET);
  t.match(text, /^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 502 /, 'the client saw the 100, then the failure');
  t.equal(b.received.length, 0, 'nothing was retried');
});

for (const front of FRONTS) t.test(`${front}: tries bounds the attempts; without it one per backend`, async (t) => {
  const bs = [await dropper(), await dropper(), await dropper()];
  const p = await setup(t, bs, { nextUpstream: { tries: 2 } }, front);
  t.equal(parseResponse(await rawExchange(p, GET)).status, 502);
  t.equal(bs.reduce((n, b) => n + b.received.length, 0), 2, 'two tries in all');
  const cs = [await dropper(), await dropper(), await dropper()];
  const q = await setup(t, cs, {}, front);
  t.equal(parseResponse(await rawExchange(q, GET)).status, 502);
  t.same(cs.map((b) => b.received.length), [1, 1, 1], 'each backend once');
});

t.test('http_503: a 503 not yet forwarded moves on when configured, else it is the answer', async (t) => {
  const busy = (): Promise<RawBackend> => rawBackend((sock, data) => {
    if (data.indexOf('\r\n\r\n') >= 0) sock.end('HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\nbusy');
  });
  const a = await busy();
  const b = await namedBackend('b');
  const p = await setup(t, [a, b], { nextUpstream: { on: ['error', 'http_503'] } });
  t.equal(parseResponse(await rawExchange(p, GET)).body, 'b');
  const c = await busy();
  const d = await namedBackend('d');
  const q = await setup(t, [c, d]);
  const r = parseResponse(await rawExchange(q, GET));
  t.equal(r.status, 503);
  t.equal(r.body, 'busy', 'the backend\'s own 503 is relayed');
  t.equal(d.received.length, 0);
});

t.test('nextUpstream: on [] turns retries off', async (t) => {
  const a = await dropper();
  const b = await namedBackend('b');
  const p = await setup(t, [a, b], { nextUpstream: { on: [] } });
  t.equal(parseResponse(await rawExchange(p, GET)).status, 502);
  t.equal(b.received.length, 0);
});

t.test('timeoutMs: no new try once it has passed since the first began', async (t) => {
  // The first backend closes only after 50 ms have passed: by then a 1 ms bound is spent.
  const slow = await rawBackend((sock, data) => {
    if (data.indexOf('\r\n\r\n') >= 0) setTimeout(() => sock.destroy(), 50);
  });
  const b = await namedBackend('b');
  const p = await setup(t, [slow, b], { nextUpstream: { timeoutMs: 1 } });
  t.equal(parseResponse(await rawExchange(p, GET)).status, 502);
  t.equal(b.received.length, 0, 'the second backend was not tried');
});
