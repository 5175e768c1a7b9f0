/**
 * What the proxy shares with its connections: options, routing, parser pools,
 * the relay, and the callbacks through which a connection reports (server.ts
 * turns them into events, counters and diagnostics_channel messages).
 */
import type { Connection } from './connection.js';
import type { UpstreamError, WspliceError } from './errors.js';
import type { ParserPool } from './http1/llhttp.js';
import type { ClientLimiter } from './limits/limiter.js';
import type { ResolvedOptions } from './options.js';
import type { Relay, RelayKind, TunnelMove, TunnelStats } from './relay/types.js';
import type { Router } from './router.js';
import type { UpstreamTls } from './tls/upstream.js';
import type { Backend } from './upstream/group.js';

export interface ProxyContext {
  readonly options: ResolvedOptions;
  readonly router: Router;
  readonly requestParsers: ParserPool;
  readonly responseParsers: ParserPool;
  readonly relay: Relay;
  /** Per-client limits (null: none configured). */
  readonly limiter: ClientLimiter | null;
  /** Upstream groups that speak TLS, by name. */
  readonly upstreamTls: ReadonlyMap<string, UpstreamTls>;
  draining: boolean;
  tunnelOpened(c: Connection, backend: Backend, relay: RelayKind): void;
  tunnelMoved(c: Connection, backend: Backend, move: TunnelMove): void;
  tunnelClosed(c: Connection, backend: Backend, stats: TunnelStats): void;
  refused(c: Connection, err: WspliceError): void;
  upstreamFailed(c: Connection, err: UpstreamError): void;
  connectionClosed(c: Connection): void;
}
