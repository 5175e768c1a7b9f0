/**
 * `proxy.web(req, res)`: a plain request an app's http.Server parsed, sent to
 * the route's upstream (or `options.target`). The request is checked and its
 * head built by the listener's own rules (classifyRequest, forwardRequestHead:
 * hop-by-hop removal, Host, X-Forwarded-*); Node's http client carries it,
 * since Node has already taken the body's framing off (streams both ways with
 * backpressure). Failures answer as a listener does (502, 504, 4xx with the
 * reason), or go to the callback.
 */
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import net, { type Socket } from 'node:net';
import type { ProxyContext, ReportedClient } from '../context.js';
import { ERRORS, UpstreamError, WspliceError, type ErrorCode, type ErrorRow } from '../errors.js';
import type { Head, RequestHead } from '../http1/head.js';
import { F_CHUNKED, F_CONTENT_LENGTH, F_TRANSFER_ENCODING } from '../http1/llhttp.js';
import { classifyRequest, dropSet, HOP_BY_HOP, type RequestInfo } from '../http1/semantics.js';
import { normalisePath, replacePrefix } from '../http1/path.js';
import { forwardRequestHead } from '../http1/serialize.js';
import { ExchangeRecord } from '../observe/record.js';
import { clientAddress } from '../proxy-protocol/peer.js';
import { answerOf, FORBIDDEN, returnAnswer, slashAnswer, slashLocation, type Route } from '../router.js';
import type { Backend, UpstreamGroup } from '../upstream/group.js';
import { causeOf, IDEMPOTENT, withinPolicy, type RetryCause } from '../upstream/retry.js';
import type { EmbedHost } from './host.js';
import { planRoutes, type EmbedOptions, type EmbedPlan } from './target.js';

export interface WebResult {
  /** The upstream's status, relayed. */
  status: number;
  /** The backend that answered. */
  backend: string;
}

/** Client connections with a refused request: the bytes behind it are not trusted (Node may have parsed more). */
const refusedOn = new WeakSet<Socket>();

let lastId = 0;

export function proxyRequest(host: EmbedHost, req: IncomingMessage, res: ServerResponse, options: EmbedOptions | undefined, answer: boolean): Promise<WebResult> {
  return new Promise<WebResult>((resolve, reject) => {
    const misuse = checkArgs(req, res);
    if (misuse !== null) {
      reject(misuse);
      return;
    }
    if (refusedOn.has(req.socket)) {
      // Node parsed this one behind a request wsplice refused; as on a listener, nothing after a
      // refusal is served (the refusal's Connection: close makes Node close after its answer).
      reject(new WspliceError('WSPLICE_BAD_REQUEST', 'a request behind a refused one on the same connection: not served'));
      return;
    }
    const x = new WebExchange(host.ctx, req, res, answer, resolve, reject);
    let plan: EmbedPlan;
    try {
      plan = host.targets.plan(options);
    } catch (err) {
      x.abandon(err as Error);
      return;
    }
    x.start(plan);
  });
}

function checkArgs(req: IncomingMessage, res: ServerResponse): WspliceError | null {
  const misuse = (why: string): WspliceError => new WspliceError('WSPLICE_EMBED_MISUSE', why);
  if (req === null || typeof req !== 'object' || !Array.isArray(req.rawHeaders)) return misuse('proxy.web needs the IncomingMessage of the request event');
  if (res === null || typeof res !== 'object' || typeof res.writeHead !== 'function') return misuse('proxy.web needs the ServerResponse of the request event');
  if ((req as { upgrade?: boolean }).upgrade === true) return misuse('an upgrade request: proxy it with proxy.ws from the upgrade event');
  if (res.headersSent || res.writableEnded) return misuse('the response was already started (headers sent)');
  if (res.destroyed || req.socket === null || req.socket.destroyed) return misuse('the client connection is already closed');
  return null;
}

