/**
 * The llhttp 9.x binding: the WebAssembly build that undici 7 ships, loaded once
 * per process, with one pooled parser per connection direction.
 *
 * Why this build: the npm package named `llhttp` is the 2018 generator (1.0.1),
 * and Node's internal binding is deprecated (DEP0199), drops headers past 32 and
 * aborts the process on a bad call. See native-notes/llhttp.md for the figures.
 *
 * Callbacks only record offsets and lengths into a preallocated Uint32Array;
 * strings are made once, when the head is complete (see head.ts). All head bytes
 * of one message are copied contiguously into the parser's own region of wasm
 * memory, so a header split across TCP chunks is still one span.
 */
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

/** undici release whose llhttp wasm we load; checked at load time. */
export const UNDICI_EXPECTED_MAJOR = 7;

// llhttp_errno_t values used here (llhttp.h).
export const HPE_OK = 0;
export const HPE_PAUSED = 21;
export const HPE_PAUSED_UPGRADE = 22;

export const TYPE_REQUEST = 1;
export const TYPE_RESPONSE = 2;

// llhttp_flags used here
export const F_CHUNKED = 1 << 3;
export const F_CONTENT_LENGTH = 1 << 5;
export const F_SKIPBODY = 1 << 6;
export const F_TRANSFER_ENCODING = 1 << 9;

// Field offsets of llhttp__internal_t on wasm32 (llhttp 9.x), verified by
// test/llhttp.test.ts against the parser's own getters.
const OFF_CONTENT_LENGTH = 32;
const OFF_UPGRADE = 48;
const OFF_FLAGS = 50;

interface LlhttpExports {
  memory: WebAssembly.Memory;
  _initialize(): void;
  llhttp_alloc(type: number): number;
  llhttp_free(p: number): void;
  malloc(n: number): number;
  free(p: number): void;
  llhttp_execute(p: number, data: number, len: number): number;
  llhttp_reset(p: number): void;
  llhttp_resume(p: number): void;
  llhttp_get_errno(p: number): number;
  llhttp_get_error_pos(p: number): number;
  llhttp_get_error_reason(p: number): number;
  llhttp_get_method(p: number): number;
  llhttp_get_http_major(p: number): number;
  llhttp_get_http_minor(p: number): number;
  llhttp_get_status_code(p: number): number;
  llhttp_get_upgrade(p: number): number;
  llhttp_message_needs_eof(p: number): number;
  llhttp_finish(p: number): number;
}

/** What `Parser.execute` stopped on. */
export const enum Ev {
  /** All given bytes consumed; nothing completed. */
  More = 0,
  /** The head is complete; `offset` is the first byte after it. */
  Head = 1,
  /** The message is complete; `offset` is the first byte after it. */
  End = 2,
  /** Parse error; see `errno` / `reason`. `offset` is where it happened. */
  Error = 3,
}

/** Why a head was refused before llhttp said anything is wrong. */
export const enum Limit {
  None = 0,
  HeadTooLarge = 1,
  TooManyHeaders = 2,
  UriTooLong = 3,
}

let wasm: LlhttpExports | null = null;
let memView: Buffer = Buffer.alloc(0);
let methodNames: string[] = [];
let buildInfo = '';
/** The parser whose execute() is running: wasm callbacks carry only a pointer. */
let current: Parser | null = null;

/**
 * The wasm memory as a Buffer. Memory grows only in malloc (a new parser), which
 * detaches the old ArrayBuffer: a zero-length view is the sign to take the new one.
 * Asking `memory.buffer` on every call costs two calls into the runtime per parse.
 */
function view(): Buffer {
  if (memView.byteLength === 0) memView = Buffer.from(wasm!.memory.buffer);
  return memView;
}

