import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { maskInto, SIMD_UNMASK_FROM, SimdMaskMemory, unmask, WORD_MASK_THRESHOLD } from "./mask.ts";
import { hex, pattern, referenceMask, sameBytes, toHex } from "./_test_util.ts";

const KEYS = [hex("37 fa 21 3d"), hex("00 00 00 00"), hex("ff ff ff ff"), hex("01 02 04 80")];

/** The index of the first byte where `a` and `b` differ, or -1. */
function firstDifference(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < Math.max(a.length, b.length); i++) if (a[i] !== b[i]) return i;
  return -1;
}

/**
 * Unmasks `length` bytes placed `byteOffset` bytes into a larger buffer, with 8 guard bytes on
 * each side, and checks the view against the reference loop and the guards against change.
 */
function check(length: number, byteOffset: number, key: Uint8Array, offset: number): void {
  const data = pattern(length, length * 31 + byteOffset);
  const backing = pattern(byteOffset + length + 8, 99);
  const before = backing.slice();
  const view = backing.subarray(byteOffset, byteOffset + length);
  view.set(data);
  const expected = referenceMask(data, key, offset);
  unmask(view, key, offset);
  const at = firstDifference(view, expected);
  if (at !== -1) {
    assert.fail(
      `length ${length}, byteOffset ${byteOffset}, offset ${offset}, key ${toHex(key)}: ` +
        `byte ${at} is ${view[at]}, expected ${expected[at]}`,
    );
  }
  assert.ok(
    sameBytes(backing.subarray(0, byteOffset), before.subarray(0, byteOffset)),
    `bytes before the view changed (length ${length}, byteOffset ${byteOffset})`,
  );
  assert.ok(
    sameBytes(backing.subarray(byteOffset + length), before.subarray(byteOffset + length)),
    `bytes after the view changed (length ${length}, byteOffset ${byteOffset})`,
  );
}

describe("unmask", () => {
  it("unmasks the RFC 6455 §5.7 'Hello' example", () => {
    const data = hex("7f 9f 4d 51 58");
    unmask(data, hex("37 fa 21 3d"));
    assert.equal(new TextDecoder().decode(data), "Hello");
  });

  it("matches the reference loop for lengths 0..300 at every key offset", () => {
    for (const key of KEYS) {
      for (let length = 0; length <= 300; length++) {
        for (let offset = 0; offset < 4; offset++) check(length, 0, key, offset);
      }
    }
  });

  it("matches the reference loop on views at byteOffset 0..7, around the word threshold", () => {
    const lengths = [
      0,
      1,
      2,
      3,
      4,
      5,
      7,
      8,
      WORD_MASK_THRESHOLD - 1,
      WORD_MASK_THRESHOLD,
      WORD_MASK_THRESHOLD + 1,
      WORD_MASK_THRESHOLD + 2,
      WORD_MASK_THRESHOLD + 3,
      WORD_MASK_THRESHOLD + 4,
      127,
      128,
      129,
      255,
      256,
      257,
      1000,
      1001,
      1002,
      1003,
    ];
    for (const key of KEYS) {
      for (const length of lengths) {
        for (let byteOffset = 0; byteOffset < 8; byteOffset++) {
          for (let offset = 0; offset < 4; offset++) check(length, byteOffset, key, offset);
        }
      }
    }
  });

  it("matches the reference loop for large payloads", () => {
    for (const length of [65535, 65536, 100_000, 100_003]) {
      for (let byteOffset = 0; byteOffset < 8; byteOffset++) {
        for (let offset = 0; offset < 4; offset++) check(length, byteOffset, KEYS[0], offset);
      }
    }
  });

  it("matches the reference loop around the WebAssembly threshold and its 64 KiB pieces", () => {
    // From SIMD_UNMASK_FROM bytes on the bytes go through WebAssembly memory (placed by the
    // view's address modulo 4 KiB) in pieces of 64 KiB.
    for (const length of [SIMD_UNMASK_FROM - 1, SIMD_UNMASK_FROM, SIMD_UNMASK_FROM + 3, 131_077]) {
      for (const byteOffset of [0, 1, 2046, 2048, 2051, 4093, 4096, 4099]) {
        for (let offset = 0; offset < 4; offset++) {
          check(length, byteOffset, KEYS[offset % KEYS.length], offset);
        }
      }
    }
  });

  it("treats the offset modulo 4 (a payload unmasked piece by piece)", () => {
    for (const offset of [4, 5, 6, 7, 65537, 2 ** 31 + 3]) {
      const data = pattern(100, offset);
      const copy = data.slice();
      unmask(data, KEYS[0], offset);
      unmask(copy, KEYS[0], offset % 4);
      assert.equal(toHex(data), toHex(copy), `offset ${offset}`);
    }
  });

  it("unmasks a payload split at any point the same as whole", () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 600 }),
        fc.uint8Array({ minLength: 4, maxLength: 4 }),
        fc.array(fc.nat(), { maxLength: 5 }),
        fc.integer({ min: 0, max: 7 }),
        (data, key, rawCuts, byteOffset) => {
          const cuts = rawCuts.map((n) => n % (data.length + 1)).sort((a, b) => a - b);
          const backing = new Uint8Array(data.length + byteOffset);
          const view = backing.subarray(byteOffset);
          view.set(data);
          let start = 0;
          for (const cut of [...cuts, data.length]) {
            unmask(view.subarray(start, cut), key, start);
            start = cut;
          }
          assert.ok(sameBytes(view, referenceMask(data, key)));
        },
      ),
      { numRuns: 500 },
    );
  });

  it("is its own inverse", () => {
    const data = pattern(1000, 5);
    const work = data.slice();
    unmask(work, KEYS[3], 2);
    assert.notEqual(toHex(work), toHex(data));
    unmask(work, KEYS[3], 2);
    assert.equal(toHex(work), toHex(data));
  });
});

