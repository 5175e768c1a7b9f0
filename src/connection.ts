/**
 * One client connection as an explicit state machine:
 *
 *   Head --(plain)--> Connecting --> Exchange --(keep-alive)--> Head
 *     \--(upgrade)--> Connecting --> AwaitUpgrade --(valid 101)--> Tunnel
 *                                          \--(any other response)--> Exchange --> Closing
 *   any state --(error)--> Closing --> Closed
 *
 * Each state has one timeout (StateTimer) and one error path. Request heads
 * are parsed once by llhttp; body bytes and frames are only sliced, never
 * copied or decoded.
 */
import net, { type Socket } from 'node:net';
import { channels } from './diagnostics.js';
import { BadRequestError, UpstreamError, WspliceError, type ErrorCode } from './errors.js';
import { readRequestHead, readResponseHead, tokens, type RequestHead, type ResponseHead } from './http1/head.js';
import { Ev, Limit, type Parser, type ParserPool } from './http1/llhttp.js';
import { classifyRequest, dropSet, responseHasNoBody, type RequestInfo } from './http1/semantics.js';
import { errorResponse, forwardRequestHead, forwardResponseHead, RESPONSE_408, RESPONSE_431 } from './http1/serialize.js';
import type { ResolvedOptions } from './options.js';
import type { Relay, RelayKind, Tunnel, TunnelMove, TunnelStats } from './relay/types.js';
import type { Router } from './router.js';
import { resetOrDestroy } from './sockets.js';
import { StateTimer } from './timeouts.js';
import type { Backend, UpstreamGroup } from './upstream/group.js';
import type { ClientLimiter } from './limits/limiter.js';
import { clientAddress } from './proxy-protocol/peer.js';
import { proxyHeaderFor } from './proxy-protocol/write.js';
import type { UpstreamTls } from './tls/upstream.js';
import { checkClientHandshake, checkUpstreamAccept, type ClientHandshake } from './websocket/handshake.js';

export const enum State {
  Head = 0,
  Connecting = 1,
  AwaitUpgrade = 2,
  Exchange = 3,
  Tunnel = 4,
  Closing = 5,
  Closed = 6,
}

/** What the proxy shares with its connections. */
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

/** How long a connection we closed with an error response may linger for the client to read it. */
const LINGER_MS = 2_000;

let lastId = 0;

export class Connection {
  readonly id = ++lastId;
  state: State = State.Head;
  private readonly ctx: ProxyContext;
  readonly client: Socket;
  private readonly timer: StateTimer;
  private reqParser: Parser | null = null;
  private resParser: Parser | null = null;

  // The exchange in progress.
  private req: RequestHead | null = null;
  private info: RequestInfo | null = null;
  private handshake: ClientHandshake | null = null;
  private group: UpstreamGroup | null = null;
  private backend: Backend | null = null;
  private upstream: Socket | null = null;
  /** Client bytes for the upstream before it is connected (request body, or early data for an upgrade). */
  private held: Buffer[] = [];
  private heldBytes = 0;
  /** The whole request has been read from the client. */
  private reqDone = false;
  /** The response head has been written to the client. */
  private resStarted = false;
  /** Keep the client connection after this exchange. */
  private keepAlive = false;
  /** Client bytes after the current request (pipelining), held until the exchange ends. */
  private pending: Buffer | null = null;
  private tunnel: Tunnel | null = null;
  private requests = 0;
  /** Backends tried for this request (connect failures move on to the next). */
  private tries = 0;
  /** The client sent its FIN: no request after those already received. */
  private clientEnded = false;

  constructor(ctx: ProxyContext, client: Socket) {
    this.ctx = ctx;
    this.client = client;
    this.timer = new StateTimer(this.onTimeout.bind(this));
    this.onClientData = this.onClientData.bind(this);
    this.onClientEnd = this.onClientEnd.bind(this);
    this.onClientClose = this.onClientClose.bind(this);
    this.onClientDrain = this.onClientDrain.bind(this);
    this.onUpstreamConnect = this.onUpstreamConnect.bind(this);
    this.onUpstreamData = this.onUpstreamData.bind(this);
    this.onUpstreamEnd = this.onUpstreamEnd.bind(this);
    this.onUpstreamError = this.onUpstreamError.bind(this);
    this.onUpstreamDrain = this.onUpstreamDrain.bind(this);
    this.onUpstreamClose = this.onUpstreamClose.bind(this);

    client.setNoDelay(true);
    client.on('data', this.onClientData);
    client.on('end', this.onClientEnd);
    client.on('error', noop); // 'close' follows every error; it does the cleanup
    client.on('close', this.onClientClose);
    client.on('drain', this.onClientDrain);
    this.timer.arm(ctx.options.timeouts.headMs);
  }

