/**
 * HTTP/1.1 message heads (RFC 9112), sans-I/O: one bounded, incremental reader of the start
 * line and header lines, under a request-head parser (the server's) and a response-head
 * parser (the client's); and the writer of a whole HTTP/1.1 response. The WebSocket rules of
 * each role are in `./upgrade.ts`.
 *
 * Nothing here touches a socket, a timer or a runtime global: bytes in, a head or an error
 * out.
 *
 * @module
 */
import { HandshakeError } from "./errors.ts";
import { TCHAR } from "./_http_token.ts";

// ---------------------------------------------------------------------------------------------
// Byte tables

const HTAB = 0x09;
const LF = 0x0a;
const CR = 0x0d;
const SP = 0x20;
const COLON = 0x3a;
const DEL = 0x7f;

const EMPTY = new Uint8Array(0);
// Only ever given ASCII bytes (the reader checks), where UTF-8 and latin1 agree.
const ASCII_DECODER = new TextDecoder();

// ---------------------------------------------------------------------------------------------
// Types

/**
 * Limits on a message head.
 *
 * @example
 * ```ts
 * import { ResponseHeadParser } from "./http1.ts";
 * const parser = new ResponseHeadParser({ maxHeadSize: 4096, maxHeaders: 50 });
 * ```
 */
export interface HeadLimits {
  /**
   * Bytes in the whole head (start line + headers + final CRLF), empty lines before a request
   * line included.
   *
   * @default {8192}
   */
  maxHeadSize?: number;
  /**
   * Number of header lines.
   *
   * @default {100}
   */
  maxHeaders?: number;
  /**
   * Bytes in one line (start line or header line), without its line end.
   *
   * @default {4096}
   */
  maxLineLength?: number;
}

/**
 * Limits on the request head: the same as {@linkcode HeadLimits}.
 *
 * @example
 * ```ts
 * import { type RequestHeadLimits, RequestHeadParser } from "./http1.ts";
 * const limits: RequestHeadLimits = { maxHeadSize: 4096, maxHeaders: 50 };
 * const parser = new RequestHeadParser(limits);
 * ```
 */
export type RequestHeadLimits = HeadLimits;

/** A parsed HTTP/1.x request head. */
export interface RequestHead {
  /** The method as sent, e.g. `"GET"`. */
  method: string;
  /** The request-target as sent, e.g. `"/chat?room=1"`. */
  target: string;
  /** `"HTTP/1.1"` or `"HTTP/1.0"`. */
  version: string;
  /** Header fields in arrival order: names lower-cased, values with surrounding OWS trimmed. */
  headers: Array<[name: string, value: string]>;
}

/** A parsed HTTP/1.x response head. */
export interface ResponseHead {
  /** `"HTTP/1.1"` or `"HTTP/1.0"`. */
  version: string;
  /** The status code, three digits, e.g. `101`. */
  status: number;
  /** The reason phrase as sent (latin1), possibly empty. */
  reason: string;
  /**
   * Header fields in arrival order: names lower-cased, values with surrounding OWS trimmed,
   * obsolete line folding replaced by one space (RFC 9112 §5.2).
   */
  headers: Array<[name: string, value: string]>;
}

/** Why a handshake was refused: the HTTP response to send. */
export interface HandshakeRefusal {
  /** The status code: 400, 405, 414, 426 or 431 from this module. */
  status: number;
  /** A human-readable reason, sent as the text/plain body. */
  message: string;
  /** Extra response headers, e.g. `["Sec-WebSocket-Version", "13"]`. */
  headers: Array<[string, string]>;
}

// ---------------------------------------------------------------------------------------------
// The shared reader

const START_LINE = 0;
const HEADERS = 1;
const DONE = 2;
const FAILED = 3;

/** Returned by the line readers: the line is not complete within the bytes given. */
const INCOMPLETE = -1;
/** Returned by the line readers: the head failed. */
const FAIL = -2;
/** Returned by {@linkcode afterLineEnd}: a CR not followed by LF. */
const BARE_CR = -3;
/** Returned by {@linkcode afterLineEnd}: the byte ends no line. */
const NO_LINE_END = -4;
/** Returned by {@linkcode afterLineEnd} in strict mode: an LF without a CR before it. */
const BARE_LF = -5;

// Why a head failed: the parsers turn these into their own results.
const BAD = 0; // malformed: the detail says how
const HEAD_SIZE = 1; // maxHeadSize
const HEADER_COUNT = 2; // maxHeaders
const START_LINE_LENGTH = 3; // maxLineLength, on the start line
const HEADER_LINE_LENGTH = 4; // maxLineLength, on a header line

/**
 * Where the line whose end is at `bytes[i]` continues: after CRLF, or after a bare LF unless
 * `strict` (RFC 9112 §2.2 lets a recipient recognise one). INCOMPLETE when the CR is the last
 * byte given, BARE_CR for a CR not followed by LF, BARE_LF for a bare LF when `strict`,
 * NO_LINE_END when `bytes[i]` is neither.
 */
function afterLineEnd(bytes: Uint8Array, i: number, stop: number, strict: boolean): number {
  if (bytes[i] === LF) return strict ? BARE_LF : i + 1;
  if (bytes[i] !== CR) return NO_LINE_END;
  if (i + 1 >= stop) return INCOMPLETE;
  return bytes[i + 1] === LF ? i + 2 : BARE_CR;
}

// Where the fields of the lines completed in one push() lie, so that all of them are decoded
// with a single TextDecoder call and cut out with substring() (about 10× faster than decoding
// each field on its own, in both runtimes). Five numbers per line: flags, then the start and
// end of two fields: the method and target (request line), the reason phrase twice (status
// line), or the name and value (header line, and the value twice for an obs-fold line).
// Shared by every reader: push() is synchronous and always empties it before it returns.
const RECORD = 5;
const F_HEADER = 1; // a header line (else the start line)
const F_UPPER = 2; // the field name has upper-case letters
const F_HIGH = 4; // the line has bytes 0x80–0xFF: decode as latin1 by hand
const F_HTTP10 = 8; // the start line says HTTP/1.0
const F_FOLD = 16; // an obs-fold line: its value continues the previous header's
let records = new Int32Array(RECORD * 64);
let recordCount = 0;
/** Where flush lower-cases field names; shared like `records`, and grown as needed. */
let scratch = new Uint8Array(4096);

function addRecord(flags: number, a: number, b: number, c: number, d: number): void {
  let r = recordCount * RECORD;
  if (r + RECORD > records.length) {
    const grown = new Int32Array(records.length * 2);
    grown.set(records);
    records = grown;
  }
  records[r++] = flags;
  records[r++] = a;
  records[r++] = b;
  records[r++] = c;
  records[r] = d;
  recordCount++;
}

