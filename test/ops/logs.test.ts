/**
 * Access and error logs: one JSON line per exchange and per tunnel, matching
 * the traffic one for one (by the client's own port); files reopened after a
 * rotation; a log that cannot be written is reported once and serving goes on.
 */
import { mkdtempSync, readFileSync, renameSync, rmSync } from 'node:fs';
import net, { type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import WebSocket from 'ws';
import { createProxy } from '../../src/index.js';
import { AccessLog } from '../../src/logging/access.js';
import { closeWss, port, rawBackend, respondOnce, upgradeHead, waitFor, wsEcho } from '../helpers.js';
import { loggedProxy } from '../support/logs.js';

type Line = Record<string, unknown>;
function lines(file: string): Line[] {
  return readFileSync(file, 'utf8').split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Line);
}

/** One raw exchange; resolves with the reply, the client's own port and its byte counts. */
function rawClient(p: number, data: string): Promise<{ reply: string; port: number; up: number; down: number }> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let local = 0;
    const s: Socket = net.connect({ host: '127.0.0.1', port: p }, () => {
      local = s.localPort!;
      s.write(data);
    });
    s.on('data', (d: Buffer) => chunks.push(d));
    s.on('error', reject);
    s.on('close', () => resolve({ reply: Buffer.concat(chunks).toString('latin1'), port: local, up: s.bytesWritten, down: s.bytesRead }));
  });
}

t.test('access log lines match the traffic one for one', async (t) => {
  const wss = await wsEcho('a');
  const http = await rawBackend(respondOnce('HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello'));
  const rejecting = await rawBackend(respondOnce('HTTP/1.1 400 Bad Request\r\nContent-Length: 3\r\nConnection: close\r\n\r\nno\n'));
  const { proxy, dir, access, errors, problems } = await loggedProxy(t, {
    upstreams: { ws: { servers: [`127.0.0.1:${port(wss)}`] }, http: { servers: [`127.0.0.1:${http.port}`] }, rej: { servers: [`127.0.0.1:${rejecting.port}`] } },
    routes: [{ path: '/ws', upstream: 'ws' }, { path: '/api', upstream: 'http' }, { path: '/reject', upstream: 'rej' }],
  });
  t.teardown(async () => {
    await closeWss(wss);
    await http.close();
    await rejecting.close();
  });
  const pp = port(proxy);

  const sent: Array<{ port: number; host: string; path: string; status: number; up: number; down: number }> = [];
  for (let i = 0; i < 3; i++) {
    const r = await rawClient(pp, `GET /api/${i}?q=1 HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n`);
    sent.push({ port: r.port, host: 'a.test', path: `/api/${i}?q=1`, status: 200, up: r.up, down: r.down });
  }
  const nf = await rawClient(pp, 'GET /nowhere HTTP/1.1\r\nHost: a.test\r\n\r\n');
  sent.push({ port: nf.port, host: 'a.test', path: '/nowhere', status: 404, up: nf.up, down: nf.down });
  const rj = await rawClient(pp, upgradeHead('/reject'));
  sent.push({ port: rj.port, host: 'example.test', path: '/reject', status: 400, up: rj.up, down: rj.down });
  const tunnels: Array<{ port: number }> = [];
  for (let i = 0; i < 2; i++) {
    const ws = new WebSocket(`ws://127.0.0.1:${pp}/ws/${i}`);
    await new Promise((r) => ws.once('open', r));
    tunnels.push({ port: (ws as unknown as { _socket: Socket })._socket.localPort! });
    ws.send('x'.repeat(100));
    await new Promise((r) => ws.once('message', r));
    ws.close();
    await new Promise((r) => ws.once('close', r));
  }
  await waitFor(() => proxy.stats().connections === 0, 5000, 'every connection closed');
  await access.close();
  await errors.close();

  const all = lines(join(dir, 'access.log'));
  const reqs = all.filter((l) => l.type === 'request');
  const tuns = all.filter((l) => l.type === 'tunnel');
  t.equal(reqs.length, sent.length, 'one request line per exchange');
  t.equal(tuns.length, tunnels.length, 'one tunnel line per tunnel');
  for (const s of sent) {
    const l = reqs.filter((x) => x.client_port === s.port);
    t.equal(l.length, 1, `exactly one line for the client on port ${s.port}`);
    t.match(l[0], { client: '127.0.0.1', method: 'GET', host: s.host, path: s.path, status: s.status, bytes_in: s.up, bytes_out: s.down });
    t.match(String(l[0]!.time), /^\d{4}-\d\d-\d\dT/);
    t.type(l[0]!.total_ms, 'number');
  }
  t.match(reqs.find((x) => x.path === '/api/0?q=1'), { backend: `127.0.0.1:${http.port}`, code: null, outcome: 'response' });
  t.ok((reqs.find((x) => x.path === '/api/0?q=1')!.connect_ms as number) >= 0, 'connect time measured');
  t.match(reqs.find((x) => x.path === '/nowhere'), { backend: null, code: 'WSPLICE_NO_ROUTE' });
  t.match(reqs.find((x) => x.path === '/reject'), { kind: 'websocket', backend: `127.0.0.1:${rejecting.port}` }, 'the backend-sent 400 is logged');
  for (const [i, s] of tunnels.entries()) {
    const l = tuns.filter((x) => x.client_port === s.port);
    t.equal(l.length, 1);
    t.match(l[0], { path: `/ws/${i}`, status: 101, backend: `127.0.0.1:${port(wss)}`, close_side: /client|upstream/, relay: /js|splice/ });
    t.ok((l[0]!.bytes_up as number) > 100 && (l[0]!.bytes_down as number) > 100, 'tunnel bytes both ways');
    t.equal(new Set(all.map((x) => x.request_id)).size, all.length, 'request ids are unique');
  }

  const err = lines(join(dir, 'error.log'));
  t.equal(err.length, 1, 'one error line: the 404');
  t.match(err[0], { level: 'info', code: 'WSPLICE_NO_ROUTE', status: 404, client: '127.0.0.1', client_port: nf.port, route: 'GET a.test/nowhere' });
  t.match(String(err[0]!.time), /^\d{4}-/);
  t.same(problems, []);
});

