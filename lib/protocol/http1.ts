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
  /** A request line ended with a bare LF (RFC 9112 §2.2 lets a server take it). */
  bareLf = false;
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

  /** Bytes of the head read so far (all of it once complete). */
  get size(): number {
    return this.#consumed;
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
      } else {
        this.bareLf = true;
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
    if (bytes[lineEnd] === LF) this.bareLf = true;
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
    if (bytes[i] === LF) this.bareLf = true;
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

  /** Back to the state of a new reader with the same limits (the results read are let go). */
  reset(): void {
    this.#state = START_LINE;
    this.#consumed = 0;
    this.#count = 0;
    this.#buf = undefined;
    this.#bufLength = 0;
    this.first = this.second = this.detail = "";
    this.http10 = this.bareLf = false;
    this.status = 0;
    this.headers = [];
    this.rest = EMPTY;
    this.failure = BAD;
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
   * The bytes of the head read so far: all of them (empty lines before the request line
   * included) once {@linkcode RequestHeadParser.push} returned 1.
   *
   * @returns The head's size in bytes.
   *
   * @example
   * ```ts
   * import { RequestHeadParser } from "./http1.ts";
   * const parser = new RequestHeadParser();
   * parser.push(new TextEncoder().encode("GET / HTTP/1.1\r\nHost: a\r\n\r\nxyz"));
   * console.log(parser.size); // 27
   * ```
   */
  get size(): number {
    return this.#reader.size;
  }

  /**
   * Whether a line of the head ended with a bare LF rather than CRLF. RFC 9112 §2.2 lets a
   * server accept one, and the upgrade handshake does; a request whose body a proxy in front
   * might frame differently (plain HTTP) is safer refused.
   *
   * @returns `true` if a bare LF ended a line.
   *
   * @example
   * ```ts
   * import { RequestHeadParser } from "./http1.ts";
   * const parser = new RequestHeadParser();
   * parser.push(new TextEncoder().encode("GET / HTTP/1.1\nHost: a\r\n\r\n"));
   * console.log(parser.bareLineFeed); // true
   * ```
   */
  get bareLineFeed(): boolean {
    return this.#reader.bareLf;
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

  /**
   * Makes the parser ready for the next request head on the same connection (HTTP/1.1
   * keep-alive), with the same limits: cheaper than a new parser. The head, refusal and rest
   * read before are let go, not changed: whoever holds them keeps them as they were.
   *
   * @example
   * ```ts
   * import { RequestHeadParser } from "./http1.ts";
   * const parser = new RequestHeadParser();
   * parser.push(new TextEncoder().encode("GET /a HTTP/1.1\r\nHost: a\r\n\r\n"));
   * const first = parser.head;
   * parser.reset();
   * parser.push(new TextEncoder().encode("GET /b HTTP/1.1\r\nHost: a\r\n\r\n"));
   * console.log(first?.target, parser.head?.target); // /a /b
   * ```
   */
  reset(): void {
    this.#reader.reset();
    this.#head = undefined;
    this.#refusal = undefined;
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
  417: "Expectation Failed",
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

// ---------------------------------------------------------------------------------------------
// A request's message framing (RFC 9112 §6, §9.3; RFC 9110 §10.1.1)

/** How a request's body is delimited and what the connection does after it. */
export interface RequestFraming {
  /** The body's length from Content-Length (0 without one), or -1 for a chunked body. */
  length: number;
  /**
   * The connection may carry another request after the response: HTTP/1.1 unless the request
   * says `Connection: close`, HTTP/1.0 only with `Connection: keep-alive` (RFC 9112 §9.3).
   */
  keepAlive: boolean;
  /** An HTTP/1.1 request with `Expect: 100-continue`: the client waits before its body. */
  expectContinue: boolean;
}

/** The comma-separated elements of the values of header `name`, trimmed, empty ones dropped. */
function listElements(headers: Array<[string, string]>, name: string): string[] {
  const elements: string[] = [];
  for (const [field, value] of headers) {
    if (field !== name) continue;
    for (const element of value.split(",")) {
      const trimmed = element.trim();
      if (trimmed !== "") elements.push(trimmed);
    }
  }
  return elements;
}

/**
 * Reads how a request's body is framed, refusing every framing that two HTTP implementations
 * could read differently (request smuggling): Content-Length with Transfer-Encoding, more than
 * one Content-Length (even with equal values), a Content-Length that is not digits,
 * Transfer-Encoding in an HTTP/1.0 request, or one whose last coding is not `chunked` (400);
 * a transfer coding other than `chunked` before it (501); an expectation other than
 * `100-continue` (417).
 *
 * @param head The request head.
 * @returns The framing, or the refusal to answer with (the connection then closes).
 *
 * @example
 * ```ts
 * import { RequestHeadParser, requestFraming } from "./http1.ts";
 * const parser = new RequestHeadParser();
 * parser.push(new TextEncoder().encode(
 *   "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
 * ));
 * console.log(requestFraming(parser.head!));
 * // { status: 400, message: "Bad request: both Content-Length and Transfer-Encoding", headers: [] }
 * ```
 */
export function requestFraming(head: RequestHead): RequestFraming | HandshakeRefusal {
  const headers = head.headers;
  const http10 = head.version === "HTTP/1.0";
  let lengthValue: string | undefined;
  let lengths = 0;
  let codings = false;
  let expect = false;
  let connection = false;
  for (let i = 0; i < headers.length; i++) {
    const name = headers[i][0];
    if (name === "content-length") {
      lengths++;
      lengthValue = headers[i][1];
    } else if (name === "transfer-encoding") codings = true;
    else if (name === "expect") expect = true;
    else if (name === "connection") connection = true;
  }
  const bad = (why: string, status = 400): HandshakeRefusal => ({
    status,
    message: status === 400 ? `Bad request: ${why}` : why,
    headers: [],
  });
  let length = 0;
  if (codings) {
    // RFC 9112 §6.1: Transfer-Encoding in HTTP/1.0 means faulty framing; §6.3: with
    // Content-Length it is a likely smuggling attempt, and chunked must come last.
    if (http10) return bad("Transfer-Encoding in an HTTP/1.0 request");
    if (lengths !== 0) return bad("both Content-Length and Transfer-Encoding");
    const list = listElements(headers, "transfer-encoding").map((coding) => coding.toLowerCase());
    if (list.length === 0) return bad("an empty Transfer-Encoding");
    if (list[list.length - 1] !== "chunked") {
      return bad("the last transfer coding is not chunked");
    }
    // RFC 9112 §7.1: chunked MUST NOT be applied more than once.
    if (list.indexOf("chunked") !== list.length - 1) {
      return bad("chunked is applied more than once");
    }
    // RFC 9112 §6.1: a transfer coding the server does not understand gets 501.
    if (list.length > 1) {
      return bad(`Not implemented: the transfer coding "${list[0]}" is not supported`, 501);
    }
    length = -1;
  } else if (lengths !== 0) {
    // RFC 9110 §8.6 lets a recipient take repeated equal values; two lines are refused all
    // the same, as a proxy in front may have read either one.
    if (lengths > 1) return bad("more than one Content-Length");
    const value = lengthValue!;
    if (!/^[0-9]+$/.test(value)) return bad("invalid Content-Length");
    length = value.length > 15 ? Infinity : Number(value);
  }
  let expectContinue = false;
  if (expect && !http10) {
    // RFC 9110 §10.1.1: 417 for an expectation the server cannot meet; an HTTP/1.0 request's
    // 100-continue is ignored.
    const list = listElements(headers, "expect");
    if (list.length !== 1 || list[0].toLowerCase() !== "100-continue") {
      return bad("Expectation failed: only 100-continue is supported", 417);
    }
    expectContinue = true;
  }
  let keepAlive = !http10;
  if (connection) {
    for (const option of listElements(headers, "connection")) {
      const lower = option.toLowerCase();
      if (lower === "close") {
        keepAlive = false;
        break;
      }
      if (lower === "keep-alive" && http10) keepAlive = true;
    }
  }
  return { length, keepAlive, expectContinue };
}

// ---------------------------------------------------------------------------------------------
// Chunked request bodies, strictly (RFC 9112 §7.1)

/** Hex digit values; -1 for any other byte. */
const HEX = new Int8Array(256).fill(-1);
for (let c = 0; c < 10; c++) HEX[0x30 + c] = c;
for (let c = 0; c < 6; c++) HEX[0x41 + c] = HEX[0x61 + c] = 10 + c;

const DQUOTE = 0x22;
const SEMICOLON = 0x3b;
const EQUALS = 0x3d;
const BACKSLASH = 0x5c;

// The states of a ChunkedBodyParser.
const B_SIZE_FIRST = 0; // the first hex digit of a chunk-size
const B_SIZE = 1; // more hex digits, ";", BWS or CR
const B_EXT_SEMI = 2; // BWS seen: more BWS or ";"
const B_EXT_NAME_START = 3; // after ";": BWS or the first tchar of a chunk-ext-name
const B_EXT_NAME = 4; // in a chunk-ext-name
const B_EXT_AFTER_NAME = 5; // BWS after a name: more BWS, "=" or ";"
const B_EXT_VALUE_START = 6; // after "=": BWS, DQUOTE or the first tchar of a token
const B_EXT_TOKEN = 7; // in a token value
const B_EXT_QUOTED = 8; // in a quoted-string
const B_EXT_QUOTED_PAIR = 9; // after a backslash in a quoted-string
const B_EXT_AFTER_QUOTED = 10; // after the closing DQUOTE
const B_SIZE_LF = 11; // the LF of a chunk-size line
const B_DATA = 12; // chunk-data
const B_DATA_CR = 13; // the CR after chunk-data
const B_DATA_LF = 14; // the LF after chunk-data
const B_TRAILER_START = 15; // a trailer field line, or the final CRLF
const B_TRAILER_NAME = 16; // in a trailer field name
const B_TRAILER_VALUE = 17; // in a trailer field value
const B_TRAILER_LF = 18; // the LF of a trailer field line
const B_END_LF = 19; // the LF of the final CRLF
const B_DONE = 20;
const B_FAILED = 21;

/** Limits on a chunked body's framing and size. */
export interface ChunkedBodyLimits {
  /** Bytes in a chunk-size line (extensions included) without its CRLF. @default {4096} */
  maxLineLength?: number;
  /** Bytes in the trailer section. @default {8192} */
  maxTrailerSize?: number;
  /** Trailer field lines. @default {100} */
  maxTrailers?: number;
  /** Data bytes in the whole body; a chunk-size that would pass it fails at once (413).
   * @default {Infinity} */
  maxBodySize?: number;
}

/**
 * An incremental, strict decoder of a chunked request body (RFC 9112 §7.1): bytes in as they
 * arrive, the body's data out as views of them, nothing copied. The framing is checked byte by
 * byte against the grammar: chunk sizes of hex digits only (no sign, prefix or whitespace, at
 * most 2^53 − 1), chunk extensions as `;name[=token / quoted-string]` with BWS, trailer fields
 * as header field lines (no obs-fold, no whitespace before the colon), and CRLF after every
 * line and every chunk's data: a bare LF or CR fails. Trailer fields are checked and dropped.
 * Any deviation fails with a 400 refusal; a body over `maxBodySize` with 413, as soon as a
 * chunk-size says so.
 *
 * @example
 * ```ts
 * import { ChunkedBodyParser } from "./http1.ts";
 * const parser = new ChunkedBodyParser();
 * const data: Uint8Array[] = [];
 * const bytes = new TextEncoder().encode("4;a=b\r\nWiki\r\n0\r\nX-T: 1\r\n\r\nnext");
 * console.log(parser.push(bytes, data)); // 1
 * console.log(new TextDecoder().decode(data[0]), parser.rest.length); // Wiki 4
 * ```
 */
export class ChunkedBodyParser {
  #state = B_SIZE_FIRST;
  /** The chunk-size being read, then the data bytes left in the chunk. */
  #size = 0;
  /** Bytes of the current chunk-size line. */
  #line = 0;
  /** Bytes of the trailer section so far. */
  #trailer = 0;
  #trailers = 0;
  /** Data bytes so far. */
  #received = 0;
  #maxLine: number;
  #maxTrailer: number;
  #maxTrailers: number;
  #maxBody: number;
  #rest: Uint8Array = EMPTY;
  #refusal: HandshakeRefusal | undefined;

  /**
   * Creates a decoder for one chunked body.
   *
   * @param limits Limits on the framing and the body; each has a default.
   *
   * @example
   * ```ts
   * import { ChunkedBodyParser } from "./http1.ts";
   * const parser = new ChunkedBodyParser({ maxBodySize: 1024 });
   * ```
   */
  constructor(limits?: ChunkedBodyLimits) {
    this.#maxLine = limits?.maxLineLength ?? 4096;
    this.#maxTrailer = limits?.maxTrailerSize ?? 8192;
    this.#maxTrailers = limits?.maxTrailers ?? 100;
    this.#maxBody = limits?.maxBodySize ?? Infinity;
  }

  /**
   * Data bytes decoded so far.
   *
   * @returns The count.
   *
   * @example
   * ```ts
   * import { ChunkedBodyParser } from "./http1.ts";
   * const parser = new ChunkedBodyParser();
   * parser.push(new TextEncoder().encode("3\r\nabc\r\n"), []);
   * console.log(parser.received); // 3
   * ```
   */
  get received(): number {
    return this.#received;
  }

  /**
   * The bytes after the body in the chunk that completed it (a view), once
   * {@linkcode ChunkedBodyParser.push} returned 1: the next pipelined request.
   *
   * @returns The bytes after the body.
   *
   * @example
   * ```ts
   * import { ChunkedBodyParser } from "./http1.ts";
   * const parser = new ChunkedBodyParser();
   * parser.push(new TextEncoder().encode("0\r\n\r\nGET"), []);
   * console.log(parser.rest.length); // 3
   * ```
   */
  get rest(): Uint8Array {
    return this.#rest;
  }

  /**
   * Why the body was refused, once {@linkcode ChunkedBodyParser.push} returned -1: 400 for
   * broken framing, 413 over `maxBodySize`, 431 for a trailer section over its limits.
   *
   * @returns The refusal, or `undefined`.
   *
   * @example
   * ```ts
   * import { ChunkedBodyParser } from "./http1.ts";
   * const parser = new ChunkedBodyParser();
   * parser.push(new TextEncoder().encode("-5\r\n"), []);
   * console.log(parser.refusal?.message); // Bad request: a chunk-size that is not hex digits
   * ```
   */
  get refusal(): HandshakeRefusal | undefined {
    return this.#refusal;
  }

  /**
   * Decodes the next bytes of the body.
   *
   * @param bytes What arrived.
   * @param out Where the body's data goes, as views of `bytes`.
   * @returns 0 for more, 1 when the body is complete ({@linkcode ChunkedBodyParser.rest}), -1
   * when it failed ({@linkcode ChunkedBodyParser.refusal}).
   * @throws {TypeError} If called again after it returned 1 or -1.
   *
   * @example
   * ```ts
   * import { ChunkedBodyParser } from "./http1.ts";
   * const parser = new ChunkedBodyParser();
   * const out: Uint8Array[] = [];
   * console.log(parser.push(new TextEncoder().encode("2\r\nhi\r"), out), out.length); // 0 1
   * ```
   */
  push(bytes: Uint8Array, out: Uint8Array[]): -1 | 0 | 1 {
    let state = this.#state;
    if (state >= B_DONE) throw new TypeError("Cannot push: the chunked body is already decoded");
    const end = bytes.length;
    let i = 0;
    while (i < end) {
      if (state === B_DATA) {
        const left = this.#size;
        const take = end - i < left ? end - i : left;
        out.push(take === end && i === 0 ? bytes : bytes.subarray(i, i + take));
        i += take;
        this.#size = left - take;
        if (left === take) state = B_DATA_CR;
        continue;
      }
      const b = bytes[i++];
      if (state <= B_SIZE_LF) {
        if (++this.#line > this.#maxLine + 2) {
          return this.#fail(`a chunk-size line over ${this.#maxLine} bytes`);
        }
      } else if (state >= B_TRAILER_START && ++this.#trailer > this.#maxTrailer) {
        return this.#fail(
          `Request header fields too large: the trailer section exceeds ${this.#maxTrailer} bytes`,
          431,
        );
      }
      switch (state) {
        case B_SIZE_FIRST:
          if (HEX[b] < 0) return this.#fail("a chunk-size that is not hex digits");
          this.#size = HEX[b];
          state = B_SIZE;
          break;
        case B_SIZE: {
          const digit = HEX[b];
          if (digit >= 0) {
            if (this.#size > (Number.MAX_SAFE_INTEGER - digit) / 16) {
              return this.#fail("a chunk-size too large");
            }
            this.#size = this.#size * 16 + digit;
          } else if (b === CR) state = B_SIZE_LF;
          else if (b === SEMICOLON) state = B_EXT_NAME_START;
          else if (b === SP || b === HTAB) state = B_EXT_SEMI;
          else return this.#fail(this.#lineEnd(b, "a chunk-size that is not hex digits"));
          break;
        }
        case B_EXT_SEMI:
          if (b === SEMICOLON) state = B_EXT_NAME_START;
          else if (b !== SP && b !== HTAB) {
            return this.#fail("whitespace after a chunk-size or extension");
          }
          break;
        case B_EXT_NAME_START:
          if (TCHAR[b] !== 0) state = B_EXT_NAME;
          else if (b !== SP && b !== HTAB) return this.#fail("a malformed chunk extension");
          break;
        case B_EXT_NAME:
          if (TCHAR[b] !== 0) break;
          if (b === CR) state = B_SIZE_LF;
          else if (b === EQUALS) state = B_EXT_VALUE_START;
          else if (b === SEMICOLON) state = B_EXT_NAME_START;
          else if (b === SP || b === HTAB) state = B_EXT_AFTER_NAME;
          else return this.#fail(this.#lineEnd(b, "a malformed chunk extension"));
          break;
        case B_EXT_AFTER_NAME:
          if (b === EQUALS) state = B_EXT_VALUE_START;
          else if (b === SEMICOLON) state = B_EXT_NAME_START;
          else if (b !== SP && b !== HTAB) return this.#fail("a malformed chunk extension");
          break;
        case B_EXT_VALUE_START:
          if (b === DQUOTE) state = B_EXT_QUOTED;
          else if (TCHAR[b] !== 0) state = B_EXT_TOKEN;
          else if (b !== SP && b !== HTAB) return this.#fail("a malformed chunk extension");
          break;
        case B_EXT_TOKEN:
          if (TCHAR[b] !== 0) break;
          if (b === CR) state = B_SIZE_LF;
          else if (b === SEMICOLON) state = B_EXT_NAME_START;
          else if (b === SP || b === HTAB) state = B_EXT_SEMI;
          else return this.#fail(this.#lineEnd(b, "a malformed chunk extension"));
          break;
        case B_EXT_QUOTED:
          // qdtext = HTAB / SP / %x21 / %x23-5B / %x5D-7E / obs-text (RFC 9110 §5.6.4)
          if (b === DQUOTE) state = B_EXT_AFTER_QUOTED;
          else if (b === BACKSLASH) state = B_EXT_QUOTED_PAIR;
          else if ((b < SP && b !== HTAB) || b === DEL) {
            return this.#fail("a control character in a chunk extension");
          }
          break;
        case B_EXT_QUOTED_PAIR:
          if ((b < SP && b !== HTAB) || b === DEL) {
            return this.#fail("a control character in a chunk extension");
          }
          state = B_EXT_QUOTED;
          break;
        case B_EXT_AFTER_QUOTED:
          if (b === CR) state = B_SIZE_LF;
          else if (b === SEMICOLON) state = B_EXT_NAME_START;
          else if (b === SP || b === HTAB) state = B_EXT_SEMI;
          else return this.#fail(this.#lineEnd(b, "a malformed chunk extension"));
          break;
        case B_SIZE_LF:
          if (b !== LF) return this.#fail("a CR not followed by LF");
          this.#line = 0;
          if (this.#size === 0) {
            state = B_TRAILER_START;
          } else {
            if (this.#received + this.#size > this.#maxBody) {
              return this.#fail(
                `The request body is too large: more than ${this.#maxBody} bytes`,
                413,
              );
            }
            this.#received += this.#size;
            state = B_DATA;
          }
          break;
        case B_DATA_CR:
          if (b !== CR) return this.#fail("chunk data not followed by CRLF");
          state = B_DATA_LF;
          break;
        case B_DATA_LF:
          if (b !== LF) return this.#fail("chunk data not followed by CRLF");
          state = B_SIZE_FIRST;
          break;
        case B_TRAILER_START:
          if (b === CR) state = B_END_LF;
          else if (TCHAR[b] !== 0) {
            if (++this.#trailers > this.#maxTrailers) {
              return this.#fail(
                `Request header fields too large: more than ${this.#maxTrailers} trailer fields`,
                431,
              );
            }
            state = B_TRAILER_NAME;
          } else if (b === SP || b === HTAB) {
            return this.#fail("obsolete line folding (obs-fold) in a trailer field");
          } else return this.#fail(this.#lineEnd(b, "a malformed trailer field"));
          break;
        case B_TRAILER_NAME:
          if (TCHAR[b] !== 0) break;
          if (b === COLON) state = B_TRAILER_VALUE;
          else if (b === SP || b === HTAB) {
            return this.#fail("whitespace between a trailer field name and its colon");
          } else return this.#fail(this.#lineEnd(b, "a malformed trailer field"));
          break;
        case B_TRAILER_VALUE:
          if (b === CR) state = B_TRAILER_LF;
          else if ((b < SP && b !== HTAB) || b === DEL) {
            return this.#fail(this.#lineEnd(b, "a control character in a trailer field value"));
          }
          break;
        case B_TRAILER_LF:
          if (b !== LF) return this.#fail("a CR not followed by LF");
          state = B_TRAILER_START;
          break;
        case B_END_LF:
          if (b !== LF) return this.#fail("a CR not followed by LF");
          this.#state = B_DONE;
          this.#rest = i < end ? bytes.subarray(i) : EMPTY;
          return 1;
      }
    }
    this.#state = state;
    return 0;
  }

  /** The failure for byte `b` where a line could not end: a bare LF, or `what`. */
  #lineEnd(b: number, what: string): string {
    return b === LF ? "an LF not preceded by CR" : what;
  }

  #fail(why: string, status = 400): -1 {
    this.#state = B_FAILED;
    this.#refusal = { status, message: status === 400 ? `Bad request: ${why}` : why, headers: [] };
    return -1;
  }
}

