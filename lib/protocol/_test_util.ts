/**
 * Helpers shared by the protocol core's unit tests: hex fixtures, byte patterns, a reference
 * masking loop, feedings of a fixture in pieces, and a sink that records what a
 * {@linkcode FrameParser} decodes in a form that does not depend on how the input was split.
 *
 * @module
 */
import assert from "node:assert/strict";
import { WebSocketError } from "./errors.ts";
import { FrameParser, type FrameParserOptions, type FrameSink } from "./frame_parser.ts";

/**
 * Bytes from hex text such as `"81 85 37 fa"`; whitespace is ignored.
 *
 * @param text Pairs of hex digits.
 * @returns The bytes.
 */
export function hex(text: string): Uint8Array {
  const digits = text.replace(/\s+/g, "");
  if (digits.length % 2 !== 0 || /[^0-9a-fA-F]/.test(digits)) {
    throw new TypeError(`Not hex: ${text}`);
  }
  const out = new Uint8Array(digits.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(digits.slice(2 * i, 2 * i + 2), 16);
  return out;
}

/**
 * Hex text of bytes, space-separated, for messages and small comparisons.
 *
 * @param bytes The bytes.
 * @returns Such as `"81 05"`.
 */
export function toHex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join(" ");
}

/**
 * The parts, one after another, in a new buffer.
 *
 * @param parts Byte arrays.
 * @returns Their concatenation.
 */
export function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

/**
 * A deterministic, non-repeating-looking byte pattern, so a shifted or misplaced byte shows.
 *
 * @param length How many bytes.
 * @param seed Varies the pattern.
 * @returns The bytes.
 */
export function pattern(length: number, seed = 0): Uint8Array {
  const out = new Uint8Array(length);
  let x = (seed * 2654435761 + 12345) >>> 0;
  for (let i = 0; i < length; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    out[i] = x >>> 24;
  }
  return out;
}

/**
 * The obvious masking loop of RFC 6455 §5.3, as a reference for `unmask`: a new array.
 *
 * @param data The bytes.
 * @param mask The 4-byte key.
 * @param offset How many payload bytes came before `data`.
 * @returns `data` XOR the key.
 */
export function referenceMask(data: Uint8Array, mask: Uint8Array, offset = 0): Uint8Array {
  const out = new Uint8Array(data.length);
  for (let i = 0; i < data.length; i++) out[i] = data[i] ^ mask[(i + offset) % 4];
  return out;
}

/** A frame as the recording sink normalises it: the same however the input was split. */
export interface RecordedFrame {
  type: "frame";
  opcode: number;
  fin: boolean;
  rsv1: boolean;
  payload: Uint8Array;
  /** Whether it came through `onFrame` (whole in one chunk); left out of comparisons. */
  whole?: boolean;
  /** Offsets in `payload` where two `onFrameData` pieces met; left out of comparisons. */
  joins?: number[];
}

/** An error as the recording sink saw it. */
export interface RecordedError {
  type: "error";
  name: string;
  code: string;
  closeCode: number;
  message: string;
}

/** One normalised event. */
export type RecordedEvent = RecordedFrame | RecordedError;

/**
 * A {@linkcode FrameSink} that records normalised events and checks the sink contract as it
 * goes: `onFrameData` only after `onFrameStart`, pieces that add up to the announced length,
 * `last` on the final piece only, and nothing at all after `onFrameError`.
 */
export class RecordingSink implements FrameSink {
  events: RecordedEvent[] = [];
  /** Views handed to `onFrame`, with the chunk each came from, for zero-copy checks. */
  views: Uint8Array[] = [];
  /** Called after each frame or error is recorded (for pause tests). */
  after?: (event: RecordedEvent) => void;
  /** Copy payloads (needed when the caller reuses chunk memory); views are kept otherwise. */
  copy: boolean;
  #open: { opcode: number; fin: boolean; rsv1: boolean; length: number } | undefined;
  #pieces: Uint8Array[] = [];
  #received = 0;
  #errored = false;

  #scratch: Uint8Array | undefined;
  #scratchUsed = 0;

