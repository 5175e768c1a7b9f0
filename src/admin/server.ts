/**
 * The admin listener (off unless configured): GET /metrics (Prometheus text),
 * /healthz (the process serves), /readyz (200 while accepting, 503 before
 * listening or while draining) and /status (JSON). Loopback by default: a bare
 * port binds 127.0.0.1; another address only when configured so.
 */
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { serverFdOf } from '../relay/handover.js';

/** What the admin listener asks of the process it reports on (one proxy, or a primary with workers). */
export interface AdminSource {
  metrics(): Promise<{ contentType: string; body: string }>;
  ready(): boolean;
  status(): Promise<unknown> | unknown;
}

export interface AdminTarget {
  host?: string;
  port?: number;
  path?: string;
  /** An already listening socket (an upgrade's hand-over gives the old process's). */
  fd?: number;
}

/** `PORT`, `HOST:PORT`, `[v6]:PORT` or `unix:/path`; a bare port is 127.0.0.1. */
export function parseAdminListen(s: string): AdminTarget {
  if (s.startsWith('unix:') && s.length > 5) return { path: s.slice(5) };
  const m = /^(?:(?:\[([0-9A-Fa-f:.]+)\]|([^:[\]\s]+)):)?(\d{1,5})$/.exec(s);
  const port = m === null ? NaN : Number(m[3]);
  if (m === null || port > 65535) throw new Error(`admin listen: expects PORT, HOST:PORT, [v6]:PORT or unix:/path, got "${s}"`);
  return { host: m[1] ?? m[2] ?? '127.0.0.1', port };
}

export class AdminServer {
  private readonly server: http.Server;
  private readonly source: AdminSource;

  constructor(source: AdminSource) {
    this.source = source;
    this.server = http.createServer((req, res) => void this.handle(req, res));
    this.server.keepAliveTimeout = 5_000;
    this.server.headersTimeout = 10_000;
  }

  /** Listen; rejects with a message that names the address (e.g. in use). */
  listen(target: AdminTarget | string): Promise<AddressInfo | string> {
    const t = typeof target === 'string' ? parseAdminListen(target) : target;
    const where = t.fd !== undefined ? `fd ${t.fd}` : t.path !== undefined ? `unix:${t.path}` : `${t.host ?? '127.0.0.1'}:${t.port ?? 0}`;
    return new Promise((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException): void => {
        const why = err.code === 'EADDRINUSE' ? 'address already in use' : err.code === 'EACCES' ? 'permission denied' : err.message;
        reject(new Error(`admin listener ${where}: ${why}${err.code !== undefined ? ` (${err.code})` : ''}`));
      };
      this.server.once('error', onError);
      const done = (): void => {
        this.server.removeListener('error', onError);
        resolve(this.server.address() as AddressInfo | string);
      };
      if (t.fd !== undefined) this.server.listen({ fd: t.fd }, done);
      else if (t.path !== undefined) this.server.listen(t.path, done);
      else this.server.listen(t.port ?? 0, t.host ?? '127.0.0.1', done);
    });
  }

  address(): AddressInfo | string | null {
    return this.server.address();
  }

  /** The listening socket's fd (-1 when not listening): an upgrade gives it to the new process. */
  fd(): number {
    return serverFdOf(this.server);
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((r) => this.server.close(() => r()));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(res, 405, 'text/plain', 'method not allowed\n', { Allow: 'GET, HEAD' });
    try {
      switch (path) {
        case '/metrics': {
          const m = await this.source.metrics();
          return send(res, 200, m.contentType, m.body);
        }
        case '/healthz':
          return send(res, 200, 'text/plain', 'ok\n');
        case '/readyz':
          return this.source.ready() ? send(res, 200, 'text/plain', 'ready\n') : send(res, 503, 'text/plain', 'not ready\n');
        case '/status':
          return send(res, 200, 'application/json', JSON.stringify(await this.source.status(), null, 2) + '\n');
        default:
          return send(res, 404, 'text/plain', 'not found (try /metrics, /healthz, /readyz, /status)\n');
      }
    } catch (err) {
      return send(res, 500, 'text/plain', `${(err as Error).message}\n`);
    }
  }
}

function send(res: ServerResponse, status: number, type: string, body: string, extra: Record<string, string> = {}): void {
  res.writeHead(status, { 'Content-Type': type, 'Content-Length': Buffer.byteLength(body), 'Cache-Control': 'no-store', ...extra });
  res.end(res.req.method === 'HEAD' ? undefined : body);
}