/** Bytes as latin1 (each byte one UTF-16 code unit): the rare path, for bytes 0x80–0xFF. */
function latin1(bytes: Uint8Array, start: number, end: number): string {
  let text = "";
  for (let i = start; i < end; i++) text += String.fromCharCode(bytes[i]);
  return text;
}

function checkLimit(parser: string, name: string, value: number, min: number): number {
  if (!Number.isInteger(value) || value < min) {
    throw new RangeError(
      `Cannot create a ${parser}: ${name} must be an integer of at least ${min}`,
    );
  }
  return value;
}

/** "HTTP/" as bytes: the start of every status line. */
const HTTP_SLASH = [0x48, 0x54, 0x54, 0x50, 0x2f];

/**
 * The bounded, incremental reader of one message head (RFC 9112 §2–§5), for a request
 * (lenient line ends, empty lines before the request line ignored, obs-fold refused) or for a
 * response (CRLF only, obs-fold unfolded as RFC 9112 §5.2 has a user agent do).
 *
 * It works on bytes: a head that arrives in one chunk is read in a single pass, with no copy;
 * only a line split across chunks is copied, into one internal buffer that never grows beyond
 * `maxLineLength + 2` bytes. Every limit is enforced as the bytes arrive, so an oversized head
 * fails as soon as it certainly exceeds a limit, not when it ends.
 */
class HeadReader {
  readonly maxHeadSize: number;
  readonly maxHeaders: number;
  readonly maxLineLength: number;
  /** A response head: CRLF only, a status line, obs-fold unfolded. */
  readonly #response: boolean;
  #state = START_LINE;
  /** Bytes of the complete lines read so far. */
  #consumed = 0;
  /** Header lines read so far. */
  #count = 0;
  /** The start of a line that a chunk ended in the middle of; its bytes in [0, #bufLength). */
  #buf: Uint8Array | undefined;
  #bufLength = 0;
  /** The start line's fields: method and target, or the reason phrase (twice). */
  first = "";
  second = "";
  /** The start line says HTTP/1.0 (else HTTP/1.1). */
  http10 = false;
  /** The status code of a status line. */
  status = 0;
  headers: Array<[name: string, value: string]> = [];
  rest: Uint8Array = EMPTY;
  /** Why the head failed: BAD, HEAD_SIZE, HEADER_COUNT or a *_LINE_LENGTH. */
  failure = BAD;
  /** How a BAD head is malformed, e.g. "a CR not followed by LF". */
  detail = "";

  constructor(parser: string, limits: HeadLimits | undefined, response: boolean) {
    this.maxHeadSize = checkLimit(parser, "maxHeadSize", limits?.maxHeadSize ?? 8192, 1);
    this.maxHeaders = checkLimit(parser, "maxHeaders", limits?.maxHeaders ?? 100, 0);
    this.maxLineLength = checkLimit(parser, "maxLineLength", limits?.maxLineLength ?? 4096, 1);
    this.#response = response;
  }

  /** Whether push() returned 1 or -1: another push is misuse. */
  get finished(): boolean {
    return this.#state >= DONE;
  }

