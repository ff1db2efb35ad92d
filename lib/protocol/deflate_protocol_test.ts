import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { WebSocketError } from "./errors.ts";
import {
  clientDeflate as deflate,
  clientInflate as inflate,
  ClientStream,
  encoder,
  MiB,
  settle,
  STATELESS as SHARED,
  TAKEOVER as DEDICATED,
} from "./extensions/_deflate_test_util.ts";
import type { DeflateEngine } from "./extensions/deflate_engine.ts";
import type { DeflateParams } from "./extensions/deflate_negotiation.ts";
import { PerMessageDeflate } from "./extensions/permessage_deflate.ts";
import { webEngine } from "./extensions/web_engine.ts";
import { zlibEngine } from "./extensions/zlib_engine.ts";
import { encodeFrame } from "./frame_writer.ts";
import { CLOSED, OPEN, Protocol, type ProtocolHost } from "./protocol.ts";
import { concat, hex, pattern, toHex } from "./_test_util.ts";

const MASK = hex("37 fa 21 3d");
const utf8 = (s: string) => encoder.encode(s);
const THRESHOLD = 1024;

interface Setup {
  name: string;
  engine: DeflateEngine;
  params: DeflateParams;
  /** Whether the engine answers later rather than inside the call. */
  async: boolean;
}

const SETUPS: Setup[] = [
  { name: "zlib shared", engine: zlibEngine, params: SHARED, async: false },
  { name: "zlib dedicated", engine: zlibEngine, params: DEDICATED, async: true },
  { name: "web", engine: webEngine, params: SHARED, async: true },
];
const ASYNC_SETUPS = SETUPS.filter((s) => s.async);

// The host

type HostEvent =
  | { type: "message"; data: string | Uint8Array; isBinary: boolean }
  | { type: "ping" | "pong"; payload: string }
  | { type: "closed"; code: number; reason: string; error?: WebSocketError }
  | { type: "write"; opcode: number; fin: boolean; rsv1: boolean; payload: Uint8Array };

/** Records every callback (payloads copied at call time) and lets a test wait for events. */
class Host implements ProtocolHost {
  events: HostEvent[] = [];
  #wake: (() => void) | undefined;

  onMessage(data: string | Uint8Array, isBinary: boolean): void {
    this.#push({
      type: "message",
      data: typeof data === "string" ? data : new Uint8Array(data),
      isBinary,
    });
  }
  onPing(payload: Uint8Array): void {
    this.#push({ type: "ping", payload: toHex(payload) });
  }
  onPong(payload: Uint8Array): void {
    this.#push({ type: "pong", payload: toHex(payload) });
  }
  onClosed(code: number, reason: string, error?: WebSocketError): void {
    this.#push(
      error === undefined
        ? { type: "closed", code, reason }
        : { type: "closed", code, reason, error },
    );
  }
  writeFrame(opcode: number, fin: boolean, rsv1: boolean, payload: Uint8Array): void {
    this.#push({ type: "write", opcode, fin, rsv1, payload: new Uint8Array(payload) });
  }

  get writes(): Array<Extract<HostEvent, { type: "write" }>> {
    return this.events.filter((e) => e.type === "write");
  }
  get messages(): Array<string | Uint8Array> {
    return this.events.flatMap((e) => e.type === "message" ? [e.data] : []);
  }
  get closed(): Array<Extract<HostEvent, { type: "closed" }>> {
    return this.events.filter((e) => e.type === "closed");
  }

  /** Waits until `ready()` holds; fails the test after `ms`. */
  async until(ready: () => boolean, what: string, ms = 5000): Promise<void> {
    if (ready()) return;
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      await new Promise<void>((resolve, reject) => {
        timer = setTimeout(() => {
          reject(new Error(`timed out after ${ms} ms waiting for ${what}: ${this.#summary()}`));
        }, ms);
        this.#wake = () => {
          if (ready()) resolve();
        };
      });
    } finally {
      this.#wake = undefined;
      clearTimeout(timer);
    }
  }

  #summary(): string {
    return JSON.stringify(
      this.events.map((e) =>
        e.type === "write"
          ? `write ${e.opcode}`
          : e.type === "message"
          ? `message ${typeof e.data === "string" ? JSON.stringify(e.data) : toHex(e.data)}`
          : e.type
      ),
    );
  }

  #push(event: HostEvent): void {
    this.events.push(event);
    this.#wake?.();
  }
}

