/**
 * `npm run fuzz`: the head fuzz at scale (default 1,000,000 heads, bounded
 * by --max-seconds), then the response fuzz (1,000,000 mutated responses,
 * fixtures/responses.ts) and the configuration fuzz (100,000 mutated nginx
 * and JSON files, fixtures/config.ts), all in this process. Not a tap test:
 * under tap (which runs every .ts in test/) it reports a skip and exits.
 *
 *   TS_NODE_TRANSPILE_ONLY=1 node --import=@tapjs/typescript/import test/fuzz/run.ts [--count N] [--responses N] [--configs N] [--seed S] [--max-seconds T]
 *
 * A failure prints the seed, the iteration and the input as a JSON string,
 * and exits 1. See fixtures/engine.ts for the properties.
 */
import { Checker, FuzzFailure, nextInput, Rng } from './fixtures/engine.js';
import { ConfigChecker } from './fixtures/config.js';
import { nextResponse, ResponseChecker } from './fixtures/responses.js';
import { BODY_CASES, HEAD_CASES, WS_HEAD } from '../security/fixtures/cases.js';

if (process.env.TAP === '1') {
  console.log('1..0 # SKIP the fuzz runner runs with npm run fuzz; npm test runs test/fuzz/fuzz.test.ts');
  process.exit(0);
}

function arg(name: string, def: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : def;
}

const total = arg('count', 1_000_000);
const seed = arg('seed', Date.now() % 2 ** 31);
const maxSeconds = arg('max-seconds', 540);
const extra = [...HEAD_CASES, ...BODY_CASES].map((c) => c.bytes).concat(WS_HEAD);

const r = new Rng(seed);
const checker = new Checker();
const start = process.hrtime.bigint();
const deadline = Date.now() + maxSeconds * 1000;
let n = 0;
let bytes = 0;
console.log(`wsplice fuzz: ${total} heads, seed ${seed}, at most ${maxSeconds} s`);
try {
  for (; n < total; n++) {
    const input = nextInput(r, extra);
    bytes += input.length;
    checker.check(input, r);
    if ((n & 0xffff) === 0xffff) {
      if (Date.now() > deadline) {
        console.log(`time bound reached after ${n + 1} heads`);
        n++;
        break;
      }
      if (((n + 1) & 0x3ffff) === 0) console.log(`  ${n + 1} heads...`);
    }
  }
} catch (err) {
  if (err instanceof FuzzFailure) {
    console.error(`FAIL at iteration ${n} (seed ${seed}): ${err.message}\ninput: ${JSON.stringify(err.input)}`);
    process.exit(1);
  }
  throw err;
}
const secs = Number(process.hrtime.bigint() - start) / 1e9;
const s = checker.stats;
console.log(`${n} heads (${(bytes / 1e6).toFixed(1)} MB) in ${secs.toFixed(1)} s: ${Math.round(n / secs)} heads/s`);
console.log(`forwarded ${s.forward} (websocket ${s.websocket}, with body bytes ${s.bodies}), refused ${s.refuse}, incomplete ${s.incomplete}`);
console.log(`refusals by status: ${JSON.stringify(s.byStatus)}`);
if (n < total && n < 1_000_000) {
  console.error(`only ${n} heads within the time bound`);
  process.exit(1);
}

/** `count` cases of `one`, bounded by --max-seconds; exits 1 on the first failure. */
function phase(name: string, count: number, one: (r: Rng) => void): number {
  const pr = new Rng(seed + 1);
  const t0 = process.hrtime.bigint();
  const end = Date.now() + maxSeconds * 1000;
  let i = 0;
  try {
    for (; i < count; i++) {
      one(pr);
      if ((i & 0x3fff) === 0x3fff && Date.now() > end) break;
    }
  } catch (err) {
    if (err instanceof FuzzFailure) {
      console.error(`FAIL ${name} at iteration ${i} (seed ${seed}): ${err.message}\ninput: ${JSON.stringify(err.input)}`);
      process.exit(1);
    }
    throw err;
  }
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  console.log(`${i} ${name} in ${s.toFixed(1)} s: ${Math.round(i / s)}/s`);
  if (i < count) {
    console.error(`only ${i} ${name} within the time bound`);
    process.exit(1);
  }
  return i;
}

const responses = new ResponseChecker();
phase('responses', arg('responses', 1_000_000), (pr) => void responses.check(nextResponse(pr), pr));
console.log(`responses: ${JSON.stringify(responses.stats)}`);
const configs = new ConfigChecker();
phase('configuration files', arg('configs', 100_000), (pr) => configs.check(pr));
configs.close();
console.log(`configuration files: ${JSON.stringify(configs.stats)}`);
