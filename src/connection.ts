/**
 * One client connection (the front): it reads request heads, routes them, and
 * drives the upstream leg (the back, upstream/leg.ts) through the states of
 * state.ts. Every state change goes through `enter` (which arms that state's
 * timeout), every failure through `fail` (which asks `decide` what it means in
 * the current state), and a connection ends in one of three ways: `finish`
 * (an answer or a FIN, then linger), `reset` (RST both ends) or `drop`.
 * Request heads are parsed once by llhttp; body bytes and frames are only sliced, never decoded.
 */
import type { Socket } from 'node:net';
import type { ProxyContext } from './context.js';
import { ERRORS, WspliceError, type ErrorCode } from './errors.js';
import { done, openExchange, type Exchange } from './exchange.js';
import type { ResponseHead } from './http1/head.js';
import { Ev, type Parser } from './http1/llhttp.js';
import { dropSet, responseFramingProblem, responseHasNoBody } from './http1/semantics.js';
import { errorResponse, forwardResponseHead, responseHeadText, withHeaderLines } from './http1/serialize.js';
import { startTunnel } from './relay/dial.js';
import { readOwned } from './relay/handover.js';
import type { Tunnel, TunnelMove } from './relay/types.js';
import { ExchangeRecord } from './observe/record.js';
import { resetOrDestroy } from './sockets.js';
import { decide, expiry, KEEP, parseFailure, State, timeoutFor, Verdict } from './state.js';
import { StateTimer } from './timeouts.js';
import { HeadVerdict, UpstreamLeg, type LegOwner } from './upstream/leg.js';
import { causeOf, causeOfStatus, mayRetry } from './upstream/retry.js';
import { checkGenericUpgrade, checkUpstreamAccept } from './websocket/handshake.js';
import { clientAddress } from './proxy-protocol/peer.js';

let lastId = 0;

export class Connection implements LegOwner {
  readonly id = ++lastId;
  state: State = State.HeadIdle;
  readonly client: Socket;
  /** Timings and outcome of the exchange in progress, for logs and metrics (marks per exchange, never per chunk). */
  readonly rec = new ExchangeRecord();
  private readonly ctx: ProxyContext;
  private readonly timer: StateTimer;
  private readonly leg: UpstreamLeg;
  private reqParser: Parser | null = null;
  private x: Exchange | null = null; // the exchange in progress
  /** Client bytes after the current request (pipelining), held until the exchange ends. */
  private pending: Buffer | null = null;
  private tunnel: Tunnel | null = null;
  private requests = 0;
  private peerAddress: string | null = null;
  /** The client sent its FIN: no request after those already received. */
  private clientEnded = false;
  /** A pipelined request waits for the client to read the responses before it (its 'drain'). */
  private awaitingDrain = false;

  /** `listener`: the accepting listener's address, for logs and metrics. */
  constructor(ctx: ProxyContext, client: Socket, readonly listener = '') {
    this.ctx = ctx;
    this.client = client;
    this.timer = new StateTimer(this.onTimeout.bind(this));
    this.leg = new UpstreamLeg(this, ctx, this.timer, ctx.options.limits.maxEarlyDataBytes);
    this.onClientData = this.onClientData.bind(this);
    this.onClientEnd = this.onClientEnd.bind(this);
    this.onClientClose = this.onClientClose.bind(this);
    this.onClientDrain = this.onClientDrain.bind(this);
    client.setNoDelay(true);
    readOwned(client, this.onClientData);
    client.on('end', this.onClientEnd);
    client.on('error', noop); // 'close' follows every error; it does the cleanup
    client.on('close', this.onClientClose);
    client.on('drain', this.onClientDrain);
    this.enter(State.HeadIdle);
  }

  /** The client: the socket's peer, or the address a trusted PROXY header gave (read once: a PROXY header is read before the connection exists). */
  get remoteAddress(): string {
    return (this.peerAddress ??= clientAddress(this.client));
  }

