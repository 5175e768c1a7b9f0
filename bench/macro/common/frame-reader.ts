// Incremental, allocation-free WebSocket frame parser: feeds header fields and payload
// slices (as offsets into the incoming chunk) to a sink. Used by both ends.

export interface FrameSink {
  /** A frame header was read. `mask` is the reader's own 4-byte buffer (valid until the next header) or null. */
  frameStart(opcode: number, length: number, mask: Buffer | null): void;
  /** `chunk[start, end)` is payload; `offset` is where it sits inside the frame's payload. */
  payload(chunk: Buffer, start: number, end: number, offset: number): void;
  frameEnd(opcode: number, length: number): void;
  /** The byte stream is not valid framing; the reader stops. */
  protocolError(reason: string): void;
}

export class FrameReader {
  private readonly hdr = Buffer.allocUnsafe(14);
  private readonly mask = Buffer.allocUnsafe(4);
  private hdrLen = 0;
  private hdrNeed = 2;
  private inPayload = false;
  private opcode = 0;
  private length = 0;
  private got = 0;
  private failed = false;

  constructor(private readonly sink: FrameSink) {}

  push(chunk: Buffer): void {
    let i = 0;
    const n = chunk.length;
    while (i < n && !this.failed) {
      if (this.inPayload) {
        const take = Math.min(n - i, this.length - this.got);
        this.sink.payload(chunk, i, i + take, this.got);
        this.got += take;
        i += take;
        if (this.got === this.length) this.finishFrame();
        continue;
      }
      // Header: copy byte by byte (at most 14 bytes a frame), recomputing how many are needed.
      this.hdr[this.hdrLen++] = chunk[i++]!;
      if (this.hdrLen === 2) {
        const b1 = this.hdr[1]!;
        const code = b1 & 0x7f;
        this.hdrNeed = 2 + (code === 126 ? 2 : code === 127 ? 8 : 0) + (b1 & 0x80 ? 4 : 0);
      }
      if (this.hdrLen === this.hdrNeed) this.startFrame();
    }
  }

  private startFrame(): void {
    const b0 = this.hdr[0]!;
    const b1 = this.hdr[1]!;
    if ((b0 & 0x70) !== 0) return this.fail('reserved bits set');
    if ((b0 & 0x80) === 0) return this.fail('fragmented frames are not used by this benchmark');
    this.opcode = b0 & 0x0f;
    const code = b1 & 0x7f;
    let at = 2;
    if (code === 126) {
      this.length = this.hdr.readUInt16BE(2);
      at = 4;
    } else if (code === 127) {
      this.length = this.hdr.readUInt32BE(2) * 2 ** 32 + this.hdr.readUInt32BE(6);
      at = 10;
    } else {
      this.length = code;
    }
    const masked = (b1 & 0x80) !== 0;
    if (masked) this.hdr.copy(this.mask, 0, at, at + 4);
    this.got = 0;
    this.hdrLen = 0;
    this.hdrNeed = 2;
    this.sink.frameStart(this.opcode, this.length, masked ? this.mask : null);
    if (this.length === 0) this.finishFrame();
    else this.inPayload = true;
  }

  private finishFrame(): void {
    this.inPayload = false;
    this.sink.frameEnd(this.opcode, this.length);
  }

  private fail(reason: string): void {
    this.failed = true;
    this.sink.protocolError(reason);
  }
}