function setup(
  s: Pick<Setup, "engine" | "params"> = SETUPS[0],
  maxPayloadLength?: number,
): { protocol: Protocol; host: Host } {
  const host = new Host();
  const deflate = new PerMessageDeflate(s.engine, s.params, THRESHOLD, {});
  return { protocol: new Protocol(host, { deflate, maxPayloadLength }), host };
}

/** Runs `body` with a protocol for `s`, and frees its compression state afterwards. */
async function using(
  s: Pick<Setup, "engine" | "params">,
  body: (protocol: Protocol, host: Host) => Promise<void> | void,
  maxPayloadLength?: number,
): Promise<void> {
  const { protocol, host } = setup(s, maxPayloadLength);
  try {
    await body(protocol, host);
  } finally {
    protocol.dispose();
  }
}

// Frames and compression as a client makes them

/** A masked client frame. */
function frame(
  opcode: number,
  payload: string | Uint8Array = new Uint8Array(0),
  { fin = true, rsv1 = false, mask = MASK }: { fin?: boolean; rsv1?: boolean; mask?: Uint8Array } =
    {},
): Uint8Array {
  return encodeFrame(opcode, typeof payload === "string" ? utf8(payload) : payload, {
    fin,
    rsv1,
    mask,
  });
}

/** A compressed frame of `data`. */
function compressedFrame(opcode: number, data: string | Uint8Array): Uint8Array {
  return frame(opcode, deflate(data), { rsv1: true });
}

// Assertions

/**
 * Asserts that the connection failed: after `before` events, one Close frame with the close
 * code and the message, then `onClosed` with the error, and nothing else.
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
    payload: concat(Uint8Array.of(closeCode >> 8, closeCode & 0xff), utf8(message)),
  });
  assert.equal(closed.type, "closed");
  assert.equal(closed.code, closeCode);
  assert.equal(closed.reason, message);
  const error = closed.error;
  assert.ok(error instanceof WebSocketError);
  assert.equal(error.name, "WebSocketError");
  assert.equal(error.code, code);
  assert.equal(error.closeCode, closeCode);
  assert.equal(error.message, message);
  assert.equal(protocol.readyState, CLOSED);
}

const INVALID_UTF8 = "Invalid UTF-8 in a text message";
const INFLATE_FAILED = "Invalid compressed data: the message does not inflate";
const reserved = (opcode: number) => `Invalid frame: reserved bits 0x40 set on opcode ${opcode}`;

/** Feeds `bytes` whole, byte by byte and split in two at every offset; checks each feeding. */
function everySplit(
  bytes: Uint8Array,
  check: (host: Host, label: string) => void,
): void {
  const feedings: Array<[string, number[]]> = [["whole", []]];
  feedings.push(["byte by byte", Array.from({ length: bytes.length - 1 }, (_, i) => i + 1)]);
  for (let cut = 1; cut < bytes.length; cut++) feedings.push([`split at ${cut}`, [cut]]);
  for (const [label, cuts] of feedings) {
    const { protocol, host } = setup();
    const copy = bytes.slice();
    let start = 0;
    for (const cut of [...cuts, copy.length]) {
      protocol.receive(copy.subarray(start, cut));
      start = cut;
    }
    check(host, label);
    protocol.dispose();
  }
}

// Tests

