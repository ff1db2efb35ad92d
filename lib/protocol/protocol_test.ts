import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { WebSocketError } from "./errors.ts";
import { encodeFrame } from "./frame_writer.ts";
import {
  CLOSED,
  CLOSING,
  OPEN,
  Protocol,
  type ProtocolHost,
  type ProtocolOptions,
} from "./protocol.ts";
import { concat, hex, pattern, toHex } from "./_test_util.ts";

const encoder = new TextEncoder();
const utf8 = (s: string) => encoder.encode(s);
const MASK = hex("37 fa 21 3d");

/** One thing the protocol did, in the order it did it. */
type HostEvent =
  | { type: "message"; data: string | Uint8Array; isBinary: boolean }
  | { type: "ping" | "pong"; payload: string }
  | { type: "closed"; code: number; reason: string; error?: WebSocketError }
  | { type: "write"; opcode: number; fin: boolean; rsv1: boolean; payload: string; owned: boolean };

/** Records every callback; payloads are copied (as hex) at call time. */
class Host implements ProtocolHost {
  events: HostEvent[] = [];

  onMessage(data: string | Uint8Array, isBinary: boolean): void {
    this.events.push({
      type: "message",
      data: typeof data === "string" ? data : data.slice(),
      isBinary,
    });
  }
  onPing(payload: Uint8Array): void {
    this.events.push({ type: "ping", payload: toHex(payload) });
  }
  onPong(payload: Uint8Array): void {
    this.events.push({ type: "pong", payload: toHex(payload) });
  }
  onClosed(code: number, reason: string, error?: WebSocketError): void {
    this.events.push(
      error === undefined
        ? { type: "closed", code, reason }
        : { type: "closed", code, reason, error },
    );
  }
  writeFrame(opcode: number, fin: boolean, rsv1: boolean, payload: Uint8Array, owned: boolean) {
    this.events.push({ type: "write", opcode, fin, rsv1, payload: toHex(payload), owned });
  }

  get writes() {
    return this.events.filter((e) => e.type === "write");
  }
  get messages() {
    return this.events.filter((e) => e.type === "message").map((e) => e.data);
  }
  get closed() {
    return this.events.filter((e) => e.type === "closed");
  }
  /** Forgets what was recorded so far. */
  take(): HostEvent[] {
    const events = this.events;
    this.events = [];
    return events;
  }
}

interface FrameOptions {
  fin?: boolean;
  rsv1?: boolean;
  mask?: Uint8Array;
}

/** A masked client frame. */
function frame(
  opcode: number,
  payload: string | Uint8Array = new Uint8Array(0),
  { fin = true, rsv1 = false, mask = MASK }: FrameOptions = {},
): Uint8Array {
  return encodeFrame(opcode, typeof payload === "string" ? utf8(payload) : payload, {
    fin,
    rsv1,
    mask,
  });
}

function setup(options?: ProtocolOptions): { protocol: Protocol; host: Host } {
  const host = new Host();
  return { protocol: new Protocol(host, options), host };
}

/** A Close frame's payload as we expect to write it when failing with `code` and `message`. */
function closePayload(code: number, reason = ""): string {
  return toHex(concat(Uint8Array.of(code >> 8, code & 0xff), utf8(reason)));
}

/**
 * Asserts that the connection failed with `code`/`closeCode`: one Close frame carrying the
 * close code and the message, then `onClosed(closeCode, message, error)`, and nothing else.
 */
function assertFailed(
  host: Host,
  protocol: Protocol,
  code: string,
  closeCode: number,
  message: string,
  before: HostEvent[] = [],
): void {
  const events = host.events;
  assert.equal(events.length, before.length + 2, JSON.stringify(events));
  assert.deepEqual(events.slice(0, before.length), before);
  const [write, closed] = events.slice(before.length);
  assert.deepEqual(write, {
    type: "write",
    opcode: 8,
    fin: true,
    rsv1: false,
    payload: closePayload(closeCode, message),
    owned: true,
  });
  assert.equal(closed.type, "closed");
  assert.equal(closed.code, closeCode);
  assert.equal(closed.reason, message);
  const error = closed.error;
  assert.ok(error instanceof WebSocketError);
  assert.equal(error.code, code);
  assert.equal(error.closeCode, closeCode);
  assert.equal(error.message, message);
  assert.equal(protocol.readyState, CLOSED);
}

const INVALID_UTF8 = "Invalid UTF-8 in a text message";

