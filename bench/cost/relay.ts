// What one echoed WebSocket message costs the proxy's relay, in instructions counted by valgrind's
// callgrind: the CLI (a plain or a TLS listener, the chosen relay) runs under callgrind in front of
// the bench echo backend; this driver opens `--conns` tunnels and plays the macro bench's ping-pong
// (64 B masked binary frames, one in flight per tunnel, every echo checked byte for byte). An
// uninstrumented warm-up runs first (the JIT settles, and with `auto` the tunnels move to splice),
// then instrumentation starts, `--n` messages are echoed, and the counters are dumped.
// Instructions per message = the dump's total / messages, for the main thread and for all threads.
// One message is a round trip: client -> proxy -> backend -> proxy -> client.
//
// Usage: npm run cost:relay -- [--relay js|auto|splice] [--tls] [--conns 10] [--n 20000]
//          [--warmup 20000] [--size 64] [--keep DIR] [--root TREE]
// --keep DIR keeps the main thread's dump (for callgrind_annotate --inclusive=yes);
// --root measures another checkout's build (to compare before and after).
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { callgrindArgs, countFrom, dump, dumpedInstructions } from './callgrind.js';
import { FrameReader, type FrameSink } from '../macro/common/frame-reader.js';
import { OP_BINARY } from '../macro/common/ws-frames.js';
import { frameRing, RING, type FrameRing } from '../macro/loadgen/control.js';
import { openTunnels } from '../macro/loadgen/ws-client.js';
import { freePort, type Managed, spawnManaged, stopManaged, waitForLine, waitForPort } from '../macro/orchestrate/proc.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const RELAYS = ['js', 'auto', 'splice'] as const;
type RelayChoice = (typeof RELAYS)[number];
/** No phase may take longer than this, even under callgrind. */
const PHASE_MS = 600_000;

interface Args {
  relay: RelayChoice;
  tls: boolean;
  conns: number;
  n: number;
  warmup: number;
  size: number;
  keep: string | null;
  proxyRoot: string;
}

function parse(argv: string[]): Args {
  const { values: v } = parseArgs({
    args: argv,
    strict: true,
    allowPositionals: false,
    options: {
      relay: { type: 'string', default: 'js' },
      tls: { type: 'boolean', default: false },
      conns: { type: 'string', default: '10' },
      n: { type: 'string', default: '20000' },
      warmup: { type: 'string', default: '20000' },
      size: { type: 'string', default: '64' },
      keep: { type: 'string' },
      root: { type: 'string' },
    },
  });
  if (!(RELAYS as readonly string[]).includes(v.relay)) throw new Error(`--relay ${v.relay}: one of ${RELAYS.join(', ')}`);
  const count = (name: string, x: string, min: number, max: number): number => {
    const n = Number(x);
    if (!Number.isInteger(n) || n < min || n > max) throw new Error(`--${name} ${JSON.stringify(x)}: an integer in [${min}, ${max}]`);
    return n;
  };
  return {
    relay: v.relay as RelayChoice,
    tls: v.tls,
    conns: count('conns', v.conns, 1, 1000),
    n: count('n', v.n, 1, 10_000_000),
    warmup: count('warmup', v.warmup, 0, 10_000_000),
    // Below 126 bytes: one 2-byte header, as the load generator's 64 B frames have.
    size: count('size', v.size, 1, 125),
    keep: v.keep ?? null,
    proxyRoot: v.root !== undefined ? resolve(v.root) : ROOT,
  };
}

/** One tunnel of the ping-pong: sends a frame, checks its echo, sends the next while the run wants more. */
class Pinger implements FrameSink {
  private k = 0;
  private readonly reader = new FrameReader(this);

  constructor(private readonly socket: Socket, private readonly run: PingPong) {
    socket.on('data', (c: Buffer) => this.reader.push(c));
    socket.on('error', (e: Error) => run.fail(`tunnel error: ${e.message}`));
    socket.on('close', () => run.fail('a tunnel closed during the run'));
  }

  send(): void {
    this.socket.write(this.run.ring.frames[this.k % RING]!);
  }

  frameStart(opcode: number, length: number, mask: Buffer | null): void {
    if (opcode !== OP_BINARY || length !== this.run.ring.payloads[0]!.length || mask !== null) {
      this.run.fail(`wrong echo: opcode ${opcode}, length ${length}, ${mask === null ? 'unmasked' : 'masked'}`);
    }
  }

  payload(chunk: Buffer, start: number, end: number, offset: number): void {
    const p = this.run.ring.payloads[this.k % RING]!;
    if (p.compare(chunk, start, end, offset, offset + (end - start)) !== 0) this.run.fail(`wrong echo: payload of message ${this.k} differs`);
  }

  frameEnd(): void {
    this.k++;
    this.run.echoed(this);
  }

  protocolError(reason: string): void {
    this.run.fail(`wrong echo: ${reason}`);
  }
}

