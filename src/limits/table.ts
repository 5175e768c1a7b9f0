/**
 * A capped table of per-client entries: at most `max` keys, the least
 * recently used evicted first, so memory stays bounded whatever the number
 * of clients (the role of an nginx limit zone's size). A Map keeps insertion
 * order; touching a key moves it to the end.
 */
export class CappedTable<V> {
  private readonly map = new Map<string, V>();
  evictions = 0;

  constructor(readonly max: number) {}

  get size(): number {
    return this.map.size;
  }

  /** The entry for `key`, made by `create` when absent; the oldest entry goes when full. */
  touch(key: string, create: () => V): V {
    const m = this.map;
    const v = m.get(key);
    if (v !== undefined) {
      m.delete(key);
      m.set(key, v);
      return v;
    }
    if (m.size >= this.max) {
      m.delete(m.keys().next().value as string);
      this.evictions++;
    }
    const nv = create();
    m.set(key, nv);
    return nv;
  }

  get(key: string): V | undefined {
    return this.map.get(key);
  }

  delete(key: string): void {
    this.map.delete(key);
  }
}
