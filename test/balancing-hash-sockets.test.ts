// hash KEY consistent over real sockets: 10,000 keys (each a real request through the proxy, on
// keep-alive connections both sides) placed over 5 backends, then over the same backends less one.
// About 1/5 of the keys move, and only the removed backend's.
import http from 'node:http';
import t from 'tap';
import type { UpstreamConfig } from '../src/index.js';
import { namedBackend, tally } from './support/named-backends.js';
import { port, startProxy } from './support/index.js';

const KEYS = 10_000;
const PARALLEL = 16;

/** The backend name answering `/?k=key-i` for every key, PARALLEL requests at a time on kept-alive connections. */
async function placement(p: number): Promise<string[]> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: PARALLEL });
  const out: string[] = new Array<string>(KEYS);
  let next = 0;
  const one = (i: number): Promise<void> => new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port: p, path: `/?k=key-${i}`, agent }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => { out[i] = body; resolve(); });
    });
    req.on('error', reject);
    req.setTimeout(10_000, () => req.destroy(new Error('request timed out')));
  });
  const worker = async (): Promise<void> => { while (next < KEYS) await one(next++); };
  await Promise.all(Array.from({ length: PARALLEL }, worker));
  agent.destroy();
  return out;
}

t.test('hash $arg_k consistent over real sockets: removing one of 5 backends moves about 1/5 of 10,000 keys, only its own', async (t) => {
  const list = await Promise.all(['A', 'B', 'C', 'D', 'E'].map((n) => namedBackend(n)));
  t.teardown(async () => { for (const b of list) await b.close(); });
  const upstream = (names: string[]): UpstreamConfig => ({
    balance: { method: 'hash', key: '$arg_k', consistent: true },
    keepalive: { idle: PARALLEL },
    servers: list.filter((b) => names.includes(b.name)).map((b) => `127.0.0.1:${b.port}`),
  });
  const five = await startProxy({ upstreams: { u: upstream(['A', 'B', 'C', 'D', 'E']) } });
  const four = await startProxy({ upstreams: { u: upstream(['A', 'B', 'D', 'E']) } });
  t.teardown(async () => { await five.close(); await four.close(); });
  const before = await placement(port(five));
  const after = await placement(port(four));
  const counts = tally(before);
  for (const n of ['A', 'B', 'C', 'D', 'E']) t.ok(counts[n]! > 1400 && counts[n]! < 2600, `${n} holds ${counts[n]} of ${KEYS} keys`);
  let moved = 0;
  let movedOther = 0;
  for (let i = 0; i < KEYS; i++) {
    if (before[i] === after[i]) continue;
    moved++;
    if (before[i] !== 'C') movedOther++;
  }
  t.ok(moved > 1400 && moved < 2600, `${moved} of ${KEYS} keys moved (1/5 = 2000)`);
  t.equal(moved, counts.C, 'exactly the removed backend\'s keys moved');
  t.equal(movedOther, 0, 'keys of the remaining backends stay where they were');
  t.equal(after.filter((n) => n === 'C').length, 0, 'none lands on the removed one');
});