  /** Feeds the next chunk: 0 for more, 1 when the head is complete, -1 when it failed. */
  push(chunk: Uint8Array): -1 | 0 | 1 {
    recordCount = 0;
    const end = chunk.length;
    let pos = 0;
    if (this.#bufLength > 0) {
      // A line is pending from earlier chunks: look for its end in this chunk only (the bytes
      // already buffered were searched before), within what the limits still allow.
      const room = Math.min(this.maxLineLength + 2, this.maxHeadSize - this.#consumed) -
        this.#bufLength;
      const n = end < room ? end : room;
      const lf = (n === end ? chunk : chunk.subarray(0, n)).indexOf(LF);
      const take = lf < 0 ? n : lf + 1;
      this.#append(chunk, take);
      const buf = this.#buf!;
      const length = this.#bufLength;
      if (lf < 0) return this.#checkPartial(buf, 0, length) ? -1 : 0;
      if (this.#line(buf, 0, length) === FAIL) return -1;
      this.#flush(buf);
      this.#consumed += length;
      this.#bufLength = 0;
      pos = take;
      if (this.#state === DONE) return this.#finish(chunk, pos);
      if (this.#consumed >= this.maxHeadSize) return this.#failHeadSize();
    }
    const maxLine = this.maxLineLength + 2;
    while (pos < end) {
      // Never look further than the limits allow: the line (with its line end) must fit both
      // maxLineLength and what is left of maxHeadSize.
      const left = this.maxHeadSize - this.#consumed;
      let stop = pos + (maxLine < left ? maxLine : left);
      if (stop > end) stop = end;
      const next = this.#line(chunk, pos, stop);
      if (next === FAIL) return -1;
      if (next === INCOMPLETE) {
        if (this.#checkPartial(chunk, pos, stop)) return -1;
        this.#flush(chunk);
        this.#bufLength = 0;
        this.#append(chunk.subarray(pos), end - pos);
        return 0;
      }
      this.#consumed += next - pos;
      pos = next;
      if (this.#state === DONE) {
        this.#flush(chunk);
        return this.#finish(chunk, pos);
      }
      // No room is left for even the LF of the empty line that ends the head.
      if (this.#consumed >= this.maxHeadSize) return this.#failHeadSize();
    }
    this.#flush(chunk);
    return 0;
  }

  /** Copies `bytes[0, n)` to the end of the pending line, growing the buffer if needed. */
  #append(bytes: Uint8Array, n: number): void {
    const need = this.#bufLength + n;
    let buf = this.#buf;
    if (buf === undefined || buf.length < need) {
      // Never beyond maxLineLength + 2: a longer line fails before it is buffered.
      const size = Math.min(Math.max(need, (buf?.length ?? 128) * 2), this.maxLineLength + 2);
      const grown = new Uint8Array(size);
      if (buf !== undefined) grown.set(buf.subarray(0, this.#bufLength));
      this.#buf = buf = grown;
    }
    buf.set(n === bytes.length ? bytes : bytes.subarray(0, n), this.#bufLength);
    this.#bufLength = need;
  }

  /**
   * Fails a line that has no end within `bytes[start, stop)` if a limit is already certainly
   * exceeded, or if a status line certainly does not start with "HTTP/". Returns whether it
   * failed.
   */
  #checkPartial(bytes: Uint8Array, start: number, stop: number): boolean {
    const length = stop - start;
    // At least the LF is still to come.
    if (this.#consumed + length >= this.maxHeadSize) {
      this.#failHeadSize();
      return true;
    }
    // One trailing CR may yet turn out to be the line end; any other byte is content.
    const max = this.maxLineLength;
    if (length > max + 1 || (length === max + 1 && bytes[stop - 1] !== CR)) {
      this.#failLineLength();
      return true;
    }
    if (this.#state === HEADERS) {
      const c = bytes[start];
      // An obs-fold line of a response continues a header rather than adding one.
      if (
        this.#count >= this.maxHeaders && length > 0 && c !== CR && c !== LF &&
        !(this.#response && (c === SP || c === HTAB))
      ) {
        this.#failHeaderCount();
        return true;
      }
    } else if (
      this.#response && !(length === 1 && bytes[start] === CR) &&
      !this.#httpPrefix(bytes, start, stop)
    ) {
      // (A lone CR may still be an empty line, which #line fails with its own message.)
      return true;
    }
    return false;
  }

  /**
   * Reads one line from `bytes[start, stop)`: returns the index after its line end,
   * INCOMPLETE if there is no line end before `stop`, or FAIL.
   */
  #line(bytes: Uint8Array, start: number, stop: number): number {
    if (start >= stop) return INCOMPLETE;
    const c = bytes[start];
    if (c === LF || c === CR) {
      let next = start + 1;
      if (c === CR) {
        if (next >= stop) return INCOMPLETE;
        if (bytes[next] !== LF) return this.#fail(BAD, "a CR not followed by LF");
        next++;
      } else if (this.#response) {
        return this.#fail(BAD, "an LF not preceded by CR");
      }
      if (this.#state === HEADERS) {
        this.#state = DONE;
      } else if (this.#response) {
        // RFC 9112 §2.2 lets a server ignore empty lines before a request line; a response has
        // no such allowance.
        return this.#fail(BAD, "an empty line before the status line");
      }
      // RFC 9112 §2.2: a server SHOULD ignore at least one empty line before the request line.
      return next;
    }
    if (this.#state === START_LINE) {
      return this.#response
        ? this.#statusLine(bytes, start, stop)
        : this.#requestLine(bytes, start, stop);
    }
    if (c === SP || c === HTAB) {
      // RFC 9112 §5.2: obs-fold in a request MUST be rejected with 400 (or replaced by SP); a
      // user agent MUST replace it in a response with SP.
      if (this.#response && this.#count > 0) return this.#foldLine(bytes, start, stop);
      return this.#fail(BAD, "obsolete line folding (obs-fold) in a header");
    }
    if (this.#count >= this.maxHeaders) return this.#failHeaderCount();
    return this.#headerLine(bytes, start, stop);
  }

  /** `method SP request-target SP HTTP-version` (RFC 9112 §3). */
  #requestLine(bytes: Uint8Array, start: number, stop: number): number {
    let i = start;
    while (i < stop && TCHAR[bytes[i]] !== 0) i++;
    if (i >= stop) return INCOMPLETE;
    if (i === start || bytes[i] !== SP) {
      return this.#fail(BAD, "malformed request line (the method is not a token)");
    }
    const methodEnd = i++;
    const targetStart = i;
    let high = 0;
    for (; i < stop; i++) {
      const b = bytes[i];
      if (b <= SP || b === DEL) break;
      high |= b;
    }
    if (i >= stop) return INCOMPLETE;
    if (i === targetStart || bytes[i] !== SP) {
      return this.#fail(BAD, "malformed request line (bad request-target)");
    }
    const targetEnd = i++;
    const versionStart = i;
    while (i < stop && bytes[i] > SP && bytes[i] !== DEL) i++;
    if (i >= stop) return INCOMPLETE;
    const lineEnd = i;
    const next = afterLineEnd(bytes, i, stop, false);
    if (next === INCOMPLETE) return INCOMPLETE;
    if (next === BARE_CR) return this.#fail(BAD, "a CR not followed by LF");
    if (next === NO_LINE_END) return this.#fail(BAD, "malformed request line (bad HTTP version)");
    if (lineEnd - start > this.maxLineLength) return this.#failLineLength();
    const version = this.#version(bytes, versionStart, lineEnd, "request line");
    if (version === FAIL) return FAIL;
    addRecord(version | (high & 0x80 ? F_HIGH : 0), start, methodEnd, targetStart, targetEnd);
    this.#state = HEADERS;
    return next;
  }

  /**
   * `HTTP-version SP status-code SP [ reason-phrase ]` (RFC 9112 §4). The SP before an empty
   * reason phrase may be missing: RFC 9112 §4 has a client ignore the reason phrase, and some
   * servers end the line after the code.
   */
  #statusLine(bytes: Uint8Array, start: number, stop: number): number {
    let i = start;
    if (!this.#httpPrefix(bytes, start, stop)) return FAIL;
    while (i < stop && bytes[i] > SP && bytes[i] !== DEL) i++;
    if (i >= stop) return INCOMPLETE;
    if (bytes[i] !== SP) {
      return this.#fail(
        BAD,
        bytes[i] === CR || bytes[i] === LF
          ? "malformed status line (no status code)"
          : "malformed status line (bad HTTP version)",
      );
    }
    const version = this.#version(bytes, start, i, "status line");
    if (version === FAIL) return FAIL;
    i++;
    let status = 0;
    for (const last = i + 3; i < last; i++) {
      if (i >= stop) return INCOMPLETE;
      const d = bytes[i] - 0x30;
      if (d < 0 || d > 9) {
        return this.#fail(BAD, "malformed status line (the status code is not three digits)");
      }
      status = status * 10 + d;
    }
    if (i >= stop) return INCOMPLETE;
    let reasonStart = i;
    let high = 0;
    if (bytes[i] === SP) {
      reasonStart = ++i;
      // reason-phrase = 1*( HTAB / SP / VCHAR / obs-text )
      for (; i < stop; i++) {
        const b = bytes[i];
        if (b < SP ? b !== HTAB : b === DEL) break;
        high |= b;
      }
      if (i >= stop) return INCOMPLETE;
    }
    const lineEnd = i;
    const next = afterLineEnd(bytes, i, stop, true);
    if (next < 0) {
      return next === INCOMPLETE ? INCOMPLETE : this.#badLineEnd(
        bytes,
        i,
        stop,
        reasonStart === i && bytes[i - 1] !== SP
          ? "the status code is not three digits"
          : "a control character in the reason phrase",
      );
    }
    if (lineEnd - start > this.maxLineLength) return this.#failLineLength();
    this.status = status;
    addRecord(version | (high & 0x80 ? F_HIGH : 0), reasonStart, lineEnd, reasonStart, lineEnd);
    this.#state = HEADERS;
    return next;
  }

  /**
   * Whether the first bytes of `bytes[start, end)` (at most 5) can begin a status line: they
   * are a prefix of "HTTP/". Fails the head if not, so garbage is refused at its first bytes.
   */
  #httpPrefix(bytes: Uint8Array, start: number, end: number): boolean {
    const n = end - start < 5 ? end - start : 5;
    for (let k = 0; k < n; k++) {
      if (bytes[start + k] !== HTTP_SLASH[k]) {
        this.#fail(BAD, "not an HTTP response (the status line does not start with HTTP/)");
        return false;
      }
    }
    return true;
  }

  /**
   * The HTTP-version from `bytes[start, end)`: 0 for HTTP/1.1, F_HTTP10 for HTTP/1.0, else
   * FAIL. "HTTP/1." then "1" or "0", byte by byte: no string is made for the common case.
   */
  #version(bytes: Uint8Array, start: number, end: number, line: string): number {
    if (
      end - start === 8 && bytes[start] === 0x48 && bytes[start + 1] === 0x54 &&
      bytes[start + 2] === 0x54 && bytes[start + 3] === 0x50 && bytes[start + 4] === 0x2f &&
      bytes[start + 5] === 0x31 && bytes[start + 6] === 0x2e &&
      (bytes[start + 7] === 0x31 || bytes[start + 7] === 0x30)
    ) {
      return bytes[start + 7] === 0x30 ? F_HTTP10 : 0;
    }
    const version = latin1(bytes, start, end);
    if (/^HTTP\/\d+(\.\d+)?$/.test(version)) {
      return this.#fail(
        BAD,
        `HTTP version ${version} is not supported here (HTTP/1.1 or HTTP/1.0 only)`,
      );
    }
    return this.#fail(BAD, `malformed ${line} (bad HTTP version)`);
  }

  /** Fails a status line at `bytes[i]`, which should have ended it or a field of it. */
  #badLineEnd(bytes: Uint8Array, i: number, stop: number, what: string): typeof FAIL {
    const next = afterLineEnd(bytes, i, stop, true);
    if (next === BARE_CR) return this.#fail(BAD, "a CR not followed by LF");
    if (next === BARE_LF) return this.#fail(BAD, "an LF not preceded by CR");
    return this.#fail(BAD, `malformed status line (${what})`);
  }

  /** `field-name ":" OWS field-value OWS` (RFC 9112 §5). */
  #headerLine(bytes: Uint8Array, start: number, stop: number): number {
    let i = start;
    let upper = 0;
    for (; i < stop; i++) {
      const t = TCHAR[bytes[i]];
      if (t === 0) break;
      upper |= t;
    }
    if (i >= stop) return INCOMPLETE;
    if (i === start) return this.#fail(BAD, "a header line without a field name");
    if (bytes[i] !== COLON) {
      // RFC 9112 §5.1: whitespace between field name and colon MUST be rejected with 400.
      return this.#fail(
        BAD,
        bytes[i] === SP || bytes[i] === HTAB
          ? "whitespace between a header field name and its colon"
          : "a header field name that is not a token",
      );
    }
    const nameEnd = i++;
    while (i < stop && (bytes[i] === SP || bytes[i] === HTAB)) i++;
    const valueStart = i;
    let high = 0;
    for (; i < stop; i++) {
      // One unsigned compare lets the visible ASCII bytes (0x21–0x7E) through; the rest take
      // the slow branch. Trailing OWS is trimmed afterwards rather than tracked here: a few
      // per cent faster in Deno, no slower in Bun.
      const b = bytes[i];
      if ((b - 0x21) >>> 0 > 0x5d) {
        if (b === SP || b === HTAB) continue;
        if (b < 0x80) break;
        high = F_HIGH;
      }
    }
    if (i >= stop) return INCOMPLETE;
    let valueEnd = i;
    while (valueEnd > valueStart && (bytes[valueEnd - 1] === SP || bytes[valueEnd - 1] === HTAB)) {
      valueEnd--;
    }
    const next = afterLineEnd(bytes, i, stop, this.#response);
    if (next < 0) return next === INCOMPLETE ? INCOMPLETE : this.#badValueEnd(next);
    if (i - start > this.maxLineLength) return this.#failLineLength();
    addRecord(F_HEADER | (upper & F_UPPER) | high, start, nameEnd, valueStart, valueEnd);
    this.#count++;
    return next;
  }

  /** An obs-fold line of a response: `1*( SP / HTAB ) field-value OWS` (RFC 9112 §5.2). */
  #foldLine(bytes: Uint8Array, start: number, stop: number): number {
    let i = start;
    while (i < stop && (bytes[i] === SP || bytes[i] === HTAB)) i++;
    const valueStart = i;
    let high = 0;
    for (; i < stop; i++) {
      const b = bytes[i];
      if ((b - 0x21) >>> 0 > 0x5d) {
        if (b === SP || b === HTAB) continue;
        if (b < 0x80) break;
        high = F_HIGH;
      }
    }
    if (i >= stop) return INCOMPLETE;
    let valueEnd = i;
    while (valueEnd > valueStart && (bytes[valueEnd - 1] === SP || bytes[valueEnd - 1] === HTAB)) {
      valueEnd--;
    }
    const next = afterLineEnd(bytes, i, stop, true);
    if (next < 0) return next === INCOMPLETE ? INCOMPLETE : this.#badValueEnd(next);
    if (i - start > this.maxLineLength) return this.#failLineLength();
    addRecord(F_HEADER | F_FOLD | high, valueStart, valueEnd, valueStart, valueEnd);
    return next;
  }

