/**
 * The opening handshake of RFC 6455 §4.2, sans-I/O: a bounded, incremental parser for the
 * HTTP/1.1 request head (RFC 9112), the checks of RFC 6455 §4.2.1, the Sec-WebSocket-Accept
 * key, and the bytes of the 101 response or of an error response.
 *
 * Nothing here touches a socket, a timer or a runtime global: bytes in, a head or a refusal
 * out.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { TCHAR } from "./_http_token.ts";

// ---------------------------------------------------------------------------------------------
// Byte tables

const HTAB = 0x09;
const LF = 0x0a;
const CR = 0x0d;
const SP = 0x20;
const COLON = 0x3a;
const DEL = 0x7f;

/** Base64 alphabet (RFC 4648 §4): 1 for each of its 64 characters. */
const BASE64 = new Uint8Array(128);
for (const c of "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/") {
  BASE64[c.charCodeAt(0)] = 1;
}

const EMPTY = new Uint8Array(0);
const ENCODER = new TextEncoder();
// Only ever given ASCII bytes (the parser checks), where UTF-8 and latin1 agree.
const ASCII_DECODER = new TextDecoder();

// ---------------------------------------------------------------------------------------------
// Parser

/**
 * Limits on the request head.
 *
 * @example
 * ```ts
 * import { RequestHeadParser } from "./handshake.ts";
 * const parser = new RequestHeadParser({ maxHeadSize: 4096, maxHeaders: 50 });
 * ```
 */
export interface RequestHeadLimits {
  /**
   * Bytes in the whole head (request line + headers + final CRLF), empty lines before the
   * request line included.
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
   * Bytes in one line (request line or header line), without its line end.
   *
   * @default {4096}
   */
  maxLineLength?: number;
}

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

/** Why a handshake was refused: the HTTP response to send. */
export interface HandshakeRefusal {
  /** The status code: 400, 405, 414, 426 or 431 from this module. */
  status: number;
  /** A human-readable reason, sent as the text/plain body. */
  message: string;
  /** Extra response headers, e.g. `["Sec-WebSocket-Version", "13"]`. */
  headers: Array<[string, string]>;
}

const REQUEST_LINE = 0;
const HEADERS = 1;
const DONE = 2;
const REFUSED = 3;

/** Returned by the line parsers: the line is not complete within the bytes given. */
const INCOMPLETE = -1;
/** Returned by the line parsers: the head was refused. */
const REFUSE = -2;
/** Returned by {@linkcode afterLineEnd}: a CR not followed by LF. */
const BARE_CR = -3;
/** Returned by {@linkcode afterLineEnd}: the byte ends no line. */
const NO_LINE_END = -4;

/**
 * Where the line whose end is at `bytes[i]` continues: after CRLF, or after a bare LF (RFC 9112
 * §2.2 allows recognising one). INCOMPLETE when the CR is the last byte given, BARE_CR for a CR
 * not followed by LF, NO_LINE_END when `bytes[i]` is neither.
 */
function afterLineEnd(bytes: Uint8Array, i: number, stop: number): number {
  if (bytes[i] === LF) return i + 1;
  if (bytes[i] !== CR) return NO_LINE_END;
  if (i + 1 >= stop) return INCOMPLETE;
  return bytes[i + 1] === LF ? i + 2 : BARE_CR;
}

// Where the fields of the lines completed in one push() lie, so that all of them are decoded
// with a single TextDecoder call and cut out with substring() (about 10× faster than decoding
// each field on its own, in both runtimes). Five numbers per line: flags, then the start and
// end of the method and target (request line) or of the name and value (header line).
// Shared by every parser: push() is synchronous and always empties it before it returns.
const RECORD = 5;
const F_HEADER = 1; // a header line (else the request line)
const F_UPPER = 2; // the field name has upper-case letters
const F_HIGH = 4; // the line has bytes 0x80–0xFF: decode as latin1 by hand
const F_HTTP10 = 8; // the request line says HTTP/1.0
let records = new Int32Array(RECORD * 64);
let recordCount = 0;
/** Where #flush lower-cases field names; shared like `records`, and grown as needed. */
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

