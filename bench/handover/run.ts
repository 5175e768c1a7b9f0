// The hand-over bench (`npm run bench` runs it after the macro bench): N open WebSocket tunnels
// through the wsplice CLI (native relay), then SIGUSR2; reports the time of the tunnel phase (the
// old process's "phase tunnels" to "phase done" log lines), the whole upgrade (SIGUSR2 to the old
// process's exit), and each tunnel's pause (the new process's histogram: longest and mean). Every
// tunnel must echo a frame after the upgrade, or the run fails.
// Usage: node dist/bench/handover/run.js [--tunnels 1000,10000] [--out bench/results]
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { cpus, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { randomBytes } from 'node:crypto';
import { buildMaskedFrame, OP_TEXT } from '../macro/common/ws-frames.js';
import { spawnManaged, stopManaged, waitForLine, type Managed } from '../macro/orchestrate/proc.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const CLI = join(ROOT, 'dist/src/cli/main.js');
const BACKEND = join(ROOT, 'dist/bench/macro/backend/backend.js');
/** Below the proxy's own connection limit: room for the loop's probes and a hand-over batch window. */
const MARGIN = 100;

interface Row {
  asked: number;
  tunnels: number;
  cappedBy: string | null;
  tunnelPhaseMs: number;
  upgradeMs: number;
  maxPauseMs: number;
  meanPauseMs: number;
  moved: number;
}

const { values: flags } = parseArgs({ options: { tunnels: { type: 'string', default: '1000,10000' }, out: { type: 'string', default: join(ROOT, 'bench/results') } } });

/** The fd limit the spawned processes get (spawnManaged raises the soft limit to the hard one) and the connection limit wsplice derives from it. */
function childLimits(): { fds: number; connections: number } {
  const sh = 'ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"; ulimit -n; "$0" "$1" --version';
  const out = execFileSync('bash', ['-c', sh, process.execPath, CLI], { encoding: 'utf8' });
  const fds = Number(out.split('\n')[0]) || 1024;
  const connections = Number(/connections: (\d+)/.exec(out)?.[1] ?? Math.floor(fds / 2));
  return { fds, connections };
}

/** One WebSocket upgrade on a raw socket; resolves once the 101 head is in. */
function openTunnel(port: number, i: number): Promise<Socket> {
  return new Promise((res, rej) => {
    const s = connect({ host: '127.0.0.1', port }, () => {
      s.write(`GET /t${i} HTTP/1.1\r\nHost: bench\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\n\r\n`);
    });
    let head = '';
    const onData = (d: Buffer): void => {
      head += d.toString('latin1');
      if (!head.includes('\r\n\r\n')) return;
      s.removeListener('data', onData);
      if (head.startsWith('HTTP/1.1 101')) res(s);
      else rej(new Error(`tunnel ${i}: ${head.split('\r\n')[0]}`));
    };
    s.on('data', onData);
    s.once('error', rej);
  });
}

/** Every tunnel echoes one frame (the backend echoes unmasked): the count that did within `ms`. */
async function echoAll(socks: Socket[], ms: number): Promise<number> {
  const frame = buildMaskedFrame(OP_TEXT, Buffer.from('ping'), randomBytes(4));
  let ok = 0;
  await Promise.all(socks.map((s) => new Promise<void>((res) => {
    const t = setTimeout(res, ms);
    s.once('data', () => (ok++, clearTimeout(t), res()));
    s.write(frame);
  })));
  return ok;
}

async function openAll(port: number, n: number): Promise<Socket[]> {
  const socks: Socket[] = [];
  for (let i = 0; i < n; i += 200) {
    socks.push(...(await Promise.all(Array.from({ length: Math.min(200, n - i) }, (_, k) => openTunnel(port, i + k)))));
  }
  return socks;
}

function logTimes(text: string): { tunnels: number; done: number; moved: number } {
  const time = (re: RegExp): number => {
    const line = text.split('\n').find((l) => re.test(l));
    return line === undefined ? NaN : (JSON.parse(line) as { time: number | string }).time as number;
  };
  const asMs = (v: number | string): number => (typeof v === 'number' ? v : Date.parse(v));
  const moved = Number(/(\d+) tunnel\(s\) moved/.exec(text)?.[1] ?? NaN);
  return { tunnels: asMs(time(/upgrade: phase tunnels/)), done: asMs(time(/upgrade: phase done/)), moved };
}

/** The new process's pause histogram: [count, sum seconds]. */
async function pauses(admin: string): Promise<{ count: number; sum: number }> {
  const text = await (await fetch(`http://${admin}/metrics`)).text();
  return {
    count: Number(/^wsplice_handover_pause_seconds_count (\S+)/m.exec(text)?.[1] ?? NaN),
    sum: Number(/^wsplice_handover_pause_seconds_sum (\S+)/m.exec(text)?.[1] ?? NaN),
  };
}

async function startBackend(): Promise<{ m: Managed; port: number }> {
  const m = spawnManaged(process.execPath, [BACKEND]);
  const line = await waitForLine(m, /^backend listening 127\.0\.0\.1:(\d+)$/, 15_000);
  return { m, port: Number(line[1]) };
}

async function one(asked: number, limits: { fds: number; connections: number }, dir: string): Promise<Row> {
  const fdLimit = limits.fds;
  const cap = limits.connections - MARGIN;
  const n = Math.min(asked, cap);
  const backend = await startBackend();
  const config = join(dir, `wsplice-${asked}.json`);
  writeFileSync(config, JSON.stringify({ listen: ['127.0.0.1:0'], admin: { listen: '127.0.0.1:0' }, relay: 'splice', upstreams: { b: { servers: [`127.0.0.1:${backend.port}`] } } }));
  const old = spawnManaged(process.execPath, [CLI, '-c', config]);
  let err = '';
  old.child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  let out = '';
  old.child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  try {
    const port = Number((await waitForLine(old, /wsplice listening on 127\.0\.0\.1:(\d+)/, 15_000))[1]);
    const admin = /wsplice admin on (\S+)/.exec(out)![1]!;
    const socks = await openAll(port, n);
    if ((await echoAll(socks, 10_000)) !== n) throw new Error('not every tunnel echoed before the upgrade');
    const exited = new Promise<number | null>((r) => old.child.once('exit', (c) => r(c)));
    const t0 = performance.now();
    process.kill(old.pid, 'SIGUSR2');
    const code = await exited;
    const upgradeMs = performance.now() - t0;
    if (code !== 0) throw new Error(`the old process exited ${code}: ${err.slice(-800)}`);
    const echoed = await echoAll(socks, 10_000);
    if (echoed !== n) throw new Error(`${n - echoed} tunnel(s) did not echo after the upgrade`);
    const times = logTimes(err);
    const maxPauseMs = Number(/longest pause ([\d.]+) ms/.exec(err)?.[1] ?? NaN);
    const p = await pauses(admin);
    for (const s of socks) s.destroy();
    return { asked, tunnels: n, cappedBy: n < asked ? `fd limit ${fdLimit}: wsplice's derived connection limit is ${limits.connections} (2 sockets per tunnel in each proxy process), ${MARGIN} kept free` : null, tunnelPhaseMs: times.done - times.tunnels, upgradeMs, maxPauseMs, meanPauseMs: (p.sum / p.count) * 1000, moved: times.moved };
  } finally {
    try {
      process.kill(-old.pid, 'SIGKILL'); // the old process's group holds the new one it started
    } catch {
      // gone
    }
    await stopManaged(backend.m, 1000);
  }
}

function report(rows: Row[], fdLimit: number): string {
  const lines = [
    '# Hand-over (SIGUSR2 upgrade) bench',
    '',
    `\`npm run bench\` (or \`node dist/bench/handover/run.js --tunnels ${rows.map((r) => r.asked).join(',')}\`), ${new Date().toISOString()}, ${cpus().length} cores shared with the load generator (this process) and the backend, node ${process.version}, fd limit ${fdLimit}.`,
    'Idle WebSocket tunnels through the CLI with the native relay (splice); each echoes one frame before and after.',
    'Tunnel phase: the old process\'s "phase tunnels" to "phase done" log lines (ms resolution). Upgrade: SIGUSR2 to the old process\'s exit (includes starting node and reading the configuration in the new one). Pause: out of the old engine to running in the new one, per tunnel (wsplice_handover_pause_seconds).',
    '',
    '| tunnels asked | tunnels run | moved | tunnel phase ms | upgrade ms | longest pause ms | mean pause ms |',
    '|---:|---:|---:|---:|---:|---:|---:|',
    ...rows.map((r) => `| ${r.asked} | ${r.tunnels} | ${r.moved} | ${r.tunnelPhaseMs.toFixed(0)} | ${r.upgradeMs.toFixed(0)} | ${r.maxPauseMs.toFixed(2)} | ${r.meanPauseMs.toFixed(2)} |`),
    '',
    ...rows.filter((r) => r.cappedBy !== null).map((r) => `${r.asked} asked, ${r.tunnels} run: capped by the ${r.cappedBy}.`),
  ];
  return lines.join('\n') + '\n';
}

async function main(): Promise<void> {
  const counts = flags.tunnels.split(',').map(Number).filter((n) => Number.isInteger(n) && n > 0);
  const outDir = resolve(flags.out);
  const limits = childLimits();
  const fdLimit = limits.fds;
  const dir = mkdtempSync(join(tmpdir(), 'wsplice-bench-handover-'));
  const rows: Row[] = [];
  try {
    for (const n of counts) {
      process.stderr.write(`handover bench: ${n} tunnels...\n`);
      rows.push(await one(n, limits, dir));
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  mkdirSync(outDir, { recursive: true });
  const md = report(rows, fdLimit);
  writeFileSync(join(outDir, 'handover.md'), md);
  writeFileSync(join(outDir, 'handover.json'), JSON.stringify({ fdLimit, rows }, null, 2) + '\n');
  process.stdout.write(md);
}

main().catch((err: unknown) => {
  process.stderr.write(`handover bench: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
