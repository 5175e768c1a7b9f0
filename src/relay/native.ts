/**
 * The native relay (`kind: 'splice'`): once JS holds no byte of a tunnel, the
 * addon (src/native/relay.cc) dup()s both socket fds, JS destroys its socket
 * objects (the dups keep the connections open, so nothing is sent), and a
 * native epoll thread moves the bytes with splice(2) / recv-send. The event
 * loop then spends nothing per byte; it hears back once, when the tunnel ends.
 *
 * `loadNativeRelay()` returns `{ relay: null, reason }` when the addon is not
 * built, cannot load, or this is not Linux: the caller then uses the JS relay.
 */
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Socket } from 'node:net';
import { TLSSocket } from 'node:tls';
import { jsRelay } from './js.js';
import type { Relay, RelayOptions, Tunnel, TunnelCloseReason, TunnelStats } from './types.js';

/**
 * How a native tunnel moves bytes.
 * - `splice`: always splice(2) through a pipe per direction (no copy; best CPU per byte).
 * - `copy`: recv/send through one buffer per relay thread (fewer fds; good for small frames).
 * - `adaptive`: per direction, copy for small reads, splice once a read is bulk (>= 64 KiB),
 *   back to copy after a run of small reads. Pipes only exist for directions that went bulk.
 */
export type NativeMode = 'splice' | 'copy' | 'adaptive';

export interface NativeRelayOptions {
  /** Default 'adaptive'. */
  mode?: NativeMode;
  /**
   * Pipe capacity per direction (F_SETPIPE_SZ), bytes; at least 64 KiB. Default 1 MiB.
   * Process-wide. A direction that cannot get a pipe of 64 KiB (fds exhausted, or an
   * unprivileged user past fs.pipe-user-pages-soft) copies instead.
   */
  pipeSize?: number;
  /**
   * Used for tunnels the addon cannot take (a TLS socket, no fd) or when the
   * hand-over fails (e.g. out of fds). Default: the JS relay. `null`: such a
   * tunnel is closed with reason 'shutdown'.
   */
  fallback?: Relay | null;
}

/** Counters of the native engine (process-wide), for leak checks and metrics. */
export interface NativeEngineStats {
  /** Tunnels handed to the native thread and not yet reported ended. */
  active: number;
  /** Pipe fds the native thread holds open (2 per spliced direction). */
  pipeFds: number;
  /** close()/epoll_ctl(DEL) failures seen (should stay 0). */
  closeErrors: number;
  threadRunning: boolean;
}

export interface NativeRelay extends Relay {
  readonly kind: 'splice';
  readonly mode: NativeMode;
  /** Tunnels started on this relay and not ended yet (hand-over included). */
  readonly active: number;
  engineStats(): NativeEngineStats;
}

export interface NativeRelayLoad {
  relay: NativeRelay | null;
  /** One line: what was loaded, or why not. */
  reason: string;
}

type DoneFn = (id: number, up: number, down: number, durMs: number, reason: number) => void;

interface Addon {
  init(onDone: DoneFn): void;
  open(clientFd: number, upstreamFd: number, idleMs: number, mode: number, counters: Float64Array): number;
  close(id: number, reason: number): void;
  configure(pipeSize: number): void;
  stats(): NativeEngineStats;
}

// Mirrored in relay.cc (enum Reason / enum Mode).
const REASONS: readonly TunnelCloseReason[] = [
  'client-closed',
  'upstream-closed',
  'client-error',
  'upstream-error',
  'idle-timeout',
  'shutdown',
];
const MODES: Readonly<Record<NativeMode, number>> = { splice: 0, copy: 1, adaptive: 2 };

const ADDON_FILE = 'wsplice_relay.node';
// From src/relay/ (tsx/tap) and from dist/src/relay/ (compiled).
const CANDIDATES = ['../native/build/Release/', '../../../src/native/build/Release/'];

interface Binding {
  addon: Addon;
  path: string;
}

