// WebSocket smuggling: the upstream refuses the upgrade (426/200/3xx) or
// answers a 101 that is not a valid WebSocket accept, and the client then
// speaks raw HTTP on the connection. wsplice relays the refusal (or answers
// 502), never opens a tunnel, and the upstream never receives the raw request,
// whether it comes after the response or right behind the upgrade head.
// nginx 1.22 and HAProxy 2.6 open a tunnel on any 101 (measured: fixtures/peers.ts).
import t, { type Test } from 'tap';
import { MARKER, SMUGGLED, WS_CASES, WS_HEAD } from './fixtures/cases.js';
import { connBytes, FRONTS, parseRequests, rawExchange, RecordingBackend, startProxy, WS_ACCEPT, type Front } from './fixtures/harness.js';

/** A backend answering every upgrade head with `response`, keeping the connection open. */
async function setup(t: Test, response: string, front: Front) {
  const backend = await new RecordingBackend((_head, conn) => conn.socket.write(response)).listen();
  const h = await startProxy({ upstreams: { b: { servers: [`127.0.0.1:${backend.port}`] } } }, front);
  const tunnels: unknown[] = [];
  h.proxy.on('tunnel', (e) => tunnels.push(e));
  t.teardown(async () => {
    await h.proxy.close();
    await backend.close();
  });
  return { backend, h, tunnels };
}

/** What the upstream connection received: exactly the forwarded upgrade head, nothing after it. */
function assertOnlyTheUpgradeHead(t: Test, backend: RecordingBackend): void {
  t.equal(backend.conns.length, 1, 'one upstream connection');
  const bytes = connBytes(backend.conns[0]!);
  t.notOk(bytes.includes(MARKER), 'the raw request never reached the upstream');
  const parsed = parseRequests(bytes);
  t.equal(parsed.messages.length, 1, 'the upstream received one request: the upgrade');
  t.equal(parsed.incomplete, 0, 'and no byte after it');
  t.match(parsed.messages[0]?.raw ?? '', /^GET \/chat HTTP\/1\.1\r\n/);
}

// Upgrade look-alikes the engine serves as plain HTTP: the Upgrade header is
// stripped, so a backend that answers 101 anyway is a protocol error (502), and
// nothing the client sends next is tunnelled. This is the h2c smuggling family
// (Bishop Fox, 2020): nginx with the classic `Upgrade $http_upgrade` map forwards
// `Upgrade: h2c` and tunnels on the backend's 101.
const PLAIN_UPGRADES: Array<{ id: string; head: string; notAnUpgradeToNode?: boolean }> = [
  {
    id: 'h2c upgrade',
    head: 'GET /chat HTTP/1.1\r\nHost: a.test\r\nUpgrade: h2c\r\nConnection: Upgrade, HTTP2-Settings\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n',
  },
  {
    id: 'websocket upgrade over HTTP/1.0',
    head: 'GET /chat HTTP/1.0\r\nHost: a.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
  },
  {
    id: 'websocket upgrade with POST',
    head: 'POST /chat HTTP/1.1\r\nHost: a.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nContent-Length: 0\r\n\r\n',
  },
  {
    id: 'Upgrade: websocket without the Connection token',
    head: 'GET /chat HTTP/1.1\r\nHost: a.test\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
    notAnUpgradeToNode: true, // no 'upgrade' event: an embedding app serves it as its own plain request
  },
];

