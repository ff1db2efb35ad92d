/**
 * Helpers shared by the permessage-deflate tests (the engines' unit tests, the protocol's, and
 * the end-to-end ones in `tests/`): negotiated parameters, test data, a wrapper around an
 * engine's callback, what a client does with node:zlib (RFC 7692 §7.2.1, §7.2.2), and byte and
 * error assertions.
 *
 * @module
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import {
  constants,
  createDeflateRaw,
  createInflateRaw,
  deflateRawSync,
  inflateRawSync,
} from "node:zlib";
import { WebSocketError } from "../errors.ts";
import type { DeflateCallback, MessageCompressor, MessageDecompressor } from "./deflate_engine.ts";
import type { DeflateParams } from "./deflate_negotiation.ts";

/** zlib's sync flush: each message ends on a byte boundary with 00 00 FF FF. */
export const SYNC_FLUSH = constants.Z_SYNC_FLUSH;
/** The 4 bytes a sender removes from each compressed message (RFC 7692 §7.2.1). */
export const TAIL = new Uint8Array([0x00, 0x00, 0xff, 0xff]);
export const encoder = new TextEncoder();
export const MiB = 1024 * 1024;

/** No context takeover either way: the stateless compressor and decompressor ("shared"). */
export const STATELESS: DeflateParams = {
  localNoContextTakeover: true,
  remoteNoContextTakeover: true,
  localMaxWindowBits: 15,
  remoteMaxWindowBits: 15,
};
/** Context takeover both ways: persistent zlib streams ("dedicated"). */
export const TAKEOVER: DeflateParams = {
  ...STATELESS,
  localNoContextTakeover: false,
  remoteNoContextTakeover: false,
};

// Data