/** The head model of what Node parsed, for the listener's checks and head writer. */
function headOf(req: IncomingMessage): RequestHead {
  const names: string[] = [];
  const keys: string[] = [];
  const values: string[] = [];
  const raw = req.rawHeaders;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    names.push(raw[i]!);
    keys.push(raw[i]!.toLowerCase());
    values.push(raw[i + 1]!);
  }
  let flags = 0;
  const te = req.headers['transfer-encoding'];
  if (te !== undefined) flags |= F_TRANSFER_ENCODING | (/(?:^|,)\s*chunked\s*$/i.test(te) ? F_CHUNKED : 0);
  const cl = req.headers['content-length'];
  if (cl !== undefined) flags |= F_CONTENT_LENGTH;
  // Express mounts rewrite req.url; the client's target is originalUrl (as http-proxy-middleware sends it).
  const target = (req as { originalUrl?: string }).originalUrl ?? req.url ?? '/';
  return {
    names, keys, values, flags,
    versionMajor: req.httpVersionMajor,
    versionMinor: req.httpVersionMinor,
    contentLength: cl !== undefined ? Number(cl) : 0,
    headBytes: 0,
    method: req.method ?? 'GET',
    target,
  };
}

/** Response header pairs for res.writeHead: hop-by-hop and Connection-named ones removed, `extra` lines added. */
function responseHeaders(up: IncomingMessage, extra: string): string[] {
  const raw = up.rawHeaders;
  const h: Head = headOf(up);
  const drop = dropSet(h);
  const out: string[] = [];
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const k = h.keys[i / 2]!;
    if (HOP_BY_HOP.has(k) || drop.has(k)) continue;
    out.push(raw[i]!, raw[i + 1]!);
  }
  for (const [name, value] of headerLines(extra)) out.push(name, value);
  return out;
}

/** `Name: value\r\n` lines (a sticky cookie, an error row's headers) as [name, value] pairs. */
function headerLines(lines: string): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (const line of lines === '' ? [] : lines.split('\r\n')) {
    const c = line.indexOf(': ');
    if (c > 0) out.push([line.slice(0, c), line.slice(c + 2)]);
  }
  return out;
}

/** The forwarded head (the listener's bytes) as header pairs for Node's client. */
function headerPairs(head: Buffer): string[] {
  const lines = head.toString('latin1').split('\r\n');
  const out: string[] = [];
  for (let i = 1; i < lines.length && lines[i] !== ''; i++) {
    const l = lines[i]!;
    const c = l.indexOf(':');
    out.push(l.slice(0, c), l.slice(c + 2));
  }
  return out;
}

class WebExchange implements ReportedClient {
  readonly id = ++lastId;
  /** What the proxy's reporters note of a failure (code, status). */
  readonly rec = new ExchangeRecord();
  readonly remoteAddress: string;
  readonly client: Socket;
  /** Events name no listener: the app's server accepted it. */
  readonly listener = 'embedded';
  private plan!: EmbedPlan;
  private info!: RequestInfo;
  private head!: RequestHead;
  private group!: UpstreamGroup;
  /** The location (or the target's route), with the call's options over it: forwarding, timeouts, retries. */
  private route!: Route;
  /** The target sent upstream (the route's `uri` in place of the matched prefix, if it has one). */
  private target = '';
  private backend: Backend | null = null;
  private up: http.ClientRequest | null = null;
  private timer: NodeJS.Timeout | null = null;
  private tries = 0;
  /** When the first try began (the bound of the group's nextUpstream.timeoutMs). */
  private readonly startedAt = Date.now();
  private readonly tried: Backend[] = [];
  private bodySent = false;
  /** The body's chunks refresh the send timer (set once, whatever the tries). */
  private sending = false;
  /** Header lines the proxy adds to the response (a sticky cookie), CRLF-ended as a listener adds them. */
  private extra = '';
  /** The current try's socket is connected. */
  private connected = false;
  private done = false;

