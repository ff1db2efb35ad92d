import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { WebSocketError } from "./errors.ts";
import { FrameParser, type FrameParserOptions } from "./frame_parser.ts";
import { encodeFrame } from "./frame_writer.ts";
import {
  assertEvents,
  concat,
  expectedEvents,
  type ExpectedFrame,
  feed,
  Feeder,
  hex,
  pattern,
  type RecordedError,
  type RecordedEvent,
  RecordingSink,
  referenceMask,
  toHex,
} from "./_test_util.ts";

const text = (s: string) => new TextEncoder().encode(s);
const MASK = "37 fa 21 3d";

/** A masked frame: `head` is the header in hex up to the length, then the key, then payload. */
function masked(head: string, payload: Uint8Array, key = MASK): Uint8Array {
  return concat(hex(head), hex(key), referenceMask(payload, hex(key)));
}

type ErrorSpec = Omit<RecordedError, "type" | "name">;

interface Fixture {
  name: string;
  bytes: Uint8Array;
  options?: FrameParserOptions;
  frames: ExpectedFrame[];
  error?: ErrorSpec;
}

/**
 * Feeds `fixture` whole, one byte per push, and split in two at every offset, and checks that
 * every feeding gives the expected normalised events.
 */
function checkFeedings(fixture: Fixture): void {
  const { bytes, options } = fixture;
  const expected = expectedEvents(fixture.frames, fixture.error);
  assertEvents(feed(bytes, [], options).events, expected, `${fixture.name}: whole`);
  const everyByte = Array.from({ length: Math.max(bytes.length - 1, 0) }, (_, i) => i + 1);
  assertEvents(feed(bytes, everyByte, options).events, expected, `${fixture.name}: byte by byte`);
  // Payloads over 4 KiB are compared in full above and in samples here (around the cut, at
  // both ends and at a stride), or the 65536 splits of a 64 KiB frame would take seconds.
  const feeder = new Feeder(bytes);
  for (let cut = 0; cut <= bytes.length; cut++) {
    const sink = feeder.feed([cut], options);
    assertEvents(sink.events, expected, `${fixture.name}: split at ${cut}`, true);
  }
}

const HELLO = text("Hello");