describe("Protocol messages", () => {
  it("delivers a one-frame text message as a string and binary as bytes", () => {
    const { protocol, host } = setup();
    protocol.receive(hex("81 85 37 fa 21 3d 7f 9f 4d 51 58"));
    protocol.receive(frame(2, hex("00 ff 10")));
    protocol.receive(frame(1, ""));
    protocol.receive(frame(2));
    assert.deepEqual(host.events, [
      { type: "message", data: "Hello", isBinary: false },
      { type: "message", data: hex("00 ff 10"), isBinary: true },
      { type: "message", data: "", isBinary: false },
      { type: "message", data: new Uint8Array(0), isBinary: true },
    ]);
    assert.equal(protocol.readyState, OPEN);
  });

  it("hands a binary message that arrived whole as a view of the chunk (no copy)", () => {
    let view: Uint8Array | undefined;
    const host = new Host();
    host.onMessage = (data) => view = data as Uint8Array;
    const protocol = new Protocol(host);
    const chunk = frame(2, pattern(300, 1));
    protocol.receive(chunk);
    assert.ok(view);
    assert.equal(view.buffer, chunk.buffer);
    assert.equal(view.byteOffset, 8);
    assert.equal(toHex(view), toHex(pattern(300, 1)));
    assert.deepEqual(host.events, []);
  });

  it("reassembles a fragmented text message, answering a ping between fragments", () => {
    const { protocol, host } = setup();
    protocol.receive(frame(1, "Hel", { fin: false }));
    protocol.receive(frame(9, "are you there?"));
    protocol.receive(frame(0, "l", { fin: false, mask: hex("00 00 00 00") }));
    protocol.receive(frame(10, hex("01 02")));
    protocol.receive(frame(0, "o, world", { mask: hex("ff fe fd fc") }));
    assert.deepEqual(host.events, [
      {
        type: "write",
        opcode: 10,
        fin: true,
        rsv1: false,
        payload: toHex(utf8("are you there?")),
        owned: false,
      },
      { type: "ping", payload: toHex(utf8("are you there?")) },
      { type: "pong", payload: "01 02" },
      { type: "message", data: "Hello, world", isBinary: false },
    ]);
  });

  it("reassembles a fragmented binary message, all in one chunk", () => {
    const { protocol, host } = setup();
    protocol.receive(
      concat(
        frame(2, pattern(100, 1), { fin: false }),
        frame(0, new Uint8Array(0), { fin: false }),
        frame(9),
        frame(0, pattern(200, 2), { fin: false }),
        frame(0, pattern(3, 3)),
        frame(2, hex("aa")),
      ),
    );
    assert.deepEqual(host.events, [
      { type: "write", opcode: 10, fin: true, rsv1: false, payload: "", owned: false },
      { type: "ping", payload: "" },
      {
        type: "message",
        data: concat(pattern(100, 1), pattern(200, 2), pattern(3, 3)),
        isBinary: true,
      },
      { type: "message", data: hex("aa"), isBinary: true },
    ]);
  });

  it("joins a multi-byte character split across fragments", () => {
    const bytes = utf8("a€😀b"); // 61 e2 82 ac f0 9f 98 80 62
    for (let cut = 0; cut <= bytes.length; cut++) {
      for (let cut2 = cut; cut2 <= bytes.length; cut2++) {
        const { protocol, host } = setup();
        protocol.receive(frame(1, bytes.subarray(0, cut), { fin: false }));
        protocol.receive(frame(0, bytes.subarray(cut, cut2), { fin: false }));
        protocol.receive(frame(0, bytes.subarray(cut2)));
        assert.deepEqual(host.messages, ["a€😀b"], `cuts ${cut} ${cut2}`);
      }
    }
  });

  it("keeps a BOM at the start of a text message", () => {
    const { protocol, host } = setup();
    protocol.receive(frame(1, hex("ef bb bf 68 69")));
    protocol.receive(frame(1, hex("ef bb"), { fin: false }));
    protocol.receive(frame(0, hex("bf ef bb bf")));
    const bom = frame(1, hex("ef bb bf 41"));
    for (let i = 0; i < bom.length; i++) protocol.receive(bom.subarray(i, i + 1));
    assert.deepEqual(host.messages, ["\uFEFFhi", "\uFEFF\uFEFF", "\uFEFFA"]);
  });

  it("gives the same string when a text message is fed byte by byte", () => {
    const message = "Grüße, 世界! 😀 ".repeat(20);
    const bytes = concat(
      frame(1, message),
      frame(1, message.slice(0, 5), { fin: false }),
      frame(0, message.slice(5)),
    );
    const { protocol, host } = setup();
    for (let i = 0; i < bytes.length; i++) protocol.receive(bytes.slice(i, i + 1));
    assert.deepEqual(host.messages, [message, message]);
    assert.deepEqual(host.writes, []);
  });

  it("gives the same events however a mixed stream is split in two", () => {
    const stream = concat(
      frame(1, "Grüße ", { fin: false }),
      frame(9, "ping"),
      frame(0, "😀", { fin: false }),
      frame(0, "!"),
      frame(2, pattern(300, 4), { fin: false }),
      frame(10, "pong"),
      frame(0, pattern(20, 5)),
      frame(8, concat(hex("03 e9"), utf8("bye"))),
    );
    const reference = setup();
    reference.protocol.receive(stream.slice());
    const expected = reference.host.events;
    assert.equal(expected.length, 7);
    assert.deepEqual(expected.at(-1), { type: "closed", code: 1001, reason: "bye" });
    for (let cut = 0; cut <= stream.length; cut++) {
      const { protocol, host } = setup();
      const copy = stream.slice();
      protocol.receive(copy.subarray(0, cut));
      protocol.receive(copy.subarray(cut));
      assert.deepEqual(host.events, expected, `split at ${cut}`);
    }
  });
});

