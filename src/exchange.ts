/**
 * One request and its response: what was asked, where it goes, and how far it
 * got. Made once per request head; the connection keeps it until the response
 * is complete (a tunnel keeps nothing of it).
 */
import type { ExchangeRecord } from './observe/record.js';
import type { ProxyContext } from './context.js';
import { channels } from './diagnostics.js';
import { BadRequestError, WspliceError } from './errors.js';
import { readRequestHead, type RequestHead } from './http1/head.js';
import { normalisePath, replacePrefix } from './http1/path.js';
import type { Parser } from './http1/llhttp.js';
import { classifyRequest, type RequestInfo } from './http1/semantics.js';
import { forwardRequestHead } from './http1/serialize.js';
import { answerOf, slashAnswer, slashLocation, type Origin, type Route } from './router.js';
import type { PickContext } from './upstream/context.js';
import type { Backend, UpstreamGroup } from './upstream/group.js';
import { LegKind } from './upstream/leg.js';
import { IDEMPOTENT } from './upstream/retry.js';
import { checkClientHandshake, readClientHandshake, type ClientHandshake } from './websocket/handshake.js';

export class Exchange implements PickContext {
  readonly req: RequestHead;
  readonly info: RequestInfo;
  /** The client's WebSocket handshake (kind 'websocket'), to check the 101 against. */
  readonly handshake: ClientHandshake | null;
  /** The location: its group, and the forwarding, timeouts and retry policy resolved for it at load. */
  readonly route: Route;
  readonly group: UpstreamGroup;
  readonly remoteAddress: string;
  /** The target sent upstream: the client's, or the route's `uri` in place of the matched prefix. */
  readonly target: string;
  /** The backend of the current try. */
  backend: Backend | null = null;
  /** Backends tried so far (the current one included); a retry passes them over. */
  readonly tried: Backend[] = [];
  /** Retries so far. */
  tries = 0;
  /** When the first try began (the bound of nextUpstream.timeoutMs). */
  readonly startedAt = Date.now();
  /** A byte of the response (an interim 1xx) reached the client: no other backend may be tried. */
  responseStarted = false;
  /** `backend` counts as open in its group until release(). */
  private holding = false;
  /** The whole request (head and body) has been read from the client. */
  bodyDone: boolean;
  /** Some body bytes went to a backend: a retry could not resend them. */
  bodySent = false;
  /** Keep the client connection after this exchange. */
  keepAlive: boolean;
  /** Header lines (`Name: value\r\n`) added to the forwarded response head, e.g. a sticky cookie. */
  responseHeaders = '';
  /** Bytes behind an upgrade head, held (bounded) until the 101 is valid. */
  private early: Buffer[] = [];
  private earlyBytes = 0;

  constructor(req: RequestHead, info: RequestInfo, handshake: ClientHandshake | null, route: Route, remoteAddress: string, draining: boolean) {
    this.req = req;
    this.info = info;
    this.handshake = handshake;
    this.route = route;
    this.group = route.group!; // a route without return has an upstream (checked with the options)
    this.target = route.uri === null ? info.path : replacePrefix(info.path, route.path.length, route.uri);
    this.remoteAddress = remoteAddress;
    this.bodyDone = info.kind !== 'plain' || !info.hasBody;
    this.keepAlive = info.keepAlive && info.kind === 'plain' && !draining;
  }

  /** The request head, for the balancers (PickContext). */
  get head(): RequestHead {
    return this.req;
  }

  /**
   * The backend for the next try, counted open until release() (the previous
   * one is released); null when every backend is down, full or tried.
   * The sticky cookie (if any) follows the backend picked.
   */
  pick(): Backend | null {
    this.release();
    const b = this.group.pick(this, Date.now(), this.tried);
    this.backend = b;
    if (b === null) return null;
    this.holding = true;
    this.tried.push(b);
    this.responseHeaders = this.group.stickyHeader(b, this);
    return b;
  }

  /** The upstream connection of this try is over (or became a tunnel's, which releases it itself). */
  release(): void {
    if (this.holding) this.group.release(this.backend!);
    this.holding = false;
  }

