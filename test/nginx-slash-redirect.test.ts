/**
 * nginx's 301 for a path one slash short of a `/x/` location with proxy_pass:
 * the same file run by the real nginx (when installed) and by wsplice on the
 * same port, then the JSON route property through the listener, proxy.web and
 * proxy.ws; each answer's status and Location compared, and the backend never reached.
 */
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { freePort, spawnManaged, stopManaged, waitForPort } from '../bench/macro/orchestrate/proc.js';
import { frontPort, httpBackend, httpGet, parseResponse, rawExchange, startCli, startProxy, upgradeHead, type Front } from './support/index.js';

const NGINX = '/usr/sbin/nginx';
const dir = mkdtempSync(join(tmpdir(), 'wsplice-slash-'));

/** [request, Host, expected status, expected Location ('' for none); 'P' stands for the port]. */
const CASES: Array<[string, string, number, string]> = [
  ['GET /app', '127.0.0.1', 301, 'http://127.0.0.1:P/app/'],
  ['GET /app?x=1', 'Example.COM:8080', 301, 'http://example.com:P/app/?x=1'],
  ['GET /app?', 'a.test', 301, 'http://a.test:P/app/'],
  ['HEAD /app', 'a.test', 301, 'http://a.test:P/app/'],
  ['WS /app', 'a.test', 301, 'http://a.test:P/app/'],
  ['GET /x/../app', 'a.test', 301, 'http://a.test:P/app/'],
  ['GET /ex', 'a.test', 200, ''],
  ['GET /re', 'a.test', 301, 'http://a.test:P/re/'],
  ['GET /better', 'a.test', 200, ''],
  ['GET /n/in', 'a.test', 301, 'http://a.test:P/n/in/'],
  ['GET /rp', 'a.test', 301, 'http://a.test:P/rp/'],
  ['GET /ret', 'a.test', 404, ''],
  ['GET /APP', 'a.test', 404, ''],
  ['GET /rx', 'a.test', 404, ''],
];

async function ask(port: number, req: string, host: string): Promise<[number, string]> {
  const [method, path] = req.split(' ') as [string, string];
  const head = method === 'WS' ? upgradeHead(path).replace('Host: example.test', `Host: ${host}`) : `${method} ${path} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`;
  const r = parseResponse(await rawExchange(port, head));
  return [r.status, (r.headers.get('location') ?? '').replace(`:${port}/`, ':P/')];
}

async function answers(port: number): Promise<Array<[number, string]>> {
  const out: Array<[number, string]> = [];
  for (const [req, host] of CASES) out.push(await ask(port, req, host));
  return out;
}

t.test('the same file under nginx and wsplice: the same 301s and Locations, the backend reached by none', async (t) => {
  const b = await httpBackend();
  t.teardown(() => b.close());
  const port = await freePort();
  const up = `127.0.0.1:${b.port}`;
  const conf = join(dir, 'nginx.conf');
  const temp = ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((n) => `    ${n}_temp_path ${dir}/${n};`).join('\n');
  writeFileSync(conf, `daemon off;\npid ${dir}/nginx.pid;\nerror_log ${dir}/error.log;\nevents { worker_connections 64; }\nhttp {\n    access_log off;\n${temp}
    server {
        listen 127.0.0.1:${port};
        absolute_redirect on;
        location /app/ { proxy_pass http://${up}; }
        location /ex/ { proxy_pass http://${up}; }
        location = /ex { return 200 "exact"; }
        location ~ ^/re$ { return 200 "regex"; }
        location /re/ { proxy_pass http://${up}; }
        location /better/ { proxy_pass http://${up}; }
        location /better { return 200 "better"; }
        location /n/ { return 200 "n"; location /n/in/ { proxy_pass http://${up}/x/; } }
        location /rp/ { return 200 "rp"; proxy_pass http://${up}; }
        location /ret/ { return 200 "ret"; }
        location ~ ^/rx/$ { proxy_pass http://${up}; }
        location / { return 404; }
    }
}
`);
  const expected = CASES.map(([, , s, l]) => [s, l]);
  if (existsSync(NGINX)) {
    const m = spawnManaged(NGINX, ['-c', conf, '-p', dir, '-e', join(dir, 'error.log')], { stdin: 'ignore' });
    try {
      await waitForPort(port, m, 10_000);
      t.same(await answers(port), expected, 'nginx');
    } finally {
      await stopManaged(m, 3000);
    }
  } else {
    t.comment(`${NGINX} not installed: compared with the answers nginx 1.22.1 gave`);
  }
  t.same(b.seen.length, 0, 'nginx sent nothing upstream');
  const proxy = await startCli(['-c', conf], t);
  t.same(await answers(port), expected, 'wsplice, the same file');
  t.same(b.seen.length, 0, 'wsplice sent nothing upstream');
  const through = await httpGet(port, '/app/x');
  t.same([through.status, b.seen.map((s) => s.url)], [200, ['/app/x']], 'the path with its slash is proxied');
  await proxy.stop();
});

t.test('routes[].slashRedirect through the listener, proxy.web and proxy.ws', async (t) => {
  const b = await httpBackend();
  t.teardown(() => b.close());
  for (const front of ['listener', 'proxy.web', 'proxy.ws'] as Front[]) {
    const proxy = await startProxy({
      upstreams: { b: { servers: [`127.0.0.1:${b.port}`] } },
      routes: [{ path: '/app/', upstream: 'b', slashRedirect: true }, { path: '/', upstream: 'b' }, { path: '/plain/', upstream: 'b' }],
    });
    const port = await frontPort(proxy, front);
    const req = front === 'proxy.ws' ? 'WS /app?q=2' : 'GET /app?q=2';
    t.same(await ask(port, req, 'Host.test'), [301, 'http://host.test:P/app/?q=2'], `${front}: 301 with the query`);
    t.same(b.seen.length, 0, `${front}: nothing upstream`);
    if (front !== 'proxy.ws') {
      t.same((await ask(port, 'GET /plain', 'h'))[0], 200, `${front}: a route without it falls to the next one`);
      b.seen.length = 0;
    }
    await proxy.close();
  }
});

t.test('slashRedirect on a path that cannot have it is refused', async (t) => {
  const { ConfigError } = await import('../src/errors.js');
  const { createProxy } = await import('../src/index.js');
  const bad = (route: object): unknown => {
    try {
      createProxy({ upstreams: { b: { servers: ['127.0.0.1:1'] } }, routes: [route as never] });
      return 'accepted';
    } catch (err) {
      return err instanceof ConfigError ? /slashRedirect: needs a prefix or exact path ending in \//.test(err.message) : err;
    }
  };
  t.equal(bad({ path: '/app', upstream: 'b', slashRedirect: true }), true, 'no final slash');
  t.equal(bad({ path: '^/a/$', match: 'regex', upstream: 'b', slashRedirect: true }), true, 'a regex');
  t.equal(bad({ path: '/', upstream: 'b', slashRedirect: true }), true, 'the root');
});
