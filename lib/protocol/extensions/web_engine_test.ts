import { describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  assertError,
  assertSameBytes,
  type Call,
  clientDeflate,
  clientInflate,
  compress,
  decompress,
  encoder,
  endsWithTail,
  GARBAGE,
  INFLATE_FAILED,
  json200,
  MiB,
  random,
  repetitive,
  RFC_EXAMPLES,
  SAMPLES,
  settle,
  start,
  STATELESS,
  tooBig,
} from "./_deflate_test_util.ts";
import { webEngine } from "./web_engine.ts";

/** The web engine serves no context takeover only. */
const PARAMS = STATELESS;

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