// ---------------------------------------------------------------------------------------------
// Writing responses on a persistent connection

/** How {@linkcode responseHead} frames a response. */
export interface ResponseHeadOptions {
  /** The `Date` header's value (an IMF-fixdate, RFC 9110 §5.6.7). */
  date: string;
  /**
   * The body's framing: its length (`Content-Length`), `"chunked"`
   * (`Transfer-Encoding: chunked`), or `"none"` (neither: a 1xx, 204 or 304, or a body that
   * the connection's close ends).
   */
  framing: number | "chunked" | "none";
  /** The `Connection` header to send, if any. */
  connection?: "close" | "keep-alive";
}

/**
 * The head of an HTTP/1.1 response: the status line, `Connection` (if asked), the framing
 * header, `Date`, then the given headers in their order, then the empty line.
 *
 * @param status An HTTP status code (100–599).
 * @param headers The headers to send besides those above.
 * @param options The framing, the date and the connection's fate.
 * @returns The head's bytes.
 * @throws {RangeError} If the status is not an integer from 100 to 599.
 * @throws {TypeError} If a header name is not a token, or a value holds CR, LF, NUL or a
 * character above U+00FF.
 *
 * @example
 * ```ts
 * import { responseHead } from "./http1.ts";
 * const date = "Thu, 01 Jan 1970 00:00:00 GMT";
 * const head = responseHead(200, [["x-a", "1"]], { date, framing: "chunked" });
 * console.log(JSON.stringify(new TextDecoder().decode(head)));
 * // "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nDate: Thu, 01 Jan 1970 00:00:00 GMT\r\nx-a: 1\r\n\r\n"
 * ```
 */
