/**
 * The upstream directives of an nginx file, by their nginx meaning over real
 * sockets: least_conn, ip_hash, hash, backup, down, max_conns and per-server
 * max_fails are run by the real nginx (when installed) and then by wsplice on
 * the same file and port, each judged by the same property; sticky cookie,
 * slow_start and resolve (nginx Plus or newer nginx) by wsplice alone; -t
 * names each bad argument with its file:line as nginx -t does.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { WebSocketServer, type WebSocket } from 'ws';
import { spawnManaged, stopManaged, waitForPort } from '../bench/macro/orchestrate/proc.js';
import { get, tally } from './support/named-backends.js';
import { CLI, ROOT, freePort, openWs, startCli, waitFor, whoami } from './support/index.js';

const NGINX = '/usr/sbin/nginx';
const HAVE_NGINX = existsSync(NGINX);
const dir = mkdtempSync(join(tmpdir(), 'wsplice-upstreams-'));
let seq = 0;

interface Backend {
  name: string;
  port: number;
  /** TCP connections accepted. */
  conns: number;
  wss: WebSocketServer;
  close(): Promise<void>;
}

/** An http backend on 127.0.0.1 that answers its name and echoes WebSocket messages (whoami), counting connections. */
async function backend(name: string, at = 0): Promise<Backend> {
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => res.end(name));
  });
  const wss = new WebSocketServer({ server });
  wss.on('connection', (ws) => ws.on('message', (m) => ws.send(String(m) === 'whoami' ? name : String(m))));
  const b: Backend = {
    name, port: 0, conns: 0, wss,
    close: () => new Promise((r) => { for (const c of wss.clients) c.terminate(); server.closeAllConnections(); server.close(() => r()); }),
  };
  server.on('connection', () => b.conns++);
  await new Promise<void>((r) => server.listen(at, '127.0.0.1', () => r()));
  b.port = (server.address() as net.AddressInfo).port;
  return b;
}

