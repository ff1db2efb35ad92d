/**
 * The streaming frame decoder (RFC 6455 §5.2): bytes in, frames out, over the chunks a socket
 * gives. Payloads are views of those chunks, unmasked in place; only a header that is split
 * across chunks is copied (into a 14-byte spill). Frame-local rules are checked from the first
 * two header bytes, before any payload is buffered; message-level rules belong to the sink.
 *
 * @module
 */
import { WebSocketError } from "./errors.ts";
import { MAX_HEADER_SIZE } from "./frame_writer.ts";
import { unmask } from "./mask.ts";

/** Receives what {@linkcode FrameParser} decodes. Called synchronously from `push()`. */
export interface FrameSink {
  /**
   * A frame whose payload lies whole in one chunk.
   *
   * @param payload An unmasked view of the chunk. The chunk is the caller's, and the parser
   * never writes to it again, so the view stays valid.
   */
  onFrame(opcode: number, fin: boolean, rsv1: boolean, payload: Uint8Array): void;
  /** A frame whose payload spans chunks begins; its payload follows through `onFrameData`. */
  onFrameStart(opcode: number, fin: boolean, rsv1: boolean, length: number): void;
  /** The next piece of that payload, unmasked; `last` on the piece that ends the frame. */
  onFrameData(piece: Uint8Array, last: boolean): void;
  /** The input broke RFC 6455: parsing has stopped for good. */
  onFrameError(error: WebSocketError): void;
}

/** How {@linkcode FrameParser} reads frames. */
export interface FrameParserOptions {
  /** The peer is a client, whose frames must be masked; `false` for a client reading a
   * server, whose frames must not be. @default {true} */
  requireMask?: boolean;
  /** RSV1 is allowed on a message's first frame (permessage-deflate was negotiated).
   * @default {false} */
  allowRsv1?: boolean;
  /**
   * A frame whose payload is shorter than this, whole in its chunk, is handed out as a copy
   * instead of a view of the chunk (on JavaScriptCore a small copy costs less than a view).
   * @default {0} (always views)
   */
  copyBelow?: number;
  /**
   * Frames decoded per turn. After this many, decoding yields ({@linkcode FrameParser.yielded})
   * and what remains waits for {@linkcode FrameParser.continue}, so that one peer's burst of
   * small frames is decoded in slices between which the caller can serve others. A turn starts
   * with each `push()`, `resume()` and `continue()`.
   * @default {Infinity} (never yields)
   */
  sliceFrames?: number;
}

const HEADER = 0;
const PAYLOAD = 1;
const STOPPED = 2;
/** The budget of a parser that never yields: a small integer, so counting it down stays cheap. */
const NO_SLICE = 2 ** 30 - 1;

/**
 * Decodes frames from chunks of bytes and hands them to a {@linkcode FrameSink}.
 *
 * @example
 * ```ts
 * import { FrameParser } from "./frame_parser.ts";
 * const parser = new FrameParser({
 *   onFrame: (opcode, fin, rsv1, payload) => console.log(opcode, fin, payload),
 *   onFrameStart() {},
 *   onFrameData() {},
 *   onFrameError: (error) => console.log(error.code),
 * }, { requireMask: false });
 * parser.push(new Uint8Array([0x81, 0x02, 0x68, 0x69])); // 1 true Uint8Array(2) [104, 105]
 * ```
 */
export class FrameParser {
  #sink: FrameSink;
  #requireMask: boolean;
  #allowRsv1: boolean;
  #copyBelow: number;
  #state = HEADER;
  /** Decoding stops after the current frame event: held by `pause()`, or yielded. */
  #paused = false;
  /** {@linkcode FrameParser.pause} holds input back. */
  #held = false;
  /** The turn's budget of frames ran out with input left. */
  #yielded = false;
  #slice: number;
  /** Frames this turn may still decode. */
  #budget: number;
  #busy = false;
  #backlog: Uint8Array[] | undefined;
  // A header split across chunks.
  #spill: Uint8Array | undefined;
  #spillLength = 0;
  // The frame whose payload is being read.
  #masked = false;
  /** The masking key of the frame being read (made at the first masked frame). */
  #mask: Uint8Array | undefined;
  #remaining = 0;
  #maskOffset = 0;