describe("Protocol invalid UTF-8", () => {
  it("fails with 1007 on invalid UTF-8 in a one-frame text message", () => {
    const { protocol, host } = setup();
    protocol.receive(frame(1, hex("48 c0 80")));
    assertFailed(host, protocol, "WS_ERR_INVALID_UTF8", 1007, INVALID_UTF8);
    assert.equal(host.writes[0].payload.slice(0, 5), "03 ef");
  });

  it("fails on the fragment that goes invalid, before any FIN frame", () => {
    const { protocol, host } = setup();
    protocol.receive(frame(1, "ok", { fin: false }));
    assert.deepEqual(host.events, []);
    protocol.receive(frame(0, hex("f4 90 80 80"), { fin: false }));
    assertFailed(host, protocol, "WS_ERR_INVALID_UTF8", 1007, INVALID_UTF8);
  });

  it("fails as soon as the first impossible byte arrives within a fragment", () => {
    const { protocol, host } = setup();
    protocol.receive(frame(1, "ok", { fin: false }));
    // A continuation of 4 bytes, of which only "f4 90" arrive: f4 cannot be followed by 90.
    const continuation = frame(0, hex("f4 90 80 80"), { fin: false });
    protocol.receive(continuation.subarray(0, 6 + 1));
    assert.deepEqual(host.events, [], "f4 alone may still be valid");
    protocol.receive(continuation.subarray(7, 8));
    assertFailed(host, protocol, "WS_ERR_INVALID_UTF8", 1007, INVALID_UTF8);
  });

  it("fails on an invalid byte in the first chunk of a one-frame message split across chunks", () => {
    const { protocol, host } = setup();
    const whole = frame(1, concat(utf8("abc"), hex("ed a0 80"), utf8("x".repeat(200))));
    // The header (8 bytes) and 5 bytes of payload: "abc" and ed a0, a surrogate's start.
    protocol.receive(whole.subarray(0, 8 + 5));
    assertFailed(host, protocol, "WS_ERR_INVALID_UTF8", 1007, INVALID_UTF8);
  });

  it("fails at the end of a message that ends inside a character", () => {
    const { protocol, host } = setup();
    protocol.receive(frame(1, hex("e2 82"), { fin: false }));
    assert.deepEqual(host.events, []);
    protocol.receive(frame(0, new Uint8Array(0)));
    assertFailed(host, protocol, "WS_ERR_INVALID_UTF8", 1007, INVALID_UTF8);
  });

  it("keeps decoding fine after a text message that was split across chunks", () => {
    const { protocol, host } = setup();
    const first = frame(1, "€uro");
    protocol.receive(first.subarray(0, 7));
    protocol.receive(first.subarray(7));
    protocol.receive(frame(1, "second", { fin: false }));
    protocol.receive(frame(0, " message"));
    assert.deepEqual(host.messages, ["€uro", "second message"]);
  });
});

