/**
 * Keep-alive pools for plain HTTP (nginx `keepalive N; keepalive_timeout;
 * keepalive_requests;` with `proxy_set_header Connection ""`): idle upstream
 * connections per backend, at most `idle` each, the most recently used taken
 * first (the one least likely to have been closed by its backend). An idle
 * connection that receives a byte, ends, fails or outstays `timeoutMs` is
 * closed and forgotten; one that served `requests` requests is not put back.
 *
 * A pooled socket keeps the leg's listeners for its whole life (leg.ts sends
 * the events of an idle one here): nothing is added or removed per request.
 * One timer per pool closes the idle connections that outstayed the timeout,
 * instead of one per connection.
 */
import type { Socket } from 'node:net';
import type { ResponseHead } from '../http1/head.js';
import type { Backend } from './group.js';

export interface KeepaliveConfig {
  /** Idle connections kept per backend (nginx `keepalive N`). */
  idle: number;
  /** How long an idle connection is kept (nginx `keepalive_timeout`). */
  timeoutMs: number;
  /** Requests one connection serves at most (nginx `keepalive_requests`). */
  requests: number;
}

export interface PooledSocket extends Socket {
  /** The pool it idles in (null while in use). */
  idleIn?: UpstreamPool | null;
  /** Requests served on it so far. */
  uses?: number;
  /** When it was put back (performance.now(): monotonic, a clock step moves no deadline), for the timeout. */
  idleSince?: number;
}

export class UpstreamPool {
  /** Idle connections per backend, oldest first. */
  private readonly idle = new Map<Backend, PooledSocket[]>();
  /** Requests that took an idle connection instead of opening one. */
  reused = 0;
  /** Reused connections that closed before any response byte; their request went out again on a new one. */
  races = 0;
  /** Armed while a connection is idle: fires at the oldest one's deadline (or later). */
  private timer: NodeJS.Timeout | null = null;
  private readonly onTimer = (): void => this.expire();

  constructor(readonly config: KeepaliveConfig) {}

  /** An idle connection to `b`, taken out of the pool; null when there is none. */
  take(b: Backend): PooledSocket | null {
    const s = this.idle.get(b)?.pop();
    if (s === undefined) return null;
    s.idleIn = null;
    this.reused++;
    return s;
  }

  /** Keep `s` (a complete response was read from it, nothing more); false: the caller closes it. */
  put(b: Backend, s: PooledSocket): boolean {
    const uses = (s.uses ?? 0) + 1;
    if (s.destroyed || s.readableEnded || uses >= this.config.requests) return false;
    let list = this.idle.get(b);
    if (list === undefined) this.idle.set(b, (list = []));
    if (list.length >= this.config.idle) return false;
    s.uses = uses;
    s.idleIn = this;
    s.idleSince = performance.now();
    list.push(s);
    if (this.timer === null) this.arm(this.config.timeoutMs);
    s.resume(); // a byte nobody asked for must be seen (the stream is out of step)
    return true;
  }

  /** Idle connections now, over every backend. */
  get size(): number {
    let n = 0;
    for (const l of this.idle.values()) n += l.length;
    return n;
  }

  closeAll(): void {
    for (const list of this.idle.values()) for (const s of list.splice(0)) closeIdle(s);
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }

  /** An idle `s` received a byte, ended, failed or closed: forget it and close it. */
  forget(s: PooledSocket): void {
    for (const list of this.idle.values()) {
      const i = list.indexOf(s);
      if (i < 0) continue;
      list.splice(i, 1);
      break;
    }
    closeIdle(s);
  }

  private arm(ms: number): void {
    this.timer = setTimeout(this.onTimer, ms);
    this.timer.unref();
  }

  /** Close what outstayed the timeout (each list is oldest first); wait for the next oldest. */
  private expire(): void {
    this.timer = null;
    const now = performance.now();
    const ms = this.config.timeoutMs;
    let next = Infinity;
    for (const list of this.idle.values()) {
      let n = 0;
      while (n < list.length && list[n]!.idleSince! + ms <= now) n++;
      if (n > 0) for (const s of list.splice(0, n)) closeIdle(s);
      if (list.length > 0 && list[0]!.idleSince! < next) next = list[0]!.idleSince!;
    }
    if (next !== Infinity) this.arm(Math.max(1, next + ms - now));
  }
}

/** The backend will keep the connection open after this response (HTTP/1.1, no `Connection: close`). */
export function responseKeepsAlive(res: ResponseHead): boolean {
  if (res.versionMinor < 1) return false;
  for (let i = 0; i < res.keys.length; i++) {
    if (res.keys[i] === 'connection' && /(?:^|,)\s*close\s*(?:,|$)/i.test(res.values[i]!)) return false;
  }
  return true;
}

function closeIdle(s: PooledSocket): void {
  s.idleIn = null;
  s.destroy();
}