function checkLimit(name: string, value: number, min: number): number {
  if (!Number.isInteger(value) || value < min) {
    throw new RangeError(
      `Cannot create a RequestHeadParser: ${name} must be an integer of at least ${min}`,
    );
  }
  return value;
}

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
 * import { RequestHeadParser } from "./handshake.ts";
 * const parser = new RequestHeadParser();
 * const bytes = new TextEncoder().encode("GET / HTTP/1.1\r\nHost: example.com\r\n\r\n");
 * console.log(parser.push(bytes.subarray(0, 10))); // 0
 * console.log(parser.push(bytes.subarray(10))); // 1
 * console.log(parser.head?.headers); // [ [ "host", "example.com" ] ]
 * ```
 */
export class RequestHeadParser {
  #maxHeadSize: number;
  #maxHeaders: number;
  #maxLineLength: number;
  #state = REQUEST_LINE;
  /** Bytes of the complete lines read so far. */
  #consumed = 0;
  /** Header lines read so far. */
  #count = 0;
  /** The start of a line that a chunk ended in the middle of; its bytes in [0, #bufLength). */
  #buf: Uint8Array | undefined;
  #bufLength = 0;
  #method = "";
  #target = "";
  #version = "";
  #headers: Array<[name: string, value: string]> = [];
  #head: RequestHead | undefined;
  #refusal: HandshakeRefusal | undefined;
  #rest: Uint8Array = EMPTY;

  /**
   * Creates a parser for one request head.
   *
   * @param limits Limits on the head; each has a default.
   *
   * @example
   * ```ts
   * import { RequestHeadParser } from "./handshake.ts";
   * const parser = new RequestHeadParser({ maxHeadSize: 16384 });
   * ```
   */
  constructor(limits?: RequestHeadLimits) {
    this.#maxHeadSize = checkLimit("maxHeadSize", limits?.maxHeadSize ?? 8192, 1);
    this.#maxHeaders = checkLimit("maxHeaders", limits?.maxHeaders ?? 100, 0);
    this.#maxLineLength = checkLimit("maxLineLength", limits?.maxLineLength ?? 4096, 1);
  }

  /**
   * The parsed head once {@linkcode RequestHeadParser.push} returned 1, else `undefined`.
   *
   * @returns The head, or `undefined`.
   *
   * @example
   * ```ts
   * import { RequestHeadParser } from "./handshake.ts";
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
   * import { RequestHeadParser } from "./handshake.ts";
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
   * import { RequestHeadParser } from "./handshake.ts";
   * const parser = new RequestHeadParser();
   * parser.push(new TextEncoder().encode("GET / HTTP/1.1\r\nHost: a\r\n\r\nxyz"));
   * console.log(parser.rest.length); // 3
   * ```
   */
  get rest(): Uint8Array {
    return this.#rest;
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
   * import { RequestHeadParser } from "./handshake.ts";
   * const parser = new RequestHeadParser();
   * console.log(parser.push(new TextEncoder().encode("GET / HTTP/1.1\r\n"))); // 0
   * console.log(parser.push(new TextEncoder().encode("Host: a\r\n\r\n"))); // 1
   * ```
   */
  push(chunk: Uint8Array): -1 | 0 | 1 {
    if (this.#state >= DONE) {
      throw new TypeError("Cannot push: the request head is already parsed");
    }
    recordCount = 0;
    const end = chunk.length;
    let pos = 0;
    if (this.#bufLength > 0) {
      // A line is pending from earlier chunks: look for its end in this chunk only (the bytes
      // already buffered were searched before), within what the limits still allow.
      const room = Math.min(this.#maxLineLength + 2, this.#maxHeadSize - this.#consumed) -
        this.#bufLength;
      const n = end < room ? end : room;
      const lf = (n === end ? chunk : chunk.subarray(0, n)).indexOf(LF);
      const take = lf < 0 ? n : lf + 1;
      this.#append(chunk, take);
      const buf = this.#buf!;
      const length = this.#bufLength;
      if (lf < 0) return this.#checkPartial(buf, 0, length) ? -1 : 0;
      if (this.#line(buf, 0, length) === REFUSE) return -1;
      this.#flush(buf);
      this.#consumed += length;
      this.#bufLength = 0;
      pos = take;
      if (this.#state === DONE) return this.#finish(chunk, pos);
      if (this.#consumed >= this.#maxHeadSize) return this.#refuseHeadSize();
    }
    const maxLine = this.#maxLineLength + 2;
    while (pos < end) {
      // Never look further than the limits allow: the line (with its line end) must fit both
      // maxLineLength and what is left of maxHeadSize.
      const left = this.#maxHeadSize - this.#consumed;
      let stop = pos + (maxLine < left ? maxLine : left);
      if (stop > end) stop = end;
      const next = this.#line(chunk, pos, stop);
      if (next === REFUSE) return -1;
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
      if (this.#consumed >= this.#maxHeadSize) return this.#refuseHeadSize();
    }
    this.#flush(chunk);
    return 0;
  }

  /** Copies `bytes[0, n)` to the end of the pending line, growing the buffer if needed. */
  #append(bytes: Uint8Array, n: number): void {
    const need = this.#bufLength + n;
    let buf = this.#buf;
    if (buf === undefined || buf.length < need) {
      // Never beyond maxLineLength + 2: a longer line is refused before it is buffered.
      const size = Math.min(Math.max(need, (buf?.length ?? 128) * 2), this.#maxLineLength + 2);
      const grown = new Uint8Array(size);
      if (buf !== undefined) grown.set(buf.subarray(0, this.#bufLength));
      this.#buf = buf = grown;
    }
    buf.set(n === bytes.length ? bytes : bytes.subarray(0, n), this.#bufLength);
    this.#bufLength = need;
  }

  /**
   * Refuses a line that has no end within `bytes[start, stop)` if a limit is already certainly
   * exceeded. Returns whether it refused.
   */
  #checkPartial(bytes: Uint8Array, start: number, stop: number): boolean {
    const length = stop - start;
    // At least the LF is still to come.
    if (this.#consumed + length >= this.#maxHeadSize) {
      this.#refuseHeadSize();
      return true;
    }
    // One trailing CR may yet turn out to be the line end; any other byte is content.
    const max = this.#maxLineLength;
    if (length > max + 1 || (length === max + 1 && bytes[stop - 1] !== CR)) {
      this.#refuseLineLength();
      return true;
    }
    if (
      this.#state === HEADERS && this.#count >= this.#maxHeaders && length > 0 &&
      bytes[start] !== CR && bytes[start] !== LF
    ) {
      this.#refuseHeaderCount();
      return true;
    }
    return false;
  }

  /**
   * Reads one line from `bytes[start, stop)`: returns the index after its LF, INCOMPLETE if
   * there is no line end before `stop`, or REFUSE.
   */
  #line(bytes: Uint8Array, start: number, stop: number): number {
    if (start >= stop) return INCOMPLETE;
    const c = bytes[start];
    if (c === LF || c === CR) {
      let next = start + 1;
      if (c === CR) {
        if (next >= stop) return INCOMPLETE;
        if (bytes[next] !== LF) return this.#refuse(400, "Bad request: a CR not followed by LF");
        next++;
      }
      // RFC 9112 §2.2: a server SHOULD ignore at least one empty line before the request line.
      if (this.#state === HEADERS) this.#state = DONE;
      return next;
    }
    if (this.#state === REQUEST_LINE) return this.#requestLine(bytes, start, stop);
    if (c === SP || c === HTAB) {
      // RFC 9112 §5.2: obs-fold in a request MUST be rejected with 400 (or replaced by SP).
      return this.#refuse(400, "Bad request: obsolete line folding (obs-fold) in a header");
    }
    if (this.#count >= this.#maxHeaders) return this.#refuseHeaderCount();
    return this.#headerLine(bytes, start, stop);
  }

  /** `method SP request-target SP HTTP-version` (RFC 9112 §3). */
  #requestLine(bytes: Uint8Array, start: number, stop: number): number {
    let i = start;
    while (i < stop && TCHAR[bytes[i]] !== 0) i++;
    if (i >= stop) return INCOMPLETE;
    if (i === start || bytes[i] !== SP) {
      return this.#refuse(400, "Bad request: malformed request line (the method is not a token)");
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
      return this.#refuse(400, "Bad request: malformed request line (bad request-target)");
    }
    const targetEnd = i++;
    const versionStart = i;
    while (i < stop && bytes[i] > SP && bytes[i] !== DEL) i++;
    if (i >= stop) return INCOMPLETE;
    const lineEnd = i;
    const next = afterLineEnd(bytes, i, stop);
    if (next === INCOMPLETE) return INCOMPLETE;
    if (next === BARE_CR) return this.#refuse(400, "Bad request: a CR not followed by LF");
    if (next === NO_LINE_END) {
      return this.#refuse(400, "Bad request: malformed request line (bad HTTP version)");
    }
    if (lineEnd - start > this.#maxLineLength) return this.#refuseLineLength();
    // "HTTP/1." then "1" or "0", byte by byte: no string is made for the common case.
    if (
      lineEnd - versionStart === 8 && bytes[versionStart] === 0x48 &&
      bytes[versionStart + 1] === 0x54 && bytes[versionStart + 2] === 0x54 &&
      bytes[versionStart + 3] === 0x50 && bytes[versionStart + 4] === 0x2f &&
      bytes[versionStart + 5] === 0x31 && bytes[versionStart + 6] === 0x2e &&
      (bytes[versionStart + 7] === 0x31 || bytes[versionStart + 7] === 0x30)
    ) {
      const flags = (bytes[versionStart + 7] === 0x30 ? F_HTTP10 : 0) | (high & 0x80 ? F_HIGH : 0);
      addRecord(flags, start, methodEnd, targetStart, targetEnd);
      this.#state = HEADERS;
      return next;
    }
    const version = latin1(bytes, versionStart, lineEnd);
    if (/^HTTP\/\d+(\.\d+)?$/.test(version)) {
      return this.#refuse(
        400,
        `Bad request: HTTP version ${version} is not supported here (HTTP/1.1 or HTTP/1.0 only)`,
      );
    }
    return this.#refuse(400, "Bad request: malformed request line (bad HTTP version)");
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
    if (i === start) return this.#refuse(400, "Bad request: a header line without a field name");
    if (bytes[i] !== COLON) {
      // RFC 9112 §5.1: whitespace between field name and colon MUST be rejected with 400.
      return this.#refuse(
        400,
        bytes[i] === SP || bytes[i] === HTAB
          ? "Bad request: whitespace between a header field name and its colon"
          : "Bad request: a header field name that is not a token",
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
    const next = afterLineEnd(bytes, i, stop);
    if (next === INCOMPLETE) return INCOMPLETE;
    if (next === BARE_CR) return this.#refuse(400, "Bad request: a CR not followed by LF");
    if (next === NO_LINE_END) {
      // RFC 9110 §5.5: CTLs other than HTAB are not allowed in a field value.
      return this.#refuse(400, "Bad request: a control character in a header field value");
    }
    if (i - start > this.#maxLineLength) return this.#refuseLineLength();
    addRecord(
      F_HEADER | (upper & F_UPPER) | high,
      start,
      nameEnd,
      valueStart,
      valueEnd,
    );
    this.#count++;
    return next;
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
    if (flags & F_HIGH) return this.#flushLatin1(bytes, end);
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
    const headers = this.#headers;
    for (let r = 0; r < end; r += RECORD) {
      const first = text.substring(rec[r + 1] - base, rec[r + 2] - base);
      const second = text.substring(rec[r + 3] - base, rec[r + 4] - base);
      if (rec[r] & F_HEADER) headers.push([first, second]);
      else this.#setRequestLine(first, second, rec[r]);
    }
  }

  /** The rare path of {@linkcode RequestHeadParser.#flush}: bytes 0x80–0xFF, read as latin1. */
  #flushLatin1(bytes: Uint8Array, end: number): void {
    const rec = records;
    for (let r = 0; r < end; r += RECORD) {
      const first = latin1(bytes, rec[r + 1], rec[r + 2]);
      const second = latin1(bytes, rec[r + 3], rec[r + 4]);
      if (rec[r] & F_HEADER) this.#headers.push([first.toLowerCase(), second]);
      else this.#setRequestLine(first, second, rec[r]);
    }
  }

  #setRequestLine(method: string, target: string, flags: number): void {
    this.#method = method;
    this.#target = target;
    this.#version = flags & F_HTTP10 ? "HTTP/1.0" : "HTTP/1.1";
  }

  #finish(chunk: Uint8Array, pos: number): 1 {
    this.#head = {
      method: this.#method,
      target: this.#target,
      version: this.#version,
      headers: this.#headers,
    };
    this.#rest = pos < chunk.length ? chunk.subarray(pos) : EMPTY;
    this.#buf = undefined;
    return 1;
  }

  #refuse(status: number, message: string): typeof REFUSE {
    recordCount = 0;
    this.#state = REFUSED;
    this.#buf = undefined;
    this.#refusal = { status, message, headers: [] };
    return REFUSE;
  }

  #refuseHeadSize(): -1 {
    this.#refuse(
      431,
      `Request header fields too large: the head exceeds ${this.#maxHeadSize} bytes`,
    );
    return -1;
  }

  #refuseHeaderCount(): typeof REFUSE {
    return this.#refuse(
      431,
      `Request header fields too large: more than ${this.#maxHeaders} header lines`,
    );
  }

  #refuseLineLength(): typeof REFUSE {
    return this.#state === REQUEST_LINE
      ? this.#refuse(414, `URI too long: the request line exceeds ${this.#maxLineLength} bytes`)
      : this.#refuse(
        431,
        `Request header fields too large: a header line exceeds ${this.#maxLineLength} bytes`,
      );
  }
}