  /**
   * Makes a parser.
   *
   * @param sink Receives frames and errors.
   * @param options The peer's role and negotiated RSV bits.
   */
  constructor(sink: FrameSink, options: FrameParserOptions = {}) {
    this.#sink = sink;
    this.#requireMask = options.requireMask ?? true;
    this.#allowRsv1 = options.allowRsv1 ?? false;
    this.#copyBelow = options.copyBelow ?? 0;
    const slice = options.sliceFrames ?? Infinity;
    if (!(slice >= 1)) {
      throw new RangeError(`Cannot decode: sliceFrames must be at least 1, got ${slice}`);
    }
    this.#budget = this.#slice = Math.min(Math.floor(slice), NO_SLICE);
  }

  /** Whether parsing stopped for good (after an error or {@linkcode FrameParser.stop}). */
  get stopped(): boolean {
    return this.#state === STOPPED;
  }

  /** Whether {@linkcode FrameParser.pause} holds input back. */
  get paused(): boolean {
    return this.#held;
  }

  /**
   * Whether the turn's budget of frames ({@linkcode FrameParserOptions.sliceFrames}) ran out
   * with input left: it waits for {@linkcode FrameParser.continue}, on a later turn.
   */
  get yielded(): boolean {
    return this.#yielded;
  }