export function responseHead(
  status: number,
  headers: Array<[string, string]>,
  options: ResponseHeadOptions,
): Uint8Array {
  return latin1Bytes(responseHeadText(status, headers, options), 0);
}

/**
 * {@linkcode responseHead} as text, each character one byte (latin1): for a writer that puts
 * the head into a buffer of its own.
 *
 * @param status An HTTP status code (100–599).
 * @param headers The headers to send besides those above.
 * @param options The framing, the date and the connection's fate.
 * @returns The head, every character below U+0100.
 * @throws {RangeError} If the status is not an integer from 100 to 599.
 * @throws {TypeError} If a header name is not a token, or a value holds CR, LF, NUL or a
 * character above U+00FF.
 *
 * @example
 * ```ts
 * import { responseHeadText } from "./http1.ts";
 * const date = "Thu, 01 Jan 1970 00:00:00 GMT";
 * const head = responseHeadText(204, [], { date, framing: "none" });
 * console.log(JSON.stringify(head));
 * // "HTTP/1.1 204 No Content\r\nDate: Thu, 01 Jan 1970 00:00:00 GMT\r\n\r\n"
 * ```
 */
export function responseHeadText(
  status: number,
  headers: Array<[string, string]>,
  options: ResponseHeadOptions,
): string {
  if (!Number.isInteger(status) || status < 100 || status > 599) {
    throw new RangeError(`Cannot write the response: ${status} is not an HTTP status code`);
  }
  const { framing, connection } = options;
  return `HTTP/1.1 ${status} ${REASONS[status] ?? ""}\r\n` +
    (connection === undefined ? "" : `Connection: ${connection}\r\n`) +
    (framing === "none"
      ? ""
      : framing === "chunked"
      ? "Transfer-Encoding: chunked\r\n"
      : `Content-Length: ${framing}\r\n`) +
    `Date: ${options.date}\r\n${headerLines(headers, "the response")}\r\n`;
}

