// Fault-injection soak, short version (the long one: `npm run soak`, test/soak/soak.ts).
// Tunnels with checksummed traffic both ways while clients and backends RST,
// half-close, stall as slow readers, send garbage or vanish mid-handshake; the
// proxy runs in a child process. Afterwards every byte either end received was
// the other's, in order; cleanly ended streams arrived whole; the proxy holds
// no leaked socket or fd; its heap is near baseline; nothing was unhandled.
// Run against the default relay (native splice when built) and `relay: 'js'`.
import t from 'tap';
import { runSoak, type SoakResult } from './fixtures/driver.js';

function summary(r: SoakResult): string {
  return (
    `relay ${r.relayKind}: ${r.completed}/${r.started} tunnels in ${(r.elapsedMs / 1000).toFixed(1)} s, peak ${r.peakOpenTunnels} open, ` +
    `${(r.bytesUp / 1e6).toFixed(1)} MB up / ${(r.bytesDown / 1e6).toFixed(1)} MB down verified; ` +
    `fds ${r.baseline.fds} -> ${r.after.fds}, sockets ${r.baseline.sockets} -> ${r.after.sockets}, ` +
    `heap ${(r.baseline.heapUsed / 1e6).toFixed(1)} -> ${(r.after.heapUsed / 1e6).toFixed(1)} MB; ` +
    `proxy connections ${r.after.stats.connections}, tunnels ${r.after.stats.tunnels}; modes ${JSON.stringify(r.byMode)}`
  );
}

/** Known engine bugs the leak checks hit; null = none known. */
const LEAK_TODO: Record<string, string | null> = {
  js: null, // fixed: src/sockets.ts resetOrDestroy (Node cannot RST a socket whose shutdown is in flight)
  splice: null, // fixed in src/native/relay.cc (tunnel id read after hand-over)
};

for (const relay of ['auto', 'js'] as const) {
  t.test(`soak with the ${relay === 'auto' ? 'default relay' : "'js' relay"}: 600 faulty tunnels, up to 150 at once`, async (t) => {
    const r = await runSoak({
      relay, tunnels: 600, durationMs: 25_000, concurrency: 150, maxBytes: 96 * 1024, slowBytes: 1024 * 1024,
      trickleMs: 5, seed: 4242 + (relay === 'js' ? 1 : 0), tunnelDeadlineMs: 20_000, settleMs: 4_000,
    });
    t.comment(summary(r));
    if (relay === 'js') t.equal(r.relayKind, 'js', "relay: 'js' is the JS relay");

    const drained = r.failures.filter((f) => f.startsWith('the proxy still held connections'));
    const integrity = r.failures.filter((f) => !drained.includes(f));
    t.test('every byte either end received was the sender\'s, in order; clean streams arrived whole; nothing hung or went unhandled', async (t) => {
      t.same(r.fatal, [], 'no uncaught exception or unhandled rejection in the proxy');
      t.same(integrity.slice(0, 20), [], 'no data or status failure');
      t.equal(r.hung, 0, 'no hung tunnel');
      t.equal(r.completed, r.started, 'every tunnel completed on both ends');
      t.ok(r.started >= 300, `enough tunnels ran (${r.started})`);
      t.ok((r.byMode['client-rst'] ?? 0) > 0 && (r.byMode['backend-slow-reader'] ?? 0) > 0 && (r.byMode['backend-bad-accept'] ?? 0) > 0, 'the faults were drawn');
      t.equal(r.backendConnsOpen, 0, 'every upstream connection was closed by the proxy');
      t.equal(r.after.errors, 0, 'no error event on the proxy');
      t.ok(r.after.heapUsed < r.baseline.heapUsed * 1.5 + 8e6, `heap near baseline (${(r.baseline.heapUsed / 1e6).toFixed(1)} -> ${(r.after.heapUsed / 1e6).toFixed(1)} MB)`);
    });

    const todo = LEAK_TODO[r.relayKind] ?? null;
    t.test('afterwards the proxy holds no connection, tunnel, socket or fd beyond its baseline', todo === null ? {} : { todo }, async (t) => {
      t.same(drained, [], 'the proxy let go of every connection');
      t.equal(r.after.stats.connections, 0, 'no connection registered');
      t.equal(r.after.stats.tunnels, 0, 'no tunnel registered');
      t.equal(r.after.sockets, r.baseline.sockets, 'exactly the sockets it had at baseline (its listener)');
      t.ok(r.after.fds <= r.baseline.fds, `no fd leaked (${r.baseline.fds} -> ${r.after.fds})`);
    });
  });
}
