// Allocation-free HTTP/1.1 response reader for the generator's keep-alive client: finds the status,
// Content-Length and "Connection: close" byte by byte, then skips the body.

const CONTENT_LENGTH = Buffer.from('content-length:', 'latin1');
const CONNECTION_CLOSE = Buffer.from('connection: close', 'latin1');
const MAX_LINE = 256;

export interface ResponseSink {
  /** One whole response was read. */
  response(status: number, close: boolean): void;
  protocolError(reason: string): void;
}

export class ResponseReader {
  private readonly line = Buffer.allocUnsafe(MAX_LINE);
  private lineLen = 0;
  private lineNo = 0;
  private status = 0;
  private contentLength = -1;
  private close = false;
  private bodyLeft = -1; // -1: reading the head
  private failed = false;

  constructor(private readonly sink: ResponseSink) {}

  push(chunk: Buffer): void {
    let i = 0;
    const n = chunk.length;
    while (i < n && !this.failed) {
      if (this.bodyLeft >= 0) {
        const take = Math.min(this.bodyLeft, n - i);
        this.bodyLeft -= take;
        i += take;
        if (this.bodyLeft === 0) this.finish();
        continue;
      }
      const c = chunk[i++]!;
      if (c === 0x0a) {
        this.endLine();
      } else if (c !== 0x0d && this.lineLen < MAX_LINE) {
        // Lower-case ASCII letters so header names match whatever case the proxy used.
        this.line[this.lineLen++] = c >= 0x41 && c <= 0x5a ? c | 0x20 : c;
      }
    }
  }

  private endLine(): void {
    const len = this.lineLen;
    this.lineLen = 0;
    if (this.lineNo++ === 0) {
      // "http/1.1 200 ok": digits at 9..11.
      this.status = (this.line[9]! - 48) * 100 + (this.line[10]! - 48) * 10 + (this.line[11]! - 48);
      if (len < 12 || !(this.status >= 100 && this.status < 600)) this.fail('bad status line');
      return;
    }
    if (len === 0) {
      // End of head. This client only speaks to servers that send Content-Length.
      if (this.contentLength < 0) return this.fail('response without Content-Length');
      this.bodyLeft = this.contentLength;
      if (this.bodyLeft === 0) this.finish();
      return;
    }
    if (startsWith(this.line, len, CONTENT_LENGTH)) {
      let v = 0;
      for (let j = CONTENT_LENGTH.length; j < len; j++) {
        const d = this.line[j]!;
        if (d >= 0x30 && d <= 0x39) v = v * 10 + (d - 0x30);
      }
      this.contentLength = v;
    } else if (len === CONNECTION_CLOSE.length && startsWith(this.line, len, CONNECTION_CLOSE)) {
      this.close = true;
    }
  }

  private finish(): void {
    const { status, close } = this;
    this.bodyLeft = -1;
    this.lineNo = 0;
    this.contentLength = -1;
    this.close = false;
    this.sink.response(status, close);
  }

  private fail(reason: string): void {
    this.failed = true;
    this.sink.protocolError(reason);
  }
}

function startsWith(buf: Buffer, len: number, prefix: Buffer): boolean {
  return len >= prefix.length && buf.compare(prefix, 0, prefix.length, 0, prefix.length) === 0;
}