// ---------------------------------------------------------------------------------------------
// Validation

/** What a valid upgrade request asks for. */
export interface UpgradeRequestInfo {
  /** The Sec-WebSocket-Key value. */
  key: string;
  /** The Host value. */
  host: string;
  /** The Origin value, `undefined` if absent. */
  origin: string | undefined;
  /** Sec-WebSocket-Protocol tokens in offered order (all such headers combined). */
  protocols: string[];
  /** All Sec-WebSocket-Extensions values joined with `", "` (`""` if none). */
  extensions: string;
}

function refusal(
  status: number,
  message: string,
  headers: Array<[string, string]> = [],
): HandshakeRefusal {
  return { status, message, headers };
}

function isOws(c: number): boolean {
  return c === SP || c === HTAB;
}

/**
 * Whether the comma-separated list `value` (RFC 9110 §5.6.1) has an item equal to `token`
 * (lower-case letters only) ignoring case.
 */
function listHas(value: string, token: string): boolean {
  const length = token.length;
  let start = 0;
  while (start <= value.length) {
    let end = value.indexOf(",", start);
    if (end < 0) end = value.length;
    let s = start;
    let e = end;
    while (s < e && isOws(value.charCodeAt(s))) s++;
    while (e > s && isOws(value.charCodeAt(e - 1))) e--;
    if (e - s === length) {
      let i = 0;
      // `| 0x20` lower-cases an ASCII letter; a non-letter cannot become one of token's letters.
      while (i < length && (value.charCodeAt(s + i) | 0x20) === token.charCodeAt(i)) i++;
      if (i === length) return true;
    }
    start = end + 1;
  }
  return false;
}