  /** Draining: an idle keep-alive connection goes now, others after their exchange; a fresh one keeps its head timeout (its request may be in flight). */
  drain(): void {
    if (this.state === State.Lingering) this.client.destroy(); // its final response is written
    else if (this.state === State.HeadIdle && this.pending === null && this.requests > 0) this.drop();
  }

  /** End now (shutdown deadline); `goAway`: a WebSocket tunnel gets its Close 1001 first. */
  destroy(goAway = false): void {
    if (this.tunnel !== null) goAway ? this.tunnel.goAway() : this.tunnel.close('shutdown');
    else this.drop();
  }

  /** Change state; the timer takes the new state's timeout (state.ts). */
  private enter(s: State): void {
    this.state = s;
    const ms = timeoutFor(s, this.x?.route.timeouts ?? this.ctx.options.timeouts, this.requests === 0, this.x?.bodyDone === false); // the route's while an exchange runs
    if (ms !== KEEP) this.timer.arm(ms);
  }

  // ---------------------------------------------------------------- client side

  private onClientData(chunk: Buffer): void {
    const s = this.state;
    if (s >= State.Tunnel) return; // Lingering: the byte stream is no longer trusted; discard
    const x = this.x;
    if (x !== null && x.upgrade) {
      // Early data behind an upgrade head; after a refused upgrade, discarded.
      if (s === State.Connecting || s === State.AwaitHead) this.holdEarly(x, chunk);
      return;
    }
    if ((x !== null && x.bodyDone) || this.pending !== null) this.holdPipelined(chunk, 0);
    else this.feed(chunk, 0);
  }

