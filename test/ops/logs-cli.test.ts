// Logs from the command line: --access-log to a file (one line per request and per tunnel, reopened
// on SIGUSR1 after a rotation), the error log's JSON lines on stderr, and a log file that cannot be
// written (reported once, serving goes on).
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, renameSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import WebSocket from 'ws';
import { closeWss, port, waitFor, wsEcho } from '../helpers.js';

const BIN = fileURLToPath(new URL('../../dist/src/cli/main.js', import.meta.url));

function start(args: string[]): Promise<{ child: ReturnType<typeof spawn>; addr: string; stderr: () => string }> {
  const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /wsplice listening on (\S+)\n/.exec(out);
      if (m) resolve({ child, addr: m[1]!, stderr: () => err });
    });
    child.once('exit', (code) => reject(new Error(`exited ${code}: ${err}`)));
  });
}

function get(addr: string, path: string): Promise<string> {
  const [host, p] = [addr.slice(0, addr.lastIndexOf(':')), Number(addr.slice(addr.lastIndexOf(':') + 1))];
  return new Promise((resolve) => {
    let got = '';
    const s = net.connect({ host, port: p }, () => s.write(`GET ${path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`));
    s.on('data', (d: Buffer) => (got += d.toString('latin1')));
    s.on('close', () => resolve(got));
  });
}

function jsonLines(file: string): Array<Record<string, unknown>> {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8').split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Record<string, unknown>);
}

t.test('--access-log FILE: a line per request and per tunnel; SIGUSR1 reopens it after a rotation', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'wsplice-logs-cli-'));
  const log = join(dir, 'access.log');
  const wss = await wsEcho('logged');
  t.teardown(() => closeWss(wss));
  const { child, addr, stderr } = await start(['-u', `127.0.0.1:${port(wss)}`, '-l', '127.0.0.1:0', '--access-log', log]);
  t.teardown(() => { if (child.exitCode === null) child.kill('SIGKILL'); });

  t.match(await get(addr, '/plain'), /^HTTP\/1\.1 426|^HTTP\/1\.1 /, 'a plain request answered (by the ws server)');
  const ws = new WebSocket(`ws://${addr}/sock`);
  await new Promise((r) => ws.once('open', r));
  ws.close();
  await new Promise((r) => ws.once('close', r));
  await waitFor(() => jsonLines(log).length === 2, 5000, 'two lines in the file');
  t.equal(jsonLines(log).length, 2, 'two lines in the file');
  const [req, tun] = jsonLines(log);
  t.equal(req!.type, 'request');
  t.equal(req!.path, '/plain');
  t.equal(tun!.type, 'tunnel');
  t.equal(tun!.path, '/sock');
  t.equal(tun!.status, 101);

  renameSync(log, `${log}.1`);
  child.kill('SIGUSR1');
  await waitFor(() => existsSync(log), 5000, 'the file reopened');
  await get(addr, '/after-rotation');
  await waitFor(() => jsonLines(log).length === 1, 5000, 'a line in the new file');
  t.equal(jsonLines(log).length, 1, 'the next line goes to the new file');
  t.equal(jsonLines(log)[0]!.path, '/after-rotation');
  t.equal(jsonLines(`${log}.1`).length, 2, 'the rotated file keeps its lines');
  t.equal(stderr().includes('"level":"error"'), false, 'no error logged');
  const exited = new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
  child.kill('SIGTERM');
  t.equal(await exited, 0);
});

t.test('an access log that cannot be written: reported once on stderr, requests still served', async (t) => {
  const { child, addr, stderr } = await start(['-u', '127.0.0.1:9', '-l', '127.0.0.1:0', '--access-log', '/nonexistent-dir/wsplice/access.log']);
  t.teardown(() => { if (child.exitCode === null) child.kill('SIGKILL'); });
  for (let i = 0; i < 3; i++) t.match(await get(addr, '/x'), /^HTTP\/1\.1 502/, `request ${i + 1} answered (502: nothing listens on :9)`);
  await waitFor(() => /access\.log: ENOENT/.test(stderr()), 5000, 'the problem reported');
  t.equal(stderr().split('\n').filter((l) => /access\.log: ENOENT/.test(l) && !l.startsWith('{')).length, 1, 'reported once');
  const errorLines = stderr().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
  t.ok(errorLines.some((l) => l.level === 'warn' && typeof l.code === 'string' && String(l.code).startsWith('WSPLICE_UPSTREAM')), 'the upstream failures are in the error log, as JSON with a level and a code');
  child.kill('SIGTERM');
});