/**
 * Adds the items of one Sec-WebSocket-Protocol value to `protocols`; returns a refusal message
 * if one is empty, not a token, or offered twice.
 */
function addProtocols(value: string, protocols: string[]): string | undefined {
  let start = 0;
  while (start <= value.length) {
    let end = value.indexOf(",", start);
    if (end < 0) end = value.length;
    let s = start;
    let e = end;
    while (s < e && isOws(value.charCodeAt(s))) s++;
    while (e > s && isOws(value.charCodeAt(e - 1))) e--;
    if (s === e) return "Invalid Sec-WebSocket-Protocol header: an empty item";
    for (let i = s; i < e; i++) {
      const c = value.charCodeAt(i);
      if (c > 0x7f || TCHAR[c] === 0) {
        return "Invalid Sec-WebSocket-Protocol header: an item that is not a token";
      }
    }
    const protocol = value.substring(s, e);
    // RFC 6455 §4.1: the offered subprotocols MUST all be unique.
    if (protocols.includes(protocol)) {
      return "Invalid Sec-WebSocket-Protocol header: a subprotocol offered twice";
    }
    protocols.push(protocol);
    start = end + 1;
  }
  return undefined;
}

/** RFC 6455 §4.1: 16 random bytes in base64 are 22 characters and "==". */
function isValidKey(key: string): boolean {
  if (key.length !== 24 || key.charCodeAt(22) !== 0x3d || key.charCodeAt(23) !== 0x3d) {
    return false;
  }
  for (let i = 0; i < 22; i++) {
    const c = key.charCodeAt(i);
    if (c > 0x7f || BASE64[c] === 0) return false;
  }
  return true;
}

