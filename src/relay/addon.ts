/**
 * The native addon (src/native/): found, loaded synchronously and initialised
 * once per process. The addon exports its own tables of close reasons and modes;
 * TS reads the numbers from them and checks they name what the types say.
 * Every failure is a reason string, never a throw: the caller falls back to JS.
 */
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Dialer, type DialCalls } from './dial.js';
import type { TunnelCloseReason } from './types.js';

/**
 * How a native tunnel moves bytes.
 * - `splice`: always splice(2) through a pipe per direction (no copy; best CPU per byte).
 * - `copy`: recv/send through one buffer per relay thread (fewer fds; good for small frames).
 * - `adaptive`: per direction, copy for small reads, splice once a read is bulk (>= 64 KiB),
 *   back to copy after a run of small reads. Pipes only exist for directions that went bulk.
 */
export type NativeMode = 'splice' | 'copy' | 'adaptive';

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

type DoneFn = (id: number, up: number, down: number, durMs: number, reason: number) => void;

interface Addon {
  init(onDone: DoneFn): void;
  open(clientFd: number, upstreamFd: number, idleMs: number, mode: number, counters: Float64Array, websocket: boolean, upstreamOwned?: boolean): number;
  /** open() takes `upstreamOwned` (absent in an addon built before it, which dups every fd). */
  takesDialledFd?: boolean;
  close(id: number, reason: number): void;
  /** Absent in an addon built before it existed. */
  goAway?(id: number): void;
  configure(pipeSize: number): void;
  stats(): NativeEngineStats;
  /** The hand-over (src/native/handover.cc, channel.cc); absent in an addon built before it. */
  detach?(ids: number[]): { ids: number[]; records: Buffer; fds: Int32Array };
  adopt?(records: Buffer, index: number, fds: Int32Array, counters: Float64Array): number;
  startAdopted?(id: number): boolean;
  discardAdopted?(id: number): void;
  channelPair?(): [number, number];
  channelListen?(path: string): number;
  channelAccept?(fd: number): number;
  channelConnect?(path: string): number;
  channelSend?(fd: number, data: Buffer, fds: number[]): boolean;
  channelRecv?(fd: number): { data: Buffer; fds: number[] } | null;
  channelWait?(fd: number, write: boolean, ms: number): boolean;
  closeFd?(fd: number): boolean;
  dupFd?(fd: number): number;
  readonly moved?: { version: number; recordSize: number; fds: number };
  /** Upstream dials (src/native/dial.cc); absent in an addon built before them. */
  dialInit?: DialCalls['dialInit'];
  dial?: DialCalls['dial'];
  dialClose?: DialCalls['dialClose'];
  dialRelease?: DialCalls['dialRelease'];
  dialWrite?: DialCalls['dialWrite'];
  dialPause?: DialCalls['dialPause'];
  /** Close reasons by code, as the engine reports them. */
  readonly reasons: readonly string[];
  /** Mode name -> code. */
  readonly modes: Readonly<Record<string, number>>;
}

/** What src/handover/ calls: the tunnel detach/adopt and the Unix channel. */
export type HandoverCalls = Required<Pick<Addon,
  'detach' | 'adopt' | 'startAdopted' | 'discardAdopted' | 'channelPair' | 'channelListen' | 'channelAccept' | 'channelConnect' | 'channelSend' | 'channelRecv' | 'channelWait' | 'closeFd' | 'dupFd' | 'moved'>>;

/** Hears the end of one native tunnel, from the engine's completion callback. */
export interface NativeEndSink {
  nativeEnded(up: number, down: number, reason: TunnelCloseReason): void;
}

const KNOWN_REASONS: ReadonlySet<string> = new Set<TunnelCloseReason>([
  'client-closed', 'upstream-closed', 'client-error', 'upstream-error', 'idle-timeout', 'shutdown',
]);
const KNOWN_MODES: ReadonlySet<string> = new Set<NativeMode>(['splice', 'copy', 'adaptive']);

const ADDON_FILE = 'wsplice_relay.node';
// From src/relay/ (tap runs the sources) and from dist/src/relay/ (compiled).
const CANDIDATES = ['../native/build/Release/', '../../../src/native/build/Release/'];

export class Binding {
  private readonly live = new Map<number, NativeEndSink>();
  private readonly reasonCodes = new Map<TunnelCloseReason, number>();
  private dials: Dialer | null | undefined;

  constructor(
    private readonly addon: Addon,
    readonly path: string,
  ) {
    addon.reasons.forEach((r, code) => this.reasonCodes.set(r as TunnelCloseReason, code));
    addon.init(this.onDone.bind(this));
  }

  /**
   * Hands both fds to the engine; the sink hears the end. Throws when the engine refuses them.
   * `websocket`: the engine follows the frame boundaries, so that goAway can close at one.
   * `upstreamOwned` (only where `takesDialledFd`): the upstream fd is a dial's, which the engine
   * then takes as it is (no dup); the caller must not close it once this returns.
   */
  open(clientFd: number, upstreamFd: number, idleMs: number, mode: NativeMode, counters: Float64Array, sink: NativeEndSink, websocket = false, upstreamOwned = false): number {
    const id = this.addon.open(clientFd, upstreamFd, idleMs, this.addon.modes[mode]!, counters, websocket, upstreamOwned);
    this.live.set(id, sink);
    return id;
  }

