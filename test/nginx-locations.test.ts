/**
 * Location and server_name selection, return and allow/deny, as nginx means
 * them: one nginx.conf run by the real nginx (when installed) and then by
 * wsplice on the same port, each answer compared, and both against the
 * answers nginx's documented order gives.
 */
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { freePort, spawnManaged, stopManaged, waitForPort } from '../bench/macro/orchestrate/proc.js';
import { httpGet, startCli } from './support/index.js';

const NGINX = '/usr/sbin/nginx';
const dir = mkdtempSync(join(tmpdir(), 'wsplice-locations-'));

function config(port: number): string {
  const temp = ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((n) => `    ${n}_temp_path ${dir}/${n};`).join('\n');
  return `daemon off;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log;
events { worker_connections 64; }
http {
    access_log off;
${temp}
    server {
        listen 127.0.0.1:${port};
        location / { return 200 "root"; }
        location /a { return 200 "prefix /a"; }
        location /a/b { return 200 "prefix /a/b"; }
        location = /a { return 200 "exact /a"; }
        location ^~ /static/ { return 200 "stop /static/"; }
        location ~ \\.php$ { return 200 "regex php"; }
        location ~* \\.JPG$ { return 200 "regex-i jpg"; }
        location ~ ^/a/b/c { return 200 "regex /a/b/c"; }
        location /ret-before-deny { deny all; return 200 "return runs before access"; }
        location /redir { return 301 https://example.com/x; }
        location /internal { return 403; }
    }
    server {
        listen 127.0.0.1:${port};
        server_name example.com *.example.org mail.* ~^api\\d+\\.test$;
        location / { return 200 "named"; }
        location = /exact { return 200 "named exact"; }
    }
}
`;
}

/** [path, Host, expected status, expected body or Location]. */
const CASES: Array<[string, string, number, string]> = [
  ['/', 'x', 200, 'root'],
  ['/a', 'x', 200, 'exact /a'],
  ['/a/', 'x', 200, 'prefix /a'],
  ['/ab', 'x', 200, 'prefix /a'],
  ['/a/b', 'x', 200, 'prefix /a/b'],
  ['/a/bx?q=1', 'x', 200, 'prefix /a/b'],
  ['/a/b/c', 'x', 200, 'regex /a/b/c'],
  ['/a/b/c.php', 'x', 200, 'regex php'],
  ['/x.php', 'x', 200, 'regex php'],
  ['/x.PHP', 'x', 200, 'root'],
  ['/static/x.php', 'x', 200, 'stop /static/'],
  ['/img.jpg', 'x', 200, 'regex-i jpg'],
  ['/ret-before-deny', 'x', 200, 'return runs before access'],
  ['/redir', 'x', 301, 'https://example.com/x'],
  ['/internal', 'x', 403, ''],
  ['/', 'example.com', 200, 'named'],
  ['/exact', 'EXAMPLE.com:8080', 200, 'named exact'],
  ['/', 'www.example.org', 200, 'named'],
  ['/', 'a.b.example.org', 200, 'named'],
  ['/', 'example.org', 200, 'root'],
  ['/', 'mail.foo', 200, 'named'],
  ['/', 'api12.test', 200, 'named'],
  ['/', 'apix.test', 200, 'root'],
];

async function answers(p: number): Promise<Array<[number, string]>> {
  const out: Array<[number, string]> = [];
  for (const [path, host] of CASES) {
    const r = await httpGet(p, path, { headers: { host } });
    out.push([r.status, r.status >= 300 && r.status < 400 ? String(r.headers.location) : r.status === 200 ? r.body : '']);
  }
  return out;
}

t.test('the same file under nginx and wsplice: the same location, server and answer for each request', async (t) => {
  const port = await freePort();
  const conf = join(dir, 'nginx.conf');
  writeFileSync(conf, config(port));
  const expected = CASES.map(([, , s, b]) => [s, b]);
  if (existsSync(NGINX)) {
    const m = spawnManaged(NGINX, ['-c', conf, '-p', dir, '-e', join(dir, 'error.log')], { stdin: 'ignore' });
    try {
      await waitForPort(port, m, 10_000);
      t.same(await answers(port), expected, 'nginx gives the documented answers');
    } finally {
      await stopManaged(m, 3000);
    }
  } else {
    t.comment(`${NGINX} not installed: compared with the documented answers only`);
  }
  const proxy = await startCli(['-c', conf], t);
  t.equal(proxy.port, port, 'wsplice listens where the file says');
  t.same(await answers(port), expected, 'wsplice gives the same answers');
});

