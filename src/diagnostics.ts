/**
 * Events on node:diagnostics_channel, for tracing and metrics without a
 * listener cost when nobody subscribes (`hasSubscribers` is checked first).
 */
import diagnostics from 'node:diagnostics_channel';

export const channels = {
  /** { id, listener, remoteAddress, remotePort } a client connection was accepted. */
  connection: diagnostics.channel('wsplice:connection'),
  /** { id, listener, remoteAddress, remotePort } a client connection closed. */
  connectionClose: diagnostics.channel('wsplice:connection-close'),
  /** ExchangeEvent: one request/response exchange ended (response done, tunnel opened, or cut short). */
  exchange: diagnostics.channel('wsplice:exchange'),
  /** { id, method, target, kind } a request head was parsed. */
  request: diagnostics.channel('wsplice:request'),
  /** { id, status, code, reason } the proxy answered with its own error response. */
  refused: diagnostics.channel('wsplice:refused'),
  /** { id, backend, code, reason } an upstream failed (counted against that backend). */
  upstreamError: diagnostics.channel('wsplice:upstream-error'),
  /** { id, backend, relay } a tunnel opened. */
  tunnelOpen: diagnostics.channel('wsplice:tunnel-open'),
  /** { id, backend, from, to, bytesUp, bytesDown } a tunnel moved to another relay. */
  relayMoved: diagnostics.channel('wsplice:relay-moved'),
  /** { id, backend, bytesUp, bytesDown, durationMs, reason } a tunnel closed. */
  tunnelClose: diagnostics.channel('wsplice:tunnel-close'),
  /** { upstream, backend, healthy, reason } an active health check took a backend out or brought it back. */
  upstreamState: diagnostics.channel('wsplice:upstream-state'),
};
