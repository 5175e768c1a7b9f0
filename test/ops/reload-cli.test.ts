/**
 * Reload from the command line: `-c FILE --pid-file PID`, then `wsplice -s
 * reload` (SIGHUP through the pid file) swaps the backend and opens a new
 * listener while an open tunnel keeps its backend; a broken file logs every
 * error and changes nothing; a storm of ten SIGHUPs ends on the last file;
 * `-s quit` stops it and the pid file goes. Bad -s uses are clear errors.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import t from 'tap';
import type { WebSocketServer } from 'ws';
import { CLI, closeWss, freePort, openWs, port, startCli, waitFor, whoami, within, wsEcho } from '../support/index.js';

const TMP = mkdtempSync(`${tmpdir()}/wsplice-reload-cli-`);

function runCli(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 20_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function count(text: string, re: RegExp): number {
  return text.match(new RegExp(re.source, 'g'))?.length ?? 0;
}

t.test('SIGHUP through -s reload: new backend and listener for new connections, open tunnel kept; broken file changes nothing; storm; -s quit', async (t) => {
  const backends: Record<string, WebSocketServer> = { a: await wsEcho('a'), b: await wsEcho('b'), c: await wsEcho('c') };
  t.teardown(async () => {
    for (const w of Object.values(backends)) await closeWss(w);
  });
  const conf = `${TMP}/wsplice.json`;
  const pidFile = `${TMP}/wsplice.pid`;
  const main = await freePort();
  const extra = await freePort();
  const write = (backend: string, listen: number[], more: Record<string, unknown> = {}): void =>
    writeFileSync(conf, JSON.stringify({
      listen: listen.map((p) => `127.0.0.1:${p}`),
      pid: pidFile,
      upstreams: { app: { servers: [`127.0.0.1:${port(backends[backend]!)}`] } },
      ...more,
    }, null, 2));
  write('a', [main]);
  const cli = await startCli(['-c', conf], t);
  t.same(JSON.parse(readFileSync(pidFile, 'utf8')), { pid: cli.pid }, 'the pid file names the process, as JSON');

  const old = await openWs(`ws://127.0.0.1:${main}/`);
  t.teardown(() => old.terminate());
  t.equal(await whoami(old), 'a');

  write('b', [main, extra]);
  const sent = runCli(['-s', 'reload', '--pid-file', pidFile]);
  t.equal(sent.status, 0, sent.stderr);
  t.match(sent.stdout, `sent SIGHUP to ${cli.pid}`);
  await waitFor(() => /reload ok: generation 2/.test(cli.stderr()), 10_000, 'the reload');
  t.match(cli.stderr(), `listening on 127.0.0.1:${extra}`, 'the new listener is named in the reload line');
  const fresh = await openWs(`ws://127.0.0.1:${main}/`);
  t.equal(await whoami(fresh), 'b', 'a new connection goes to the new backend');
  const added = await openWs(`ws://127.0.0.1:${extra}/`);
  t.equal(await whoami(added), 'b', 'the new listener serves');
  t.equal(await whoami(old), 'a', 'the open tunnel keeps its backend');
  fresh.terminate();

  // Broken: two problems, both logged; nothing changes.
  writeFileSync(conf, JSON.stringify({
    listen: [`127.0.0.1:${main}`], pid: pidFile,
    upstreams: { app: { servers: ['not an address'] } }, timeouts: { idleMs: -5 },
  }));
  process.kill(cli.pid, 'SIGHUP');
  await waitFor(() => /reload refused/.test(cli.stderr()), 10_000, 'the refusal');
  const errors = cli.stderr().split('\n').filter((l) => l.includes('reload: config error'));
  t.ok(errors.some((l) => l.includes('servers')), 'the bad server is named');
  t.ok(errors.some((l) => l.includes('idleMs')), 'and the bad timeout');
  t.ok(errors.every((l) => l.includes(conf)), 'each with the file');
  const still = await openWs(`ws://127.0.0.1:${extra}/`);
  t.equal(await whoami(still), 'b', 'the old configuration stays, listeners included');
  still.terminate();
  t.equal(await whoami(old), 'a');

  // A storm: ten SIGHUPs at once, the file rewritten before each; the last one wins.
  const okBefore = count(cli.stderr(), /reload ok/);
  for (let i = 0; i < 10; i++) {
    write(i === 9 ? 'c' : i % 2 === 0 ? 'a' : 'b', i === 9 ? [main] : [main, extra], { timeouts: { idleMs: 10_000 + i } });
    process.kill(cli.pid, 'SIGHUP');
  }
  await waitFor(() => cli.stderr().includes(`closed 127.0.0.1:${extra}`), 20_000, 'a reload of the last file');
  const last = await openWs(`ws://127.0.0.1:${main}/`);
  t.equal(await whoami(last), 'c', 'the last file is in force');
  last.terminate();
  const oks = cli.stderr().split('\n').filter((l) => /reload ok/.test(l)).slice(okBefore);
  t.ok(oks.length >= 1 && oks.length <= 10, `reloads run for the storm: ${oks.length}`);
  const gens = oks.map((l) => Number(/generation (\d+)/.exec(l)?.[1]));
  t.same(gens, gens.map((_, i) => 3 + i), 'one at a time: generations in order, none skipped');
  t.equal(await whoami(old), 'a', 'the first tunnel survived every reload');
  t.equal(await whoami(added), 'b', 'a tunnel of the closed listener runs on');
  added.terminate();
  const refused = await new Promise<string>((resolve) => {
    const s = net.connect(extra, '127.0.0.1', () => resolve('connected'));
    s.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
  });
  t.equal(refused, 'ECONNREFUSED', 'the listener the last file dropped is closed');

  const quit = runCli(['-s', 'quit', '-c', conf]);
  t.equal(quit.status, 0, quit.stderr);
  t.equal(await within(cli.exited, 15_000, 'the exit'), 0);
  t.notOk(existsSync(pidFile), 'the pid file is removed at exit');
});

t.test('-s: clear errors without a pid file, with a stale one, with a bad name', async (t) => {
  const none = runCli(['-s', 'reload']);
  t.equal(none.status, 1);
  t.match(none.stderr, /-s needs the pid file/);
  const missing = runCli(['-s', 'stop', '--pid-file', `${TMP}/absent.pid`]);
  t.equal(missing.status, 1);
  t.match(missing.stderr, /cannot read pid file .*absent\.pid: ENOENT/);
  const junk = `${TMP}/junk.pid`;
  writeFileSync(junk, 'hello');
  t.match(runCli(['-s', 'stop', '--pid-file', junk]).stderr, /does not hold \{"pid": N\}/);
  const stale = `${TMP}/stale.pid`;
  const gone = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
  writeFileSync(stale, JSON.stringify({ pid: Number(gone.stdout) }));
  const r = runCli(['-s', 'reload', '--pid-file', stale]);
  t.equal(r.status, 1);
  t.match(r.stderr, /no such process/);
  const bad = runCli(['-s', 'restart', '--pid-file', stale]);
  t.equal(bad.status, 2);
  t.match(bad.stderr, /-s.*expects one of reload, stop, quit, reopen/);
});

t.test('a pid file that cannot be written: a clear error, exit 1, the listener closed', async (t) => {
  const backend = await wsEcho('a');
  t.teardown(() => closeWss(backend));
  const r = spawnSync(process.execPath, [CLI, '-q', '-u', `127.0.0.1:${port(backend)}`, '-l', '127.0.0.1:0', '--pid-file', `${TMP}/no/such/dir/w.pid`], { encoding: 'utf8', timeout: 20_000 });
  t.equal(r.status, 1);
  t.match(r.stderr, /cannot write pid file .*w\.pid: ENOENT/);
  t.notMatch(r.stdout, /listening/, 'no listener was opened');
});