describe("maskInto", () => {
  it("masks the RFC 6455 §5.7 'Hello' example into a buffer", () => {
    const out = new Uint8Array(8);
    const source = new TextEncoder().encode("Hello");
    assert.equal(maskInto(source, hex("37 fa 21 3d"), out, 1), 6);
    assert.equal(toHex(out), "00 7f 9f 4d 51 58 00 00");
    assert.equal(new TextDecoder().decode(source), "Hello");
  });

  it("matches the reference loop for lengths 0..300 at target offsets 0..7, source unchanged", () => {
    for (const key of KEYS) {
      for (let length = 0; length <= 300; length++) {
        const source = pattern(length, length);
        const before = source.slice();
        const expected = referenceMask(source, key);
        for (let offset = 0; offset < 8; offset++) {
          const target = pattern(offset + length + 8, 7);
          const guard = target.slice();
          assert.equal(maskInto(source, key, target, offset), offset + length);
          const at = firstDifference(target.subarray(offset, offset + length), expected);
          assert.equal(at, -1, `length ${length}, offset ${offset}: byte ${at}`);
          assert.ok(sameBytes(target.subarray(0, offset), guard.subarray(0, offset)));
          assert.ok(sameBytes(target.subarray(offset + length), guard.subarray(offset + length)));
        }
        assert.ok(sameBytes(source, before), `source of ${length} bytes changed`);
      }
    }
  });

  it("masks large payloads from unaligned sources", () => {
    for (const length of [WORD_MASK_THRESHOLD, 4096 + 3, 1 << 20]) {
      const backing = pattern(length + 3, 5);
      const source = backing.subarray(3);
      const target = new Uint8Array(length + 14);
      maskInto(source, KEYS[3], target, 14);
      assert.ok(sameBytes(target.subarray(14), referenceMask(source, KEYS[3])), `${length}`);
    }
  });

  it("is undone by unmask", () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 500 }),
        fc.uint8Array({ minLength: 4, maxLength: 4 }),
        fc.nat({ max: 16 }),
        (data, key, offset) => {
          const target = new Uint8Array(offset + data.length);
          maskInto(data, key, target, offset);
          const payload = target.subarray(offset);
          unmask(payload, key);
          assert.ok(sameBytes(payload, data));
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe("SimdMaskMemory", () => {
  // Both runtimes have WebAssembly SIMD: the fast path must not be missing there unnoticed.
  const memory = SimdMaskMemory.create(256 * 1024)!;

  /**
   * Masks `length` bytes at `start` (after guard bytes) as if `offset` bytes into the payload, and
   * checks them against the reference loop and the bytes around them against change.
   */
  function checkSimd(length: number, start: number, key: Uint8Array, offset: number): void {
    const bytes = memory.bytes;
    const data = pattern(length, length * 7 + start);
    const around = pattern(start + length + 32, start + 11);
    bytes.set(around, 0);
    bytes.set(data, start);
    const expected = referenceMask(data, key, offset);
    memory.mask(start, length, key, offset);
    const at = firstDifference(bytes.subarray(start, start + length), expected);
    if (at !== -1) {
      assert.fail(
        `length ${length}, start ${start}, offset ${offset}, key ${toHex(key)}: ` +
          `byte ${at} is ${bytes[start + at]}, expected ${expected[at]}`,
      );
    }
    assert.ok(sameBytes(bytes.subarray(0, start), around.subarray(0, start)), "bytes before");
    assert.ok(
      sameBytes(
        bytes.subarray(start + length, start + length + 32),
        around.subarray(start + length),
      ),
      `bytes after (length ${length}, start ${start})`,
    );
  }

  it("exists on this runtime, with at least the bytes asked for", () => {
    assert.ok(memory instanceof SimdMaskMemory);
    assert.equal(memory.bytes.length, 256 * 1024);
    assert.equal(SimdMaskMemory.create()!.bytes.length, 65536, "one page by default");
    assert.equal(SimdMaskMemory.create(65537)!.bytes.length, 131072, "whole pages");
  });

  it("masks the RFC 6455 §5.7 'Hello' example", () => {
    memory.bytes.set(new TextEncoder().encode("Hello"), 9);
    memory.mask(9, 5, hex("37 fa 21 3d"));
    assert.equal(toHex(memory.bytes.subarray(9, 14)), "7f 9f 4d 51 58");
  });

  it("matches the reference loop for lengths 0..300 at starts 0..7 and every key offset", () => {
    for (const key of KEYS) {
      for (let length = 0; length <= 300; length++) {
        for (let start = 0; start < 8; start++) {
          for (let offset = 0; offset < 4; offset++) checkSimd(length, start, key, offset);
        }
      }
    }
  });

  it("matches the reference loop for 64 KiB and odd large lengths at odd starts", () => {
    for (const length of [65535, 65536, 65537, 100_003]) {
      for (const start of [0, 1, 3, 14, 4095]) {
        for (let offset = 0; offset < 4; offset++) checkSimd(length, start, KEYS[3], offset);
      }
    }
  });

  it("matches the reference loop for random lengths, starts and keys", () => {
    fc.assert(
      fc.property(
        fc.nat({ max: 5000 }),
        fc.nat({ max: 200_000 }),
        fc.uint8Array({ minLength: 4, maxLength: 4 }),
        fc.nat({ max: 2 ** 31 }),
        (length, start, key, offset) => checkSimd(length, start, key, offset),
      ),
      { numRuns: 300 },
    );
  });

  it("masks a payload piece by piece the same as whole, and is its own inverse", () => {
    const data = pattern(70_001, 3);
    memory.bytes.set(data, 5);
    for (const [from, to] of [[0, 1], [1, 17], [17, 4099], [4099, 70_001]]) {
      memory.mask(5 + from, to - from, KEYS[0], from);
    }
    assert.ok(sameBytes(memory.bytes.subarray(5, 70_006), referenceMask(data, KEYS[0])));
    memory.mask(5, 70_001, KEYS[0]);
    assert.ok(sameBytes(memory.bytes.subarray(5, 70_006), data));
  });

  it("refuses bytes outside the memory with a RangeError", () => {
    const size = memory.bytes.length;
    for (const [start, length] of [[-1, 4], [size - 3, 4], [size, 1], [0, size + 1]]) {
      assert.throws(() => memory.mask(start, length, KEYS[0]), {
        name: "RangeError",
        message: `Cannot mask: bytes ${start} to ${start + length} are not within the ${size} ` +
          "bytes of the memory",
      });
    }
    memory.mask(size, 0, KEYS[0]); // Nothing, at the very end: fine.
  });

  it("grows to whole pages, keeping its bytes and emptying views of the old ones", () => {
    const small = SimdMaskMemory.create()!;
    small.bytes.set([1, 2, 3], 65533);
    const old = small.bytes;
    const view = old.subarray(10, 20);
    assert.equal(small.grow(1000), true, "already big enough");
    assert.equal(small.bytes, old, "unchanged");
    assert.equal(small.grow(65537), true);
    assert.equal(small.bytes.length, 131072);
    assert.equal(toHex(small.bytes.subarray(65533, 65536)), "01 02 03");
    assert.equal(view.length, 0, "the old buffer is detached");
    small.mask(65530, 7, KEYS[3]);
    assert.equal(toHex(small.bytes.subarray(65533, 65537)), "81 03 01 04");
  });
});
