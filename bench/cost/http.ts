// Instructions per plain HTTP request through the proxy, counted by valgrind callgrind: the proxy
// (the CLI with a generated config) runs under callgrind; the echo backend and this driver (a
// keep-alive client, `--conns` connections, one request in flight each, wrk's request line) do not.
// After `--warmup` requests (the JIT settles) the counters are zeroed, `--requests` requests run,
// and the counters are dumped: instructions per request = the dump's total / requests, for every
// thread and for the main thread alone (the event loop: what bounds req/s; the helper threads'
// share, mostly optimising compiles, varies from run to run). Instruction counts do not depend on
// what else runs on the machine, unlike req/s.
//
// Usage: npm run cost:http -- [--upstream close|keepalive] [--requests N] [--warmup N] [--conns N]
//        [--relay auto|js] [--keep DIR] [--perf-map] [--root TREE] [--peer wsplice|wsplice-embed]
// --peer wsplice-embed measures the macro bench's embedded peer (an http.Server with proxy.web)
// instead of the CLI, configured as the macro bench runs it: its upstream connections close after
// each request, so --upstream must be close. (The http-proxy peer is not offered: it passes the
// upstream's Connection: close on to the client, and this driver keeps its connections.)
// Prints one JSON line: { upstream, conns, requests, instructions, perRequest, mainThreadPerRequest, out }.
// --keep DIR keeps the main thread's dump (and with --perf-map node's map of JIT code names);
// --root measures another checkout's build (to compare before and after).
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs, promisify } from 'node:util';
import { dumpedInstructions } from './callgrind.js';
import { ResponseReader } from '../macro/loadgen/http-response-reader.js';

const run = promisify(execFile);
const root = resolve(new URL('../../..', import.meta.url).pathname);

interface Args {
  upstream: 'close' | 'keepalive';
  requests: number;
  warmup: number;
  conns: number;
  relay: string;
  keep: string | null;
  /** Run node with --perf-basic-prof and keep its /tmp/perf-PID.map beside the dump (names for JIT code). */
  perfMap: boolean;
  /** The tree whose dist/src/cli/main.js is measured (another checkout, to compare). */
  proxyRoot: string;
  /** wsplice: the CLI; otherwise dist/bench/macro/orchestrate/peers/PEER-peer.js. */
  peer: (typeof PEERS)[number];
}

const PEERS = ['wsplice', 'wsplice-embed'] as const;

function parse(argv: string[]): Args {
  const { values: v } = parseArgs({
    args: argv,
    strict: true,
    allowPositionals: false,
    options: {
      upstream: { type: 'string', default: 'keepalive' },
      requests: { type: 'string', default: '5000' },
      warmup: { type: 'string', default: '10000' },
      conns: { type: 'string', default: '10' },
      relay: { type: 'string', default: 'auto' },
      keep: { type: 'string' },
      'perf-map': { type: 'boolean', default: false },
      root: { type: 'string' },
      peer: { type: 'string', default: 'wsplice' },
    },
  });
  const peer = PEERS.find((p) => p === v.peer);
  if (peer === undefined) throw new Error(`--peer: one of ${PEERS.join(', ')}`);
  if (peer !== 'wsplice' && v.upstream !== 'close') throw new Error(`--peer ${peer}: its upstream connections close (pass --upstream close)`);
  if (v.upstream !== 'close' && v.upstream !== 'keepalive') throw new Error('--upstream: close or keepalive');
  const count = (name: string, x: string): number => {
    const n = Number(x);
    if (!Number.isInteger(n) || n < 1) throw new Error(`--${name}: a positive integer, not ${JSON.stringify(x)}`);
    return n;
  };
  return {
    upstream: v.upstream,
    requests: count('requests', v.requests),
    warmup: count('warmup', v.warmup),
    conns: count('conns', v.conns),
    relay: v.relay,
    keep: v.keep ?? null,
    perfMap: v['perf-map'],
    proxyRoot: v.root !== undefined ? resolve(v.root) : root,
    peer,
  };
}

function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => res(p));
    });
    s.on('error', rej);
  });
}

/** Resolves with the first stdout line matching `re` (bounded by `ms`). */
function waitLine(child: ChildProcess, re: RegExp, ms: number): Promise<string> {
  return new Promise((res, rej) => {
    let err = '';
    child.stderr?.on('data', (b: Buffer) => void (err = (err + b.toString()).slice(-2000)));
    const t = setTimeout(() => rej(new Error(`no ${re} within ${ms} ms: ${err}`)), ms);
    const rl = createInterface({ input: child.stdout! });
    rl.on('line', (l) => {
      if (re.test(l)) {
        clearTimeout(t);
        res(l);
      }
    });
    child.on('exit', (c) => rej(new Error(`exited ${c}: ${err}`)));
  });
}

