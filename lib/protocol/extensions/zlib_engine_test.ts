import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import fc from "fast-check";
import { WebSocketError } from "../errors.ts";
import {
  assertError,
  assertSameBytes,
  clientDeflate,
  clientInflate,
  ClientStream,
  compress,
  decompress,
  encoder,
  endsWithTail,
  GARBAGE,
  INFLATE_FAILED,
  random,
  repetitive,
  RFC_EXAMPLES,
  SAMPLES,
  settle,
  start,
  STATELESS,
  TAKEOVER,
  tooBig,
  withTail,
} from "./_deflate_test_util.ts";
import { zlibEngine } from "./zlib_engine.ts";

// A raw DEFLATE decoder (RFC 1951, after zlib's puff.c) that records how far back each match
// reaches: node:zlib cannot tell, since zlib's inflate lets a match reach into the output of the
// current call whatever window it was opened with.

interface Huffman {
  count: Uint16Array;
  symbol: Uint16Array;
}

function huffman(lengths: ArrayLike<number>): Huffman {
  const count = new Uint16Array(16);
  for (let s = 0; s < lengths.length; s++) count[lengths[s]]++;
  const offsets = new Uint16Array(16);
  for (let len = 1; len < 15; len++) offsets[len + 1] = offsets[len] + count[len];
  const symbol = new Uint16Array(lengths.length);
  for (let s = 0; s < lengths.length; s++) {
    if (lengths[s] !== 0) symbol[offsets[lengths[s]]++] = s;
  }
  return { count, symbol };
}

const LENGTH_BASE = [
  3,
  4,
  5,
  6,
  7,
  8,
  9,
  10,
  11,
  13,
  15,
  17,
  19,
  23,
  27,
  31,
  35,
  43,
  51,
  59,
  67,
  83,
  99,
  115,
  131,
  163,
  195,
  227,
  258,
];
const LENGTH_EXTRA = [
  0,
  0,
  0,
  0,
  0,
  0,
  0,
  0,
  1,
  1,
  1,
  1,
  2,
  2,
  2,
  2,
  3,
  3,
  3,
  3,
  4,
  4,
  4,
  4,
  5,
  5,
  5,
  5,
  0,
];
const DISTANCE_BASE = [
  1,
  2,
  3,
  4,
  5,
  7,
  9,
  13,
  17,
  25,
  33,
  49,
  65,
  97,
  129,
  193,
  257,
  385,
  513,
  769,
  1025,
  1537,
  2049,
  3073,
  4097,
  6145,
  8193,
  12289,
  16385,
  24577,
];
const DISTANCE_EXTRA = [
  0,
  0,
  0,
  0,
  1,
  1,
  2,
  2,
  3,
  3,
  4,
  4,
  5,
  5,
  6,
  6,
  7,
  7,
  8,
  8,
  9,
  9,
  10,
  10,
  11,
  11,
  12,
  12,
  13,
  13,
];
const CODE_LENGTH_ORDER = [16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15];
const FIXED_LITERALS = huffman(
  Array.from({ length: 288 }, (_, s) => s < 144 ? 8 : s < 256 ? 9 : s < 280 ? 7 : 8),
);
const FIXED_DISTANCES = huffman(new Array(30).fill(5));

/** Decodes messages one after another with one history, as a context-taking client does. */
class DistanceMeter {
  /** The farthest any match reached back, in bytes. */
  maxDistance = 0;
  #out: number[] = [];
  #data: Uint8Array = new Uint8Array(0);
  #pos = 0;
  #bitBuffer = 0;
  #bitCount = 0;

