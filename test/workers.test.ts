// --workers N: a primary and N workers sharing the listeners (node:cluster). Both workers serve
// (their pids are on the error log lines of the requests they refused), the admin listener on the
// primary sums the workers' counters, SIGTERM drains every worker (ws clients and the ws server see
// Close 1001) and exits 0, a killed worker is replaced and counted, a crash loop ends the primary.
import { spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import net, { type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import t, { type Test } from 'tap';
import WebSocket, { WebSocketServer } from 'ws';
import { CLI, closeCode, closeWss, openWs, startCli, waitFor, within, type CliProcess } from './support/index.js';

const TMP = mkdtempSync(`${tmpdir()}/wsplice-workers-`);

interface Status {
  draining: boolean;
  restarts: number;
  workers: Array<{ pid: number; ready: boolean }>;
}

/** A JSON config with two workers, an admin listener, an error log file and a short drain. */
function config(name: string, backend: number, extra: Record<string, unknown> = {}): string {
  const file = `${TMP}/${name}.json`;
  writeFileSync(file, JSON.stringify({
    listen: ['127.0.0.1:0'], workers: 2, admin: { listen: '127.0.0.1:0' }, errorLog: `${TMP}/${name}.error.log`,
    relay: 'js', timeouts: { drainMs: 300 }, upstreams: { b: { servers: [`127.0.0.1:${backend}`] } }, ...extra,
  }));
  return file;
}

async function startWorkers(t: Test, file: string): Promise<{ cli: CliProcess; admin: string; listen: string }> {
  const cli = await startCli(['-c', file], t, { ready: /wsplice workers: 2 ready/ });
  const admin = /wsplice admin on (\S+)/.exec(cli.stdout())![1]!;
  const listen = /wsplice listening on (\S+)/.exec(cli.stdout())![1]!;
  return { cli, admin, listen };
}

const status = async (admin: string): Promise<Status> => (await (await fetch(`http://${admin}/status`)).json()) as Status;

/** One request without Host: refused with 400 by whichever worker got the connection. */
function refusedRequest(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let got = '';
    const s = net.connect({ host: '127.0.0.1', port }, () => s.write('GET / HTTP/1.1\r\n\r\n'));
    s.on('data', (d: Buffer) => (got += d.toString('latin1')));
    s.on('error', reject);
    s.on('close', () => resolve(got.split('\r\n')[0]!));
  });
}

async function echoServer(t: Test): Promise<{ wss: WebSocketServer; codes: number[] }> {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await once(wss, 'listening');
  const codes: number[] = [];
  wss.on('connection', (ws) => {
    ws.on('message', (m) => ws.send(m));
    ws.on('close', (code) => codes.push(code));
  });
  t.teardown(() => closeWss(wss));
  return { wss, codes };
}

t.test('two workers both serve, /metrics on the primary sums them, SIGTERM drains both with Close 1001', async (t) => {
  const { wss, codes } = await echoServer(t);
  const file = config('serve', (wss.address() as AddressInfo).port);
  const { cli, admin, listen } = await startWorkers(t, file);
  const port = Number(listen.split(':').pop());
  const st = await status(admin);
  t.equal(st.workers.length, 2);
  t.equal((await fetch(`http://${admin}/readyz`)).status, 200, 'ready while the workers are');
  const REQUESTS = 8;
  for (let i = 0; i < REQUESTS; i++) t.match(await refusedRequest(port), /^HTTP\/1\.1 400/);
  const metrics = await (await fetch(`http://${admin}/metrics`)).text();
  t.match(metrics, new RegExp(`wsplice_requests_total\\{listener="[^"]+",class="4xx"\\} ${REQUESTS}\\b`), 'the 400s of both workers, summed');
  t.match(metrics, /wsplice_workers_ready 2\b/);
  t.match(metrics, /wsplice_worker_restarts_total 0\b/);

  const clients: WebSocket[] = [];
  for (let i = 0; i < 4; i++) {
    const ws = await openWs(`ws://${listen}/`);
    const echoed = new Promise<string>((r) => ws.once('message', (m) => r(String(m))));
    ws.send(`hello ${i}`);
    t.equal(await echoed, `hello ${i}`);
    clients.push(ws);
  }
  const closes = clients.map((ws) => closeCode(ws));
  process.kill(cli.pid, 'SIGTERM');
  t.same(await within(Promise.all(closes), 10_000, 'the clients to see a close'), [1001, 1001, 1001, 1001], 'every client: going away');
  t.equal(await within(cli.exited, 10_000, 'the primary to exit'), 0);
  await waitFor(() => codes.length === 4, 5000, 'the backend to see every close');
  t.same(codes, [1001, 1001, 1001, 1001], 'the backend: going away too');

  const pids = new Set<number>();
  for (const line of readFileSync(`${TMP}/serve.error.log`, 'utf8').split('\n')) {
    if (line === '') continue;
    const rec = JSON.parse(line) as { pid: number; status?: number };
    if (rec.status === 400) pids.add(rec.pid);
  }
  t.same([...pids].sort(), st.workers.map((w) => w.pid).sort(), 'both workers refused some of the requests');
});