  /** The client: the socket's peer, or the address a trusted PROXY header gave. */
  get remoteAddress(): string {
    return clientAddress(this.client);
  }

  /** The proxy is draining: drop an idle keep-alive connection now, others after their exchange. */
  drain(): void {
    if (this.state === State.Closing) {
      this.client.destroy(); // its final response is written; no need to linger
      return;
    }
    if (this.state === State.Head && (this.reqParser === null || this.reqParser.atMessageStart) && this.pending === null) {
      this.destroy();
    }
  }

  /** End now (shutdown deadline). */
  destroy(): void {
    if (this.tunnel !== null) {
      this.tunnel.close('shutdown');
      return;
    }
    this.client.destroy();
    this.cleanupUpstream();
  }

  // ---------------------------------------------------------------- client side

  private onClientData(chunk: Buffer): void {
    if (this.state >= State.Tunnel) return; // Closing: the byte stream is no longer trusted; discard
    const info = this.info;
    if (info !== null && info.kind !== 'plain') {
      // Early data behind an upgrade head; after a refused upgrade, discarded.
      if (this.state === State.Connecting || this.state === State.AwaitUpgrade) this.holdEarly(chunk);
      return;
    }
    if (this.reqDone || this.pending !== null) this.holdPipelined(chunk, 0);
    else this.feed(chunk, 0);
  }

  /** Parse client bytes from `pos`: request heads, then body framing only. */
  private feed(chunk: Buffer, pos: number): void {
    // After a head, llhttp runs once more even with no bytes left: a bodiless
    // message completes then, not when the next byte happens to arrive.
    let again = false;
    while (pos < chunk.length || again) {
      again = false;
      if (this.reqParser === null) {
        this.reqParser = this.ctx.requestParsers.acquire();
        if (this.reqParser === null) return this.overloaded();
        if (this.requests > 0) this.timer.arm(this.ctx.options.timeouts.headMs); // keep-alive idle -> head
      }
      const p = this.reqParser;
      const inHead = this.req === null;
      const ev = p.execute(chunk, pos);
      if (ev === Ev.Error) {
        this.refuseParse(p);
        return;
      }
      if (inHead) {
        if (ev === Ev.More) return;
        // Ev.Head
        if (!this.onRequestHead(p)) return;
        pos = p.offset;
        if (this.info!.kind !== 'plain') {
          // An upgrade: what follows the head is early data, held until the 101 is validated.
          this.releaseRequestParser();
          if (pos < chunk.length) this.holdEarly(chunk.subarray(pos));
          return;
        }
        again = true;
        continue;
      }
      // Body bytes: forwarded as they are.
      const end = p.offset;
      if (end > pos) this.toUpstream(chunk.subarray(pos, end));
      pos = end;
      if (ev === Ev.End) {
        this.reqDone = true;
        if (pos < chunk.length) {
          this.holdPipelined(chunk, pos);
          return;
        }
      }
    }
  }

  /** Pipelined bytes wait until the current exchange is over (one request at a time upstream). */
  private holdPipelined(chunk: Buffer, pos: number): void {
    const rest = pos === 0 ? chunk : chunk.subarray(pos);
    this.pending = this.pending === null ? rest : Buffer.concat([this.pending, rest]);
    if (this.pending.length > this.ctx.options.limits.maxHeadBytes) this.client.pause();
  }

  private holdEarly(chunk: Buffer): void {
    this.heldBytes += chunk.length;
    if (this.heldBytes > this.ctx.options.limits.maxEarlyDataBytes) {
      this.fail('WSPLICE_EARLY_DATA_OVERFLOW', 'too much data before the upgrade completed');
      return;
    }
    this.held.push(chunk);
  }