for (const front of FRONTS) {
  for (const c of WS_CASES) {
    const statusLine = new RegExp(`^HTTP/1\\.1 ${c.status} `);

    t.test(`${front}: upstream answers ${c.id}: client gets ${c.status}, a raw request sent after it never reaches the upstream (nginx 1.22: ${c.nginx}; HAProxy 2.6: ${c.haproxy})`, async (t) => {
      const { backend, h, tunnels } = await setup(t, c.response, front);
      const r = await rawExchange(h.port, [WS_HEAD, SMUGGLED], {
        waitFor: (s) => statusLine.test(s.replace(/^HTTP\/1\.1 100 [^\r]*\r\n\r\n/, '')) && s.includes('\r\n\r\n'),
      });
      t.ok(r.statuses.includes(c.status), `client saw ${c.status}`, { text: r.text.slice(0, 300) });
      t.notOk(r.statuses.includes(101), 'no 101 reached the client');
      t.equal(r.end, 'fin', 'the proxy closed the connection');
      await new Promise((res) => setTimeout(res, 50)); // let anything in flight land before looking
      t.equal(tunnels.length, 0, 'no tunnel event');
      assertOnlyTheUpgradeHead(t, backend);
    });

    t.test(`${front}: upstream answers ${c.id}: a raw request pipelined behind the upgrade head (early data) never reaches the upstream`, async (t) => {
      const { backend, h, tunnels } = await setup(t, c.response, front);
      const r = await rawExchange(h.port, [WS_HEAD + SMUGGLED]);
      t.ok(r.statuses.includes(c.status), `client saw ${c.status}`);
      t.notOk(r.statuses.includes(101), 'no 101 reached the client');
      await new Promise((res) => setTimeout(res, 50));
      t.equal(tunnels.length, 0, 'no tunnel event');
      assertOnlyTheUpgradeHead(t, backend);
      if (c.status === 502) t.ok(h.upstreamErrors.some((e) => /upgrade refused/.test(e.reason)), 'counted as an upstream error with the reason');
    });
  }

  // The control: with a valid 101 the same bytes DO reach the upstream (through
  // the tunnel). Without it, a harness that lost bytes would pass every case above.
  t.test(`${front}: control: after a valid 101 the bytes the client sends do reach the upstream, in order`, async (t) => {
    const ok = `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${WS_ACCEPT}\r\n\r\n`;
    const { backend, h, tunnels } = await setup(t, ok, front);
    const early = 'early-bytes|';
    const r = await rawExchange(h.port, [WS_HEAD + early, SMUGGLED], { waitFor: (s) => s.includes('\r\n\r\n'), halfClose: true, timeoutMs: 3000 });
    t.same(r.statuses, [101]);
    await new Promise((res) => setTimeout(res, 50));
    t.equal(tunnels.length, 1, 'a tunnel opened');
    const got = connBytes(backend.conns[0]!).toString('latin1');
    const headEnd = got.indexOf('\r\n\r\n') + 4;
    t.equal(got.slice(headEnd), early + SMUGGLED, 'early data first, then the rest, byte for byte');
  });


  for (const c of PLAIN_UPGRADES) {
    t.test(`${front}: ${c.id}: forwarded as plain HTTP without Upgrade; a 101 from the backend is a 502 and nothing is tunnelled`, { skip: front === 'proxy.ws' && c.notAnUpgradeToNode === true && 'Node emits no upgrade event for it' }, async (t) => {
      const ok = `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${WS_ACCEPT}\r\n\r\n`;
      const { backend, h, tunnels } = await setup(t, ok, front);
      const r = await rawExchange(h.port, [c.head, SMUGGLED], { waitFor: (s) => s.includes('\r\n\r\n') });
      t.same(r.statuses, [502], 'the client gets 502');
      await new Promise((res) => setTimeout(res, 50));
      t.equal(tunnels.length, 0, 'no tunnel');
      t.equal(backend.conns.length, 1);
      const bytes = connBytes(backend.conns[0]!);
      t.notOk(bytes.includes(MARKER), 'the raw request never reached the upstream');
      const parsed = parseRequests(bytes);
      t.equal(parsed.messages.length, 1, 'one plain request upstream');
      t.equal(parsed.incomplete, 0, 'nothing after it');
      const head = parsed.messages[0]?.raw ?? '';
      t.notMatch(head, /^upgrade:/im, 'Upgrade stripped');
      t.notMatch(head, /^http2-settings:/im, 'Connection-named headers stripped');
      t.match(head, /^Connection: close\r$/m, 'Connection: close upstream');
    });
  }
}