const VALID: Fixture[] = [
  {
    name: "RFC 6455 §5.7 masked text 'Hello'",
    bytes: hex("81 85 37 fa 21 3d 7f 9f 4d 51 58"),
    frames: [{ opcode: 1, payload: HELLO }],
  },
  {
    name: "RFC 6455 §5.7 unmasked text 'Hello' (requireMask: false)",
    bytes: hex("81 05 48 65 6c 6c 6f"),
    options: { requireMask: false },
    frames: [{ opcode: 1, payload: HELLO }],
  },
  {
    name: "RFC 6455 §5.7 fragmented unmasked text",
    bytes: hex("01 03 48 65 6c 80 02 6c 6f"),
    options: { requireMask: false },
    frames: [
      { opcode: 1, fin: false, payload: text("Hel") },
      { opcode: 0, fin: true, payload: text("lo") },
    ],
  },
  {
    name: "RFC 6455 §5.7 unmasked ping",
    bytes: hex("89 05 48 65 6c 6c 6f"),
    options: { requireMask: false },
    frames: [{ opcode: 9, payload: HELLO }],
  },
  {
    name: "RFC 6455 §5.7 masked pong",
    bytes: hex("8a 85 37 fa 21 3d 7f 9f 4d 51 58"),
    frames: [{ opcode: 10, payload: HELLO }],
  },
  {
    name: "RFC 6455 §5.7 unmasked 256-byte binary",
    bytes: concat(hex("82 7e 01 00"), pattern(256, 1)),
    options: { requireMask: false },
    frames: [{ opcode: 2, payload: pattern(256, 1) }],
  },
  {
    name: "empty text",
    bytes: masked("81 80", new Uint8Array(0)),
    frames: [{ opcode: 1, payload: new Uint8Array(0) }],
  },
  {
    name: "empty binary",
    bytes: masked("82 80", new Uint8Array(0), "00 00 00 00"),
    frames: [{ opcode: 2, payload: new Uint8Array(0) }],
  },
  {
    name: "1-byte text",
    bytes: masked("81 81", text("x")),
    frames: [{ opcode: 1, payload: text("x") }],
  },
  {
    name: "1-byte binary",
    bytes: masked("82 81", hex("ff")),
    frames: [{ opcode: 2, payload: hex("ff") }],
  },
  {
    name: "125-byte text (largest 7-bit length)",
    bytes: masked("81 fd", pattern(125, 2)),
    frames: [{ opcode: 1, payload: pattern(125, 2) }],
  },
  {
    name: "125-byte binary",
    bytes: masked("82 fd", pattern(125, 3), "ff ff ff ff"),
    frames: [{ opcode: 2, payload: pattern(125, 3) }],
  },
  {
    name: "126-byte text (smallest 16-bit length)",
    bytes: masked("81 fe 00 7e", pattern(126, 4)),
    frames: [{ opcode: 1, payload: pattern(126, 4) }],
  },
  {
    name: "126-byte binary",
    bytes: masked("82 fe 00 7e", pattern(126, 5), "01 02 03 04"),
    frames: [{ opcode: 2, payload: pattern(126, 5) }],
  },
  {
    name: "65535-byte text (largest 16-bit length)",
    bytes: masked("81 fe ff ff", pattern(65535, 6)),
    frames: [{ opcode: 1, payload: pattern(65535, 6) }],
  },
  {
    name: "65536-byte binary (smallest 64-bit length)",
    bytes: masked("82 ff 00 00 00 00 00 01 00 00", pattern(65536, 7), "a1 b2 c3 d4"),
    frames: [{ opcode: 2, payload: pattern(65536, 7) }],
  },
  {
    name: "125-byte ping (largest control payload)",
    bytes: masked("89 fd", pattern(125, 8)),
    frames: [{ opcode: 9, payload: pattern(125, 8) }],
  },
  {
    name: "text in three fragments",
    bytes: concat(
      masked("01 83", text("Hel")),
      masked("00 81", text("l"), "00 00 00 00"),
      masked("80 81", text("o"), "ff 00 ff 00"),
    ),
    frames: [
      { opcode: 1, fin: false, payload: text("Hel") },
      { opcode: 0, fin: false, payload: text("l") },
      { opcode: 0, fin: true, payload: text("o") },
    ],
  },
  {
    name: "ping, pong and close inside a fragmented binary message",
    bytes: concat(
      masked("02 fe 00 c8", pattern(200, 9)),
      masked("89 82", text("p1")),
      masked("00 80", new Uint8Array(0)),
      masked("8a 80", new Uint8Array(0)),
      masked("80 fe 01 2c", pattern(300, 10), "9a 8b 7c 6d"),
      masked("88 82", hex("03 e8")),
    ),
    frames: [
      { opcode: 2, fin: false, payload: pattern(200, 9) },
      { opcode: 9, payload: text("p1") },
      { opcode: 0, fin: false, payload: new Uint8Array(0) },
      { opcode: 10, payload: new Uint8Array(0) },
      { opcode: 0, fin: true, payload: pattern(300, 10) },
      { opcode: 8, payload: hex("03 e8") },
    ],
  },
  {
    name: "several frames in one chunk",
    bytes: concat(
      hex("81 85 37 fa 21 3d 7f 9f 4d 51 58"),
      masked("82 83", hex("00 01 02")),
      masked("89 80", new Uint8Array(0)),
      masked("81 fe 00 80", pattern(128, 11)),
      hex("81 85 37 fa 21 3d 7f 9f 4d 51 58"),
    ),
    frames: [
      { opcode: 1, payload: HELLO },
      { opcode: 2, payload: hex("00 01 02") },
      { opcode: 9, payload: new Uint8Array(0) },
      { opcode: 1, payload: pattern(128, 11) },
      { opcode: 1, payload: HELLO },
    ],
  },
  {
    name: "RSV1 on text and binary with allowRsv1",
    bytes: concat(
      masked("c1 85", HELLO),
      masked("42 82", hex("aa bb")),
      masked("80 81", hex("cc")),
    ),
    options: { allowRsv1: true },
    frames: [
      { opcode: 1, rsv1: true, payload: HELLO },
      { opcode: 2, fin: false, rsv1: true, payload: hex("aa bb") },
      { opcode: 0, payload: hex("cc") },
    ],
  },
];

const err = (code: string, closeCode: number, message: string): ErrorSpec => ({
  code,
  closeCode,
  message,
});
const reservedBits = (bits: number, opcode: number) =>
  err(
    "WS_ERR_RESERVED_BITS",
    1002,
    `Invalid frame: reserved bits 0x${bits.toString(16)} set on opcode ${opcode}`,
  );
const UNMASKED = err("WS_ERR_UNMASKED_FRAME", 1002, "Invalid frame: a client frame must be masked");
const MASKED = err("WS_ERR_MASKED_FRAME", 1002, "Invalid frame: a server frame must not be masked");
const CONTROL_TOO_LONG = err(
  "WS_ERR_CONTROL_FRAME_TOO_LONG",
  1002,
  "Invalid frame: a control frame's payload must not exceed 125 bytes",
);
const FRAGMENTED_CONTROL = err(
  "WS_ERR_FRAGMENTED_CONTROL_FRAME",
  1002,
  "Invalid frame: a control frame must not be fragmented",
);
const INVALID_LENGTH = err(
  "WS_ERR_INVALID_LENGTH",
  1002,
  "Invalid frame: the 64-bit payload length has its most significant bit set",
);
const TOO_BIG = err(
  "WS_ERR_MESSAGE_TOO_BIG",
  1009,
  "Message too big: the frame's payload length exceeds 2^53 - 1 bytes",
);
const reservedOpcode = (opcode: number) =>
  err("WS_ERR_INVALID_OPCODE", 1002, `Invalid frame: reserved opcode ${opcode}`);