  /** Returns false when the request was refused. */
  private onRequestHead(p: Parser): boolean {
    const opts = this.ctx.options;
    this.requests++;
    let info: RequestInfo;
    let req: RequestHead;
    try {
      req = readRequestHead(p);
      info = classifyRequest(req, opts.tunnelProtocols);
      if (info.kind === 'websocket') this.handshake = checkClientHandshake(req);
    } catch (err) {
      if (err instanceof WspliceError) this.refuse(err, err.code === 'WSPLICE_WS_VERSION' ? 'Sec-WebSocket-Version: 13\r\n' : '');
      else this.refuse(new BadRequestError(String(err)));
      return false;
    }
    this.req = req;
    this.info = info;
    if (channels.request.hasSubscribers) {
      channels.request.publish({ id: this.id, method: req.method, target: req.target, kind: info.kind });
    }
    if (info.kind === 'plain') p.setBodyMode(false, true); // llhttp's own upgrade guess is not ours
    const limited = this.ctx.limiter?.admitRequest(this.client, req) ?? null;
    if (limited !== null) {
      this.refused(new WspliceError('WSPLICE_CLIENT_LIMIT', limited.status, limited.reason));
      this.endWith(limited.response);
      return false;
    }
    const group = this.ctx.router.match(info.host, info.path);
    if (group === null) {
      this.refuse(new WspliceError('WSPLICE_NO_ROUTE', 404, `no route for ${info.path}`));
      return false;
    }
    this.group = group;
    this.tries = 0;
    this.keepAlive = info.keepAlive && info.kind === 'plain' && !this.ctx.draining;
    this.reqDone = info.kind !== 'plain' || !info.hasBody;
    this.connect(group);
    return true;
  }

  private onClientEnd(): void {
    // The client half-closed: requests already received still get their responses
    // (pipelined ones included, as nginx does); then the connection closes.
    this.clientEnded = true;
    if (this.state === State.Head) {
      if (this.reqParser !== null && !this.reqParser.atMessageStart) {
        this.refuse(new BadRequestError('connection closed in the middle of a request head'));
      } else {
        this.close();
      }
    } else if (this.info?.kind !== 'plain' && (this.state === State.Connecting || this.state === State.AwaitUpgrade)) {
      // Gone before its upgrade completed: nothing to tunnel. Not the backend's fault.
      this.cleanupUpstream();
      this.client.destroy();
    } else if ((this.state === State.Exchange || this.state === State.Connecting) && !this.reqDone) {
      // The body was cut short: the upstream must not take a truncated request for a whole one.
      this.abort();
    }
  }

  private onClientDrain(): void {
    if (this.upstream !== null && this.state === State.Exchange) this.upstream.resume();
  }

  private onClientClose(): void {
    if (this.tunnel !== null) return; // the relay owns it
    this.state = State.Closed;
    this.timer.clear();
    this.cleanupUpstream();
    this.releaseRequestParser();
    this.pending = null;
    this.held = [];
    this.ctx.connectionClosed(this);
  }

  // ---------------------------------------------------------------- upstream side

  private connect(group: UpstreamGroup): void {
    // The response parser is taken first: when none is left no backend connection is opened.
    if (this.resParser === null && (this.resParser = this.ctx.responseParsers.acquire()) === null) return this.overloaded();
    const backend = group.pick();
    this.backend = backend;
    this.state = State.Connecting;
    this.timer.arm(this.ctx.options.timeouts.connectMs);
    const a = backend.address;
    const tlsUp = this.ctx.upstreamTls.get(group.name);
    const sendProxy = this.ctx.options.upstreams.get(group.name)?.sendProxy ?? null;
    const preamble = sendProxy !== null ? proxyHeaderFor(this.client, sendProxy) : null;
    const target = a.kind === 'unix' ? { path: a.path } : { host: a.host, port: a.port };
    const up = tlsUp !== undefined ? tlsUp.connect(target, backend.label, preamble) : net.connect({ ...target, allowHalfOpen: true, noDelay: true });
    if (tlsUp === undefined && preamble !== null) up.write(preamble); // queued until connected, ahead of the head
    this.upstream = up;
    up.on(tlsUp !== undefined ? 'secureConnect' : 'connect', this.onUpstreamConnect);
    up.on('data', this.onUpstreamData);
    up.on('end', this.onUpstreamEnd);
    up.on('error', this.onUpstreamError);
    up.on('drain', this.onUpstreamDrain);
    up.on('close', this.onUpstreamClose);
    // Until the response comes, nothing but the head goes out; body bytes wait in `held`.
    if (this.info!.kind === 'plain' && this.heldBytes > 0) this.client.pause();
  }