/** A backend that accepts and resets at once (a failure before any response byte), counting connections. */
async function resetter(): Promise<{ port: number; conns: number; close(): Promise<void> }> {
  const o = { port: 0, conns: 0, close: (): Promise<void> => new Promise((r) => server.close(() => r())) };
  const server = net.createServer((s) => {
    o.conns++;
    s.resetAndDestroy();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  o.port = (server.address() as net.AddressInfo).port;
  return o;
}

/** A whole nginx.conf: the upstream blocks and locations given, the rest what nginx needs to run as a test user. */
function nginxConf(port: number, http: string, locations = 'location / { proxy_pass http://u; }'): string {
  const temp = ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((n) => `    ${n}_temp_path ${dir}/${n};`).join('\n');
  return `daemon off;
pid ${dir}/nginx-${seq}.pid;
error_log ${dir}/error-${seq}.log;
events { worker_connections 128; }
http {
    access_log off;
${temp}
    map $http_upgrade $connection_upgrade { default upgrade; '' close; }
${http}
    server {
        listen 127.0.0.1:${port};
        proxy_http_version 1.1;
        proxy_set_header Upgrade $http_upgrade;
        proxy_set_header Connection $connection_upgrade;
        ${locations}
    }
}
`;
}

type Who = 'nginx' | 'wsplice';

/**
 * The file run by nginx (when installed) and then by wsplice on the same port; `check` judges
 * each. `prepare` runs before each, to put the backends back as they were.
 */
async function underBoth(t: Test, conf: (port: number) => string, check: (who: Who, port: number) => Promise<void>, prepare: () => Promise<void> = async () => {}): Promise<void> {
  const port = await freePort();
  const file = join(dir, `u${seq++}.conf`);
  writeFileSync(file, conf(port));
  if (HAVE_NGINX) {
    await prepare();
    const m = spawnManaged(NGINX, ['-c', file, '-p', dir, '-e', join(dir, `error-${seq}.log`)], { stdin: 'ignore' });
    try {
      await waitForPort(port, m, 10_000);
      await check('nginx', port);
    } finally {
      await stopManaged(m, 3000);
    }
  } else {
    t.comment(`${NGINX} not installed: wsplice judged alone`);
  }
  await prepare();
  const proxy = await startCli(['-c', file]);
  try {
    t.equal(proxy.port, port, 'wsplice listens where the file says');
    await check('wsplice', port);
  } finally {
    await proxy.stop();
  }
}

async function wsTo(port: number): Promise<{ ws: WebSocket; name: string }> {
  const ws = await openWs(`ws://127.0.0.1:${port}/`);
  return { ws, name: await whoami(ws) };
}

t.test('least_conn: a new tunnel goes to the backend with the fewest open ones', async (t) => {
  const bs = await Promise.all(['A', 'B', 'C'].map((n) => backend(n)));
  t.teardown(async () => { for (const b of bs) await b.close(); });
  const servers = bs.map((b) => `server 127.0.0.1:${b.port};`).join(' ');
  await underBoth(t, (p) => nginxConf(p, `upstream u { least_conn; ${servers} }`), async (who, port) => {
    const open: Array<{ ws: WebSocket; name: string }> = [];
    for (let i = 0; i < 6; i++) open.push(await wsTo(port));
    t.same(tally(open.map((o) => o.name)), { A: 2, B: 2, C: 2 }, `${who}: six tunnels, two on each`);
    for (const o of open.filter((x) => x.name === 'B')) o.ws.terminate();
    await waitFor(() => bs[1]!.wss.clients.size === 0, 5000, 'B to see its tunnels closed');
    const next = [await wsTo(port), await wsTo(port)];
    t.same(next.map((o) => o.name), ['B', 'B'], `${who}: both new tunnels go to the emptied backend (round robin would spread them)`);
    for (const o of [...open, ...next]) o.ws.terminate();
    await waitFor(() => bs.every((b) => b.wss.clients.size === 0), 5000, 'every tunnel closed');
  });
});

t.test('ip_hash: each client network (IPv4 /24) stays on one backend; networks spread over the backends', async (t) => {
  const bs = await Promise.all(['A', 'B', 'C'].map((n) => backend(n)));
  t.teardown(async () => { for (const b of bs) await b.close(); });
  const servers = bs.map((b) => `server 127.0.0.1:${b.port};`).join(' ');
  await underBoth(t, (p) => nginxConf(p, `upstream u { ip_hash; ${servers} }`), async (who, port) => {
    const byNet: string[][] = [];
    for (let k = 0; k < 12; k++) {
      const got: string[] = [];
      for (const host of [1, 2, 77, 1, 200]) got.push((await get(port, { localAddress: `127.${k}.0.${host}` })).body);
      byNet.push([...new Set(got)]);
    }
    t.ok(byNet.every((names) => names.length === 1), `${who}: every client of a /24 on one backend, every time: ${JSON.stringify(byNet)}`);
    t.ok(new Set(byNet.flat()).size >= 2, `${who}: the twelve networks use more than one backend`);
  });
});

t.test('hash KEY and hash KEY consistent: one key, one backend; many keys spread', async (t) => {
  const bs = await Promise.all(['A', 'B', 'C'].map((n) => backend(n)));
  t.teardown(async () => { for (const b of bs) await b.close(); });
  const servers = bs.map((b) => `server 127.0.0.1:${b.port};`).join(' ');
  for (const [line, send] of [
    ['hash $http_x_session consistent;', (k: string) => ({ headers: { 'x-session': k } })],
    ['hash $arg_room;', (k: string) => ({ path: `/?room=${k}` })],
  ] as const) {
    await underBoth(t, (p) => nginxConf(p, `upstream u { ${line} ${servers} }`), async (who, port) => {
      const byKey: string[][] = [];
      for (let k = 0; k < 16; k++) {
        const got: string[] = [];
        for (let i = 0; i < 3; i++) got.push((await get(port, send(`key-${k}`))).body);
        byKey.push([...new Set(got)]);
      }
      t.ok(byKey.every((names) => names.length === 1), `${who} ${line}: each key on one backend: ${JSON.stringify(byKey)}`);
      t.ok(new Set(byKey.flat()).size >= 2, `${who} ${line}: sixteen keys use more than one backend`);
    });
  }
});

t.test('down is never picked; backup only once every primary is down', async (t) => {
  const a = await backend('A');
  const c = await backend('C');
  const bPort = (await backend('B').then(async (x) => (await x.close(), x))).port;
  let b: Backend | null = null;
  t.teardown(async () => { await a.close(); await b?.close(); await c.close(); });
  // B (the live primary) is stopped by each run: start it again on its port.
  const prepare = async (): Promise<void> => {
    b = await backend('B', bPort);
    a.conns = 0;
    c.conns = 0;
  };
  const conf = (p: number): string => nginxConf(
    p, `upstream u { server 127.0.0.1:${a.port} down; server 127.0.0.1:${bPort}; server 127.0.0.1:${c.port} backup; }\n    upstream m { server 127.0.0.1:${a.port} down; server 127.0.0.1:${c.port} backup; }`,
    'location / { proxy_pass http://u; } location /m { proxy_pass http://m; }',
  );
  await underBoth(t, conf, async (who, port) => {
    const before: string[] = [];
    for (let i = 0; i < 6; i++) before.push((await get(port)).body);
    t.same(tally(before), { B: 6 }, `${who}: the one live primary takes everything; down and backup none`);
    t.equal(c.conns, 0, `${who}: the backup was not even connected to`);
    t.equal((await get(port, { path: '/m' })).body, 'C', `${who}: a group whose primaries are all marked down (maintenance) uses its backup`);
    await b!.close();
    b = null;
    const after: string[] = [];
    for (let i = 0; i < 6; i++) after.push((await get(port)).body);
    t.same(tally(after), { C: 6 }, `${who}: with the primary gone, the backup answers`);
    t.equal(a.conns, 0, `${who}: the server marked down never saw a connection`);
  }, prepare);
});

t.test('max_conns: a full backend takes no more (backup first, then a refusal), room again once a tunnel closes', async (t) => {
  const [full, spill, extra] = await Promise.all([backend('F'), backend('P'), backend('X')]);
  t.teardown(async () => { for (const b of [full, spill, extra]) await b.close(); });
  const upstreams = `upstream u { server 127.0.0.1:${full.port} max_conns=1; }\n    upstream v { server 127.0.0.1:${spill.port} max_conns=1; server 127.0.0.1:${extra.port} backup; }`;
  const locations = 'location / { proxy_pass http://u; } location /v { proxy_pass http://v; }';
  await underBoth(t, (p) => nginxConf(p, upstreams, locations), async (who, port) => {
    const held = await wsTo(port);
    t.equal(held.name, 'F');
    const conns = full.conns;
    const refused = await get(port, { path: '/x' });
    if (who === 'wsplice') {
      t.equal(refused.status, 503, 'wsplice: 503 while every backend is full');
      t.equal(refused.headers['retry-after'], '1', 'with Retry-After');
    } else {
      t.equal(refused.status, 502, 'nginx: 502 (no live upstreams)');
    }
    const upgrade = await openWs(`ws://127.0.0.1:${port}/`).then(() => 'opened', (e: Error) => e.message);
    t.match(upgrade, who === 'wsplice' ? /503/ : /502/, `${who}: an upgrade is refused too`);
    t.equal(full.conns, conns, `${who}: the full backend saw no new connection`);
    const heldV = await openWs(`ws://127.0.0.1:${port}/v`);
    const spilled = await get(port, { path: '/v' });
    t.equal(spilled.body, 'X', `${who}: the primary full, the backup answers`);
    heldV.terminate();
    held.ws.terminate();
    await waitFor(() => full.wss.clients.size === 0, 5000, 'the held tunnel to close');
    t.equal((await get(port)).body, 'F', `${who}: served again once there is room`);
    for (const b of [full, spill, extra]) for (const c of b.wss.clients) c.terminate();
  });
});

t.test('max_fails and fail_timeout per server: each server by its own values', async (t) => {
  const [r1, r2] = await Promise.all([resetter(), resetter()]);
  const ok = await backend('B');
  t.teardown(async () => { await r1.close(); await r2.close(); await ok.close(); });
  const conf = (p: number): string => nginxConf(p, `upstream u { server 127.0.0.1:${r1.port} max_fails=2 fail_timeout=10m; server 127.0.0.1:${r2.port} max_fails=0; server 127.0.0.1:${ok.port}; }`);
  await underBoth(t, conf, async (who, port) => {
    const got: string[] = [];
    for (let i = 0; i < 12; i++) got.push((await get(port)).body);
    t.same(tally(got), { B: 12 }, `${who}: every request answered by the live server`);
    t.equal(r1.conns, 2, `${who}: max_fails=2 fail_timeout=10m: tried twice, then left alone`);
    t.ok(r2.conns > 2, `${who}: max_fails=0: never taken out (${r2.conns} tries)`);
  }, async () => {
    r1.conns = 0;
    r2.conns = 0;
  });
});

t.test('sticky cookie (nginx Plus syntax): issued on the first response, honoured after, re-issued when its backend is gone', async (t) => {
  const a = await backend('A');
  const b = await backend('B');
  t.teardown(async () => { await a.close(); await b.close(); });
  const port = await freePort();
  const file = join(dir, 'sticky.conf');
  writeFileSync(file, nginxConf(port, `upstream u { server 127.0.0.1:${a.port}; server 127.0.0.1:${b.port}; sticky cookie srv expires=1h path=/ httponly samesite=lax; }`));
  const proxy = await startCli(['-c', file], t);
  const plain: string[] = [];
  for (let i = 0; i < 4; i++) plain.push((await get(proxy.port)).body);
  t.same(tally(plain), { A: 2, B: 2 }, 'without the cookie: round robin');
  const first = await get(proxy.port);
  const set = String(first.headers['set-cookie']);
  t.match(set, /^srv=[\w-]{22}; Path=\/; Max-Age=3600; HttpOnly; SameSite=Lax$/, 'the cookie, with the attributes the line gives');
  t.notMatch(set, new RegExp(`${a.port}|${b.port}|127\\.0\\.0\\.1`), 'an opaque value, never the address');
  const cookie = set.split(';')[0]!;
  const again: string[] = [];
  for (let i = 0; i < 6; i++) {
    const r = await get(proxy.port, { headers: { cookie } });
    again.push(r.body);
    t.equal(r.headers['set-cookie'], undefined, 'not issued again to a client that has it');
  }
  t.same(again, Array(6).fill(first.body), 'every request with the cookie on the backend that issued it');
  const ws = await openWs(`ws://127.0.0.1:${proxy.port}/`, undefined, { headers: { cookie } });
  t.equal(await whoami(ws), first.body, 'an upgrade with the cookie too');
  ws.terminate();
  const forged = await get(proxy.port, { headers: { cookie: 'srv=not-one-of-ours' } });
  t.match(String(forged.headers['set-cookie']), /^srv=[\w-]{22};/, 'a cookie that does not decode: balanced and issued again');
  const [gone, other] = first.body === 'A' ? [a, b] : [b, a];
  await gone.close();
  const moved = await get(proxy.port, { headers: { cookie } });
  t.equal(moved.body, other.name, 'its backend gone: the request goes to the other');
  t.not(String(moved.headers['set-cookie']).split(';')[0], cookie, 'and the cookie is re-issued for the new one');
});

t.test('slow_start: a backend back from failure gets a small share first (beside the same server without it); resolve: a host name is resolved', async (t) => {
  const b = await backend('B');
  const aPort = (await backend('A').then(async (x) => (await x.close(), x))).port;
  let a: Backend | null = null;
  t.teardown(async () => { await b.close(); await a?.close(); });
  const port = await freePort();
  const file = join(dir, 'slow.conf');
  const failing = `server 127.0.0.1:${aPort} max_fails=1 fail_timeout=1s`;
  writeFileSync(file, nginxConf(port, `upstream u { ${failing} slow_start=10m; server localhost:${b.port} resolve; }\n    upstream c { ${failing}; server 127.0.0.1:${b.port}; }`, 'location / { proxy_pass http://u; } location /c { proxy_pass http://c; }'));
  const proxy = await startCli(['-c', file], t);
  t.equal((await get(proxy.port)).body, 'B', 'A is not there: the request goes on to B (found through localhost)');
  t.equal((await get(proxy.port, { path: '/c' })).body, 'B', 'the same in the group without slow_start');
  a = await backend('A', aPort);
  await new Promise((r) => setTimeout(r, 1200)); // past A's fail_timeout in both groups
  const share = async (path: string): Promise<Record<string, number>> => {
    const got: string[] = [];
    for (let i = 0; i < 20; i++) got.push((await get(proxy.port, { path })).body);
    return tally(got);
  };
  const plain = await share('/c');
  t.ok((plain.A ?? 0) >= 5, `without slow_start A is back at its full weight: ${JSON.stringify(plain)}`);
  const slow = await share('/');
  t.ok((slow.A ?? 0) <= 2, `with slow_start=10m its weight starts near 0: ${JSON.stringify(slow)}`);
});

/** `-t` on a file: exit status and stderr. */
function check(bin: 'nginx' | 'wsplice', file: string): { status: number | null; stderr: string } {
  const r = bin === 'nginx'
    ? spawnSync(NGINX, ['-t', '-c', file, '-p', dir, '-e', join(dir, 'check.log')], { encoding: 'utf8', timeout: 20_000 })
    : spawnSync(process.execPath, [CLI, '-t', '-c', file], { encoding: 'utf8', timeout: 20_000, cwd: ROOT });
  return { status: r.status, stderr: r.stderr };
}

t.test('-t names each bad upstream argument with its file:line, in the words nginx -t uses', async (t) => {
  // [lines of the upstream block, the message, the line it is reported on (the block starts on line 14)]
  const cases: Array<[string, string, number]> = [
    ['server 127.0.0.1:1 max_conns=abc;', 'invalid parameter "max_conns=abc"', 14],
    ['server 127.0.0.1:1 weight=0;', 'invalid parameter "weight=0"', 14],
    ['hash $remote_addr;\nserver 127.0.0.1:1 backup;\nserver 127.0.0.1:2;', 'balancing method does not support parameter "backup"', 15],
    ['server 127.0.0.1:1 max_fails=x;', 'invalid parameter "max_fails=x"', 14],
    ['random least_conn;\nserver 127.0.0.1:1;', 'invalid parameter "least_conn"', 14],
    ['hash $remote_addr foo;\nserver 127.0.0.1:1;', 'invalid parameter "foo"', 14],
  ];
  for (const [lines, message, line] of cases) {
    const file = join(dir, `bad${seq++}.conf`);
    writeFileSync(file, nginxConf(1, `upstream u {\n${lines}\n}`));
    const esc = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    const where = new RegExp(`${esc(message)}.* in ${esc(file)}:${line}\\b`);
    if (HAVE_NGINX) {
      const n = check('nginx', file);
      t.equal(n.status, 1, `nginx -t refuses ${JSON.stringify(lines)}`);
      t.match(n.stderr, where, `nginx: ${message} at line ${line}`);
    }
    const w = check('wsplice', file);
    t.equal(w.status, 1, `wsplice -t refuses ${JSON.stringify(lines)}`);
    t.match(w.stderr, where, `wsplice: ${message} at line ${line}`);
  }
  // Everything at once (nginx stops at the first), with what only wsplice checks.
  const all = (name: string, http: string, locations: string): string => {
    const file = join(dir, `${name}.conf`);
    writeFileSync(file, nginxConf(1, http, locations));
    return file;
  };
  const files = [
    all('bad-all', 'upstream u {\nserver 127.0.0.1:1 max_conns=abc weight=0;\nhash $nope;\n}\nupstream v {\nserver 127.0.0.1:2;\nsticky cookie s samesite=none;\n}', 'location / { proxy_pass http://u; } location /v { proxy_pass http://v; }'),
    // What the model checks across a group's servers comes after every field is valid: a file of its own.
    all('bad-group', 'upstream u {\nserver 127.0.0.1:1 backup;\n}\nupstream w {\nserver 127.0.0.1:2 down;\n}\nupstream v {\nserver 127.0.0.1:2 resolve;\nip_hash;\nserver 127.0.0.1:3 slow_start=10s;\n}', 'location / { proxy_pass http://u; } location /v { proxy_pass http://v; } location /w { proxy_pass http://w; }'),
  ];
  const expected: Array<[RegExp, string, number]> = [
    [/invalid parameter "max_conns=abc"/, 'bad-all', 14], [/invalid parameter "weight=0"/, 'bad-all', 14], [/unknown variable "\$nope" in hash key/, 'bad-all', 15],
    [/SameSite=None needs secure/, 'bad-all', 19],
    [/needs at least one primary server/, 'bad-group', 13], [/every server is marked down/, 'bad-group', 16],
    [/resolve: needs a host name, not an IP address/, 'bad-group', 20], [/slow start cannot be used with the ip_hash balancing method/, 'bad-group', 22],
  ];
  const out = files.map((f) => check('wsplice', f));
  t.same(out.map((r) => r.status), [1, 1]);
  for (const [re, name, line] of expected) {
    t.match(out[name === 'bad-all' ? 0 : 1]!.stderr, new RegExp(`${re.source}.* in \\S*${name}\\.conf:${line}\\b`), `${re.source} at ${name}:${line}`);
  }
});
