// CPU time and RSS of a process and its descendants, from /proc (nginx: master + workers).
import { readFileSync, readdirSync } from 'node:fs';

const CLK_TCK = 100; // USER_HZ: 100 on Linux x86_64/arm64 (getconf CLK_TCK)

interface Stat {
  /** The command name (a thread's name for /proc/PID/task/TID/stat). */
  name: string;
  ppid: number;
  user: number;
  system: number;
  cpuSeconds: number;
}

function readStat(pid: number, path = `/proc/${pid}/stat`): Stat | null {
  try {
    const s = readFileSync(path, 'latin1');
    // Fields after the command name, which may contain spaces: split after the last ')'.
    const end = s.lastIndexOf(')');
    const f = s.slice(end + 2).split(' ');
    // f[0] is field 3 (state): ppid is field 4, utime 14, stime 15.
    const user = Number(f[11]) / CLK_TCK;
    const system = Number(f[12]) / CLK_TCK;
    return { name: s.slice(s.indexOf('(') + 1, end), ppid: Number(f[1]), user, system, cpuSeconds: user + system };
  } catch {
    return null; // gone
  }
}

/** User and system CPU seconds of each thread of `pid` by name, threads of one name added up; the thread that is the process is 'main'. */
export function threadTimes(pid: number): Map<string, { user: number; system: number }> {
  const out = new Map<string, { user: number; system: number }>();
  let tids: string[];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return out; // gone
  }
  for (const tid of tids) {
    const st = readStat(pid, `/proc/${pid}/task/${tid}/stat`);
    if (st === null) continue; // the thread ended
    const name = tid === String(pid) ? 'main' : st.name;
    const t = out.get(name) ?? { user: 0, system: 0 };
    t.user += st.user;
    t.system += st.system;
    out.set(name, t);
  }
  return out;
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
