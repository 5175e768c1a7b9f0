/**
 * The access log: one JSON line per exchange (plain requests, refusals, failed
 * upgrades, responses the backend sent) and one per tunnel, written when the
 * tunnel closes. The handshake of an open tunnel is kept here, only while
 * the log is on, so the close line can say what the tunnel was.
 */
import { pino } from 'pino';
import type { ExchangeEvent } from '../observe/record.js';
import type { WspliceProxy as Proxy, TunnelCloseEvent } from '../server.js';
import type { TunnelCloseReason } from '../relay/types.js';
import { LogSink, type LogTarget } from './sink.js';

/** Which side ended a tunnel, from its close reason. */
export function closeSide(reason: TunnelCloseReason): 'client' | 'upstream' | 'proxy' {
  if (reason === 'client-closed' || reason === 'client-error') return 'client';
  if (reason === 'upstream-closed' || reason === 'upstream-error') return 'upstream';
  return 'proxy';
}

function requestFields(e: ExchangeEvent): Record<string, unknown> {
  return {
    request_id: e.requestId,
    client: e.remoteAddress,
    client_port: e.remotePort,
    listener: e.listener,
    method: e.method,
    host: e.host,
    path: e.path,
    kind: e.kind,
    status: e.status,
    backend: e.backend,
    head_ms: e.headMs,
    connect_ms: e.connectMs,
    first_byte_ms: e.firstByteMs,
  };
}

export class AccessLog {
  readonly sink: LogSink;
  private readonly proxy: Proxy;
  private readonly tunnels = new Map<number, ExchangeEvent>();
  private readonly onExchange = (e: ExchangeEvent): void => this.exchange(e);
  private readonly onTunnelClose = (e: TunnelCloseEvent): void => this.tunnelClose(e);

  constructor(proxy: Proxy, target: LogTarget, onProblem: (message: string) => void) {
    this.proxy = proxy;
    // No level and no pid/hostname: an access log line is a record, not a message.
    const options = { base: null, timestamp: pino.stdTimeFunctions.isoTime, formatters: { level: () => ({ log: 'access' }) } };
    this.sink = new LogSink(target, options, onProblem);
    if (!this.sink.enabled) return;
    proxy.on('exchange', this.onExchange);
    proxy.on('tunnelClose', this.onTunnelClose);
  }

  private exchange(e: ExchangeEvent): void {
    if (e.outcome === 'tunnel') {
      this.tunnels.set(e.id, e);
      return;
    }
    this.sink.log?.info({
      type: 'request',
      ...requestFields(e),
      bytes_in: e.bytesIn,
      bytes_out: e.bytesOut,
      total_ms: e.totalMs,
      outcome: e.outcome,
      code: e.code,
    });
  }

  private tunnelClose(t: TunnelCloseEvent): void {
    const e = this.tunnels.get(t.id);
    this.tunnels.delete(t.id);
    if (e === undefined) return;
    this.sink.log?.info({
      type: 'tunnel',
      ...requestFields(e),
      backend: t.backend,
      bytes_in: e.bytesIn,
      bytes_out: e.bytesOut,
      bytes_up: t.bytesUp,
      bytes_down: t.bytesDown,
      handshake_ms: e.totalMs,
      duration_ms: t.durationMs,
      close_reason: t.reason,
      close_side: closeSide(t.reason),
      relay: t.relay ?? this.proxy.relayKind,
    });
  }

  reopen(): void {
    this.sink.reopen();
  }

  close(): Promise<void> {
    this.proxy.removeListener('exchange', this.onExchange);
    this.proxy.removeListener('tunnelClose', this.onTunnelClose);
    this.tunnels.clear();
    return this.sink.close();
  }
}
