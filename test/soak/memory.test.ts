// Bounded memory, short version (the large one: `npm run soak -- --memory`): 60 connections
// at once drive each buffer to its bound (partial heads, early data behind an upgrade to a
// backend that never answers, a pipelining flood that is never read, a large response never
// read); the proxy's RSS, in its own process, stays under the sum of the bounds
// (native-notes/security.md, "Bounded memory"; fixtures/memory.ts computes it).
import t from 'tap';
import { memoryBound, runMemorySoak } from './fixtures/memory.js';

const limits = { maxConnections: 60, maxHeadBytes: 16 * 1024, maxEarlyDataBytes: 64 * 1024, maxParsers: 120, maxRetired: 32 };
const results = await runMemorySoak(limits, (l) => t.comment(l));
t.equal(results.length, 4, 'every phase ran');
for (const r of results) {
  t.test(`${r.phase}: ${limits.maxConnections} connections held, RSS under baseline + ${(memoryBound(limits) / 2 ** 20).toFixed(1)} MiB`, async (t) => {
    t.ok(r.connections >= limits.maxConnections, `${r.connections} connections open at the bound`);
    t.ok(r.peak < r.bound, `peak ${(r.peak / 2 ** 20).toFixed(1)} MiB < ${(r.bound / 2 ** 20).toFixed(1)} MiB`);
  });
}
