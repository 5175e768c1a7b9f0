/** Descriptor counting from /proc/self/fd (Linux), to prove a test leaked no socket or pipe. */
import { readdirSync, readlinkSync } from 'node:fs';

export interface FdCounts {
  total: number;
  sockets: number;
  pipes: number;
}

/** Open descriptors of this process, by kind. */
export function openFds(): FdCounts {
  const c: FdCounts = { total: 0, sockets: 0, pipes: 0 };
  for (const name of readdirSync('/proc/self/fd')) {
    let target: string;
    try {
      target = readlinkSync(`/proc/self/fd/${name}`);
    } catch {
      continue; // the descriptor readdir itself held, already closed
    }
    c.total++;
    if (target.startsWith('socket:')) c.sockets++;
    else if (target.startsWith('pipe:')) c.pipes++;
  }
  return c;
}

/** Open descriptors of this process (all kinds). */
export function fdCount(): number {
  return openFds().total;
}