function load(): LlhttpExports {
  if (wasm !== null) return wasm;
  const pkg = require('undici/package.json') as { version: string };
  const major = Number(pkg.version.split('.')[0]);
  if (major !== UNDICI_EXPECTED_MAJOR) {
    throw new Error(`wsplice: llhttp wasm expected from undici ${UNDICI_EXPECTED_MAJOR}.x, found ${pkg.version}`);
  }
  let mod: WebAssembly.Module;
  let simd = true;
  try {
    mod = new WebAssembly.Module(require('undici/lib/llhttp/llhttp_simd-wasm.js') as Buffer);
  } catch {
    simd = false;
    mod = new WebAssembly.Module(require('undici/lib/llhttp/llhttp-wasm.js') as Buffer);
  }
  const constants = require('undici/lib/llhttp/constants.js') as { METHODS: Record<string, number> };
  methodNames = [];
  for (const [name, code] of Object.entries(constants.METHODS)) methodNames[code] = name;

  const inst = new WebAssembly.Instance(mod, {
    env: {
      wasm_on_message_begin: () => 0,
      // Pointers arrive as i32: above 2 GiB of wasm memory they read as negative, so `>>> 0`.
      wasm_on_url: (_p: number, at: number, len: number) => current!.onUrl(at >>> 0, len),
      wasm_on_status: (_p: number, at: number, len: number) => current!.onStatus(at >>> 0, len),
      wasm_on_header_field: (_p: number, at: number, len: number) => current!.onField(at >>> 0, len),
      wasm_on_header_value: (_p: number, at: number, len: number) => current!.onValue(at >>> 0, len),
      wasm_on_headers_complete: () => current!.onHeadersComplete(),
      wasm_on_body: () => 0,
      wasm_on_message_complete: () => HPE_PAUSED,
    },
  });
  const exp = inst.exports as unknown as LlhttpExports;
  exp._initialize();
  // A plain object of one shape: the instance's exports object is frozen, and loads from it
  // on every execute() were megamorphic in the profiles.
  wasm = { ...exp };
  buildInfo = `llhttp 9 (wasm${simd ? ' simd' : ''}) from undici ${pkg.version}`;
  return wasm;
}

/** A one-line description of the loaded parser build (for --version and notes). */
export function llhttpBuild(): string {
  load();
  return buildInfo;
}

export interface ParserLimits {
  maxHeadBytes: number;
  maxHeaders: number;
  maxUriBytes: number;
}

/** Bytes of wasm memory one parser's head region takes for a given maxHeadBytes. */
export function parserRegionBytes(maxHeadBytes: number): number {
  return Math.max(maxHeadBytes, 16 * 1024);
}

/**
 * wasm memory the parsers of both directions may take by default. wasm32
 * addresses stop at 4 GiB and the memory never shrinks; 1 GiB leaves room and
 * is 32,768 heads in progress each way with the default 16 KiB maxHeadBytes.
 */
export const DEFAULT_PARSER_HEAP_BYTES = 1024 * 1024 * 1024;

/** The default `limits.maxParsers` (per direction): half the heap budget over one region. */
export function defaultMaxParsers(maxHeadBytes: number): number {
  return Math.max(1, Math.floor(DEFAULT_PARSER_HEAP_BYTES / 2 / parserRegionBytes(maxHeadBytes)));
}

/** llhttp could not get wasm memory for a parser (the 4 GiB address space or the host ran out). */
export class ParserMemoryError extends Error {
  constructor(bytes: number) {
    super(`llhttp: no wasm memory for a ${bytes}-byte parser region`);
    this.name = 'ParserMemoryError';
  }
}

/** Larger than llhttp_t on wasm32; see the constructor. */
const LLHTTP_T_PROBE = 256;

/**
 * One llhttp parser and its region of wasm memory. Request parsers parse the
 * client's messages; response parsers the upstream's. Reused through `acquire`.
 */
export class Parser {
  readonly type: number;
  private readonly ptr: number;
  private readonly region: number;
  private readonly capacity: number;
  private readonly limits: ParserLimits;

  /** Head bytes of the current message copied so far (0 once the head is done). */
  private headLen = 0;
  private inHead = true;

  /** Index in the chunk given to `execute` where it stopped. */
  offset = 0;
  errno = 0;
  limit: Limit = Limit.None;

  // Spans, relative to `region`: [nameAt, nameLen, valueAt, valueLen] per header.
  readonly spans: Uint32Array;
  headerCount = 0;
  /** End of the last field-name span, to join a name split across chunks. */
  private fieldEnd = -1;
  urlAt = 0;
  urlLen = 0;
  statusAt = 0;
  statusLen = 0;
  /** Total head length in bytes (request/status line + headers + CRLF). */
  headBytes = 0;

  constructor(type: number, limits: ParserLimits) {
    const w = load();
    this.type = type;
    this.limits = limits;
    // One region holds a whole head; body bytes are parsed through it in slices.
    this.capacity = parserRegionBytes(limits.maxHeadBytes);
    // wasm pointers are i32 in JS: `>>> 0` keeps addresses past 2 GiB positive.
    const region = w.malloc(this.capacity) >>> 0;
    if (region === 0) throw new ParserMemoryError(this.capacity);
    // llhttp_alloc does not check its malloc: a NULL would be written through. Probe
    // with a block larger than llhttp_t and free it, so the alloc reuses that room.
    const probe = w.malloc(LLHTTP_T_PROBE) >>> 0;
    if (probe === 0) {
      w.free(region);
      throw new ParserMemoryError(this.capacity);
    }
    w.free(probe);
    this.region = region;
    this.ptr = w.llhttp_alloc(type) >>> 0;
    this.spans = new Uint32Array(limits.maxHeaders * 4);
  }