t.test('allow/deny (first match wins), return 403, Host $host and header values with variables (empty: not sent), under nginx and wsplice', async (t) => {
  const { httpBackend } = await import('./support/index.js');
  const b = await httpBackend();
  t.teardown(() => b.close());
  const port = await freePort();
  const conf = join(dir, 'access.conf');
  writeFileSync(conf, `daemon off;
pid ${dir}/nginx2.pid;
events { worker_connections 64; }
http {
    access_log off;
${['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((n) => `    ${n}_temp_path ${dir}/${n};`).join('\n')}
    server {
        listen 127.0.0.1:${port};
        proxy_set_header Host $host;
        proxy_set_header X-Real-IP $remote_addr;
        proxy_set_header X-Uri "$scheme:$request_uri";
        proxy_set_header X-Empty $http_x_none;
        location /allow { allow 127.0.0.0/8; deny all; proxy_pass http://127.0.0.1:${b.port}; }
        location /deny { deny 127.0.0.1; allow all; proxy_pass http://127.0.0.1:${b.port}; }
        location /internal { return 403; }
        location / { proxy_pass http://127.0.0.1:${b.port}; }
    }
}
`);
  const cases: Array<[string, number, string]> = [
    ['/allow/x', 200, 'GET /allow/x '], ['/deny/x', 403, ''], ['/internal', 403, ''], ['/other?q=1', 200, 'GET /other?q=1 '],
  ];
  const run = async (): Promise<unknown[]> => {
    const out: unknown[] = [];
    b.seen.length = 0;
    for (const [path] of cases) {
      const r = await httpGet(port, path, { headers: { host: 'Front.Example:8080' } });
      out.push([r.status, r.status === 200 ? r.body : '']);
    }
    out.push(b.seen.map((s) => [s.headers.host, s.headers['x-real-ip'], s.headers['x-uri'], 'x-empty' in s.headers]));
    return out;
  };
  const expected = [...cases.map(([, s, body]) => [s, body]), [['front.example', '127.0.0.1', 'http:/allow/x', false], ['front.example', '127.0.0.1', 'http:/other?q=1', false]]];
  if (existsSync(NGINX)) {
    const m = spawnManaged(NGINX, ['-c', conf, '-p', dir, '-e', join(dir, 'error2.log')], { stdin: 'ignore' });
    try {
      await waitForPort(port, m, 10_000);
      t.same(await run(), expected, 'nginx');
    } finally {
      await stopManaged(m, 3000);
    }
  }
  await startCli(['-c', conf], t);
  t.same(await run(), expected, 'wsplice answers as nginx');
});

t.test('JSON routes: the same checks as nginx locations, every problem at once', async (t) => {
  const { resolveOptions } = await import('../src/options.js');
  const { ConfigErrors } = await import('../src/config/issues.js');
  const bad = {
    upstreams: { a: { servers: ['127.0.0.1:1'] } },
    routes: [
      { path: '/ws', upstream: 'a' }, { path: '/ws', match: 'prefix-stop', upstream: 'a' }, { path: 'ws', upstream: 'a' },
      { path: '(', match: 'regex', upstream: 'a' }, { path: '/x' }, { path: '/y', upstream: 'nope' }, { path: '/z', hosts: ['bad host'], upstream: 'a' },
    ],
  };
  let err: unknown = null;
  try {
    resolveOptions(bad);
  } catch (e) {
    err = e;
  }
  t.type(err, ConfigErrors);
  t.match((err as Error).message.split('\n'), [
    /^routes\[6\]\.hosts\[0\]: invalid value "bad host"/,
    /^routes\[1\]\.path: duplicate location "\/ws"/,
    /^routes\[2\]\.path: must start with \//,
    /^routes\[3\]\.path: invalid regular expression/,
    /^routes\[4\]\.upstream: is required \(or give return\)/,
    /^routes\[5\]\.upstream: must name an upstream \(one of a\)/,
  ]);
  const ok = resolveOptions({ upstreams: {}, routes: [{ path: '/', return: { status: 204 } }] });
  t.same(ok.routes[0]!.return, { status: 204, text: null }, 'no upstream needed when every route returns');
});

t.test('map: exact strings, then regexes (~ and ~*) in order, else default; used in a header value, under nginx and wsplice', async (t) => {
  const { httpBackend } = await import('./support/index.js');
  const b = await httpBackend();
  t.teardown(() => b.close());
  const port = await freePort();
  const conf = join(dir, 'map.conf');
  writeFileSync(conf, `daemon off;
pid ${dir}/nginx3.pid;
events { worker_connections 64; }
http {
    access_log off;
${['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((n) => `    ${n}_temp_path ${dir}/${n};`).join('\n')}
    map $http_x_tenant $tenant {
        default none;
        acme A;
        ~^b B-re;
        ~*^c C-ci;
        ~^bo never-second;
        '' empty;
    }
    server {
        listen 127.0.0.1:${port};
        proxy_set_header X-Tenant "$tenant/$uri";
        location / { proxy_pass http://127.0.0.1:${b.port}; }
    }
}
`);
  const tenants = ['acme', 'bob', 'cat', 'Cat', 'zzz', null];
  const run = async (): Promise<unknown[]> => {
    b.seen.length = 0;
    for (const x of tenants) await httpGet(port, '/p', { headers: x === null ? {} : { 'x-tenant': x } });
    return b.seen.map((s) => s.headers['x-tenant']);
  };
  const expected = ['A//p', 'B-re//p', 'C-ci//p', 'C-ci//p', 'none//p', 'empty//p'];
  if (existsSync(NGINX)) {
    const m = spawnManaged(NGINX, ['-c', conf, '-p', dir, '-e', join(dir, 'error3.log')], { stdin: 'ignore' });
    try {
      await waitForPort(port, m, 10_000);
      t.same(await run(), expected, 'nginx');
    } finally {
      await stopManaged(m, 3000);
    }
  }
  await startCli(['-c', conf], t);
  t.same(await run(), expected, 'wsplice answers as nginx');
});
