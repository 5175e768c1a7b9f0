/**
 * Where the WebSocket frame boundaries are in one direction of a tunnel, without reading payloads:
 * a few counters advanced over each chunk (the header bytes are looked at, the payload is skipped
 * by its length). The drain needs it: a Close frame may only be written between two frames, never
 * in the middle of one. Nothing is allocated per chunk.
 */

const AT_BOUNDARY = 0; // the next byte starts a frame
const LEN = 1;         // byte 1: MASK bit and 7-bit length
const EXT_LEN = 2;     // 2 or 8 bytes of extended length
const MASK_KEY = 3;    // 4 bytes of masking key
const PAYLOAD = 4;

export class FrameCursor {
  private state = AT_BOUNDARY;
  private masked = false;
  private left = 0;   // bytes left of the extended length or of the masking key
  private len = 0;    // payload length being read
  private payload = 0; // payload bytes still to pass

  get atBoundary(): boolean {
    return this.state === AT_BOUNDARY;
  }

  /**
   * Pass `buf[from..]`. With `stopAtBoundary`, stop at the first frame boundary at or after `from`
   * and return its offset; otherwise, or when there is none in the chunk, return `buf.length`.
   */
  advance(buf: Buffer, from: number, stopAtBoundary: boolean): number {
    let i = from;
    const n = buf.length;
    while (i < n) {
      switch (this.state) {
        case AT_BOUNDARY:
          if (stopAtBoundary) return i;
          i++; // FIN, RSV, opcode: nothing the boundary depends on
          this.state = LEN;
          break;
        case LEN: {
          const b = buf[i++]!;
          this.masked = (b & 0x80) !== 0;
          const len7 = b & 0x7f;
          if (len7 >= 126) {
            this.left = len7 === 126 ? 2 : 8;
            this.len = 0;
            this.state = EXT_LEN;
          } else {
            this.len = len7;
            this.afterLength();
          }
          break;
        }
        case EXT_LEN:
          this.len = this.len * 256 + buf[i++]!; // exact up to 2^53, far past any real frame
          if (--this.left === 0) this.afterLength();
          break;
        case MASK_KEY: {
          const take = Math.min(this.left, n - i);
          i += take;
          this.left -= take;
          if (this.left === 0) this.startPayload();
          break;
        }
        default: {
          const take = Math.min(this.payload, n - i);
          i += take;
          this.payload -= take;
          if (this.payload === 0) this.state = AT_BOUNDARY;
        }
      }
    }
    return n;
  }

  private afterLength(): void {
    if (this.masked) {
      this.left = 4;
      this.state = MASK_KEY;
    } else {
      this.startPayload();
    }
  }

  private startPayload(): void {
    this.payload = this.len;
    this.state = this.len === 0 ? AT_BOUNDARY : PAYLOAD;
  }
}

/** Close 1001 ("going away") as a server sends it to a client: unmasked. */
export const CLOSE_1001_TO_CLIENT = Buffer.from([0x88, 0x02, 0x03, 0xe9]);

/** Close 1001 as a client must send it to a server: masked, with a fresh key. */
export function close1001ToServer(key: Buffer): Buffer {
  return Buffer.from([0x88, 0x82, key[0]!, key[1]!, key[2]!, key[3]!, 0x03 ^ key[0]!, 0xe9 ^ key[1]!]);
}
