// SIGUSR2 when the new process cannot take over: a broken file, a different set of listeners, an
// incompatible version (another copy of the built code with another hand-over protocol). Each is
// rolled back with the reason, the old process keeps every tunnel (SHA-256 both ways at the end)
// and every socket, the pid file still names it; a good file afterwards upgrades. SIGTERM during an
// upgrade waits for its outcome; a JS-relay tunnel cannot move and is drained with Close 1001; the
// --workers primary refuses SIGUSR2.
import t from 'tap';
import { cpSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import WebSocket from 'ws';
import { loadNativeRelay } from '../../src/relay/native.js';
import { closeCode, closeWss, httpBackend, httpGet, openWs, pidIn, ROOT, socketInodes, startCli, stopGroup, waitFor, whoami, wsEcho, type CliProcess } from '../support/index.js';
import { gate, stream, streamingServer } from '../support/streams.js';

const native = loadNativeRelay();
const skip = native.relay === null ? `native relay: ${native.reason}` : false;

function tmp(t: { teardown(f: () => unknown): void }): string {
  const d = mkdtempSync(join(tmpdir(), 'wsplice-upgrade-'));
  t.teardown(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

/** Send SIGUSR2 and wait for the n-th "upgrade rolled back" line; that line. */
async function rolledBack(cli: CliProcess, n: number): Promise<string> {
  process.kill(cli.pid, 'SIGUSR2');
  await waitFor(() => (cli.stderr().match(/upgrade rolled back/g)?.length ?? 0) >= n, 30_000, `rollback ${n}`);
  return cli.stderr().split('\n').filter((l) => l.includes('upgrade rolled back'))[n - 1]!;
}

t.test('a new process that cannot take over rolls back: every tunnel, socket and the pid file stay', { skip, timeout: 90_000 }, async (t) => {
  const dir = tmp(t);
  const g = gate();
  const N = 50;
  const srv = await streamingServer(8, 4096, g.wait);
  t.teardown(() => closeWss(srv.wss));
  const pidFile = join(dir, 'pid');
  const config = join(dir, 'wsplice.json');
  const good = { listen: ['127.0.0.1:0'], relay: 'splice', pid: pidFile, upstreams: { b: { servers: [`127.0.0.1:${srv.port}`] } } };
  writeFileSync(config, JSON.stringify(good));
  const cli = await startCli(['-c', config]);
  let newPid = 0;
  t.teardown(() => stopGroup(cli.pid, () => [cli.pid, newPid]));
  const clients = Array.from({ length: N }, (_, i) => new WebSocket(`ws://${cli.address}/t${i}`, { perMessageDeflate: false }));
  const streams = clients.map((ws) => stream(ws, 8, 4096, g.wait));
  const closes: number[] = [];
  for (const ws of clients) ws.on('close', (c) => closes.push(c));
  await waitFor(() => srv.streams.size === N, 10_000, 'tunnels open');
  const before = socketInodes(cli.pid);

  writeFileSync(config, '{ "listen": ["127.0.0.1:0"], "upstreams": ');
  t.match(await rolledBack(cli, 1), /\(the new process exited with code 2\)/, 'a broken file: the new process exits 2');
  t.match(cli.stderr(), /config error/, "the new process's own reason is on the same stderr");
  writeFileSync(config, JSON.stringify({ ...good, listen: ['127.0.0.1:0', `unix:${join(dir, 'more.sock')}`] }));
  t.match(await rolledBack(cli, 2), /listeners differ from the running ones \(not running: [^;]*more\.sock/, 'another set of listeners: refused with both lists');
  t.equal(pidIn(pidFile), cli.pid, 'the pid file still names the old process');
  const after = socketInodes(cli.pid);
  t.same([...before].filter((s) => !after.has(s)), [], 'the old process still holds every socket it had');
  t.equal(cli.child.exitCode, null, 'the old process runs on');
  t.equal((await httpGet(cli.port, '/fresh')).status, 426, 'and still accepts (the ws backend answers a plain GET)');

  // A good file again: the upgrade goes through, with the tunnels that lived through both rollbacks.
  writeFileSync(config, JSON.stringify(good));
  process.kill(cli.pid, 'SIGUSR2');
  await waitFor(() => /upgrade: phase listeners/.test(cli.stderr()), 20_000, 'the third upgrade');
  g.open();
  t.equal(await cli.exited, 0);
  newPid = pidIn(pidFile);
  t.not(newPid, cli.pid, 'the pid file names the new process');
  for (let i = 0; i < N; i++) {
    const server = srv.streams.get(`/t${i}`)!;
    t.equal(await streams[i]!.received, await server.sent, `tunnel ${i}: backend -> client intact`);
    t.equal(await server.received, await streams[i]!.sent, `tunnel ${i}: client -> backend intact`);
  }
  t.same(closes, [], 'no client saw a close');
  t.same(srv.closes, [], 'the backend saw no close');
  for (const ws of clients) ws.terminate();
});

t.test('an incompatible new version is refused with the reason; the old one goes on', { skip, timeout: 60_000 }, async (t) => {
  // A copy of the built code, as an install would lay it out; then "the code on disk" changes.
  const dir = tmp(t);
  cpSync(join(ROOT, 'dist'), join(dir, 'dist'), { recursive: true });
  cpSync(join(ROOT, 'package.json'), join(dir, 'package.json'));
  symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'));
  symlinkSync(join(ROOT, 'src'), join(dir, 'src'));
  const wss = await wsEcho('b');
  t.teardown(() => closeWss(wss));
  const cli = await startCli(['--listen', '127.0.0.1:0', '--upstream', `127.0.0.1:${(wss.address() as { port: number }).port}`, '--relay', 'splice'], undefined, { cli: join(dir, 'dist/src/cli/main.js') });
  t.teardown(() => stopGroup(cli.pid, () => [cli.pid]));
  const ws = await openWs(`ws://${cli.address}/`);
  const channel = join(dir, 'dist/src/handover/channel.js');
  writeFileSync(channel, readFileSync(channel, 'utf8').replace(/export const PROTOCOL = \d+;/, 'export const PROTOCOL = 999;'));
  t.match(await rolledBack(cli, 1), /hand-over protocol (1 \(version [^)]*\) is not this side's 999|999 \(version [^)]*\) is not this side's 1)/, 'the versions and the protocol numbers in the reason');
  t.equal(await whoami(ws), 'b', 'the tunnel runs on in the old process');
  t.equal(cli.child.exitCode, null);
  ws.terminate();
});

t.test('SIGTERM during an upgrade waits for it; a JS-relay tunnel is drained with Close 1001', { skip, timeout: 60_000 }, async (t) => {
  const dir = tmp(t);
  const wss = await wsEcho('b');
  t.teardown(() => closeWss(wss));
  const pidFile = join(dir, 'pid');
  const cli = await startCli(['--listen', '127.0.0.1:0', '--upstream', `127.0.0.1:${(wss.address() as { port: number }).port}`, '--relay', 'js', '--drain-timeout', '300', '--pid-file', pidFile]);
  let newPid = 0;
  t.teardown(() => stopGroup(cli.pid, () => [cli.pid, newPid]));
  const ws = await openWs(`ws://${cli.address}/`);
  const code = closeCode(ws);
  process.kill(cli.pid, 'SIGUSR2');
  await waitFor(() => /upgrade: started pid/.test(cli.stderr()), 10_000, 'the new process to start');
  process.kill(cli.pid, 'SIGTERM');
  t.equal(await cli.exited, 0, 'the old process exits 0');
  t.match(cli.stderr(), /SIGTERM during an upgrade: closing once it is decided/);
  t.match(cli.stderr(), /0 tunnel\(s\) moved, 1 drain here/, 'the JS-relay tunnel stays to drain');
  t.equal(await code, 1001, 'drained with Close 1001 at the deadline');
  newPid = pidIn(pidFile);
  t.not(newPid, cli.pid, 'the pid file names the new process');
  const again = await openWs(`ws://${cli.address}/`);
  t.equal(await whoami(again), 'b', 'the new process serves the same address');
  again.terminate();
});

t.test('the --workers primary refuses SIGUSR2 and says so', async (t) => {
  const b = await httpBackend();
  t.teardown(() => b.close());
  const cli = await startCli(['--listen', '127.0.0.1:0', '--upstream', `127.0.0.1:${b.port}`, '--workers', '2', '--relay', 'js'], t, { ready: /wsplice workers: 2 ready/ });
  const listen = /wsplice listening on (\S+)/.exec(cli.stdout())![1]!;
  process.kill(cli.pid, 'SIGUSR2');
  await waitFor(() => /SIGUSR2: upgrade refused: not supported with --workers/.test(cli.stderr()), 10_000, 'the refusal');
  t.equal((await httpGet(Number(listen.split(':')[1]), '/')).status, 200, 'still serving');
  t.equal(cli.child.exitCode, null);
});
