import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { constants, inflateRawSync } from "node:zlib";
import { WebSocketError } from "./errors.ts";
import type { DeflateCallback, MessageCompressor } from "./extensions/deflate_engine.ts";
import type { DeflateParams } from "./extensions/deflate_negotiation.ts";
import { PerMessageDeflate } from "./extensions/permessage_deflate.ts";
import { zlibEngine } from "./extensions/zlib_engine.ts";
import { Opcode } from "./opcode.ts";
import { payloadOffset, PreparedMessage } from "./prepared_message.ts";
import { Protocol, type ProtocolHost } from "./protocol.ts";
import { hex, pattern, sameBytes, toHex } from "./_test_util.ts";
import { random, repetitive, settle } from "./extensions/_deflate_test_util.ts";

const SHARED: DeflateParams = {
  localNoContextTakeover: true,
  remoteNoContextTakeover: true,
  localMaxWindowBits: 15,
  remoteMaxWindowBits: 15,
};

/** Payload lengths at the edges of the 7-bit, 16-bit and 64-bit encodings (RFC 6455 §5.2). */
const LENGTHS: Array<[length: number, lengthBytes: string]> = [
  [0, "00"],
  [125, "7d"],
  [126, "7e 00 7e"],
  [65535, "7e ff ff"],
  [65536, "7f 00 00 00 00 00 01 00 00"],
];

/** A client's inflate (RFC 7692 §7.2.2): the 00 00 ff ff tail appended, then raw inflate. */
function inflate(payload: Uint8Array): Uint8Array {
  const input = new Uint8Array(payload.length + 4);
  input.set(payload);
  input.set([0x00, 0x00, 0xff, 0xff], payload.length);
  return new Uint8Array(inflateRawSync(input, { finishFlush: constants.Z_SYNC_FLUSH }));
}

/** Asserts `payload` is a view into `frame` covering its last `length` bytes. */
function assertViewOf(payload: Uint8Array, frame: Uint8Array, header: number, label: string) {
  assert.equal(payload.buffer, frame.buffer, `${label}: payload shares the frame's memory`);
  assert.equal(payload.byteOffset, frame.byteOffset + header, `${label}: payload offset`);
  assert.equal(payload.length, frame.length - header, `${label}: payload length`);
}

/** A compressor that answers synchronously and counts its calls. */
class SyncCompressor implements MessageCompressor {
  readonly shareable = true;
  calls = 0;
  #answer: (data: Uint8Array) => Uint8Array | WebSocketError;

  constructor(answer: (data: Uint8Array) => Uint8Array | WebSocketError) {
    this.#answer = answer;
  }