describe("Protocol + permessage-deflate: receiving", () => {
  it("inflates a one-frame compressed text and binary message, however they are split", () => {
    const text = "Grüße, compressed world! 😀 ".repeat(8);
    const binary = pattern(300, 1);
    const bytes = concat(compressedFrame(1, text), compressedFrame(2, binary));
    everySplit(bytes, (host, label) => {
      assert.deepEqual(
        host.events,
        [
          { type: "message", data: text, isBinary: false },
          { type: "message", data: binary, isBinary: true },
        ],
        label,
      );
    });
  });

  it("reads the RFC 7692 §7.2.3.1 examples: one frame, and two fragments", () => {
    const { protocol, host } = setup();
    // RFC 7692 §7.2.3.1: c1 07 f2 48 cd c9 c9 07 00 is "Hello" (here masked, as from a client).
    protocol.receive(frame(1, hex("f2 48 cd c9 c9 07 00"), { rsv1: true }));
    // RFC 7692 §7.2.3.1: 41 03 f2 48 cd / 80 04 c9 c9 07 00, RSV1 on the first frame only.
    protocol.receive(frame(1, hex("f2 48 cd"), { rsv1: true, fin: false }));
    protocol.receive(frame(0, hex("c9 c9 07 00")));
    assert.deepEqual(host.messages, ["Hello", "Hello"]);
    assert.deepEqual(host.writes, []);
  });

  it("reads a compressed message in 3 frames with RSV1 on the first, a ping between", () => {
    const text = JSON.stringify({ items: Array.from({ length: 50 }, (_, i) => ({ i })) });
    const payload = deflate(text);
    const a = Math.floor(payload.length / 3);
    const b = Math.floor((2 * payload.length) / 3);
    const bytes = concat(
      frame(1, payload.subarray(0, a), { rsv1: true, fin: false }),
      frame(0, payload.subarray(a, b), { fin: false }),
      frame(9, "ping"),
      frame(0, payload.subarray(b)),
    );
    everySplit(bytes, (host, label) => {
      assert.deepEqual(
        host.events,
        [
          { type: "write", opcode: 10, fin: true, rsv1: false, payload: utf8("ping") },
          { type: "ping", payload: toHex(utf8("ping")) },
          { type: "message", data: text, isBinary: false },
        ],
        label,
      );
    });
  });

  it("keeps uncompressed messages as they are when deflate was negotiated", () => {
    const { protocol, host } = setup();
    protocol.receive(frame(1, "plain"));
    protocol.receive(frame(2, pattern(10, 2), { fin: false }));
    protocol.receive(frame(0, pattern(10, 3)));
    assert.deepEqual(host.messages, ["plain", concat(pattern(10, 2), pattern(10, 3))]);
  });

  it("fails with 1002 on RSV1 on a continuation frame", () => {
    const { protocol, host } = setup();
    protocol.receive(frame(1, deflate("Hello").subarray(0, 2), { rsv1: true, fin: false }));
    protocol.receive(frame(0, deflate("Hello").subarray(2), { rsv1: true }));
    assertFailed(host, protocol, "WS_ERR_RESERVED_BITS", 1002, reserved(0));
  });

  it("fails with 1002 on RSV1 on an uncompressed message's continuation frame", () => {
    const { protocol, host } = setup();
    protocol.receive(frame(1, "He", { fin: false }));
    protocol.receive(frame(0, deflate("llo"), { rsv1: true }));
    assertFailed(host, protocol, "WS_ERR_RESERVED_BITS", 1002, reserved(0));
  });

  it("fails with 1002 on RSV1 on a ping", () => {
    const { protocol, host } = setup();
    protocol.receive(frame(9, "x", { rsv1: true }));
    assertFailed(host, protocol, "WS_ERR_RESERVED_BITS", 1002, reserved(9));
  });

  it("fails with 1002 on RSV1 when deflate was not negotiated", () => {
    const host = new Host();
    const protocol = new Protocol(host);
    protocol.receive(compressedFrame(1, "Hello"));
    assertFailed(host, protocol, "WS_ERR_RESERVED_BITS", 1002, reserved(1));
  });

  it("fails with 1009 at the header on a compressed frame far over the limit", () => {
    // A compressed message gets max + max/1024 + 64 bytes of room: 1064 for 1000.
    const { protocol, host } = setup(SETUPS[0], 1000);
    protocol.receive(frame(2, pattern(1064, 4), { rsv1: true, fin: false }).subarray(0, 20));
    assert.deepEqual(host.events, []);
    const { protocol: p2, host: h2 } = setup(SETUPS[0], 1000);
    p2.receive(frame(2, pattern(1065, 4), { rsv1: true }).subarray(0, 8));
    assertFailed(h2, p2, "WS_ERR_MESSAGE_TOO_BIG", 1009, "Message too big: more than 1000 bytes");
    protocol.dispose();
    p2.dispose();
  });

  for (const s of SETUPS) {
    describe(`with ${s.name}`, () => {
      it("delivers a message of exactly maxPayloadLength once inflated", async () => {
        await using(s, async (protocol, host) => {
          protocol.receive(compressedFrame(2, new Uint8Array(4096).fill(7)));
          await host.until(() => host.events.length > 0, "the message");
          assert.deepEqual(host.events, [
            { type: "message", data: new Uint8Array(4096).fill(7), isBinary: true },
          ]);
          assert.equal(protocol.readyState, OPEN);
        }, 4096);
      });

      it("fails with 1007 on invalid UTF-8 after inflation", async () => {
        await using(s, async (protocol, host) => {
          // Valid DEFLATE of "κόσμε" then ED A0 80 (a UTF-16 surrogate, never UTF-8).
          protocol.receive(compressedFrame(1, hex("ceba e1bdb9 cf83 cebc ceb5 eda080")));
          await host.until(() => host.closed.length > 0, "the failure");
          assertFailed(host, protocol, "WS_ERR_INVALID_UTF8", 1007, INVALID_UTF8);
        });
      });

      it("fails with 1009 on a bomb: 64 MiB of zeros against a 1 MiB limit", async () => {
        const bomb = compressedFrame(2, new Uint8Array(64 * MiB));
        await using(s, async (protocol, host) => {
          protocol.receive(bomb);
          await host.until(() => host.closed.length > 0, "the failure");
          assertFailed(
            host,
            protocol,
            "WS_ERR_MESSAGE_TOO_BIG",
            1009,
            `Message too big: it inflates to more than ${MiB} bytes`,
          );
        }, MiB);
      });

      it("fails with 1007 on a payload that does not inflate, and decodes nothing after", async () => {
        await using(s, async (protocol, host) => {
          protocol.receive(
            concat(frame(1, hex("ff ff ff ff ff ff"), { rsv1: true }), frame(1, "after")),
          );
          await host.until(() => host.closed.length > 0, "the failure", 1000);
          await settle();
          assertFailed(host, protocol, "WS_ERR_INFLATE", 1007, INFLATE_FAILED);
        });
      });

      it("reads a message ending in a BFINAL block (RFC 7692 §7.2.3.3), then the next", async () => {
        await using(s, async (protocol, host) => {
          protocol.receive(frame(1, hex("f3 48 cd c9 c9 07 00 00"), { rsv1: true }));
          protocol.receive(frame(1, hex("f2 48 cd c9 c9 07 00"), { rsv1: true }));
          await host.until(() => host.events.length >= 2, "two events", 1000);
          await settle();
          if (s.engine === webEngine) {
            // web_engine.ts documents it: DecompressionStream cannot read such a message.
            assertFailed(host, protocol, "WS_ERR_INFLATE", 1007, INFLATE_FAILED);
            return;
          }
          assert.deepEqual(host.events, [
            { type: "message", data: "Hello", isBinary: false },
            { type: "message", data: "Hello", isBinary: false },
          ]);
        });
      });

      it("delivers a compressed message, a plain one and a Close in order, from one chunk", async () => {
        await using(s, async (protocol, host) => {
          const text = "compressed ".repeat(100);
          protocol.receive(
            concat(compressedFrame(1, text), frame(2, hex("01 02")), frame(8, hex("03 e8"))),
          );
          await host.until(() => host.closed.length > 0, "the close");
          assert.deepEqual(host.events, [
            { type: "message", data: text, isBinary: false },
            { type: "message", data: hex("01 02"), isBinary: true },
            { type: "write", opcode: 8, fin: true, rsv1: false, payload: hex("03 e8") },
            { type: "closed", code: 1000, reason: "" },
          ]);
        });
      });

      it("inflates many compressed messages from one chunk, in order", async () => {
        await using(s, async (protocol, host) => {
          const texts = Array.from({ length: 30 }, (_, i) => `message ${i} `.repeat(i * 10));
          protocol.receive(concat(...texts.map((t) => compressedFrame(1, t))));
          await host.until(() => host.messages.length === texts.length, "the messages");
          assert.deepEqual(host.messages, texts);
        });
      });
    });
  }

  it("context takeover: two messages from one client stream both decode", async () => {
    const client = new ClientStream("deflate");
    try {
      const text = JSON.stringify({ hello: "world", list: [1, 2, 3, 4, 5] }).repeat(10);
      const first = await client.message(text);
      const second = await client.message(text);
      // The second refers to the first: it is smaller, and does not inflate alone.
      assert.ok(second.length < first.length / 4, `${second.length} vs ${first.length}`);
      assert.throws(() => inflate(second));
      await using({ engine: zlibEngine, params: DEDICATED }, async (protocol, host) => {
        protocol.receive(frame(1, first, { rsv1: true }));
        protocol.receive(frame(1, second, { rsv1: true }));
        await host.until(() => host.events.length >= 2, "the messages");
        assert.deepEqual(host.events, [
          { type: "message", data: text, isBinary: false },
          { type: "message", data: text, isBinary: false },
        ]);
      });
      // Without takeover the server keeps no window, so the second message cannot be read.
      await using({ engine: zlibEngine, params: SHARED }, (protocol, host) => {
        protocol.receive(frame(1, first, { rsv1: true }));
        protocol.receive(frame(1, second, { rsv1: true }));
        assertFailed(host, protocol, "WS_ERR_INFLATE", 1007, INFLATE_FAILED, [
          { type: "message", data: text, isBinary: false },
        ]);
      });
    } finally {
      client.close();
    }
  });
});

