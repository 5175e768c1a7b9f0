// WebSocket (RFC 6455) byte-level helpers shared by the load generator and the echo backend.
// Frames are built once up front so the hot loops only write pre-built buffers.
import { createHash } from 'node:crypto';

export const WS_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
export const OP_TEXT = 0x1;
export const OP_BINARY = 0x2;
export const OP_CLOSE = 0x8;
export const OP_PING = 0x9;
export const OP_PONG = 0xa;

/** Sec-WebSocket-Accept for a given Sec-WebSocket-Key. */
export function acceptKey(key: string): string {
  return createHash('sha1').update(key + WS_GUID).digest('base64');
}

/** Length of a frame header for `payloadLen`, with or without the 4-byte mask key. */
export function headerLength(payloadLen: number, masked: boolean): number {
  const base = payloadLen < 126 ? 2 : payloadLen < 65536 ? 4 : 10;
  return masked ? base + 4 : base;
}

/** Writes a FIN frame header at `at`; returns the offset just past it. */
export function writeHeader(buf: Buffer, at: number, opcode: number, payloadLen: number, mask: Buffer | null): number {
  buf[at++] = 0x80 | opcode;
  const m = mask ? 0x80 : 0;
  if (payloadLen < 126) {
    buf[at++] = m | payloadLen;
  } else if (payloadLen < 65536) {
    buf[at++] = m | 126;
    buf.writeUInt16BE(payloadLen, at);
    at += 2;
  } else {
    buf[at++] = m | 127;
    buf.writeUInt32BE(Math.floor(payloadLen / 2 ** 32), at);
    buf.writeUInt32BE(payloadLen >>> 0, at + 4);
    at += 8;
  }
  if (mask) {
    mask.copy(buf, at, 0, 4);
    at += 4;
  }
  return at;
}

/** A complete client frame (masked, as RFC 6455 requires of clients) carrying `payload`. */
export function buildMaskedFrame(opcode: number, payload: Buffer, mask: Buffer): Buffer {
  const frame = Buffer.allocUnsafe(headerLength(payload.length, true) + payload.length);
  const start = writeHeader(frame, 0, opcode, payload.length, mask);
  for (let i = 0; i < payload.length; i++) frame[start + i] = payload[i]! ^ mask[i & 3]!;
  return frame;
}

/** A deterministic payload, different for each `seed`, so a reordered or lost frame shows. */
export function patternPayload(size: number, seed: number): Buffer {
  const p = Buffer.allocUnsafe(size);
  let x = (seed * 2654435761 + 12345) >>> 0;
  for (let i = 0; i < size; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    p[i] = x >>> 24;
  }
  return p;
}

/** The upgrade request the generator sends (fixed key: the accept value is checked once per handshake). */
export function buildUpgradeRequest(host: string, path: string, key: string): Buffer {
  return Buffer.from(
    `GET ${path} HTTP/1.1\r\n` +
      `Host: ${host}\r\n` +
      'Upgrade: websocket\r\n' +
      'Connection: Upgrade\r\n' +
      `Sec-WebSocket-Key: ${key}\r\n` +
      'Sec-WebSocket-Version: 13\r\n' +
      '\r\n',
    'latin1',
  );
}

/** A masked close frame with status 1000 (normal closure). */
export function buildCloseFrame(mask: Buffer): Buffer {
  const body = Buffer.from([0x03, 0xe8]);
  return buildMaskedFrame(OP_CLOSE, body, mask);
}

/**
 * XORs `buf[start, end)` with the 4-byte mask starting at mask phase `phase`; returns the new phase.
 * Uses 32-bit words on the aligned middle part: the echo backend unmasks every byte it echoes,
 * so this loop must not be what limits a run.
 */
export function unmaskInPlace(buf: Buffer, start: number, end: number, mask: Buffer, phase: number): number {
  let i = start;
  // Byte loop until the absolute address is 4-aligned.
  while (i < end && ((buf.byteOffset + i) & 3) !== 0) {
    buf[i] = buf[i]! ^ mask[phase]!;
    phase = (phase + 1) & 3;
    i++;
  }
  const words = (end - i) >>> 2;
  if (words > 0) {
    // Mask word as it lies in memory (little-endian) starting at the current phase.
    const m =
      (mask[phase]! | (mask[(phase + 1) & 3]! << 8) | (mask[(phase + 2) & 3]! << 16) | (mask[(phase + 3) & 3]! << 24)) | 0;
    const u32 = new Int32Array(buf.buffer, buf.byteOffset + i, words);
    for (let w = 0; w < words; w++) u32[w] = u32[w]! ^ m;
    i += words << 2;
  }
  while (i < end) {
    buf[i] = buf[i]! ^ mask[phase]!;
    phase = (phase + 1) & 3;
    i++;
  }
  return phase;
}
