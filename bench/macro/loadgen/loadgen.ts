// Load generator, its own process. Reads one JSON command per line on stdin (see protocol.ts),
// runs one job at a time, writes events and results as JSON lines on stdout.
import { createInterface } from 'node:readline';
import type { Control } from './control.js';
import { runHandshake } from './gen-handshake.js';
import { runHttp } from './gen-http.js';
import { runIdle } from './gen-idle.js';
import { runPingPong } from './gen-pingpong.js';
import { runStream } from './gen-stream.js';
import type { GenCommand, GenEvent, Job, JobResult } from './protocol.js';

const emit = (e: GenEvent): void => {
  process.stdout.write(`${JSON.stringify(e)}\n`);
};

let waiting: (() => void) | null = null;

const control: Control = {
  mark(phase) {
    return new Promise((resolve) => {
      waiting = resolve;
      emit({ event: 'mark', phase });
    });
  },
};

function run(job: Job): Promise<JobResult> {
  switch (job.kind) {
    case 'handshake': return runHandshake(job, control);
    case 'pingpong': return runPingPong(job, control);
    case 'stream': return runStream(job, control);
    case 'http': return runHttp(job, control);
    case 'idle': return runIdle(job, control);
  }
}

const rl = createInterface({ input: process.stdin });
rl.on('line', (line) => {
  const cmd = JSON.parse(line) as GenCommand;
  if (cmd.cmd === 'continue') {
    const w = waiting;
    waiting = null;
    w?.();
  } else if (cmd.cmd === 'job') {
    run(cmd.job).then(
      (result) => emit({ event: 'result', result }),
      (e: unknown) => emit({ event: 'error', message: e instanceof Error ? e.message : String(e) }),
    );
  } else {
    process.exit(0);
  }
});
// The runner owns this process: when its pipe closes, stop.
rl.on('close', () => process.exit(0));