describe("Protocol message sequence rules", () => {
  it("fails with 1002 on a continuation frame with no message to continue", () => {
    const { protocol, host } = setup();
    protocol.receive(frame(0, "x"));
    assertFailed(
      host,
      protocol,
      "WS_ERR_UNEXPECTED_CONTINUATION",
      1002,
      "Invalid frame: a continuation frame with no message to continue",
    );
  });

  it("fails with 1002 on a continuation after a complete message", () => {
    const { protocol, host } = setup();
    protocol.receive(frame(1, "done"));
    protocol.receive(frame(0, "x", { fin: false }).subarray(0, 7));
    assertFailed(
      host,
      protocol,
      "WS_ERR_UNEXPECTED_CONTINUATION",
      1002,
      "Invalid frame: a continuation frame with no message to continue",
      [{ type: "message", data: "done", isBinary: false }],
    );
  });

  for (const opcode of [1, 2]) {
    it(`fails with 1002 on a new opcode ${opcode} frame inside a fragmented message`, () => {
      const { protocol, host } = setup();
      protocol.receive(frame(1, "part", { fin: false }));
      protocol.receive(frame(opcode, "new"));
      assertFailed(
        host,
        protocol,
        "WS_ERR_EXPECTED_CONTINUATION",
        1002,
        "Invalid frame: a new message began before the fragmented one ended",
      );
    });
  }

  it("reports a frame-level error with its close code (unmasked frame)", () => {
    const { protocol, host } = setup();
    protocol.receive(hex("81 05 48 65 6c 6c 6f"));
    assertFailed(
      host,
      protocol,
      "WS_ERR_UNMASKED_FRAME",
      1002,
      "Invalid frame: a client frame must be masked",
    );
  });

  it("rejects RSV1 (no extension negotiated)", () => {
    const { protocol, host } = setup();
    protocol.receive(frame(1, "x", { rsv1: true }));
    assertFailed(
      host,
      protocol,
      "WS_ERR_RESERVED_BITS",
      1002,
      "Invalid frame: reserved bits 0x40 set on opcode 1",
    );
  });
});

describe("Protocol maxPayloadLength", () => {
  const TOO_BIG = "Message too big: more than 10 bytes";

  it("accepts a message of exactly maxPayloadLength bytes", () => {
    const { protocol, host } = setup({ maxPayloadLength: 10 });
    protocol.receive(frame(2, pattern(10, 1)));
    protocol.receive(frame(1, "12345", { fin: false }));
    protocol.receive(frame(0, "67890"));
    assert.deepEqual(host.messages, [pattern(10, 1), "1234567890"]);
  });

  it("fails with 1009 from the header alone when one frame is over the limit", () => {
    const { protocol, host } = setup({ maxPayloadLength: 10 });
    const whole = frame(2, pattern(11, 1));
    protocol.receive(whole.subarray(0, 6));
    assertFailed(host, protocol, "WS_ERR_MESSAGE_TOO_BIG", 1009, TOO_BIG);
  });

  it("fails with 1009 from a 64-bit header under the default 16 MiB limit", () => {
    const { protocol, host } = setup();
    protocol.receive(hex("82 ff 00 00 00 00 01 00 00 01 00 00 00 00"));
    assertFailed(
      host,
      protocol,
      "WS_ERR_MESSAGE_TOO_BIG",
      1009,
      "Message too big: more than 16777216 bytes",
    );
  });

  it("fails with 1009 when one frame over the limit arrives whole", () => {
    const { protocol, host } = setup({ maxPayloadLength: 10 });
    protocol.receive(frame(1, "hello world"));
    assertFailed(host, protocol, "WS_ERR_MESSAGE_TOO_BIG", 1009, TOO_BIG);
  });

  it("fails with 1009 on the fragment that crosses the limit", () => {
    const { protocol, host } = setup({ maxPayloadLength: 10 });
    protocol.receive(frame(2, pattern(4, 1), { fin: false }));
    protocol.receive(frame(0, pattern(6, 2), { fin: false }));
    protocol.receive(frame(9, "control frames do not count"));
    protocol.receive(frame(0, new Uint8Array(0), { fin: false }));
    const before = host.take();
    assert.equal(before.length, 2, "a pong and onPing");
    protocol.receive(frame(0, pattern(1, 3)).subarray(0, 6));
    assertFailed(host, protocol, "WS_ERR_MESSAGE_TOO_BIG", 1009, TOO_BIG);
  });
});

