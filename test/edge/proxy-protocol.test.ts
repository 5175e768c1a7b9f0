/**
 * The PROXY protocol through real sockets: headers in (v1, v2, LOCAL) from a
 * trusted source change the client address the backend is told of; untrusted
 * sources and bad headers are closed with nothing sent upstream; headers out
 * (send-proxy v1 / v2) reach a backend that parses them, for plain requests
 * and upgrades alike.
 */
import net from 'node:net';
import t, { type Test } from 'tap';
import WebSocket from 'ws';
import { createProxy, type WspliceProxy, type RefusedEvent } from '../../src/index.js';
import { V2_SIGNATURE } from '../../src/proxy-protocol/parse.js';
import { fdCount } from './fixtures/certs.js';
import { exchange, proxyAwareBackend, waitFor } from './fixtures/peers.js';

const GET = 'GET /x HTTP/1.1\r\nHost: example.test\r\nConnection: close\r\n\r\n';

function v2ipv4(src: string, dst: string, sp: number, dp: number, cmd = 0x21): Buffer {
  const h = Buffer.alloc(28);
  V2_SIGNATURE.copy(h);
  h[12] = cmd;
  h[13] = 0x11;
  h.writeUInt16BE(12, 14);
  src.split('.').forEach((o, i) => (h[16 + i] = Number(o)));
  dst.split('.').forEach((o, i) => (h[20 + i] = Number(o)));
  h.writeUInt16BE(sp, 24);
  h.writeUInt16BE(dp, 26);
  return h;
}

async function setup(t: Test, trusted: string[], upstreamExtra: Record<string, unknown> = {}) {
  const backend = await proxyAwareBackend();
  const proxy: WspliceProxy = createProxy({
    upstreams: { b: { servers: [`127.0.0.1:${backend.port}`], ...upstreamExtra } },
    realIpFrom: trusted,
    forwarding: { xRealIp: true },
    timeouts: { headMs: 2_000, drainMs: 500 },
  });
  const refused: RefusedEvent[] = [];
  proxy.on('refused', (e) => refused.push(e));
  const addr = (await proxy.listen({ host: '127.0.0.1', port: 0, proxyProtocol: true })) as net.AddressInfo;
  t.teardown(async () => {
    await proxy.close();
    await backend.close();
  });
  return { backend, proxy, port: addr.port, refused };
}

t.test('v1 from a trusted source: the backend is told the real client', async (t) => {
  const { backend, port } = await setup(t, ['127.0.0.1']);
  const r = await exchange(port, ['PROXY TCP4 203.0.113.9 192.0.2.1 40000 443\r\n' + GET]);
  t.match(r.data.toString(), /^HTTP\/1.1 200/);
  t.equal(backend.seen.length, 1);
  t.match(backend.seen[0]!.head, /\r\nX-Forwarded-For: 203\.0\.113\.9\r\n/);
  t.match(backend.seen[0]!.head, /\r\nX-Real-IP: 203\.0\.113\.9\r\n/);
  t.equal(backend.seen[0]!.proxy, null, 'nothing is sent on unless asked');
});

t.test('v2, header and request in separate writes and in one', async (t) => {
  const { backend, port } = await setup(t, ['127.0.0.0/8']);
  const h = v2ipv4('198.51.100.20', '192.0.2.1', 5555, 443);
  await exchange(port, [h.subarray(0, 10), h.subarray(10), GET]);
  await exchange(port, [Buffer.concat([h, Buffer.from(GET)])]);
  t.equal(backend.seen.length, 2);
  for (const s of backend.seen) t.match(s.head, /X-Forwarded-For: 198\.51\.100\.20\r\n/);
});

t.test('LOCAL command and v1 UNKNOWN keep the socket address', async (t) => {
  const { backend, port } = await setup(t, ['127.0.0.1']);
  await exchange(port, [Buffer.concat([v2ipv4('198.51.100.20', '192.0.2.1', 1, 2, 0x20), Buffer.from(GET)])]);
  await exchange(port, ['PROXY UNKNOWN\r\n' + GET]);
  t.equal(backend.seen.length, 2);
  for (const s of backend.seen) t.match(s.head, /X-Forwarded-For: 127\.0\.0\.1\r\n/);
});

