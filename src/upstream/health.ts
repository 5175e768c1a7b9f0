/**
 * Active health checks (nginx `health_check`, HAProxy `check inter rise
 * fall`): every backend of a group is probed on its own timer, a TCP
 * connect, an HTTP request (status range, optional body match) or a real
 * WebSocket upgrade whose Sec-WebSocket-Accept is verified. `fall`
 * consecutive failures take it out, `rise` consecutive passes bring it back;
 * the group reports each transition. Timers are unref'd: checks never keep
 * the process alive, and stop() ends them and any probe in flight.
 */
import { randomBytes } from 'node:crypto';
import net, { type Socket } from 'node:net';
import { readResponseHead } from '../http1/head.js';
import { Ev, ParserPool, TYPE_RESPONSE } from '../http1/llhttp.js';
import { checkUpstreamAccept } from '../websocket/handshake.js';
import type { Backend } from './backend.js';
import type { UpstreamGroup } from './group.js';

export interface HealthCheckConfig {
  type: 'tcp' | 'http' | 'websocket';
  intervalMs: number;
  /** One probe, connect to verdict. */
  timeoutMs: number;
  /** Consecutive passes that bring an unhealthy backend back. */
  rise: number;
  /** Consecutive failures that take a healthy backend out. */
  fall: number;
  /** Up to this much is added at random to each interval, so checks of many proxies do not align. */
  jitterMs: number;
  method: string;
  path: string;
  /** Host header; null = the backend's address. */
  host: string | null;
  /** Accepted statuses, inclusive (http). */
  status: readonly [number, number];
  /** The body must match (http); null = not looked at. */
  body: RegExp | null;
}

export const DEFAULT_HEALTH: Omit<HealthCheckConfig, 'type'> = {
  intervalMs: 5_000, timeoutMs: 2_000, rise: 1, fall: 1, jitterMs: 0,
  method: 'GET', path: '/', host: null, status: [200, 399], body: null,
};

/** A masked close frame, status 1000. */
const CLOSE_FRAME = Buffer.from([0x88, 0x82, 0, 0, 0, 0, 0x03, 0xe8]);

/** Most of a body a check reads to match it. */
const MAX_BODY = 64 * 1024;

const parsers = new ParserPool(TYPE_RESPONSE, { maxHeadBytes: 16 * 1024, maxHeaders: 200, maxUriBytes: 8 * 1024 }, 8);

interface Probe {
  backend: Backend;
  timer: NodeJS.Timeout | null;
  socket: Socket | null;
  passes: number;
  fails: number;
}

export class HealthChecker {
  private readonly probes: Probe[] = [];
  private stopped = false;

  constructor(
    private readonly group: UpstreamGroup,
    private readonly cfg: HealthCheckConfig,
  ) {}

  /** Probe every backend now, then on the interval. */
  start(): void {
    this.sync();
  }

  /** Follow the group's backend set (after DNS changes it). */
  sync(): void {
    if (this.stopped) return;
    const current = new Set(this.group.backends);
    for (let i = this.probes.length - 1; i >= 0; i--) {
      const p = this.probes[i]!;
      if (!current.has(p.backend)) {
        this.end(p);
        this.probes.splice(i, 1);
      }
    }
    const known = new Set(this.probes.map((p) => p.backend));
    for (const b of this.group.backends) {
      if (known.has(b)) continue;
      const p: Probe = { backend: b, timer: null, socket: null, passes: 0, fails: 0 };
      this.probes.push(p);
      this.run(p);
    }
  }

  stop(): void {
    this.stopped = true;
    for (const p of this.probes) this.end(p);
    this.probes.length = 0;
  }

  private end(p: Probe): void {
    if (p.timer !== null) clearTimeout(p.timer);
    p.timer = null;
    p.socket?.destroy();
    p.socket = null;
  }

  private schedule(p: Probe): void {
    if (this.stopped) return;
    const delay = this.cfg.intervalMs + (this.cfg.jitterMs > 0 ? Math.floor(Math.random() * this.cfg.jitterMs) : 0);
    p.timer = setTimeout(() => this.run(p), delay);
    p.timer.unref();
  }

  private run(p: Probe): void {
    p.timer = null;
    probe(p.backend, this.cfg, (s) => (p.socket = s), (err) => {
      p.socket = null;
      if (this.stopped) return;
      this.verdict(p, err);
      this.schedule(p);
    });
  }

