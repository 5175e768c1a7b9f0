/**
 * Per-location settings as nginx means them, one file run by the real nginx
 * (when installed) and then by wsplice on the same port, and the JSON
 * equivalent run by wsplice: nested locations and their selection,
 * proxy_set_header inheritance (a level with lines of its own inherits none),
 * proxy_pass URI replacement, and a location's proxy_read_timeout (by status).
 */
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { freePort, spawnManaged, stopManaged, waitForPort } from '../bench/macro/orchestrate/proc.js';
import { httpBackend, httpGet, startCli } from './support/index.js';

const NGINX = '/usr/sbin/nginx';
const dir = mkdtempSync(join(tmpdir(), 'wsplice-per-location-'));
let files = 0;

/** A whole nginx.conf around `servers`; `name` keeps each file's pid and log apart. */
function nginxConf(servers: string): string {
  const n = files++;
  const temp = ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((x) => `    ${x}_temp_path ${dir}/${x};`).join('\n');
  const file = join(dir, `c${n}.conf`);
  writeFileSync(file, `daemon off;\npid ${dir}/nginx${n}.pid;\nerror_log ${dir}/error${n}.log;\nevents { worker_connections 64; }\nhttp {\n    access_log off;\n${temp}\n${servers}\n}\n`);
  return file;
}

/** `run` against nginx on `conf` (skipped when nginx is not installed), then against wsplice on each of `files`. */
async function sideBySide(t: Test, port: number, conf: string, files: string[], run: () => Promise<unknown>, expected: unknown): Promise<void> {
  if (existsSync(NGINX)) {
    const m = spawnManaged(NGINX, ['-c', conf, '-p', dir, '-e', join(dir, 'error.log')], { stdin: 'ignore' });
    try {
      await waitForPort(port, m, 10_000);
      t.same(await run(), expected, 'nginx');
    } finally {
      await stopManaged(m, 3000);
    }
  } else {
    t.comment(`${NGINX} not installed: compared with nginx's documented answers only`);
  }
  for (const f of files) {
    const proxy = await startCli(['-c', f], t);
    t.same(await run(), expected, `wsplice -c ${f.endsWith('.json') ? 'the JSON equivalent' : 'the same file'}`);
    await proxy.stop();
  }
}

t.test('nested locations: searched when the parent matched, regexes from the innermost level out, ^~ stops only its own level', async (t) => {
  const port = await freePort();
  const conf = nginxConf(`    server {
        listen 127.0.0.1:${port};
        location /a/ {
            return 200 "a";
            location /a/b/ { return 200 "a/b"; location ~ \\.x$ { return 200 "a/b re x"; } }
            location ~ \\.php$ { return 200 "a re php"; }
            location ^~ /a/s/ { return 200 "a stop s"; }
            location = /a/e { return 200 "a exact e"; }
        }
        location ~ \\.php$ { return 200 "srv re php"; }
        location ~ \\.x$ { return 200 "srv re x"; }
        location ~ ^/r { return 200 "srv re r"; location ~ z$ { return 200 "r re z"; } }
        location /q/ { deny all; return 200 "q"; location /q/n/ { return 200 "q/n"; } location /q/m/ { proxy_pass http://127.0.0.1:1; } }
        location /d/ { return 201 "d"; location /d/n/ { proxy_pass http://127.0.0.1:1; } }
    }`);
  const cases: Array<[string, number, string]> = [
    ['/a/x', 200, 'a'], ['/a/b/x', 200, 'a/b'], ['/a/b/x.x', 200, 'a/b re x'], ['/a/b/x.php', 200, 'a re php'], ['/a/x.php', 200, 'a re php'],
    ['/a/s/x.php', 200, 'srv re php'], ['/a/s/x.x', 200, 'srv re x'], ['/a/e', 200, 'a exact e'], ['/a/x.x', 200, 'srv re x'],
    ['/r', 200, 'srv re r'], ['/r/z', 200, 'r re z'], ['/rz.php', 200, 'srv re php'], ['/q/x', 200, 'q'], ['/q/n/x', 200, 'q/n'],
    ['/q/m/x', 403, ''], ['/d/x', 201, 'd'], ['/d/n/x', 502, ''],
  ];
  const run = async (): Promise<unknown[]> => {
    const out: unknown[] = [];
    for (const [path] of cases) {
      const r = await httpGet(port, path);
      out.push([path, r.status, r.status < 300 ? r.body : '']);
    }
    return out;
  };
  await sideBySide(t, port, conf, [conf], run, cases);
});