  /** Start a new connection's worth of messages. */
  reset(): void {
    wasm!.llhttp_reset(this.ptr);
    this.startMessage();
    this.errno = 0;
    this.limit = Limit.None;
  }

  private startMessage(): void {
    this.headLen = 0;
    this.inHead = true;
    this.headerCount = 0;
    this.fieldEnd = -1;
    this.urlAt = this.urlLen = this.statusAt = this.statusLen = 0;
    this.headBytes = 0;
  }

  /** True between a message's end and the next message's first byte. */
  get atMessageStart(): boolean {
    return this.inHead && this.headLen === 0;
  }

  /**
   * Parse `chunk[start..]`. Stops at the end of a head (Ev.Head), the end of a
   * message (Ev.End), an error, or when the bytes are used up (Ev.More).
   * `offset` tells where, as an index into `chunk`.
   */
  execute(chunk: Buffer, start: number): Ev {
    const w = wasm!;
    let n = chunk.length - start;
    const base = this.inHead ? this.region + this.headLen : this.region;
    const room = this.inHead ? this.capacity - this.headLen : this.capacity;
    if (n > room) n = room;
    if (this.inHead && n === 0) {
      this.limit = Limit.HeadTooLarge;
      this.offset = start;
      return Ev.Error;
    }
    // No view of the chunk when it goes in whole, and no copy at all for the empty
    // run after a head (where llhttp completes a bodiless message).
    if (n > 0) view().set(start === 0 && n === chunk.length ? chunk : chunk.subarray(start, start + n), base);
    current = this;
    const ret = w.llhttp_execute(this.ptr, base, n);
    current = null;
    if (ret === HPE_OK) {
      this.offset = start + n;
      if (this.inHead) {
        this.headLen += n;
        if (this.limit !== Limit.None) return Ev.Error;
        if (this.headLen >= this.limits.maxHeadBytes) {
          this.limit = Limit.HeadTooLarge;
          return Ev.Error;
        }
        if (this.urlLen > this.limits.maxUriBytes) {
          this.limit = Limit.UriTooLong;
          return Ev.Error;
        }
      }
      return Ev.More;
    }
    const stop = (w.llhttp_get_error_pos(this.ptr) >>> 0) - base;
    this.offset = start + stop;
    if (ret === HPE_PAUSED || ret === HPE_PAUSED_UPGRADE) {
      w.llhttp_resume(this.ptr);
      if (this.inHead) {
        // Paused by on_headers_complete.
        this.headBytes = this.headLen + stop;
        this.headLen = 0;
        this.inHead = false;
        if (this.limit === Limit.None && this.headBytes > this.limits.maxHeadBytes) this.limit = Limit.HeadTooLarge;
        if (this.limit === Limit.None && this.urlLen > this.limits.maxUriBytes) this.limit = Limit.UriTooLong;
        return this.limit === Limit.None ? Ev.Head : Ev.Error;
      }
      // Paused by on_message_complete (or llhttp's own upgrade pause after it).
      this.startMessage();
      return Ev.End;
    }
    this.errno = ret;
    return Ev.Error;
  }

  /**
   * Signal EOF: for a close-delimited response this completes the message.
   * Returns true when the message ended cleanly at EOF.
   */
  finish(): boolean {
    const ret = wasm!.llhttp_finish(this.ptr);
    // HPE_PAUSED: on_message_complete ran (and asked to pause, as it always does).
    if (ret !== HPE_OK && ret !== HPE_PAUSED) {
      this.errno = ret;
      return false;
    }
    return true;
  }

  /** The llhttp reason for the last error, or our limit's. */
  get reason(): string {
    if (this.limit === Limit.HeadTooLarge) return 'head too large';
    if (this.limit === Limit.TooManyHeaders) return 'too many header fields';
    if (this.limit === Limit.UriTooLong) return 'request target too long';
    const p = wasm!.llhttp_get_error_reason(this.ptr) >>> 0;
    if (p === 0) return `llhttp error ${this.errno}`;
    const mem = view();
    const end = mem.indexOf(0, p);
    return mem.toString('latin1', p, end < 0 ? p : end);
  }

  // ---- read after Ev.Head ----
  get method(): string { return methodNames[wasm!.llhttp_get_method(this.ptr)] ?? ''; }
  get versionMajor(): number { return wasm!.llhttp_get_http_major(this.ptr); }
  get versionMinor(): number { return wasm!.llhttp_get_http_minor(this.ptr); }
  get statusCode(): number { return wasm!.llhttp_get_status_code(this.ptr); }
  get flags(): number { return view().readUInt16LE(this.ptr + OFF_FLAGS); }
  /** Content-Length as parsed (only meaningful with F_CONTENT_LENGTH). */
  get contentLength(): number { return Number(view().readBigUInt64LE(this.ptr + OFF_CONTENT_LENGTH)); }
  get needsEof(): boolean { return wasm!.llhttp_message_needs_eof(this.ptr) === 1; }

