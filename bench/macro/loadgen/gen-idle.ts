// Idle tunnels: open N tunnels (each exchanges one 64-byte echo so the proxy's relay path is live),
// hold them while the runner reads the proxy's RSS and idle CPU, then drop them.
import type { Socket } from 'node:net';
import { type Control, frameRing } from './control.js';
import type { IdleJob, JobResult } from './protocol.js';
import { headerLength } from '../common/ws-frames.js';
import { type OpenTunnel, openTunnels } from './ws-client.js';

const SIZE = 64;
const ring = frameRing(SIZE);
const ECHO_LEN = headerLength(SIZE, false) + SIZE;

function echoOnce(t: OpenTunnel): Promise<void> {
  return new Promise((resolve, reject) => {
    let got = t.rest.length;
    const socket: Socket = t.socket;
    const onData = (c: Buffer): void => {
      got += c.length;
      if (got >= ECHO_LEN) done(null);
    };
    const onError = (e: Error): void => done(e);
    const onClose = (): void => done(new Error('idle: tunnel closed before its echo'));
    const done = (e: Error | null): void => {
      socket.removeListener('data', onData);
      socket.removeListener('error', onError);
      socket.removeListener('close', onClose);
      if (e) reject(e);
      else resolve();
    };
    socket.on('data', onData);
    socket.on('error', onError);
    socket.on('close', onClose);
    socket.write(ring.frames[0]!);
  });
}

async function openAndEcho(port: number, n: number): Promise<OpenTunnel[]> {
  const tunnels = await openTunnels(port, n, 64);
  try {
    for (let i = 0; i < tunnels.length; i += 256) await Promise.all(tunnels.slice(i, i + 256).map(echoOnce));
  } catch (e) {
    for (const t of tunnels) t.socket.destroy();
    throw e;
  }
  // Idle from here on; an error on an idle tunnel counts.
  for (const t of tunnels) t.socket.on('error', () => {});
  return tunnels;
}

export async function runIdle(job: IdleJob, ctl: Control): Promise<JobResult> {
  if (job.warmTunnels > 0) {
    for (const t of await openAndEcho(job.port, job.warmTunnels)) t.socket.destroy();
  }
  await ctl.mark('baseline');
  const t0 = performance.now();
  const tunnels = await openAndEcho(job.port, job.tunnels);
  const seconds = (performance.now() - t0) / 1000;
  await ctl.mark('idle-ready');
  const alive = tunnels.filter((t) => !t.socket.destroyed && t.socket.readyState === 'open').length;
  for (const t of tunnels) t.socket.destroy();
  const errors = tunnels.length - alive;
  return {
    kind: 'idle', count: tunnels.length, seconds, rate: tunnels.length / seconds, bytes: 0,
    p50Us: NaN, p99Us: NaN, checksumOk: errors === 0, errors,
    firstError: errors ? `${errors} idle tunnels were closed while idle` : null,
  };
}