  private verdict(p: Probe, err: string | null): void {
    const b = p.backend;
    if (err === null) {
      p.fails = 0;
      if (++p.passes >= this.cfg.rise) this.group.setHealthy(b, true, 'check passed');
      return;
    }
    p.passes = 0;
    b.lastError = err;
    if (++p.fails >= this.cfg.fall) this.group.setHealthy(b, false, err);
  }
}

/** One probe; `done(null)` when it passed, `done(reason)` when not. Calls `done` exactly once. */
export function probe(b: Backend, cfg: HealthCheckConfig, onSocket: (s: Socket) => void, done: (err: string | null) => void): void {
  const a = b.address;
  const sock = a.kind === 'unix' ? net.connect({ path: a.path }) : net.connect({ host: a.host, port: a.port });
  sock.unref(); // a probe never keeps the process alive
  onSocket(sock);
  let finished = false;
  const finish = (err: string | null): void => {
    if (finished) return;
    finished = true;
    clearTimeout(timer);
    if (err !== null || !sock.writableEnded) sock.destroy();
    else sock.setTimeout(cfg.timeoutMs, () => sock.destroy());
    done(err);
  };
  const timer = setTimeout(() => finish(`check timed out after ${cfg.timeoutMs} ms`), cfg.timeoutMs);
  timer.unref();
  sock.once('error', (e: Error & { code?: string }) => finish(`check failed: ${e.code ?? e.message}`));
  sock.once('close', () => finish('check: connection closed before a verdict'));
  sock.once('connect', () => {
    if (cfg.type === 'tcp') {
      finish(null);
      return;
    }
    const key = cfg.type === 'websocket' ? randomBytes(16).toString('base64') : '';
    sock.write(requestFor(b, cfg, key));
    readResponse(sock, cfg, key, finish);
  });
}

function requestFor(b: Backend, cfg: HealthCheckConfig, key: string): string {
  const host = cfg.host ?? (b.address.kind === 'unix' ? 'localhost' : b.label);
  if (cfg.type === 'websocket') {
    return `GET ${cfg.path} HTTP/1.1\r\nHost: ${host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
      `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\nUser-Agent: wsplice-health\r\n\r\n`;
  }
  return `${cfg.method} ${cfg.path} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\nUser-Agent: wsplice-health\r\n\r\n`;
}

/** Parse the response head (and the body, when it must match) and judge it. */
function readResponse(sock: Socket, cfg: HealthCheckConfig, key: string, finish: (err: string | null) => void): void {
  const acquired = parsers.acquire();
  if (acquired === null) return finish('check: no response parser free');
  const p = acquired;
  let status = 0;
  const body: Buffer[] = [];
  let bodyBytes = 0;
  const judge = (): void => {
    if (cfg.body === null) return finish(null);
    const text = Buffer.concat(body).toString('utf8');
    finish(cfg.body.test(text) ? null : `check: body does not match ${cfg.body}`);
  };
  sock.once('close', () => parsers.release(p));
  sock.on('data', (chunk: Buffer) => {
    let pos = 0;
    while (pos < chunk.length) {
      const ev = p.execute(chunk, pos);
      if (ev === Ev.Error) return finish(`check: malformed response (${p.reason})`);
      if (status === 0 && ev === Ev.Head) {
        const res = readResponseHead(p);
        pos = p.offset;
        if (res.status < 200 && res.status !== 101) continue; // interim
        status = res.status;
        if (cfg.type === 'websocket') {
          const why = checkUpstreamAccept(res, { key, protocols: [], extensions: [] });
          if (why === null) sock.end(CLOSE_FRAME); // a polite close rather than a reset the backend would log
          return finish(why === null ? null : `check: upgrade refused: ${why}`);
        }
        if (status < cfg.status[0] || status > cfg.status[1]) return finish(`check: status ${status}`);
        if (cfg.body === null) return finish(null);
        continue;
      }
      if (status !== 0 && bodyBytes < MAX_BODY) {
        body.push(chunk.subarray(pos, p.offset));
        bodyBytes += p.offset - pos;
      }
      pos = p.offset;
      if (status === 0) continue; // the end of an interim response
      if (ev === Ev.End || bodyBytes >= MAX_BODY) return judge();
      if (ev === Ev.More) return;
    }
  });
  sock.once('end', () => {
    if (status !== 0 && p.finish()) judge();
    else finish('check: closed before a complete response');
  });
}