  /**
   * @param copy Copy payloads (needed if the caller reuses chunk memory).
   * @param scratch Where to join the pieces of split payloads, when they fit, rather than in
   * new buffers (fewer allocations for tests that feed large frames many times).
   */
  constructor(copy = true, scratch?: Uint8Array) {
    this.copy = copy;
    this.#scratch = scratch;
  }

  onFrame(opcode: number, fin: boolean, rsv1: boolean, payload: Uint8Array): void {
    this.#checkLive("onFrame");
    if (this.#open !== undefined) assert.fail("onFrame while a split frame is open");
    this.views.push(payload);
    this.#record({
      type: "frame",
      opcode,
      fin,
      rsv1,
      payload: this.copy ? payload.slice() : payload,
      whole: true,
    });
  }

  onFrameStart(opcode: number, fin: boolean, rsv1: boolean, length: number): void {
    this.#checkLive("onFrameStart");
    if (this.#open !== undefined) assert.fail("onFrameStart while a split frame is open");
    if (!(length > 0)) assert.fail("onFrameStart for an empty payload");
    this.#open = { opcode, fin, rsv1, length };
    this.#pieces = [];
    this.#received = 0;
  }

  onFrameData(piece: Uint8Array, last: boolean): void {
    this.#checkLive("onFrameData");
    const open = this.#open;
    // Plain checks rather than assert calls: this runs once per byte in byte-by-byte feedings.
    if (open === undefined) assert.fail("onFrameData without onFrameStart");
    if (piece.length === 0) assert.fail("empty onFrameData piece");
    this.#received += piece.length;
    if (this.#received > open.length) assert.fail("more payload than announced");
    if (last !== (this.#received === open.length)) assert.fail("last must mark the final piece");
    this.#pieces.push(this.copy ? piece.slice() : piece);
    if (!last) return;
    this.#open = undefined;
    const pieces = this.#pieces;
    const payload = pieces.length === 1 ? pieces[0] : this.#join(pieces, open.length);
    const joins: number[] = [];
    let at = 0;
    for (let i = 0; i < pieces.length - 1; i++) joins.push(at += pieces[i].length);
    this.#pieces = [];
    this.#record({
      type: "frame",
      opcode: open.opcode,
      fin: open.fin,
      rsv1: open.rsv1,
      payload,
      whole: false,
      joins,
    });
  }

  onFrameError(error: WebSocketError): void {
    this.#checkLive("onFrameError");
    assert.ok(error instanceof WebSocketError, "onFrameError with a non-WebSocketError");
    this.#errored = true;
    this.#record({
      type: "error",
      name: error.name,
      code: error.code,
      closeCode: error.closeCode,
      message: error.message,
    });
  }

  #join(pieces: Uint8Array[], length: number): Uint8Array {
    const scratch = this.#scratch;
    if (scratch === undefined || scratch.length - this.#scratchUsed < length) {
      return concat(...pieces);
    }
    const out = scratch.subarray(this.#scratchUsed, this.#scratchUsed + length);
    this.#scratchUsed += length;
    let offset = 0;
    for (const piece of pieces) {
      out.set(piece, offset);
      offset += piece.length;
    }
    return out;
  }

  #checkLive(what: string): void {
    if (this.#errored) assert.fail(`${what} after onFrameError`);
  }

  #record(event: RecordedEvent): void {
    this.events.push(event);
    this.after?.(event);
  }
}

/**
 * Feeds a fixture to new parsers, again and again, from one buffer that is refilled before
 * each feeding (the parser unmasks in place). The events of a feeding hold views of that
 * buffer: check them before the next feeding.
 */
export class Feeder {
  readonly input: Uint8Array;
  #buffer: Uint8Array;
  #scratch: Uint8Array;

  /** @param input The fixture; never written to. */
  constructor(input: Uint8Array) {
    this.input = input;
    this.#buffer = new Uint8Array(input.length);
    this.#scratch = new Uint8Array(input.length);
  }

