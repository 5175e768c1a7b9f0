/**
 * One request and its response: what was asked, where it goes, and how far it
 * got. Made once per request head; the connection keeps it until the response
 * is complete (a tunnel keeps nothing of it).
 */
import type { RequestHead } from './http1/head.js';
import type { RequestInfo } from './http1/semantics.js';
import type { Backend, UpstreamGroup } from './upstream/group.js';
import type { ClientHandshake } from './websocket/handshake.js';

/** Methods a retry may run twice (RFC 9110 9.2.2). */
const IDEMPOTENT: ReadonlySet<string> = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);

export class Exchange {
  readonly req: RequestHead;
  readonly info: RequestInfo;
  /** The client's WebSocket handshake (kind 'websocket'), to check the 101 against. */
  readonly handshake: ClientHandshake | null;
  readonly group: UpstreamGroup;
  readonly remoteAddress: string;
  /** The backend of the current try. */
  backend: Backend | null = null;
  /** Backends tried so far. */
  tries = 0;
  /** The whole request (head and body) has been read from the client. */
  bodyDone: boolean;
  /** Some body bytes went to a backend: a retry could not resend them. */
  bodySent = false;
  /** Keep the client connection after this exchange. */
  keepAlive: boolean;
  /** Header lines (`Name: value\r\n`) added to the forwarded response head, e.g. a sticky cookie. */
  responseHeaders = '';

  constructor(req: RequestHead, info: RequestInfo, handshake: ClientHandshake | null, group: UpstreamGroup, remoteAddress: string, draining: boolean) {
    this.req = req;
    this.info = info;
    this.handshake = handshake;
    this.group = group;
    this.remoteAddress = remoteAddress;
    this.bodyDone = info.kind !== 'plain' || !info.hasBody;
    this.keepAlive = info.keepAlive && info.kind === 'plain' && !draining;
  }

  get upgrade(): boolean {
    return this.info.kind !== 'plain';
  }

  /** Running it again on another backend is safe: an upgrade, or an idempotent request whose body was not sent. */
  get replayable(): boolean {
    return this.upgrade || (IDEMPOTENT.has(this.req.method) && !this.bodySent);
  }
}