  /**
   * Decodes the next chunk. The parser keeps views of it (payloads, a paused remainder) and
   * unmasks it in place, so the caller must not reuse its memory.
   *
   * @param chunk Bytes from the peer.
   */
  push(chunk: Uint8Array): void {
    if (this.#state === STOPPED || chunk.length === 0) return;
    if (this.#paused || this.#busy) {
      (this.#backlog ??= []).push(chunk);
      return;
    }
    this.#budget = this.#slice;
    this.#run(chunk);
  }

  /** Stops decoding for good: later input is ignored. Safe to call from a sink callback. */
  stop(): void {
    this.#state = STOPPED;
    this.#backlog = undefined;
    this.#yielded = false;
    this.#paused = this.#held;
  }

  /**
   * Holds input back after the current frame event: what remains of the chunk being decoded,
   * and chunks pushed later, wait for {@linkcode FrameParser.resume}.
   */
  pause(): void {
    this.#held = this.#paused = true;
  }

  /**
   * Decodes what {@linkcode FrameParser.pause} held back, then goes on as usual (unless the
   * parser yielded: then {@linkcode FrameParser.continue} does).
   */
  resume(): void {
    if (!this.#held) return;
    this.#held = false;
    if (!this.#yielded) this.#wake();
  }

  /** Decodes the next slice of what waited since the parser yielded (a new turn). */
  continue(): void {
    if (!this.#yielded) return;
    this.#yielded = false;
    if (!this.#held) this.#wake();
  }

  #wake(): void {
    this.#paused = false;
    const backlog = this.#backlog;
    if (this.#busy || backlog === undefined || backlog.length === 0 || this.#state === STOPPED) {
      return;
    }
    this.#budget = this.#slice;
    this.#run(backlog.shift()!);
  }

  #run(first: Uint8Array): void {
    this.#busy = true;
    let chunk: Uint8Array | undefined = first;
    while (chunk !== undefined) {
      const end = this.#parse(chunk);
      if (this.#state === STOPPED) break;
      if (this.#paused) {
        if (end < chunk.length) {
          (this.#backlog ??= []).unshift(chunk.subarray(end));
        } else if (this.#yielded && (this.#backlog === undefined || this.#backlog.length === 0)) {
          // The budget ran out with the input: nothing waits, so there is nothing to yield.
          this.#yielded = false;
          this.#paused = this.#held;
        }
        break;
      }
      chunk = this.#backlog?.shift();
    }
    this.#busy = false;
  }

  /** Decodes `chunk` until it ends, an error, or a pause; returns where it stopped. */
  #parse(chunk: Uint8Array): number {
    const end = chunk.length;
    const sink = this.#sink;
    let pos = 0;
    while (pos < end) {
      if (this.#state === PAYLOAD) {
        const available = end - pos;
        const remaining = this.#remaining;
        if (available >= remaining) {
          const piece = chunk.subarray(pos, pos + remaining);
          pos += remaining;
          this.#remaining = 0;
          this.#state = HEADER;
          if (this.#masked) unmask(piece, this.#mask!, this.#maskOffset);
          sink.onFrameData(piece, true);
          if (--this.#budget === 0) this.#yield();
        } else {
          const piece = chunk.subarray(pos, end);
          pos = end;
          this.#remaining = remaining - available;
          if (this.#masked) unmask(piece, this.#mask!, this.#maskOffset);
          this.#maskOffset += available;
          sink.onFrameData(piece, false);
        }
        if (this.#state === STOPPED || this.#paused) return pos;
        continue;
      }

      // HEADER: find the whole header in the chunk or, when it is split, in the spill.
      let header: Uint8Array;
      let at: number;
      if (this.#spillLength === 0 && end - pos >= 2) {
        const b1 = chunk[pos + 1];
        if (!this.#checkStart(chunk[pos], b1)) return end;
        const need = headerLength(b1);
        if (end - pos < need) {
          (this.#spill ??= new Uint8Array(MAX_HEADER_SIZE)).set(chunk.subarray(pos, end));
          this.#spillLength = end - pos;
          return end;
        }
        header = chunk;
        at = pos;
        pos += need;
      } else {
        const spill = this.#spill ??= new Uint8Array(MAX_HEADER_SIZE);
        const had = this.#spillLength;
        let length = had;
        while (length < 2 && pos < end) spill[length++] = chunk[pos++];
        this.#spillLength = length;
        if (length < 2) return end;
        if (had < 2 && !this.#checkStart(spill[0], spill[1])) return end;
        const need = headerLength(spill[1]);
        const take = Math.min(need - length, end - pos);
        spill.set(chunk.subarray(pos, pos + take), length);
        pos += take;
        length += take;
        if (length < need) {
          this.#spillLength = length;
          return end;
        }
        this.#spillLength = 0;
        header = spill;
        at = 0;
      }

      const b0 = header[at];
      const b1 = header[at + 1];
      let length = b1 & 0x7f;
      let i = at + 2;
      if (length === 126) {
        length = (header[i] << 8) | header[i + 1];
        i += 2;
      } else if (length === 127) {
        const high = ((header[i] << 24) | (header[i + 1] << 16) | (header[i + 2] << 8) |
          header[i + 3]) >>> 0;
        const low = ((header[i + 4] << 24) | (header[i + 5] << 16) | (header[i + 6] << 8) |
          header[i + 7]) >>> 0;
        if (high > 0x1fffff) {
          // RFC 6455 §5.2: the most significant bit MUST be 0. Below that, anything past
          // 2^53 − 1 bytes is more than any limit can allow.
          this.#fail(
            high >= 0x80000000
              ? new WebSocketError(
                "WS_ERR_INVALID_LENGTH",
                "Invalid frame: the 64-bit payload length has its most significant bit set",
              )
              : new WebSocketError(
                "WS_ERR_MESSAGE_TOO_BIG",
                "Message too big: the frame's payload length exceeds 2^53 - 1 bytes",
              ),
          );
          return end;
        }
        length = high * 0x100000000 + low;
        i += 8;
      }
      const masked = (b1 & 0x80) !== 0;
      if (masked) {
        const mask = this.#mask ??= new Uint8Array(4);
        mask[0] = header[i];
        mask[1] = header[i + 1];
        mask[2] = header[i + 2];
        mask[3] = header[i + 3];
      }
      const opcode = b0 & 0x0f;
      const fin = (b0 & 0x80) !== 0;
      const rsv1 = (b0 & 0x40) !== 0;
      if (end - pos >= length) {
        const payload = length < this.#copyBelow
          ? chunk.slice(pos, pos + length)
          : chunk.subarray(pos, pos + length);
        pos += length;
        if (masked && length !== 0) unmask(payload, this.#mask!, 0);
        sink.onFrame(opcode, fin, rsv1, payload);
        if (--this.#budget === 0) this.#yield();
      } else {
        this.#state = PAYLOAD;
        this.#masked = masked;
        this.#remaining = length;
        this.#maskOffset = 0;
        sink.onFrameStart(opcode, fin, rsv1, length);
      }
      if (this.#state === STOPPED || this.#paused) return pos;
    }
    return pos;
  }

  /** The turn's budget ran out: stop after this frame, unless parsing stopped for good. */
  #yield(): void {
    if (this.#state === STOPPED) return;
    this.#yielded = this.#paused = true;
  }

  /** Checks what the first two header bytes say; fails the parser and returns false if bad. */
  #checkStart(b0: number, b1: number): boolean {
    const opcode = b0 & 0x0f;
    if (opcode >= 0x8) {
      if (opcode > 0xa) {
        return this.#fail(
          new WebSocketError("WS_ERR_INVALID_OPCODE", `Invalid frame: reserved opcode ${opcode}`),
        );
      }
      // RFC 6455 §5.5: control frames MUST NOT be fragmented and carry at most 125 bytes.
      if ((b0 & 0x80) === 0) {
        return this.#fail(
          new WebSocketError(
            "WS_ERR_FRAGMENTED_CONTROL_FRAME",
            "Invalid frame: a control frame must not be fragmented",
          ),
        );
      }
      if ((b1 & 0x7f) > 125) {
        return this.#fail(
          new WebSocketError(
            "WS_ERR_CONTROL_FRAME_TOO_LONG",
            "Invalid frame: a control frame's payload must not exceed 125 bytes",
          ),
        );
      }
    } else if (opcode > 0x2) {
      return this.#fail(
        new WebSocketError("WS_ERR_INVALID_OPCODE", `Invalid frame: reserved opcode ${opcode}`),
      );
    }
    const rsv = b0 & 0x70;
    // RFC 6455 §5.2: RSV bits MUST be 0 unless an extension gives them a meaning; RFC 7692 §6
    // gives RSV1 one on the first frame of a data message only.
    if (rsv !== 0 && (rsv !== 0x40 || !this.#allowRsv1 || opcode === 0 || opcode >= 0x8)) {
      return this.#fail(
        new WebSocketError(
          "WS_ERR_RESERVED_BITS",
          `Invalid frame: reserved bits 0x${rsv.toString(16)} set on opcode ${opcode}`,
        ),
      );
    }
    // RFC 6455 §5.1: a client masks every frame; a server masks none.
    if (((b1 & 0x80) !== 0) !== this.#requireMask) {
      return this.#fail(
        this.#requireMask
          ? new WebSocketError(
            "WS_ERR_UNMASKED_FRAME",
            "Invalid frame: a client frame must be masked",
          )
          : new WebSocketError(
            "WS_ERR_MASKED_FRAME",
            "Invalid frame: a server frame must not be masked",
          ),
      );
    }
    return true;
  }

  #fail(error: WebSocketError): false {
    this.stop();
    this.#sink.onFrameError(error);
    return false;
  }
}

/** Header bytes for a frame whose second byte is `b1`. */
function headerLength(b1: number): number {
  const length = b1 & 0x7f;
  return (length < 126 ? 2 : length === 126 ? 4 : 10) + ((b1 & 0x80) !== 0 ? 4 : 0);
}