  /**
   * Feeds the fixture in pieces that end at `cuts`.
   *
   * @param cuts Increasing offsets where one push ends and the next begins.
   * @param options Parser options.
   * @returns The sink after the last push.
   */
  feed(cuts: readonly number[], options?: FrameParserOptions): RecordingSink {
    const buffer = this.#buffer;
    buffer.set(this.input);
    const sink = new RecordingSink(false, this.#scratch);
    const parser = new FrameParser(sink, options);
    let start = 0;
    for (const cut of cuts) {
      parser.push(buffer.subarray(start, cut));
      start = cut;
    }
    parser.push(buffer.subarray(start));
    return sink;
  }
}

/**
 * Feeds a fresh copy of `input` to a new parser in pieces that end at `cuts`.
 *
 * @param input The bytes; copied first, as the parser unmasks in place.
 * @param cuts Increasing offsets where one push ends and the next begins.
 * @param options Parser options.
 * @returns The sink after the last push.
 */
export function feed(
  input: Uint8Array,
  cuts: readonly number[],
  options?: FrameParserOptions,
): RecordingSink {
  const buffer = input.slice();
  const sink = new RecordingSink(false);
  const parser = new FrameParser(sink, options);
  let start = 0;
  for (const cut of cuts) {
    parser.push(buffer.subarray(start, cut));
    start = cut;
  }
  parser.push(buffer.subarray(start));
  return sink;
}

/** A frame expected from a fixture. */
export interface ExpectedFrame {
  opcode: number;
  fin?: boolean;
  rsv1?: boolean;
  payload: Uint8Array;
}

/** The normalised events `frames`, then `error` if given, should produce. */
export function expectedEvents(
  frames: readonly ExpectedFrame[],
  error?: Omit<RecordedError, "type" | "name">,
): RecordedEvent[] {
  const events: RecordedEvent[] = frames.map((f) => ({
    type: "frame",
    opcode: f.opcode,
    fin: f.fin ?? true,
    rsv1: f.rsv1 ?? false,
    payload: f.payload,
  }));
  if (error) events.push({ type: "error", name: "WebSocketError", ...error });
  return events;
}

/** Whether two byte arrays hold the same bytes (fast enough for large payloads). */
export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Payloads longer than this are compared in samples by `assertEvents(..., true)`. */
export const SAMPLE_ABOVE = 4096;

/**
 * Whether `actual` matches `expected` in the bytes where a split payload can go wrong: the
 * first and last 256 bytes, 256 bytes either side of every join of pieces, and every 61st
 * byte. Both arrays have the same length.
 */
function sameSampledBytes(actual: Uint8Array, expected: Uint8Array, joins: number[]): boolean {
  const length = expected.length;
  const ranges: [number, number][] = [[0, 256], [length - 256, length]];
  for (const join of joins) ranges.push([join - 256, join + 256]);
  for (const [from, to] of ranges) {
    for (let i = Math.max(from, 0); i < Math.min(to, length); i++) {
      if (actual[i] !== expected[i]) return false;
    }
  }
  for (let i = 0; i < length; i += 61) if (actual[i] !== expected[i]) return false;
  return true;
}

/**
 * Asserts that recorded events equal the expected ones. Payloads are compared with a loop and
 * reported in hex only when short, so large fixtures stay readable.
 *
 * @param sampled Compare payloads over {@linkcode SAMPLE_ABOVE} bytes in samples (see
 * `sameSampledBytes`) rather than whole, to keep tests that feed a large payload tens of
 * thousands of times fast; each such payload must also be checked whole in another feeding.
 */
export function assertEvents(
  actual: RecordedEvent[],
  expected: RecordedEvent[],
  label: string,
  sampled = false,
): void {
  const summary = (events: RecordedEvent[]) =>
    events.map((e) =>
      e.type === "frame"
        ? `frame op=${e.opcode} fin=${e.fin} rsv1=${e.rsv1} len=${e.payload.length}`
        : `error ${e.code} ${e.closeCode} ${e.message}`
    );
  assert.deepEqual(summary(actual), summary(expected), label);
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i];
    const e = expected[i];
    if (
      a.type === "frame" && e.type === "frame" &&
      !(sampled && e.payload.length > SAMPLE_ABOVE
        ? sameSampledBytes(a.payload, e.payload, a.joins ?? [])
        : sameBytes(a.payload, e.payload))
    ) {
      assert.fail(
        `${label}: payload of frame ${i} differs` +
          (e.payload.length <= 64 ? `: got ${toHex(a.payload)}, expected ${toHex(e.payload)}` : ""),
      );
    }
    if (a.type === "error" && e.type === "error") assert.deepEqual(a, e, label);
  }
}
