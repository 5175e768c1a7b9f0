/**
 * The default client connection limit, derived from the process's file
 * descriptor limit (RLIMIT_NOFILE) as nginx's worker_connections must fit in
 * it: past the fd limit accept() fails with EMFILE and every new connection,
 * client or upstream, fails with it. Node has no getrlimit binding, so the
 * soft limit is read from /proc/self/limits (Linux) or, elsewhere, from the
 * shell's `ulimit -n`.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

/** Descriptors kept for everything but connections: listeners, logs, the addon's pipes, the admin server, DNS. */
export const FD_RESERVE = 64;

/** The soft RLIMIT_NOFILE of this process; null when unlimited or unreadable. */
export function nofileLimit(): number | null {
  try {
    const m = /^Max open files\s+(\d+|unlimited)/m.exec(readFileSync('/proc/self/limits', 'latin1'));
    if (m !== null) return m[1] === 'unlimited' ? null : Number(m[1]);
  } catch {
    // not Linux: ask the shell
  }
  try {
    const out = execFileSync('/bin/sh', ['-c', 'ulimit -n'], { encoding: 'latin1', timeout: 2000 }).trim();
    return /^\d+$/.test(out) ? Number(out) : null;
  } catch {
    return null;
  }
}

export interface ConnectionBudget {
  /** Client connections open at once (0: no limit, the fd limit is unknown). */
  max: number;
  /** How it was derived, for --version and -T. */
  note: string;
}

/**
 * Each client connection may hold one upstream socket besides its own (a tunnel
 * or an exchange in progress), so it costs two descriptors; finished upstream
 * sockets waiting to close (`maxRetired`) and idle keep-alive connections
 * (`poolIdle`, summed over backends) are held on top, with FD_RESERVE for the rest.
 */
export function defaultMaxConnections(nofile: number | null, maxRetired: number, poolIdle: number): ConnectionBudget {
  if (nofile === null) return { max: 0, note: 'no limit (RLIMIT_NOFILE unlimited or unreadable)' };
  const free = nofile - FD_RESERVE - maxRetired - poolIdle;
  const max = Math.max(1, Math.floor(free / 2));
  return { max, note: `${max} = (RLIMIT_NOFILE ${nofile} - ${FD_RESERVE} reserved - ${maxRetired} retired - ${poolIdle} pooled) / 2 fds each` };
}

/**
 * `limits.maxConnections` as configured (0: derive it, -1: none) made the
 * number the listener enforces (0: none). `upstreams`: each group's backends
 * and keep-alive pool, whose idle connections hold fds too.
 */
export function connectionLimit(configured: number, maxRetired: number, upstreams: Iterable<{ backends: readonly unknown[]; keepalive: { idle: number } | null }>): number {
  if (configured === -1) return 0;
  if (configured > 0) return configured;
  let poolIdle = 0;
  for (const u of upstreams) poolIdle += (u.keepalive?.idle ?? 0) * u.backends.length;
  return defaultMaxConnections(nofileLimit(), maxRetired, poolIdle).max;
}