describe("Protocol + permessage-deflate: sending", () => {
  for (const s of SETUPS) {
    describe(`with ${s.name}`, () => {
      it("compresses from the threshold on, and as send() is told", async () => {
        await using(s, async (protocol, host) => {
          const below = pattern(THRESHOLD - 1, 5);
          const at = "x".repeat(THRESHOLD);
          assert.equal(protocol.send(below, false), THRESHOLD - 1);
          assert.equal(protocol.send(at), THRESHOLD);
          assert.equal(protocol.send("tiny", false, true), 4);
          assert.equal(protocol.send(pattern(5000, 6), false, false), 5000);
          assert.equal(protocol.send(pattern(5000, 7), true), 5000);
          await host.until(() => host.writes.length === 5, "five frames");
          const writes = host.writes;
          assert.deepEqual(
            writes.map((w) => [w.opcode, w.fin, w.rsv1]),
            [[2, true, false], [1, true, true], [1, true, true], [2, true, false], [
              2,
              true,
              true,
            ]],
          );
          assert.deepEqual(writes[0].payload, below);
          assert.deepEqual(writes[3].payload, pattern(5000, 6));
          // Under context takeover each payload is read after the previous compressed ones.
          const client = s.params.localNoContextTakeover ? undefined : new ClientStream("inflate");
          try {
            const read = (payload: Uint8Array) =>
              client === undefined ? Promise.resolve(inflate(payload)) : client.message(payload);
            assert.ok(writes[1].payload.length < 100, "1024 x compresses");
            assert.deepEqual(await read(writes[1].payload), utf8(at), "at the threshold");
            assert.deepEqual(await read(writes[2].payload), utf8("tiny"), "forced");
            assert.deepEqual(await read(writes[4].payload), pattern(5000, 7), "bytes");
          } finally {
            client?.close();
          }
          for (const w of writes) {
            assert.notEqual(toHex(w.payload.subarray(-4)), "00 00 ff ff", "the tail is removed");
          }
        });
      });

      it("sends two long texts queued back to back intact (the encode buffer is reused)", async () => {
        await using(s, async (protocol, host) => {
          const a = "a".repeat(2000) + "first";
          const b = "b".repeat(3000) + "second";
          const c = "small";
          protocol.send(a);
          protocol.send(b);
          protocol.send(c);
          const big = "z😀".repeat(20_000); // past the shared encode buffer
          protocol.send(big);
          await host.until(() => host.writes.length === 4, "four frames");
          const client = s.params.localNoContextTakeover ? undefined : new ClientStream("inflate");
          try {
            const read = (payload: Uint8Array) =>
              client === undefined ? Promise.resolve(inflate(payload)) : client.message(payload);
            const [wa, wb, wc, wbig] = host.writes;
            assert.equal(new TextDecoder().decode(await read(wa.payload)), a);
            assert.equal(new TextDecoder().decode(await read(wb.payload)), b);
            assert.deepEqual([wc.rsv1, new TextDecoder().decode(wc.payload)], [false, c]);
            assert.equal(new TextDecoder().decode(await read(wbig.payload)), big);
          } finally {
            client?.close();
          }
        });
      });
    });
  }

  it("dedicated: the second identical message is much smaller; a client stream reads both", async () => {
    const client = new ClientStream("inflate");
    try {
      await using({ engine: zlibEngine, params: DEDICATED }, async (protocol, host) => {
        const text = Buffer.from(pattern(2000, 8)).toString("base64");
        protocol.send(text);
        protocol.send(text);
        await host.until(() => host.writes.length === 2, "two frames");
        const [first, second] = host.writes;
        assert.ok(first.rsv1 && second.rsv1);
        assert.ok(second.payload.length < first.payload.length / 10);
        assert.equal(new TextDecoder().decode(await client.message(first.payload)), text);
        assert.equal(new TextDecoder().decode(await client.message(second.payload)), text);
      });
    } finally {
      client.close();
    }
  });

  for (const s of ASYNC_SETUPS) {
    describe(`with ${s.name} (asynchronous)`, () => {
      it("writes a compressed message, a small one, then the Close frame, in that order", async () => {
        await using(s, async (protocol, host) => {
          const big = pattern(100_000, 9);
          protocol.send(big);
          protocol.send("small");
          protocol.close(1000, "bye");
          // Nothing overtakes the message being compressed.
          assert.equal(host.events.length, 0);
          await host.until(() => host.writes.length === 3, "three frames");
          const [w1, w2, w3] = host.writes;
          assert.deepEqual([w1.opcode, w1.rsv1], [2, true]);
          assert.deepEqual(inflate(w1.payload), big);
          assert.deepEqual(w2, {
            type: "write",
            opcode: 1,
            fin: true,
            rsv1: false,
            payload: utf8("small"),
          });
          assert.deepEqual(w3, {
            type: "write",
            opcode: 8,
            fin: true,
            rsv1: false,
            payload: concat(hex("03 e8"), utf8("bye")),
          });
          assert.equal(host.events.length, 3);
        });
      });

      it("reports onClosed only after the queued frames when the peer's Close comes first", async () => {
        await using(s, async (protocol, host) => {
          const big = pattern(200_000, 10);
          protocol.send(big);
          protocol.send("after");
          protocol.receive(frame(8, hex("03 e8")));
          assert.equal(host.events.length, 0, "nothing before the compression ends");
          assert.equal(protocol.readyState, CLOSED);
          await host.until(() => host.closed.length > 0, "onClosed");
          assert.deepEqual(host.events.map((e) => e.type === "write" ? e.opcode : e.type), [
            2,
            1,
            8,
            "closed",
          ]);
          const [w1, , w3, closed] = host.events;
          assert.ok(w1.type === "write" && w1.rsv1);
          assert.deepEqual(inflate(w1.payload), big);
          assert.ok(w3.type === "write");
          assert.deepEqual(w3.payload, hex("03 e8"));
          assert.deepEqual(closed, { type: "closed", code: 1000, reason: "" });
        });
      });

      it("writes nothing after the Close frame when it fails during a compression", async () => {
        await using(s, async (protocol, host) => {
          protocol.send(pattern(200_000, 11));
          // An unmasked frame: 1002 at once.
          protocol.receive(encodeFrame(1, utf8("x")));
          assertFailed(
            host,
            protocol,
            "WS_ERR_UNMASKED_FRAME",
            1002,
            "Invalid frame: a client frame must be masked",
          );
          await settle(100);
          assert.equal(host.events.length, 2, JSON.stringify(host.events.map((e) => e.type)));
        });
      });
    });
  }
});