const HELLO_FRAME = hex("81 85 37 fa 21 3d 7f 9f 4d 51 58");
const HELLO_EVENT: ExpectedFrame = { opcode: 1, payload: HELLO };

const INVALID: Fixture[] = [
  {
    name: "unmasked client frame",
    bytes: hex("81 05 48 65 6c 6c 6f"),
    frames: [],
    error: UNMASKED,
  },
  {
    name: "unmasked frame after a masked one",
    bytes: concat(HELLO_FRAME, hex("82 00 81 05 48 65 6c 6c 6f")),
    frames: [HELLO_EVENT],
    error: UNMASKED,
  },
  {
    name: "masked frame with requireMask: false",
    bytes: concat(hex("81 05 48 65 6c 6c 6f"), HELLO_FRAME),
    options: { requireMask: false },
    frames: [HELLO_EVENT],
    error: MASKED,
  },
  {
    name: "RSV1 without allowRsv1",
    bytes: masked("c1 85", HELLO),
    frames: [],
    error: reservedBits(0x40, 1),
  },
  {
    name: "RSV2",
    bytes: masked("a2 80", new Uint8Array(0)),
    frames: [],
    error: reservedBits(0x20, 2),
  },
  {
    name: "RSV3",
    bytes: masked("91 80", new Uint8Array(0)),
    frames: [],
    error: reservedBits(0x10, 1),
  },
  {
    name: "RSV2 with allowRsv1",
    bytes: masked("a1 80", new Uint8Array(0)),
    options: { allowRsv1: true },
    frames: [],
    error: reservedBits(0x20, 1),
  },
  {
    name: "RSV3 with allowRsv1",
    bytes: masked("92 80", new Uint8Array(0)),
    options: { allowRsv1: true },
    frames: [],
    error: reservedBits(0x10, 2),
  },
  {
    name: "RSV1 and RSV2 with allowRsv1",
    bytes: masked("e1 80", new Uint8Array(0)),
    options: { allowRsv1: true },
    frames: [],
    error: reservedBits(0x60, 1),
  },
  {
    name: "RSV1 on a continuation frame with allowRsv1",
    bytes: concat(masked("41 81", text("a")), masked("c0 81", text("b"))),
    options: { allowRsv1: true },
    frames: [{ opcode: 1, fin: false, rsv1: true, payload: text("a") }],
    error: reservedBits(0x40, 0),
  },
  ...[8, 9, 10].map((opcode): Fixture => ({
    name: `RSV1 on control opcode ${opcode} with allowRsv1`,
    bytes: masked(`${(0xc0 | opcode).toString(16)} 80`, new Uint8Array(0)),
    options: { allowRsv1: true },
    frames: [],
    error: reservedBits(0x40, opcode),
  })),
  ...[3, 4, 5, 6, 7, 11, 12, 13, 14, 15].map((opcode): Fixture => ({
    name: `reserved opcode ${opcode}`,
    bytes: masked(`${(0x80 | opcode).toString(16)} 80`, new Uint8Array(0)),
    frames: [],
    error: reservedOpcode(opcode),
  })),
  {
    name: "reserved opcode after a good frame",
    bytes: concat(HELLO_FRAME, masked("83 81", hex("00"))),
    frames: [HELLO_EVENT],
    error: reservedOpcode(3),
  },
  {
    name: "ping with a 16-bit length of 126",
    bytes: masked("89 fe 00 7e", pattern(126, 1)),
    frames: [],
    error: CONTROL_TOO_LONG,
  },
  {
    name: "close with a 16-bit length of 2 (any extended length is too long)",
    bytes: masked("88 fe 00 02", hex("03 e8")),
    frames: [],
    error: CONTROL_TOO_LONG,
  },
  {
    name: "pong with a 64-bit length",
    bytes: masked("8a ff 00 00 00 00 00 00 00 01", hex("00")),
    frames: [],
    error: CONTROL_TOO_LONG,
  },
  {
    name: "ping without FIN",
    bytes: masked("09 80", new Uint8Array(0)),
    frames: [],
    error: FRAGMENTED_CONTROL,
  },
  {
    name: "close without FIN",
    bytes: masked("08 82", hex("03 e8")),
    frames: [],
    error: FRAGMENTED_CONTROL,
  },
  {
    name: "64-bit length with the top bit set",
    bytes: masked("82 ff 80 00 00 00 00 00 00 00", new Uint8Array(0)),
    frames: [],
    error: INVALID_LENGTH,
  },
  {
    name: "64-bit length of all ones",
    bytes: masked("82 ff ff ff ff ff ff ff ff ff", new Uint8Array(0)),
    frames: [],
    error: INVALID_LENGTH,
  },
  {
    name: "64-bit length of 2^53",
    bytes: masked("82 ff 00 20 00 00 00 00 00 00", new Uint8Array(0)),
    frames: [],
    error: TOO_BIG,
  },
  {
    name: "64-bit length of 2^63 - 1",
    bytes: masked("82 ff 7f ff ff ff ff ff ff ff", new Uint8Array(0)),
    frames: [],
    error: TOO_BIG,
  },
  {
    name: "64-bit length above 2^53 after a good frame, unmasked",
    bytes: concat(hex("81 05 48 65 6c 6c 6f"), hex("82 7f 00 3f ff ff 00 00 00 00")),
    options: { requireMask: false },
    frames: [HELLO_EVENT],
    error: TOO_BIG,
  },
];