/**
 * Checks a parsed head against the server requirements of RFC 6455 §4.2.1.
 *
 * @param head The head from {@linkcode RequestHeadParser}.
 * @returns What the request asks for, or the refusal to send (405 for a method other than GET,
 * 426 for a request without Upgrade or with a Sec-WebSocket-Version other than 13, else 400).
 *
 * @example
 * ```ts
 * import { isRefusal, validateUpgradeRequest } from "./handshake.ts";
 * const result = validateUpgradeRequest({
 *   method: "GET",
 *   target: "/chat",
 *   version: "HTTP/1.1",
 *   headers: [
 *     ["host", "example.com"],
 *     ["upgrade", "websocket"],
 *     ["connection", "Upgrade"],
 *     ["sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="],
 *     ["sec-websocket-version", "13"],
 *   ],
 * });
 * console.log(isRefusal(result) ? result.status : result.key); // dGhlIHNhbXBsZSBub25jZQ==
 * ```
 */
export function validateUpgradeRequest(head: RequestHead): UpgradeRequestInfo | HandshakeRefusal {
  if (head.method !== "GET") {
    return refusal(405, "Method not allowed: a WebSocket handshake uses GET", [["Allow", "GET"]]);
  }
  if (head.version !== "HTTP/1.1") {
    return refusal(400, "HTTP/1.1 or later is required for a WebSocket handshake");
  }
  let host: string | undefined;
  let hosts = 0;
  let upgrades = 0;
  let upgradeWebSocket = false;
  let connectionUpgrade = false;
  let version: string | undefined;
  let versions = 0;
  let key: string | undefined;
  let keys = 0;
  let origin: string | undefined;
  let origins = 0;
  const protocols: string[] = [];
  let protocolError: string | undefined;
  let extensions = "";
  const headers = head.headers;
  for (let i = 0; i < headers.length; i++) {
    const value = headers[i][1];
    switch (headers[i][0]) {
      case "host":
        host = value;
        hosts++;
        break;
      case "upgrade":
        upgrades++;
        if (!upgradeWebSocket) upgradeWebSocket = listHas(value, "websocket");
        break;
      case "connection":
        if (!connectionUpgrade) connectionUpgrade = listHas(value, "upgrade");
        break;
      case "sec-websocket-version":
        version = value;
        versions++;
        break;
      case "sec-websocket-key":
        key = value;
        keys++;
        break;
      case "origin":
        origin = value;
        origins++;
        break;
      case "sec-websocket-protocol":
        if (protocolError === undefined) protocolError = addProtocols(value, protocols);
        break;
      case "sec-websocket-extensions":
        extensions = extensions === "" ? value : `${extensions}, ${value}`;
        break;
    }
  }
  // RFC 9112 §3.2: a request without Host, or with more than one, gets a 400.
  if (hosts === 0) return refusal(400, "Bad request: the Host header is missing");
  if (hosts > 1) return refusal(400, "Bad request: more than one Host header");
  if (upgrades === 0) {
    // RFC 9110 §15.5.22: a 426 MUST say which protocol to upgrade to.
    return refusal(426, "This service requires a WebSocket upgrade", [
      ["Upgrade", "websocket"],
      ["Sec-WebSocket-Version", "13"],
    ]);
  }
  if (!upgradeWebSocket) {
    return refusal(400, 'Bad request: the Upgrade header does not include "websocket"');
  }
  if (!connectionUpgrade) {
    return refusal(400, 'Bad request: the Connection header does not include "Upgrade"');
  }
  // RFC 6455 §4.4: an unsupported version gets a 426 naming the versions the server speaks.
  if (versions !== 1 || version !== "13") {
    return refusal(
      426,
      versions === 0
        ? "The Sec-WebSocket-Version header is missing: version 13 is required"
        : "Unsupported Sec-WebSocket-Version: version 13 is required",
      [["Sec-WebSocket-Version", "13"]],
    );
  }
  if (keys === 0) return refusal(400, "Bad request: the Sec-WebSocket-Key header is missing");
  if (keys > 1) return refusal(400, "Bad request: more than one Sec-WebSocket-Key header");
  if (!isValidKey(key!)) {
    return refusal(400, "Bad request: Sec-WebSocket-Key is not 16 bytes in base64");
  }
  if (protocolError !== undefined) return refusal(400, `Bad request: ${protocolError}`);
  if (origins > 1) return refusal(400, "Bad request: more than one Origin header");
  return { key: key!, host: host!, origin, protocols, extensions };
}