  private onUpstreamConnect(): void {
    const up = this.upstream!;
    const info = this.info!;
    const head = forwardRequestHead(this.req!, info, this.ctx.options.forward, {
      remoteAddress: this.remoteAddress,
      proto: (this.client as { encrypted?: boolean }).encrypted === true ? 'https' : this.ctx.options.proto,
      fallbackHost: this.backend!.address.kind === 'unix' ? 'localhost' : this.backend!.label,
    });
    if (info.kind === 'plain') {
      this.state = State.Exchange;
      up.write(head);
      for (const b of this.held) up.write(b);
      this.held = [];
      this.heldBytes = 0;
      if (!this.reqDone) this.client.resume();
    } else {
      // Early data stays held: no client byte reaches the upstream before a valid 101.
      this.state = State.AwaitUpgrade;
      up.write(head);
    }
    this.timer.arm(this.ctx.options.timeouts.responseMs);
  }

  /** Request body bytes, in order, to the upstream (held until it is connected). */
  private toUpstream(b: Buffer): void {
    if (this.state === State.Exchange && this.upstream !== null) {
      this.timer.refresh();
      if (!this.upstream.write(b)) this.client.pause();
      return;
    }
    this.held.push(b);
    this.heldBytes += b.length;
    if (this.heldBytes > this.ctx.options.limits.maxEarlyDataBytes) this.client.pause();
  }

  private onUpstreamDrain(): void {
    if (!this.reqDone && this.pending === null) this.client.resume();
  }

  private onUpstreamData(chunk: Buffer): void {
    if (this.resParser === null) return;
    this.timer.refresh();
    // Head and body bytes of one chunk leave in one writev, not one write each.
    const client = this.client;
    client.cork();
    this.parseResponse(chunk);
    client.uncork();
  }

  private parseResponse(chunk: Buffer): void {
    const p = this.resParser!;
    let pos = 0;
    let again = false; // see feed()
    while (pos < chunk.length || again) {
      again = false;
      const inHead = !this.resStarted;
      const ev = p.execute(chunk, pos);
      if (ev === Ev.Error) {
        if (inHead) this.upstreamFail('WSPLICE_UPSTREAM_PROTOCOL', `malformed response: ${p.reason}`);
        else this.abort();
        return;
      }
      if (inHead) {
        if (ev === Ev.More) return;
        if (ev === Ev.End) {
          pos = p.offset; // the end of an interim (1xx) response
          continue;
        }
        const res = readResponseHead(p);
        pos = p.offset;
        if (res.status === 101 && this.state === State.AwaitUpgrade) {
          this.openTunnel(res, p, chunk, pos);
          return;
        }
        if (!this.onResponseHead(res, p)) return;
        again = true;
        continue;
      }
      const end = p.offset;
      if (end > pos && !this.client.write(chunk.subarray(pos, end))) this.upstream!.pause();
      pos = end;
      if (ev === Ev.End) {
        this.exchangeDone();
        return;
      }
    }
  }

  /** A response head for a plain exchange, or a refused upgrade. Returns false when the exchange ended. */
  private onResponseHead(res: ResponseHead, p: Parser): boolean {
    const method = this.req!.method;
    if (res.status === 101) {
      this.upstreamFail('WSPLICE_UPSTREAM_PROTOCOL', '101 to a request that asked for no upgrade');
      return false;
    }
    if (res.versionMajor !== 1) {
      this.upstreamFail('WSPLICE_UPSTREAM_PROTOCOL', `HTTP/${res.versionMajor}.${res.versionMinor} response`);
      return false;
    }
    if (res.status >= 100 && res.status < 200) {
      // Interim (100 Continue, 103): forwarded to HTTP/1.1 clients, then the final response follows.
      if (this.req!.versionMinor === 1) this.client.write(forwardResponseHead(res, dropSet(res), true, true));
      return true;
    }
    if (this.state === State.AwaitUpgrade) {
      // The upgrade was refused: the response is relayed as it is, and the
      // connection will never become a tunnel. Early data is dropped unsent.
      this.state = State.Exchange;
      this.held = [];
      this.heldBytes = 0;
      this.keepAlive = false;
      if (this.backend !== null) this.group!.succeed(this.backend);
    }
    if (method === 'HEAD') p.setBodyMode(true, false);
    const eof = !responseHasNoBody(method, res.status) && p.needsEof;
    if (eof || this.ctx.draining) this.keepAlive = false;
    this.resStarted = true;
    const clientHttp11 = this.req!.versionMinor === 1;
    this.client.write(forwardResponseHead(res, dropSet(res), clientHttp11, this.keepAlive));
    return true;
  }

