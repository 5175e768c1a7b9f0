/**
 * proxy.reload() re-reads every TLS listener's certificate files: new
 * handshakes get the new certificate while an open wss tunnel keeps echoing;
 * a bad file refuses the whole reload and the old certificate stays.
 */
import { copyFileSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import tls from 'node:tls';
import t from 'tap';
import WebSocket from 'ws';
import { ConfigError, createProxy } from '../../src/index.js';
import { TestPki } from '../edge/fixtures/certs.js';
import { closeWss, port, wsEcho } from '../support/index.js';

const pki = new TestPki();
t.teardown(() => pki.cleanup());
const a = pki.leaf('a', ['a.test', 'localhost', '127.0.0.1']);
const a2 = pki.leaf('a2', ['a.test', 'localhost', '127.0.0.1']);
const caPem = pki.read(pki.ca.cert);

function fingerprint(p: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port: p, ca: caPem, servername: 'a.test' }, () => {
      const f = s.getPeerCertificate().fingerprint256;
      s.destroy();
      resolve(f);
    });
    s.on('error', reject);
  });
}

function wssOpen(p: number): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`wss://127.0.0.1:${p}/`, { ca: caPem, servername: 'a.test' } as WebSocket.ClientOptions);
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

t.test('reload: new certificate for new handshakes, the open wss tunnel untouched, a bad file refused', async (t) => {
  const live = { cert: `${pki.dir}/reload-live.pem`, key: `${pki.dir}/reload-live.key` };
  copyFileSync(a.cert, live.cert);
  copyFileSync(a.key, live.key);
  const backend = await wsEcho('b');
  const options = { upstreams: { b: { servers: [`127.0.0.1:${port(backend)}`] } } };
  const proxy = createProxy(options);
  const addr = (await proxy.listen({ host: '127.0.0.1', port: 0, tls: { certificates: [live], watch: false } })) as AddressInfo;
  t.teardown(async () => {
    await proxy.close();
    await closeWss(backend);
  });
  const before = await fingerprint(addr.port);
  const ws = await wssOpen(addr.port);
  t.equal(await echo(ws, 'one'), 'one');
  copyFileSync(a2.cert, live.cert);
  copyFileSync(a2.key, live.key);
  proxy.reload(options);
  const after = await fingerprint(addr.port);
  t.not(after, before, 'new handshakes get the new certificate');
  t.equal(await echo(ws, 'two'), 'two', 'the open tunnel is untouched');
  writeFileSync(live.cert, 'not a certificate');
  t.throws(() => proxy.reload({ ...options, timeouts: { idleMs: 1234 } }), ConfigError);
  t.equal(proxy.generation, 2);
  t.not(proxy.options.timeouts.idleMs, 1234, 'a bad certificate refuses the whole reload');
  t.equal(await fingerprint(addr.port), after, 'the old certificate stays');
  const ws2 = await wssOpen(addr.port);
  t.equal(await echo(ws2, 'three'), 'three', 'new tunnels still open');
  t.equal(await echo(ws, 'four'), 'four');
  ws.terminate();
  ws2.terminate();
});
