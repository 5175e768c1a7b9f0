import type { Socket } from 'node:net';

/**
 * Close `s` with an RST when that is possible, else with a FIN.
 *
 * Node's resetAndDestroy() fails while a shutdown (from end()) is still in
 * flight: libuv answers EINVAL, Node emits 'error', drops the handle without
 * closing it, and never emits 'close' — a leaked descriptor. (Seen in the
 * soak: a FIN then an RST handled in one loop turn.) In that window a plain
 * destroy() is the only close that works.
 */
export function resetOrDestroy(s: Socket): void {
  if (s.destroyed) return;
  if (s.writableEnded && !s.writableFinished) s.destroy();
  else s.resetAndDestroy();
}