/**
 * Tells the two results of {@linkcode validateUpgradeRequest} apart.
 *
 * @param x A result of {@linkcode validateUpgradeRequest}.
 * @returns `true` if it is a refusal.
 *
 * @example
 * ```ts
 * import { isRefusal, validateUpgradeRequest } from "./handshake.ts";
 * const result = validateUpgradeRequest({
 *   method: "POST",
 *   target: "/",
 *   version: "HTTP/1.1",
 *   headers: [],
 * });
 * console.log(isRefusal(result)); // true
 * ```
 */
export function isRefusal(x: UpgradeRequestInfo | HandshakeRefusal): x is HandshakeRefusal {
  return typeof (x as HandshakeRefusal).status === "number";
}

// ---------------------------------------------------------------------------------------------
// Responses

/** RFC 6455 §1.3: the GUID appended to the key before hashing. */
const GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/**
 * The Sec-WebSocket-Accept value for a key (RFC 6455 §4.2.2):
 * base64(SHA-1(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11")).
 *
 * @param key The Sec-WebSocket-Key the client sent.
 * @returns The value of the Sec-WebSocket-Accept header.
 *
 * @example
 * ```ts
 * import { acceptKey } from "./handshake.ts";
 * console.log(acceptKey("dGhlIHNhbXBsZSBub25jZQ==")); // s3pPLMBiTxaQ9kYGzzhZRbK+xOo=
 * ```
 */