  /** `chunk[pos..]` are tunnel bytes the upstream sent right behind its 101. */
  private openTunnel(res: ResponseHead, p: Parser, chunk: Buffer, pos: number): void {
    const why = this.handshake !== null ? checkUpstreamAccept(res, this.handshake) : this.checkGenericUpgrade(res);
    if (why !== null) {
      this.upstreamFail('WSPLICE_UPSTREAM_PROTOCOL', `upgrade refused: ${why}`);
      return;
    }
    const up = this.upstream!;
    const client = this.client;
    // The 101 goes to the client exactly as the upstream sent it: straight from the
    // chunk when the whole head is in it, else from the parser's copy.
    client.write(p.headBytes === pos ? chunk.subarray(0, pos) : p.copyHead());
    const rest = chunk.subarray(pos);
    this.releaseResponseParser();
    this.timer.clear();
    up.removeListener('connect', this.onUpstreamConnect);
    up.removeListener('secureConnect', this.onUpstreamConnect);
    up.removeListener('data', this.onUpstreamData);
    up.removeListener('end', this.onUpstreamEnd);
    up.removeListener('error', this.onUpstreamError);
    up.removeListener('drain', this.onUpstreamDrain);
    up.removeListener('close', this.onUpstreamClose);
    client.removeListener('data', this.onClientData);
    client.removeListener('end', this.onClientEnd);
    client.removeListener('drain', this.onClientDrain);
    client.removeListener('close', this.onClientClose);
    const early = this.held.length === 0 ? null : this.held.length === 1 ? this.held[0]! : Buffer.concat(this.held);
    this.held = [];
    this.heldBytes = 0;
    this.state = State.Tunnel;
    const backend = this.backend!;
    this.group!.succeed(backend);
    this.upstream = null;
    if (client.destroyed) {
      up.destroy();
      this.onClientClose();
      return;
    }
    this.tunnel = this.ctx.relay.start(
      client,
      up,
      early,
      rest.length > 0 ? rest : null,
      { idleTimeoutMs: this.ctx.options.timeouts.idleMs, onMove: (m) => this.ctx.tunnelMoved(this, backend, m) },
      (stats) => {
        this.state = State.Closed;
        this.ctx.tunnelClosed(this, backend, stats);
        this.ctx.connectionClosed(this);
      },
    );
    this.ctx.tunnelOpened(this, backend, this.tunnel.relay); // the relay never ends a tunnel inside start()
    // A tunnel may live for hours: keep nothing of the handshake it no longer needs.
    this.req = null;
    this.info = null;
    this.handshake = null;
    this.group = null;
    this.backend = null;
  }

  private checkGenericUpgrade(res: ResponseHead): string | null {
    const up = tokens(res, 'upgrade');
    if (up.length !== 1 || up[0] !== this.info!.protocol) return 'Upgrade does not match the protocol asked for';
    if (!tokens(res, 'connection').includes('upgrade')) return 'Connection lacks upgrade';
    return null;
  }

  private onUpstreamEnd(): void {
    const p = this.resParser;
    if (this.state === State.Exchange && this.resStarted && p !== null) {
      // A close-delimited body ends here.
      if (p.finish()) {
        this.keepAlive = false;
        this.exchangeDone();
      } else {
        this.abort();
      }
      return;
    }
    if (this.state === State.Exchange || this.state === State.AwaitUpgrade) {
      this.upstreamFail('WSPLICE_UPSTREAM_CLOSED', 'upstream closed before a complete response head');
    }
  }