  #badValueEnd(next: number): typeof FAIL {
    if (next === BARE_CR) return this.#fail(BAD, "a CR not followed by LF");
    if (next === BARE_LF) return this.#fail(BAD, "an LF not preceded by CR");
    // RFC 9110 §5.5: CTLs other than HTAB are not allowed in a field value.
    return this.#fail(BAD, "a control character in a header field value");
  }

  /** Turns the records of the lines completed in `bytes` into strings. */
  #flush(bytes: Uint8Array): void {
    const n = recordCount;
    if (n === 0) return;
    recordCount = 0;
    const rec = records;
    const end = n * RECORD;
    let flags = 0;
    for (let r = 0; r < end; r += RECORD) flags |= rec[r];
    if (flags & (F_HIGH | F_FOLD)) return this.#flushSlow(bytes, end);
    // All ASCII: copy the lines to the scratch buffer, lower-case the field names there, and
    // decode everything at once. One String#toLowerCase per name cost more than the rest of
    // the parse together (bench/handshake_bench.ts, both runtimes).
    const base = rec[1];
    const length = rec[end - 1] - base;
    if (scratch.length < length) scratch = new Uint8Array(Math.max(length, scratch.length * 2));
    const copy = scratch;
    copy.set(base === 0 && length === bytes.length ? bytes : bytes.subarray(base, base + length));
    if (flags & F_UPPER) {
      for (let r = 0; r < end; r += RECORD) {
        if ((rec[r] & F_UPPER) === 0) continue;
        for (let i = rec[r + 1] - base, e = rec[r + 2] - base; i < e; i++) {
          const c = copy[i];
          if (c <= 0x5a && c >= 0x41) copy[i] = c | 0x20;
        }
      }
    }
    const text = ASCII_DECODER.decode(copy.subarray(0, length));
    const headers = this.headers;
    for (let r = 0; r < end; r += RECORD) {
      const first = text.substring(rec[r + 1] - base, rec[r + 2] - base);
      const second = text.substring(rec[r + 3] - base, rec[r + 4] - base);
      if (rec[r] & F_HEADER) headers.push([first, second]);
      else this.#setStartLine(first, second, rec[r]);
    }
  }

  /** The rare path of {@linkcode HeadReader.#flush}: bytes 0x80–0xFF (read as latin1), or obs-fold. */
  #flushSlow(bytes: Uint8Array, end: number): void {
    const rec = records;
    const headers = this.headers;
    for (let r = 0; r < end; r += RECORD) {
      const flags = rec[r];
      const first = latin1(bytes, rec[r + 1], rec[r + 2]);
      if (flags & F_FOLD) {
        // RFC 9112 §5.2: the obs-fold becomes one SP; an empty continuation adds nothing.
        const last = headers[headers.length - 1];
        if (first !== "") last[1] = last[1] === "" ? first : `${last[1]} ${first}`;
      } else if (flags & F_HEADER) {
        headers.push([first.toLowerCase(), latin1(bytes, rec[r + 3], rec[r + 4])]);
      } else {
        this.#setStartLine(first, latin1(bytes, rec[r + 3], rec[r + 4]), flags);
      }
    }
  }

  #setStartLine(first: string, second: string, flags: number): void {
    this.first = first;
    this.second = second;
    this.http10 = (flags & F_HTTP10) !== 0;
  }

  #finish(chunk: Uint8Array, pos: number): 1 {
    this.rest = pos < chunk.length ? chunk.subarray(pos) : EMPTY;
    this.#buf = undefined;
    return 1;
  }

  #fail(failure: number, detail: string): typeof FAIL {
    recordCount = 0;
    this.#state = FAILED;
    this.#buf = undefined;
    this.failure = failure;
    this.detail = detail;
    return FAIL;
  }

  #failHeadSize(): -1 {
    this.#fail(HEAD_SIZE, "");
    return -1;
  }

  #failHeaderCount(): typeof FAIL {
    return this.#fail(HEADER_COUNT, "");
  }

  #failLineLength(): typeof FAIL {
    return this.#fail(this.#state === START_LINE ? START_LINE_LENGTH : HEADER_LINE_LENGTH, "");
  }
}

