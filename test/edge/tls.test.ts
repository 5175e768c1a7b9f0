/**
 * TLS termination through real sockets, certificates made at test time:
 * https and wss from independent clients (node:https, ws) with the test CA,
 * SNI, ALPN, session resumption, reload while a wss tunnel keeps echoing (by
 * call and by a file change), a bad new certificate refused, mTLS, plain HTTP
 * and stalled handshakes on the TLS port, PROXY before TLS, and no leaked fd.
 */
import { copyFileSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import net from 'node:net';
import tls from 'node:tls';
import t, { type Test } from 'tap';
import WebSocket, { WebSocketServer } from 'ws';
import { createProxy, type WspliceProxy, type RefusedEvent } from '../../src/index.js';
import type { ReloadResult } from '../../src/tls/terminator.js';
import { fdCount, TestPki, type Pair } from './fixtures/certs.js';
import { exchange, waitFor } from './fixtures/peers.js';

const pki = new TestPki();
t.teardown(() => pki.cleanup());
const a = pki.leaf('a', ['a.test', 'localhost', '127.0.0.1']);
const b = pki.leaf('b', ['b.test', '*.wild.test']);
const a2 = pki.leaf('a2', ['a.test', 'localhost', '127.0.0.1']);
const client = pki.leaf('client', ['client.test'], { client: true });
const otherCa = pki.selfSigned('other-ca', 'another CA');
const stranger = pki.leaf('stranger', ['client.test'], { ca: otherCa, client: true });
const expired = pki.leaf('expired', ['old.test'], { expired: true });
const caPem = pki.read(pki.ca.cert);

/** A `ws` echo backend that also answers plain requests with the headers it got. */
async function backend(t: Test): Promise<number> {
  const server = (await import('node:http')).createServer((req, res) => res.end(JSON.stringify(req.headers)));
  const wss = new WebSocketServer({ server });
  wss.on('connection', (ws) => ws.on('message', (m, bin) => ws.send(m, { binary: bin })));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  t.teardown(() => {
    for (const c of wss.clients) c.terminate();
    server.closeAllConnections();
    return new Promise<void>((r) => server.close(() => r()));
  });
  return (server.address() as AddressInfo).port;
}

/** Copies of the certificate files, so a test may rewrite them. */
function copies(name: string, p: Pair): Pair {
  const cert = `${pki.dir}/${name}-live.pem`;
  const key = `${pki.dir}/${name}-live.key`;
  copyFileSync(p.cert, cert);
  copyFileSync(p.key, key);
  return { cert, key };
}

async function setup(t: Test, tlsOpts: Record<string, unknown>, extra: Record<string, unknown> = {}, listenExtra: Record<string, unknown> = {}) {
  const port = await backend(t);
  const proxy: WspliceProxy = createProxy({ upstreams: { b: { servers: [`127.0.0.1:${port}`] } }, timeouts: { drainMs: 300 }, ...extra });
  const refused: RefusedEvent[] = [];
  const reloads: ReloadResult[] = [];
  proxy.on('refused', (e) => refused.push(e));
  proxy.on('tlsReload', (r) => reloads.push(r));
  const addr = (await proxy.listen({ host: '127.0.0.1', port: 0, tls: tlsOpts as never, ...listenExtra })) as AddressInfo;
  t.teardown(() => proxy.close());
  return { proxy, port: addr.port, refused, reloads };
}

function get(port: number, opts: https.RequestOptions = {}): Promise<{ status: number; body: string; alpn: string | false | null; socket: tls.TLSSocket }> {
  return new Promise((resolve, reject) => {
    const req = https.request({ host: '127.0.0.1', port, path: '/', ca: caPem, servername: 'a.test', agent: false, ...opts }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, alpn: (res.socket as tls.TLSSocket).alpnProtocol, socket: res.socket as tls.TLSSocket }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** The certificate the proxy presents for `servername` (fingerprint, names). */
function peerCert(port: number, servername?: string): Promise<tls.PeerCertificate> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port, ca: caPem, ...(servername !== undefined ? { servername } : {}), rejectUnauthorized: false }, () => {
      const c = s.getPeerCertificate();
      s.destroy();
      resolve(c);
    });
    s.on('error', reject);
  });
}

