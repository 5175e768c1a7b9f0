/**
 * Settings of the running service rather than of the proxy: the admin listener and the logs.
 * They come from flags or from the config file's top level (taken out of the proxy options
 * there), and are started and stopped by main.ts around the proxy.
 */
import type { Level } from 'pino';
import type { Issues } from '../config/issues.js';
import type { WspliceProxy } from '../server.js';
import { AccessLog } from '../logging/access.js';
import { ErrorLog, LOG_LEVELS } from '../logging/errors.js';
import { parseWorkers } from './workers.js';

export interface ServiceSettings {
  /** Where the admin listener serves (null: off). */
  admin: string | null;
  /** `stdout`, `stderr`, `off` or a file (default off: as HAProxy, no line per request unless asked). */
  accessLog: string;
  /** Same targets (default stderr). */
  errorLog: string;
  logLevel: Level;
  /** Worker processes sharing the listeners (1: no cluster, the proxy runs in this process). */
  workers: number;
}

export const DEFAULT_SERVICE: ServiceSettings = { admin: null, accessLog: 'off', errorLog: 'stderr', logLevel: 'info', workers: 1 };

/** The file's service keys (`admin: {listen}`, `accessLog`, `errorLog`, `logLevel`, `workers`), deleted from `opts`. */
export function takeService(opts: Record<string, unknown>, is: Issues): Partial<ServiceSettings> {
  const out: Partial<ServiceSettings> = {};
  const a = opts.admin;
  if (a !== undefined) {
    const listen = typeof a === 'object' && a !== null ? (a as Record<string, unknown>).listen : undefined;
    if (typeof listen === 'string' || typeof listen === 'number') out.admin = String(listen);
    else is.error('admin', 'must be {"listen": "HOST:PORT"} (a bare port binds 127.0.0.1)');
  }
  for (const key of ['accessLog', 'errorLog'] as const) {
    const v = opts[key];
    if (v === undefined) continue;
    if (typeof v === 'string' && v !== '') out[key] = v;
    else is.error(key, 'must be "stdout", "stderr", "off" or a file path');
  }
  if (opts.logLevel !== undefined) {
    const level = checkLevel(opts.logLevel, 'logLevel', is);
    if (level !== null) out.logLevel = level;
  }
  if (opts.workers !== undefined) {
    const n = parseWorkers(opts.workers, 'workers', is);
    if (n !== null) out.workers = n;
  }
  delete opts.workers;
  delete opts.admin;
  delete opts.accessLog;
  delete opts.errorLog;
  delete opts.logLevel;
  return out;
}

export function checkLevel(v: unknown, field: string, is: Issues): Level | null {
  if (typeof v === 'string' && (LOG_LEVELS as readonly string[]).includes(v)) return v as Level;
  is.error(field, `must be one of ${LOG_LEVELS.join(', ')}`);
  return null;
}

export interface Logs {
  access: AccessLog;
  error: ErrorLog;
  reopen(): void;
  close(): Promise<void>;
}

/** Start both logs on `proxy`; a log that cannot be written is reported once on stderr, and serving goes on. */
export function startLogs(proxy: WspliceProxy, s: ServiceSettings, say: (line: string) => void): Logs {
  const error = new ErrorLog(s.errorLog, s.logLevel, say);
  error.watch(proxy);
  const access = new AccessLog(proxy, s.accessLog, (m) => {
    say(m);
    error.warn({ code: 'WSPLICE_LOG' }, m);
  });
  return {
    access,
    error,
    reopen: () => {
      access.reopen();
      error.reopen();
    },
    close: async () => {
      await access.close();
      await error.close();
    },
  };
}