t.test('a rotated log is reopened; an unwritable one is reported once and serving goes on', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'wsplice-logs-'));
  const http = await rawBackend(respondOnce('HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok'));
  const proxy = createProxy({ upstreams: { http: { servers: [`127.0.0.1:${http.port}`] } } });
  const problems: string[] = [];
  const file = join(dir, 'access.log');
  const access = new AccessLog(proxy, file, (m) => problems.push(m));
  const broken = new AccessLog(proxy, join(dir, 'no-such-dir', 'access.log'), (m) => problems.push(m));
  await proxy.listen({ host: '127.0.0.1', port: 0 });
  t.teardown(async () => {
    await proxy.close();
    await http.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const req = 'GET /a HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n';
  for (let i = 0; i < 3; i++) t.match((await rawClient(port(proxy), req)).reply, /^HTTP\/1\.1 200/, 'served despite the broken log');
  await waitFor(() => problems.length > 0, 5000, 'the broken log reported');
  await waitFor(() => lines(file).length === 3, 5000, 'three lines in the log');
  renameSync(file, `${file}.1`);
  access.reopen();
  await rawClient(port(proxy), req);
  await waitFor(() => { try { return lines(file).length === 1; } catch { return false; } }, 5000, 'a line in the new file');
  t.equal(lines(`${file}.1`).length, 3, 'the rotated file keeps its lines');
  await access.close();
  await broken.close();
  t.equal(problems.length, 1, 'reported once');
  t.match(problems[0], /no-such-dir\/access\.log: ENOENT/);
  t.ok(broken.sink.dropped >= 3, 'its lines were dropped and counted');
});