  /** The upgrade succeeded: the tunnel takes over `backend`'s open count, and calls the release returned when it closes. */
  handOver(): () => void {
    const b = this.backend!;
    const g = this.group;
    g.succeed(b);
    this.holding = false;
    return () => g.release(b);
  }

  get upgrade(): boolean {
    return this.info.kind !== 'plain';
  }

  /** The head sent upstream; `proto`: the client's scheme (X-Forwarded-Proto); `kind`: pooled ones keep the connection open. */
  requestHead(proto: string, kind: LegKind): Buffer {
    const b = this.backend!;
    return forwardRequestHead(this.req, this.info, this.route.forward, {
      remoteAddress: this.remoteAddress,
      proto,
      fallbackHost: b.address.kind === 'unix' ? 'localhost' : b.label,
      target: this.target,
    }, kind >= LegKind.Pooled);
  }

  /** Hold early data; false when it passed `max`. */
  holdEarly(chunk: Buffer, max: number): boolean {
    this.earlyBytes += chunk.length;
    if (this.earlyBytes > max) return false;
    this.early.push(chunk);
    return true;
  }

  /** The early data, in one buffer (null: none); the exchange keeps none of it. */
  takeEarly(): Buffer | null {
    const e = this.early;
    this.early = [];
    this.earlyBytes = 0;
    return e.length === 0 ? null : e.length === 1 ? e[0]! : Buffer.concat(e);
  }

  /**
   * How the leg carries it: plain HTTP/1.1 requests to a group with a keep-alive pool go on a
   * pooled connection (`replayable` ones, without a body, may meet the keep-alive race again).
   */
  legKind(pools: ReadonlyMap<string, unknown>): LegKind {
    if (this.upgrade) return LegKind.Upgrade;
    if (this.req.versionMinor !== 1 || !pools.has(this.group.name)) return LegKind.Close;
    return this.replayable && !this.info.hasBody ? LegKind.PooledReplayable : LegKind.Pooled;
  }

  /** Running it again on another backend is safe: an upgrade, or an idempotent request whose body was not sent. */
  get replayable(): boolean {
    return this.upgrade || (IDEMPOTENT.has(this.req.method) && !this.bodySent);
  }
}

/** Let go of an exchange, and of its backend's open count: `this.x = done(this.x)`. */
export function done(x: Exchange | null): null {
  x?.release();
  return null;
}

/**
 * A request head just parsed by `p`: checked (framing, Host, the WebSocket
 * handshake) and routed. Returns the exchange, or the refusal to answer with.
 */
export function openExchange(p: Parser, ctx: ProxyContext, id: number, remoteAddress: string, rec: ExchangeRecord | null, local: Omit<Origin, 'proto'> & { encrypted?: boolean }): Exchange | WspliceError {
  const req = readRequestHead(p);
  let info: RequestInfo;
  let routePath: string;
  try {
    info = classifyRequest(req, ctx.options.tunnelProtocols);
    routePath = normalisePath(info.path); // locations match this; the client's own target is forwarded
  } catch (err) {
    return err instanceof WspliceError ? err : new BadRequestError(String(err));
  }
  rec?.head(req.method, info.host, info.path, info.kind);
  const refusal = info.kind === 'websocket' ? checkClientHandshake(req) : null;
  if (refusal !== null) return refusal;
  if (channels.request.hasSubscribers) channels.request.publish({ id, method: req.method, target: req.target, kind: info.kind });
  if (info.kind === 'plain') p.setBodyMode(false, true); // llhttp's own upgrade guess is not ours
  const route = ctx.router.route(info.host, routePath);
  if (route === null) return new WspliceError('WSPLICE_NO_ROUTE', `no route for ${routePath}`);
  if (route.slashRedirect) {
    const proto = local.encrypted === true ? 'https' : ctx.options.proto;
    const moved = slashLocation(route, routePath, info.path, info.host, { proto, localAddress: local.localAddress, localPort: local.localPort });
    if (moved !== null) return slashAnswer(moved);
  }
  const answer = route.access !== null || route.ret !== null ? answerOf(route, remoteAddress) : null;
  if (answer !== null) return answer;
  const handshake = info.kind === 'websocket' ? readClientHandshake(req) : null;
  return new Exchange(req, info, handshake, route, remoteAddress, ctx.draining);
}