t.test('SIGHUP reloads every worker in place; a killed worker is replaced and counted; /readyz stays 200', async (t) => {
  const file = config('replace', 9);
  const { cli, admin } = await startWorkers(t, file);
  const before = await status(admin);
  process.kill(cli.pid, 'SIGHUP');
  const reloads = (): number => readFileSync(`${TMP}/replace.error.log`, 'utf8').split('\n').filter((l) => /reload ok/.test(l)).length;
  await waitFor(() => reloads() === 2, 10_000, 'both workers to log their reload');
  t.same((await status(admin)).workers.map((w) => w.pid), before.workers.map((w) => w.pid), 'the same workers: reloaded, not restarted');
  const victim = before.workers[0]!.pid;
  process.kill(victim, 'SIGKILL');
  await waitFor(async () => {
    const s = await status(admin);
    return s.workers.length === 2 && s.workers.every((w) => w.ready && w.pid !== victim);
  }, 15_000, 'a replacement worker');
  const after = await status(admin);
  t.equal(after.restarts, 1);
  t.ok(after.workers.some((w) => w.pid === before.workers[1]!.pid), 'the other worker kept running');
  t.match(await (await fetch(`http://${admin}/metrics`)).text(), /wsplice_worker_restarts_total 1\b/);
  t.equal((await fetch(`http://${admin}/readyz`)).status, 200);
  t.match(cli.stderr(), new RegExp(`worker ${victim} killed by SIGKILL; replacing it`));
  process.kill(cli.pid, 'SIGTERM');
  t.equal(await within(cli.exited, 10_000, 'the primary to exit'), 0);
});

t.test('a crash loop (workers that cannot listen) ends the primary with the reason, exit 1', async (t) => {
  const blocker = net.createServer();
  await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', () => r()));
  t.teardown(() => blocker.close());
  const busy = (blocker.address() as AddressInfo).port;
  const r = spawnSync(process.execPath, [CLI, '-q', '-u', '127.0.0.1:9', '-l', `127.0.0.1:${busy}`, '--workers', '2'], { encoding: 'utf8', timeout: 60_000 });
  t.equal(r.status, 1);
  t.match(r.stderr, /workers: crash loop \(5 deaths (in 10 s|before ready); last: worker \d+ exited with code 1\); exiting/);
  t.match(r.stderr, /cannot listen on .*EADDRINUSE/);
  t.notMatch(r.stdout, /listening on/);
});

t.test('--workers and the file\'s workers are checked', async (t) => {
  const bad = spawnSync(process.execPath, [CLI, '-t', '-u', '127.0.0.1:9', '--workers', 'many'], { encoding: 'utf8', timeout: 20_000 });
  t.equal(bad.status, 1);
  t.match(bad.stderr, /--workers: expects "auto" or a whole number from 1 to 1024, got "many"/);
  const file = `${TMP}/bad.json`;
  writeFileSync(file, JSON.stringify({ workers: 0, upstreams: { b: { servers: ['127.0.0.1:9'] } } }));
  t.match(spawnSync(process.execPath, [CLI, '-t', '-c', file], { encoding: 'utf8', timeout: 20_000 }).stderr, /workers: expects "auto" or a whole number/);
  const auto = spawnSync(process.execPath, [CLI, '-t', '-u', '127.0.0.1:9', '--workers', 'auto'], { encoding: 'utf8', timeout: 20_000 });
  t.equal(auto.status, 0);
});