describe("FrameParser fixtures fed whole, byte by byte and split at every offset", () => {
  for (const fixture of VALID) {
    it(fixture.name, () => checkFeedings(fixture));
  }
});

describe("FrameParser rejections", () => {
  for (const fixture of INVALID) {
    it(`${fixture.name}: ${fixture.error!.code}`, () => checkFeedings(fixture));
  }

  it("reports a WebSocketError instance with its code, closeCode and message", () => {
    let error: unknown;
    const parser = new FrameParser({
      onFrame: () => assert.fail("no frame expected"),
      onFrameStart: () => assert.fail("no frame expected"),
      onFrameData: () => assert.fail("no frame expected"),
      onFrameError: (e) => error = e,
    });
    parser.push(hex("81 05 48 65 6c 6c 6f"));
    assert.ok(error instanceof WebSocketError);
    assert.ok(error instanceof Error);
    assert.equal(error.name, "WebSocketError");
    assert.equal(error.code, "WS_ERR_UNMASKED_FRAME");
    assert.equal(error.closeCode, 1002);
    assert.equal(error.message, "Invalid frame: a client frame must be masked");
    assert.equal(parser.stopped, true);
  });

  const headerOnly: [string, string, FrameParserOptions | undefined, ErrorSpec][] = [
    ["reserved opcode 3", "83 80", undefined, reservedOpcode(3)],
    ["reserved opcode 15", "8f 80", undefined, reservedOpcode(15)],
    ["RSV1 without allowRsv1", "c1 85", undefined, reservedBits(0x40, 1)],
    ["RSV1 on a control frame", "c9 80", { allowRsv1: true }, reservedBits(0x40, 9)],
    ["unmasked client frame", "82 7e", undefined, UNMASKED],
    ["masked server frame", "82 ff", { requireMask: false }, MASKED],
    ["control frame with a 16-bit length", "89 fe", undefined, CONTROL_TOO_LONG],
    ["control frame without FIN", "0a 80", undefined, FRAGMENTED_CONTROL],
  ];
  for (const [name, bytes, options, error] of headerOnly) {
    it(`rejects ${name} from the first two bytes alone`, () => {
      for (const cuts of [[], [1]]) {
        const sink = feed(hex(bytes), cuts, options);
        assertEvents(sink.events, expectedEvents([], error), `${name} cut at ${cuts}`);
      }
    });
  }

  it("decides the 64-bit length error as soon as the extended length is in", () => {
    const sink = new RecordingSink();
    const parser = new FrameParser(sink, { requireMask: false });
    parser.push(hex("82 7f 80 00 00 00 00 00 00"));
    assert.equal(sink.events.length, 0);
    parser.push(hex("00"));
    assertEvents(sink.events, expectedEvents([], INVALID_LENGTH), "top bit");
  });

  it("accepts a 64-bit length of 2^53 - 1 and streams its payload", () => {
    const starts: number[] = [];
    const pieces: [string, boolean][] = [];
    const parser = new FrameParser({
      onFrame: () => assert.fail("unexpected onFrame"),
      onFrameStart: (opcode, fin, rsv1, length) => {
        assert.deepEqual([opcode, fin, rsv1], [2, true, false]);
        starts.push(length);
      },
      onFrameData: (piece, last) => pieces.push([toHex(piece), last]),
      onFrameError: (e) => assert.fail(e),
    });
    parser.push(masked("82 ff 00 1f ff ff ff ff ff ff", hex("01 02 03"), "10 20 30 40"));
    parser.push(referenceMask(hex("04 05"), hex("10 20 30 40"), 3));
    assert.deepEqual(starts, [2 ** 53 - 1]);
    assert.deepEqual(pieces, [["01 02 03", false], ["04 05", false]]);
    assert.equal(parser.stopped, false);
  });

  it("ignores every push after an error, and stop() from outside", () => {
    const sink = new RecordingSink();
    const parser = new FrameParser(sink);
    parser.push(hex("83 80 00 00"));
    assert.equal(sink.events.length, 1);
    assert.equal(parser.stopped, true);
    parser.push(HELLO_FRAME.slice());
    parser.push(hex("81"));
    parser.push(hex("05 48 65 6c 6c 6f"));
    parser.resume();
    assertEvents(sink.events, expectedEvents([], reservedOpcode(3)), "after the error");

    const sink2 = new RecordingSink();
    const parser2 = new FrameParser(sink2);
    parser2.push(HELLO_FRAME.subarray(0, 4).slice());
    parser2.stop();
    parser2.push(HELLO_FRAME.subarray(4).slice());
    parser2.push(HELLO_FRAME.slice());
    assert.equal(parser2.stopped, true);
    assert.deepEqual(sink2.events, []);
  });

  it("stops within the chunk when the sink calls stop()", () => {
    const sink = new RecordingSink();
    const parser = new FrameParser(sink);
    sink.after = () => parser.stop();
    parser.push(concat(HELLO_FRAME, HELLO_FRAME, HELLO_FRAME));
    assert.equal(sink.events.length, 1);
    parser.push(HELLO_FRAME.slice());
    assert.equal(sink.events.length, 1);
    assert.equal(parser.stopped, true);
  });

  it("does not let a frame in the same chunk through after an error", () => {
    const sink = feed(concat(masked("8b 80", new Uint8Array(0)), HELLO_FRAME), []);
    assertEvents(sink.events, expectedEvents([], reservedOpcode(11)), "same chunk");
  });
});

