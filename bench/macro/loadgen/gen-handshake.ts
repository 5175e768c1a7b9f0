// Handshake rate: C workers each loop connect -> upgrade -> close frame -> wait for the server's
// close frame and FIN. The server side closes first, so TIME_WAIT never eats the generator's ports.
import type { Socket } from 'node:net';
import { type Control, MAX_OPS, sleep } from './control.js';
import type { HandshakeJob, JobResult } from './protocol.js';
import { LatencyRecorder } from '../common/stats.js';
import { buildCloseFrame } from '../common/ws-frames.js';
import { openTunnel } from './ws-client.js';

const CLOSE_FRAME = buildCloseFrame(Buffer.from([0x11, 0x22, 0x33, 0x44]));
const CLOSE_TIMEOUT_MS = 10_000;

/** Sends our close frame and resolves when the server has echoed one and closed the connection. */
function closeTunnel(socket: Socket, rest: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    let sawClose = rest.length > 0 && (rest[0]! & 0x0f) === 0x8;
    socket.setTimeout(CLOSE_TIMEOUT_MS, () => {
      socket.destroy();
      reject(new Error('close: timed out'));
    });
    socket.on('data', (c: Buffer) => {
      // The server's close frame is the only frame it sends here: 0x88 first.
      if (!sawClose && (c[0]! & 0x0f) === 0x8) sawClose = true;
    });
    socket.on('error', (e: Error) => reject(new Error(`close: ${e.message}`)));
    socket.on('close', () => (sawClose ? resolve() : reject(new Error('close: no close frame from server'))));
    socket.write(CLOSE_FRAME);
  });
}

export async function runHandshake(job: HandshakeJob, ctl: Control): Promise<JobResult> {
  const lat = new LatencyRecorder();
  let running = true;
  let measuring = false;
  let count = 0;
  let errors = 0;
  let firstError: string | null = null;

  let total = 0;
  const worker = async (): Promise<void> => {
    while (running && total++ < MAX_OPS) {
      const t0 = performance.now();
      try {
        const { socket, rest } = await openTunnel(job.port, job.tls === true);
        const t1 = performance.now();
        await closeTunnel(socket, rest);
        if (measuring) {
          count++;
          lat.record(t1 - t0);
        }
      } catch (e) {
        errors++;
        firstError ??= (e as Error).message;
        if (errors > 100) running = false; // a broken peer: stop early, the result says why
        else await sleep(10);
      }
    }
  };
  const workers = Array.from({ length: job.concurrency }, worker);
  await sleep(job.warmupMs);
  await ctl.mark('start');
  measuring = true;
  const t0 = performance.now();
  await sleep(job.durationMs);
  measuring = false;
  const seconds = (performance.now() - t0) / 1000;
  await ctl.mark('end');
  running = false;
  await Promise.all(workers);
  const [p50, p99] = lat.percentilesUs([50, 99]);
  return {
    kind: 'handshake', count, seconds, rate: count / seconds, bytes: 0,
    p50Us: p50!, p99Us: p99!, checksumOk: errors === 0, errors, firstError,
  };
}
