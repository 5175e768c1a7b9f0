/**
 * TLS to upstreams, against node:https and ws backends with certificates made
 * at test time: verification against a CA file, SNI, a wrong CA refused as a
 * 502 counted against the backend with the reason in the event, verify off,
 * a client certificate the backend requires, session reuse, wss upstream,
 * and the PROXY header sent in the clear before TLS.
 */
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import t, { type Test } from 'tap';
import WebSocket, { WebSocketServer } from 'ws';
import { createProxy, type UpstreamErrorEvent } from '../../src/index.js';
import { TestPki } from './fixtures/certs.js';
import { exchange } from './fixtures/peers.js';

const pki = new TestPki();
t.teardown(() => pki.cleanup());
const server = pki.leaf('backend', ['backend.test', '127.0.0.1']);
const client = pki.leaf('client', ['proxy.test'], { client: true });
const otherCa = pki.selfSigned('other', 'other CA');

interface Seen { servername: string | false; reused: boolean; authorized: boolean }

async function httpsBackend(t: Test, opts: { requireClient?: boolean } = {}): Promise<{ port: number; seen: Seen[] }> {
  const seen: Seen[] = [];
  const srv = https.createServer({
    cert: pki.read(server.cert), key: pki.read(server.key),
    ...(opts.requireClient ? { ca: pki.read(pki.ca.cert), requestCert: true, rejectUnauthorized: true } : {}),
  }, (req, res) => {
    const s = req.socket as TLSSocket;
    seen.push({ servername: (s as TLSSocket & { servername: string | false }).servername, reused: s.isSessionReused(), authorized: s.authorized });
    res.end(`hello ${req.headers['x-forwarded-proto']}`);
  });
  const wss = new WebSocketServer({ server: srv });
  wss.on('connection', (ws) => ws.on('message', (m) => ws.send(`echo ${m}`)));
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  t.teardown(() => {
    for (const c of wss.clients) c.terminate();
    srv.closeAllConnections();
    return new Promise<void>((r) => srv.close(() => r()));
  });
  return { port: (srv.address() as AddressInfo).port, seen };
}

async function proxyTo(t: Test, port: number, tls: Record<string, unknown> | boolean) {
  const proxy = createProxy({ upstreams: { b: { servers: [`127.0.0.1:${port}`], tls: tls as never } }, timeouts: { drainMs: 300 } });
  const errors: UpstreamErrorEvent[] = [];
  proxy.on('upstreamError', (e) => errors.push(e));
  const addr = (await proxy.listen({ host: '127.0.0.1', port: 0 })) as AddressInfo;
  t.teardown(() => proxy.close());
  return { proxy, port: addr.port, errors };
}

const GET = 'GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n';

t.test('verified against the CA file, with SNI; sessions reused', async (t) => {
  const b = await httpsBackend(t);
  const { port } = await proxyTo(t, b.port, { ca: pki.ca.cert, serverName: 'backend.test' });
  for (let i = 0; i < 3; i++) {
    const r = await exchange(port, [GET]);
    t.match(r.data.toString(), /^HTTP\/1.1 200[^]*hello http$/);
  }
  t.equal(b.seen[0]!.servername, 'backend.test', 'SNI sent');
  t.ok(b.seen.slice(1).some((s) => s.reused), 'a later connection resumed the session');
});

t.test('an IP backend is verified against its IP, and sent no SNI', async (t) => {
  const b = await httpsBackend(t);
  const { port } = await proxyTo(t, b.port, { ca: pki.ca.cert });
  t.match((await exchange(port, [GET])).data.toString(), /^HTTP\/1.1 200/);
  t.equal(b.seen[0]!.servername, false);
});

t.test('a certificate that does not verify: 502, the reason in the event, counted against the backend', async (t) => {
  const b = await httpsBackend(t);
  const { proxy, port, errors } = await proxyTo(t, b.port, { ca: otherCa.cert, serverName: 'backend.test' });
  const r = await exchange(port, [GET]);
  t.match(r.data.toString(), /^HTTP\/1.1 502/);
  t.match(errors[0], { code: 'WSPLICE_UPSTREAM_CONNECT', reason: /UNABLE_TO_VERIFY|unable to verify|self.signed|issuer/i });
  t.equal(b.seen.length, 0, 'no request reached the backend');
  const g = proxy.groups.get('b')!;
  t.ok(g.backends[0]!.failures >= 1 && g.backends[0]!.downUntil > Date.now(), 'counted against the backend (marked down)');
  const wrongName = await proxyTo(t, b.port, { ca: pki.ca.cert, serverName: 'other.test' });
  t.match((await exchange(wrongName.port, [GET])).data.toString(), /^HTTP\/1.1 502/);
  t.match(wrongName.errors[0], { reason: /ERR_TLS_CERT_ALTNAME_INVALID|altnames/ });
});

t.test('verify off accepts any certificate', async (t) => {
  const b = await httpsBackend(t);
  const { port } = await proxyTo(t, b.port, { verify: false });
  t.match((await exchange(port, [GET])).data.toString(), /^HTTP\/1.1 200/);
});

t.test('a backend that requires a client certificate gets ours', async (t) => {
  const b = await httpsBackend(t, { requireClient: true });
  const without = await proxyTo(t, b.port, { ca: pki.ca.cert });
  t.match((await exchange(without.port, [GET])).data.toString(), /^HTTP\/1.1 502/);
  const withCert = await proxyTo(t, b.port, { ca: pki.ca.cert, cert: client.cert, key: client.key });
  t.match((await exchange(withCert.port, [GET])).data.toString(), /^HTTP\/1.1 200/);
  t.ok(b.seen.at(-1)!.authorized);
});

t.test('ws client -> wsplice -> wss backend', async (t) => {
  const b = await httpsBackend(t);
  const { port } = await proxyTo(t, b.port, { ca: pki.ca.cert });
  const ws = new WebSocket(`ws://127.0.0.1:${port}/`);
  const m = await new Promise<string>((resolve, reject) => {
    ws.on('open', () => ws.send('hi'));
    ws.on('message', (d) => resolve(String(d)));
    ws.on('error', reject);
  });
  ws.terminate();
  t.equal(m, 'echo hi');
});

t.test('bad upstream TLS files are configuration errors naming the group', async (t) => {
  t.throws(() => createProxy({ upstreams: { b: { servers: ['127.0.0.1:1'], tls: { ca: '/nonexistent-ca.pem' } } } }), /upstreams\.b\.tls: cannot read CA file \/nonexistent-ca.pem/);
  t.throws(() => createProxy({ upstreams: { b: { servers: ['127.0.0.1:1'], tls: { cert: client.cert } } } }), /cert and key go together/);
  t.throws(() => createProxy({ upstreams: { b: { servers: ['127.0.0.1:1'], tls: { verfy: false } as never } } }), /unknown option/);
});
