/**
 * A fast 32-bit string hash for keys and ring points: FNV-1a over UTF-16
 * code units, then the murmur3 finaliser so nearby keys spread over the
 * whole range (plain FNV clusters on short keys that differ in one digit).
 */
export function hash32(s: string, seed = 0x811c9dc5): number {
  let h = seed >>> 0;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}