describe("FrameParser pause() and resume()", () => {
  const frames = [0, 1, 2, 3].map((i) => masked("82 81", Uint8Array.of(i), "0f 1e 2d 3c"));
  const payloads = (events: RecordedEvent[]) =>
    events.map((e) => (e.type === "frame" ? e.payload[0] : -1));

  it("pausing inside onFrame holds back the rest of the chunk until resume()", () => {
    const sink = new RecordingSink();
    const parser = new FrameParser(sink);
    sink.after = () => {
      if (sink.events.length === 1) parser.pause();
    };
    parser.push(concat(frames[0], frames[1], frames[2]));
    assert.deepEqual(payloads(sink.events), [0]);
    assert.equal(parser.paused, true);
    parser.push(frames[3].slice());
    assert.deepEqual(payloads(sink.events), [0], "a chunk pushed while paused waits");
    parser.resume();
    assert.equal(parser.paused, false);
    assert.deepEqual(payloads(sink.events), [0, 1, 2, 3]);
  });

  it("delivers chunks pushed while paused in order, split frames included", () => {
    const sink = new RecordingSink();
    const parser = new FrameParser(sink);
    parser.pause();
    const all = concat(...frames, masked("81 fe 00 c8", pattern(200, 3)));
    for (let i = 0; i < all.length; i += 7) parser.push(all.slice(i, i + 7));
    assert.deepEqual(sink.events, []);
    parser.resume();
    assertEvents(
      sink.events,
      expectedEvents([
        ...[0, 1, 2, 3].map((i) => ({ opcode: 2, payload: Uint8Array.of(i) })),
        { opcode: 1, payload: pattern(200, 3) },
      ]),
      "after resume",
    );
  });

  it("pauses on each frame, and resumes from outside one frame at a time", () => {
    const sink = new RecordingSink();
    const parser = new FrameParser(sink);
    sink.after = () => parser.pause();
    parser.push(concat(frames[0], frames[1]));
    parser.push(concat(frames[2], frames[3]));
    const seen: number[][] = [payloads(sink.events)];
    for (let i = 0; i < 4; i++) {
      parser.resume();
      seen.push(payloads(sink.events));
    }
    assert.deepEqual(seen, [[0], [0, 1], [0, 1, 2], [0, 1, 2, 3], [0, 1, 2, 3]]);
  });

  it("pausing inside onFrameData holds back the frames after the split one", () => {
    const sink = new RecordingSink();
    const parser = new FrameParser(sink);
    const big = masked("81 fe 00 c8", pattern(200, 4));
    sink.after = (event) => {
      if (event.type === "frame" && event.opcode === 1) parser.pause();
    };
    parser.push(big.slice(0, 100));
    parser.push(concat(big.subarray(100), frames[0]));
    assert.equal(sink.events.length, 1);
    parser.resume();
    assert.deepEqual(payloads(sink.events), [pattern(200, 4)[0], 0]);
  });

  it("pause() then resume() inside the same callback changes nothing", () => {
    const sink = new RecordingSink();
    const parser = new FrameParser(sink);
    sink.after = () => {
      parser.pause();
      parser.resume();
    };
    parser.push(concat(frames[0], frames[1], frames[2]));
    assert.deepEqual(payloads(sink.events), [0, 1, 2]);
    assert.equal(parser.paused, false);
  });

  it("a push from inside a callback is decoded after the current chunk", () => {
    const sink = new RecordingSink();
    const parser = new FrameParser(sink);
    let pushed = false;
    sink.after = () => {
      if (!pushed) {
        pushed = true;
        parser.push(frames[3].slice());
      }
    };
    parser.push(concat(frames[0], frames[1]));
    assert.deepEqual(payloads(sink.events), [0, 1, 3]);
  });

  it("resume() with nothing held back, and stop() while paused, deliver nothing", () => {
    const sink = new RecordingSink();
    const parser = new FrameParser(sink);
    parser.resume();
    assert.equal(parser.paused, false);
    parser.pause();
    parser.push(frames[0].slice());
    parser.stop();
    parser.resume();
    assert.deepEqual(sink.events, []);
    assert.equal(parser.stopped, true);
  });
});