  message(payload: Uint8Array): Uint8Array {
    const data = this.#data = withTail(payload);
    this.#pos = this.#bitBuffer = this.#bitCount = 0;
    const start = this.#out.length;
    let last = false;
    // A sync-flushed message ends with an empty stored block, which consumes the input exactly.
    while (!last && this.#pos < data.length) {
      last = this.#bits(1) === 1;
      const type = this.#bits(2);
      if (type === 0) this.#stored();
      else if (type === 1) this.#codes(FIXED_LITERALS, FIXED_DISTANCES);
      else if (type === 2) this.#dynamic();
      else throw new Error("invalid block type 3");
    }
    return Uint8Array.from(this.#out.slice(start));
  }

  #bits(n: number): number {
    let value = this.#bitBuffer;
    while (this.#bitCount < n) {
      if (this.#pos >= this.#data.length) throw new Error("out of input");
      value |= this.#data[this.#pos++] << this.#bitCount;
      this.#bitCount += 8;
    }
    this.#bitBuffer = value >>> n;
    this.#bitCount -= n;
    return value & ((1 << n) - 1);
  }

  #decode(h: Huffman): number {
    let code = 0;
    let first = 0;
    let index = 0;
    for (let len = 1; len <= 15; len++) {
      code |= this.#bits(1);
      const count = h.count[len];
      if (code - count < first) return h.symbol[index + (code - first)];
      index += count;
      first = (first + count) << 1;
      code <<= 1;
    }
    throw new Error("invalid Huffman code");
  }

  #stored(): void {
    this.#bitBuffer = this.#bitCount = 0;
    const d = this.#data;
    const p = this.#pos;
    const length = d[p] | (d[p + 1] << 8);
    if (length !== (~(d[p + 2] | (d[p + 3] << 8)) & 0xffff)) throw new Error("bad stored length");
    for (let i = 0; i < length; i++) this.#out.push(d[p + 4 + i]);
    this.#pos = p + 4 + length;
  }

  #dynamic(): void {
    const literals = this.#bits(5) + 257;
    const distances = this.#bits(5) + 1;
    const codes = this.#bits(4) + 4;
    const lengths = new Uint8Array(19);
    for (let i = 0; i < codes; i++) lengths[CODE_LENGTH_ORDER[i]] = this.#bits(3);
    const lencode = huffman(lengths);
    const all = new Uint8Array(literals + distances);
    for (let i = 0; i < all.length;) {
      const symbol = this.#decode(lencode);
      if (symbol < 16) {
        all[i++] = symbol;
        continue;
      }
      let value = 0;
      let repeat: number;
      if (symbol === 16) {
        if (i === 0) throw new Error("repeat with no previous length");
        value = all[i - 1];
        repeat = 3 + this.#bits(2);
      } else if (symbol === 17) {
        repeat = 3 + this.#bits(3);
      } else {
        repeat = 11 + this.#bits(7);
      }
      if (i + repeat > all.length) throw new Error("too many lengths");
      while (repeat-- > 0) all[i++] = value;
    }
    this.#codes(huffman(all.subarray(0, literals)), huffman(all.subarray(literals)));
  }

  #codes(literals: Huffman, distances: Huffman): void {
    const out = this.#out;
    for (;;) {
      const symbol = this.#decode(literals);
      if (symbol < 256) {
        out.push(symbol);
        continue;
      }
      if (symbol === 256) return;
      const s = symbol - 257;
      if (s >= 29) throw new Error("invalid length symbol");
      const length = LENGTH_BASE[s] + this.#bits(LENGTH_EXTRA[s]);
      const ds = this.#decode(distances);
      if (ds >= 30) throw new Error("invalid distance symbol");
      const distance = DISTANCE_BASE[ds] + this.#bits(DISTANCE_EXTRA[ds]);
      if (distance > out.length) throw new Error("distance too far back");
      if (distance > this.maxDistance) this.maxDistance = distance;
      for (let i = 0; i < length; i++) out.push(out[out.length - distance]);
    }
  }
}

/** 20 KiB in which each 300-byte random block comes twice: matches 300 bytes back. */
function repeatsAt300(): Uint8Array {
  const out = new Uint8Array(20 * 1024);
  for (let block = 0; block * 300 < out.length; block++) {
    const bytes = random(300, 100 + (block >> 1));
    out.set(bytes.subarray(0, Math.min(300, out.length - block * 300)), block * 300);
  }
  return out;
}

