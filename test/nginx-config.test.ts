/**
 * `-c FILE` in nginx syntax: the classic WebSocket configuration drives wsplice
 * (ws and plain HTTP through it), a broken copy of it is checked with -t only,
 * and each problem is named with its line.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { WebSocketServer, type ClientOptions } from 'ws';
import { CLI, ROOT, httpGet, openWs, port, startCli, whoami } from './support/index.js';

const dir = mkdtempSync(join(tmpdir(), 'wsplice-nginx-conf-'));
const fixture = (name: string): string => join(ROOT, 'test/fixtures/nginx', name);

/** The CLI run to completion (for -t and -T). */
function run(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 20_000, cwd: ROOT });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** An http backend that names itself and echoes WebSocket messages (whoami), recording each request's Host. */
async function backend(name: string): Promise<{ server: http.Server; hosts: string[] }> {
  const hosts: string[] = [];
  const server = http.createServer((req, res) => {
    hosts.push(req.headers.host ?? '');
    res.end(`${name} ${req.url}`);
  });
  const wss = new WebSocketServer({ server });
  wss.on('connection', (ws, req) => {
    hosts.push(req.headers.host ?? '');
    ws.on('message', (m) => ws.send(String(m) === 'whoami' ? name : String(m)));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return { server, hosts };
}

/** The fixture with only its port numbers replaced. */
function withPorts(name: string, ports: Record<string, number>): string {
  let text = readFileSync(fixture(name), 'utf8');
  for (const [from, to] of Object.entries(ports)) text = text.replaceAll(`:${from};`, `:${to};`);
  const out = join(dir, name);
  writeFileSync(out, text);
  return out;
}

t.test('the classic WebSocket configuration, read as nginx reads it, proxies ws and plain HTTP', async (t) => {
  const b1 = await backend('b1');
  const b2 = await backend('b2');
  t.teardown(() => { b1.server.closeAllConnections(); b1.server.close(); b2.server.closeAllConnections(); b2.server.close(); });
  const conf = withPorts('websocket.conf', { 8080: 0, 3001: port(b1.server), 3002: port(b2.server) });
  const check = run('-t', '-c', conf);
  t.equal(check.status, 0, `-t passes: ${check.stderr}`);
  const proxy = await startCli(['-c', conf], t);
  const names = new Set<string>();
  for (let i = 0; i < 4; i++) {
    const ws = await openWs(`ws://${proxy.address}/websocket`);
    names.add(await whoami(ws));
    ws.close();
  }
  t.same([...names].sort(), ['b1', 'b2'], 'round robin over both servers of the upstream');
  const r = await httpGet(proxy.port, '/websocket/x?y=1');
  t.equal(r.status, 200);
  t.match(r.body, /^b[12] \/websocket\/x\?y=1$/, 'plain HTTP to the same location, URI unchanged');
  const miss = await httpGet(proxy.port, '/other');
  t.equal(miss.status, 404, 'no location matches: 404, as nginx with no root');
});

t.test("the article's second block as printed: every problem named with its line by -t", async (t) => {
  const r = run('-t', '-c', fixture('article-broken.conf'));
  t.equal(r.status, 1, '-t exits 1, as nginx -t');
  const f = 'article-broken.conf';
  t.match(r.stderr, new RegExp(`unknown directive "192\\.168\\.3\\.1:3000" \\(an upstream lists its backends as "server ADDR;"\\) in \\S*${f}:2`));
  t.match(r.stderr, new RegExp(`unknown directive "192\\.168\\.3\\.2:300" .* in \\S*${f}:3`));
  t.match(r.stderr, new RegExp(`invalid number of the map parameters in \\S*${f}:9`), 'the stray "close;" after the map');
  t.match(r.stderr, new RegExp(`host not found in upstream "upstream" in \\S*${f}:14`), 'proxy_pass names no upstream');
  t.match(r.stderr, new RegExp(`no servers are inside upstream in \\S*${f}:1`));
  t.match(r.stderr, /test failed/);
});

t.test("the bench's generated nginx.conf (with its TLS listener) runs under wsplice unchanged", async (t) => {
  const { nginxConfig } = await import('../bench/macro/orchestrate/peers/configs.js');
  const { TestPki } = await import('./edge/fixtures/certs.js');
  const pki = new TestPki();
  t.teardown(() => pki.cleanup());
  const leaf = pki.leaf('bench', ['localhost', '127.0.0.1']);
  const b = await backend('bench');
  t.teardown(() => { b.server.closeAllConnections(); b.server.close(); });
  const { freePort } = await import('./support/index.js');
  const tlsPort = await freePort();
  const conf = join(dir, 'bench-nginx.conf');
  writeFileSync(conf, nginxConfig({ dir, port: 0, backendPort: port(b.server), workers: '1', maxFds: 1024, tls: { port: tlsPort, cert: { cert: leaf.cert, key: leaf.key, pem: leaf.cert } } }));
  const check = run('-t', '-c', conf);
  t.equal(check.status, 0, `-t passes: ${check.stderr}`);
  t.notMatch(check.stderr, /worker_processes/, 'worker_processes 1 is the workers option: nothing to warn about');
  t.match(check.stderr, /warning: ignored \(they only matter to nginx itself\): daemon, master_process, worker_rlimit_nofile, client_body_temp_path/);
  const proxy = await startCli(['-c', conf], t);
  const ws = await openWs(`ws://${proxy.address}/anything`);
  t.equal(await whoami(ws), 'bench', 'ws through location /');
  ws.close();
  const wss = await openWs(`wss://127.0.0.1:${tlsPort}/x`, undefined, { ca: pki.read(pki.ca.cert), servername: 'localhost' } as ClientOptions);
  t.equal(await whoami(wss), 'bench', 'wss through the ssl listener and its ssl_certificate');
  wss.close();
  t.equal((await httpGet(proxy.port, '/plain')).body, 'bench /plain');
});

t.test('worker_processes N and pid FILE: N workers, the pid file written, and -s stop through it, as nginx', async (t) => {
  const b = await backend('w');
  t.teardown(() => { b.server.closeAllConnections(); b.server.close(); });
  const conf = join(dir, 'workers.conf');
  const pidFile = join(dir, 'front.pid');
  writeFileSync(conf, `worker_processes 2;\npid ${pidFile};\nevents {}\nhttp {\n  server {\n    listen 127.0.0.1:0;\n    location / { proxy_pass http://127.0.0.1:${port(b.server)}; }\n  }\n}\n`);
  const proxy = await startCli(['-c', conf], t, { ready: /wsplice workers: 2 ready/ });
  t.same(JSON.parse(readFileSync(pidFile, 'utf8')), { pid: proxy.pid }, 'the pid file names the primary');
  const children = readFileSync(`/proc/${proxy.pid}/task/${proxy.pid}/children`, 'utf8').trim().split(/\s+/).filter((x) => x !== '');
  t.equal(children.length, 2, 'two worker processes');
  const stop = run('-s', 'stop', '-c', conf);
  t.equal(stop.status, 0, `-s stop finds the instance through the file's pid: ${stop.stderr}`);
  t.equal(await proxy.exited, 0, 'the instance stops');
  t.throws(() => readFileSync(pidFile), 'and removes its pid file');
});