/** Echoes `count` messages over the tunnels, one in flight on each; rejects on the first wrong echo or after PHASE_MS. */
class PingPong {
  private sent = 0;
  private got = 0;
  private count = 0;
  private settle: ((err: Error | null) => void) | null = null;
  readonly pingers: Pinger[];

  constructor(sockets: Socket[], readonly ring: FrameRing) {
    this.pingers = sockets.map((s) => new Pinger(s, this));
  }

  phase(count: number): Promise<void> {
    this.sent = 0;
    this.got = 0;
    this.count = count;
    return new Promise((res, rej) => {
      if (this.error !== null) return rej(this.error);
      const timer = setTimeout(() => this.fail(`${this.got}/${count} echoes after ${PHASE_MS / 1000} s`), PHASE_MS);
      this.settle = (err) => {
        clearTimeout(timer);
        this.settle = null;
        if (err === null) res();
        else rej(err);
      };
      if (count === 0) return this.settle(null);
      for (const p of this.pingers) {
        if (this.sent === count) break;
        this.sent++;
        p.send();
      }
    });
  }

  echoed(p: Pinger): void {
    if (this.settle === null) return this.fail('an echo nobody asked for');
    if (++this.got === this.count) return this.settle(null);
    if (this.sent < this.count) {
      this.sent++;
      p.send();
    }
  }

  /** The first failure: it ends the phase under way, or the next one at its start. */
  fail(why: string): void {
    if (this.closing) return;
    this.error ??= new Error(why);
    if (this.settle !== null) this.settle(this.error);
  }

  private error: Error | null = null;

  /** Set before the sockets are destroyed: their 'close' is expected then. */
  closing = false;
}

/** A self-signed P-256 certificate for 127.0.0.1 and localhost, made now (no committed keys). */
function makeCert(dir: string): { cert: string; key: string } {
  const cert = join(dir, 'cert.pem');
  const key = join(dir, 'key.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', cert,
    '-days', '2', '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1'], { stdio: 'ignore', timeout: 30_000 });
  return { cert, key };
}

async function main(): Promise<void> {
  const a = parse(process.argv.slice(2));
  const dir = mkdtempSync(join(tmpdir(), 'wsplice-cost-relay-'));
  const managed: Managed[] = [];
  let sockets: Socket[] = [];
  let run: PingPong | null = null;
  try {
    const backend = spawnManaged(process.execPath, [join(ROOT, 'dist/bench/macro/backend/backend.js'), '--port', '0'], { cwd: ROOT });
    managed.push(backend);
    const backendPort = Number((await waitForLine(backend, /^backend listening 127\.0\.0\.1:(\d+)/, 10_000))[1]);
    const port = await freePort();
    const listen = a.tls ? { address: `127.0.0.1:${port}`, tls: { certificates: [makeCert(dir)] } } : `127.0.0.1:${port}`;
    const conf = join(dir, 'proxy.json');
    writeFileSync(conf, JSON.stringify({ listen: [listen], upstreams: { backend: { servers: [`127.0.0.1:${backendPort}`] } }, relay: a.relay }));
    const out = join(dir, 'cg');
    const vg = callgrindArgs(out, [process.execPath, join(a.proxyRoot, 'dist/src/cli/main.js'), '-c', conf]);
    const proxy = spawnManaged('valgrind', vg, { cwd: ROOT, stdin: 'ignore' });
    managed.push(proxy);
    await waitForLine(proxy, /wsplice listening on /, 120_000);
    await waitForPort(port, proxy, 10_000);
    const tunnels = await openTunnels(port, a.conns, 4, a.tls);
    sockets = tunnels.map((t) => t.socket);
    if (tunnels.some((t) => t.rest.length > 0)) throw new Error('bytes after the 101 head: the backend sent a frame unasked');
    run = new PingPong(sockets, frameRing(a.size));
    await run.phase(a.warmup);
    // The warm-up ran uninstrumented (several times faster); only the measured messages count.
    countFrom(proxy.pid);
    await run.phase(a.n);
    dump(proxy.pid);
    const { main, all, mainFile } = dumpedInstructions(out);
    process.stdout.write(`${JSON.stringify({
      relay: a.relay, tls: a.tls, conns: a.conns, size: a.size, messages: a.n, warmup: a.warmup, node: process.version,
      mainPerMessage: Math.round(main / a.n), allPerMessage: Math.round(all / a.n),
      kept: a.keep !== null ? join(a.keep, 'callgrind.out') : null,
    })}\n`);
    if (a.keep !== null) {
      mkdirSync(a.keep, { recursive: true });
      copyFileSync(mainFile, join(a.keep, 'callgrind.out'));
    }
  } finally {
    if (run !== null) run.closing = true;
    for (const s of sockets) s.destroy();
    // The proxy first (SIGTERM: valgrind removes its FIFOs), then the backend.
    for (const m of managed.reverse()) await stopManaged(m, 30_000);
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`cost:relay: ${(e as Error).stack ?? String(e)}\n`);
  process.exit(1);
});
