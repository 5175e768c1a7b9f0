// Chromium over TLS through wsplice: the page comes over https and its WebSocket over wss from a
// listener with a certificate the test CA signed at test time. Chromium is told to accept that one
// public key only (--ignore-certificate-errors-spki-list with the leaf's SPKI hash: the CA is not in
// the chain the server sends, so pinning it would not match); any other certificate still fails.
import { X509Certificate, createHash } from 'node:crypto';
import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import t from 'tap';
import { WebSocketServer } from 'ws';
import { createProxy } from '../../src/index.js';
import { cdp, chromiumSkip, launchChromium, pageResult } from '../support/chromium.js';
import { TestPki } from '../edge/fixtures/certs.js';

const PAGE = `<!doctype html><html><body><pre id="result">pending</pre><script>
(async () => {
  const out = { scheme: location.protocol };
  try {
    const ws = new WebSocket('wss://' + location.host + '/ws');
    ws.binaryType = 'arraybuffer';
    const inbox = []; let wake = null;
    ws.onmessage = (e) => { inbox.push(e.data); if (wake) { wake(); wake = null; } };
    const next = () => new Promise((r) => { if (inbox.length) r(); else wake = r; }).then(() => inbox.shift());
    await new Promise((resolve, reject) => { ws.onopen = resolve; ws.onerror = () => reject(new Error('ws error before open')); });
    ws.send('hello over wss');
    out.textEcho = await next();
    const big = new Uint8Array(1 << 20); for (let i = 0; i < big.length; i++) big[i] = (i * 7) & 255;
    ws.send(big.buffer);
    const back = new Uint8Array(await next());
    let same = back.length === big.length; for (let i = 0; same && i < big.length; i++) same = back[i] === big[i];
    out.bigBinarySame = same;
    ws.send('close please');
    out.close = await new Promise((r) => { ws.onclose = (e) => r({ code: e.code, reason: e.reason, wasClean: e.wasClean }); });
  } catch (err) { out.error = String(err && err.message || err); }
  window.__result = JSON.stringify(out);
  document.getElementById('result').textContent = window.__result;
})();
</script></body></html>`;

/** base64 SHA-256 of a certificate's SubjectPublicKeyInfo: what Chromium's SPKI list takes. */
function spkiHash(pem: Buffer): string {
  const der = new X509Certificate(pem).publicKey.export({ type: 'spki', format: 'der' });
  return createHash('sha256').update(der).digest('base64');
}

t.test('Chromium loads an https page and talks wss through wsplice with the test CA', { skip: chromiumSkip }, async (t) => {
  const pki = new TestPki();
  t.teardown(() => pki.cleanup());
  const leaf = pki.leaf('site', ['localhost', '127.0.0.1']);

  const seen: http.IncomingHttpHeaders[] = [];
  const server = http.createServer((req, res) => {
    seen.push(req.headers);
    res.writeHead(req.url === '/' ? 200 : 404, { 'content-type': 'text/html; charset=utf-8' });
    res.end(req.url === '/' ? PAGE : '');
  });
  const wss = new WebSocketServer({ server, path: '/ws' });
  wss.on('connection', (sock, req) => {
    seen.push(req.headers);
    sock.on('message', (data, isBinary) => {
      if (!isBinary && String(data) === 'close please') sock.close(1000, 'bye');
      else sock.send(data, { binary: isBinary });
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const proxy = createProxy({ upstreams: { app: { servers: [`127.0.0.1:${(server.address() as AddressInfo).port}`] } } });
  const tunnels: unknown[] = [];
  proxy.on('tunnel', (e) => tunnels.push(e));
  const addr = (await proxy.listen({ host: '127.0.0.1', port: 0, tls: { certificates: [leaf] } })) as AddressInfo;
  t.teardown(async () => {
    await proxy.close();
    for (const c of wss.clients) c.terminate();
    wss.close();
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  });

  const { endpoint } = await launchChromium(t, [`--ignore-certificate-errors-spki-list=${spkiHash(pki.read(leaf.cert))}`]);
  const browser = await cdp(endpoint);
  t.teardown(() => browser.close());
  const { out, raw } = await pageResult(browser, `https://localhost:${addr.port}/`);
  t.ok(raw !== undefined, 'the page reported a result within 30 s');
  t.comment(JSON.stringify(out));
  t.equal(out.error, undefined, 'no error in the page');
  t.equal(out.scheme, 'https:', 'the page itself came over https');
  t.equal(out.textEcho, 'hello over wss', 'text echo over wss');
  t.equal(out.bigBinarySame, true, '1 MiB binary message echoed byte for byte');
  t.same(out.close, { code: 1000, reason: 'bye', wasClean: true }, 'closing handshake relayed over TLS');
  t.equal(tunnels.length, 1, 'one tunnel through wsplice');
  t.ok(seen.length >= 2 && seen.every((h) => h['x-forwarded-proto'] === 'https'), 'the backend saw X-Forwarded-Proto: https on the page and the upgrade');
});