function wssOpen(port: number, opts: WebSocket.ClientOptions = {}): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`wss://127.0.0.1:${port}/echo`, { ca: caPem, servername: 'a.test', ...opts } as WebSocket.ClientOptions);
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}

function echo(ws: WebSocket, msg: string): Promise<string> {
  return new Promise((resolve) => {
    ws.once('message', (m) => resolve(String(m)));
    ws.send(msg);
  });
}

t.test('https and wss through the proxy; X-Forwarded-Proto https; ALPN http/1.1', async (t) => {
  const { port } = await setup(t, { certificates: [a] });
  const r = await get(port);
  t.equal(r.status, 200);
  t.equal(JSON.parse(r.body)['x-forwarded-proto'], 'https', 'the scheme follows the listener');
  const s = await new Promise<tls.TLSSocket>((resolve, reject) => {
    const c = tls.connect({ host: '127.0.0.1', port, ca: caPem, servername: 'a.test', ALPNProtocols: ['h2', 'http/1.1'] }, () => resolve(c));
    c.on('error', reject);
  });
  t.equal(s.getProtocol(), 'TLSv1.3', 'TLS 1.3 by default');
  t.equal(s.alpnProtocol, 'http/1.1', 'ALPN: http/1.1 even when h2 is offered first');
  s.destroy();
  const ws = await wssOpen(port);
  t.equal(await echo(ws, 'over wss'), 'over wss');
  ws.terminate();
});

t.test('a wss tunnel on the default relay carries past the promotion mark (256 KiB) and keeps echoing', { timeout: 30_000 }, async (t) => {
  // The default relay moves busy tunnels to the native one; a TLS socket has no fd to move
  // and must stay on JS, alive, rather than be paused or ended by the attempt.
  const { proxy, port } = await setup(t, { certificates: [a] });
  const ws = await wssOpen(port);
  const closes: unknown[] = [];
  proxy.on('tunnelClose', (e) => closes.push(e));
  for (const n of [1000, 300_000, 1 << 20]) {
    const got = new Promise<Buffer>((resolve) => ws.once('message', (m) => resolve(m as Buffer)));
    ws.send(Buffer.alloc(n, n & 255));
    const m = await got;
    t.equal(m.length, n, `${n} bytes echoed`);
  }
  t.equal(await echo(ws, 'still here'), 'still here', 'the tunnel still echoes after the mark');
  t.same(closes, [], 'no tunnel ended');
  ws.terminate();
});

t.test('SNI picks the certificate of each name; unknown names get the first', async (t) => {
  const { port } = await setup(t, { certificates: [a, { ...b, serverNames: ['b.test', '*.wild.test'] }] });
  t.match((await peerCert(port, 'a.test')).subject, { CN: 'a.test' });
  t.match((await peerCert(port, 'b.test')).subject, { CN: 'b.test' });
  t.match((await peerCert(port, 'x.wild.test')).subject, { CN: 'b.test' }, 'wildcard');
  t.match((await peerCert(port, 'other.test')).subject, { CN: 'a.test' }, 'default');
  t.match((await peerCert(port)).subject, { CN: 'a.test' }, 'no SNI');
  const r = await get(port, { servername: 'b.test' });
  t.equal(r.status, 200, 'verified against b.test');
});

