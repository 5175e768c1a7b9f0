import t from 'tap';
import { parseResponse, port, rawBackend, rawExchange, startProxy, type RawBackend } from './helpers.js';

async function named(name: string): Promise<RawBackend> {
  return rawBackend((sock, data) => {
    if (data.includes('\r\n\r\n')) sock.end(`HTTP/1.1 200 OK\r\nContent-Length: ${name.length}\r\n\r\n${name}`);
  });
}

t.test('longest prefix wins, exact match beats prefixes, the query is not part of the path', async (t) => {
  const [root, ws, wsChat, exact] = await Promise.all([named('root'), named('ws'), named('ws-chat'), named('exact')]);
  const proxy = await startProxy({
    upstreams: {
      root: { servers: [`127.0.0.1:${root.port}`] },
      ws: { servers: [`127.0.0.1:${ws.port}`] },
      chat: { servers: [`127.0.0.1:${wsChat.port}`] },
      exact: { servers: [`127.0.0.1:${exact.port}`] },
    },
    routes: [
      { path: '/', upstream: 'root' },
      { path: '/ws', upstream: 'ws' },
      { path: '/ws/chat', upstream: 'chat' },
      { path: '/ws/chat/x', exact: true, upstream: 'exact' },
    ],
  });
  t.teardown(async () => { await proxy.close(); for (const b of [root, ws, wsChat, exact]) await b.close(); });
  const where = async (path: string): Promise<string> =>
    parseResponse(await rawExchange(port(proxy), `GET ${path} HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n`)).body;
  t.equal(await where('/'), 'root');
  t.equal(await where('/other'), 'root');
  t.equal(await where('/ws'), 'ws');
  t.equal(await where('/ws/chat/room'), 'ws-chat');
  t.equal(await where('/ws/chat/x'), 'exact');
  t.equal(await where('/ws/chat/x?y=1'), 'exact');
  t.equal(await where('/ws/chat/xy'), 'ws-chat');
});

t.test('virtual servers: Host picks the route set, port and case ignored; others use the default set', async (t) => {
  const [a, b, d] = await Promise.all([named('a'), named('b'), named('default')]);
  const proxy = await startProxy({
    upstreams: { a: { servers: [`127.0.0.1:${a.port}`] }, b: { servers: [`127.0.0.1:${b.port}`] }, d: { servers: [`127.0.0.1:${d.port}`] } },
    routes: [
      { path: '/', upstream: 'a', hosts: ['a.example'] },
      { path: '/', upstream: 'b', hosts: ['b.example'] },
      { path: '/', upstream: 'd' },
    ],
  });
  t.teardown(async () => { await proxy.close(); for (const x of [a, b, d]) await x.close(); });
  const via = async (host: string, target = '/'): Promise<string> =>
    parseResponse(await rawExchange(port(proxy), `GET ${target} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`)).body;
  t.equal(await via('a.example'), 'a');
  t.equal(await via('B.Example:8080'), 'b');
  t.equal(await via('c.example'), 'default');
  t.equal(await via('a.example', 'http://b.example/'), 'b', 'an absolute-form authority replaces Host for routing');
});

t.test('a route set without a match answers 404', async (t) => {
  const a = await named('a');
  const proxy = await startProxy({ upstreams: { a: { servers: [`127.0.0.1:${a.port}`] } }, routes: [{ path: '/api', upstream: 'a' }] });
  t.teardown(async () => { await proxy.close(); await a.close(); });
  const res = parseResponse(await rawExchange(port(proxy), 'GET /apx HTTP/1.1\r\nHost: h\r\n\r\n'));
  t.equal(res.status, 404);
  t.equal(a.received.length, 0);
});