t.test('proxy_set_header inheritance and proxy_pass URI replacement: the nginx file, nginx, and the JSON equivalent', async (t) => {
  const b = await httpBackend();
  t.teardown(() => b.close());
  const port = await freePort();
  const up = `127.0.0.1:${b.port}`;
  const conf = nginxConf(`    proxy_set_header X-A http;
    server {
        listen 127.0.0.1:${port};
        proxy_set_header X-A srv;
        proxy_set_header Host $host;
        location / { proxy_pass http://${up}; }
        location /api/ { proxy_pass http://${up}/v1/; }
        location /b { proxy_pass http://${up}/x; }
        location = /e { proxy_pass http://${up}/exact; }
        location /own/ { proxy_set_header X-B own; proxy_pass http://${up}/o/; }
        location /n/ {
            proxy_set_header X-B n;
            proxy_pass http://${up}/m/;
            location /n/in/ { proxy_pass http://${up}/deep/; }
            location /n/in2/ { proxy_set_header X-A in2; proxy_pass http://${up}; }
            location ~ \\.txt$ { proxy_pass http://${up}; }
        }
        location ~ \\.php$ { proxy_pass http://${up}; }
    }`);
  const json = join(dir, 'headers.json');
  const srvHeaders = { host: '$host', xForwarded: false, setHeaders: { 'X-A': 'srv' } };
  const own = (h: Record<string, string>): object => ({ host: null, xForwarded: false, xRealIp: false, setHeaders: h, removeHeaders: [] });
  writeFileSync(json, JSON.stringify({
    listen: [`127.0.0.1:${port}`], upstreams: { b: { servers: [up] } }, forwarding: srvHeaders,
    routes: [
      { path: '/', upstream: 'b' }, { path: '/api/', upstream: 'b', uri: '/v1/' }, { path: '/b', upstream: 'b', uri: '/x' },
      { path: '/e', match: 'exact', upstream: 'b', uri: '/exact' }, { path: '/own/', upstream: 'b', uri: '/o/', forwarding: own({ 'X-B': 'own' }) },
      {
        path: '/n/', upstream: 'b', uri: '/m/', forwarding: own({ 'X-B': 'n' }),
        routes: [{ path: '/n/in/', upstream: 'b', uri: '/deep/' }, { path: '/n/in2/', upstream: 'b', forwarding: own({ 'X-A': 'in2' }) }, { path: '\\.txt$', match: 'regex', upstream: 'b' }],
      },
      { path: '\\.php$', match: 'regex', upstream: 'b' },
    ],
  }));
  // [request, what the backend got: target, X-A, X-B]
  const cases: Array<[string, [string, string, string]]> = [
    ['/other/%41?q', ['/other/%41?q', 'srv', '-']], ['/api/x?q=1', ['/v1/x?q=1', 'srv', '-']], ['/api/a%20b', ['/v1/a%20b', 'srv', '-']],
    ['/api/a%2Fb', ['/v1/a/b', 'srv', '-']], ['/api/a%3Fb?c=d', ['/v1/a%3Fb?c=d', 'srv', '-']], ['/api/a%253F', ['/v1/a%253F', 'srv', '-']],
    ['/api//x//y', ['/v1/x/y', 'srv', '-']], ['/api/./x/../y', ['/v1/y', 'srv', '-']], ['/api/x?', ['/v1/x', 'srv', '-']],
    ['/api/%C3%A9', ['/v1/%C3%A9', 'srv', '-']], ['/api/a+b%2B', ['/v1/a+b+', 'srv', '-']], ['/api/a%23b', ['/v1/a%23b', 'srv', '-']],
    ['/bx', ['/xx', 'srv', '-']], ['/b/y', ['/x/y', 'srv', '-']], ['/e', ['/exact', 'srv', '-']], ['/e?z', ['/exact?z', 'srv', '-']],
    ['/own/x', ['/o/x', '-', 'own']], ['/n/x', ['/m/x', '-', 'n']], ['/n/in/x', ['/deep/x', '-', 'n']], ['/n/in2/x', ['/n/in2/x', 'in2', '-']],
    ['/n/a.txt', ['/n/a.txt', '-', 'n']], ['/n/in/a.php', ['/n/in/a.php', 'srv', '-']],
  ];
  const run = async (): Promise<unknown[]> => {
    b.seen.length = 0;
    for (const [path] of cases) await httpGet(port, path, { headers: { host: 'Front.Example:8080' } });
    return b.seen.map((s) => [s.url, s.headers['x-a'] ?? '-', s.headers['x-b'] ?? '-', s.headers['x-a'] === 'srv' ? s.headers.host : 'front.example']);
  };
  await sideBySide(t, port, conf, [conf, json], run, cases.map(([, seen]) => [...seen, 'front.example']));
});

t.test("a location's proxy_read_timeout: 504 there, not in a location with 60s (nginx, the file and its JSON under wsplice)", async (t) => {
  const held: Array<() => void> = [];
  const b = await httpBackend((_req, res) => {
    held.push(() => res.end('late'));
    return true;
  });
  t.teardown(() => b.close());
  const port = await freePort();
  const up = `127.0.0.1:${b.port}`;
  const conf = nginxConf(`    proxy_read_timeout 60s;
    server {
        listen 127.0.0.1:${port};
        location /long/ { proxy_pass http://${up}; }
        location /short/ { proxy_read_timeout 1s; proxy_pass http://${up}; location /short/back/ { proxy_read_timeout 60s; proxy_pass http://${up}; } }
    }`);
  const json = join(dir, 'timeouts.json');
  writeFileSync(json, JSON.stringify({
    listen: [`127.0.0.1:${port}`], upstreams: { b: { servers: [up] } },
    routes: [{ path: '/long/', upstream: 'b' }, { path: '/short/', upstream: 'b', timeouts: { responseMs: 1000 }, routes: [{ path: '/short/back/', upstream: 'b', timeouts: { responseMs: 60_000 } }] }],
  }));
  const run = async (): Promise<number[]> => {
    held.length = 0;
    const long = httpGet(port, '/long/x');
    const back = httpGet(port, '/short/back/x');
    const short = (await httpGet(port, '/short/x')).status;
    for (const release of held) release(); // only after the 1 s location answered
    return [short, (await long).status, (await back).status];
  };
  await sideBySide(t, port, conf, [conf, json], run, [504, 200, 200]);
});