  /** Parse client bytes from `pos`: request heads, then body framing only. */
  private feed(chunk: Buffer, pos: number): void {
    // After a head, llhttp runs once more even with no bytes left: a bodiless
    // message completes then, not when the next byte happens to arrive.
    let again = false;
    while (pos < chunk.length || again) {
      again = false;
      if (this.state === State.HeadIdle) {
        this.enter(State.HeadReading);
        this.rec.begin(this.client, chunk.length - pos);
      }
      if (this.reqParser === null && (this.reqParser = this.ctx.requestParsers.acquire()) === null) {
        this.fail('WSPLICE_OVERLOADED', 'no head parser free (limits.maxParsers)');
        return;
      }
      const p = this.reqParser;
      const inHead = this.x === null;
      const ev = p.execute(chunk, pos);
      if (ev === Ev.Error) {
        this.fail(...parseFailure(p.limit, p.reason, !inHead));
        return;
      }
      if (inHead) {
        if (ev === Ev.More) return;
        if (!this.onRequestHead(p)) return; // Ev.Head
        pos = p.offset;
        const x = this.x!;
        if (x.upgrade) {
          // What follows an upgrade head is early data, held until the 101 is validated.
          this.releaseRequestParser();
          if (pos < chunk.length) this.holdEarly(x, chunk.subarray(pos));
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
        this.x!.bodyDone = true;
        if (this.state === State.AwaitHead) this.enter(State.AwaitHead); // all sent: the response head's limit runs from now
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

  private holdEarly(x: Exchange, chunk: Buffer): void {
    if (!x.holdEarly(chunk, this.ctx.options.limits.maxEarlyDataBytes)) {
      this.fail('WSPLICE_EARLY_DATA_OVERFLOW', 'too much data before the upgrade completed');
    }
  }

  /** Returns false when the request was refused. */
  private onRequestHead(p: Parser): boolean {
    this.requests++;
    const x = openExchange(p, this.ctx, this.id, this.remoteAddress, this.rec, this.client);
    if (x instanceof WspliceError) {
      x.response === undefined ? this.fail(x.code, x.message) : (this.ctx.failed(this, x.code, x.message, x.status, null), this.finish(x.response)); // return, deny: as built
      return false;
    }
    const limited = this.ctx.limiter?.admitRequest(this.client, x.req) ?? null;
    if (limited !== null) {
      this.ctx.refused(this, new WspliceError('WSPLICE_CLIENT_LIMIT', limited.reason, limited.status));
      this.finish(limited.response);
      return false;
    }
    this.x = x;
    this.connect(x);
    return this.x !== null; // null: refused on the spot (no response parser free)
  }

  private onClientEnd(): void {
    // The client half-closed: requests already received still get their responses
    // (pipelined ones included, as nginx does); then the connection closes.
    this.clientEnded = true;
    const x = this.x;
    switch (this.state) {
      case State.HeadIdle:
        if (!this.awaitingDrain) this.finish(null); // else the held requests are answered first
        return;
      case State.HeadReading:
        this.fail('WSPLICE_BAD_REQUEST', 'connection closed in the middle of a request head');
        return;
      case State.Connecting:
      case State.AwaitHead:
      case State.Streaming:
        if (x!.upgrade && this.state !== State.Streaming) this.fail('WSPLICE_CLIENT_GONE', 'client left before its upgrade completed');
        else if (!x!.bodyDone) this.fail('WSPLICE_CLIENT_ABORTED', 'request body cut short');
        return;
      default:
        return;
    }
  }

  private onClientDrain(): void {
    if (this.state === State.AwaitHead || this.state === State.Streaming) this.leg.resume();
    else if (this.awaitingDrain && this.state === State.HeadIdle) this.nextExchange();
  }

  private onClientClose(): void {
    if (this.tunnel !== null) return; // the relay owns it
    this.enter(State.Closed);
    this.ctx.exchangeEnded(this, 'closed');
    this.leg.close(false);
    this.releaseRequestParser();
    this.pending = null;
    this.x = done(this.x);
    this.ctx.connectionClosed(this);
  }

  // ---------------------------------------------------------------- upstream side (LegOwner)

  /** One try: pick a backend and connect the leg to it. */
  private connect(x: Exchange): void {
    const backend = x.pick();
    if (backend === null) return this.fail('WSPLICE_UPSTREAM_FULL', 'no backend available (all down, unhealthy or at max_conns)');
    this.rec.connecting(backend.label);
    this.enter(State.Connecting);
    const proto = (this.client as { encrypted?: boolean }).encrypted === true ? 'https' : this.ctx.options.proto;
    const kind = x.legKind(this.ctx.pools);
    if (!this.leg.connect(backend, x.requestHead(proto, kind), kind, x.group.name, x.bodyDone)) {
      this.fail('WSPLICE_OVERLOADED', 'no response parser free (limits.maxParsers)');
    }
  }

  legConnected(): void {
    // Early data of an upgrade stays held: no client byte reaches the upstream before a valid 101.
    this.enter(State.AwaitHead);
    this.rec.connected();
    const x = this.x!;
    if (!x.upgrade && !x.bodyDone) this.client.resume();
  }

  /** Request body bytes, in order, to the upstream (held by the leg until it is connected). */
  private toUpstream(b: Buffer): void {
    this.x!.bodySent = true; // held or sent: either way a retry could not send it again
    if (!this.leg.send(b)) this.client.pause();
  }

  legDrain(): void {
    if (!this.x!.bodyDone && this.pending === null) this.client.resume();
  }

  legHead(res: ResponseHead, p: Parser, chunk: Buffer, pos: number): HeadVerdict {
    const x = this.x!;
    this.rec.firstByte();
    if (res.status >= 200 || res.status === 101) this.rec.status = res.status;
    if (res.status === 101) return this.openTunnel(x, res, p, chunk, pos); // the leg let it through: an upgrade was asked
    const badFraming = responseFramingProblem(res, x.req.versionMinor); // before any byte reaches the client: 502
    if (badFraming !== null) { this.fail('WSPLICE_UPSTREAM_PROTOCOL', badFraming); return HeadVerdict.Stop; }
    if (res.status >= 100 && res.status < 200) { // interim (100, 103): to HTTP/1.1 clients; the final response follows
      if (x.req.versionMinor === 1 && !this.client.write(forwardResponseHead(res, dropSet(res), true, true))) this.leg.pause(); // drain resumes
      x.responseStarted = true;
      return HeadVerdict.Interim;
    }
    if (mayRetry(x, this.state, causeOfStatus(res.status))) return this.retry(x, true); // not a byte of it was passed on
    if (x.upgrade) {
      // The upgrade was refused: the response is relayed as it is, and the
      // connection will never become a tunnel. Early data is dropped unsent.
      x.takeEarly();
      x.keepAlive = false;
      x.group.succeed(x.backend!);
    }
    if (x.req.method === 'HEAD') p.setBodyMode(true, false);
    if ((!responseHasNoBody(x.req.method, res.status) && p.needsEof) || this.ctx.draining) x.keepAlive = false;
    this.enter(State.Streaming);
    this.leg.respond(responseHeadText(res, dropSet(res), x.req.versionMinor === 1, x.keepAlive, x.responseHeaders)); // with the body bytes behind it
    return HeadVerdict.Body;
  }

  /** `chunk[pos..]` are tunnel bytes the upstream sent right behind its 101. */
  private openTunnel(x: Exchange, res: ResponseHead, p: Parser, chunk: Buffer, pos: number): HeadVerdict {
    const refusal = x.handshake !== null ? checkUpstreamAccept(res, x.handshake) : checkGenericUpgrade(res, x.info.protocol);
    if (refusal !== null) {
      this.fail(refusal.code, refusal.message);
      return HeadVerdict.Stop;
    }
    const client = this.client;
    // The 101 goes to the client exactly as the upstream sent it (plus a sticky cookie): straight
    // from the chunk when the whole head is in it, else from the parser's copy.
    client.write(withHeaderLines(p.headBytes === pos ? chunk.subarray(0, pos) : p.copyHead(), x.responseHeaders));
    const rest = chunk.subarray(pos);
    client.removeListener('data', this.onClientData);
    client.removeListener('end', this.onClientEnd);
    client.removeListener('drain', this.onClientDrain);
    client.removeListener('close', this.onClientClose);
    const early = x.takeEarly();
    this.enter(State.Tunnel);
    const backend = x.backend!;
    if (client.destroyed) {
      this.onClientClose(); // closes the upstream too
      return HeadVerdict.Stop;
    }
    const release = x.handOver(); // the tunnel holds the backend's open count now
    this.x = null; // a tunnel may live for hours: it keeps nothing of the handshake
    const onMove = (m: TunnelMove): void => this.ctx.tunnelMoved(this, backend, m);
    this.tunnel = startTunnel(this.ctx.relay, client, this.leg.detach(), early, rest.length > 0 ? rest : null, { idleTimeoutMs: x.route.timeouts.idleMs, onMove, websocket: x.handshake !== null }, (stats) => {
      release();
      this.state = State.Closed;
      this.ctx.tunnelClosed(this, backend, stats);
      this.ctx.connectionClosed(this);
    });
    this.ctx.tunnelOpened(this, backend, this.tunnel.relay); // the relay never ends a tunnel inside start()
    this.rec.unsent = early?.length ?? 0; // early data is the tunnel's, not the handshake's
    this.ctx.exchangeEnded(this, 'tunnel');
    return HeadVerdict.Stop;
  }

  legDone(eof: boolean): void {
    const x = this.x!;
    this.ctx.exchangeEnded(this, 'response');
    if (eof) x.keepAlive = false;
    this.leg.retire(x.bodyDone);
    this.x = done(x);
    if (!x.keepAlive || !x.bodyDone || this.ctx.draining || (this.clientEnded && this.pending === null)) {
      this.finish(null);
      return;
    }
    // Back to reading heads; a pipelined request may already be waiting.
    this.enter(State.HeadIdle);
    // Backpressure across exchanges: while the client is not reading what it was sent, the
    // next pipelined request waits (its bytes stay held, bounded, the client paused).
    if (this.pending !== null && this.client.writableNeedDrain) this.awaitingDrain = true; // onClientDrain goes on
    else this.nextExchange();
  }

  /** Start on the pipelined bytes, if any; else wait for the next request. */
  private nextExchange(): void {
    this.awaitingDrain = false;
    const pending = this.pending;
    this.pending = null;
    // An idle keep-alive connection holds no parser; the next request takes one from the pool.
    if (pending === null) this.releaseRequestParser();
    this.client.resume();
    if (pending !== null) this.feed(pending, 0);
    // Half-closed client: what is left of its bytes was not a whole request.
    if (this.clientEnded && (this.state === State.HeadIdle || this.state === State.HeadReading)) this.onClientEnd();
  }

  legFailed(code: ErrorCode, reason: string): void {
    this.fail(code, reason);
  }

  // ---------------------------------------------------------------- failures and endings

  private onTimeout(): void {
    const e = expiry(this.state, this.x?.bodyDone === false);
    if (e !== null) this.fail(e[0], e[1]);
    else if (this.state === State.HeadIdle) this.finish(null); // idle keep-alive, or never spoke
    else if (this.state === State.Lingering) this.client.destroy();
  }

  /** The next try; `failed`: the backend answered 502, 503 or 504, a failure as nginx counts it. */
  private retry(x: Exchange, failed = false): HeadVerdict {
    if (failed) x.group.fail(x.backend!);
    x.tries++;
    this.leg.close(false, true);
    this.connect(x);
    return HeadVerdict.Stop;
  }

  /** The one failure path: `decide` says what `code` means in this state. */
  private fail(code: ErrorCode, reason: string): void {
    const x = this.x;
    const row = ERRORS[code];
    const backend = row.backend && x !== null ? x.backend : null;
    if (backend !== null) x!.group.fail(backend, Date.now(), reason);
    const verdict = decide(this.state, code, x !== null && mayRetry(x, this.state, causeOf(code)));
    this.ctx.failed(this, code, reason, verdict === Verdict.Reset || verdict === Verdict.Drop ? 0 : row.status, backend);
    switch (verdict) {
      case Verdict.Retry:
        this.retry(x!);
        return;
      case Verdict.Answer:
        // A backend that got part of a request is reset: it must not take it for a whole one.
        this.leg.close(x !== null && !x.bodyDone);
        this.finish(errorResponse(row.status, row.text ?? reason, row.headers));
        return;
      case Verdict.Close:
        this.finish(null);
        return;
      case Verdict.Reset:
        this.reset();
        return;
      default:
        this.drop();
    }
  }

  /** Write the last answer (or only a FIN), and give the client a moment to read it. */
  private finish(response: Buffer | null): void {
    this.leg.close(false);
    this.releaseRequestParser();
    this.pending = null;
    this.x = done(this.x);
    this.enter(State.Lingering);
    if (!this.client.destroyed) {
      if (response !== null) this.client.end(response);
      else this.client.end();
      this.ctx.exchangeEnded(this, 'closed'); // after the answer, so its bytes count
      this.client.resume(); // discard whatever else the client sends until it closes
    }
  }

  /** Something broke mid-message: no clean response is possible. RST both ends. */
  private reset(): void {
    this.ctx.exchangeEnded(this, 'closed');
    this.leg.close(true);
    resetOrDestroy(this.client);
  }

  private drop(): void {
    this.ctx.exchangeEnded(this, 'closed');
    this.leg.close(false);
    this.client.destroy();
  }

  private releaseRequestParser(): void {
    if (this.reqParser !== null) {
      this.ctx.requestParsers.release(this.reqParser);
      this.reqParser = null;
    }
  }
}

function noop(): void {}
