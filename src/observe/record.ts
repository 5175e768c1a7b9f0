/**
 * What one request/response exchange did, for access logs and metrics: marks
 * taken once per exchange (never per chunk), byte counts from the socket's own
 * counters, and the event the proxy publishes when the exchange ends.
 */
import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';

/** How an exchange ended. */
export type ExchangeOutcome =
  | 'response'  // a complete response went to the client
  | 'tunnel'    // the upgrade was accepted: a tunnel opened (its close is a tunnelClose event)
  | 'closed';   // the connection closed before the exchange completed (error response, reset, client gone)

/** Published once per exchange (`exchange` event, `wsplice:exchange` channel). */
export interface ExchangeEvent {
  /** Connection id. */
  id: number;
  /** Unique in this process: connection id and request number. */
  requestId: string;
  /** Wall-clock start (ms since the epoch): the first byte of the request. */
  time: number;
  listener: string;
  remoteAddress: string;
  remotePort: number;
  /** '-' when the head could not be parsed. */
  method: string;
  host: string;
  path: string;
  kind: 'plain' | 'websocket' | 'upgrade' | '-';
  /** Status sent to the client; 0 when none was. */
  status: number;
  /** Error code when the proxy refused or the upstream failed, else null. */
  code: string | null;
  backend: string | null;
  /** Bytes read from the client / written to it during the exchange (heads included). */
  bytesIn: number;
  bytesOut: number;
  /** Milliseconds: request head read, upstream connect, first response byte after the request went out, whole exchange. -1 when not reached. */
  headMs: number;
  connectMs: number;
  firstByteMs: number;
  totalMs: number;
  outcome: ExchangeOutcome;
}

/** Upstream timings of one exchange, kept on the connection and reused for the next. */
export class ExchangeRecord {
  open = false;
  seq = 0;
  time = 0;
  t0 = 0;
  tHead = 0;
  tConnect = 0;
  tConnected = 0;
  tFirstByte = 0;
  method = '-';
  host = '-';
  path = '-';
  kind: ExchangeEvent['kind'] = '-';
  status = 0;
  code: string | null = null;
  backend: string | null = null;
  /** Bytes read from the client that belong to what follows (early data a tunnel relays). */
  unsent = 0;
  private read0 = 0;
  private written0 = 0;

  /** A new request starts; `unread` of the bytes the socket has read belong to it already. */
  begin(client: Socket, unread: number): void {
    this.open = true;
    this.seq++;
    this.time = Date.now();
    this.t0 = performance.now();
    this.tHead = this.tConnect = this.tConnected = this.tFirstByte = 0;
    this.method = this.host = this.path = '-';
    this.kind = '-';
    this.status = 0;
    this.code = null;
    this.backend = null;
    this.unsent = 0;
    this.read0 = client.bytesRead - unread;
    this.written0 = client.bytesWritten;
  }

  head(method: string, host: string, path: string, kind: ExchangeEvent['kind']): void {
    this.tHead = performance.now();
    this.method = method;
    this.host = host;
    this.path = path;
    this.kind = kind;
  }

  connecting(backend: string): void {
    this.backend = backend;
    this.tConnect = performance.now();
    this.tConnected = 0;
  }

  connected(): void {
    this.tConnected = performance.now();
  }

  firstByte(): void {
    if (this.tFirstByte === 0) this.tFirstByte = performance.now();
  }

  /** The event for this exchange; the record is closed (a second call returns null). */
  end(c: { id: number; listener: string; client: Socket }, outcome: ExchangeOutcome): ExchangeEvent | null {
    if (!this.open) return null;
    this.open = false;
    const now = performance.now();
    const s = c.client;
    return {
      id: c.id,
      requestId: `${c.id}-${this.seq}`,
      time: this.time,
      listener: c.listener,
      remoteAddress: s.remoteAddress ?? '',
      remotePort: s.remotePort ?? 0,
      method: this.method,
      host: this.host,
      path: this.path,
      kind: this.kind,
      status: this.status,
      code: this.code,
      backend: this.backend,
      bytesIn: s.bytesRead - this.read0 - this.unsent,
      bytesOut: s.bytesWritten - this.written0,
      headMs: this.tHead > 0 ? round(this.tHead - this.t0) : -1,
      connectMs: this.tConnected > 0 ? round(this.tConnected - this.tConnect) : -1,
      firstByteMs: this.tFirstByte > 0 && this.tConnected > 0 ? round(this.tFirstByte - this.tConnected) : -1,
      totalMs: round(now - this.t0),
      outcome,
    };
  }
}

function round(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}

/** The status code of a serialized response head ("HTTP/1.1 404 ..."). */
export function statusOf(response: Buffer): number {
  return response.length >= 12 ? Number(response.toString('latin1', 9, 12)) || 0 : 0;
}