t.test('refused: untrusted source, malformed, truncated, unknown v2 command, no header', async (t) => {
  const fds = fdCount();
  const { backend, port, refused, proxy } = await setup(t, ['10.0.0.0/8']);
  const r = await exchange(port, ['PROXY TCP4 203.0.113.9 192.0.2.1 40000 443\r\n' + GET]);
  t.ok(r.closed, 'untrusted: closed');
  t.equal(r.data.length, 0, 'untrusted: no answer');
  await waitFor(() => refused.length === 1);
  t.match(refused[0], { code: 'WSPLICE_PROXY_PROTOCOL', reason: /untrusted source 127\.0\.0\.1/ });
  await proxy.close();

  const trusted = await setup(t, ['127.0.0.1']);
  const bad: Array<[Array<string | Buffer>, RegExp, boolean?]> = [
    [['PROXY TCP4 203.0.113.999 192.0.2.1 1 2\r\n' + GET], /bad IPv4/],
    [['PROXY TCP4 203.0.113.9'], /truncated/, true],
    [[Buffer.concat([v2ipv4('1.2.3.4', '5.6.7.8', 1, 2, 0x23), Buffer.from(GET)])], /unknown command 3/],
    [[GET], /no PROXY protocol header/],
    [['PROXY ' + 'x'.repeat(150)], /longer than 107/],
  ];
  for (const [pieces, re, end] of bad) {
    const before = trusted.refused.length;
    const x = await exchange(trusted.port, pieces, { end: end === true });
    t.ok(x.closed, `${re} closed`);
    t.equal(x.data.length, 0, `${re}: no answer`);
    await waitFor(() => trusted.refused.length > before);
    t.match(trusted.refused.at(-1), { code: 'WSPLICE_PROXY_PROTOCOL', reason: re });
  }
  t.equal(backend.seen.length + trusted.backend.seen.length, 0, 'nothing reached a backend');
  t.equal(trusted.proxy.stats().refused, bad.length);
  await trusted.proxy.close();
  t.ok(await waitFor(() => fdCount() <= fds + 4), 'no descriptor left behind');
});

t.test('a header that never completes is cut at the head timeout', async (t) => {
  const { port, refused } = await setup(t, ['127.0.0.1']);
  const r = await exchange(port, ['PROXY TCP4 '], { ms: 10_000 });
  t.ok(r.closed);
  t.match(refused[0], { reason: /not received in time/ });
});

t.test('send-proxy v1 and v2: the backend parses the client in the header (plain and upgrade)', async (t) => {
  for (const version of ['v1', 'v2'] as const) {
    const { backend, port } = await setup(t, ['127.0.0.1'], { sendProxy: version });
    await exchange(port, ['PROXY TCP4 203.0.113.9 192.0.2.1 40000 443\r\n' + GET]);
    const ws = new WebSocket(`ws://127.0.0.1:${port}/ws`, {
      createConnection: () => {
        const s = net.connect({ host: '127.0.0.1', port });
        s.write(`PROXY TCP6 2001:db8::5 2001:db8::1 41000 443\r\n`);
        return s;
      },
    });
    const echoed = await new Promise<string>((resolve, reject) => {
      ws.on('open', () => ws.send('ping'));
      ws.on('message', (m) => resolve(String(m)));
      ws.on('error', reject);
    });
    ws.terminate();
    t.equal(echoed, 'pong', `${version}: the tunnel works behind the header`);
    t.equal(backend.seen.length, 2);
    t.match(backend.seen[0]!.proxy, { version: version === 'v1' ? 1 : 2, source: '203.0.113.9', sourcePort: 40000, destination: '192.0.2.1', destinationPort: 443 });
    t.match(backend.seen[1]!.proxy, { source: '2001:db8::5', sourcePort: 41000, destination: '2001:db8::1' });
    t.match(backend.seen[1]!.head, /^GET \/ws HTTP\/1.1/);
  }
});