  /** Whether open() can take a dial's fd as it is. */
  get takesDialledFd(): boolean {
    return this.addon.takesDialledFd === true;
  }

  close(id: number, reason: TunnelCloseReason): void {
    this.addon.close(id, this.reasonCodes.get(reason) ?? this.reasonCodes.get('shutdown')!);
  }

  /** Close 1001 both ways at frame boundaries (a tunnel opened with `websocket`); false when this addon cannot. */
  goAway(id: number): boolean {
    if (typeof this.addon.goAway !== 'function') return false;
    this.addon.goAway(id);
    return true;
  }

  configure(pipeSize: number): void {
    this.addon.configure(pipeSize);
  }

  stats(): NativeEngineStats {
    return this.addon.stats();
  }

  /** The hand-over calls of this addon (src/handover/ uses them), or null when it was built without. */
  get handover(): HandoverCalls | null {
    const a = this.addon;
    if (typeof a.detach !== 'function' || a.moved === undefined) return null;
    return a as HandoverCalls;
  }

  /** Upstream dials on the main loop, made once; null when this addon was built without them. */
  get dialer(): Dialer | null {
    if (this.dials === undefined) {
      const a = this.addon;
      // WSPLICE_NATIVE_DIAL=0: every upstream is a JS socket (to compare, or to rule the dials out).
      const ok = process.env.WSPLICE_NATIVE_DIAL !== '0' && typeof a.dialInit === 'function' && typeof a.dial === 'function' && typeof a.dialClose === 'function' &&
        typeof a.dialRelease === 'function' && typeof a.dialWrite === 'function' && typeof a.dialPause === 'function' && typeof a.closeFd === 'function';
      this.dials = ok ? new Dialer(a as DialCalls) : null;
    }
    return this.dials;
  }

  /** Take `ids` out of the engine (paused, whole); their ends are not reported. */
  detach(ids: number[]): { ids: number[]; records: Buffer; fds: Int32Array } {
    const out = this.handover!.detach(ids);
    for (const id of out.ids) this.live.delete(id);
    return out;
  }

  /** A moved tunnel (record `index` of `records`) into this engine, staged; `start` lets it run. */
  adopt(records: Buffer, index: number, fds: Int32Array, counters: Float64Array, sink: NativeEndSink): number {
    const id = this.handover!.adopt(records, index, fds, counters);
    this.live.set(id, sink);
    return id;
  }

  start(id: number): boolean {
    return this.handover!.startAdopted(id);
  }

  discard(id: number): void {
    this.live.delete(id);
    this.handover!.discardAdopted(id);
  }

  private onDone(id: number, up: number, down: number, _durMs: number, reason: number): void {
    const sink = this.live.get(id);
    if (sink === undefined) return;
    this.live.delete(id);
    sink.nativeEnded(up, down, (this.addon.reasons[reason] as TunnelCloseReason | undefined) ?? 'shutdown');
  }
}

/** What the addon's exports must hold; a mismatch (a stale build) is a reason, not a crash. */
function checkTables(addon: Addon): string | null {
  if (!Array.isArray(addon.reasons) || typeof addon.modes !== 'object' || addon.modes === null) {
    return 'native relay addon exports no reason/mode tables (stale build: node src/native/build.cjs)';
  }
  const reasons = new Set(addon.reasons);
  for (const r of KNOWN_REASONS) if (!reasons.has(r)) return `native relay addon lacks close reason '${r}'`;
  for (const m of KNOWN_MODES) if (typeof addon.modes[m] !== 'number') return `native relay addon lacks mode '${m}'`;
  return null;
}

let loaded: Binding | null = null;
let failure: string | null = null;

/** The addon, loaded once per process, or null and why (Linux only; WSPLICE_NATIVE=0 disables). */
export function loadBinding(): { binding: Binding | null; reason: string } {
  if (loaded === null && failure === null) {
    try {
      loaded = tryLoad();
    } catch (err) {
      failure = `native relay addon failed to load: ${err instanceof Error ? err.message.split('\n')[0] : String(err)}`;
    }
  }
  return loaded !== null ? { binding: loaded, reason: `loaded ${loaded.path}` } : { binding: null, reason: failure! };
}

function tryLoad(): Binding | null {
  if (process.platform !== 'linux') {
    failure = `splice(2) relay is Linux-only (platform ${process.platform})`;
    return null;
  }
  if (process.env.WSPLICE_NATIVE === '0') {
    failure = 'native relay disabled by WSPLICE_NATIVE=0';
    return null;
  }
  const override = process.env.WSPLICE_NATIVE_PATH;
  const paths = override ? [override] : CANDIDATES.map((dir) => fileURLToPath(new URL(dir + ADDON_FILE, import.meta.url)));
  const found = paths.find((p) => existsSync(p));
  if (found === undefined) {
    failure = 'native relay addon not built (npm install builds it: node src/native/build.cjs)';
    return null;
  }
  const addon = createRequire(import.meta.url)(found) as Addon;
  const bad = checkTables(addon);
  if (bad !== null) {
    failure = bad;
    return null;
  }
  return new Binding(addon, found);
}
