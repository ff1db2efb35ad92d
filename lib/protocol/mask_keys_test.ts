import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { MaskKeySource } from "./mask_keys.ts";

/** The next `n` keys, copied, as hex strings. */
function take(keys: MaskKeySource, n: number): string[] {
  return Array.from({ length: n }, () => Array.from(keys.next(), (b) => b.toString(16)).join("."));
}

describe("MaskKeySource", () => {
  it("returns the same 4-byte array each time, refilled", () => {
    const keys = new MaskKeySource({ batchSize: 16 });
    const first = keys.next();
    assert.equal(first.length, 4);
    assert.equal(keys.next(), first);
    assert.equal(first.byteOffset, 0);
  });

  it("draws keys from random batches, each byte handed out once", () => {
    // 4,096 random bytes miss one of the 256 byte values with probability below 1e-4 each;
    // fewer than 200 distinct values, or a batch repeated, would mean no randomness at all.
    const keys = new MaskKeySource({ batchSize: 4096 });
    const batches = [take(keys, 1024), take(keys, 1024), take(keys, 1024)];
    const joined = batches.map((keys) => keys.join(" "));
    assert.equal(new Set(joined).size, 3);
    const seen = new Set(batches[0].join(".").split("."));
    assert.ok(seen.size >= 200, `${seen.size} distinct byte values`);
    // Keys are 32 random bits: 1,024 of them are very likely all different (p > 0.999), and
    // certainly not mostly the same.
    assert.ok(new Set(batches[1]).size >= 1020);
  });

  it("refills a small batch every batchSize / 4 keys", () => {
    const keys = new MaskKeySource({ batchSize: 4 });
    assert.ok(new Set(take(keys, 64)).size >= 60);
  });

  it("throws a RangeError for a batch size that is not a multiple of 4 from 4 to 65536", () => {
    for (const batchSize of [0, 2, 6, 65540, 4.5, NaN]) {
      assert.throws(() => new MaskKeySource({ batchSize }), {
        name: "RangeError",
        message: "Cannot create a MaskKeySource: batchSize must be a multiple of 4 from 4 to 65536",
      });
    }
    assert.equal(new MaskKeySource({ batchSize: 65536 }).next().length, 4);
  });
});