  /**
   * Decide, after Ev.Head, how the body is framed. `skipBody` (a response to
   * HEAD, or one we treat as bodiless) and `noUpgrade` (llhttp flagged an
   * upgrade the engine does not honour: parse the body as HTTP) take effect
   * when `execute` resumes.
   */
  setBodyMode(skipBody: boolean, noUpgrade: boolean): void {
    const mem = view();
    if (skipBody) mem.writeUInt16LE(mem.readUInt16LE(this.ptr + OFF_FLAGS) | F_SKIPBODY, this.ptr + OFF_FLAGS);
    if (noUpgrade) mem[this.ptr + OFF_UPGRADE] = 0;
  }

  /** A latin1 string of `len` head bytes at region offset `at`. */
  text(at: number, len: number): string {
    const from = this.region + at;
    return view().toString('latin1', from, from + len);
  }

  /** A copy of head bytes (used for raw pass-through of a response head). */
  copyHead(): Buffer {
    return Buffer.from(view().subarray(this.region, this.region + this.headBytes));
  }

  // ---- wasm callbacks (via `current`) ----
  onUrl(at: number, len: number): number {
    if (this.urlLen === 0) this.urlAt = at - this.region;
    this.urlLen += len;
    return 0;
  }

  onStatus(at: number, len: number): number {
    if (this.statusLen === 0) this.statusAt = at - this.region;
    this.statusLen += len;
    return 0;
  }

  onField(at: number, len: number): number {
    const rel = at - this.region;
    if (rel === this.fieldEnd && this.headerCount > 0) {
      // The same field name, split across two execute() calls: spans are contiguous.
      this.spans[(this.headerCount - 1) * 4 + 1] += len;
      this.fieldEnd += len;
      return 0;
    }
    if (this.headerCount >= this.limits.maxHeaders) {
      this.limit = Limit.TooManyHeaders;
      return 0;
    }
    const i = this.headerCount++ * 4;
    this.spans[i] = rel;
    this.spans[i + 1] = len;
    this.spans[i + 2] = 0;
    this.spans[i + 3] = 0;
    this.fieldEnd = rel + len;
    return 0;
  }

  onValue(at: number, len: number): number {
    if (this.limit === Limit.TooManyHeaders) return 0;
    const i = (this.headerCount - 1) * 4;
    if (this.spans[i + 3] === 0) this.spans[i + 2] = at - this.region;
    this.spans[i + 3] += len;
    this.fieldEnd = -1;
    return 0;
  }

  onHeadersComplete(): number {
    return HPE_PAUSED; // stop so `execute` can report where the head ends
  }

  /** Give the wasm memory back (only when the pool is trimmed). */
  destroy(): void {
    wasm!.free(this.region);
    wasm!.llhttp_free(this.ptr);
  }
}

/**
 * Parsers are pooled: a tunnel needs one only until its heads are parsed. A pool
 * never holds more than `max` parsers (in use or idle), so its wasm memory is at
 * most `max` regions; past that `acquire` answers null and the caller refuses (503).
 */
export class ParserPool {
  private readonly free: Parser[] = [];
  /** Parsers of this pool that hold wasm memory now, in use or idle. */
  private allocated = 0;
  /** Acquisitions refused since start (the cap reached, or no wasm memory). */
  refusals = 0;

  constructor(
    private readonly type: number,
    private readonly limits: ParserLimits,
    readonly max = defaultMaxParsers(limits.maxHeadBytes),
    private readonly keep = 256,
  ) {}

  /** Parsers in use now. */
  get inUse(): number {
    return this.allocated - this.free.length;
  }

  /** A reset parser, or null when the cap is reached or wasm memory ran out. */
  acquire(): Parser | null {
    const p = this.free.pop() ?? this.allocate();
    if (p !== null) p.reset();
    return p;
  }

  release(p: Parser): void {
    if (this.free.length < this.keep) {
      this.free.push(p);
    } else {
      p.destroy();
      this.allocated--;
    }
  }

  private allocate(): Parser | null {
    if (this.allocated >= this.max) {
      this.refusals++;
      return null;
    }
    try {
      const p = new Parser(this.type, this.limits);
      this.allocated++;
      return p;
    } catch (err) {
      if (!(err instanceof ParserMemoryError)) throw err;
      this.refusals++;
      return null;
    }
  }
}
