/**
 * wsplice: a WebSocket and HTTP/1.1 reverse proxy engine.
 *
 *   const proxy = createProxy({ upstreams: { backend: { servers: ['127.0.0.1:3001', '127.0.0.1:3002'] } } });
 *   await proxy.listen({ host: '127.0.0.1', port: 8080 });
 */
import { WspliceProxy } from './server.js';
import type { ProxyOptions } from './options.js';

export { WspliceProxy } from './server.js';
export type {
  ConnectionEvent, ListenTarget, ProxyEvents, ProxyStats, RefusedEvent, RelayMovedEvent, ReloadEvent, TunnelCloseEvent, TunnelEvent, UpstreamErrorEvent,
} from './server.js';
export type { ExchangeEvent, ExchangeOutcome } from './observe/record.js';
export { startAdmin, AdminServer, ProxyMetrics, type Admin, type AdminSource, type MetricsOptions, type ProxyStatus } from './admin/index.js';
export type {
  ForwardingConfig, LimitConfig, ProxyOptions, RouteConfig, TimeoutConfig, UpstreamConfig, UpstreamServerConfig,
} from './options.js';
export { DEFAULT_LIMITS, DEFAULT_TIMEOUTS } from './options.js';
export type { BalanceInput, HealthCheckInput } from './upstream/config.js';
export type { BackendSnapshot, BackendState, BackendTransition } from './upstream/group.js';
export type { UpstreamSnapshot } from './upstream/runtime.js';
export type { StickyConfig } from './upstream/sticky.js';
export { ConfigErrors, type ConfigIssue } from './config/issues.js';
export { BadRequestError, ConfigError, HandshakeError, UpstreamError, WspliceError, type ErrorCode } from './errors.js';
export type { RelayKind, TunnelCloseReason, TunnelMove, TunnelStats } from './relay/types.js';
export { acceptFor } from './websocket/handshake.js';
export { llhttpBuild } from './http1/llhttp.js';
export type { EmbedOptions } from './embed/target.js';
export type { WsResult } from './embed/ws.js';
export type { WebResult } from './embed/web.js';
export type { EmbedCallback } from './embed/host.js';

/** Create a proxy. Options are validated now: a ConfigError names the offending field. */
export function createProxy(options: ProxyOptions): WspliceProxy {
  return new WspliceProxy(options);
}