  constructor(
    private readonly ctx: ProxyContext,
    private readonly req: IncomingMessage,
    private readonly res: ServerResponse,
    /** Answer failures on `res` (false: a callback does). */
    private readonly answer: boolean,
    private readonly resolve: (r: WebResult) => void,
    private readonly reject: (e: Error) => void,
  ) {
    this.remoteAddress = clientAddress(req.socket);
    this.client = req.socket;
    this.rec.method = req.method ?? '-';
    this.rec.path = req.url ?? '-';
    this.onClientGone = this.onClientGone.bind(this);
  }

  /** Check and route as a listener does, then the first try. */
  start(plan: EmbedPlan): void {
    this.plan = plan;
    this.head = headOf(this.req);
    let routePath: string;
    try {
      this.info = classifyRequest(this.head, plan.options.tunnelProtocols);
      routePath = normalisePath(this.info.path); // locations match this, as on a listener; the client's own target is forwarded
    } catch (err) {
      refusedOn.add(this.client);
      this.fail(err instanceof WspliceError ? err : new WspliceError('WSPLICE_BAD_REQUEST', String(err)));
      return;
    }
    if (this.info.hasBody && (this.req.readableDidRead || this.req.readableEnded)) {
      this.abandon(new WspliceError('WSPLICE_EMBED_MISUSE', 'the request body was already read (a body parser ran before proxy.web)'));
      return;
    }
    const route = this.routeTo(routePath);
    if (route === null) return;
    this.route = route;
    this.group = route.group!;
    this.target = route.uri === null ? this.info.path : replacePrefix(this.info.path, route.path.length, route.uri);
    this.res.once('close', this.onClientGone);
    this.connect();
  }

  /** The location, as a listener routes (or the target's); null when it answered (404, `return`, `deny`). */
  private routeTo(path: string): Route | null {
    const route = planRoutes(this.ctx.router, this.plan).route(this.info.host, path);
    if (route === null) {
      this.fail(new WspliceError('WSPLICE_NO_ROUTE', `no route for ${path}`));
      return null;
    }
    const moved = route.slashRedirect ? this.slashed(route, path) : null;
    if (moved !== null) {
      if (this.answer) this.writeAnswer(301, 'moved', undefined, moved);
      this.settle(slashAnswer(moved)); // a RouteAnswer, as `return` settles
      return null;
    }
    const answer = route.access !== null || route.ret !== null ? answerOf(route, this.remoteAddress) : null;
    if (answer === null) return route;
    if (ERRORS[answer.code].event === 'refused') this.ctx.refused(this, answer);
    if (this.answer) this.writeRouteAnswer(route, answer.status);
    this.settle(answer);
    return null;
  }

  /** The Location of the route's slash redirect for this request, as a listener builds it (null: none). */
  private slashed(route: Route, path: string): string | null {
    const s = this.req.socket as Socket & { encrypted?: boolean };
    const proto = s.encrypted === true ? 'https' : this.plan.options.proto;
    return slashLocation(route, path, this.info.path, this.info.host, { proto, localAddress: s.localAddress, localPort: s.localPort });
  }

  /** A location's own answer (`return CODE [TEXT|URL]`, or 403 from `deny`), as the listener words it. */
  private writeRouteAnswer(route: Route, status: number): void {
    const a = route.ret === null ? { reason: FORBIDDEN, location: null } : returnAnswer(status, route.ret.text);
    if (!('text' in a)) return this.writeAnswer(status, a.reason, undefined, a.location ?? undefined);
    this.res.writeHead(status, { 'Content-Type': 'text/plain', 'Content-Length': String(Buffer.byteLength(a.text)), Connection: 'close' });
    this.res.end(a.text);
  }

  /** Options were refused before anything started. */
  abandon(err: Error): void {
    this.settle(err);
    if (this.answer && !this.res.headersSent) this.writeAnswer(500, 'proxy misconfigured');
  }