// ---------------------------------------------------------------------------------------------
// Request heads

/**
 * Incremental parser for one request head arriving in any number of chunks (RFC 9112 §2–§5).
 *
 * It works on bytes: a head that arrives in one chunk is read in a single pass, with no copy;
 * only a line split across chunks is copied, into one internal buffer that never grows beyond
 * `maxLineLength + 2` bytes. Every limit is enforced as the bytes arrive, so an oversized head
 * is refused as soon as it certainly exceeds a limit, not when it ends.
 *
 * @example
 * ```ts
 * import { RequestHeadParser } from "./http1.ts";
 * const parser = new RequestHeadParser();
 * const bytes = new TextEncoder().encode("GET / HTTP/1.1\r\nHost: example.com\r\n\r\n");
 * console.log(parser.push(bytes.subarray(0, 10))); // 0
 * console.log(parser.push(bytes.subarray(10))); // 1
 * console.log(parser.head?.headers); // [ [ "host", "example.com" ] ]
 * ```
 */
export class RequestHeadParser {
  #reader: HeadReader;
  #head: RequestHead | undefined;
  #refusal: HandshakeRefusal | undefined;

  /**
   * Creates a parser for one request head.
   *
   * @param limits Limits on the head; each has a default.
   * @throws {RangeError} If a limit is not a positive integer (`maxHeaders` may be 0).
   *
   * @example
   * ```ts
   * import { RequestHeadParser } from "./http1.ts";
   * const parser = new RequestHeadParser({ maxHeadSize: 16384 });
   * ```
   */
  constructor(limits?: RequestHeadLimits) {
    this.#reader = new HeadReader("RequestHeadParser", limits, false);
  }

  /**
   * The parsed head once {@linkcode RequestHeadParser.push} returned 1, else `undefined`.
   *
   * @returns The head, or `undefined`.
   *
   * @example
   * ```ts
   * import { RequestHeadParser } from "./http1.ts";
   * const parser = new RequestHeadParser();
   * parser.push(new TextEncoder().encode("GET /chat HTTP/1.1\r\nHost: a\r\n\r\n"));
   * console.log(parser.head?.target); // /chat
   * ```
   */
  get head(): RequestHead | undefined {
    return this.#head;
  }

  /**
   * Why the head was refused, once {@linkcode RequestHeadParser.push} returned -1, else
   * `undefined`.
   *
   * @returns The refusal, or `undefined`.
   *
   * @example
   * ```ts
   * import { RequestHeadParser } from "./http1.ts";
   * const parser = new RequestHeadParser();
   * parser.push(new TextEncoder().encode("GET / HTTP/2.0\r\n"));
   * console.log(parser.refusal?.status); // 400
   * ```
   */
  get refusal(): HandshakeRefusal | undefined {
    return this.#refusal;
  }

  /**
   * The bytes that followed the head in the chunk that completed it: a view of that chunk, not
   * a copy, and empty if none (or before the head is complete). A client may pipeline its first
   * WebSocket frame right behind its request; these bytes must not be lost.
   *
   * @returns The bytes after the head.
   *
   * @example
   * ```ts
   * import { RequestHeadParser } from "./http1.ts";
   * const parser = new RequestHeadParser();
   * parser.push(new TextEncoder().encode("GET / HTTP/1.1\r\nHost: a\r\n\r\nxyz"));
   * console.log(parser.rest.length); // 3
   * ```
   */
  get rest(): Uint8Array {
    return this.#reader.rest;
  }

  /**
   * Feeds the next chunk of the request.
   *
   * @param chunk The next bytes from the client. The parser keeps no reference to it unless
   * the head completes in it (then {@linkcode RequestHeadParser.rest} is a view of it).
   * @returns 0 if more bytes are needed, 1 if the head is complete
   * ({@linkcode RequestHeadParser.head}), -1 if it was refused
   * ({@linkcode RequestHeadParser.refusal}).
   * @throws {TypeError} If called again after it returned 1 or -1.
   *
   * @example
   * ```ts
   * import { RequestHeadParser } from "./http1.ts";
   * const parser = new RequestHeadParser();
   * console.log(parser.push(new TextEncoder().encode("GET / HTTP/1.1\r\n"))); // 0
   * console.log(parser.push(new TextEncoder().encode("Host: a\r\n\r\n"))); // 1
   * ```
   */
  push(chunk: Uint8Array): -1 | 0 | 1 {
    const reader = this.#reader;
    if (reader.finished) {
      throw new TypeError("Cannot push: the request head is already parsed");
    }
    const result = reader.push(chunk);
    if (result === 1) {
      this.#head = {
        method: reader.first,
        target: reader.second,
        version: reader.http10 ? "HTTP/1.0" : "HTTP/1.1",
        headers: reader.headers,
      };
    } else if (result === -1) {
      this.#refusal = requestRefusal(reader);
    }
    return result;
  }
}

