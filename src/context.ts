/**
 * What the proxy shares with its connections: options, routing, parser pools,
 * the relay, and the callbacks through which a connection reports (server.ts
 * turns them into events, counters and diagnostics_channel messages).
 */
import type { Connection } from './connection.js';
import type { ExchangeOutcome } from './observe/record.js';
import type { ErrorCode, UpstreamError, WspliceError } from './errors.js';
import type { ParserPool } from './http1/llhttp.js';
import type { ClientLimiter } from './limits/limiter.js';
import type { ResolvedOptions } from './options.js';
import type { Relay, RelayKind, TunnelMove, TunnelStats } from './relay/types.js';
import type { Routes } from './router.js';
import type { UpstreamTls } from './tls/upstream.js';
import type { Backend } from './upstream/group.js';
import type { UpstreamPool } from './upstream/pool.js';
import type { RetiredSockets } from './upstream/retire.js';

/** Who an event is about: a client connection, or one proxy.web exchange. */
export type ReportedClient = Pick<Connection, 'id' | 'remoteAddress' | 'rec' | 'client' | 'listener'>;

export interface ProxyContext {
  readonly options: ResolvedOptions;
  readonly router: Routes;
  readonly requestParsers: ParserPool;
  readonly responseParsers: ParserPool;
  readonly relay: Relay;
  /** Per-client limits (null: none configured). */
  readonly limiter: ClientLimiter | null;
  /** Upstream groups that speak TLS, by name. */
  readonly upstreamTls: ReadonlyMap<string, UpstreamTls>;
  /** Finished upstream connections waiting for their backend to close (bounded). */
  readonly retired: RetiredSockets;
  /** Keep-alive pools by upstream group name (groups with `keepalive` and no `sendProxy`). */
  readonly pools: ReadonlyMap<string, UpstreamPool>;
  draining: boolean;
  tunnelOpened(c: Connection, backend: Backend, relay: RelayKind): void;
  tunnelMoved(c: Connection, backend: Backend, move: TunnelMove): void;
  tunnelClosed(c: Connection, backend: Backend, stats: TunnelStats): void;
  refused(c: ReportedClient, err: WspliceError): void;
  upstreamFailed(c: ReportedClient, err: UpstreamError): void;
  /** A failure of `code`: reported as its error-table row says. `status`: what the client is answered (0: nothing). */
  failed(c: Connection, code: ErrorCode, reason: string, status: number, backend: Backend | null): void;
  connectionClosed(c: Connection): void;
  /** An exchange ended (response done, tunnel opened, or the connection closed mid-exchange). */
  exchangeEnded(c: Connection, outcome: ExchangeOutcome): void;
}