  private connect(): void {
    this.releaseBackend();
    const pc = { remoteAddress: this.remoteAddress, head: this.head };
    const picked = this.group.pick(pc, Date.now(), this.tried);
    if (picked === null) return this.fail(new WspliceError('WSPLICE_UPSTREAM_FULL', 'no backend available (all down, unhealthy or at max_conns)'));
    const b = (this.backend = picked);
    this.extra = this.group.stickyHeader(b, pc);
    this.tried.push(b);
    this.connected = false;
    const o = this.plan.options;
    const proto = (this.req.socket as { encrypted?: boolean }).encrypted === true ? 'https' : o.proto;
    const head = forwardRequestHead(this.head, this.info, this.route.forward, {
      remoteAddress: this.remoteAddress, proto, fallbackHost: b.address.kind === 'unix' ? 'localhost' : b.label, target: this.target,
    });
    const tls = this.ctx.upstreamTls.get(this.group.name);
    const a = b.address;
    const target = a.kind === 'unix' ? { path: a.path } : { host: a.host, port: a.port };
    const up = http.request({
      method: this.head.method,
      path: this.target,
      headers: headerPairs(head),
      createConnection: () => (tls !== undefined ? tls.connect(target, b.label, null) : net.connect({ ...target, noDelay: true })) as Socket,
    });
    this.up = up;
    this.arm(this.route.timeouts.connectMs, 'WSPLICE_UPSTREAM_TIMEOUT', 'connect timed out');
    up.on('socket', (s: Socket) => s.once(tls !== undefined ? 'secureConnect' : 'connect', () => this.onConnected()));
    up.on('response', (r: IncomingMessage) => this.onResponse(r));
    up.on('error', (err: Error & { code?: string }) => this.onUpstreamError(up, err));
    if (this.info.hasBody) {
      this.req.pipe(up);
      this.req.once('data', () => (this.bodySent = true));
    } else up.end();
  }

  private onConnected(): void {
    this.connected = true;
    if (!this.info.hasBody || this.req.readableEnded) return this.awaitHead();
    // While the body goes up, the limit is the time between two of its chunks (nginx
    // proxy_send_timeout: an upstream that stops reading stops the pipe); the response head's
    // limit runs once it is all sent.
    this.arm(this.route.timeouts.sendMs, 'WSPLICE_UPSTREAM_TIMEOUT', 'sending the request body timed out (the upstream stopped reading)');
    if (this.sending) return; // a retry's connection: the listeners are on
    this.sending = true;
    this.req.on('data', this.onBodyChunk);
    this.req.once('end', () => {
      this.req.off('data', this.onBodyChunk);
      if (!this.done && !this.res.headersSent && this.connected) this.awaitHead();
    });
  }

  private readonly onBodyChunk = (): void => {
    this.timer?.refresh();
  };

  private awaitHead(): void {
    this.arm(this.route.timeouts.responseMs, 'WSPLICE_UPSTREAM_TIMEOUT', 'response head timed out');
  }

  private onResponse(r: IncomingMessage): void {
    this.clearTimer();
    this.group.succeed(this.backend!);
    const res = this.res;
    r.on('error', () => res.destroy());
    res.writeHead(r.statusCode ?? 502, r.statusMessage, responseHeaders(r, this.extra));
    // A stalled body: the client is cut off, as a listener resets it.
    r.socket.setTimeout(this.route.timeouts.responseMs, () => {
      r.destroy();
      res.destroy();
    });
    r.pipe(res);
    res.once('finish', () => this.settle(null, { status: r.statusCode ?? 0, backend: this.backend!.label }));
    r.once('aborted', () => res.destroy());
  }