let binding: Binding | null = null;
let bindingError: string | null = null;
const live = new Map<number, NativeTunnel>();

function onDone(id: number, up: number, down: number, durMs: number, reason: number): void {
  const t = live.get(id);
  if (t === undefined) return;
  live.delete(id);
  t.nativeEnded(up, down, durMs, REASONS[reason] ?? 'shutdown');
}

function loadBinding(): Binding | null {
  if (binding !== null || bindingError !== null) return binding;
  if (process.platform !== 'linux') {
    bindingError = `splice(2) relay is Linux-only (platform ${process.platform})`;
    return null;
  }
  if (process.env.WSPLICE_NATIVE === '0') {
    bindingError = 'native relay disabled by WSPLICE_NATIVE=0';
    return null;
  }
  const require = createRequire(import.meta.url);
  const override = process.env.WSPLICE_NATIVE_PATH;
  const paths = override
    ? [override]
    : CANDIDATES.map((dir) => fileURLToPath(new URL(dir + ADDON_FILE, import.meta.url)));
  const found = paths.find((p) => existsSync(p));
  if (found === undefined) {
    bindingError = 'native relay addon not built (npm install builds it: node src/native/build.cjs)';
    return null;
  }
  try {
    const addon = require(found) as Addon;
    addon.init(onDone);
    binding = { addon, path: found };
  } catch (err) {
    bindingError = `native relay addon failed to load: ${err instanceof Error ? err.message : String(err)}`;
  }
  return binding;
}

/** Loads the addon (once per process) and returns a splice relay, or null and why. */
export function loadNativeRelay(options: NativeRelayOptions = {}): NativeRelayLoad {
  const b = loadBinding();
  if (b === null) return { relay: null, reason: bindingError ?? 'native relay unavailable' };
  const mode = options.mode ?? 'adaptive';
  if (!(mode in MODES)) return { relay: null, reason: `unknown native relay mode '${String(mode)}'` };
  if (options.pipeSize !== undefined) b.addon.configure(options.pipeSize);
  const relay = new SpliceRelay(b.addon, mode, options.fallback === undefined ? jsRelay : options.fallback);
  return { relay, reason: `native splice relay loaded (mode ${mode})` };
}

/** Node's TCP handle, as far as the hand-over needs it (not in @types/node). */
interface TcpHandle {
  fd?: number;
  reading?: boolean;
  readStop?: () => number;
}

function handleOf(s: Socket): TcpHandle | null {
  const h = (s as unknown as { _handle?: TcpHandle | null })._handle;
  return h ?? null;
}

function fdOf(s: Socket): number {
  if (s instanceof TLSSocket || s.destroyed) return -1;
  const fd = handleOf(s)?.fd;
  return typeof fd === 'number' && Number.isInteger(fd) && fd >= 0 ? fd : -1;
}

/** Stops libuv reading into JS; returns what JS had already buffered (or null). */
function stopReading(s: Socket): Buffer | null {
  // The relay owns the socket now: a leftover 'data' listener would also get
  // the bytes read below (read() emits 'data').
  s.removeAllListeners('data');
  s.pause();
  const h = handleOf(s);
  const stop = (): void => {
    if (h?.readStop) {
      h.reading = false;
      h.readStop();
    }
  };
  stop();
  // read() may restart the handle (Socket._read). No I/O runs until we return
  // to the event loop, so stopping again right after is race-free.
  let out: Buffer | null = null;
  if (s.readableLength > 0) {
    const chunk: unknown = s.read();
    if (Buffer.isBuffer(chunk)) out = chunk;
    else if (typeof chunk === 'string') out = Buffer.from(chunk);
  }
  stop();
  return out;
}

function concat(a: Buffer | null, b: Buffer | null): Buffer | null {
  if (a === null || a.length === 0) return b !== null && b.length > 0 ? b : null;
  if (b === null || b.length === 0) return a;
  return Buffer.concat([a, b]);
}

const EMPTY = Buffer.alloc(0);