/** The refusal for a request head that failed: 400, 414 or 431 (RFC 9112, RFC 6585 §5). */
function requestRefusal(reader: HeadReader): HandshakeRefusal {
  const tooLarge = "Request header fields too large";
  let status = 431;
  let message: string;
  switch (reader.failure) {
    case HEAD_SIZE:
      message = `${tooLarge}: the head exceeds ${reader.maxHeadSize} bytes`;
      break;
    case HEADER_COUNT:
      message = `${tooLarge}: more than ${reader.maxHeaders} header lines`;
      break;
    case START_LINE_LENGTH:
      status = 414;
      message = `URI too long: the request line exceeds ${reader.maxLineLength} bytes`;
      break;
    case HEADER_LINE_LENGTH:
      message = `${tooLarge}: a header line exceeds ${reader.maxLineLength} bytes`;
      break;
    default:
      status = 400;
      message = `Bad request: ${reader.detail}`;
  }
  return { status, message, headers: [] };
}

// ---------------------------------------------------------------------------------------------
// Response heads

/**
 * Incremental parser for one response head arriving in any number of chunks (RFC 9112 §2,
 * §4, §5): the status line, then the header lines, then an empty line.
 *
 * It shares {@linkcode RequestHeadParser}'s machinery and limits, and is stricter where a
 * client can be: every line ends with CRLF (a bare CR or LF fails), the version is HTTP/1.1 or
 * HTTP/1.0, the status code three digits; the reason phrase may be empty. Bytes that cannot
 * start "HTTP/" fail at once. A head that fails is a {@linkcode HandshakeError} value
 * (`WS_ERR_HANDSHAKE_BAD_RESPONSE`, or `WS_ERR_HANDSHAKE_TOO_LARGE` over a limit), never a
 * throw.
 *
 * @example
 * ```ts
 * import { ResponseHeadParser } from "./http1.ts";
 * const parser = new ResponseHeadParser();
 * const head = new TextEncoder().encode(
 *   "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n",
 * );
 * console.log(parser.push(new Uint8Array([...head, 0x81, 0x00]))); // 1
 * console.log(parser.head?.status, parser.head?.headers); // 101 [ [ "upgrade", "websocket" ] ]
 * console.log(parser.rest); // Uint8Array(2) [ 129, 0 ]
 * ```
 */
export class ResponseHeadParser {
  #reader: HeadReader;
  #head: ResponseHead | undefined;
  #error: HandshakeError | undefined;

  /**
   * Creates a parser for one response head.
   *
   * @param limits Limits on the head; each has a default.
   * @throws {RangeError} If a limit is not a positive integer (`maxHeaders` may be 0).
   *
   * @example
   * ```ts
   * import { ResponseHeadParser } from "./http1.ts";
   * const parser = new ResponseHeadParser({ maxHeadSize: 16384 });
   * ```
   */
  constructor(limits?: HeadLimits) {
    this.#reader = new HeadReader("ResponseHeadParser", limits, true);
  }

  /**
   * The parsed head once {@linkcode ResponseHeadParser.push} returned 1, else `undefined`.
   *
   * @returns The head, or `undefined`.
   *
   * @example
   * ```ts
   * import { ResponseHeadParser } from "./http1.ts";
   * const parser = new ResponseHeadParser();
   * parser.push(new TextEncoder().encode("HTTP/1.1 404 Not Found\r\n\r\n"));
   * console.log(parser.head?.reason); // Not Found
   * ```
   */
  get head(): ResponseHead | undefined {
    return this.#head;
  }

  /**
   * Why the head failed, once {@linkcode ResponseHeadParser.push} returned -1, else
   * `undefined`.
   *
   * @returns The error, or `undefined`.
   *
   * @example
   * ```ts
   * import { ResponseHeadParser } from "./http1.ts";
   * const parser = new ResponseHeadParser();
   * parser.push(new TextEncoder().encode("SSH-2.0-OpenSSH_9.2\r\n"));
   * console.log(parser.error?.code); // WS_ERR_HANDSHAKE_BAD_RESPONSE
   * ```
   */
  get error(): HandshakeError | undefined {
    return this.#error;
  }

  /**
   * The bytes that followed the head in the chunk that completed it: a view of that chunk, not
   * a copy, and empty if none (or before the head is complete). After a 101 these are the
   * server's first frames; after another status, the start of the body.
   *
   * @returns The bytes after the head.
   *
   * @example
   * ```ts
   * import { ResponseHeadParser } from "./http1.ts";
   * const parser = new ResponseHeadParser();
   * parser.push(new TextEncoder().encode("HTTP/1.1 403 Forbidden\r\n\r\nno"));
   * console.log(parser.rest.length); // 2
   * ```
   */
  get rest(): Uint8Array {
    return this.#reader.rest;
  }

  /**
   * Feeds the next chunk of the response.
   *
   * @param chunk The next bytes from the server. The parser keeps no reference to it unless
   * the head completes in it (then {@linkcode ResponseHeadParser.rest} is a view of it).
   * @returns 0 if more bytes are needed, 1 if the head is complete
   * ({@linkcode ResponseHeadParser.head}), -1 if it failed
   * ({@linkcode ResponseHeadParser.error}).
   * @throws {TypeError} If called again after it returned 1 or -1.
   *
   * @example
   * ```ts
   * import { ResponseHeadParser } from "./http1.ts";
   * const parser = new ResponseHeadParser();
   * console.log(parser.push(new TextEncoder().encode("HTTP/1.1 101 \r\n"))); // 0
   * console.log(parser.push(new TextEncoder().encode("\r\n"))); // 1
   * ```
   */
  push(chunk: Uint8Array): -1 | 0 | 1 {
    const reader = this.#reader;
    if (reader.finished) {
      throw new TypeError("Cannot push: the response head is already parsed");
    }
    const result = reader.push(chunk);
    if (result === 1) {
      this.#head = {
        version: reader.http10 ? "HTTP/1.0" : "HTTP/1.1",
        status: reader.status,
        reason: reader.first,
        headers: reader.headers,
      };
    } else if (result === -1) {
      this.#error = responseError(reader);
    }
    return result;
  }
}

