// Recipe: Fastify 5 with its own route; upgrades from `server.server.on('upgrade', ...)` go to
// proxy.ws, /api/* to proxy.web on the raw request and response (the reply hijacked).
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import Fastify from 'fastify';
import t from 'tap';
import { createProxy } from '../../src/index.js';
import { closeWss, httpBackend, httpGet, openWs, port, whoami, wsEcho } from '../support/index.js';

t.test('fastify: app route, /api through proxy.web, WebSocket through proxy.ws', async (t) => {
  const wss = await wsEcho('fastify-ws');
  const api = await httpBackend();
  const proxy = createProxy({
    upstreams: { chat: { servers: [`127.0.0.1:${port(wss)}`] }, api: { servers: [`127.0.0.1:${api.port}`] } },
    routes: [{ path: '/', upstream: 'chat' }, { path: '/api/', upstream: 'api' }],
  });
  const server = Fastify();
  server.get('/health', async () => 'fastify ok');
  // A scope whose content-type parser leaves the body unread: proxy.web streams it upstream.
  await server.register(async (scope) => {
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser('*', (_req, _payload, done) => done(null));
    scope.all('/api/*', (request, reply) => {
      reply.hijack();
      void proxy.web(request.raw, reply.raw);
    });
  });
  server.post('/parsed/*', (request, reply) => {
    reply.hijack();
    proxy.web(request.raw, reply.raw).catch((e: Error) => misuse.push(e.message));
  });
  server.server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => { void proxy.ws(req, socket, head); });
  const misuse: string[] = [];
  await server.listen({ port: 0, host: '127.0.0.1' });
  t.teardown(async () => { await proxy.close(); await server.close(); await api.close(); await closeWss(wss); });
  const p = port(server.server);
  t.equal((await httpGet(p, '/health')).body, 'fastify ok');
  const r = await httpGet(p, '/api/x', { method: 'POST', headers: { 'Content-Type': 'text/plain' } }, 'body!');
  t.equal(r.body, 'POST /api/x body!');
  const parsed = await httpGet(p, '/parsed/x', { method: 'POST', headers: { 'Content-Type': 'text/plain' } }, 'body!');
  t.equal(parsed.status, 500, 'a body fastify already parsed cannot be proxied: 500, not a hang');
  t.match(misuse, [/body was already read/]);
  const ws = await openWs(`ws://127.0.0.1:${p}/live`);
  t.equal(await whoami(ws), 'fastify-ws');
  ws.terminate();
});
