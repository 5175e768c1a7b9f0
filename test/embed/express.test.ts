// Recipe: Express 5 with an app route, and /ws and /api proxied side by side by wsplice
// (routes pick the upstream); the `ws` package and Chromium as clients.
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import express from 'express';
import t, { type Test } from 'tap';
import { createProxy } from '../../src/index.js';
import { cdp, chromiumSkip, launchChromium, pageResult } from '../support/chromium.js';
import { closeWss, httpBackend, httpGet, openWs, port, whoami, wsEcho } from '../support/index.js';

const PAGE = `<!doctype html><title>embed</title><div id="result"></div><script>
(async () => {
  const out = {};
  try {
    out.api = await (await fetch('/api/hello')).text();
    const ws = new WebSocket('ws://' + location.host + '/ws/chat');
    out.echo = await new Promise((resolve, reject) => {
      ws.onopen = () => ws.send('hello from chromium');
      ws.onmessage = (m) => resolve(m.data);
      ws.onerror = () => reject(new Error('ws error'));
    });
    ws.close(1000);
  } catch (e) { out.error = String(e); }
  document.getElementById('result').textContent = JSON.stringify(out);
  window.__result = JSON.stringify(out);
})();
</script>`;

async function world(t: Test) {
  const wss = await wsEcho('chat');
  const api = await httpBackend();
  const proxy = createProxy({
    upstreams: { chat: { servers: [`127.0.0.1:${port(wss)}`] }, api: { servers: [`127.0.0.1:${api.port}`] } },
    routes: [{ path: '/ws/', upstream: 'chat' }, { path: '/api/', upstream: 'api' }],
  });
  const app = express();
  app.get('/', (_req, res) => { res.type('html').send(PAGE); });
  app.get('/health', (_req, res) => { res.send('app ok'); });
  app.use('/api', (req, res) => { void proxy.web(req, res); });
  const server = app.listen(0, '127.0.0.1');
  await new Promise<void>((r) => server.once('listening', () => r()));
  server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
    if (req.url?.startsWith('/ws/')) void proxy.ws(req, socket, head);
    else socket.destroy();
  });
  t.teardown(async () => {
    await proxy.close();
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
    await api.close();
    await closeWss(wss);
  });
  return { port: port(server), api, proxy };
}

t.test('express: the app route, /api through proxy.web and /ws through proxy.ws side by side', async (t) => {
  const w = await world(t);
  t.equal((await httpGet(w.port, '/health')).body, 'app ok', 'the app serves its own route');
  const r = await httpGet(w.port, '/api/items?n=2');
  t.equal(r.body, 'GET /api/items?n=2 ', 'the mount prefix is kept: the upstream gets the client path');
  t.equal(w.api.seen[0]!.headers['x-forwarded-for'], '127.0.0.1');
  const ws = await openWs(`ws://127.0.0.1:${w.port}/ws/chat`);
  t.equal(await whoami(ws), 'chat');
  ws.terminate();
});

t.test('chromium through the express app: fetch /api and a WebSocket on /ws', { skip: chromiumSkip }, async (t) => {
  const w = await world(t);
  const { endpoint } = await launchChromium(t);
  const browser = await cdp(endpoint);
  t.teardown(() => browser.close());
  const { out } = await pageResult(browser, `http://127.0.0.1:${w.port}/`);
  t.same(out, { api: 'GET /api/hello ', echo: 'hello from chromium' });
  t.equal(w.proxy.stats().tunnelsTotal, 1, 'one tunnel opened through proxy.ws');
});