/** `HTTP/1.1 100 Continue`, the interim response to `Expect: 100-continue` (RFC 9110 §15.2.1). */
export const CONTINUE_RESPONSE: Uint8Array = latin1Bytes("HTTP/1.1 100 Continue\r\n\r\n", 0);

/** The last chunk and the end of a chunked body without trailers (RFC 9112 §7.1). */
export const LAST_CHUNK: Uint8Array = latin1Bytes("0\r\n\r\n", 0);

/**
 * One chunk of a chunked body: its size line, the data, and CRLF (RFC 9112 §7.1), copied into
 * one buffer.
 *
 * @param data The chunk's data, not empty (an empty chunk would end the body).
 * @returns The chunk's bytes.
 *
 * @example
 * ```ts
 * import { encodeChunk } from "./http1.ts";
 * const chunk = encodeChunk(new TextEncoder().encode("data: tick\n\n"));
 * console.log(JSON.stringify(new TextDecoder().decode(chunk))); // "c\r\ndata: tick\n\n\r\n"
 * ```
 */
export function encodeChunk(data: Uint8Array): Uint8Array {
  const size = data.length.toString(16);
  const out = new Uint8Array(size.length + data.length + 4);
  let i = 0;
  for (; i < size.length; i++) out[i] = size.charCodeAt(i);
  out[i++] = CR;
  out[i++] = LF;
  out.set(data, i);
  i += data.length;
  out[i++] = CR;
  out[i] = LF;
  return out;
}

/**
 * The size line that starts a chunk: hex digits and CRLF (RFC 9112 §7.1). The chunk's data
 * follows, then {@linkcode CRLF}.
 *
 * @param size The chunk's size, above 0.
 * @returns The line's bytes.
 *
 * @example
 * ```ts
 * import { chunkSizeLine } from "./http1.ts";
 * console.log(JSON.stringify(new TextDecoder().decode(chunkSizeLine(4096)))); // "1000\r\n"
 * ```
 */
export function chunkSizeLine(size: number): Uint8Array {
  return latin1Bytes(`${size.toString(16)}\r\n`, 0);
}

/** CRLF: ends a chunk's data. */
export const CRLF: Uint8Array = new Uint8Array([CR, LF]);