describe("Protocol closing handshake started by the peer", () => {
  it("echoes an empty Close frame and reports 1005", () => {
    const { protocol, host } = setup();
    protocol.receive(frame(8));
    assert.deepEqual(host.events, [
      { type: "write", opcode: 8, fin: true, rsv1: false, payload: "", owned: false },
      { type: "closed", code: 1005, reason: "" },
    ]);
    assert.equal(protocol.readyState, CLOSED);
  });

  it("echoes the code only, and reports code and reason", () => {
    const { protocol, host } = setup();
    protocol.receive(frame(8, concat(hex("03 e8"), utf8("bye ✓"))));
    assert.deepEqual(host.events, [
      { type: "write", opcode: 8, fin: true, rsv1: false, payload: "03 e8", owned: false },
      { type: "closed", code: 1000, reason: "bye ✓" },
    ]);
  });

  it("gathers a Close frame split across chunks", () => {
    const { protocol, host } = setup();
    const close = frame(8, concat(hex("0f a0"), utf8("split reason")));
    for (let i = 0; i < close.length; i++) protocol.receive(close.slice(i, i + 1));
    assert.deepEqual(host.events, [
      { type: "write", opcode: 8, fin: true, rsv1: false, payload: "0f a0", owned: false },
      { type: "closed", code: 4000, reason: "split reason" },
    ]);
  });

  it("fails with 1002 on a 1-byte Close payload", () => {
    const { protocol, host } = setup();
    protocol.receive(frame(8, hex("03")));
    assertFailed(
      host,
      protocol,
      "WS_ERR_INVALID_CLOSE_CODE",
      1002,
      "Invalid close frame: a 1-byte payload has no room for a close code",
    );
  });

  for (const code of [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535]) {
    it(`fails with 1002 on close code ${code}`, () => {
      const { protocol, host } = setup();
      protocol.receive(frame(8, Uint8Array.of(code >> 8, code & 0xff)));
      assertFailed(
        host,
        protocol,
        "WS_ERR_INVALID_CLOSE_CODE",
        1002,
        `Invalid close frame: close code ${code} may not be sent`,
      );
    });
  }

  it("accepts close codes 1000-1003, 1007-1014, 3000 and 4999, echoing each", () => {
    const codes = [
      1000,
      1001,
      1002,
      1003,
      1007,
      1008,
      1009,
      1010,
      1011,
      1012,
      1013,
      1014,
      3000,
      4999,
    ];
    for (const code of codes) {
      const { protocol, host } = setup();
      const bytes = Uint8Array.of(code >> 8, code & 0xff);
      protocol.receive(frame(8, bytes));
      assert.deepEqual(host.events, [
        { type: "write", opcode: 8, fin: true, rsv1: false, payload: toHex(bytes), owned: false },
        { type: "closed", code, reason: "" },
      ], `code ${code}`);
    }
  });

  it("fails with 1007 on a close reason that is not UTF-8", () => {
    const { protocol, host } = setup();
    protocol.receive(frame(8, hex("03 e8 62 ff")));
    assertFailed(
      host,
      protocol,
      "WS_ERR_INVALID_UTF8",
      1007,
      "Invalid close frame: the reason is not UTF-8",
    );
  });

  it("ignores frames after the peer's Close", () => {
    const { protocol, host } = setup();
    protocol.receive(concat(frame(8, hex("03 e8")), frame(1, "late"), frame(9, "p")));
    protocol.receive(frame(2, hex("01")));
    protocol.receive(hex("81 05 48 65 6c 6c 6f"));
    assert.equal(host.events.length, 2);
    assert.deepEqual(host.events[1], { type: "closed", code: 1000, reason: "" });
    assert.throws(() => protocol.send("x"), {
      name: "TypeError",
      message: "Cannot send: the connection is closed",
    });
    protocol.close(1000);
    protocol.fail(new WebSocketError("WS_ERR_HANDLER", "late"));
    assert.equal(host.events.length, 2, "close() and fail() after CLOSED do nothing");
  });

  it("drops a fragmented message in progress when the peer closes", () => {
    const { protocol, host } = setup();
    protocol.receive(frame(1, "unfinished", { fin: false }));
    protocol.receive(frame(8, hex("03 e9")));
    assert.deepEqual(host.messages, []);
    assert.deepEqual(host.closed, [{ type: "closed", code: 1001, reason: "" }]);
  });
});

