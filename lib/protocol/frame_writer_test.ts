import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  encodeFrame,
  headerSize,
  MAX_HEADER_SIZE,
  writeHeader,
  writePayload,
} from "./frame_writer.ts";
import { MaskKeySource } from "./mask_keys.ts";
import { FrameParser } from "./frame_parser.ts";
import {
  assertEvents,
  concat,
  expectedEvents,
  feed,
  hex,
  pattern,
  RecordingSink,
  referenceMask,
  sameBytes,
  toHex,
} from "./_test_util.ts";

const MASK = hex("37 fa 21 3d");

/** Payload lengths at the edges of the 7-bit, 16-bit and 64-bit encodings (RFC 6455 §5.2). */
const BOUNDARIES: [length: number, size: number, lengthBytes: string][] = [
  [0, 2, "00"],
  [1, 2, "01"],
  [125, 2, "7d"],
  [126, 4, "7e 00 7e"],
  [127, 4, "7e 00 7f"],
  [256, 4, "7e 01 00"],
  [65535, 4, "7e ff ff"],
  [65536, 10, "7f 00 00 00 00 00 01 00 00"],
  [2 ** 32 - 1, 10, "7f 00 00 00 00 ff ff ff ff"],
  [2 ** 32, 10, "7f 00 00 00 01 00 00 00 00"],
  [2 ** 32 + 1, 10, "7f 00 00 00 01 00 00 00 01"],
  [0x0123456789ab, 10, "7f 00 00 01 23 45 67 89 ab"],
  [2 ** 53 - 1, 10, "7f 00 1f ff ff ff ff ff ff"],
];

describe("headerSize", () => {
  it("needs 2, 4 or 10 bytes, and 4 more with a mask", () => {
    for (const [length, size] of BOUNDARIES) {
      assert.equal(headerSize(length, false), size, `${length} unmasked`);
      assert.equal(headerSize(length, true), size + 4, `${length} masked`);
    }
    assert.equal(headerSize(2 ** 53 - 1, true), MAX_HEADER_SIZE);
  });
});

describe("writeHeader", () => {
  it("writes the minimal length encoding at each boundary", () => {
    for (const [length, size, lengthBytes] of BOUNDARIES) {
      const target = new Uint8Array(MAX_HEADER_SIZE);
      const end = writeHeader(target, 0, 0x2, length, true, false);
      assert.equal(end, size, `${length}`);
      assert.equal(toHex(target.subarray(0, end)), "82 " + lengthBytes, `${length}`);
    }
  });

  it("sets the mask bit and writes the key after the length", () => {
    for (const [length, size, lengthBytes] of BOUNDARIES) {
      const target = new Uint8Array(MAX_HEADER_SIZE);
      const end = writeHeader(target, 0, 0x1, length, true, false, MASK);
      assert.equal(end, size + 4);
      const second = (parseInt(lengthBytes.slice(0, 2), 16) | 0x80).toString(16);
      const expected = ["81", second, lengthBytes.slice(3), "37 fa 21 3d"].filter((s) => s)
        .join(" ");
      assert.equal(toHex(target.subarray(0, end)), expected, `${length}`);
    }
  });

  it("writes FIN, RSV1 and the opcode into the first byte", () => {
    const cases: [number, boolean, boolean, string][] = [
      [0x0, false, false, "00"],
      [0x0, true, false, "80"],
      [0x1, false, true, "41"],
      [0x2, true, true, "c2"],
      [0x8, true, false, "88"],
      [0x9, true, false, "89"],
      [0xa, true, false, "8a"],
    ];
    for (const [opcode, fin, rsv1, first] of cases) {
      const target = new Uint8Array(2);
      writeHeader(target, 0, opcode, 5, fin, rsv1);
      assert.equal(toHex(target), `${first} 05`);
    }
  });

  it("writes at an offset, touching only the header's bytes", () => {
    for (const [length, size] of BOUNDARIES) {
      for (const mask of [undefined, MASK]) {
        const target = new Uint8Array(40).fill(0xee);
        const end = writeHeader(target, 7, 0x2, length, true, false, mask);
        const headerEnd = 7 + size + (mask ? 4 : 0);
        assert.equal(end, headerEnd);
        assert.ok(target.subarray(0, 7).every((b) => b === 0xee), "bytes before");
        assert.ok(target.subarray(headerEnd).every((b) => b === 0xee), "bytes after");
        const alone = new Uint8Array(MAX_HEADER_SIZE);
        const aloneEnd = writeHeader(alone, 0, 0x2, length, true, false, mask);
        assert.equal(toHex(target.subarray(7, end)), toHex(alone.subarray(0, aloneEnd)));
      }
    }
  });

  it("writes headers the parser reads back, up to 2^53 - 1", () => {
    for (const [length] of BOUNDARIES) {
      for (const mask of [undefined, MASK]) {
        const header = new Uint8Array(MAX_HEADER_SIZE);
        const end = writeHeader(header, 0, 0x2, length, false, true, mask);
        const seen: number[] = [];
        const record = (opcode: number, fin: boolean, rsv1: boolean, n: number) => {
          assert.deepEqual([opcode, fin, rsv1], [2, false, true]);
          seen.push(n);
        };
        const parser = new FrameParser({
          onFrame: (opcode, fin, rsv1, payload) => record(opcode, fin, rsv1, payload.length),
          onFrameStart: record,
          onFrameData: () => assert.fail("no payload was pushed"),
          onFrameError: (error) => assert.fail(error),
        }, { requireMask: mask !== undefined, allowRsv1: true });
        parser.push(header.subarray(0, end));
        assert.deepEqual(seen, [length], `${length}`);
      }
    }
  });
});

