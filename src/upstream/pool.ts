/**
 * Keep-alive pools for plain HTTP (nginx `keepalive N; keepalive_timeout;
 * keepalive_requests;` with `proxy_set_header Connection ""`): idle upstream
 * connections per backend, at most `idle` each, the most recently used taken
 * first (the one least likely to have been closed by its backend). An idle
 * connection that receives a byte, ends, fails or outstays `timeoutMs` is
 * closed and forgotten; one that served `requests` requests is not put back.
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
  /** The list it idles in (null while in use). */
  idleIn?: PooledSocket[] | null;
  /** Requests served on it so far. */
  uses?: number;
}

export class UpstreamPool {
  private readonly idle = new Map<Backend, PooledSocket[]>();
  /** Requests that took an idle connection instead of opening one. */
  reused = 0;
  /** Reused connections that closed before any response byte; their request went out again on a new one. */
  races = 0;

  constructor(readonly config: KeepaliveConfig) {}

  /** An idle connection to `b`, unhooked from the pool; null when there is none. */
  take(b: Backend): PooledSocket | null {
    const list = this.idle.get(b);
    const s = list?.pop();
    if (s === undefined) return null;
    unhook(s);
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
    s.idleIn = list;
    list.push(s);
    s.on('data', onIdleEvent); // a byte nobody asked for: the stream is out of step
    s.on('end', onIdleEvent);
    s.on('close', onIdleEvent);
    s.setTimeout(this.config.timeoutMs, onIdleEvent);
    s.resume();
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

function unhook(s: PooledSocket): void {
  s.idleIn = null;
  s.removeListener('data', onIdleEvent);
  s.removeListener('end', onIdleEvent);
  s.removeListener('close', onIdleEvent);
  s.setTimeout(0, onIdleEvent);
}

function closeIdle(s: PooledSocket): void {
  unhook(s);
  s.destroy();
}

function onIdleEvent(this: PooledSocket): void {
  const list = this.idleIn;
  if (list != null) list.splice(list.indexOf(this), 1);
  closeIdle(this);
}
