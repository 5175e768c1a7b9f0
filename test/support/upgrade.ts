/**
 * For the SIGUSR2 upgrade tests: the descriptors another process holds (/proc/PID/fd), the pid
 * file, a connect loop that counts refusals, and a teardown that reaches the new process (a child
 * of the old one, in its process group, outliving it).
 */
import http from 'node:http';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { delay } from './wait.js';

/** The socket inodes `pid` holds (socket:[N] links of /proc/PID/fd); empty once it is gone. */
export function socketInodes(pid: number): Set<string> {
  const out = new Set<string>();
  let names: string[];
  try {
    names = readdirSync(`/proc/${pid}/fd`);
  } catch {
    return out;
  }
  for (const n of names) {
    try {
      const l = readlinkSync(`/proc/${pid}/fd/${n}`);
      if (l.startsWith('socket:')) out.add(l);
    } catch {
      // closed meanwhile
    }
  }
  return out;
}

/** The pid a pid file names, or 0 (missing, unreadable). */
export function pidIn(file: string): number {
  try {
    return (JSON.parse(readFileSync(file, 'utf8')) as { pid: number }).pid;
  } catch {
    return 0;
  }
}

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** SIGTERM to the group of `leader` (the old process and the new ones it started), SIGKILL after `ms`. */
export async function stopGroup(leader: number, pids: () => number[], ms = 3000): Promise<void> {
  const signal = (s: NodeJS.Signals): void => {
    for (const p of [-leader, ...pids()]) {
      try {
        process.kill(p, s);
      } catch {
        // gone
      }
    }
  };
  signal('SIGTERM');
  const end = Date.now() + ms;
  while (pids().some(alive) && Date.now() < end) await delay(20);
  signal('SIGKILL');
}

export interface ConnectLoop {
  /** Requests answered (any status) and those that failed, with why. */
  answered: number;
  failures: string[];
  stop(): Promise<void>;
}

/** One request after the other (a fresh connection each) to 127.0.0.1:`port`, until stop() or `max`. */
export function connectLoop(port: number, max = 5000): ConnectLoop {
  const loop: ConnectLoop = { answered: 0, failures: [], stop: async () => {} };
  let running = true;
  const done = (async () => {
    for (let i = 0; running && i < max; i++) {
      await new Promise<void>((resolve) => {
        const req = http.get({ host: '127.0.0.1', port, path: `/loop${i}`, agent: false, headers: { connection: 'close' } }, (res) => {
          res.resume();
          res.on('end', () => (loop.answered++, resolve()));
          res.on('error', (e) => (loop.failures.push(`response ${i}: ${e.message}`), resolve()));
        });
        req.setTimeout(5000, () => req.destroy(new Error('no answer in 5 s')));
        req.on('error', (e) => (loop.failures.push(`request ${i}: ${(e as NodeJS.ErrnoException).code ?? e.message}`), resolve()));
      });
    }
  })();
  loop.stop = async () => {
    running = false;
    await done;
  };
  return loop;
}