  private onUpstreamError(up: http.ClientRequest, err: Error & { code?: string }): void {
    if (up !== this.up || this.done) return;
    const why = err.code ?? err.message;
    if (this.res.headersSent) {
      this.res.destroy(); // mid-body: no clean answer is possible
      this.settle(new UpstreamError('WSPLICE_UPSTREAM_ABORTED', this.backend!.label, `upstream error: ${why}`));
      return;
    }
    const connecting = !this.connected;
    this.upstreamFailed(connecting ? 'WSPLICE_UPSTREAM_CONNECT' : 'WSPLICE_UPSTREAM_CLOSED', connecting ? `connect failed: ${why}` : `upstream error: ${why}`, connecting);
  }

  /** A backend failed before a response: another try when the group's retry policy allows it, else the answer. */
  private upstreamFailed(code: ErrorCode, reason: string, connecting: boolean): void {
    this.clearTimer();
    const b = this.backend!;
    this.group.fail(b);
    const err = new UpstreamError(code, b.label, reason);
    this.ctx.upstreamFailed(this, err);
    const up = this.up!;
    this.up = null;
    up.destroy();
    const cause = causeOf(code);
    if (cause !== null && this.mayRetry(cause, connecting)) {
      this.tries++;
      this.connect();
      return;
    }
    this.fail(err);
  }

  /**
   * As a listener decides it (upstream/retry.ts): never once the response
   * started; within the group's tries and timeout; a connect that failed sent
   * nothing, a request that was sent goes again only when idempotent (or with
   * non_idempotent), and never once a body byte was read for it.
   */
  private mayRetry(cause: RetryCause, connecting: boolean): boolean {
    const p = this.route.retry;
    if (this.res.headersSent || this.bodySent || !withinPolicy(p, cause, this.tries, this.group.backends.length, this.startedAt, Date.now())) return false;
    return connecting || IDEMPOTENT.has(this.head.method) || p.nonIdempotent;
  }

  private arm(ms: number, code: ErrorCode, reason: string): void {
    this.clearTimer();
    if (ms > 0) this.timer = setTimeout(() => this.upstreamFailed(code, reason, !this.connected), ms);
  }

  private clearTimer(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }

  private onClientGone(): void {
    if (this.done) return;
    this.clearTimer();
    this.up?.destroy();
    this.settle(new WspliceError('WSPLICE_CLIENT_GONE', 'the client left before the response was complete'));
  }

  /** Refused or failed: the listener's answer (or the callback's turn), then settle. */
  private fail(err: WspliceError): void {
    const row: ErrorRow = ERRORS[err.code];
    if (row.event === 'refused') this.ctx.refused(this, err);
    if (this.answer && !this.res.headersSent && err.status > 0) this.writeAnswer(err.status, row.text ?? err.message, err.code);
    else if (this.answer && !this.res.headersSent) this.res.destroy();
    this.settle(err);
  }

  /** The proxy's own answer, as errorResponse words it; the connection closes after it. */
  private writeAnswer(status: number, reason: string, code?: ErrorCode, location?: string): void {
    const text = `${status} ${http.STATUS_CODES[status] ?? 'Error'}: ${reason.replace(/[^\x20-\x7e]/g, '?')}\n`;
    const headers: Record<string, string> = { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': String(text.length), Connection: 'close' };
    // The error row's own headers (Retry-After on a 503, Sec-WebSocket-Version on a 426), as a listener sends them.
    for (const [name, value] of headerLines(code === undefined ? '' : ERRORS[code].headers)) headers[name] = value;
    if (location !== undefined) headers.Location = location;
    this.res.writeHead(status, headers);
    this.res.end(text);
  }

  /** Every pick is matched by one release (the group counts open exchanges for least_conn and max_conns). */
  private releaseBackend(): void {
    if (this.backend !== null) this.group.release(this.backend);
    this.backend = null;
  }

  private settle(err: Error | null, result?: WebResult): void {
    if (this.done) return;
    this.done = true;
    this.releaseBackend();
    this.clearTimer();
    this.res.removeListener('close', this.onClientGone);
    if (err !== null) this.reject(err);
    else this.resolve(result!);
  }
}