export function acceptKey(key: string): string {
  // node:crypto is synchronous, and faster than crypto.subtle in both runtimes (FACTS.md).
  return createHash("sha1").update(key + GUID).digest("base64");
}

/**
 * Options of {@linkcode acceptResponse}.
 *
 * @example
 * ```ts
 * import { acceptResponse } from "./handshake.ts";
 * acceptResponse("dGhlIHNhbXBsZSBub25jZQ==", { protocol: "chat", headers: { "X-Id": "1" } });
 * ```
 */
export interface AcceptResponseOptions {
  /**
   * The subprotocol chosen from those offered, sent as Sec-WebSocket-Protocol.
   *
   * @default {undefined}
   */
  protocol?: string;
  /**
   * The negotiated extensions, sent as Sec-WebSocket-Extensions.
   *
   * @default {undefined}
   */
  extensions?: string;
  /**
   * More headers to send, in order: a `Headers`, `[name, value]` pairs or a record, as `fetch`
   * takes them. None may be one the handshake sets itself ({@linkcode HANDSHAKE_HEADERS}).
   *
   * @default {undefined}
   */
  headers?: Headers | Array<[string, string]> | Record<string, string>;
}

/**
 * Headers a 101 response gets from the handshake alone, lower-cased: extra headers may not set
 * them. RFC 6455 §4.2.2 fixes `Upgrade`, `Connection` and `Sec-WebSocket-Accept`; the
 * subprotocol and extensions come from negotiation (a second value would be a different
 * answer); and a 101 has no body to frame (RFC 9110 §8.6, RFC 9112 §6.1).
 */
export const HANDSHAKE_HEADERS: ReadonlySet<string> = new Set([
  "upgrade",
  "connection",
  "sec-websocket-accept",
  "sec-websocket-protocol",
  "sec-websocket-extensions",
  "content-length",
  "transfer-encoding",
]);

/**
 * The `[name, value]` pairs of headers given the ways `fetch` takes them: a `Headers`, an array
 * of pairs, or a record of names to values.
 *
 * @param init The headers.
 * @returns The pairs, in order (a `Headers` gives them lower-cased and sorted).
 * @throws {TypeError} For anything else (a string, a `Map`, a pair that is not two strings).
 *
 * @example
 * ```ts
 * import { headerPairs } from "./handshake.ts";
 * console.log(headerPairs({ "X-Id": "1" })); // [ [ "X-Id", "1" ] ]
 * console.log(headerPairs(new Headers({ "X-Id": "1" }))); // [ [ "x-id", "1" ] ]
 * ```
 */
export function headerPairs(
  init: Headers | Array<[string, string]> | Record<string, string>,
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
          `Cannot write the response: headers must be ${expected}; item ${i} is not a pair of strings`,
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
    throw new TypeError(`Cannot write the response: headers must be ${expected}, got ${kind}`);
  }
  const pairs = Object.entries(init);
  for (const [name, value] of pairs) {
    if (typeof value !== "string") {
      throw new TypeError(
        `Cannot write the response: headers must be ${expected}; the value of "${name}" is a ${typeof value}`,
      );
    }
  }
  return pairs;
}

function checkName(name: string): void {
  let ok = name.length > 0;
  for (let i = 0; ok && i < name.length; i++) {
    const c = name.charCodeAt(i);
    ok = c < 0x80 && TCHAR[c] !== 0;
  }
  if (!ok) throw new TypeError(`Cannot write the response: header name "${name}" is not a token`);
}