describe("Protocol closing handshake started by us", () => {
  it("writes a Close frame, goes CLOSING, refuses to send, and completes on the peer's Close", () => {
    const { protocol, host } = setup();
    protocol.close(1000, "done");
    assert.deepEqual(host.take(), [
      {
        type: "write",
        opcode: 8,
        fin: true,
        rsv1: false,
        payload: closePayload(1000, "done"),
        owned: true,
      },
    ]);
    assert.equal(protocol.readyState, CLOSING);
    assert.throws(() => protocol.send("x"), {
      name: "TypeError",
      message: "Cannot send: the connection is closing",
    });
    assert.throws(() => protocol.send(new Uint8Array(1)), TypeError);
    assert.throws(() => protocol.sendControl(9, new Uint8Array(0)), {
      name: "TypeError",
      message: "Cannot ping: the connection is closing",
    });
    assert.throws(() => protocol.sendControl(10, new Uint8Array(0)), {
      name: "TypeError",
      message: "Cannot pong: the connection is closing",
    });
    protocol.close(1001);
    assert.deepEqual(host.events, [], "a second close() writes nothing");

    // Messages still arrive while CLOSING (RFC 6455 §7.1.2 lets the peer finish).
    protocol.receive(frame(1, "still here"));
    // A ping after our Close frame is reported but not answered (§5.5.1: nothing follows it).
    protocol.receive(frame(9, "p"));
    protocol.receive(frame(8, concat(hex("0b b8"), utf8("ok"))));
    assert.deepEqual(host.events, [
      { type: "message", data: "still here", isBinary: false },
      { type: "ping", payload: "70" },
      { type: "closed", code: 3000, reason: "ok" },
    ]);
    assert.equal(protocol.readyState, CLOSED);
    assert.throws(() => protocol.send("x"), {
      name: "TypeError",
      message: "Cannot send: the connection is closed",
    });
  });

  it("writes an empty Close frame for close() without a code", () => {
    const { protocol, host } = setup();
    protocol.close();
    assert.deepEqual(host.writes, [
      { type: "write", opcode: 8, fin: true, rsv1: false, payload: "", owned: true },
    ]);
    protocol.receive(frame(8));
    assert.deepEqual(host.take().slice(1), [{ type: "closed", code: 1005, reason: "" }]);
  });

  it("throws RangeError for close codes that may not be sent, writing nothing", () => {
    const { protocol, host } = setup();
    for (const code of [1005, 999, 1006, 1015, 5000, 1000.5]) {
      assert.throws(() => protocol.close(code), {
        name: "RangeError",
        message:
          `Cannot close: close code ${code} may not be sent (use 1000-1003, 1007-1014 or 3000-4999)`,
      });
    }
    assert.throws(() => protocol.close(1000, "x".repeat(124)), {
      name: "RangeError",
      message: "Cannot close: the reason takes 124 bytes of UTF-8, more than 123",
    });
    assert.throws(() => protocol.close(1000, "é".repeat(62)), {
      name: "RangeError",
      message: "Cannot close: the reason takes 124 bytes of UTF-8, more than 123",
    });
    assert.throws(() => protocol.close(undefined, "why"), {
      name: "TypeError",
      message: "Cannot close: a reason needs a close code",
    });
    assert.deepEqual(host.events, []);
    assert.equal(protocol.readyState, OPEN);
    protocol.close(4999, "y".repeat(123));
    assert.equal(host.writes[0].payload, closePayload(4999, "y".repeat(123)));
  });

  it("fails after our Close without writing a second Close frame", () => {
    const { protocol, host } = setup();
    protocol.close(1000);
    host.take();
    protocol.receive(frame(1, hex("ff")));
    assert.equal(host.events.length, 1);
    const closed = host.events[0];
    assert.equal(closed.type, "closed");
    assert.equal(closed.code, 1007);
    assert.equal(closed.error?.code, "WS_ERR_INVALID_UTF8");
    assert.equal(protocol.readyState, CLOSED);
  });
});