/** The error for a response head that failed. */
function responseError(reader: HeadReader): HandshakeError {
  const tooLarge = "Response head too large";
  let message: string;
  switch (reader.failure) {
    case HEAD_SIZE:
      message = `${tooLarge}: the head exceeds ${reader.maxHeadSize} bytes`;
      break;
    case HEADER_COUNT:
      message = `${tooLarge}: more than ${reader.maxHeaders} header lines`;
      break;
    case START_LINE_LENGTH:
      message = `${tooLarge}: the status line exceeds ${reader.maxLineLength} bytes`;
      break;
    case HEADER_LINE_LENGTH:
      message = `${tooLarge}: a header line exceeds ${reader.maxLineLength} bytes`;
      break;
    default:
      return new HandshakeError("WS_ERR_HANDSHAKE_BAD_RESPONSE", `Bad response: ${reader.detail}`);
  }
  return new HandshakeError("WS_ERR_HANDSHAKE_TOO_LARGE", message);
}

// ---------------------------------------------------------------------------------------------
// Writing heads

/**
 * Checks that `name` is a header field name: a token (RFC 9110 §5.1).
 *
 * @param name The name.
 * @param what What is being written, for the message: `"the response"`, `"the request"`.
 * @throws {TypeError} If it is not a token.
 *
 * @example
 * ```ts
 * import { checkHeaderName } from "./http1.ts";
 * checkHeaderName("X-Trace-Id", "the request");
 * try {
 *   checkHeaderName("Bad Name", "the request");
 * } catch (error) {
 *   console.log((error as Error).message);
 *   // Cannot write the request: header name "Bad Name" is not a token
 * }
 * ```
 */
export function checkHeaderName(name: string, what: string): void {
  let ok = name.length > 0;
  for (let i = 0; ok && i < name.length; i++) {
    const c = name.charCodeAt(i);
    ok = c < 0x80 && TCHAR[c] !== 0;
  }
  if (!ok) throw new TypeError(`Cannot write ${what}: header name "${name}" is not a token`);
}

/**
 * Checks that `value` can be written as a header field value in latin1: no CR, LF or NUL
 * (RFC 9110 §5.5), nothing above U+00FF.
 *
 * @param name The header's name, for the message.
 * @param value The value.
 * @param what What is being written, for the message: `"the response"`, `"the request"`.
 * @throws {TypeError} If the value holds CR, LF, NUL or a character above U+00FF.
 *
 * @example
 * ```ts
 * import { checkHeaderValue } from "./http1.ts";
 * checkHeaderValue("Authorization", "Bearer abc", "the request");
 * ```
 */
export function checkHeaderValue(name: string, value: string, what: string): void {
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    // RFC 9110 §5.5: CR, LF and NUL would split or end the head; above 0xFF is not latin1.
    if (c === CR || c === LF || c === 0 || c > 0xff) {
      throw new TypeError(
        `Cannot write ${what}: the value of header "${name}" holds ${
          c > 0xff ? "a character above U+00FF" : "CR, LF or NUL"
        }`,
      );
    }
  }
}

/**
 * Headers in any of the forms `fetch` takes them (a `Headers`, `[name, value]` pairs or a
 * record of names to values), as pairs.
 *
 * @param init The headers.
 * @param what What is being written, for the messages. @default {"the response"}
 * @returns The pairs, in order (a `Headers` gives them lower-cased and sorted).
 * @throws {TypeError} For anything else (a string, a `Map`, a pair that is not two strings).
 *
 * @example
 * ```ts
 * import { headerPairs } from "./http1.ts";
 * console.log(headerPairs({ "X-Id": "1" })); // [ [ "X-Id", "1" ] ]
 * console.log(headerPairs(new Headers({ "X-Id": "1" }))); // [ [ "x-id", "1" ] ]
 * ```
 */
export function headerPairs(
  init: Headers | Array<[string, string]> | Record<string, string>,
  what = "the response",
): Array<[string, string]> {
  if (init instanceof Headers) return [...init];
  const expected = "a Headers, an array of [name, value] pairs or a record of strings";
  if (Array.isArray(init)) {
    for (let i = 0; i < init.length; i++) {
      const pair: unknown = init[i];
      if (
        !Array.isArray(pair) || pair.length !== 2 || typeof pair[0] !== "string" ||
        typeof pair[1] !== "string"
      ) {
        throw new TypeError(
          `Cannot write ${what}: headers must be ${expected}; item ${i} is not a pair of strings`,
        );
      }
    }
    return init;
  }
  const prototype = typeof init === "object" && init !== null
    ? Object.getPrototypeOf(init)
    : undefined;
  if (prototype !== Object.prototype && prototype !== null) {
    const kind = typeof init === "string"
      ? `the string ${JSON.stringify((init as string).slice(0, 40))}`
      : typeof init === "object" && init !== null
      ? `a ${(init as object).constructor?.name || "object"}`
      : String(init);
    throw new TypeError(`Cannot write ${what}: headers must be ${expected}, got ${kind}`);
  }
  const pairs = Object.entries(init);
  for (const [name, value] of pairs) {
    if (typeof value !== "string") {
      throw new TypeError(
        `Cannot write ${what}: headers must be ${expected}; the value of "${name}" is a ${typeof value}`,
      );
    }
  }
  return pairs;
}

/**
 * `name: value\r\n` for each header, each checked with {@linkcode checkHeaderName} and
 * {@linkcode checkHeaderValue}.
 *
 * @param headers The headers, in order.
 * @param what What is being written, for the messages.
 * @returns The header lines.
 * @throws {TypeError} If a name is not a token or a value cannot be written.
 *
 * @example
 * ```ts
 * import { headerLines } from "./http1.ts";
 * console.log(JSON.stringify(headerLines({ "X-A": "1" }, "the response"))); // "X-A: 1\r\n"
 * ```
 */
export function headerLines(
  headers: Array<[string, string]> | Record<string, string>,
  what: string,
): string {
  let text = "";
  const list = Array.isArray(headers) ? headers : Object.entries(headers);
  for (let i = 0; i < list.length; i++) {
    const [name, value] = list[i];
    checkHeaderName(name, what);
    checkHeaderValue(name, value, what);
    text += `${name}: ${value}\r\n`;
  }
  return text;
}

/**
 * Text whose characters are all below U+0100 (checked by the caller) as latin1 bytes.
 *
 * @param text The text.
 * @param extra Bytes to leave free after it.
 * @returns A new buffer of `text.length + extra` bytes.
 *
 * @example
 * ```ts
 * import { latin1Bytes } from "./http1.ts";
 * console.log(latin1Bytes("caf\xe9", 0)); // Uint8Array(4) [ 99, 97, 102, 233 ]
 * ```
 */
export function latin1Bytes(text: string, extra: number): Uint8Array {
  const out = new Uint8Array(text.length + extra);
  for (let i = 0; i < text.length; i++) out[i] = text.charCodeAt(i);
  return out;
}

