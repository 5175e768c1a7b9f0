// What one WebSocket handshake (upgrade + 101 + tunnel set-up + close) costs a proxy, in
// instructions, counted by valgrind's callgrind: the peer runs under callgrind, an uninstrumented
// warm-up runs first (the JIT settles), then instrumentation starts, N handshakes run, and the
// counters are dumped. Instruction counts do not depend on what else the shared machine is doing, so two
// trees can be compared to within a few percent where wall-clock rates cannot.
//
// Usage: npm run bench:cost -- [--peers wsplice-js,wsplice-splice,wsplice-auto,node-pipe,wsplice-embed,http-proxy]
//          [--n 1000] [--warmup 3000] [--concurrency 4] [--keep] [--perf-map] [--cpu [--threads]] [--root DIR]
// --keep keeps the dumps (cg.PEER.1-NN, -01 the main thread); --perf-map runs node with
// --perf-basic-prof and keeps its map of JIT code names beside them (perf.PEER.map).
// --root DIR runs the wsplice-* peers from another built checkout (a before/after of one change).
// Prints one row per peer: main-thread and all-thread instructions per handshake. With --cpu the
// peer runs without valgrind and the row is its CPU time (user + system, from /proc) per
// handshake instead: what the kernel spends (connects, pipes, epoll) is in it, and so is the noise
// of a shared machine (use a large --n, and compare runs made one after the other). --threads adds
// each thread's user and system time per handshake (the event loop is 'main').
import { existsSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { callgrindArgs, countFrom, dump, dumpedInstructions, type Dumped } from './callgrind.js';
import { acceptKey, buildCloseFrame, buildUpgradeRequest } from '../macro/common/ws-frames.js';
import { cpuSeconds, threadTimes } from '../macro/orchestrate/procfs.js';
import { freePort, type Managed, spawnManaged, stopManaged, waitForLine, waitForPort } from '../macro/orchestrate/proc.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const CLOSE_FRAME = buildCloseFrame(Buffer.from([0x11, 0x22, 0x33, 0x44]));
const PEERS = ['wsplice-js', 'wsplice-splice', 'wsplice-auto', 'node-pipe', 'wsplice-embed', 'http-proxy'] as const;
/** Peers whose script is dist/bench/macro/orchestrate/peers/NAME-peer.js, started as the macro bench starts them. */
const SCRIPT_PEERS: ReadonlySet<Peer> = new Set(['node-pipe', 'wsplice-embed', 'http-proxy']);
type Peer = (typeof PEERS)[number];

const KEY = 'dGhlIHNhbXBsZSBub25jZQ==';
const ACCEPT_LINE = `\r\nsec-websocket-accept: ${acceptKey(KEY).toLowerCase()}\r\n`;
/** Under callgrind the first handshakes take seconds: a generous bound, not the load generator's 10 s. */
const TIMEOUT_MS = 60_000;

/** An upgrade as the macro bench's client sends it; resolves once a valid 101 head is in. */
function openTunnel(port: number): Promise<Socket> {
  const request = buildUpgradeRequest(`127.0.0.1:${port}`, '/websocket', KEY);
  return new Promise((done, fail) => {
    const socket = connect({ host: '127.0.0.1', port, noDelay: true });
    let head = '';
    const onData = (chunk: Buffer): void => {
      head += chunk.toString('latin1');
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) return;
      const text = head.slice(0, end + 2).toLowerCase();
      socket.removeListener('data', onData);
      if (!text.startsWith('http/1.1 101') || !text.includes(ACCEPT_LINE)) {
        socket.destroy();
        fail(new Error(`upgrade: ${text.split('\r\n')[0]}`));
      } else done(socket);
    };
    socket.on('data', onData);
    socket.once('error', fail);
    socket.setTimeout(TIMEOUT_MS, () => socket.destroy(new Error('upgrade: timed out')));
    socket.write(request);
  });
}