describe("Protocol fail() and lost()", () => {
  it("fail() sends the error's close code and reason, 1011 without details", () => {
    const { protocol, host } = setup();
    const error = new WebSocketError("WS_ERR_HANDLER", "secret server detail");
    protocol.fail(error);
    assert.deepEqual(host.events, [
      { type: "write", opcode: 8, fin: true, rsv1: false, payload: "03 f3", owned: true },
      { type: "closed", code: 1011, reason: "secret server detail", error },
    ]);
    protocol.receive(frame(1, "ignored"));
    assert.equal(host.events.length, 2);
  });

  it("fail() cuts a long reason to 123 bytes", () => {
    const { protocol, host } = setup();
    protocol.fail(new WebSocketError("WS_ERR_INVALID_UTF8", "z".repeat(200)));
    assert.equal(host.writes[0].payload, closePayload(1007, "z".repeat(123)));
  });

  // BUG (fails today): fail() sets readyState CLOSED and stops the parser, then throws the
  // RangeError of encodeClosePayload(1006), so onClosed is never called. RFC 6455 §7.4.1: 1006
  // is never sent; the error still has to be reported.
  it("fail() with a 1006 error (never sent) still reports onClosed and does not throw", () => {
    const { protocol, host } = setup();
    const error = new WebSocketError("WS_ERR_CONNECTION_LOST", "The TCP connection broke");
    assert.doesNotThrow(() => protocol.fail(error));
    for (const write of host.writes) {
      assert.ok(!write.payload.startsWith("03 ee"), "a Close frame must not carry 1006");
    }
    assert.deepEqual(host.closed, [
      { type: "closed", code: 1006, reason: "The TCP connection broke", error },
    ]);
    assert.equal(protocol.readyState, CLOSED);
  });

  it("lost() closes silently and stops decoding", () => {
    const { protocol, host } = setup();
    protocol.receive(frame(1, "half", { fin: false }));
    protocol.lost();
    protocol.receive(frame(0, " more"));
    assert.deepEqual(host.events, []);
    assert.equal(protocol.readyState, CLOSED);
  });
});

describe("Protocol pause() and resume()", () => {
  it("holds messages back until resume()", () => {
    const { protocol, host } = setup();
    protocol.pause();
    protocol.receive(concat(frame(1, "a"), frame(1, "b")));
    protocol.receive(frame(1, "c"));
    assert.deepEqual(host.messages, []);
    protocol.resume();
    assert.deepEqual(host.messages, ["a", "b", "c"]);
  });
});

describe("Protocol sliceFrames", () => {
  it("answers ten pings in one chunk over turns, in order: yielded until continue()", () => {
    const { protocol, host } = setup({ sliceFrames: 4 });
    const pings = Array.from({ length: 10 }, (_, i) => frame(9, Uint8Array.of(i)));
    protocol.receive(concat(...pings, frame(1, "after")));
    const pongs = () => host.writes.map((w) => w.payload);
    assert.equal(protocol.yielded, true);
    assert.equal(protocol.paused, false);
    assert.deepEqual(pongs(), ["00", "01", "02", "03"]);
    protocol.continue();
    assert.deepEqual(pongs(), ["00", "01", "02", "03", "04", "05", "06", "07"]);
    assert.equal(protocol.yielded, true);
    protocol.continue();
    assert.equal(protocol.yielded, false);
    assert.deepEqual(pongs(), ["00", "01", "02", "03", "04", "05", "06", "07", "08", "09"]);
    assert.deepEqual(host.messages, ["after"]);
  });

  it("a failure ends the yield", () => {
    const { protocol, host } = setup({ sliceFrames: 1 });
    protocol.receive(concat(frame(1, "a"), frame(1, "b")));
    assert.equal(protocol.yielded, true);
    protocol.fail(new WebSocketError("WS_ERR_HANDLER", "An application handler threw"));
    assert.equal(protocol.yielded, false);
    protocol.continue();
    assert.deepEqual(host.messages, ["a"]);
  });
});

