// The admin listener from the command line: `--admin` and the file's `admin.listen`, a port in use
// (a clear error, exit 1) and a malformed address (-t names it).
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import t from 'tap';

const BIN = fileURLToPath(new URL('../../dist/src/cli/main.js', import.meta.url));
const TMP = mkdtempSync(`${tmpdir()}/wsplice-admin-cli-`);

function lines(child: ReturnType<typeof spawn>, n: number): Promise<string[]> {
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const got = out.split('\n').filter((l) => l !== '');
      if (got.length >= n) resolve(got);
    });
    child.once('exit', (code) => reject(new Error(`exited ${code}: ${out}`)));
  });
}

t.test('--admin serves /healthz, /readyz and /metrics beside the proxy; SIGTERM closes both', async (t) => {
  const child = spawn(process.execPath, [BIN, '-q', '-u', '127.0.0.1:9', '-l', '127.0.0.1:0', '--admin', '127.0.0.1:0'], { stdio: ['ignore', 'pipe', 'pipe'] });
  t.teardown(() => { if (child.exitCode === null) child.kill('SIGKILL'); });
  const [adminLine, listenLine] = await lines(child, 2);
  t.match(adminLine, /^wsplice admin on 127\.0\.0\.1:\d+$/);
  t.match(listenLine, /^wsplice listening on 127\.0\.0\.1:\d+$/);
  const admin = adminLine!.split(' ').pop()!;
  t.equal((await fetch(`http://${admin}/healthz`)).status, 200);
  t.equal((await fetch(`http://${admin}/readyz`)).status, 200, 'ready: listening');
  // One refused request through the proxy shows up in the counters.
  const proxyAddr = listenLine!.split(' ').pop()!;
  const [host, port] = [proxyAddr.slice(0, proxyAddr.lastIndexOf(':')), Number(proxyAddr.slice(proxyAddr.lastIndexOf(':') + 1))];
  await new Promise<void>((resolve) => {
    const s = net.connect({ host, port }, () => s.end('GET / HTTP/1.1\r\n\r\n')); // no Host: 400
    s.on('data', () => {});
    s.on('close', () => resolve());
  });
  const metrics = await (await fetch(`http://${admin}/metrics`)).text();
  t.match(metrics, new RegExp(`wsplice_connections_total\\{listener="${proxyAddr.replace(/\./g, '\\.')}"\\} 1`), 'the connection is counted by listener');
  t.match(metrics, /wsplice_requests_total\{listener="[^"]+",class="4xx"\} 1/, 'the 400 is counted');
  const exited = new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
  child.kill('SIGTERM');
  t.equal(await exited, 0);
});

t.test('an admin port in use: a clear error and exit 1, and no listener left open', async (t) => {
  const blocker = net.createServer();
  await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', () => r()));
  t.teardown(() => blocker.close());
  const busy = (blocker.address() as net.AddressInfo).port;
  const r = spawnSync(process.execPath, [BIN, '-u', '127.0.0.1:9', '-l', '127.0.0.1:0', '--admin', `127.0.0.1:${busy}`], { encoding: 'utf8', timeout: 20_000 });
  t.equal(r.status, 1);
  t.match(r.stderr, new RegExp(`admin listener 127\\.0\\.0\\.1:${busy}: address already in use`));
  t.notMatch(r.stdout, /listening on/, 'the proxy did not start listening');
});

t.test('the file\'s admin.listen is used; -t names a malformed one', async (t) => {
  const bad = `${TMP}/bad.json`;
  writeFileSync(bad, JSON.stringify({ admin: { listen: 'not an address' }, upstreams: { b: { servers: ['127.0.0.1:9'] } } }));
  const r = spawnSync(process.execPath, [BIN, '-t', '-c', bad], { encoding: 'utf8', timeout: 20_000 });
  t.equal(r.status, 1);
  t.match(r.stderr, /--admin: expects PORT, HOST:PORT/);
  const shape = `${TMP}/shape.json`;
  writeFileSync(shape, JSON.stringify({ admin: '127.0.0.1:1', upstreams: { b: { servers: ['127.0.0.1:9'] } } }));
  t.match(spawnSync(process.execPath, [BIN, '-t', '-c', shape], { encoding: 'utf8', timeout: 20_000 }).stderr, /admin: must be \{"listen"/);

  const good = `${TMP}/good.json`;
  writeFileSync(good, JSON.stringify({ listen: ['127.0.0.1:0'], admin: { listen: '127.0.0.1:0' }, upstreams: { b: { servers: ['127.0.0.1:9'] } } }));
  const child = spawn(process.execPath, [BIN, '-q', '-c', good], { stdio: ['ignore', 'pipe', 'pipe'] });
  t.teardown(() => { if (child.exitCode === null) child.kill('SIGKILL'); });
  const [adminLine] = await lines(child, 2);
  t.equal((await fetch(`http://${adminLine!.split(' ').pop()}/healthz`)).status, 200, 'admin from the file');
  child.kill('SIGTERM');
});