/** The same close as the macro bench's handshake row: our Close, the server's Close and FIN. */
function closeTunnel(socket: Socket): Promise<void> {
  return new Promise((done, fail) => {
    socket.setTimeout(TIMEOUT_MS, () => socket.destroy(new Error('close: timed out')));
    socket.on('data', () => {});
    socket.on('error', fail);
    socket.on('close', () => done());
    socket.write(CLOSE_FRAME);
  });
}

/** `count` handshakes, `concurrency` at a time; any failure aborts the run. */
async function handshakes(port: number, count: number, concurrency: number): Promise<void> {
  let left = count;
  const worker = async (): Promise<void> => {
    while (left-- > 0) {
      await closeTunnel(await openTunnel(port));
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
}

/** The proxy command of `peer`, configured as the macro bench configures it. */
function peerCommand(peer: Peer, dir: string, port: number, backendPort: number, cliRoot: string): { args: string[]; ready: RegExp } {
  if (SCRIPT_PEERS.has(peer)) {
    const conf = join(dir, `${peer}.json`);
    writeFileSync(conf, JSON.stringify({ listen: port, upstream: backendPort }));
    return { args: [join(ROOT, `dist/bench/macro/orchestrate/peers/${peer}-peer.js`), conf], ready: new RegExp(`^${peer} listening on `) };
  }
  const conf = join(dir, `${peer}.json`);
  const relay = peer.slice('wsplice-'.length);
  writeFileSync(conf, JSON.stringify({ listen: [`127.0.0.1:${port}`], upstreams: { backend: { servers: [`127.0.0.1:${backendPort}`] } }, relay }));
  return { args: [join(cliRoot, 'dist/src/cli/main.js'), '-c', conf], ready: /wsplice listening on / };
}

interface Plan {
  n: number;
  warmup: number;
  concurrency: number;
  /** The checkout whose CLI the wsplice-* peers run. */
  root: string;
  /** Node's map of JIT code names, kept beside the dump. */
  perfMap: boolean;
}

interface Row {
  peer: Peer;
  main: number;
  all: number;
}

/** CPU seconds of the peer (all threads, user + system) per handshake, without valgrind; with `threads`, each thread's user and system share too. */
async function measureCpu(peer: Peer, o: Plan, dir: string, backendPort: number, threads: boolean): Promise<{ total: number; split: string }> {
  const port = await freePort();
  const { args, ready } = peerCommand(peer, dir, port, backendPort, o.root);
  const m: Managed = spawnManaged(process.execPath, args, { cwd: ROOT, stdin: 'ignore' });
  try {
    await waitForLine(m, ready, 20_000);
    await waitForPort(port, m, 10_000);
    await handshakes(port, o.warmup, o.concurrency);
    const before = cpuSeconds([m.pid]);
    const beforeThreads = threadTimes(m.pid);
    await handshakes(port, o.n, o.concurrency);
    const total = (cpuSeconds([m.pid]) - before) / o.n;
    if (!threads) return { total, split: '' };
    const us = (s: number): string => (s * 1e6 / o.n).toFixed(1);
    const parts: string[] = [];
    for (const [name, t] of threadTimes(m.pid)) {
      const b = beforeThreads.get(name) ?? { user: 0, system: 0 };
      if (t.user + t.system - b.user - b.system > 0) parts.push(`${name} ${us(t.user - b.user)} + ${us(t.system - b.system)}`);
    }
    return { total, split: parts.join(', ') };
  } finally {
    await stopManaged(m, 10_000);
  }
}

async function measure(peer: Peer, o: Plan, dir: string, backendPort: number): Promise<Row> {
  const port = await freePort();
  const out = join(dir, `cg.${peer}`);
  const { args, ready } = peerCommand(peer, dir, port, backendPort, o.root);
  const node = o.perfMap ? [process.execPath, '--perf-basic-prof'] : [process.execPath];
  const m: Managed = spawnManaged('valgrind', callgrindArgs(out, [...node, ...args]), { cwd: ROOT, stdin: 'ignore' });
  try {
    await waitForLine(m, ready, 120_000);
    await waitForPort(port, m, 10_000);
    await handshakes(port, o.warmup, o.concurrency);
    // The warm-up ran uninstrumented (several times faster); only the measured handshakes count.
    countFrom(m.pid);
    await handshakes(port, o.n, o.concurrency);
    dump(m.pid);
  } finally {
    await stopManaged(m, 10_000);
    // valgrind runs node in its own process: the map is named after that pid.
    const map = `/tmp/perf-${m.pid}.map`;
    if (o.perfMap && existsSync(map)) renameSync(map, join(dir, `perf.${peer}.map`));
  }
  let d: Dumped;
  try {
    d = dumpedInstructions(out);
  } catch (err) {
    throw new Error(`${peer}: ${(err as Error).message} (${m.output().slice(-500)})`);
  }
  const { main, all } = d;
  return { peer, main: main / o.n, all: all / o.n };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      peers: { type: 'string', default: PEERS.join(',') },
      n: { type: 'string', default: '1000' },
      warmup: { type: 'string', default: '3000' },
      concurrency: { type: 'string', default: '4' },
      keep: { type: 'boolean', default: false },
      'perf-map': { type: 'boolean', default: false },
      cpu: { type: 'boolean', default: false },
      threads: { type: 'boolean', default: false },
      root: { type: 'string', default: ROOT },
    },
  });
  const peers = values.peers.split(',').map((p) => {
    if (!(PEERS as readonly string[]).includes(p)) throw new Error(`unknown peer ${p} (${PEERS.join(', ')})`);
    return p as Peer;
  });
  const count = (name: string, text: string, min: number): number => {
    const v = Number(text);
    if (!Number.isInteger(v) || v < min) throw new Error(`--${name} ${text}: an integer >= ${min}`);
    return v;
  };
  const o: Plan = { n: count('n', values.n, 1), warmup: count('warmup', values.warmup, 0), concurrency: count('concurrency', values.concurrency, 1), root: resolve(values.root), perfMap: values['perf-map'] };
  const dir = mkdtempSync(join(tmpdir(), 'wsplice-cost-'));
  const backend = spawnManaged(process.execPath, [join(ROOT, 'dist/bench/macro/backend/backend.js'), '--port', '0'], { cwd: ROOT });
  try {
    const backendPort = Number((await waitForLine(backend, /^backend listening 127\.0\.0\.1:(\d+)/, 10_000))[1]);
    process.stdout.write(`handshake cost: ${o.n} handshakes after ${o.warmup} of warm-up, ${o.concurrency} at a time, node ${process.version}, wsplice from ${o.root}\n`);
    if (values.cpu) {
      const threads = values.threads;
      process.stdout.write(`| peer | CPU µs per handshake (user + system, all threads) |${threads ? ' by thread: user + system µs |' : ''}\n| --- | --- |${threads ? ' --- |' : ''}\n`);
      for (const peer of peers) {
        const r = await measureCpu(peer, o, dir, backendPort, threads);
        process.stdout.write(`| ${peer} | ${(r.total * 1e6).toFixed(1)} |${threads ? ` ${r.split} |` : ''}\n`);
      }
      return;
    }
    process.stdout.write('| peer | main-thread instructions per handshake | all threads |\n| --- | --- | --- |\n');
    for (const peer of peers) {
      const r = await measure(peer, o, dir, backendPort);
      process.stdout.write(`| ${r.peer} | ${Math.round(r.main / 1000)}k | ${Math.round(r.all / 1000)}k |\n`);
    }
  } finally {
    await stopManaged(backend);
    if (values.keep) process.stdout.write(`kept ${dir}\n`);
    else rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`bench:cost: ${(e as Error).stack ?? String(e)}\n`);
  process.exit(1);
});
