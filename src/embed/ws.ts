/**
 * `proxy.ws(req, socket, head)`: an upgrade that an app's http.Server already
 * parsed, handed to wsplice. The head is written back as the bytes it was
 * (method, target, version, rawHeaders) and put in front of `head` on the
 * socket, and a client connection takes the socket as a listener would: the
 * same llhttp parse, Host and framing rules, handshake guards, routing, early
 * data hold, 101 validation, refusals and relays (splice for plain TCP). The
 * connection serves this one exchange only: bytes behind it are never read as
 * another request, whatever route or target the app chose.
 */
import type { IncomingMessage } from 'node:http';
import { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { Connection } from '../connection.js';
import type { ProxyContext } from '../context.js';
import { UpstreamError, WspliceError } from '../errors.js';
import type { RelayKind } from '../relay/types.js';
import type { EmbedHost } from './host.js';
import { planRoutes, type EmbedPlan, type EmbedOptions } from './target.js';

export interface WsResult {
  /** The tunnel opened (false: the upstream answered without switching; its answer was relayed). */
  upgraded: boolean;
  /** The relay carrying the tunnel. */
  relay: RelayKind | null;
}

/** Sockets already handed to `proxy.ws`: a second call must not touch them. */
const handed = new WeakSet<Socket>();

/** Settles once: the tunnel opened, or the connection is over (with the last failure, if any). */
class Outcome {
  private done = false;
  private last: WspliceError | null = null;
  constructor(
    private readonly socket: Socket,
    private readonly resolve: (r: WsResult) => void,
    private readonly reject: (e: Error) => void,
  ) {}
  opened(relay: RelayKind): void {
    if (this.done) return;
    this.done = true;
    this.resolve({ upgraded: true, relay });
  }
  failed(err: WspliceError, final: boolean): void {
    this.last = err;
    if (final) this.closed();
  }
  closed(): void {
    if (this.done) return;
    this.done = true;
    if (this.last !== null) this.reject(this.last);
    else if (this.socket.bytesWritten === 0) this.reject(new WspliceError('WSPLICE_CLIENT_GONE', 'the client left before its upgrade completed'));
    else this.resolve({ upgraded: false, relay: null });
  }
}

/** `socket` is typed as Node types the upgrade event's (a Duplex); it is a net.Socket (or TLSSocket) at run time. */
export function proxyUpgrade(host: EmbedHost, req: IncomingMessage, duplex: Duplex, head: Buffer | undefined, options: EmbedOptions | undefined): Promise<WsResult> {
  return new Promise<WsResult>((resolve, reject) => {
    const misuse = checkArgs(req, duplex, head);
    if (misuse !== null) {
      reject(misuse);
      return;
    }
    const socket = duplex as Socket;
    handed.add(socket);
    let plan: EmbedPlan;
    try {
      plan = host.targets.plan(options);
    } catch (err) {
      socket.destroy();
      reject(err as Error);
      return;
    }
    if (!host.accepting()) {
      socket.destroy();
      reject(new WspliceError('WSPLICE_OVERLOADED', 'the proxy is closing or at limits.maxConnections'));
      return;
    }
    const out = new Outcome(socket, resolve, reject);
    try {
      socket.unshift(head === undefined || head.length === 0 ? rawHead(req) : Buffer.concat([rawHead(req), head]));
      host.adopt(new Connection(callContext(host.ctx, plan, out), socket));
      socket.resume();
    } catch (err) {
      socket.destroy();
      out.failed(new WspliceError('WSPLICE_EMBED_MISUSE', (err as Error).message), true);
    }
  });
}

/** Why these arguments cannot be taken (the socket is left alone), or null. */
function checkArgs(req: IncomingMessage, socket: Duplex, head: Buffer | undefined): WspliceError | null {
  const misuse = (why: string): WspliceError => new WspliceError('WSPLICE_EMBED_MISUSE', why);
  if (!(socket instanceof Socket)) return misuse('proxy.ws needs the socket of the upgrade event (a net.Socket)');
  if (handed.has(socket)) return misuse('proxy.ws was already called on this socket');
  if (req === null || typeof req !== 'object' || !Array.isArray(req.rawHeaders)) return misuse('proxy.ws needs the IncomingMessage of the upgrade event');
  if ((req as { upgrade?: boolean }).upgrade !== true) return misuse('not an upgrade request (req.upgrade is false): proxy plain requests with proxy.web');
  if (head !== undefined && !Buffer.isBuffer(head)) return misuse('head must be the Buffer of the upgrade event');
  if (socket.destroyed || socket.readableEnded) return misuse('the socket is already closed');
  return null;
}

/** The request head as the client sent it, rebuilt from what Node parsed (header values are latin1 in Node). */
function rawHead(req: IncomingMessage): Buffer {
  let s = `${req.method} ${req.url} HTTP/${req.httpVersion}\r\n`;
  const raw = req.rawHeaders;
  for (let i = 0; i + 1 < raw.length; i += 2) s += `${raw[i]}: ${raw[i + 1]}\r\n`;
  return Buffer.from(s + '\r\n', 'latin1');
}

/**
 * The proxy's context for one handed socket: its plan's options and route, and
 * reporters that also settle the call. `draining` is always true: to this
 * connection the proxy is closing, so it ends after its one exchange.
 */
function callContext(base: ProxyContext, plan: EmbedPlan, out: Outcome): ProxyContext {
  return {
    ...base,
    options: plan.options,
    router: planRoutes(base.router, plan),
    draining: true,
    tunnelOpened(c, backend, relay) {
      base.tunnelOpened(c, backend, relay);
      out.opened(relay);
    },
    refused(c, err) {
      base.refused(c, err);
      out.failed(err, false);
    },
    upstreamFailed(c, err: UpstreamError) {
      base.upstreamFailed(c, err);
      out.failed(err, false); // a retry may follow: settled when the connection ends
    },
    connectionClosed(c) {
      base.connectionClosed(c);
      out.closed();
    },
  };
}