// Tests

describe("zlib engine: the decoder the window tests rely on", () => {
  it("decodes what deflateRawSync makes, and measures how far matches reach", () => {
    const data = repeatsAt300();
    const meter = new DistanceMeter();
    assertSameBytes(meter.message(clientDeflate(data)), data, "decoded");
    // With a 32 KiB window zlib reaches back to the copy 300 bytes before.
    assert.equal(meter.maxDistance, 300);
    const small = new DistanceMeter();
    assertSameBytes(small.message(clientDeflate(data, 9)), data, "decoded, 512-byte window");
    assert.ok(small.maxDistance <= 250, `distance ${small.maxDistance} with windowBits 9`);
  });
});

for (
  const [kind, params] of [
    ["stateless", STATELESS],
    ["stream (context takeover)", TAKEOVER],
  ] as const
) {
  describe(`zlib engine, ${kind}`, () => {
    it("round-trips every sample through the engine and through a client", async () => {
      const compressor = zlibEngine.compressor(params, {});
      const decompressor = zlibEngine.decompressor(params);
      const client = new ClientStream("inflate");
      const clientOut = new ClientStream("deflate");
      try {
        for (const [name, data] of SAMPLES) {
          const payload = await compress(compressor, data);
          assert.ok(!endsWithTail(payload), `${name}: the payload ends with 00 00 FF FF`);
          assertSameBytes(await decompress(decompressor, payload, data.length), data, name);
          // What a client reads: per message, or with one stream under context takeover.
          const read = params.localNoContextTakeover
            ? clientInflate(payload)
            : await client.message(payload);
          assertSameBytes(read, data, `${name}, read by a client`);
        }
        // What a client sends, read by a fresh decompressor (with one stream if takeover).
        const reader = zlibEngine.decompressor(params);
        try {
          for (const [name, data] of SAMPLES) {
            const payload = params.remoteNoContextTakeover
              ? clientDeflate(data)
              : await clientOut.message(data);
            assertSameBytes(await decompress(reader, payload, data.length), data, `${name}, sent`);
          }
        } finally {
          reader.close();
        }
      } finally {
        compressor.close();
        decompressor.close();
        client.close();
        clientOut.close();
      }
    });

    it("passes a message of exactly the limit and refuses one byte more with 1009", async () => {
      const data = random(100_000, 7); // inflates in several zlib chunks
      const payload = clientDeflate(data);
      const exact = zlibEngine.decompressor(params);
      const over = zlibEngine.decompressor(params);
      try {
        const ok = start((done) => exact.decompress(payload, data.length, done));
        const result = await ok.result;
        assert.ok(result instanceof Uint8Array, `expected the message, got ${result}`);
        assertSameBytes(result, data, "at the limit");
        const refused = start((done) => over.decompress(payload, data.length - 1, done));
        assertError(
          await refused.result,
          "WS_ERR_MESSAGE_TOO_BIG",
          1009,
          tooBig(data.length - 1),
        );
        // The next message still gets an answer: the stream one stays failed.
        const next = start((done) => over.decompress(payload, data.length, done));
        const after = await next.result;
        if (params.remoteNoContextTakeover) {
          assert.ok(after instanceof Uint8Array, `expected the message, got ${after}`);
          assertSameBytes(after, data, "after a refusal");
        } else {
          assertError(after, "WS_ERR_MESSAGE_TOO_BIG", 1009, tooBig(data.length - 1));
        }
        await settle();
        assert.equal(ok.calls(), 1);
        assert.equal(refused.calls(), 1);
        assert.equal(next.calls(), 1);
      } finally {
        exact.close();
        over.close();
      }
    });

    it("refuses a message that is not DEFLATE with 1007, once", async () => {
      const decompressor = zlibEngine.decompressor(params);
      try {
        const call = start((done) => decompressor.decompress(GARBAGE, 1 << 20, done));
        assertError(await call.result, "WS_ERR_INFLATE", 1007, INFLATE_FAILED);
        await settle();
        assert.equal(call.calls(), 1);
        // A later message gets an answer too: the stream one stays failed, the stateless one
        // has no state to lose.
        const hello = encoder.encode("hello");
        const later = start((done) => decompressor.decompress(clientDeflate(hello), 100, done));
        const result = await later.result;
        if (params.remoteNoContextTakeover) {
          assert.ok(result instanceof Uint8Array, `expected the message, got ${result}`);
          assertSameBytes(result, hello, "after garbage");
        } else {
          assertError(result, "WS_ERR_INFLATE", 1007, INFLATE_FAILED);
        }
        await settle();
        assert.equal(later.calls(), 1);
      } finally {
        decompressor.close();
      }
    });

    it("refuses a 64 MiB bomb against a 1 MiB limit with 1009", async () => {
      const bomb = clientDeflate(new Uint8Array(64 * 1024 * 1024));
      assert.ok(bomb.length < 100_000, `the bomb is ${bomb.length} bytes`);
      const decompressor = zlibEngine.decompressor(params);
      try {
        const before = process.memoryUsage();
        const call = start((done) => decompressor.decompress(bomb, 1 << 20, done));
        assertError(await call.result, "WS_ERR_MESSAGE_TOO_BIG", 1009, tooBig(1 << 20));
        const after = process.memoryUsage();
        if (params.remoteNoContextTakeover) {
          // The stateless path stops zlib at the limit (maxOutputLength): nothing near 64 MiB
          // is ever allocated. (The stream path is checked end to end in tests/deflate_test.ts.)
          const MiB = 1024 * 1024;
          const growth = Math.max(
            after.rss - before.rss,
            after.arrayBuffers - before.arrayBuffers,
            after.external - before.external,
          );
          assert.ok(growth < 32 * MiB, `memory grew by ${(growth / MiB).toFixed(1)} MiB`);
        }
        await settle();
        assert.equal(call.calls(), 1);
      } finally {
        decompressor.close();
      }
    });

    it("reaches back at most 256 bytes with server_max_window_bits=8", async () => {
      // zlib has no 8-bit window and uses 9; zlib's MAX_DIST (window − 262) keeps matches
      // within 250 bytes, which an 8-bit (256-byte) window can read.
      const data = repeatsAt300();
      const compressor = zlibEngine.compressor({ ...params, localMaxWindowBits: 8 }, {});
      const wide = zlibEngine.compressor({ ...params, localMaxWindowBits: 15 }, {});
      const client = new ClientStream("inflate");
      try {
        const meter = new DistanceMeter();
        let farthest = 0;
        for (let i = 0; i < 2; i++) {
          const payload = await compress(compressor, data);
          // Without takeover each message is read alone; with it, after the ones before.
          const reader = params.localNoContextTakeover ? new DistanceMeter() : meter;
          assertSameBytes(reader.message(payload), data, `message ${i}`);
          farthest = Math.max(farthest, reader.maxDistance);
          const read = params.localNoContextTakeover
            ? clientInflate(payload)
            : await client.message(payload);
          assertSameBytes(read, data, `message ${i}, by zlib`);
        }
        assert.ok(farthest <= 256, `a match reaches ${farthest} bytes back`);
        // The same data with the default window does use the 300-byte matches.
        assert.equal(measure(await compress(wide, data)), 300);
      } finally {
        compressor.close();
        wide.close();
        client.close();
      }
    });
  });
}