/** `total` keep-alive GETs over `conns` connections, one in flight on each. */
function drive(port: number, conns: number, total: number, sockets: Socket[]): Promise<void> {
  const req = Buffer.from(`GET / HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n\r\n`, 'latin1');
  let issued = 0;
  let done = 0;
  return new Promise((res, rej) => {
    const timer = setTimeout(() => rej(new Error(`${done}/${total} responses after 600 s`)), 600_000);
    const open = (): Socket => {
      const s = connect({ port, host: '127.0.0.1', noDelay: true });
      s.on('error', rej);
      return s;
    };
    while (sockets.length < conns) sockets.push(open());
    for (const s of sockets) {
      s.removeAllListeners('data');
      const reader = new ResponseReader({
        response(status, close) {
          if (status !== 200 || close) return rej(new Error(`status ${status}, close ${close}`));
          if (++done === total) {
            clearTimeout(timer);
            res();
          } else if (issued < total) {
            issued++;
            s.write(req);
          }
        },
        protocolError: rej,
      });
      s.on('data', (b: Buffer) => reader.push(b));
      if (issued < total) {
        issued++;
        s.write(req);
      }
    }
  });
}

/** SIGTERM, then SIGKILL when it has not exited within 60 s. */
function stop(c: ChildProcess): Promise<void> {
  if (c.exitCode !== null || c.signalCode !== null) return Promise.resolve();
  return new Promise((res) => {
    const t = setTimeout(() => c.kill('SIGKILL'), 60_000);
    c.on('exit', () => {
      clearTimeout(t);
      res();
    });
    c.kill('SIGTERM');
  });
}

async function main(): Promise<void> {
  const a = parse(process.argv.slice(2));
  const dir = mkdtempSync(join(tmpdir(), 'wsplice-cost-'));
  const children: ChildProcess[] = [];
  const sockets: Socket[] = [];
  let perfMap: string | null = null;
  try {
    const backend = spawn(process.execPath, [join(root, 'dist/bench/macro/backend/backend.js')], { stdio: ['pipe', 'pipe', 'pipe'] });
    children.push(backend);
    const bport = Number(/:(\d+)$/.exec(await waitLine(backend, /backend listening/, 10_000))![1]);
    const port = await freePort();
    const conf = join(dir, 'proxy.json');
    const cli = a.peer === 'wsplice';
    writeFileSync(conf, JSON.stringify(cli ? {
      listen: [`127.0.0.1:${port}`],
      upstreams: { backend: { servers: [`127.0.0.1:${bport}`], ...(a.upstream === 'keepalive' ? { keepalive: { idle: 32 } } : {}) } },
      relay: a.relay,
    } : { listen: port, upstream: bport }));
    const command = cli ? [join(a.proxyRoot, 'dist/src/cli/main.js'), '-c', conf] : [join(a.proxyRoot, `dist/bench/macro/orchestrate/peers/${a.peer}-peer.js`), conf];
    const out = join(dir, 'callgrind.out');
    const proxy = spawn('valgrind', ['--tool=callgrind', `--callgrind-out-file=${out}.%p`, '--vgdb=yes', '--separate-threads=yes', process.execPath, ...(a.perfMap ? ['--perf-basic-prof'] : []), ...command], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.push(proxy);
    if (a.perfMap) perfMap = `/tmp/perf-${proxy.pid}.map`;
    await waitLine(proxy, cli ? /wsplice listening on / : new RegExp(`^${a.peer} listening on `), 600_000);
    await drive(port, a.conns, a.warmup, sockets);
    await run('callgrind_control', ['--zero', String(proxy.pid)]);
    await drive(port, a.conns, a.requests, sockets);
    await run('callgrind_control', ['--dump=measured', String(proxy.pid)]);
    // The main thread is the event loop; the others are V8's and libuv's helpers (optimising
    // compiles, concurrent marking), whose share varies run to run.
    const { main, all: total, mainFile } = dumpedInstructions(`${out}.${proxy.pid}`);
    process.stdout.write(`${JSON.stringify({ peer: a.peer, upstream: a.upstream, conns: a.conns, requests: a.requests, instructions: total, perRequest: Math.round(total / a.requests), mainThreadPerRequest: Math.round(main / a.requests), out: a.keep !== null ? join(a.keep, 'callgrind.out') : null })}\n`);
    if (a.keep !== null) {
      mkdirSync(a.keep, { recursive: true });
      copyFileSync(mainFile, join(a.keep, 'callgrind.out'));
      if (a.perfMap) copyFileSync(perfMap!, join(a.keep, 'perf.map'));
    }
  } finally {
    for (const s of sockets) s.destroy();
    // SIGTERM first: valgrind then removes its vgdb FIFOs.
    await Promise.all(children.map((c) => stop(c)));
    rmSync(dir, { recursive: true, force: true });
    if (perfMap !== null) rmSync(perfMap, { force: true });
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`cost:http: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