  private onUpstreamError(err: Error & { code?: string }): void {
    if (this.state === State.Connecting) {
      this.upstreamFail('WSPLICE_UPSTREAM_CONNECT', `connect failed: ${err.code ?? err.message}`);
    } else if (this.state === State.AwaitUpgrade || (this.state === State.Exchange && !this.resStarted)) {
      this.upstreamFail('WSPLICE_UPSTREAM_CLOSED', `upstream error: ${err.code ?? err.message}`);
    } else if (this.state === State.Exchange) {
      this.abort();
    }
  }

  private onUpstreamClose(): void {
    if (this.upstream === null) return;
    if (this.state === State.Exchange && !this.resStarted) {
      this.upstreamFail('WSPLICE_UPSTREAM_CLOSED', 'upstream closed before a complete response head');
    } else if (this.state === State.Exchange) {
      // Closed without a clean end of message (after 'end' the exchange was already done).
      this.abort();
    } else if (this.state === State.Connecting || this.state === State.AwaitUpgrade) {
      this.upstreamFail('WSPLICE_UPSTREAM_CLOSED', 'upstream closed');
    }
  }

  // ---------------------------------------------------------------- endings

  /** The response is complete. Keep the client for the next request, or close. */
  private exchangeDone(): void {
    this.retireUpstream();
    if (!this.keepAlive || !this.reqDone || this.ctx.draining || (this.clientEnded && this.pending === null)) {
      this.close();
      return;
    }
    // Back to reading heads; a pipelined request may already be waiting.
    this.state = State.Head;
    this.req = null;
    this.info = null;
    this.handshake = null;
    this.resStarted = false;
    this.reqDone = false;
    this.timer.arm(this.ctx.options.timeouts.keepAliveMs);
    const pending = this.pending;
    this.pending = null;
    // An idle keep-alive connection holds no parser; the next request takes one from the pool.
    if (pending === null) this.releaseRequestParser();
    this.client.resume();
    if (pending !== null) this.feed(pending, 0);
    // Half-closed client: what is left of its bytes was not a whole request.
    if (this.clientEnded && this.state === State.Head) this.onClientEnd();
  }

  private onTimeout(): void {
    switch (this.state) {
      case State.Head:
        if (this.reqParser === null || this.reqParser.atMessageStart) {
          this.close(); // idle keep-alive (or a connection that never spoke): just close
        } else {
          this.refused(new WspliceError('WSPLICE_CLIENT_TIMEOUT', 408, 'request head not received in time'));
          this.endWith(RESPONSE_408);
        }
        return;
      case State.Connecting:
        this.upstreamFail('WSPLICE_UPSTREAM_TIMEOUT', 'connect timed out');
        return;
      case State.AwaitUpgrade:
        this.upstreamFail('WSPLICE_UPSTREAM_TIMEOUT', 'response head timed out');
        return;
      case State.Exchange:
        if (this.resStarted) this.abort();
        else this.upstreamFail('WSPLICE_UPSTREAM_TIMEOUT', 'response head timed out');
        return;
      case State.Closing:
        this.client.destroy();
        return;
      default:
        return;
    }
  }

  private refuseParse(p: Parser): void {
    if (p.limit === Limit.HeadTooLarge || p.limit === Limit.TooManyHeaders) {
      this.refused(new BadRequestError(p.reason, 'WSPLICE_HEAD_TOO_LARGE', 431));
      this.endWith(p.limit === Limit.HeadTooLarge ? RESPONSE_431 : errorResponse(431, p.reason));
      return;
    }
    if (p.limit === Limit.UriTooLong) {
      this.refuse(new BadRequestError(p.reason, 'WSPLICE_URI_TOO_LONG', 414));
      return;
    }
    if (this.req !== null) {
      // Bad framing inside a body already being forwarded: the upstream is reset so it
      // cannot take a cut request for a whole one; the client is told why if it can be.
      if (this.resStarted) {
        this.abort();
        return;
      }
      this.resetUpstream();
      this.refuse(new BadRequestError(`malformed request body: ${p.reason}`));
      return;
    }
    this.refuse(new BadRequestError(`malformed request: ${p.reason}`));
  }

