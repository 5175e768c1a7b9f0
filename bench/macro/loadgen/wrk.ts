// Plain HTTP keep-alive load with wrk (when installed): parses req/s, latency percentiles, errors.
import { execFile } from 'node:child_process';
import type { JobResult } from './protocol.js';

const UNIT_MS: Record<string, number> = { us: 0.001, ms: 1, s: 1000, m: 60_000 };

function latencyUs(out: string, pct: string): number {
  const m = new RegExp(`^\\s*${pct}%\\s+([\\d.]+)(us|ms|s|m)\\s*$`, 'm').exec(out);
  return m ? Number(m[1]) * UNIT_MS[m[2]!]! * 1000 : NaN;
}

export function runWrk(port: number, connections: number, seconds: number): Promise<JobResult> {
  const args = ['-t1', `-c${connections}`, `-d${seconds}s`, '--latency', `http://127.0.0.1:${port}/`];
  return new Promise((resolve, reject) => {
    execFile('wrk', args, { timeout: (seconds + 30) * 1000 }, (err, stdout) => {
      if (err) return reject(new Error(`wrk: ${err.message}`));
      const rps = /Requests\/sec:\s+([\d.]+)/.exec(stdout);
      const total = /(\d+) requests in ([\d.]+)(us|ms|s|m)/.exec(stdout);
      if (!rps || !total) return reject(new Error(`wrk: unexpected output: ${stdout.slice(0, 300)}`));
      const non2xx = Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(stdout)?.[1] ?? 0);
      const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(stdout);
      const sockErrors = sock ? sock.slice(1).reduce((a, b) => a + Number(b), 0) : 0;
      const errors = non2xx + sockErrors;
      resolve({
        kind: 'http', count: Number(total[1]), seconds: (Number(total[2]) * UNIT_MS[total[3]!]!) / 1000,
        rate: Number(rps[1]), bytes: 0, p50Us: latencyUs(stdout, '50'), p99Us: latencyUs(stdout, '99'),
        checksumOk: non2xx === 0, errors,
        firstError: errors ? `wrk: ${non2xx} non-2xx, socket errors ${sock?.[0] ?? ''}` : null,
      });
    });
  });
}