class SpliceRelay implements NativeRelay {
  readonly kind = 'splice' as const;
  active = 0;

  constructor(
    private readonly addon: Addon,
    readonly mode: NativeMode,
    private readonly fallback: Relay | null,
  ) {}

  engineStats(): NativeEngineStats {
    return this.addon.stats();
  }

  start(
    client: Socket,
    upstream: Socket,
    toUpstream: Buffer | null,
    toClient: Buffer | null,
    options: RelayOptions,
    onEnd: (stats: TunnelStats) => void,
  ): Tunnel {
    if (this.fallback !== null && (fdOf(client) < 0 || fdOf(upstream) < 0) && !client.destroyed && !upstream.destroyed) {
      return this.fallback.start(client, upstream, toUpstream, toClient, options, onEnd);
    }
    this.active++;
    const t = new NativeTunnel(this, this.addon, client, upstream, options, (stats) => {
      this.active--;
      onEnd(stats);
    });
    t.begin(toUpstream, toClient);
    return t;
  }

  /** @internal the hand-over failed: give the (intact) sockets to the fallback. */
  delegate(
    client: Socket,
    upstream: Socket,
    options: RelayOptions,
    onEnd: (stats: TunnelStats) => void,
  ): Tunnel | null {
    if (this.fallback === null) return null;
    client.resume();
    upstream.resume();
    return this.fallback.start(client, upstream, null, null, options, onEnd);
  }
}

type Phase = 'handover' | 'native' | 'delegated' | 'done';

class NativeTunnel implements Tunnel {
  private phase: Phase = 'handover';
  private readonly t0 = performance.now();
  private jsUp = 0;
  private jsDown = 0;
  // The native thread stores [bytesUp, bytesDown] here. An explicit ArrayBuffer
  // is never on the V8 heap, so its address is stable while we hold it (until
  // the end is reported, after which the native side no longer writes).
  private readonly counters = new Float64Array(new ArrayBuffer(16));
  private id = 0;
  private closing = false;
  private inner: Tunnel | null = null;
  private timer: NodeJS.Timeout | null = null;
  private pending = 2;
  private readonly onClientError = (): void => this.abort('client-error');
  private readonly onUpstreamError = (): void => this.abort('upstream-error');

  // Dropped at the hand-over: a native tunnel keeps no JS socket alive.
  private client: Socket | null;
  private upstream: Socket | null;

  constructor(
    private readonly relay: SpliceRelay,
    private readonly addon: Addon,
    client: Socket,
    upstream: Socket,
    private readonly options: RelayOptions,
    private readonly onEnd: (stats: TunnelStats) => void,
  ) {
    this.client = client;
    this.upstream = upstream;
  }

  get bytesUp(): number {
    return this.inner !== null ? this.jsUp + this.inner.bytesUp : this.jsUp + this.counters[0]!;
  }

  get bytesDown(): number {
    return this.inner !== null ? this.jsDown + this.inner.bytesDown : this.jsDown + this.counters[1]!;
  }

  /** Flush every byte JS holds, then hand the fds to the native thread. */
  begin(toUpstream: Buffer | null, toClient: Buffer | null): void {
    const { client, upstream } = this;
    if (client === null || upstream === null) return;
    if (client.destroyed || fdOf(client) < 0) return this.abortSoon('client-error');
    if (upstream.destroyed || fdOf(upstream) < 0) return this.abortSoon('upstream-error');
    client.on('error', this.onClientError);
    upstream.on('error', this.onUpstreamError);
    client.on('close', this.onClientError);
    upstream.on('close', this.onUpstreamError);
    // Early data first, then whatever JS read past the heads, in order.
    const up = concat(toUpstream, stopReading(client));
    const down = concat(toClient, stopReading(upstream));
    this.jsUp = up?.length ?? 0;
    this.jsDown = down?.length ?? 0;
    if (this.options.idleTimeoutMs > 0) {
      this.timer = setTimeout(() => this.abort('idle-timeout'), this.options.idleTimeoutMs);
    }
    // The callback of a write runs after every earlier write on that socket
    // completed (the 101 head included); an empty write just waits for those.
    const flushed = (err?: Error | null): void => {
      if (err) return; // the 'error' listener ends the tunnel
      if (--this.pending === 0) this.handOver();
    };
    if (up !== null || upstream.writableLength > 0) upstream.write(up ?? EMPTY, flushed);
    else this.pending--;
    if (down !== null || client.writableLength > 0) client.write(down ?? EMPTY, flushed);
    else this.pending--;
    if (this.pending === 0) this.handOver();
  }