function measure(payload: Uint8Array): number {
  const meter = new DistanceMeter();
  meter.message(payload);
  return meter.maxDistance;
}

/** What each RFC 7692 §7.2.3 example inflates to. */
const HELLO = encoder.encode("Hello");
/** §7.2.3.2: the second "Hello" of a context-taking sender, after the §7.2.3.1 one. */
const RFC_SECOND_HELLO = new Uint8Array([0xf2, 0x00, 0x11, 0x00, 0x00]);

describe("zlib engine, RFC 7692 examples", () => {
  for (const [kind, params] of [["stateless", STATELESS], ["stream", TAKEOVER]] as const) {
    for (const [name, bytes] of RFC_EXAMPLES) {
      it(`${kind} decompressor reads ${name}`, async () => {
        const decompressor = zlibEngine.decompressor(params);
        try {
          const out = await decompress(decompressor, new Uint8Array(bytes), 100);
          assert.equal(new TextDecoder().decode(out), "Hello");
        } finally {
          decompressor.close();
        }
      });
    }
  }

  it("stream decompressor reads §7.2.3.2, the second message sharing the window", async () => {
    const decompressor = zlibEngine.decompressor(TAKEOVER);
    try {
      const first = await decompress(decompressor, new Uint8Array(RFC_EXAMPLES[0][1]), 100);
      const second = await decompress(decompressor, RFC_SECOND_HELLO, 100);
      assertSameBytes(first, HELLO, "first");
      assertSameBytes(second, HELLO, "second");
    } finally {
      decompressor.close();
    }
  });

  it("stateless decompressor refuses §7.2.3.2 alone with 1007 (it needs a window)", async () => {
    const call = start((done) =>
      zlibEngine.decompressor(STATELESS).decompress(RFC_SECOND_HELLO, 100, done)
    );
    assertError(await call.result, "WS_ERR_INFLATE", 1007, INFLATE_FAILED);
  });

  it("stream decompressor, fresh, refuses §7.2.3.2 with 1007 (nothing to refer to)", async () => {
    const decompressor = zlibEngine.decompressor(TAKEOVER);
    try {
      const call = start((done) => decompressor.decompress(RFC_SECOND_HELLO, 100, done));
      assertError(await call.result, "WS_ERR_INFLATE", 1007, INFLATE_FAILED);
    } finally {
      decompressor.close();
    }
  });

  it("stream decompressor goes on after a message that ended in a BFINAL block", async () => {
    // §7.2.3.3 lets a sender end a message with BFINAL set; the next message here uses no
    // back-reference, so it decodes whatever became of the window.
    const decompressor = zlibEngine.decompressor(TAKEOVER);
    try {
      const first = await decompress(decompressor, new Uint8Array(RFC_EXAMPLES[1][1]), 100);
      assertSameBytes(first, HELLO, "the BFINAL message");
      const next = start((done) =>
        decompressor.decompress(new Uint8Array(RFC_EXAMPLES[0][1]), 100, done)
      );
      const result = await next.result;
      // Either "Hello" or a refusal; never a wrong message.
      if (result instanceof WebSocketError) assert.equal(result.closeCode, 1007);
      else assert.equal(new TextDecoder().decode(result), "Hello");
    } finally {
      decompressor.close();
    }
  });
});