describe("Protocol + permessage-deflate: a window the engine cannot keep to", () => {
  it("the web engine, held to a 9-bit window, sends uncompressed and still reads compressed", async () => {
    const params: DeflateParams = { ...SHARED, localMaxWindowBits: 9 };
    await using({ engine: webEngine, params }, async (protocol, host) => {
      const big = "x".repeat(4 * THRESHOLD);
      protocol.send(big);
      protocol.send(big, false, true);
      assert.deepEqual(
        host.writes.map((w) => [w.opcode, w.rsv1, w.payload.length]),
        [[1, false, big.length], [1, false, big.length]],
        "nothing compressed: CompressionStream always uses a 15-bit window",
      );
      protocol.receive(compressedFrame(1, "hello"));
      await host.until(() => host.events.some((e) => e.type === "message"), "the message");
      assert.deepEqual(host.events.find((e) => e.type === "message"), {
        type: "message",
        data: "hello",
        isBinary: false,
      });
    });
  });

  it("the zlib engine keeps to it (its 9-bit window reaches back at most 250 bytes)", async () => {
    const params: DeflateParams = { ...SHARED, localMaxWindowBits: 9 };
    await using({ engine: zlibEngine, params }, (protocol, host) => {
      protocol.send("x".repeat(4 * THRESHOLD));
      assert.equal(host.writes[0].rsv1, true);
    });
  });
});