  compress(data: Uint8Array, done: DeflateCallback): void {
    this.calls++;
    done(this.#answer(data));
  }

  close(): void {}
}

describe("PreparedMessage: framing", () => {
  for (const [length, lengthBytes] of LENGTHS) {
    const header = hex(lengthBytes).length + 1;

    it(`binary, ${length} bytes: header ${lengthBytes}, the payload behind it`, () => {
      const data = pattern(length, length);
      const message = new PreparedMessage(data);
      assert.equal(message.opcode, Opcode.Binary);
      const { frame, payload } = message;
      assert.equal(frame.length, header + length);
      assert.equal(toHex(frame.subarray(0, header)), `82 ${lengthBytes}`);
      assert.ok(sameBytes(frame.subarray(header), data), "payload bytes");
      assert.ok(sameBytes(payload, data), "payload view bytes");
      assertViewOf(payload, frame, header, "binary");
      assert.equal(payloadOffset(frame), header);
    });

    it(`text, ${length} bytes: header ${lengthBytes}, the UTF-8 behind it`, () => {
      // Mostly ASCII with 2-, 3- and 4-byte characters, cut to exactly `length` bytes of UTF-8.
      const source = "aé€😀".repeat(Math.ceil(length / 10) + 1);
      let text = "";
      let bytes = 0;
      for (const char of source) {
        const size = new TextEncoder().encode(char).length;
        if (bytes + size > length) break;
        text += char;
        bytes += size;
      }
      text += "z".repeat(length - bytes);
      const utf8 = new TextEncoder().encode(text);
      assert.equal(utf8.length, length);
      const message = new PreparedMessage(text);
      assert.equal(message.opcode, Opcode.Text);
      const { frame, payload } = message;
      assert.equal(frame.length, header + length);
      assert.equal(toHex(frame.subarray(0, header)), `81 ${lengthBytes}`);
      assert.ok(sameBytes(payload, utf8), "UTF-8 payload");
      assertViewOf(payload, frame, header, "text");
      assert.equal(payloadOffset(frame), header);
    });
  }

  it('fixture: "hi" and 01 02 03, whole frames in hex', () => {
    assert.equal(toHex(new PreparedMessage("hi").frame), "81 02 68 69");
    assert.equal(toHex(new PreparedMessage(hex("01 02 03")).frame), "82 03 01 02 03");
    assert.equal(toHex(new PreparedMessage("").frame), "81 00");
    assert.equal(toHex(new PreparedMessage(new Uint8Array(0)).frame), "82 00");
  });

  it("copies the caller's bytes: changing them afterwards does not change the frame", () => {
    const data = pattern(300, 7);
    const original = data.slice();
    const message = new PreparedMessage(data);
    assert.notEqual(message.payload.buffer, data.buffer, "the frame has its own memory");
    data.fill(0xee);
    assert.ok(sameBytes(message.payload, original), "the payload is what was given");
    assert.equal(toHex(message.frame.subarray(0, 4)), "82 7e 01 2c");
  });

  it("takes only the bytes of a view, not the rest of its buffer", () => {
    const whole = pattern(64, 3);
    const view = whole.subarray(10, 20);
    const message = new PreparedMessage(view);
    assert.equal(message.frame.length, 2 + 10);
    assert.equal(message.frame[1], 10);
    assert.ok(sameBytes(message.payload, whole.subarray(10, 20)));
    whole.fill(0);
    assert.ok(sameBytes(message.payload, pattern(64, 3).subarray(10, 20)), "copied");
  });

  it("payloadOffset reads the header form", () => {
    assert.equal(payloadOffset(hex("81 7d")), 2);
    assert.equal(payloadOffset(hex("c2 7e 00 7e")), 4);
    assert.equal(payloadOffset(hex("c1 7f 00 00 00 00 00 01 00 00")), 10);
  });
});

describe("PreparedMessage: compressedFrame", () => {
  const samples: Array<[string, string | Uint8Array]> = [
    ["empty text", ""],
    ["short text", "Hello, Hello, Hello, Hello"],
    ["16 KiB repetitive binary", repetitive(16 * 1024)],
    ["64 KiB random binary", random(64 * 1024, 5)],
  ];

  for (const [name, data] of samples) {
    it(`${name}: the zlib shared compressor gives an RSV1 frame that inflates back`, () => {
      const compressor = zlibEngine.compressor(SHARED, {});
      assert.equal(compressor.shareable, true);
      const message = new PreparedMessage(data);
      const frame = message.compressedFrame(compressor);
      assert.ok(frame instanceof Uint8Array, `compression failed: ${frame}`);
      const opcode = typeof data === "string" ? Opcode.Text : Opcode.Binary;
      // FIN, RSV1, the opcode; RSV2 and RSV3 clear (RFC 7692 §6).
      assert.equal(frame[0], 0x80 | 0x40 | opcode);
      assert.equal(frame[1] & 0x80, 0, "a server frame is not masked");
      const offset = payloadOffset(frame);
      const declared = offset === 2
        ? frame[1]
        : offset === 4
        ? (frame[2] << 8) | frame[3]
        : new DataView(frame.buffer, frame.byteOffset).getUint32(6);
      assert.equal(declared, frame.length - offset, "the header's length is the payload's");
      const compressed = frame.subarray(offset);
      assert.ok(sameBytes(inflate(compressed), message.payload), "inflates to the message");
      // The plain frame is untouched.
      assert.equal(message.frame[0] & 0x40, 0);
      // Computed once: the second call returns the same object.
      assert.equal(message.compressedFrame(compressor), frame);
    });
  }

  it("compresses once per compressor, however many connections ask", () => {
    const compressor = new SyncCompressor((data) => data.slice().reverse());
    const message = new PreparedMessage(hex("01 02 03"));
    const first = message.compressedFrame(compressor);
    for (let i = 0; i < 100; i++) assert.equal(message.compressedFrame(compressor), first);
    assert.equal(compressor.calls, 1);
    assert.equal(toHex(first as Uint8Array), "c2 03 03 02 01");
  });

  it("the zlib engine hands out one compressor per setting, each with its own cached frame", () => {
    const a = zlibEngine.compressor(SHARED, {});
    assert.equal(zlibEngine.compressor({ ...SHARED }, {}), a, "same settings: same compressor");
    const small = zlibEngine.compressor({ ...SHARED, localMaxWindowBits: 9 }, {});
    assert.notEqual(small, a, "another window size: another compressor");
    assert.equal(small.shareable, true);
    // A random kilobyte repeated: a 32 KiB window reaches back to the last copy, a 512-byte one
    // cannot, so the two compressed forms differ.
    const block = random(1000, 9);
    const data = new Uint8Array(block.length * 16);
    for (let i = 0; i < 16; i++) data.set(block, i * block.length);
    const message = new PreparedMessage(data);
    const wide = message.compressedFrame(a);
    const narrow = message.compressedFrame(small);
    assert.ok(wide instanceof Uint8Array && narrow instanceof Uint8Array);
    assert.notEqual(wide, narrow);
    assert.ok(
      narrow.length > 2 * wide.length,
      `a 512-byte window should compress worse: ${narrow.length} vs ${wide.length} bytes`,
    );
    assert.ok(sameBytes(inflate(wide.subarray(payloadOffset(wide))), data));
    assert.ok(sameBytes(inflate(narrow.subarray(payloadOffset(narrow))), data));
    // Each stays cached for its own compressor.
    assert.equal(message.compressedFrame(a), wide);
    assert.equal(message.compressedFrame(small), narrow);
  });

  it("a compression error is returned, and kept like a frame", () => {
    const error = new WebSocketError("WS_ERR_DEFLATE", "Compression failed");
    const compressor = new SyncCompressor(() => error);
    const message = new PreparedMessage("x");
    assert.equal(message.compressedFrame(compressor), error);
    assert.equal(message.compressedFrame(compressor), error);
    assert.equal(compressor.calls, 1);
  });

  it("a compressor that answers later throws the TypeError", async () => {
    const late: DeflateCallback[] = [];
    const asyncCompressor: MessageCompressor = {
      compress(_data, done) {
        late.push(done);
      },
      close() {},
    };
    const message = new PreparedMessage("hello");
    const expected = {
      name: "TypeError",
      message: "Cannot share a compression: the compressor answered asynchronously",
    };
    assert.throws(() => message.compressedFrame(asyncCompressor), expected);
    // The late answer does not make a later call succeed with a stale result.
    late[0](new Uint8Array([1, 2, 3]));
    assert.throws(() => message.compressedFrame(asyncCompressor), expected);

    // The zlib engine's compressor with context takeover is such a compressor.
    const stream = zlibEngine.compressor({ ...SHARED, localNoContextTakeover: false }, {});
    assert.notEqual(stream.shareable, true);
    try {
      assert.throws(() => message.compressedFrame(stream), expected);
      // Let its late answer come before closing it: messages are answered in order.
      await new Promise<void>((resolve) => stream.compress(new Uint8Array(1), () => resolve()));
    } finally {
      stream.close();
    }
    await settle();
  });
});

/** What a protocol host was asked to write, in order. */
type Written =
  | { kind: "framed"; frame: Uint8Array }
  | { kind: "frame"; opcode: number; fin: boolean; rsv1: boolean; payload: Uint8Array };

/** A protocol whose host records writes; `framed` false leaves out `writeFramed`. */
function protocolWith(
  options: { deflate?: PerMessageDeflate; framed?: boolean } = {},
): { protocol: Protocol; written: Written[] } {
  const written: Written[] = [];
  const host: ProtocolHost = {
    onMessage() {},
    onPing() {},
    onPong() {},
    onClosed() {},
    writeFrame(opcode, fin, rsv1, payload, owned) {
      written.push({
        kind: "frame",
        opcode,
        fin,
        rsv1,
        payload: owned ? payload : payload.slice(),
      });
    },
  };
  if (options.framed !== false) {
    host.writeFramed = (frame) => written.push({ kind: "framed", frame });
  }
  return { protocol: new Protocol(host, { deflate: options.deflate }), written };
}

const sharedDeflate = (threshold = 0) => new PerMessageDeflate(zlibEngine, SHARED, threshold, {});

describe("Protocol.sendPrepared", () => {
  it("without compression every connection writes the message's own frame object", () => {
    const message = new PreparedMessage(pattern(300, 1));
    const a = protocolWith();
    const b = protocolWith({ deflate: sharedDeflate(1024) }); // under the threshold
    assert.equal(a.protocol.sendPrepared(message), 300);
    assert.equal(b.protocol.sendPrepared(message), 300);
    for (const { written } of [a, b]) {
      assert.equal(written.length, 1);
      assert.equal(written[0].kind, "framed");
      assert.equal((written[0] as { frame: Uint8Array }).frame, message.frame);
    }
  });

  it("shared compression: every connection writes the same compressed frame object", () => {
    const message = new PreparedMessage(repetitive(5000));
    const connections = [
      protocolWith({ deflate: sharedDeflate() }),
      protocolWith({
        deflate: sharedDeflate(),
      }),
    ];
    for (const { protocol } of connections) protocol.sendPrepared(message);
    const expected = message.compressedFrame(zlibEngine.compressor(SHARED, {}));
    assert.ok(expected instanceof Uint8Array);
    for (const { written } of connections) {
      assert.equal(written.length, 1);
      assert.equal(written[0].kind, "framed");
      assert.equal((written[0] as { frame: Uint8Array }).frame, expected, "the cached frame");
    }
    assert.equal(expected[0], 0xc2);
    assert.ok(sameBytes(inflate(expected.subarray(payloadOffset(expected))), message.payload));
  });

  it("compress false sends the plain frame; compress true compresses under the threshold", () => {
    const message = new PreparedMessage("short");
    const { protocol, written } = protocolWith({ deflate: sharedDeflate(1024) });
    protocol.sendPrepared(message, false);
    protocol.sendPrepared(message, true);
    protocol.sendPrepared(message);
    const frames = written.map((w) => (w as { frame: Uint8Array }).frame);
    assert.equal(frames[0], message.frame);
    assert.equal(frames[1][0], 0xc1, "RSV1");
    assert.equal(new TextDecoder().decode(inflate(frames[1].subarray(2))), "short");
    assert.equal(frames[2], message.frame);
  });

  it("a host without writeFramed gets the payload through writeFrame", () => {
    const message = new PreparedMessage("via writeFrame");
    const { protocol, written } = protocolWith({ framed: false, deflate: sharedDeflate(1024) });
    protocol.sendPrepared(message);
    protocol.sendPrepared(message, true);
    assert.equal(written.length, 2);
    const [plain, compressed] = written as Array<Extract<Written, { kind: "frame" }>>;
    assert.deepEqual([plain.kind, plain.opcode, plain.fin, plain.rsv1], ["frame", 1, true, false]);
    assert.ok(sameBytes(plain.payload, message.payload));
    assert.deepEqual([compressed.opcode, compressed.rsv1], [Opcode.Text, true]);
    assert.equal(new TextDecoder().decode(inflate(compressed.payload)), "via writeFrame");
  });

  it("per-connection compression (context takeover): in order with what follows it", async () => {
    const params = { ...SHARED, localNoContextTakeover: false };
    const deflate = new PerMessageDeflate(zlibEngine, params, 0, {});
    const { protocol, written } = protocolWith({ deflate });
    const big = new PreparedMessage(repetitive(20_000));
    const after = new PreparedMessage("after");
    try {
      protocol.sendPrepared(big);
      protocol.sendPrepared(after, false); // must wait behind the compression
      protocol.send("sent", false, false);
      assert.equal(written.length, 0, "nothing may overtake the message being compressed");
      for (let i = 0; i < 100 && written.length < 3; i++) await settle(10);
      assert.equal(written.length, 3);
      const [first, second, third] = written as Array<Extract<Written, { kind: "frame" }>>;
      assert.deepEqual([first.kind, first.opcode, first.rsv1], ["frame", Opcode.Binary, true]);
      assert.ok(sameBytes(inflate(first.payload), big.payload));
      assert.deepEqual([second.kind, second.rsv1], ["frame", false]);
      assert.equal(new TextDecoder().decode(second.payload), "after");
      assert.equal(new TextDecoder().decode(third.payload), "sent");
    } finally {
      protocol.dispose();
    }
  });

  it("during a streamed message it waits for the stream's end", () => {
    const { protocol, written } = protocolWith();
    protocol.startStream(true);
    protocol.sendFragment(Uint8Array.of(1), false, false);
    protocol.sendPrepared(new PreparedMessage("queued"));
    protocol.sendFragment(Uint8Array.of(2), false, true);
    protocol.endStream();
    const summary = written.map((w) =>
      w.kind === "framed"
        ? `framed ${toHex(w.frame)}`
        : `${w.opcode}/${w.fin}/${new TextDecoder().decode(w.payload)}`
    );
    assert.deepEqual(summary.slice(0, 2), ["2/false/\x01", "0/true/\x02"]);
    assert.equal(summary.length, 3);
    const last = written[2];
    const bytes = last.kind === "framed" ? last.frame.subarray(2) : last.payload;
    assert.equal(new TextDecoder().decode(bytes), "queued");
  });

  it("a closing or closed connection throws the TypeError", () => {
    const { protocol } = protocolWith();
    protocol.close(1000);
    assert.throws(() => protocol.sendPrepared(new PreparedMessage("x")), {
      name: "TypeError",
      message: "Cannot send: the connection is closing",
    });
    const other = protocolWith().protocol;
    other.dispose();
    assert.throws(() => other.sendPrepared(new PreparedMessage("x")), {
      name: "TypeError",
      message: "Cannot send: the connection is closed",
    });
  });
});