describe("FrameParser sliceFrames", () => {
  const frame = (i: number) => masked("82 81", Uint8Array.of(i), "0f 1e 2d 3c");
  const frames = (n: number) => concat(...Array.from({ length: n }, (_, i) => frame(i)));
  const payloads = (events: RecordedEvent[]) =>
    events.map((e) => (e.type === "frame" ? e.payload[0] : -1));

  /** Calls continue() while the parser yields; returns the frames seen after each turn. */
  function turns(parser: FrameParser, sink: RecordingSink): number[] {
    const seen = [sink.events.length];
    while (parser.yielded) {
      parser.continue();
      seen.push(sink.events.length);
    }
    return seen;
  }

  it("a chunk of N frames is delivered across turns, in order, nothing lost", () => {
    const sink = new RecordingSink();
    const parser = new FrameParser(sink, { sliceFrames: 3 });
    parser.push(frames(10));
    assert.equal(parser.yielded, true);
    assert.equal(parser.paused, false, "a yield is not a pause");
    assert.deepEqual(turns(parser, sink), [3, 6, 9, 10]);
    assert.deepEqual(payloads(sink.events), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    assert.equal(parser.yielded, false);
  });

  it("a slice that ends mid-frame: the split frame goes on with the next chunk", () => {
    const sink = new RecordingSink();
    const parser = new FrameParser(sink, { sliceFrames: 2 });
    const big = masked("81 fe 00 c8", pattern(200, 5));
    const all = concat(frames(5), big, frame(9));
    const cut = frames(5).length + 60;
    parser.push(all.slice(0, cut));
    // The third turn decodes frame 4 and starts the split frame (seen once it is whole).
    assert.deepEqual(turns(parser, sink), [2, 4, 5]);
    parser.push(all.slice(cut));
    assert.equal(parser.yielded, false);
    assertEvents(
      sink.events,
      expectedEvents([
        ...[0, 1, 2, 3, 4].map((i) => ({ opcode: 2, payload: Uint8Array.of(i) })),
        { opcode: 1, payload: pattern(200, 5) },
        { opcode: 2, payload: Uint8Array.of(9) },
      ]),
      "sliced",
    );
  });

  it("a slice whose budget runs out inside a header split across the chunk's end", () => {
    const sink = new RecordingSink();
    const parser = new FrameParser(sink, { sliceFrames: 1 });
    const all = frames(3);
    // Two whole frames, then the first 3 bytes of the third one's header.
    parser.push(all.slice(0, 2 * 7 + 3));
    // The third turn only takes in the header's first bytes.
    assert.deepEqual(turns(parser, sink), [1, 2, 2]);
    parser.push(all.slice(2 * 7 + 3));
    assert.deepEqual(payloads(sink.events), [0, 1, 2]);
  });

  it("does not yield when the budget runs out with the input", () => {
    const sink = new RecordingSink();
    const parser = new FrameParser(sink, { sliceFrames: 4 });
    parser.push(frames(4));
    assert.equal(parser.yielded, false);
    // Each push is a new turn with a whole budget.
    parser.push(frames(3));
    parser.push(frames(4));
    assert.equal(parser.yielded, false);
    assert.equal(sink.events.length, 11);
  });

  it("chunks pushed while it has yielded wait behind what it held back", () => {
    const sink = new RecordingSink();
    const parser = new FrameParser(sink, { sliceFrames: 2 });
    parser.push(frames(3));
    parser.push(frame(7).slice());
    assert.deepEqual(payloads(sink.events), [0, 1]);
    assert.deepEqual(turns(parser, sink), [2, 4]);
    assert.deepEqual(payloads(sink.events), [0, 1, 2, 7]);
  });

  it("a pause and a yield together: decoding waits for both resume() and continue()", () => {
    const sink = new RecordingSink();
    const parser = new FrameParser(sink, { sliceFrames: 2 });
    sink.after = () => {
      if (sink.events.length === 2) parser.pause();
    };
    parser.push(frames(6));
    assert.equal(parser.paused && parser.yielded, true);
    parser.continue();
    assert.equal(sink.events.length, 2, "still paused");
    parser.resume();
    assert.equal(sink.events.length, 4, "a new turn: two more");
    assert.equal(parser.yielded, true);
    parser.pause();
    parser.continue();
    assert.equal(sink.events.length, 4, "paused again");
    parser.resume();
    assert.deepEqual(payloads(sink.events), [0, 1, 2, 3, 4, 5]);
    assert.equal(parser.yielded || parser.paused, false);
  });

  it("stop() ends a yield; continue() then decodes nothing", () => {
    const sink = new RecordingSink();
    const parser = new FrameParser(sink, { sliceFrames: 1 });
    parser.push(frames(3));
    parser.stop();
    assert.equal(parser.yielded, false);
    parser.continue();
    assert.deepEqual(payloads(sink.events), [0]);
  });

  it("any slice size and any split give the events of an unsliced parser", () => {
    const all = concat(frames(6), masked("81 fe 00 c8", pattern(200, 6)), frames(3));
    const expected = new RecordingSink();
    new FrameParser(expected).push(all.slice());
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 8 }),
        fc.uniqueArray(fc.integer({ min: 1, max: all.length - 1 }), { maxLength: 6 }),
        (slice, cuts) => {
          const sink = new RecordingSink();
          const parser = new FrameParser(sink, { sliceFrames: slice });
          const points = [0, ...cuts.sort((a, b) => a - b), all.length];
          for (let i = 1; i < points.length; i++) {
            parser.push(all.slice(points[i - 1], points[i]));
            // The host continues before the next read, as the connection does.
            turns(parser, sink);
          }
          assertEvents(sink.events, expected.events, `slice ${slice}, cuts ${cuts}`);
        },
      ),
    );
  });

  it("rejects a budget under one frame", () => {
    assert.throws(() => new FrameParser(new RecordingSink(), { sliceFrames: 0 }), {
      name: "RangeError",
      message: "Cannot decode: sliceFrames must be at least 1, got 0",
    });
  });
});