  private refused(err: WspliceError): void {
    this.ctx.refused(this, err);
  }

  /** Answer with the proxy's own error response and close. */
  private refuse(err: WspliceError, extraHeaders = ''): void {
    this.refused(err);
    this.endWith(errorResponse(err.status, err.message, extraHeaders));
  }

  /** The parser budget (limits.maxParsers) is spent: 503, nothing reaches a backend. */
  private overloaded(): void {
    this.refuse(new WspliceError('WSPLICE_OVERLOADED', 503, 'no head parser free (limits.maxParsers)'));
  }

  private fail(code: ErrorCode, reason: string): void {
    this.refused(new WspliceError(code, 0, reason));
    this.cleanupUpstream();
    this.client.destroy();
  }

  /** The upstream failed before a response reached the client: 502/504, counted against the backend. */
  private upstreamFail(code: ErrorCode, reason: string): void {
    const status = code === 'WSPLICE_UPSTREAM_TIMEOUT' ? 504 : 502;
    const backend = this.backend;
    const err = new UpstreamError(code, status, backend?.label ?? '-', reason);
    if (backend !== null) this.group!.fail(backend);
    this.ctx.upstreamFailed(this, err);
    this.cleanupUpstream();
    if (this.resStarted) {
      this.client.destroy();
      return;
    }
    // Nothing was sent yet: try the next backend (nginx's proxy_next_upstream error timeout).
    if (this.state === State.Connecting && ++this.tries < this.group!.backends.length) {
      this.connect(this.group!);
      return;
    }
    this.endWith(errorResponse(status, status === 504 ? 'upstream timed out' : 'upstream failed'));
  }

  /** Something broke mid-message: no clean response is possible. Reset both ends. */
  private abort(): void {
    this.resetUpstream();
    resetOrDestroy(this.client);
  }

  private resetUpstream(): void {
    const up = this.upstream;
    if (up !== null) resetOrDestroy(up);
    this.cleanupUpstream();
  }

  /** Write a final response, half-close, and give the client a moment to read it. */
  private endWith(response: Buffer): void {
    this.cleanupUpstream();
    this.releaseRequestParser();
    this.state = State.Closing;
    this.pending = null;
    this.held = [];
    if (!this.client.destroyed) {
      this.client.end(response);
      this.client.resume(); // discard whatever else the client sends until it closes
    }
    this.timer.arm(LINGER_MS);
  }

  private close(): void {
    this.cleanupUpstream();
    this.state = State.Closing;
    this.timer.arm(LINGER_MS);
    if (!this.client.destroyed) this.client.end();
  }

  /**
   * The exchange is over and the upstream was asked to close (Connection: close).
   * Let it close first: the side that closes first keeps TIME_WAIT, and a proxy
   * that closes first runs out of ephemeral ports at a few thousand requests/s.
   */
  private retireUpstream(): void {
    this.releaseResponseParser();
    const up = this.upstream;
    if (up === null) return;
    this.upstream = null;
    up.removeListener('close', this.onUpstreamClose);
    up.removeListener('data', this.onUpstreamData);
    up.removeListener('end', this.onUpstreamEnd);
    up.removeListener('drain', this.onUpstreamDrain);
    if (up.readableEnded || up.destroyed) {
      up.destroy();
      return;
    }
    up.on('end', destroySelf);
    up.setTimeout(RETIRE_MS, destroySelf);
    up.resume(); // a stray byte after the message must not stall the close
  }

  private cleanupUpstream(): void {
    this.releaseResponseParser();
    const up = this.upstream;
    if (up !== null) {
      this.upstream = null;
      up.removeListener('close', this.onUpstreamClose);
      up.removeListener('data', this.onUpstreamData);
      up.destroy();
    }
  }

  private releaseRequestParser(): void {
    if (this.reqParser !== null) {
      this.ctx.requestParsers.release(this.reqParser);
      this.reqParser = null;
    }
  }

  private releaseResponseParser(): void {
    if (this.resParser !== null) {
      this.ctx.responseParsers.release(this.resParser);
      this.resParser = null;
    }
  }
}

function noop(): void {}

/** How long a finished upstream connection may take to close on its side. */
const RETIRE_MS = 5_000;

function destroySelf(this: Socket): void {
  this.destroy();
}
