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
import { rawBackend } from '../support/index.js';
import { ConfigChecker } from './fixtures/config.js';
import { clientViewProblem, nextResponse, ResponseChecker } from './fixtures/responses.js';

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

t.test('responses: 20000 mutated backend responses down the leg path: a valid response, 502 or an abort, never a byte past one message', async (t) => {
  const r = new Rng(11);
  const c = new ResponseChecker();
  try {
    for (let i = 0; i < 20_000; i++) c.check(nextResponse(r), r);
  } catch (err) {
    if (!(err instanceof FuzzFailure)) throw err;
    t.fail(err.message.split('\n')[0]!, { input: JSON.stringify(err.input), detail: err.message });
  }
  t.ok(c.stats.forward > 2000 && c.stats.badGateway > 2000 && c.stats.abort > 50, `the mix covers each outcome ${JSON.stringify(c.stats)}`);
});

t.test('responses through a real proxy: 300 mutated responses, the client sees a valid response or 502 and nothing past it', async (t) => {
  const r = new Rng(12);
  const inputs: string[] = [];
  for (let i = 0; i < 300; i++) inputs.push(nextResponse(r));
  const backend = await rawBackend((sock, data, conn) => {
    if (data.includes('\r\n\r\n') && !sock.writableEnded) sock.end(Buffer.from(inputs[conn] ?? '', 'latin1'));
  });
  const h = await startProxy({ upstreams: { b: { servers: [`127.0.0.1:${backend.port}`] } }, timeouts: { responseMs: 2000 } });
  t.teardown(async () => {
    await h.proxy.close();
    await backend.close();
  });
  let bad = 0;
  const seen: Record<string, number> = {};
  for (let i = 0; i < inputs.length; i++) {
    const res = await rawExchange(h.port, ['GET / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n'], { timeoutMs: 4000 });
    const key = res.statuses[0] === 502 ? '502' : res.end === 'reset' ? 'reset' : 'forwarded';
    seen[key] = (seen[key] ?? 0) + 1;
    const why = res.end === 'timeout' ? 'the exchange never ended' : res.statuses[0] === 502 && res.text.startsWith('HTTP/1.1 502 Bad Gateway\r\n') ? null : clientViewProblem(Buffer.from(res.text, 'latin1'), res.end === 'reset');
    if (why !== null && bad++ < 5) t.fail(why, { input: JSON.stringify(inputs[i]), got: JSON.stringify(res.text) });
  }
  t.equal(bad, 0, `every answer valid ${JSON.stringify(seen)}`);
});

t.test('configuration: an include glob with an unterminated or reversed [ (found by the config fuzz) is a literal, not a throw', async (t) => {
  const c = new ConfigChecker();
  t.teardown(() => c.close());
  for (const text of ['include missing/*[.conf;\n', 'include x/[z-a].conf;\n', 'include x/a]b[.conf;\n']) {
    t.doesNotThrow(() => c.checkNginx(text), text);
  }
});

t.test('configuration: 400 mutated nginx and JSON files, each accepted or refused with a clear error, nothing thrown', async (t) => {
  const r = new Rng(13);
  const c = new ConfigChecker();
  t.teardown(() => c.close());
  try {
    for (let i = 0; i < 400; i++) c.check(r);
  } catch (err) {
    if (!(err instanceof FuzzFailure)) throw err;
    t.fail(err.message.split('\n')[0]!, { input: JSON.stringify(err.input), detail: err.message });
  }
  t.ok(c.stats.accepted > 10 && c.stats.refused > 100, JSON.stringify(c.stats));
});