describe("FrameParser zero-copy", () => {
  it("hands out a view of the chunk, unmasked in place", () => {
    const backing = new ArrayBuffer(64);
    const chunk = new Uint8Array(backing, 5, HELLO_FRAME.length + 8);
    chunk.set(HELLO_FRAME);
    chunk.set(masked("82 82", hex("de ad"), "01 02 03 04"), HELLO_FRAME.length);
    const sink = new RecordingSink(false);
    new FrameParser(sink).push(chunk);
    assert.equal(sink.views.length, 2);
    const [first, second] = sink.views;
    assert.equal(first.buffer, backing);
    assert.equal(first.byteOffset, 5 + 6);
    assert.equal(first.length, 5);
    assert.equal(second.buffer, backing);
    assert.equal(second.byteOffset, 5 + 11 + 6);
    assert.equal(toHex(chunk.subarray(6, 11)), toHex(HELLO), "unmasked in place");
    assert.equal(toHex(chunk.subarray(17, 19)), "de ad");
    assert.equal(toHex(second), "de ad");
  });

  it("hands out views of each chunk for a payload that spans chunks", () => {
    const frame = masked("82 fe 01 00", pattern(256, 5));
    const a = frame.slice(0, 100);
    const b = frame.slice(100);
    const pieces: Uint8Array[] = [];
    const parser = new FrameParser({
      onFrame: () => assert.fail("unexpected onFrame"),
      onFrameStart: (_o, _f, _r, length) => assert.equal(length, 256),
      onFrameData: (piece) => pieces.push(piece),
      onFrameError: (e) => assert.fail(e),
    });
    parser.push(a);
    parser.push(b);
    assert.equal(pieces.length, 2);
    assert.equal(pieces[0].buffer, a.buffer);
    assert.equal(pieces[0].byteOffset, 8);
    assert.equal(pieces[1].buffer, b.buffer);
    assert.equal(pieces[1].byteOffset, 0);
    assert.equal(toHex(concat(a.subarray(8), b)), toHex(pattern(256, 5)));
  });
});

/** One frame of a generated sequence, before encoding. */
interface GenFrame {
  opcode: number;
  fin: boolean;
  payload: Uint8Array;
}