  private handOver(): void {
    const { client, upstream } = this;
    if (this.phase !== 'handover' || client === null || upstream === null) return;
    // Invariant: nothing of this tunnel is in JS any more.
    if (client.writableLength > 0 || upstream.writableLength > 0 || client.readableLength > 0 || upstream.readableLength > 0) {
      // Cannot happen with reading stopped and our writes done; be safe anyway.
      this.pending = 0;
      setImmediate(() => this.handOver());
      return;
    }
    const cfd = fdOf(client);
    const ufd = fdOf(upstream);
    this.clearTimer();
    this.detach();
    let id = 0;
    try {
      id = this.addon.open(cfd, ufd, this.options.idleTimeoutMs, MODES[this.relay.mode], this.counters);
    } catch {
      const inner = this.relay.delegate(client, upstream, this.options, (s) => this.end(s.reason, s.bytesUp, s.bytesDown));
      if (inner !== null) {
        this.phase = 'delegated';
        this.inner = inner;
        return;
      }
      client.destroy();
      upstream.destroy();
      this.end('shutdown', 0, 0);
      return;
    }
    this.id = id;
    this.phase = 'native';
    live.set(id, this);
    // The native side holds its own fd for each connection: closing ours
    // sends nothing (no FIN, no RST). The JS objects and their buffers go.
    client.destroy();
    upstream.destroy();
    this.client = this.upstream = null;
  }

  close(reason: TunnelCloseReason): void {
    switch (this.phase) {
      case 'handover':
        this.abort(reason);
        break;
      case 'native':
        if (!this.closing) {
          this.closing = true;
          this.addon.close(this.id, REASONS.indexOf(reason));
        }
        break;
      case 'delegated':
        this.inner?.close(reason);
        break;
      case 'done':
        break;
    }
  }

  /** @internal from the native completion callback. */
  nativeEnded(up: number, down: number, _durMs: number, reason: TunnelCloseReason): void {
    this.counters[0] = up;
    this.counters[1] = down;
    this.end(reason, up, down);
  }

  private abortSoon(reason: TunnelCloseReason): void {
    // onEnd never runs inside start(): the caller has the Tunnel first.
    process.nextTick(() => this.abort(reason));
  }

  private abort(reason: TunnelCloseReason): void {
    if (this.phase !== 'handover') return;
    this.clearTimer();
    this.detach();
    this.client?.destroy();
    this.upstream?.destroy();
    this.end(reason, 0, 0);
  }

  private end(reason: TunnelCloseReason, up: number, down: number): void {
    if (this.phase === 'done') return;
    this.phase = 'done';
    this.onEnd({
      bytesUp: this.jsUp + up,
      bytesDown: this.jsDown + down,
      durationMs: performance.now() - this.t0,
      reason,
    });
  }

  private detach(): void {
    for (const [s, fn] of [
      [this.client, this.onClientError],
      [this.upstream, this.onUpstreamError],
    ] as const) {
      if (s === null) continue;
      s.off('error', fn);
      s.off('close', fn);
      // Destroying a socket can still emit 'error' (e.g. EPIPE queued): never unhandled.
      s.on('error', noop);
    }
  }

  private clearTimer(): void {
    if (this.timer !== null) {
      clearTimeout(this.timer);
      this.timer = null;
    }
  }
}

function noop(): void {}
