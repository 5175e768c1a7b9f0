// SIGUSR2 through the real CLI: the running wsplice starts a new one from the code on disk, which
// takes the listener, the admin socket and every native tunnel; the old one exits. 1,000 tunnels
// stream checksummed data both ways through it (SHA-256 both ways at the end, no close anywhere),
// a connect loop running through it sees no refusal, the pid file changes once (a second SIGUSR2
// is ignored), and every socket the old process held is held by the new one afterwards.
import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import WebSocket from 'ws';
import { loadNativeRelay } from '../../src/relay/native.js';
import { closeWss, startCli, waitFor } from '../support/index.js';
import { gate, stream, streamingServer } from '../support/streams.js';
import { connectLoop, pidIn, socketInodes, stopGroup } from '../support/upgrade.js';

const native = loadNativeRelay();
const skip = native.relay === null ? `native relay: ${native.reason}` : false;
// 1,000 tunnels: the test process holds 2 sockets per tunnel, each proxy 2 sockets + 4 pipe fds.
const N = 1000;
const CHUNKS = 8;
const SIZE = 2048;

t.test('SIGUSR2: 1,000 native tunnels, the listener and the admin socket move to a new process', { skip, timeout: 120_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'wsplice-upgrade-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const g = gate();
  const srv = await streamingServer(CHUNKS, SIZE, g.wait);
  t.teardown(() => closeWss(srv.wss));
  const pidFile = join(dir, 'wsplice.pid');
  const config = join(dir, 'wsplice.json');
  writeFileSync(config, JSON.stringify({ listen: ['127.0.0.1:0'], admin: { listen: '127.0.0.1:0' }, relay: 'splice', pid: pidFile, upstreams: { b: { servers: [`127.0.0.1:${srv.port}`] } } }));
  const cli = await startCli(['-c', config]);
  let newPid = 0;
  t.teardown(() => stopGroup(cli.pid, () => [cli.pid, newPid]));
  const admin = /wsplice admin on (\S+)/.exec(cli.stdout())![1]!;
  t.equal(pidIn(pidFile), cli.pid, 'the pid file names the first process');

  const clients: WebSocket[] = [];
  for (let i = 0; i < N; i++) clients.push(new WebSocket(`ws://${cli.address}/t${i}`, { perMessageDeflate: false }));
  const streams = clients.map((ws) => stream(ws, CHUNKS, SIZE, g.wait));
  const clientCloses: number[] = [];
  for (const ws of clients) ws.on('close', (code) => clientCloses.push(code));
  await waitFor(() => srv.streams.size === N, 30_000, `${N} tunnels open`);
  const oldSockets = socketInodes(cli.pid);
  t.ok(oldSockets.size >= 2 * N + 2, `the old process holds the tunnels' sockets (${oldSockets.size})`);

  const loop = connectLoop(cli.port);
  await waitFor(() => loop.answered > 3, 10_000, 'the connect loop to run');
  process.kill(cli.pid, 'SIGUSR2');
  // A second one while the first runs (sent apart: the kernel folds two pending ones into one).
  await waitFor(() => /upgrade: started pid/.test(cli.stderr()), 10_000, 'the new process to start');
  process.kill(cli.pid, 'SIGUSR2');
  // The second half of each stream flows while the tunnels move.
  await waitFor(() => /upgrade: phase listeners/.test(cli.stderr()), 20_000, 'the listeners phase');
  g.open();
  t.equal(await cli.exited, 0, 'the old process exits 0 once the hand-over is done');
  newPid = pidIn(pidFile);
  t.not(newPid, 0, 'the pid file names a process');
  t.not(newPid, cli.pid, 'the pid file names the new process');
  const answeredBefore = loop.answered;
  await waitFor(() => loop.answered > answeredBefore + 3, 10_000, 'the loop to be served by the new process');
  await loop.stop();
  t.same(loop.failures, [], `no request of the connect loop refused or reset (${loop.answered} answered)`);

  const err = cli.stderr();
  t.equal(err.match(/upgrade: started pid/g)?.length, 1, 'one new process was started');
  t.match(err, /SIGUSR2: (an upgrade is already under way|already upgraded)[^"]*; ignored/, 'the second SIGUSR2 was ignored, and said so');
  t.match(err, new RegExp(`upgrade done: pid ${newPid} [^"]*; ${N} tunnel\\(s\\) moved, 0 drain here`), 'the old process logged the result');
  t.match(err, new RegExp(`upgrade: took over from pid ${cli.pid} [^"]*: 2 listener\\(s\\), ${N} tunnel\\(s\\)`), 'the new process logged what it took');

  const newSockets = socketInodes(newPid);
  const lost = [...oldSockets].filter((s) => !newSockets.has(s));
  t.same(lost, [], `every socket of the old process (${oldSockets.size}) is held by the new one: none in neither process`);

  for (let i = 0; i < N; i++) {
    const server = srv.streams.get(`/t${i}`)!;
    const [down, up] = await Promise.all([streams[i]!.received, server.received]);
    if (down !== (await server.sent) || up !== (await streams[i]!.sent)) t.fail(`tunnel ${i}: SHA-256 differs`);
  }
  t.pass(`${N} tunnels: SHA-256 equal both ways`);
  t.same(srv.closes, [], 'the backend saw no close');
  t.same(clientCloses, [], 'no client saw a close');

  // The admin socket moved too: the new process answers on it, with the hand-over's figures.
  const status = (await (await fetch(`http://${admin}/status`)).json()) as { pid: number; handover: { phase: unknown; last: { side: string; ok: boolean; moved: number; peerPid: number } } };
  t.equal(status.pid, newPid, 'the admin address is served by the new process');
  t.match(status.handover, { phase: null, last: { side: 'take', ok: true, moved: N, peerPid: cli.pid } });
  const metrics = await (await fetch(`http://${admin}/metrics`)).text();
  t.match(metrics, new RegExp(`wsplice_handover_pause_seconds_count ${N}\\b`), 'one pause per tunnel in the histogram');
  t.match(metrics, /wsplice_handovers_total\{side="take",result="ok"\} 1\b/);
  t.match(metrics, new RegExp(`wsplice_handover_tunnels_total\\{outcome="adopted"\\} ${N}\\b`));
  for (const ws of clients) ws.terminate();
});
