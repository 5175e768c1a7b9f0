// Smuggling in the body framing: invalid chunk sizes and extensions, bare LF in
// chunk lines, chunk data longer than its size, obs-fold in trailers. The head
// is valid and wsplice streams the body, so the upstream may receive the head
// and the bytes before the fault; it must never receive the fault or anything
// after it, and never a complete request (a truncated body must not pass for a
// whole one). While no response byte has been sent the client gets a 400
// (the upstream connection is reset). nginx 1.22 buffers request bodies before it connects, so it
// answers 400 with nothing forwarded; HAProxy 2.6 answers 400 too; both accept
// the bare-LF variants (measured: fixtures/peers.ts).
import t, { type Test } from 'tap';
import { BODY_CASES, MARKER } from './fixtures/cases.js';
import { connBytes, parseRequests, rawExchange, RecordingBackend, startProxy, until } from './fixtures/harness.js';

/** The backend never answers: only the proxy can end the exchange. */
const backend = await new RecordingBackend(() => {}).listen();
const h = await startProxy({ upstreams: { b: { servers: [`127.0.0.1:${backend.port}`] } } });
t.teardown(async () => {
  await h.proxy.close();
  await backend.close();
});

async function settledWithin(ms: number): Promise<boolean> {
  return Promise.race([backend.settled().then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), ms))]);
}

function checkUpstream(t: Test, before: number): void {
  for (const c of backend.conns.slice(before)) {
    const bytes = connBytes(c);
    t.notOk(bytes.includes(MARKER), 'nothing after the fault reached the upstream');
    const parsed = parseRequests(bytes);
    t.equal(parsed.messages.length, 0, 'the upstream never received a complete request');
  }
}

for (const c of BODY_CASES) {
  const split = c.bytes.indexOf('\r\n\r\n') + 4;
  const head = c.bytes.slice(0, split);
  const rest = c.bytes.slice(split);

  t.test(`${c.id}, in one write: nothing of it or after it is forwarded (nginx 1.22: ${c.nginx}; HAProxy 2.6: ${c.haproxy})`, async (t) => {
    const before = backend.conns.length;
    const r = await rawExchange(h.port, [c.bytes]);
    t.not(r.end, 'timeout', 'the proxy ended the connection');
    t.notOk(r.statuses.some((s) => s < 400), 'no success status');
    t.ok(await settledWithin(3000), 'every upstream connection was closed');
    checkUpstream(t, before);
  });

  t.test(`${c.id}, head first then the body: the upstream gets the head, never the fault or what follows`, async (t) => {
    const before = backend.conns.length;
    const r = await rawExchange(h.port, [head, rest], {
      beforeRest: () => until(() => backend.conns.length > before && connBytes(backend.conns[before]!).includes('\r\n\r\n')),
    });
    t.equal(backend.conns.length, before + 1, 'the head was forwarded on one connection');
    t.not(r.end, 'timeout', 'the proxy ended the connection');
    t.ok(await settledWithin(3000), 'the upstream connection was closed');
    checkUpstream(t, before);
  });

  t.test(`${c.id}: the client is told 400 while no response has started`, async (t) => {
    const before = backend.conns.length;
    const r = await rawExchange(h.port, [head, rest], {
      beforeRest: () => until(() => backend.conns.length > before && connBytes(backend.conns[before]!).includes('\r\n\r\n')),
    });
    t.same(r.statuses, [400]);
    t.equal(r.end, 'fin');
  });
}