describe("zlib engine, context takeover", () => {
  it("makes the second identical message much smaller, and a client reads both", async () => {
    // 4 KiB of hex digits: compresses to about half, but not much better, on its own.
    const data = encoder.encode(Buffer.from(random(2048, 9)).toString("hex"));
    const compressor = zlibEngine.compressor(TAKEOVER, {});
    const client = new ClientStream("inflate");
    try {
      const first = await compress(compressor, data);
      const second = await compress(compressor, data);
      assert.ok(first.length > 1500, `first: ${first.length} bytes`);
      assert.ok(second.length < first.length / 10, `${second.length} vs ${first.length} bytes`);
      // RFC 7692 §7.2.2: the client appends 00 00 FF FF to each and inflates them in turn.
      assertSameBytes(await client.message(first), data, "first");
      assertSameBytes(await client.message(second), data, "second");
      // The second message depends on the first: alone it does not inflate.
      assert.throws(() => clientInflate(second));
    } finally {
      compressor.close();
      client.close();
    }
  });

  it("without takeover, the same message compresses to the same bytes each time", async () => {
    const data = encoder.encode(Buffer.from(random(2048, 9)).toString("hex"));
    const compressor = zlibEngine.compressor(STATELESS, {});
    const first = await compress(compressor, data);
    const second = await compress(compressor, data);
    assert.deepEqual(second, first);
  });

  it("reads messages that a client compressed with one persistent stream", async () => {
    const decompressor = zlibEngine.decompressor(TAKEOVER);
    const client = new ClientStream("deflate");
    try {
      const data = encoder.encode(JSON.stringify({ hello: "world", list: [1, 2, 3] }).repeat(20));
      const first = await client.message(data);
      const second = await client.message(data);
      assert.ok(second.length < first.length);
      assertSameBytes(await decompress(decompressor, first, 1 << 20), data, "first");
      assertSameBytes(await decompress(decompressor, second, 1 << 20), data, "second");
    } finally {
      decompressor.close();
      client.close();
    }
  });

  it("answers queued compress calls in order", async () => {
    const compressor = zlibEngine.compressor(TAKEOVER, {});
    const client = new ClientStream("inflate");
    try {
      // Big ones first: a compressor that answered as work finished would reorder them.
      const messages = [
        random(1 << 20, 20),
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
      for (let i = 0; i < results.length; i++) {
        const payload = results[i];
        assert.ok(payload instanceof Uint8Array, `message ${i}: ${payload}`);
        assertSameBytes(await client.message(payload), messages[i], `message ${i}`);
      }
    } finally {
      compressor.close();
      client.close();
    }
  });

  it("keeps the caller's buffer out of it: changing it after compress() changes nothing", async () => {
    const compressor = zlibEngine.compressor(TAKEOVER, {});
    try {
      const data = repetitive(10_000);
      const copy = data.slice();
      const call = start((done) => compressor.compress(data, done));
      data.fill(0);
      const payload = await call.result;
      assert.ok(payload instanceof Uint8Array);
      assertSameBytes(clientInflate(payload), copy, "the message as it was");
    } finally {
      compressor.close();
    }
  });
});

describe("zlib engine, tuning", () => {
  it("level 0 stores, level 9 compresses", async () => {
    const data = repetitive(10_000);
    const stored = await compress(zlibEngine.compressor(STATELESS, { level: 0 }), data);
    const best = await compress(zlibEngine.compressor(STATELESS, { level: 9, memLevel: 9 }), data);
    assert.ok(stored.length >= data.length, `level 0: ${stored.length} bytes`);
    assert.ok(best.length < data.length / 10, `level 9: ${best.length} bytes`);
    assertSameBytes(clientInflate(stored), data, "level 0");
    assertSameBytes(clientInflate(best), data, "level 9");
  });
});

describe("zlib engine, properties", () => {
  it("stateless: any bytes compress to a payload a client inflates back", () => {
    const compressor = zlibEngine.compressor(STATELESS, {});
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 4096 }), (data) => {
        let payload: Uint8Array | WebSocketError | undefined;
        compressor.compress(data, (result) => payload = result);
        // The stateless compressor answers inside the call.
        assert.ok(payload instanceof Uint8Array, `${payload}`);
        assert.ok(!endsWithTail(payload));
        assertSameBytes(clientInflate(payload), data, "round trip");
      }),
      { numRuns: 300 },
    );
  });

  it("stateless: random bytes never throw; one answer, a message or a 1007/1009", () => {
    const decompressor = zlibEngine.decompressor(STATELESS);
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 512 }), fc.nat(4096), (data, limit) => {
        const results: Array<Uint8Array | WebSocketError> = [];
        decompressor.decompress(data, limit, (result) => results.push(result));
        assert.equal(results.length, 1);
        const [result] = results;
        if (result instanceof WebSocketError) {
          assert.ok(
            result.closeCode === 1007 || result.closeCode === 1009,
            `${result.code} ${result.closeCode}`,
          );
        } else {
          assert.ok(result.length <= limit, `${result.length} bytes for a limit of ${limit}`);
        }
      }),
      { numRuns: 500 },
    );
  });
});