t.test('TLS 1.2 only, and session resumption with tickets and with the cache', async (t) => {
  for (const sessionTickets of [true, false]) {
    const { port } = await setup(t, { certificates: [a], protocols: ['TLSv1.2'], sessionTickets });
    const first = await new Promise<tls.TLSSocket>((resolve, reject) => {
      const s = tls.connect({ host: '127.0.0.1', port, ca: caPem, servername: 'a.test' }, () => resolve(s));
      s.on('error', reject);
    });
    t.equal(first.getProtocol(), 'TLSv1.2');
    const session = first.getSession();
    first.destroy();
    t.ok(session, 'a session to resume');
    const second = await new Promise<tls.TLSSocket>((resolve, reject) => {
      const s = tls.connect({ host: '127.0.0.1', port, ca: caPem, servername: 'a.test', session: session! }, () => resolve(s));
      s.on('error', reject);
    });
    t.ok(second.isSessionReused(), `resumed (tickets ${sessionTickets ? 'on' : 'off'})`);
    second.destroy();
  }
});

t.test('reload swaps the certificate while a wss tunnel keeps echoing; a bad one is refused', async (t) => {
  const live = copies('reload', a);
  const { proxy, port, reloads } = await setup(t, { certificates: [live], watch: false });
  const before = (await peerCert(port, 'a.test')).fingerprint256;
  const ws = await wssOpen(port);
  t.equal(await echo(ws, 'one'), 'one');
  copyFileSync(a2.cert, live.cert);
  copyFileSync(a2.key, live.key);
  const [res] = proxy.reloadCertificates();
  t.match(res, { ok: true, trigger: 'reload' });
  const after = (await peerCert(port, 'a.test')).fingerprint256;
  t.not(after, before, 'new handshakes get the new certificate');
  t.equal(await echo(ws, 'two'), 'two', 'the open tunnel is untouched');
  writeFileSync(live.cert, 'not a certificate');
  const [bad] = proxy.reloadCertificates();
  t.match(bad, { ok: false, reason: /not a PEM certificate/ });
  t.equal((await peerCert(port, 'a.test')).fingerprint256, after, 'the old certificate stays');
  copyFileSync(a.cert, live.cert); // a key that does not match
  t.match(proxy.reloadCertificates()[0], { ok: false, reason: /does not match/ });
  t.equal(reloads.length, 3);
  t.equal(await echo(ws, 'three'), 'three');
  ws.terminate();
});

t.test('a change of the files is picked up by the watcher', async (t) => {
  const live = copies('watch', a);
  const { port, reloads } = await setup(t, { certificates: [live] });
  const before = (await peerCert(port, 'a.test')).fingerprint256;
  copyFileSync(a2.key, live.key);
  copyFileSync(a2.cert, live.cert);
  t.ok(await waitFor(() => reloads.some((r) => r.ok && r.trigger === 'watch'), 500), 'reloaded on change');
  t.not((await peerCert(port, 'a.test')).fingerprint256, before);
});

t.test('mTLS: verifyClient on needs a certificate from the client CA', async (t) => {
  const { port, refused } = await setup(t, { certificates: [a], clientCa: pki.ca.cert, verifyClient: 'on' });
  const ok = await get(port, { cert: pki.read(client.cert), key: pki.read(client.key) });
  t.equal(ok.status, 200, 'trusted client certificate');
  await t.rejects(get(port), 'no client certificate: refused');
  await t.rejects(get(port, { cert: pki.read(stranger.cert), key: pki.read(stranger.key) }), 'another CA: refused');
  t.ok(await waitFor(() => refused.filter((e) => e.code === 'WSPLICE_TLS_HANDSHAKE').length >= 2));
  t.ok(refused.some((e) => /certificate/i.test(e.reason)), 'the reason names the certificate');
});

t.test('mTLS optional lets clients without a certificate in', async (t) => {
  const { port } = await setup(t, { certificates: [a], clientCa: pki.ca.cert, verifyClient: 'optional' });
  t.equal((await get(port)).status, 200);
});

