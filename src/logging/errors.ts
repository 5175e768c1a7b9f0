/**
 * The error log: one JSON line per refusal, upstream failure and proxy
 * error, with level and time, the error code, the client and the route;
 * and the service's own messages (reloads, drain, workers).
 */
import { pino, type Level } from 'pino';
import type { WspliceProxy as Proxy, RefusedEvent, UpstreamErrorEvent } from '../server.js';
import { LogSink, type LogTarget } from './sink.js';

export const LOG_LEVELS: readonly Level[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace'];

export class ErrorLog {
  readonly sink: LogSink;
  private readonly detachers: Array<() => void> = [];

  constructor(target: LogTarget, level: Level, onProblem: (message: string) => void) {
    this.sink = new LogSink(
      target,
      { level, base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime, formatters: { level: (label) => ({ level: label }) } },
      onProblem,
    );
  }

  /** Log `proxy`'s refusals (info: the client's fault), upstream failures (warn) and errors (error). */
  watch(proxy: Proxy): void {
    const refused = (e: RefusedEvent): void => {
      this.sink.log?.info({ code: e.code, status: e.status, client: e.remoteAddress, client_port: e.remotePort, route: route(e), request_id: e.requestId }, e.reason);
    };
    const upstream = (e: UpstreamErrorEvent): void => {
      this.sink.log?.warn(
        { code: e.code, status: e.status, client: e.remoteAddress, client_port: e.remotePort, route: route(e), backend: e.backend, request_id: e.requestId },
        e.reason,
      );
    };
    const error = (err: Error): void => {
      this.sink.log?.error({ code: (err as NodeJS.ErrnoException).code ?? 'ERROR' }, err.message);
    };
    proxy.on('refused', refused);
    proxy.on('upstreamError', upstream);
    proxy.on('error', error);
    this.detachers.push(() => {
      proxy.removeListener('refused', refused);
      proxy.removeListener('upstreamError', upstream);
      proxy.removeListener('error', error);
    });
  }

  info(fields: Record<string, unknown>, message: string): void {
    this.sink.log?.info(fields, message);
  }

  warn(fields: Record<string, unknown>, message: string): void {
    this.sink.log?.warn(fields, message);
  }

  error(fields: Record<string, unknown>, message: string): void {
    this.sink.log?.error(fields, message);
  }

  reopen(): void {
    this.sink.reopen();
  }

  close(): Promise<void> {
    for (const d of this.detachers.splice(0)) d();
    return this.sink.close();
  }
}

function route(e: { method: string; host: string; path: string }): string {
  return `${e.method} ${e.host}${e.path}`;
}