describe("Protocol sending", () => {
  it("writes a short string as one text frame of its UTF-8 bytes", () => {
    const { protocol, host } = setup();
    assert.equal(protocol.send("héllo 😀"), 11);
    assert.equal(protocol.send(""), 0);
    assert.deepEqual(host.events, [
      {
        type: "write",
        opcode: 1,
        fin: true,
        rsv1: false,
        payload: toHex(utf8("héllo 😀")),
        owned: false,
      },
      { type: "write", opcode: 1, fin: true, rsv1: false, payload: "", owned: false },
    ]);
  });

  it("writes strings at and over 16384 UTF-16 units whole", () => {
    for (const text of ["€".repeat(16384), "€".repeat(16385), "ab😀".repeat(10000)]) {
      const payloads: Uint8Array[] = [];
      const host = new Host();
      host.writeFrame = (opcode, fin, rsv1, payload) => {
        assert.deepEqual([opcode, fin, rsv1], [1, true, false]);
        payloads.push(payload.slice());
      };
      const protocol = new Protocol(host);
      const bytes = utf8(text);
      assert.equal(protocol.send(text), bytes.length);
      assert.equal(payloads.length, 1);
      assert.equal(payloads[0].length, bytes.length);
      assert.equal(toHex(payloads[0]), toHex(bytes), `${text.length} units`);
    }
  });

  it("writes a Uint8Array as one binary frame, passing `owned` on", () => {
    const { protocol, host } = setup();
    const data = hex("00 01 fe ff");
    assert.equal(protocol.send(data), 4);
    assert.equal(protocol.send(data, true), 4);
    assert.deepEqual(host.events, [
      { type: "write", opcode: 2, fin: true, rsv1: false, payload: "00 01 fe ff", owned: false },
      { type: "write", opcode: 2, fin: true, rsv1: false, payload: "00 01 fe ff", owned: true },
    ]);
  });

  it("sends pings and pongs of up to 125 bytes; 126 throws RangeError", () => {
    const { protocol, host } = setup();
    protocol.sendControl(9, pattern(125, 1));
    protocol.sendControl(10, hex("01"));
    assert.deepEqual(host.events, [
      {
        type: "write",
        opcode: 9,
        fin: true,
        rsv1: false,
        payload: toHex(pattern(125, 1)),
        owned: false,
      },
      { type: "write", opcode: 10, fin: true, rsv1: false, payload: "01", owned: false },
    ]);
    assert.throws(() => protocol.sendControl(9, new Uint8Array(126)), {
      name: "RangeError",
      message: "Cannot ping: the payload is 126 bytes, more than 125",
    });
    assert.throws(() => protocol.sendControl(10, new Uint8Array(126)), {
      name: "RangeError",
      message: "Cannot pong: the payload is 126 bytes, more than 125",
    });
    assert.equal(host.events.length, 2);
  });
});

describe("Protocol properties", () => {
  it("never throws on random bytes, and closes at most once", () => {
    fc.assert(
      fc.property(
        fc.array(fc.uint8Array({ maxLength: 64 }), { maxLength: 8 }),
        fc.integer({ min: 0, max: 64 }),
        (chunks, maxPayloadLength) => {
          const { protocol, host } = setup({ maxPayloadLength });
          for (const chunk of chunks) protocol.receive(chunk);
          assert.ok(host.closed.length <= 1);
          if (host.closed.length === 1) assert.equal(protocol.readyState, CLOSED);
        },
      ),
      { numRuns: 2000 },
    );
  });

  it("delivers random masked messages exactly, however the stream is split", () => {
    const messageArb = fc.oneof(
      fc.record({ binary: fc.constant(true), data: fc.uint8Array({ maxLength: 300 }) }),
      fc.record({
        binary: fc.constant(false),
        data: fc.string({ unit: "grapheme", maxLength: 50 }),
      }),
    );
    fc.assert(
      fc.property(
        fc.array(fc.tuple(messageArb, fc.array(fc.nat(), { maxLength: 3 })), { maxLength: 6 }),
        fc.array(fc.nat(), { maxLength: 10 }),
        fc.uint8Array({ minLength: 4, maxLength: 4 }),
        (messages, rawCuts, mask) => {
          const frames: Uint8Array[] = [];
          for (const [{ binary, data }, fragmentCuts] of messages) {
            const bytes = typeof data === "string" ? utf8(data) : data;
            const cuts = fragmentCuts.map((n) => n % (bytes.length + 1)).sort((a, b) => a - b);
            const edges = [0, ...cuts, bytes.length];
            for (let i = 0; i + 1 < edges.length; i++) {
              frames.push(
                frame(i === 0 ? (binary ? 2 : 1) : 0, bytes.slice(edges[i], edges[i + 1]), {
                  fin: i + 2 === edges.length,
                  mask,
                }),
              );
              if (i % 2 === 1) frames.push(frame(10, "p"));
            }
          }
          const stream = concat(...frames);
          const cuts = rawCuts.map((n) => n % (stream.length + 1)).sort((a, b) => a - b);
          const { protocol, host } = setup();
          let start = 0;
          for (const cut of [...cuts, stream.length]) {
            protocol.receive(stream.subarray(start, cut));
            start = cut;
          }
          assert.deepEqual(host.messages, messages.map(([m]) => m.data));
          assert.deepEqual(host.writes, []);
        },
      ),
      { numRuns: 300 },
    );
  });
});