const payloadArb = fc.oneof(
  { weight: 6, arbitrary: fc.uint8Array({ maxLength: 300 }) },
  { weight: 1, arbitrary: fc.integer({ min: 0, max: 70000 }).map((n) => pattern(n, n)) },
  { weight: 1, arbitrary: fc.constantFrom(125, 126, 65535, 65536).map((n) => pattern(n, 1)) },
);
const controlArb = fc.record({
  opcode: fc.constantFrom(8, 9, 10),
  fin: fc.constant(true),
  payload: fc.uint8Array({ maxLength: 125 }),
});
/** A message: a first frame, continuations, and control frames between its fragments. */
const messageArb = fc.record({
  opcode: fc.constantFrom(1, 2),
  fragments: fc.array(payloadArb, { minLength: 1, maxLength: 4 }),
  controls: fc.array(fc.option(controlArb, { nil: undefined }), { maxLength: 4 }),
}).map(({ opcode, fragments, controls }): GenFrame[] => {
  const out: GenFrame[] = [];
  fragments.forEach((payload, i) => {
    out.push({ opcode: i === 0 ? opcode : 0, fin: i === fragments.length - 1, payload });
    const control = controls[i];
    if (control && i < fragments.length - 1) out.push(control);
  });
  return out;
});
const sequenceArb = fc.array(fc.oneof(messageArb, controlArb.map((c) => [c])), {
  minLength: 1,
  maxLength: 6,
}).map((messages) => messages.flat());

/** Increasing cut offsets inside `length` bytes, from any naturals. */
function toCuts(raw: readonly number[], length: number): number[] {
  return raw.map((n) => n % (length + 1)).sort((a, b) => a - b);
}

describe("FrameParser properties", () => {
  it("parses exactly the frames encodeFrame encoded, however the bytes are split", () => {
    fc.assert(
      fc.property(
        sequenceArb,
        fc.boolean(),
        fc.array(fc.uint8Array({ minLength: 4, maxLength: 4 }), { minLength: 1, maxLength: 4 }),
        fc.array(fc.nat(), { maxLength: 12 }),
        (frames, client, masks, rawCuts) => {
          const bytes = concat(
            ...frames.map((f, i) =>
              encodeFrame(f.opcode, f.payload, {
                fin: f.fin,
                mask: client ? masks[i % masks.length] : undefined,
              })
            ),
          );
          const cuts = toCuts(rawCuts, bytes.length);
          const sink = feed(bytes, cuts, { requireMask: client });
          assertEvents(sink.events, expectedEvents(frames), `cuts ${cuts}`);
        },
      ),
      { numRuns: 150 },
    );
  });

  it("never throws on random bytes pushed in random pieces; an error, if any, comes last", () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 400 }),
        fc.array(fc.nat(), { maxLength: 10 }),
        fc.boolean(),
        fc.boolean(),
        (bytes, rawCuts, requireMask, allowRsv1) => {
          const cuts = toCuts(rawCuts, bytes.length);
          // RecordingSink asserts the sink contract (nothing after an error) as it goes.
          const sink = feed(bytes, cuts, { requireMask, allowRsv1 });
          const errors = sink.events.filter((e) => e.type === "error");
          assert.ok(errors.length <= 1);
          if (errors.length === 1) assert.equal(sink.events.at(-1)!.type, "error");
        },
      ),
      { numRuns: 2000 },
    );
  });

  it("never throws on random frame-like bytes (valid first bytes, random rest)", () => {
    const headArb = fc.tuple(fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 255 }));
    fc.assert(
      fc.property(
        fc.array(fc.tuple(headArb, fc.uint8Array({ maxLength: 20 })), { maxLength: 8 }),
        fc.array(fc.nat(), { maxLength: 10 }),
        (parts, rawCuts) => {
          // Unmasked headers with any first byte and length, then random bytes.
          const bytes = concat(
            ...parts.map(([[b0, b1], rest]) => concat(Uint8Array.of(b0, b1 & 0x7f), rest)),
          );
          const cuts = toCuts(rawCuts, bytes.length);
          const sink = feed(bytes, cuts, { requireMask: false, allowRsv1: true });
          assert.ok(sink.events.filter((e) => e.type === "error").length <= 1);
        },
      ),
      { numRuns: 1000 },
    );
  });
});

describe("FrameParser copyBelow", () => {
  it("hands out shorter payloads as unmasked copies, longer ones as views of the chunk", () => {
    const payloads: Uint8Array[] = [];
    const parser = new FrameParser({
      onFrame: (_opcode, _fin, _rsv1, payload) => payloads.push(payload),
      onFrameStart() {},
      onFrameData() {},
      onFrameError: (error) => assert.fail(error.message),
    }, { copyBelow: 4 });
    const short = text("abc");
    const long = text("abcd");
    const chunk = new Uint8Array([
      ...encodeFrame(0x2, short, { mask: new Uint8Array([1, 2, 3, 4]) }),
      ...encodeFrame(0x2, long, { mask: new Uint8Array([5, 6, 7, 8]) }),
    ]);
    parser.push(chunk);
    assert.deepEqual(payloads.map((p) => [...p]), [[...short], [...long]]);
    assert.notEqual(payloads[0].buffer, chunk.buffer, "under copyBelow: a copy");
    assert.equal(payloads[1].buffer, chunk.buffer, "at copyBelow: a view");
  });
});
