/**
 * Per-client limits: connections open at once and new connections per
 * second (checked when a connection is ready for HTTP, after its PROXY header
 * and TLS handshake), and requests per second (checked at each request head,
 * upgrades included). A refusal is an HTTP answer, 503 or 429 with
 * Retry-After, then the connection closes.
 *
 * Memory is bounded: each table holds at most `maxClients` keys. Rate
 * entries are evicted oldest first (an evicted client starts a fresh bucket);
 * a connection count is never evicted while its connections are open, so when
 * that table is full a new client is refused instead (as nginx does when a
 * limit_conn zone is exhausted).
 */
import type { Socket } from 'node:net';
import type { RequestHead } from '../http1/head.js';
import { clientAddress } from '../proxy-protocol/peer.js';
import { Bucket, take } from './bucket.js';
import type { ResolvedClientLimits } from './options.js';
import { CappedTable } from './table.js';

export interface LimitRefusal {
  status: 429 | 503;
  reason: string;
  retryAfterSec: number;
  /** The whole answer: status line, Retry-After, Connection: close and a short body. */
  response: Buffer;
  /** Write the answer, close, and never let the socket linger past a moment. */
  answer(socket: Socket): void;
}

const LINGER_MS = 2_000;

function destroyLater(socket: Socket): void {
  const t = setTimeout(() => socket.destroy(), LINGER_MS);
  t.unref();
  socket.once('close', () => clearTimeout(t));
}

function refusal(status: 429 | 503, reason: string, retryAfterSec: number): LimitRefusal {
  const phrase = status === 429 ? 'Too Many Requests' : 'Service Unavailable';
  const body = `${status} ${phrase}: ${reason}\n`;
  const response = Buffer.from(
    `HTTP/1.1 ${status} ${phrase}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${body.length}\r\n` +
      `Retry-After: ${retryAfterSec}\r\nConnection: close\r\n\r\n${body}`,
    'latin1',
  );
  return {
    status, reason, retryAfterSec, response,
    answer(socket: Socket): void {
      socket.on('error', noop);
      if (!socket.destroyed) {
        socket.end(response);
        socket.resume(); // whatever the client sends meanwhile is discarded
      }
      destroyLater(socket);
    },
  };
}

function noop(): void {}

export interface LimiterStats {
  /** Clients with connections open (the count table). */
  tracked: number;
  refusedConnections: number;
  refusedRequests: number;
  evictions: number;
}

export class ClientLimiter {
  private readonly open: CappedTable<{ n: number }>;
  private readonly connRate: CappedTable<Bucket>;
  private readonly reqRate: CappedTable<Bucket>;
  private refusedConnections = 0;
  private refusedRequests = 0;

  constructor(readonly limits: ResolvedClientLimits, private readonly now: () => number = Date.now) {
    this.open = new CappedTable(limits.maxClients);
    this.connRate = new CappedTable(limits.maxClients);
    this.reqRate = new CappedTable(limits.maxClients);
  }

  /** A connection ready for HTTP: admitted (and counted until it closes), or refused. */
  admitConnection(socket: Socket): LimitRefusal | null {
    const l = this.limits;
    const key = clientAddress(socket);
    if (l.maxConnections > 0) {
      const e = this.open.get(key);
      if (e !== undefined && e.n >= l.maxConnections) {
        return this.refuseConnection(`more than ${l.maxConnections} connections from ${key}`, 1);
      }
      if (e === undefined && this.open.size >= l.maxClients) {
        return this.refuseConnection('too many clients with connections open', 1);
      }
    }
    if (l.connectionRate !== null) {
      const wait = take(this.connRate.touch(key, newBucket), l.connectionRate, this.now());
      if (wait > 0) return this.refuseConnection(`new connections from ${key} over ${l.connectionRate.rate}/s`, wait);
    }
    if (l.maxConnections > 0) {
      this.open.touch(key, newCount).n++;
      socket.once('close', () => this.release(key));
    }
    return null;
  }

  /** A request head (plain or upgrade) from `socket`: admitted or refused. */
  admitRequest(socket: Socket, head: RequestHead): LimitRefusal | null {
    const r = this.limits.requestRate;
    if (r === null) return null;
    let key: string;
    if (r.key.kind === 'address') {
      key = clientAddress(socket);
    } else {
      const i = head.keys.indexOf(r.key.name);
      if (i === -1) return null; // as nginx: an empty key is not limited
      key = head.values[i]!;
    }
    const wait = take(this.reqRate.touch(key, newBucket), r, this.now());
    if (wait === 0) return null;
    this.refusedRequests++;
    return refusal(this.limits.status, `requests from ${r.key.kind === 'address' ? key : 'this key'} over ${r.rate}/s`, wait);
  }

  stats(): LimiterStats {
    return {
      tracked: this.open.size,
      refusedConnections: this.refusedConnections,
      refusedRequests: this.refusedRequests,
      evictions: this.connRate.evictions + this.reqRate.evictions,
    };
  }

  private refuseConnection(reason: string, wait: number): LimitRefusal {
    this.refusedConnections++;
    return refusal(this.limits.status, reason, wait);
  }

  private release(key: string): void {
    const e = this.open.get(key);
    if (e === undefined) return;
    if (--e.n <= 0) this.open.delete(key);
  }
}

function newBucket(): Bucket {
  return new Bucket();
}

function newCount(): { n: number } {
  return { n: 0 };
}