/** `length` bytes from xorshift32: incompressible. */
export function random(length: number, seed = 1): Uint8Array {
  const out = new Uint8Array(length);
  let x = (0x9e3779b9 ^ seed) >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

/** `length` bytes of text with short-range repeats: compresses well. */
export function repetitive(length: number): Uint8Array {
  const out = new Uint8Array(length);
  const line = encoder.encode("the quick brown fox jumps over the lazy dog #");
  for (let i = 0; i < length; i++) out[i] = i % 97 === 96 ? 0x30 + (i % 10) : line[i % line.length];
  return out;
}

/** A JSON message of exactly 200 bytes. */
export function json200(): Uint8Array {
  const base = {
    type: "update",
    id: 12345,
    user: { name: "Ada Lovelace", roles: ["admin", "editor"] },
    items: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
    ok: true,
    note: "",
  };
  const bytes = encoder.encode(JSON.stringify(base)).length;
  base.note = "x".repeat(200 - bytes);
  const out = encoder.encode(JSON.stringify(base));
  assert.equal(out.length, 200);
  return out;
}

/** Messages from empty to 1 MiB, incompressible and compressible. */
export const SAMPLES: Array<[string, Uint8Array]> = [
  ["empty", new Uint8Array(0)],
  ["1 byte", Uint8Array.of(0x61)],
  ["200 B JSON", json200()],
  ["64 KiB random", random(64 * 1024, 2)],
  ["64 KiB repetitive", repetitive(64 * 1024)],
  ["1 MiB random", random(MiB, 3)],
  ["1 MiB repetitive", repetitive(MiB)],
];

// RFC 7692 §7.2.3: the payloads of its examples, each "Hello".
export const RFC_EXAMPLES: Array<[string, number[]]> = [
  ["§7.2.3.1 one block", [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]],
  ["§7.2.3.3 a block with BFINAL set", [0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00]],
  [
    "§7.2.3.4 two blocks",
    [0xf2, 0x48, 0x05, 0x00, 0x00, 0x00, 0xff, 0xff, 0xca, 0xc9, 0xc9, 0x07, 0x00],
  ],
  ["§7.2.3.5 a stored block", [0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00]],
];

// Engine calls

/** One engine call: its first result, and how many times its callback ran. */
export interface Call {
  result: Promise<Uint8Array | WebSocketError>;
  calls(): number;
}

/** Runs one engine call with a callback that records its first result and counts its calls. */
export function start(run: (done: DeflateCallback) => void): Call {
  let calls = 0;
  let resolve!: (result: Uint8Array | WebSocketError) => void;
  const result = new Promise<Uint8Array | WebSocketError>((r) => resolve = r);
  run((value) => {
    calls++;
    resolve(value);
  });
  return { result: within(result, "the engine's callback"), calls: () => calls };
}

/** Rejects if `promise` has not settled after `ms`; the timer never outlives the wait. */
export function within<T>(promise: Promise<T>, what: string, ms = 5000): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

/** Lets pending zlib work, streams and timers run, so anything late (a second callback) shows. */
export function settle(ms = 30): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** The compressed payload of `data`; an error fails the test. */
export async function compress(
  compressor: MessageCompressor,
  data: Uint8Array,
): Promise<Uint8Array> {
  const result = await start((done) => compressor.compress(data, done)).result;
  if (result instanceof WebSocketError) throw result;
  return result;
}

/** The message `data` inflates to; an error fails the test. */
export async function decompress(
  decompressor: MessageDecompressor,
  data: Uint8Array,
  limit: number,
): Promise<Uint8Array> {
  const result = await start((done) => decompressor.decompress(data, limit, done)).result;
  if (result instanceof WebSocketError) throw result;
  return result;
}

// What a client does

/** `payload` with the 00 00 FF FF tail appended, in a new buffer. */
export function withTail(payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(payload.length + 4);
  out.set(payload);
  out.set(TAIL, payload.length);
  return out;
}

/** Whether `payload` ends with 00 00 FF FF. */
export function endsWithTail(payload: Uint8Array): boolean {
  const n = payload.length;
  return n >= 4 && payload[n - 4] === 0 && payload[n - 3] === 0 && payload[n - 2] === 0xff &&
    payload[n - 1] === 0xff;
}

/** A client's compressed message without context takeover: sync flush, tail removed. */
export function clientDeflate(data: string | Uint8Array, windowBits = 15): Uint8Array {
  const bytes = typeof data === "string" ? encoder.encode(data) : data;
  const out = deflateRawSync(bytes, { finishFlush: SYNC_FLUSH, windowBits });
  assert.ok(endsWithTail(out));
  return new Uint8Array(out.subarray(0, out.length - 4));
}

/** A client's inflate of one message without context takeover (RFC 7692 §7.2.2). */
export function clientInflate(payload: Uint8Array): Uint8Array {
  return new Uint8Array(inflateRawSync(withTail(payload), { finishFlush: SYNC_FLUSH }));
}

/** A persistent zlib stream fed message after message, each sync-flushed, as a client keeps. */
export class ClientStream {
  #stream: ReturnType<typeof createInflateRaw> | ReturnType<typeof createDeflateRaw>;
  #chunks: Uint8Array[] = [];
  #inflate: boolean;

  constructor(kind: "inflate" | "deflate") {
    this.#inflate = kind === "inflate";
    this.#stream = this.#inflate ? createInflateRaw() : createDeflateRaw();
    this.#stream.on("data", (chunk: Uint8Array) => this.#chunks.push(chunk));
  }

  /** Inflates a payload (tail restored) or deflates a message (tail removed). */
  message(data: string | Uint8Array): Promise<Uint8Array> {
    const bytes = typeof data === "string" ? encoder.encode(data) : data;
    return within(
      new Promise((resolve, reject) => {
        const failed = (error: Error) => reject(error);
        this.#stream.once("error", failed);
        this.#stream.write(this.#inflate ? withTail(bytes) : bytes);
        this.#stream.flush(SYNC_FLUSH, () => {
          this.#stream.off("error", failed);
          const out = Buffer.concat(this.#chunks);
          this.#chunks = [];
          if (this.#inflate) resolve(new Uint8Array(out));
          else resolve(new Uint8Array(out.subarray(0, out.length - 4)));
        });
      }),
      "the client's zlib stream",
    );
  }

  close(): void {
    this.#stream.destroy();
  }
}

// Assertions

/** Asserts equal bytes, naming the first that differs (a diff of 1 MiB arrays is unreadable). */
export function assertSameBytes(actual: Uint8Array, expected: Uint8Array, label: string): void {
  assert.equal(actual.length, expected.length, `${label}: length`);
  for (let i = 0; i < expected.length; i++) {
    if (actual[i] !== expected[i]) assert.fail(`${label}: byte ${i} differs`);
  }
}

/** Asserts that an engine answered with this WebSocketError. */
export function assertError(
  result: Uint8Array | WebSocketError,
  code: string,
  closeCode: number,
  message: string,
): void {
  assert.ok(result instanceof WebSocketError, `expected a WebSocketError, got ${result}`);
  assert.equal(result.name, "WebSocketError");
  assert.equal(result.code, code);
  assert.equal(result.closeCode, closeCode);
  assert.equal(result.message, message);
}

export const INFLATE_FAILED = "Invalid compressed data: the message does not inflate";
export const tooBig = (limit: number): string =>
  `Message too big: it inflates to more than ${limit} bytes`;

/** Starts with a block of reserved type 3 (BFINAL=1, BTYPE=11): never valid DEFLATE. */
export const GARBAGE = new Uint8Array([0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
