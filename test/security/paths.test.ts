// Routes match the normalised path (src/http1/path.ts): with only /ws routed, no
// spelling of another path reaches the /ws backend (dot-segments, %2e%2e, ..%2F,
// merged slashes), a path climbing above the root is 400, and what is forwarded
// is the client's own target, as nginx forwards it with `proxy_pass http://up;`.
// Each answer is compared with the real nginx (/usr/sbin/nginx) in front of the
// same kind of backend, when it is installed. The same cases go through the embed
// front too: an app's node:http server handing plain requests to proxy.web and
// upgrades to proxy.ws.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { normalisePath } from '../../src/http1/path.js';
import { BadRequestError } from '../../src/errors.js';
import { freePort, waitFor } from '../support/index.js';
import { rawExchange, RecordingBackend, startProxy, type Front, type Responder } from './fixtures/harness.js';

t.test('normalisePath: the path nginx matches locations on', async (t) => {
  const table: Array<[string, string]> = [
    ['/ws', '/ws'], ['/ws/x?a=/../..', '/ws/x'], ['/ws/../admin', '/admin'], ['/ws/%2e%2e/admin', '/admin'],
    ['/ws/..%2Fadmin', '/admin'], ['/ws/..%2fadmin', '/admin'], ['/ws/.%2e/admin', '/admin'], ['//ws', '/ws'],
    ['//ws//x', '/ws/x'], ['/ws/./x', '/ws/x'], ['/%77s/x', '/ws/x'], ['/w%73', '/ws'], ['/ws%2Fx', '/ws/x'],
    ['/ws/x/..', '/ws/'], ['/ws/.', '/ws/'], ['/ws/..', '/'], ['/./ws', '/ws'], ['/ws/', '/ws/'],
    ['/ws/a/%2e%2e/%2e%2e/b', '/b'], ['/ws%3F/x', '/ws%3F/x'], ['/ws/..%5cadmin', '/ws/..\\admin'],
    ['/ws/.hidden', '/ws/.hidden'], ['/ws/...', '/ws/...'], ['*', '*'], ['/', '/'],
  ];
  for (const [input, want] of table) t.equal(normalisePath(input), want, input);
  for (const bad of ['/..', '/ws/../..', '/a/../../ws', '/%2e%2e', '/ws/%00', '/ws/%zz', '/ws/%4', '/ws/%']) {
    t.throws(() => normalisePath(bad), BadRequestError, `${bad}: 400`);
  }
});

/** Answers `WS <request line>`, so the test sees what was forwarded. */
const echoLine: Responder = (head, c) => {
  const line = head.slice(0, head.indexOf('\r\n'));
  const body = `WS ${line}`;
  c.socket.end(`HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`);
};
const backend = await new RecordingBackend(echoLine).listen();
const OPTIONS = { upstreams: { ws: { servers: [`127.0.0.1:${backend.port}`] } }, routes: [{ path: '/ws', upstream: 'ws' }] };
const fronts: Array<[Front, number]> = [];
for (const front of ['listener', 'proxy.web'] as const) {
  const h = await startProxy(OPTIONS, front);
  t.teardown(() => h.proxy.close());
  fronts.push([front, h.port]);
}
t.teardown(() => backend.close());

/** nginx with only `location /ws` (everything else: 404, also for directories, which its static module may answer 403). */
async function startNginx(): Promise<{ port: number; stop: () => void } | null> {
  if (!existsSync('/usr/sbin/nginx')) return null;
  const dir = mkdtempSync(join(tmpdir(), 'wsplice-paths-nginx-'));
  for (const d of ['client_body', 'proxy', 'html']) mkdirSync(join(dir, d));
  const port = await freePort();
  writeFileSync(join(dir, 'nginx.conf'), `daemon off; master_process off; pid ${dir}/nginx.pid; error_log ${dir}/error.log;
events { worker_connections 64; }
http { access_log off; client_body_temp_path ${dir}/client_body; proxy_temp_path ${dir}/proxy;
  server { listen 127.0.0.1:${port}; root ${dir}/html;
    location / { return 404; }
    location /ws { proxy_pass http://127.0.0.1:${backend.port}; proxy_http_version 1.1; } } }
`);
  const child = spawn('/usr/sbin/nginx', ['-c', join(dir, 'nginx.conf'), '-p', dir, '-e', join(dir, 'error.log')], { stdio: 'ignore' });
  const stop = (): void => {
    child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await waitFor(async () => (await rawExchange(port, ['GET /none HTTP/1.1\r\nHost: a\r\n\r\n'], { timeoutMs: 500 })).statuses.length > 0, 5000, 'nginx up');
  } catch {
    stop();
    return null;
  }
  return { port, stop };
}
const nginx = await startNginx();
if (nginx !== null) t.teardown(nginx.stop);

const CASES: Array<{ target: string; status: number; forwarded?: string }> = [
  { target: '/ws/x', status: 200, forwarded: '/ws/x' },
  { target: '/ws/../admin', status: 404 },
  { target: '/ws/%2e%2e/admin', status: 404 },
  { target: '/ws/..%2Fadmin', status: 404 },
  { target: '/ws/.%2e/admin', status: 404 },
  { target: '/ws/a/%2e%2e/%2e%2e/b', status: 404 },
  { target: '/ws/..', status: 404 },
  { target: '//ws', status: 200, forwarded: '//ws' },
  { target: '//ws//x', status: 200, forwarded: '//ws//x' },
  { target: '/./ws', status: 200, forwarded: '/./ws' },
  { target: '/%77s/x', status: 200, forwarded: '/%77s/x' },
  { target: '/ws/x/..?q=1', status: 200, forwarded: '/ws/x/..?q=1' },
  { target: '/..', status: 400 },
  { target: '/ws/../..', status: 400 },
  { target: '/a/../../ws', status: 400 },
  { target: '/ws/%00', status: 400 },
  { target: '/ws/%zz', status: 400 },
];

for (const [front, port] of fronts) {
  for (const c of CASES) {
    t.test(`${front}: GET ${c.target} with only /ws routed: ${c.status}${c.forwarded ? `, forwarded as ${c.forwarded}` : ''}`, async (t) => {
      const before = backend.conns.length;
      const r = await rawExchange(port, [`GET ${c.target} HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n`]);
      t.same(r.statuses, [c.status]);
      if (c.forwarded !== undefined) t.match(r.text, `\r\n\r\nWS GET ${c.forwarded} HTTP/1.1`, 'the client target, unnormalised');
      else t.equal(backend.conns.length, before, 'the /ws backend saw nothing');
      if (c.status === 400) t.match(r.text, /\r\n\r\n400 Bad Request: .+/, 'answered with the reason');
      if (nginx !== null && front === 'listener') {
        const n = await rawExchange(nginx.port, [`GET ${c.target} HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n`]);
        t.same(n.statuses, [c.status], 'nginx answers the same');
        if (c.forwarded !== undefined) t.match(n.text, `WS GET ${c.forwarded} HTTP/1.`, 'nginx forwards the same target');
      }
    });
  }

  t.test(`${front}: a WebSocket upgrade to /ws/../admin is refused on the route too (404), nothing reaches the backend`, async (t) => {
    for (const target of ['/ws/%2e%2e/admin', '/ws/../admin', '/ws/..%2Fadmin']) {
      const before = backend.conns.length;
      const r = await rawExchange(port, [
        `GET ${target} HTTP/1.1\r\nHost: a.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
          'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
      ]);
      t.same(r.statuses, [404], target);
      t.equal(backend.conns.length, before, `${target}: the backend saw nothing`);
    }
  });
}
