// CPU time and RSS of a process and its descendants, from /proc (nginx: master + workers).
import { readFileSync, readdirSync } from 'node:fs';

const CLK_TCK = 100; // USER_HZ: 100 on Linux x86_64/arm64 (getconf CLK_TCK)

interface Stat {
  ppid: number;
  cpuSeconds: number;
}

function readStat(pid: number): Stat | null {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'latin1');
    // Fields after the command name, which may contain spaces: split after the last ')'.
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    // f[0] is field 3 (state): ppid is field 4, utime 14, stime 15.
    return { ppid: Number(f[1]), cpuSeconds: (Number(f[11]) + Number(f[12])) / CLK_TCK };
  } catch {
    return null; // gone
  }
}

/** `pid` and all its descendants that are alive now. */
export function processTree(pid: number): number[] {
  if (readStat(pid) === null) return []; // gone (or never started)
  const children = new Map<number, number[]>();
  for (const name of readdirSync('/proc')) {
    const p = Number(name);
    if (!Number.isInteger(p)) continue;
    const st = readStat(p);
    if (!st) continue;
    const list = children.get(st.ppid);
    if (list) list.push(p);
    else children.set(st.ppid, [p]);
  }
  const out: number[] = [];
  const todo = [pid];
  while (todo.length > 0) {
    const p = todo.pop()!;
    out.push(p);
    todo.push(...(children.get(p) ?? []));
  }
  return out;
}

/** utime + stime in seconds, summed over `pids`. */
export function cpuSeconds(pids: readonly number[]): number {
  let total = 0;
  for (const p of pids) total += readStat(p)?.cpuSeconds ?? 0;
  return total;
}

/** VmRSS in KiB, summed over `pids`. */
export function rssKiB(pids: readonly number[]): number {
  let total = 0;
  for (const p of pids) {
    try {
      const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${p}/status`, 'latin1'));
      if (m) total += Number(m[1]);
    } catch {
      // gone
    }
  }
  return total;
}

export interface MachineCpu {
  /** CPU seconds all cores spent in processes (user, nice, system): what process utime+stime can add up to. */
  busy: number;
  /** CPU seconds in irq + softirq (loopback TCP work lands here; no process is charged for it). */
  irq: number;
  /** CPU seconds stolen by the hypervisor. */
  steal: number;
}

/** Machine-wide CPU counters from /proc/stat: tells how much of a window other processes took. */
export function machineCpu(): MachineCpu {
  const line = readFileSync('/proc/stat', 'latin1').split('\n', 1)[0]!;
  // cpu user nice system idle iowait irq softirq steal ...
  const f = line.trim().split(/\s+/).slice(1).map(Number);
  const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0, steal = 0] = f;
  return { busy: (user + nice + system) / CLK_TCK, irq: (irq + softirq) / CLK_TCK, steal: steal / CLK_TCK };
}
