/**
 * TLS termination end to end, as a user configures it: the CLI with an
 * nginx-syntax file, two `server` blocks on one `listen ... ssl` address, each
 * with its own certificate (made at test time). SNI picks each name's
 * certificate; https and wss pass with X-Forwarded-Proto from `$scheme`; then
 * the certificate files are replaced and SIGHUP sent: new handshakes get the
 * new certificate while an open wss tunnel keeps echoing; a broken file sent
 * the same way is refused and the running certificate stays.
 */
import { X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import { copyFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import tls from 'node:tls';
import t from 'tap';
import WebSocket, { WebSocketServer } from 'ws';
import { freePort, startCli, waitFor } from '../support/index.js';
import { TestPki } from './fixtures/certs.js';

const pki = new TestPki();
t.teardown(() => pki.cleanup());
const a = pki.leaf('a', ['a.test']);
const a2 = pki.leaf('a2', ['a.test']);
const b = pki.leaf('b', ['b.test']);
const ca = pki.read(pki.ca.cert);
const fingerprintOf = (file: string): string => new X509Certificate(pki.read(file)).fingerprint256;

/** The certificate the listener presents for `servername`. */
function presented(port: number, servername: string): Promise<{ cn: string; fingerprint: string }> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port, ca, servername }, () => {
      const c = s.getPeerCertificate();
      s.destroy();
      resolve({ cn: String(c.subject.CN), fingerprint: c.fingerprint256 });
    });
    s.on('error', reject);
  });
}

function echo(ws: WebSocket, msg: string): Promise<string> {
  return new Promise((resolve, reject) => {
    ws.once('message', (m) => resolve(String(m)));
    ws.once('error', reject);
    ws.send(msg);
  });
}

function wssOpen(port: number, servername: string): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`wss://127.0.0.1:${port}/ws`, { ca, servername, headers: { host: servername } } as WebSocket.ClientOptions);
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}

t.test('nginx-syntax ssl listener: SNI per server_name, https and wss, certificates swapped by SIGHUP under an open tunnel', async (t) => {
  // The backend answers a plain request with the scheme it was told of, and echoes WebSocket messages.
  const backend = http.createServer((req, res) => res.end(`proto=${req.headers['x-forwarded-proto']} host=${req.headers.host}`));
  const wss = new WebSocketServer({ server: backend });
  wss.on('connection', (ws) => ws.on('message', (m) => ws.send(String(m))));
  backend.listen(0, '127.0.0.1');
  await once(backend, 'listening');
  t.teardown(() => {
    for (const c of wss.clients) c.terminate();
    backend.closeAllConnections();
    backend.close();
  });
  const live = { cert: `${pki.dir}/live.pem`, key: `${pki.dir}/live.key` };
  copyFileSync(a.cert, live.cert);
  copyFileSync(a.key, live.key);
  const listen = await freePort();
  const location = `location / {
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;
      proxy_set_header X-Forwarded-Proto $scheme;
    }`;
  const tlsServer = (name: string, pair: { cert: string; key: string }): string => `server {
    listen 127.0.0.1:${listen} ssl;
    server_name ${name};
    ssl_certificate ${pair.cert};
    ssl_certificate_key ${pair.key};
    ${location}
  }`;
  const conf = `${pki.dir}/wsplice.conf`;
  writeFileSync(conf, `events {}
http {
  map $http_upgrade $connection_upgrade { default upgrade; '' close; }
  upstream app { server 127.0.0.1:${(backend.address() as AddressInfo).port}; }
  ${tlsServer('a.test', live)}
  ${tlsServer('b.test', b)}
}
`);
  const cli = await startCli(['-c', conf], t);

  const first = await presented(listen, 'a.test');
  t.equal(first.cn, 'a.test', 'a.test gets its certificate');
  t.equal(first.fingerprint, fingerprintOf(a.cert));
  t.equal((await presented(listen, 'b.test')).cn, 'b.test', 'b.test gets the other one');
  const body = await new Promise<string>((resolve, reject) => {
    https.get({ host: '127.0.0.1', port: listen, servername: 'b.test', headers: { host: 'b.test' }, ca, path: '/x', agent: false }, (res) => {
      let s = '';
      res.on('data', (d: Buffer) => (s += d.toString()));
      res.on('end', () => resolve(s));
    }).on('error', reject);
  });
  t.equal(body, 'proto=https host=b.test', 'https through the b.test server; $scheme is https');

  const ws = await wssOpen(listen, 'a.test');
  t.teardown(() => ws.terminate());
  t.equal(await echo(ws, 'one'), 'one', 'wss through the a.test server');

  copyFileSync(a2.key, live.key);
  copyFileSync(a2.cert, live.cert);
  process.kill(cli.pid, 'SIGHUP');
  await waitFor(() => /reload ok: generation 2/.test(cli.stderr()), 20_000, 'the reload');
  t.equal((await presented(listen, 'a.test')).fingerprint, fingerprintOf(a2.cert), 'new handshakes get the new certificate');
  t.equal((await presented(listen, 'b.test')).fingerprint, fingerprintOf(b.cert), 'the other name keeps its own');
  t.equal(await echo(ws, 'two'), 'two', 'the open wss tunnel keeps echoing across the reload');

  writeFileSync(live.cert, 'not a certificate\n');
  process.kill(cli.pid, 'SIGHUP');
  await waitFor(() => /reload refused/.test(cli.stderr()), 20_000, 'the refusal');
  t.match(cli.stderr(), /live\.pem/, 'the refusal names the file');
  t.equal((await presented(listen, 'a.test')).fingerprint, fingerprintOf(a2.cert), 'the running certificate stays');
  t.equal(await echo(ws, 'three'), 'three', 'the tunnel still echoes');
  const again = await wssOpen(listen, 'a.test');
  t.equal(await echo(again, 'four'), 'four', 'new wss tunnels still open');
  again.terminate();
});