t.test('plain HTTP to the TLS port: 400, closed; a stalled handshake is cut at the head timeout', async (t) => {
  const { port, refused } = await setup(t, { certificates: [a] }, { timeouts: { headMs: 500, drainMs: 300 } });
  const r = await exchange(port, ['GET / HTTP/1.1\r\nHost: a\r\n\r\n']);
  t.ok(r.closed);
  t.match(r.data.toString(), /^HTTP\/1.1 400 Bad Request\r\n[^]*plain HTTP request sent to HTTPS port/);
  const silent = await exchange(port, [], { ms: 5_000 });
  t.ok(silent.closed, 'no ClientHello: closed');
  const half = await exchange(port, [Buffer.from([0x16, 0x03, 0x01, 0x00, 0x50, 0x01])], { ms: 5_000 });
  t.ok(half.closed, 'half a ClientHello: closed');
  t.ok(await waitFor(() => refused.length >= 3));
  t.match(refused.map((e) => e.reason).join('\n'), /plain HTTP[^]*no ClientHello in time[^]*TLS handshake failed/);
});

t.test('PROXY header, then TLS: the backend sees the real client and https', async (t) => {
  const { port } = await setup(t, { certificates: [a] }, { realIpFrom: ['127.0.0.1'] }, { proxyProtocol: true });
  const body = await new Promise<string>((resolve, reject) => {
    const raw = net.connect({ host: '127.0.0.1', port }, () => {
      raw.write('PROXY TCP4 203.0.113.50 192.0.2.1 50000 443\r\n');
      const req = https.request({ createConnection: () => tls.connect({ socket: raw, ca: caPem, servername: 'a.test' }), path: '/', host: 'a.test' }, (res) => {
        let s = '';
        res.on('data', (d: Buffer) => (s += d));
        res.on('end', () => resolve(s));
      });
      req.on('error', reject);
      req.end();
    });
  });
  const h = JSON.parse(body) as Record<string, string>;
  t.equal(h['x-forwarded-for'], '203.0.113.50');
  t.equal(h['x-forwarded-proto'], 'https');
});

t.test('bad files: a clear error at listen; an expired certificate is a warning', async (t) => {
  const proxy = createProxy({ upstreams: { b: { servers: ['127.0.0.1:1'] } } });
  await t.rejects(proxy.listen({ port: 0, host: '127.0.0.1', tls: { certificates: [{ cert: '/nonexistent.pem', key: a.key }] } }), /cannot read certificate \/nonexistent.pem: ENOENT/);
  await t.rejects(proxy.listen({ port: 0, host: '127.0.0.1', tls: { certificates: [{ cert: a.cert, key: b.key }] } }), /does not match/);
  await t.rejects(proxy.listen({ port: 0, host: '127.0.0.1', tls: { certificates: [] } }), /listen.tls.certificates/);
  await t.rejects(proxy.listen({ port: 0, host: '127.0.0.1', tls: { certificates: [a], verifyClient: 'on' } }), /clientCa/);
  await t.rejects(proxy.listen({ port: 0, host: '127.0.0.1', tls: { certificates: [a], protocols: ['TLSv1.1', 'TLSv1.3'] } }), /contiguous/);
  await proxy.listen({ port: 0, host: '127.0.0.1', tls: { certificates: [expired] } });
  await proxy.close();
  const { TlsTerminator } = await import('../../src/tls/terminator.js');
  const { resolveListenerTls } = await import('../../src/tls/options.js');
  const term = new TlsTerminator(resolveListenerTls({ certificates: [expired], watch: false }), 1000);
  t.match(term.warnings[0], /expired on/);
  term.close();
});

t.test('no descriptor leaks across handshakes, failures and closes', async (t) => {
  const fds = fdCount();
  {
    const { proxy, port } = await setup(t, { certificates: [a], watch: false });
    for (let i = 0; i < 5; i++) {
      await get(port);
      await exchange(port, ['GET / HTTP/1.1\r\n\r\n']);
      await t.rejects(get(port, { ca: pki.read(otherCa.cert) }));
    }
    const ws = await wssOpen(port);
    await echo(ws, 'x');
    ws.terminate();
    await proxy.close();
  }
  t.ok(await waitFor(() => fdCount() <= fds + 6), `fds ${fds} -> ${fdCount()}`);
});
