import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { constants, deflateRawSync, inflateRawSync } from "node:zlib";
import { WebSocketError } from "../errors.ts";
import type { DeflateCallback, MessageCompressor, MessageDecompressor } from "./deflate_engine.ts";
import type { DeflateParams } from "./deflate_negotiation.ts";
import { webEngine } from "./web_engine.ts";

const SYNC_FLUSH = constants.Z_SYNC_FLUSH;
const TAIL = new Uint8Array([0x00, 0x00, 0xff, 0xff]);
const encoder = new TextEncoder();
const MiB = 1024 * 1024;

/** The web engine serves no context takeover only. */
const PARAMS: DeflateParams = {
  serverNoContextTakeover: true,
  clientNoContextTakeover: true,
  serverMaxWindowBits: 15,
  clientMaxWindowBits: 15,
};

// Data

/** `length` bytes from xorshift32: incompressible. */
function random(length: number, seed = 1): Uint8Array {
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
function repetitive(length: number): Uint8Array {
  const out = new Uint8Array(length);
  const line = encoder.encode("the quick brown fox jumps over the lazy dog #");
  for (let i = 0; i < length; i++) out[i] = i % 97 === 96 ? 0x30 + (i % 10) : line[i % line.length];
  return out;
}

/** A JSON message of exactly 200 bytes. */
function json200(): Uint8Array {
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

const SAMPLES: Array<[string, Uint8Array]> = [
  ["empty", new Uint8Array(0)],
  ["1 byte", Uint8Array.of(0x61)],
  ["200 B JSON", json200()],
  ["64 KiB random", random(64 * 1024, 2)],
  ["64 KiB repetitive", repetitive(64 * 1024)],
  ["1 MiB random", random(MiB, 3)],
  ["1 MiB repetitive", repetitive(MiB)],
];

// Engine calls

/** One engine call: its first result, and how many times its callback ran. */
interface Call {
  result: Promise<Uint8Array | WebSocketError>;
  calls(): number;
}

function start(run: (done: DeflateCallback) => void): Call {
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
function within<T>(promise: Promise<T>, what: string, ms = 5000): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

/** Lets pending stream work and timers run, so a second callback would show. */
function settle(ms = 30): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function compress(compressor: MessageCompressor, data: Uint8Array): Promise<Uint8Array> {
  const result = await start((done) => compressor.compress(data, done)).result;
  if (result instanceof WebSocketError) throw result;
  return result;
}

async function decompress(
  decompressor: MessageDecompressor,
  data: Uint8Array,
  limit: number,
): Promise<Uint8Array> {
  const result = await start((done) => decompressor.decompress(data, limit, done)).result;
  if (result instanceof WebSocketError) throw result;
  return result;
}

// What a client does

function withTail(payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(payload.length + 4);
  out.set(payload);
  out.set(TAIL, payload.length);
  return out;
}

function endsWithTail(payload: Uint8Array): boolean {
  const n = payload.length;
  return n >= 4 && payload[n - 4] === 0 && payload[n - 3] === 0 && payload[n - 2] === 0xff &&
    payload[n - 1] === 0xff;
}

/** A client's compressed message without context takeover: sync flush, tail removed. */
function clientDeflate(data: Uint8Array): Uint8Array {
  const out = deflateRawSync(data, { finishFlush: SYNC_FLUSH });
  assert.ok(endsWithTail(out));
  return new Uint8Array(out.subarray(0, out.length - 4));
}

/** A client's inflate of one message without context takeover (RFC 7692 §7.2.2). */
function clientInflate(payload: Uint8Array): Uint8Array {
  return new Uint8Array(inflateRawSync(withTail(payload), { finishFlush: SYNC_FLUSH }));
}

// Assertions

function assertSameBytes(actual: Uint8Array, expected: Uint8Array, label: string): void {
  assert.equal(actual.length, expected.length, `${label}: length`);
  for (let i = 0; i < expected.length; i++) {
    if (actual[i] !== expected[i]) assert.fail(`${label}: byte ${i} differs`);
  }
}

function assertError(
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

const INFLATE_FAILED = "Invalid compressed data: the message does not inflate";
const tooBig = (limit: number) => `Message too big: it inflates to more than ${limit} bytes`;

/** Starts with a block of reserved type 3 (BFINAL=1, BTYPE=11): never valid DEFLATE. */
const GARBAGE = new Uint8Array([0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);

// RFC 7692 §7.2.3: the payloads of its examples, each "Hello".
const RFC_EXAMPLES: Array<[string, number[]]> = [
  ["§7.2.3.1 one block", [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]],
  ["§7.2.3.3 a block with BFINAL set", [0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00]],
  [
    "§7.2.3.4 two blocks",
    [0xf2, 0x48, 0x05, 0x00, 0x00, 0x00, 0xff, 0xff, 0xca, 0xc9, 0xc9, 0x07, 0x00],
  ],
  ["§7.2.3.5 a stored block", [0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00]],
];

/**
 * Counts what every DecompressionStream made while `body` runs: the engine reads its output in
 * the chunks the runtime makes them, so this is the most it ever held.
 */
async function countInflated(
  body: () => Promise<void>,
): Promise<{ total: number; largest: number }> {
  const global = globalThis as { DecompressionStream: typeof DecompressionStream };
  const Real = global.DecompressionStream;
  const seen = { total: 0, largest: 0 };
  class Counting {
    readonly writable: WritableStream<BufferSource>;
    readonly readable: ReadableStream<Uint8Array>;
    constructor(format: CompressionFormat) {
      const real = new Real(format);
      this.writable = real.writable;
      this.readable = real.readable.pipeThrough(
        new TransformStream<Uint8Array, Uint8Array>({
          transform(chunk, controller) {
            seen.total += chunk.length;
            seen.largest = Math.max(seen.largest, chunk.length);
            controller.enqueue(chunk);
          },
        }),
      );
    }
  }
  global.DecompressionStream = Counting as unknown as typeof DecompressionStream;
  try {
    await body();
  } finally {
    global.DecompressionStream = Real;
  }
  return seen;
}

// Tests

describe("web engine: compress", () => {
  it("gives payloads a client inflates, never ending with 00 00 FF FF", async () => {
    const compressor = webEngine.compressor(PARAMS, {});
    for (const [name, data] of SAMPLES) {
      const payload = await compress(compressor, data);
      assert.ok(!endsWithTail(payload), `${name}: the payload ends with 00 00 FF FF`);
      assertSameBytes(clientInflate(payload), data, name);
    }
    compressor.close();
  });

  it("compresses: 1 MiB of repetitive text to a small fraction", async () => {
    const payload = await compress(webEngine.compressor(PARAMS, {}), repetitive(MiB));
    assert.ok(payload.length < MiB / 20, `${payload.length} bytes`);
  });

  it("answers queued calls in order, each with its own message", async () => {
    const compressor = webEngine.compressor(PARAMS, {});
    // Big ones first: a compressor that answered as work finished would reorder them.
    const messages = [
      random(MiB, 20),
      repetitive(300_000),
      ...Array.from({ length: 20 }, (_, i) => encoder.encode(`message ${i} `.repeat(i + 1))),
    ];
    const order: number[] = [];
    const calls = messages.map((data, i) =>
      start((done) =>
        compressor.compress(data, (result) => {
          order.push(i);
          done(result);
        })
      )
    );
    const results = await Promise.all(calls.map((call) => call.result));
    assert.deepEqual(order, messages.map((_, i) => i));
    results.forEach((payload, i) => {
      assert.ok(payload instanceof Uint8Array, `message ${i}: ${payload}`);
      assertSameBytes(clientInflate(payload), messages[i], `message ${i}`);
    });
    await settle();
    for (const call of calls) assert.equal(call.calls(), 1);
  });

  it("copies the caller's bytes: changing them after compress() changes nothing", async () => {
    const data = repetitive(10_000);
    const copy = data.slice();
    const call = start((done) => webEngine.compressor(PARAMS, {}).compress(data, done));
    data.fill(0);
    const payload = await call.result;
    assert.ok(payload instanceof Uint8Array, `${payload}`);
    assertSameBytes(clientInflate(payload), copy, "the message as it was");
  });
});

describe("web engine: decompress", () => {
  it("reads what a client compressed, every sample", async () => {
    const decompressor = webEngine.decompressor(PARAMS);
    for (const [name, data] of SAMPLES) {
      assertSameBytes(await decompress(decompressor, clientDeflate(data), data.length), data, name);
    }
  });

  for (const [name, bytes] of RFC_EXAMPLES.filter(([name]) => !name.includes("BFINAL"))) {
    it(`reads RFC 7692 ${name}`, async () => {
      const out = await decompress(webEngine.decompressor(PARAMS), new Uint8Array(bytes), 100);
      assert.equal(new TextDecoder().decode(out), "Hello");
    });
  }

  it("refuses a message ending in a BFINAL block with 1007 (its documented limit)", async () => {
    // web_engine.ts: DecompressionStream refuses the bytes after the end of the stream in both
    // runtimes. RFC 7692 §7.2.3.3's example, and this engine's own output, end so.
    const own = await compress(webEngine.compressor(PARAMS, {}), json200());
    for (const payload of [new Uint8Array(RFC_EXAMPLES[1][1]), own]) {
      const call = start((done) => webEngine.decompressor(PARAMS).decompress(payload, 1000, done));
      assertError(await call.result, "WS_ERR_INFLATE", 1007, INFLATE_FAILED);
    }
  });

  it("passes a message of exactly the limit and refuses one byte more with 1009", async () => {
    const data = random(100_000, 7);
    const payload = clientDeflate(data);
    const ok = start((done) => webEngine.decompressor(PARAMS).decompress(payload, 100_000, done));
    const result = await ok.result;
    assert.ok(result instanceof Uint8Array, `expected the message, got ${result}`);
    assertSameBytes(result, data, "at the limit");
    const over = start((done) => webEngine.decompressor(PARAMS).decompress(payload, 99_999, done));
    assertError(await over.result, "WS_ERR_MESSAGE_TOO_BIG", 1009, tooBig(99_999));
    await settle();
    assert.equal(ok.calls(), 1);
    assert.equal(over.calls(), 1);
  });

  it("refuses a message that is not DEFLATE with 1007, once, and reads the next", async () => {
    const decompressor = webEngine.decompressor(PARAMS);
    const call = start((done) => decompressor.decompress(GARBAGE, MiB, done));
    assertError(await call.result, "WS_ERR_INFLATE", 1007, INFLATE_FAILED);
    const hello = encoder.encode("hello");
    const next = await decompress(decompressor, clientDeflate(hello), 100);
    assertSameBytes(next, hello, "the next message");
    await settle();
    assert.equal(call.calls(), 1);
  });

  it("refuses a 64 MiB bomb against a 1 MiB limit with 1009, holding little of it", async () => {
    const bomb = clientDeflate(new Uint8Array(64 * MiB));
    assert.ok(bomb.length < 100_000, `the bomb is ${bomb.length} bytes`);
    let call: Call | undefined;
    const seen = await countInflated(async () => {
      call = start((done) => webEngine.decompressor(PARAMS).decompress(bomb, MiB, done));
      assertError(await call.result, "WS_ERR_MESSAGE_TOO_BIG", 1009, tooBig(MiB));
    });
    await settle();
    assert.equal(call?.calls(), 1);
    // deflate_engine.ts: "a small compressed bomb never becomes a big buffer". Reading past the
    // limit by a chunk or two is fine; inflating the bomb whole is not.
    assert.ok(seen.total > MiB, "the counter saw the output");
    assert.ok(
      seen.total <= 2 * MiB,
      `${(seen.total / MiB).toFixed(1)} MiB inflated (largest chunk ` +
        `${(seen.largest / MiB).toFixed(1)} MiB) for a 1 MiB limit`,
    );
  });
});