function checkValue(name: string, value: string): void {
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    // RFC 9110 §5.5: CR, LF and NUL would split or end the head; above 0xFF is not latin1.
    if (c === CR || c === LF || c === 0 || c > 0xff) {
      throw new TypeError(
        `Cannot write the response: the value of header "${name}" holds ${
          c > 0xff ? "a character above U+00FF" : "CR, LF or NUL"
        }`,
      );
    }
  }
}

/** `name: value\r\n` for each extra header, checked. */
function extraHeaders(list: Array<[string, string]>): string {
  let text = "";
  for (let i = 0; i < list.length; i++) {
    const [name, value] = list[i];
    checkName(name);
    checkValue(name, value);
    text += `${name}: ${value}\r\n`;
  }
  return text;
}

/** Writes `text` (checked to be latin1) into `out` from `offset`; returns the end. */
function writeLatin1(text: string, out: Uint8Array, offset: number): number {
  for (let i = 0; i < text.length; i++) out[offset++] = text.charCodeAt(i);
  return offset;
}

/**
 * The bytes of the 101 response that accepts a handshake (RFC 6455 §4.2.2), in latin1.
 *
 * @param key The Sec-WebSocket-Key the client sent.
 * @param options The subprotocol, extensions and extra headers to send.
 * @returns The response head, ending with an empty line.
 * @throws {TypeError} If the extra headers are not headers, set one of
 * {@linkcode HANDSHAKE_HEADERS}, or have a name that is not a token or a value that holds CR, LF,
 * NUL or a character above U+00FF.
 *
 * @example
 * ```ts
 * import { acceptResponse } from "./handshake.ts";
 * const bytes = acceptResponse("dGhlIHNhbXBsZSBub25jZQ==", { protocol: "chat" });
 * console.log(new TextDecoder().decode(bytes).split("\r\n")[0]); // HTTP/1.1 101 Switching Protocols
 * ```
 */
export function acceptResponse(key: string, options?: AcceptResponseOptions): Uint8Array {
  let text = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
    `Sec-WebSocket-Accept: ${acceptKey(key)}\r\n`;
  if (options !== undefined) {
    const { protocol, extensions, headers } = options;
    if (protocol !== undefined) {
      checkValue("Sec-WebSocket-Protocol", protocol);
      text += `Sec-WebSocket-Protocol: ${protocol}\r\n`;
    }
    if (extensions !== undefined) {
      checkValue("Sec-WebSocket-Extensions", extensions);
      text += `Sec-WebSocket-Extensions: ${extensions}\r\n`;
    }
    if (headers !== undefined) {
      const pairs = headerPairs(headers);
      for (const [name] of pairs) {
        if (HANDSHAKE_HEADERS.has(name.toLowerCase())) {
          throw new TypeError(
            `Cannot write the response: the handshake sets ${name} itself${
              name.toLowerCase() === "sec-websocket-protocol"
                ? " (to choose a subprotocol, accept with { protocol })"
                : ""
            }`,
          );
        }
      }
      text += extraHeaders(pairs);
    }
  }
  text += "\r\n";
  const out = new Uint8Array(text.length);
  writeLatin1(text, out, 0);
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
 * The bytes of an error response for a refused handshake: `HTTP/1.1 <status> <reason>`,
 * `Connection: close`, `Content-Type: text/plain; charset=utf-8`, `Content-Length`, the
 * refusal's headers, then the message as the UTF-8 body.
 *
 * @param refusal The refusal, e.g. from {@linkcode validateUpgradeRequest}.
 * @returns The whole response.
 * @throws {TypeError} If a header name is not a token, or a value holds CR, LF, NUL or a
 * character above U+00FF.
 * @throws {RangeError} If the status is not an integer from 100 to 599.
 *
 * @example
 * ```ts
 * import { refusalResponse } from "./handshake.ts";
 * const bytes = refusalResponse({ status: 400, message: "Bad request", headers: [] });
 * console.log(new TextDecoder().decode(bytes).split("\r\n")[0]); // HTTP/1.1 400 Bad Request
 * ```
 */
export function refusalResponse(refusal: HandshakeRefusal): Uint8Array {
  return httpResponse(refusal.status, [
    ["Content-Type", "text/plain; charset=utf-8"],
    ...refusal.headers,
  ], ENCODER.encode(refusal.message));
}

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
 * import { httpResponse } from "./handshake.ts";
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
    (bodiless ? "" : `Content-Length: ${body.length}\r\n`) + `${extraHeaders(headers)}\r\n`;
  const out = new Uint8Array(text.length + body.length);
  out.set(body, writeLatin1(text, out, 0));
  return out;
}