/** Reason phrases (RFC 9110 §15) for the statuses a refused handshake is likely to use. */
const REASONS: Record<number, string> = {
  200: "OK",
  201: "Created",
  202: "Accepted",
  204: "No Content",
  301: "Moved Permanently",
  302: "Found",
  303: "See Other",
  304: "Not Modified",
  307: "Temporary Redirect",
  308: "Permanent Redirect",
  400: "Bad Request",
  401: "Unauthorized",
  403: "Forbidden",
  404: "Not Found",
  405: "Method Not Allowed",
  408: "Request Timeout",
  409: "Conflict",
  410: "Gone",
  413: "Content Too Large",
  414: "URI Too Long",
  426: "Upgrade Required",
  429: "Too Many Requests",
  431: "Request Header Fields Too Large",
  500: "Internal Server Error",
  501: "Not Implemented",
  502: "Bad Gateway",
  503: "Service Unavailable",
  504: "Gateway Timeout",
};

/**
 * The bytes of a complete HTTP/1.1 response after which the server closes the connection:
 * the status line, `Connection: close`, `Content-Length` (except for 1xx, 204 and 304, which
 * have no body), the given headers, then the body.
 * Refused handshakes and the upgrade hook's `Response` are written with it.
 *
 * @param status An HTTP status code (100–599).
 * @param headers The headers to send, besides `Connection` and `Content-Length`.
 * @param body The body.
 * @returns The whole response.
 * @throws {TypeError} If a header name is not a token, or a value holds CR, LF, NUL or a
 * character above U+00FF.
 * @throws {RangeError} If the status is not an integer from 100 to 599.
 * @throws {TypeError} If a 1xx, 204 or 304 response is given a body.
 *
 * @example
 * ```ts
 * import { httpResponse } from "./http1.ts";
 * const bytes = httpResponse(401, [["WWW-Authenticate", "Bearer"]], new Uint8Array(0));
 * console.log(new TextDecoder().decode(bytes).split("\r\n")[0]); // HTTP/1.1 401 Unauthorized
 * ```
 */
export function httpResponse(
  status: number,
  headers: Array<[string, string]>,
  body: Uint8Array,
): Uint8Array {
  if (!Number.isInteger(status) || status < 100 || status > 599) {
    throw new RangeError(`Cannot write the response: ${status} is not an HTTP status code`);
  }
  // RFC 9110 §8.6: no Content-Length in a 1xx or 204 response, nor in a 304 (whose would be
  // the length of a 200's content); RFC 9112 §6.3: none of them has content.
  const bodiless = status < 200 || status === 204 || status === 304;
  if (bodiless && body.length !== 0) {
    throw new TypeError(`Cannot write the response: a ${status} response has no body`);
  }
  const text = `HTTP/1.1 ${status} ${REASONS[status] ?? ""}\r\nConnection: close\r\n` +
    (bodiless ? "" : `Content-Length: ${body.length}\r\n`) +
    `${headerLines(headers, "the response")}\r\n`;
  const out = latin1Bytes(text, body.length);
  out.set(body, text.length);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Chunked bodies (RFC 9112 §7.1)

/** Where a {@linkcode ChunkedDecoder} is. */
const CHUNK_SIZE = 0;
const CHUNK_DATA = 1;
const CHUNK_DATA_END = 2;
const CHUNK_TRAILER = 3;
const CHUNK_DONE = 4;
const CHUNK_FAILED = 5;

/** Longest chunk-size line (with extensions) or trailer line accepted. */
const MAX_CHUNK_LINE = 4096;

/**
 * An incremental decoder of a chunked message body (RFC 9112 §7.1): bytes in as they arrive,
 * the body's data out, the chunk framing, extensions and trailer fields dropped. It stops at
 * the last chunk's end ({@linkcode ChunkedDecoder.done}) or at the first framing error
 * ({@linkcode ChunkedDecoder.failed}); bytes after either are not looked at.
 *
 * @example
 * ```ts
 * import { ChunkedDecoder } from "./http1.ts";
 * const decoder = new ChunkedDecoder();
 * const bytes = new TextEncoder().encode("4\r\nWiki\r\n0\r\n\r\n");
 * const text = decoder.push(bytes).map((piece) => new TextDecoder().decode(piece)).join("");
 * console.log(text, decoder.done); // Wiki true
 * ```
 */
export class ChunkedDecoder {
  #state = CHUNK_SIZE;
  /** Bytes of the current line so far (a size line or a trailer line), as Latin-1. */
  #line = "";
  /** Data bytes left in the current chunk. */
  #left = 0;

  /** The last chunk and the trailer section have been read: the body is complete. */
  get done(): boolean {
    return this.#state === CHUNK_DONE;
  }

  /** The framing was broken: decoding stopped. */
  get failed(): boolean {
    return this.#state === CHUNK_FAILED;
  }

  /**
   * Decodes the next bytes.
   *
   * @param bytes What arrived.
   * @returns The body's data they carried, as views of `bytes`.
   */
  push(bytes: Uint8Array): Uint8Array[] {
    const out: Uint8Array[] = [];
    let i = 0;
    while (i < bytes.length && this.#state < CHUNK_DONE) {
      if (this.#state === CHUNK_DATA) {
        const take = Math.min(this.#left, bytes.length - i);
        out.push(bytes.subarray(i, i + take));
        i += take;
        this.#left -= take;
        if (this.#left === 0) this.#state = CHUNK_DATA_END;
        continue;
      }
      const byte = bytes[i++];
      if (byte !== 0x0a) {
        if (this.#line.length >= MAX_CHUNK_LINE) this.#state = CHUNK_FAILED;
        else this.#line += String.fromCharCode(byte);
        continue;
      }
      // A line ends (CRLF; a bare LF is taken too, RFC 9112 §2.2).
      const line = this.#line.endsWith("\r") ? this.#line.slice(0, -1) : this.#line;
      this.#line = "";
      this.#endLine(line);
    }
    return out;
  }

  #endLine(line: string): void {
    switch (this.#state) {
      case CHUNK_SIZE: {
        // chunk-size [ chunk-ext ]: hex digits, then extensions after ";" (ignored).
        const size = line.split(";", 1)[0].trim();
        if (!/^[0-9a-fA-F]{1,12}$/.test(size)) {
          this.#state = CHUNK_FAILED;
          return;
        }
        this.#left = parseInt(size, 16);
        this.#state = this.#left === 0 ? CHUNK_TRAILER : CHUNK_DATA;
        return;
      }
      case CHUNK_DATA_END:
        this.#state = line === "" ? CHUNK_SIZE : CHUNK_FAILED;
        return;
      case CHUNK_TRAILER:
        // Trailer fields until an empty line.
        if (line === "") this.#state = CHUNK_DONE;
        return;
    }
  }
}
