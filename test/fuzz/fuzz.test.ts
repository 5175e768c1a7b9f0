// Property/fuzz test over the head path (llhttp Parser -> readRequestHead ->
// classifyRequest -> checkClientHandshake -> forwardRequestHead): random and
// mutated heads from a seed corpus. Properties in fixtures/engine.ts: nothing
// throws past the connection, every outcome is a forward or a 4xx, a forwarded
// head re-parses to the same request, nothing the client sends is injected into
// the rewritten head. `npm run fuzz` runs the same at >= 1,000,000 heads.
// The last test sends fuzzed heads through a real proxy to a recording backend.
import t, { type Test } from 'tap';
import { Checker, FuzzFailure, nextInput, Rng } from './fixtures/engine.js';
import { BODY_CASES, HEAD_CASES, WS_HEAD } from '../security/fixtures/cases.js';
import { connBytes, parseRequests, rawExchange, RecordingBackend, startProxy } from '../security/fixtures/harness.js';

const EXTRA = [...HEAD_CASES, ...BODY_CASES].map((c) => c.bytes).concat(WS_HEAD);

function run(t: Test, seed: number, count: number): Checker {
  const r = new Rng(seed);
  const checker = new Checker();
  for (let i = 0; i < count; i++) {
    const input = nextInput(r, EXTRA);
    try {
      checker.check(input, r);
    } catch (err) {
      if (!(err instanceof FuzzFailure)) throw err;
      t.ok(false, `seed ${seed} iteration ${i}: ${err.message.split('\n')[0]}`, { input: JSON.stringify(err.input), detail: err.message });
      return checker;
    }
  }
  t.pass(`${count} heads, seed ${seed}: all properties hold`);
  return checker;
}

t.test('fixed seed: 4000 heads, every property holds, and the mix covers forwards, refusals and bodies', async (t) => {
  const c = run(t, 20_261_125, 4000);
  const s = c.stats;
  t.ok(s.forward > 800, `forwarded ${s.forward}`);
  t.ok(s.refuse > 800, `refused ${s.refuse}`);
  t.ok(s.websocket > 5, `websocket upgrades ${s.websocket}`);
  t.ok(s.bodies > 200, `bodies compared ${s.bodies}`);
  t.ok((s.byStatus[505] ?? 0) > 0 && (s.byStatus[426] ?? 0) > 0, 'version and WebSocket-version refusals reached');
});

t.test('fresh seed: 4000 more heads (the seed is in the test name on failure)', async (t) => {
  const seed = Math.floor(Math.random() * 2 ** 31);
  t.comment(`seed ${seed}`);
  run(t, seed, 4000);
});

t.test('through a real proxy: 1000 fuzzed heads, each answered by a 4xx or forwarded as exactly one well-framed request', async (t) => {
  const backend = await new RecordingBackend().listen();
  const h = await startProxy({
    upstreams: { b: { servers: [`127.0.0.1:${backend.port}`] } },
    timeouts: { headMs: 2000, responseMs: 2000 },
  });
  const errors: Error[] = [];
  h.proxy.on('error', (e) => errors.push(e));
  t.teardown(async () => {
    await h.proxy.close();
    await backend.close();
  });
  const r = new Rng(7);
  const allowed = new Set([200, 400, 404, 405, 408, 414, 426, 431, 501, 505]);
  const inputs: string[] = [];
  for (let i = 0; i < 1000; i++) inputs.push(nextInput(r, EXTRA));
  for (let i = 0; i < inputs.length; i += 10) {
    const batch = inputs.slice(i, i + 10);
    const results = await Promise.all(batch.map((input) => rawExchange(h.port, [input], { halfClose: true, timeoutMs: 4000 })));
    results.forEach((res, j) => {
      const bad = res.statuses.filter((s) => !allowed.has(s));
      if (bad.length > 0 || res.end === 'timeout') t.fail('unexpected answer', { input: JSON.stringify(batch[j]), statuses: res.statuses, end: res.end });
    });
  }
  await backend.settled();
  let forwarded = 0;
  for (const c of backend.conns) {
    const parsed = parseRequests(connBytes(c));
    if (parsed.error !== null || parsed.messages.length > 1 || (parsed.messages.length === 1 && parsed.incomplete > 0)) {
      t.fail('an upstream connection did not carry exactly one well-framed request', { got: JSON.stringify(connBytes(c).toString('latin1')), parsed });
    }
    if (parsed.messages.length === 1) forwarded++;
  }
  t.ok(forwarded > 150, `forwarded ${forwarded} of 1000`);
  t.same(errors, [], 'no error event');
  const deadline = Date.now() + 5000;
  while (h.proxy.stats().connections > 0 && Date.now() < deadline) await new Promise((res) => setTimeout(res, 20));
  t.equal(h.proxy.stats().connections, 0, 'every client connection was closed');
});