describe("encodeFrame", () => {
  it("encodes the RFC 6455 §5.7 examples", () => {
    const hello = new TextEncoder().encode("Hello");
    assert.equal(toHex(encodeFrame(0x1, hello)), "81 05 48 65 6c 6c 6f");
    assert.equal(
      toHex(encodeFrame(0x1, hello, { mask: MASK })),
      "81 85 37 fa 21 3d 7f 9f 4d 51 58",
    );
    assert.equal(
      toHex(encodeFrame(0x1, hello.subarray(0, 3), { fin: false })),
      "01 03 48 65 6c",
    );
    assert.equal(toHex(encodeFrame(0x0, hello.subarray(3))), "80 02 6c 6f");
    assert.equal(toHex(encodeFrame(0x9, hello)), "89 05 48 65 6c 6c 6f");
    assert.equal(toHex(encodeFrame(0x9, new Uint8Array(0))), "89 00");
    const big = encodeFrame(0x2, new Uint8Array(65536));
    assert.equal(toHex(big.subarray(0, 10)), "82 7f 00 00 00 00 00 01 00 00");
    assert.equal(big.length, 65546);
  });

  it("masks a copy: the caller's payload is left unchanged", () => {
    for (const length of [0, 1, 5, 63, 64, 65, 125, 126, 1000, 65535, 65536]) {
      const payload = pattern(length, length);
      const before = payload.slice();
      const frame = encodeFrame(0x2, payload, { mask: MASK });
      assert.ok(sameBytes(payload, before), `payload of ${length} bytes changed`);
      const start = headerSize(length, true);
      assert.equal(frame.length, start + length);
      assert.equal(toHex(frame.subarray(start - 4, start)), "37 fa 21 3d");
      assert.ok(sameBytes(frame.subarray(start), referenceMask(payload, MASK)), `${length}`);
    }
  });

  it("leaves an unmasked payload as is and sets RSV1 on request", () => {
    const payload = pattern(200, 1);
    const frame = encodeFrame(0x1, payload, { rsv1: true, fin: false });
    assert.equal(toHex(frame.subarray(0, 4)), "41 7e 00 c8");
    assert.ok(sameBytes(frame.subarray(4), payload));
  });

  it("round-trips through FrameParser", () => {
    fc.assert(
      fc.property(
        fc.constantFrom(0, 1, 2, 8, 9, 10),
        fc.oneof(
          fc.uint8Array({ maxLength: 200 }),
          fc.constantFrom(125, 126, 127, 65535, 65536, 70000).map((n) => pattern(n, 3)),
        ),
        fc.boolean(),
        fc.boolean(),
        fc.option(fc.uint8Array({ minLength: 4, maxLength: 4 }), { nil: undefined }),
        (opcode, data, fin, rsv1, mask) => {
          const control = opcode >= 8;
          const payload = control ? data.subarray(0, 125) : data;
          const options = { fin: fin || control, rsv1: rsv1 && !control && opcode !== 0, mask };
          const before = payload.slice();
          const frame = encodeFrame(opcode, payload, options);
          assert.ok(sameBytes(payload, before));
          const sink = feed(frame, [], { requireMask: mask !== undefined, allowRsv1: true });
          assertEvents(
            sink.events,
            expectedEvents([{ opcode, fin: options.fin, rsv1: options.rsv1, payload }]),
            "round trip",
          );
        },
      ),
      { numRuns: 300 },
    );
  });

  it("concatenated frames parse back in order", () => {
    const frames = [
      encodeFrame(0x1, pattern(10, 1), { fin: false, mask: MASK }),
      encodeFrame(0x9, pattern(125, 2), { mask: hex("00 00 00 00") }),
      encodeFrame(0x0, pattern(300, 3), { mask: hex("ff 00 ff 00") }),
    ];
    const sink = new RecordingSink();
    new FrameParser(sink).push(concat(...frames));
    assertEvents(
      sink.events,
      expectedEvents([
        { opcode: 1, fin: false, payload: pattern(10, 1) },
        { opcode: 9, payload: pattern(125, 2) },
        { opcode: 0, payload: pattern(300, 3) },
      ]),
      "concatenated",
    );
  });
});

describe("writePayload", () => {
  it("writes a client's masked frame behind its header, leaving the payload unchanged", () => {
    const keys = new MaskKeySource();
    for (const length of [0, 1, 5, 63, 64, 125, 126, 1000, 65536]) {
      const payload = pattern(length, length);
      const before = payload.slice();
      const mask = keys.next();
      const buffer = new Uint8Array(3 + MAX_HEADER_SIZE + length + 3);
      const start = writeHeader(buffer, 3, 0x2, length, true, false, mask);
      assert.equal(start, 3 + headerSize(length, true));
      const end = writePayload(buffer, start, payload, mask);
      assert.equal(end, start + length);
      assert.ok(sameBytes(payload, before), `payload of ${length} bytes changed`);
      // The server's parser reads it back.
      const sink = feed(buffer.subarray(3, end), [], { requireMask: true });
      assertEvents(
        sink.events,
        expectedEvents([{ opcode: 0x2, fin: true, rsv1: false, payload }]),
        `${length}`,
      );
    }
  });

  it("copies an unmasked payload as is", () => {
    const payload = pattern(300, 9);
    const buffer = new Uint8Array(310);
    assert.equal(writePayload(buffer, 10, payload), 310);
    assert.ok(sameBytes(buffer.subarray(10), payload));
  });
});
