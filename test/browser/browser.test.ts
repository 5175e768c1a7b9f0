// A real browser through wsplice: headless Chromium loads a page (served
// through the proxy as plain HTTP by the test's backend), opens a WebSocket
// through the proxy to a `ws` server on that backend, exchanges text and
// binary messages both ways (small and large, with the permessage-deflate and
// subprotocol negotiation Chromium does), closes with 1000, and writes what it
// saw into the page. The test drives Chromium over the DevTools protocol
// (--remote-debugging-port, spoken with the `ws` package) and reads the result.
// Skips when /usr/bin/chromium is absent: `apt-get install -y chromium`.
import t from 'tap';
import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocketServer } from 'ws';
import { createProxy } from '../../src/index.js';

import { cdp, chromiumSkip, launchChromium, pageResult } from '../support/chromium.js';

const PAGE = `<!doctype html>
<html><head><meta charset="utf-8"><title>wsplice browser test</title></head>
<body><pre id="result">pending</pre>
<script>
(async () => {
  const out = {};
  const finish = () => {
    window.__result = JSON.stringify(out);
    document.getElementById('result').textContent = window.__result;
  };
  const sum = (u8) => { let h = 2166136261; for (const b of u8) { h ^= b; h = Math.imul(h, 16777619) >>> 0; } return h; };
  try {
    const ws = new WebSocket('ws://' + location.host + '/ws?from=browser', ['chat.v1', 'chat.v0']);
    ws.binaryType = 'arraybuffer';
    const inbox = [];
    let wake = null;
    ws.onmessage = (e) => { inbox.push(e.data); if (wake) { wake(); wake = null; } };
    const next = () => new Promise((r) => { if (inbox.length) r(); else wake = r; }).then(() => inbox.shift());
    await new Promise((resolve, reject) => { ws.onopen = resolve; ws.onerror = () => reject(new Error('ws error before open')); });
    out.protocol = ws.protocol;
    out.extensions = ws.extensions;
    out.greeting = await next();

    ws.send('hello through wsplice');
    out.textEcho = await next();

    const bin = new Uint8Array(256); for (let i = 0; i < 256; i++) bin[i] = i;
    ws.send(bin.buffer);
    const binEcho = new Uint8Array(await next());
    out.binaryEcho = { length: binEcho.length, sum: sum(binEcho), want: sum(bin) };

    const bigText = 'wsplice-'.repeat(40000); // 320 kB, compressible
    ws.send(bigText);
    const bigTextEcho = await next();
    out.bigText = { length: bigTextEcho.length, same: bigTextEcho === bigText };

    const bigBin = new Uint8Array(1 << 20); crypto.getRandomValues(bigBin.subarray(0, 65536));
    for (let i = 65536; i < bigBin.length; i++) bigBin[i] = (i * 31) & 255;
    ws.send(bigBin.buffer);
    const bigBinEcho = new Uint8Array(await next());
    out.bigBinary = { length: bigBinEcho.length, sum: sum(bigBinEcho), want: sum(bigBin) };

    for (let i = 0; i < 50; i++) ws.send('burst ' + i);
    const burst = [];
    for (let i = 0; i < 50; i++) burst.push(await next());
    out.burstInOrder = burst.every((m, i) => m === 'burst ' + i);

    ws.send('server: close please');
    const closed = await new Promise((r) => { ws.onclose = (e) => r({ code: e.code, reason: e.reason, wasClean: e.wasClean }); });
    out.close = closed;
  } catch (err) {
    out.error = String(err && err.message || err);
  }
  finish();
})();
</script></body></html>`;

t.test('Chromium exchanges text and binary WebSocket messages through wsplice', { skip: chromiumSkip }, async (t) => {
  // The backend: the page over plain HTTP, and a `ws` server on /ws.
  const seen: { headers: http.IncomingHttpHeaders[]; pageHeaders: http.IncomingHttpHeaders[] } = { headers: [], pageHeaders: [] };
  const server = http.createServer((req, res) => {
    seen.pageHeaders.push(req.headers);
    if (req.url === '/' || req.url === '/index.html') {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      res.end(PAGE);
    } else {
      res.writeHead(404);
      res.end();
    }
  });
  const wss = new WebSocketServer({
    server, path: '/ws', perMessageDeflate: true,
    handleProtocols: (protocols) => (protocols.has('chat.v1') ? 'chat.v1' : false),
  });
  wss.on('connection', (sock, req) => {
    seen.headers.push(req.headers);
    sock.send('welcome');
    sock.on('message', (data, isBinary) => {
      if (!isBinary && String(data) === 'server: close please') sock.close(1000, 'bye');
      else sock.send(data, { binary: isBinary });
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const backendPort = (server.address() as AddressInfo).port;

  const proxy = createProxy({ upstreams: { app: { servers: [`127.0.0.1:${backendPort}`] } } });
  const tunnels: unknown[] = [];
  const refused: unknown[] = [];
  proxy.on('tunnel', (e) => tunnels.push(e));
  proxy.on('refused', (e) => refused.push(e));
  const addr = (await proxy.listen({ host: '127.0.0.1', port: 0 })) as AddressInfo;
  t.teardown(async () => {
    await proxy.close();
    for (const c of wss.clients) c.terminate();
    wss.close();
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  });

  const { endpoint } = await launchChromium(t);
  const browser = await cdp(endpoint);
  t.teardown(() => browser.close());
  const { out, raw, dom } = await pageResult(browser, `http://127.0.0.1:${addr.port}/`);
  t.ok(raw !== undefined, 'the page reported a result within 30 s');
  t.comment(JSON.stringify(out));
  t.equal(dom, raw, 'the result is in the DOM');

  t.equal(out.error, undefined, 'no error in the page');
  t.equal(out.protocol, 'chat.v1', 'subprotocol negotiated through the proxy');
  t.match(out.extensions, /permessage-deflate/, 'permessage-deflate negotiated through the proxy');
  t.equal(out.greeting, 'welcome', 'server-initiated message received');
  t.equal(out.textEcho, 'hello through wsplice', 'text echo');
  t.same(out.binaryEcho, { length: 256, sum: (out.binaryEcho as { want: number }).want, want: (out.binaryEcho as { want: number }).want }, 'binary echo, byte for byte');
  t.same(out.bigText, { length: 320_000, same: true }, '320 kB text message (compressed on the wire) echoed');
  const bb = out.bigBinary as { length: number; sum: number; want: number };
  t.equal(bb.length, 1 << 20, '1 MiB binary message echoed');
  t.equal(bb.sum, bb.want, 'and byte for byte');
  t.equal(out.burstInOrder, true, '50 messages in a burst came back in order');
  t.same(out.close, { code: 1000, reason: 'bye', wasClean: true }, 'closing handshake relayed: 1000 "bye", clean');

  t.equal(tunnels.length, 1, 'one tunnel through wsplice');
  t.same(refused, [], 'nothing refused');
  const h = seen.headers[0] ?? {};
  t.equal(h['x-forwarded-for'], '127.0.0.1', 'the backend saw X-Forwarded-For');
  t.match(String(h['user-agent']), /Chrome/, 'the backend saw the browser\'s own upgrade request');
  t.ok(seen.pageHeaders.some((p) => p['x-forwarded-for'] === '127.0.0.1'), 'the page itself came through the proxy');
});
