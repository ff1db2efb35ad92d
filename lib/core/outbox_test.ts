import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { encodeFrame } from "../protocol/frame_writer.ts";
import { Opcode } from "../protocol/opcode.ts";
import { PreparedMessage } from "../protocol/prepared_message.ts";
import { MaskKeySource } from "../protocol/mask_keys.ts";
import { concat, feed, pattern, sameBytes, toHex } from "../protocol/_test_util.ts";
import fc from "fast-check";
import { Outbox, SIMD_FROM, ZERO_COPY_THRESHOLD } from "./outbox.ts";
import type { Transport } from "./transport.ts";

/** One call of `Transport.write`. */
interface Write {
  /** The chunk as given (for identity checks). */
  chunk: Uint8Array;
  /** Its bytes at the time of the call (the outbox may reuse a reusable chunk's memory). */
  bytes: Uint8Array;
  reusable: boolean;
  partial: boolean | undefined;
}

/** A transport that records its writes and nothing else. */
class FakeTransport implements Transport {
  readonly remoteAddress = "127.0.0.1";
  readonly remotePort = 1;
  readonly bufferedAmount = 0;
  writesLater = false;
  writes: Write[] = [];
  urgent: Uint8Array[] = [];

  write(chunk: Uint8Array, reusable: boolean, partial?: boolean): void {
    this.writes.push({ chunk, bytes: chunk.slice(), reusable, partial });
  }

  writeUrgent(chunk: Uint8Array): void {
    this.urgent.push(chunk);
  }

  end(): void {}
  destroy(): void {}
  pause(): void {}
  resume(): void {}
  watchBelow(): void {}
  setHandler(): void {}

  /** Every byte written so far, in order. */
  get all(): Uint8Array {
    return concat(...this.writes.map((w) => w.bytes));
  }
}

/** An outbox on a fake transport, counting its flushes. */
function setup(
  writesLater = false,
): { outbox: Outbox; transport: FakeTransport; flushes: () => number } {
  const transport = new FakeTransport();
  transport.writesLater = writesLater;
  let flushes = 0;
  const outbox = new Outbox(transport, { outboxFlushed: () => flushes++ });
  return { outbox, transport, flushes: () => flushes };
}

/** Lets the microtask flush run (it was queued before this await). */
const microtasks = () => Promise.resolve();

/** A frame as the outbox writes it for writeFrame(opcode, true, false, payload, …). */
const frameOf = (opcode: number, payload: Uint8Array) => encodeFrame(opcode, payload);

describe("Outbox.writeShared", () => {
  it("a lone small shared frame is written at the flush, as a reusable view of the tick's arena", async () => {
    const { outbox, transport, flushes } = setup();
    const message = new PreparedMessage("hello");
    outbox.writeShared(message.frame);
    assert.equal(transport.writes.length, 0, "corked until the end of the tick");
    assert.equal(outbox.corked, message.frame.length);
    await microtasks();
    assert.equal(transport.writes.length, 1);
    const [write] = transport.writes;
    assert.notEqual(write.chunk.buffer, message.frame.buffer, "copied into the arena");
    assert.equal(toHex(write.bytes), toHex(message.frame));
    assert.equal(write.reusable, true, "the arena is reused next tick");
    assert.ok(write.partial !== true, "a whole frame");
    assert.equal(outbox.corked, 0);
    assert.equal(flushes(), 1);
  });

  it("a lone shared frame in each of two ticks: each written whole, the arena reused", async () => {
    const { outbox, transport } = setup();
    const a = new PreparedMessage("a");
    const b = new PreparedMessage(pattern(1000, 1));
    outbox.writeShared(a.frame);
    await microtasks();
    outbox.writeShared(b.frame);
    await microtasks();
    assert.equal(transport.writes.length, 2);
    assert.equal(toHex(transport.writes[0].bytes), toHex(a.frame));
    assert.equal(toHex(transport.writes[1].bytes), toHex(b.frame));
    assert.equal(transport.writes[0].chunk.buffer, transport.writes[1].chunk.buffer);
  });

  it("the same frames shared by many outboxes: copied once, every outbox writes one view of them", async () => {
    const first = new PreparedMessage(pattern(200, 2));
    const second = new PreparedMessage("second");
    const boxes = Array.from({ length: 50 }, setup);
    for (const { outbox } of boxes) outbox.writeShared(first.frame);
    for (const { outbox } of boxes) outbox.writeShared(second.frame);
    await microtasks();
    const expected = toHex(concat(first.frame, second.frame));
    const buffer = boxes[0].transport.writes[0].chunk.buffer;
    for (const { transport } of boxes) {
      assert.equal(transport.writes.length, 1, "one write per outbox");
      assert.equal(toHex(transport.writes[0].bytes), expected);
      assert.equal(transport.writes[0].chunk.buffer, buffer, "one copy for all");
      assert.equal(transport.writes[0].reusable, true);
    }
  });

  it("outboxes that get different broadcasts in one tick each write theirs, in order", async () => {
    // Two topics: `a` gets both messages, `b` only the second, `c` the first and a frame of its
    // own, `d` the second and then the first (not side by side in the arena).
    const one = new PreparedMessage(pattern(100, 11));
    const two = new PreparedMessage(pattern(300, 12));
    const own = pattern(50, 13);
    const [a, b, c, d] = Array.from({ length: 4 }, setup);
    a.outbox.writeShared(one.frame);
    c.outbox.writeShared(one.frame);
    a.outbox.writeShared(two.frame);
    b.outbox.writeShared(two.frame);
    d.outbox.writeShared(two.frame);
    c.outbox.writeFrame(Opcode.Binary, true, false, own, false);
    d.outbox.writeShared(one.frame);
    await microtasks();
    const written = (box: typeof a) => toHex(box.transport.all);
    assert.equal(written(a), toHex(concat(one.frame, two.frame)));
    assert.equal(written(b), toHex(two.frame));
    assert.equal(written(c), toHex(concat(one.frame, frameOf(Opcode.Binary, own))));
    assert.equal(written(d), toHex(concat(two.frame, one.frame)));
    for (const box of [a, b, c, d]) assert.equal(box.transport.writes.length, 1);
  });

  it("a tick's shared frames past the arena's first size: the arena grows, views stay right", async () => {
    const messages = Array.from({ length: 40 }, (_, i) => new PreparedMessage(pattern(1000, i)));
    const boxes = Array.from({ length: 3 }, setup);
    for (const message of messages) {
      for (const { outbox } of boxes) outbox.writeShared(message.frame);
    }
    await microtasks();
    const expected = toHex(concat(...messages.map((m) => m.frame)));
    for (const { transport } of boxes) {
      assert.equal(transport.writes.length, 1);
      assert.equal(toHex(transport.writes[0].bytes), expected);
    }
  });

  it("shared then writeFrame in one tick: one write, both frames in order", async () => {
    const { outbox, transport, flushes } = setup();
    const shared = new PreparedMessage("shared");
    const own = pattern(300, 3);
    outbox.writeShared(shared.frame);
    outbox.writeFrame(Opcode.Binary, true, false, own, false);
    const expected = concat(shared.frame, frameOf(Opcode.Binary, own));
    assert.equal(outbox.corked, expected.length);
    await microtasks();
    assert.equal(transport.writes.length, 1);
    const [write] = transport.writes;
    assert.notEqual(write.chunk, shared.frame, "copied in with the other frame");
    assert.equal(toHex(write.bytes), toHex(expected));
    assert.equal(write.reusable, true, "the pooled buffer");
    assert.equal(flushes(), 1);
    // The shared frame was only read.
    assert.equal(toHex(shared.frame), toHex(new PreparedMessage("shared").frame));
  });

  it("writeFrame then shared in one tick: one write, both frames in order", async () => {
    const { outbox, transport } = setup();
    const shared = new PreparedMessage(pattern(130, 4));
    outbox.writeFrame(Opcode.Text, true, false, new TextEncoder().encode("first"), false);
    outbox.writeShared(shared.frame);
    const expected = concat(frameOf(Opcode.Text, new TextEncoder().encode("first")), shared.frame);
    assert.equal(outbox.corked, expected.length);
    await microtasks();
    assert.equal(transport.writes.length, 1);
    assert.equal(toHex(transport.writes[0].bytes), toHex(expected));
    assert.equal(transport.writes[0].reusable, true);
  });

  it("two shared frames in one tick: one write, in order", async () => {
    const { outbox, transport } = setup();
    const a = new PreparedMessage("one");
    const b = new PreparedMessage("two");
    outbox.writeShared(a.frame);
    outbox.writeShared(b.frame);
    outbox.writeShared(a.frame);
    await microtasks();
    assert.equal(transport.writes.length, 1);
    assert.equal(toHex(transport.writes[0].bytes), toHex(concat(a.frame, b.frame, a.frame)));
  });

  it("a shared frame of 16 KiB or more after a small frame: two writes, the big one by reference", async () => {
    const { outbox, transport } = setup();
    const big = new PreparedMessage(pattern(ZERO_COPY_THRESHOLD, 5));
    assert.ok(big.frame.length >= ZERO_COPY_THRESHOLD);
    const small = pattern(10, 6);
    outbox.writeFrame(Opcode.Binary, true, false, small, false);
    outbox.writeShared(big.frame);
    assert.equal(outbox.corked, 12 + big.frame.length);
    await microtasks();
    assert.equal(transport.writes.length, 2);
    const [first, second] = transport.writes;
    assert.equal(toHex(first.bytes), toHex(frameOf(Opcode.Binary, small)));
    assert.equal(first.reusable, true);
    assert.ok(first.partial !== true);
    assert.equal(second.chunk, big.frame, "by reference");
    assert.equal(second.reusable, false);
    assert.ok(second.partial !== true);
  });

  it("a big shared frame alone, then a small frame: two writes in order, the big one by reference", async () => {
    const { outbox, transport } = setup();
    const big = new PreparedMessage(pattern(20_000, 7));
    const small = new TextEncoder().encode("after");
    outbox.writeShared(big.frame);
    outbox.writeFrame(Opcode.Text, true, false, small, false);
    await microtasks();
    assert.equal(transport.writes.length, 2);
    assert.equal(transport.writes[0].chunk, big.frame);
    assert.equal(transport.writes[0].reusable, false);
    assert.equal(toHex(transport.writes[1].bytes), toHex(frameOf(Opcode.Text, small)));
    assert.equal(transport.writes[1].reusable, true);
  });

  it("small, big shared, small: three writes in order", async () => {
    const { outbox, transport } = setup();
    const big = new PreparedMessage(pattern(40_000, 8));
    const a = pattern(50, 9);
    const b = pattern(60, 10);
    outbox.writeFrame(Opcode.Binary, true, false, a, false);
    outbox.writeShared(big.frame);
    outbox.writeFrame(Opcode.Binary, true, false, b, false);
    await microtasks();
    assert.equal(transport.writes.length, 3);
    assert.equal(transport.writes[1].chunk, big.frame);
    assert.ok(
      sameBytes(
        transport.all,
        concat(frameOf(Opcode.Binary, a), big.frame, frameOf(Opcode.Binary, b)),
      ),
    );
  });

  it("a lone shared frame, then an owned payload of 16 KiB (a transport that writes later): the header stays with the shared frame", async () => {
    const { outbox, transport } = setup(true);
    const shared = new PreparedMessage("x");
    const payload = pattern(ZERO_COPY_THRESHOLD, 11);
    outbox.writeShared(shared.frame);
    outbox.writeFrame(Opcode.Binary, true, false, payload, true);
    await microtasks();
    assert.equal(transport.writes.length, 2);
    const [head, body] = transport.writes;
    assert.equal(
      toHex(head.bytes),
      toHex(
        concat(shared.frame, frameOf(Opcode.Binary, payload))
          .subarray(0, shared.frame.length + 4),
      ),
    );
    assert.equal(head.partial, true, "ends inside the payload's frame");
    assert.equal(body.chunk, payload, "the owned payload by reference");
    assert.equal(body.reusable, false);
  });

  it("an owned payload of 64 KiB (a transport that writes in the call): copied behind its header, one write", async () => {
    const { outbox, transport } = setup(false);
    const payload = pattern(64 * 1024, 12);
    outbox.writeFrame(Opcode.Binary, true, false, payload, true);
    await microtasks();
    assert.equal(transport.writes.length, 1);
    assert.notEqual(transport.writes[0].chunk.buffer, payload.buffer, "copied");
    assert.equal(toHex(transport.writes[0].bytes), toHex(frameOf(Opcode.Binary, payload)));
  });

  it("large copied payloads at any offset in their buffer come out whole and in order", async () => {
    const { outbox, transport } = setup(false);
    const backing = pattern(40 * 1024, 14);
    const first = backing.subarray(3, 3 + 8 * 1024);
    const second = backing.subarray(8 * 1024 + 5, 8 * 1024 + 5 + 20 * 1024);
    outbox.writeFrame(Opcode.Binary, true, false, first, false);
    outbox.writeFrame(Opcode.Text, true, false, second, false);
    await microtasks();
    assert.equal(
      toHex(transport.all),
      toHex(concat(frameOf(Opcode.Binary, first), frameOf(Opcode.Text, second))),
    );
  });

  it("an owned payload over 64 KiB (a transport that writes in the call): by reference, after its header", async () => {
    const { outbox, transport } = setup(false);
    const payload = pattern(64 * 1024 + 100, 13);
    outbox.writeFrame(Opcode.Binary, true, false, payload, true);
    await microtasks();
    assert.equal(transport.writes.length, 2);
    assert.equal(transport.writes[1].chunk, payload, "by reference");
    assert.equal(transport.writes[0].partial, true);
    assert.equal(toHex(transport.all), toHex(frameOf(Opcode.Binary, payload)));
  });

  it("shared frames between 4 and 16 KiB fill more than one buffer: the bytes stay in order", async () => {
    const { outbox, transport } = setup();
    const frames = [3000, 9000, 12000, 100, 15000].map((n, i) =>
      new PreparedMessage(pattern(n, 20 + i)).frame
    );
    let corked = 0;
    for (const frame of frames) {
      outbox.writeShared(frame);
      corked += frame.length;
      assert.equal(outbox.corked, corked);
    }
    await microtasks();
    assert.ok(sameBytes(transport.all, concat(...frames)), "every byte, in order");
    for (const write of transport.writes) {
      assert.ok(!frames.includes(write.chunk), "frames under 16 KiB with company are copied");
    }
  });

  it("the pooled buffer is reused after a flush without changing what was written", async () => {
    // The fake transport keeps a copy of reusable chunks, as a real one must; check the copies.
    const { outbox, transport } = setup();
    const expected: Uint8Array[] = [];
    for (let round = 0; round < 5; round++) {
      const shared = new PreparedMessage(pattern(100, round));
      const own = pattern(100, 100 + round);
      outbox.writeShared(shared.frame);
      outbox.writeFrame(Opcode.Binary, true, false, own, false);
      expected.push(concat(shared.frame, frameOf(Opcode.Binary, own)));
      await microtasks();
    }
    assert.equal(transport.writes.length, 5);
    for (let i = 0; i < 5; i++) {
      assert.equal(toHex(transport.writes[i].bytes), toHex(expected[i]), `round ${i}`);
    }
  });

  it("flush() now writes a lone frame once; the microtask flush then has nothing", async () => {
    const { outbox, transport, flushes } = setup();
    const message = new PreparedMessage("now");
    outbox.writeShared(message.frame);
    outbox.flush();
    assert.equal(transport.writes.length, 1);
    assert.equal(toHex(transport.writes[0].bytes), toHex(message.frame));
    await microtasks();
    assert.equal(transport.writes.length, 1);
    assert.equal(flushes(), 1);
  });

  it("discard() drops a lone frame", async () => {
    const { outbox, transport, flushes } = setup();
    outbox.writeShared(new PreparedMessage("gone").frame);
    outbox.discard();
    assert.equal(outbox.corked, 0);
    await microtasks();
    assert.equal(transport.writes.length, 0);
    assert.equal(flushes(), 0);
    // The outbox still works afterwards.
    const next = new PreparedMessage("next");
    outbox.writeShared(next.frame);
    await microtasks();
    assert.equal(transport.writes.length, 1);
    assert.equal(toHex(transport.writes[0].bytes), toHex(next.frame));
  });

  it("discard() drops a shared frame with company, and a big one", async () => {
    const { outbox, transport } = setup();
    outbox.writeFrame(Opcode.Text, true, false, new TextEncoder().encode("a"), false);
    outbox.writeShared(new PreparedMessage("b").frame);
    outbox.writeShared(new PreparedMessage(pattern(20_000, 1)).frame);
    outbox.discard();
    await microtasks();
    assert.equal(transport.writes.length, 0);
    // Nothing left over leaks into the next tick.
    const next = new PreparedMessage("c");
    outbox.writeShared(next.frame);
    await microtasks();
    assert.equal(transport.writes.length, 1);
    assert.equal(toHex(transport.writes[0].bytes), toHex(next.frame));
  });

  it("corked counts the bytes of every frame until the flush", async () => {
    const { outbox } = setup();
    assert.equal(outbox.corked, 0);
    const a = new PreparedMessage(pattern(126, 1)); // 4-byte header
    outbox.writeShared(a.frame);
    assert.equal(outbox.corked, 130);
    outbox.writeFrame(Opcode.Binary, true, false, pattern(10, 2), false);
    assert.equal(outbox.corked, 130 + 12);
    const b = new PreparedMessage(pattern(70_000, 3)); // 10-byte header
    outbox.writeShared(b.frame);
    assert.equal(outbox.corked, 130 + 12 + 70_010);
    await microtasks();
    assert.equal(outbox.corked, 0);
  });
});

describe("Outbox.writeBytes", () => {
  it("raw bytes and the frames corked behind them leave in one write, in order", async () => {
    const { outbox, transport, flushes } = setup();
    const head = new TextEncoder().encode("HTTP/1.1 101 Switching Protocols\r\n\r\n");
    outbox.writeBytes(head);
    head.fill(0); // Copied: the caller may reuse its bytes.
    const payload = new TextEncoder().encode("hi");
    outbox.writeFrame(Opcode.Text, true, false, payload, false);
    const shared = new PreparedMessage("all");
    outbox.writeShared(shared.frame);
    assert.equal(outbox.corked, 36 + 4 + shared.frame.length);
    assert.equal(transport.writes.length, 0, "corked until the end of the tick");
    await microtasks();
    assert.equal(transport.writes.length, 1);
    assert.equal(
      toHex(transport.all),
      toHex(
        concat(
          new TextEncoder().encode("HTTP/1.1 101 Switching Protocols\r\n\r\n"),
          frameOf(Opcode.Text, payload),
          shared.frame,
        ),
      ),
    );
    assert.equal(flushes(), 1);
    assert.equal(outbox.written, 36 + 4 + shared.frame.length);
  });

  it("bytes behind a lone shared frame keep their place after it", async () => {
    const { outbox, transport } = setup();
    const large = new PreparedMessage(pattern(ZERO_COPY_THRESHOLD, 4));
    outbox.writeShared(large.frame);
    const bytes = pattern(100, 5);
    outbox.writeBytes(bytes);
    await microtasks();
    assert.ok(sameBytes(transport.all, concat(large.frame, bytes)));
  });
});

describe("Outbox flush failures", () => {
  it("a transport that throws does not stop the other outboxes' flush, nor later ticks'", async () => {
    const bad = setup();
    bad.transport.write = () => {
      throw new Error("broken transport");
    };
    const good = setup();
    const errors: unknown[] = [];
    const original = console.error;
    console.error = (...args: unknown[]) => errors.push(args);
    try {
      bad.outbox.writeFrame(Opcode.Text, true, false, new TextEncoder().encode("a"), false);
      good.outbox.writeFrame(Opcode.Text, true, false, new TextEncoder().encode("b"), false);
      await microtasks();
      assert.equal(good.transport.writes.length, 1, "flushed despite the failure before it");
      assert.equal(errors.length, 1);
      good.outbox.writeFrame(Opcode.Text, true, false, new TextEncoder().encode("c"), false);
      await microtasks();
      assert.equal(good.transport.writes.length, 2, "the next tick flushes too");
    } finally {
      console.error = original;
    }
  });
});

describe("Outbox of a client (masked frames)", () => {
  /** A client's outbox (every frame masked) on a fake transport. */
  function client(writesLater = false): { outbox: Outbox; transport: FakeTransport } {
    const transport = new FakeTransport();
    transport.writesLater = writesLater;
    return { outbox: new Outbox(transport, undefined, new MaskKeySource()), transport };
  }

  /** The payloads of the frames in `bytes`, unmasked (each must be masked, as a server requires). */
  function payloads(bytes: Uint8Array): Uint8Array[] {
    const sink = feed(bytes, [], { requireMask: true });
    return sink.events.map((event) => {
      if (event.type !== "frame") assert.fail(`not a frame: ${JSON.stringify(event)}`);
      return event.payload;
    });
  }

  /** Where each frame of a stream of masked frames ends. */
  function frameEnds(bytes: Uint8Array): Set<number> {
    const ends = new Set<number>();
    for (let at = 0; at < bytes.length;) {
      const b1 = bytes[at + 1] & 0x7f;
      const extra = b1 === 126 ? 2 : b1 === 127 ? 8 : 0;
      const length = b1 === 126
        ? (bytes[at + 2] << 8) | bytes[at + 3]
        : b1 === 127
        ? new DataView(bytes.buffer, bytes.byteOffset + at + 2, 8).getUint32(4)
        : b1;
      at += 2 + extra + 4 + length;
      ends.add(at);
    }
    return ends;
  }

  /** Checks that every write not marked partial ends where a frame ends. */
  function assertBoundaries(transport: FakeTransport): void {
    const ends = frameEnds(transport.all);
    let at = 0;
    for (const write of transport.writes) {
      at += write.bytes.length;
      if (write.partial !== true) {
        assert.ok(ends.has(at), `a write not marked partial ends at ${at}`);
      }
    }
  }

  it("large frames corked in one tick leave in one reusable write, masked, the sources unchanged", async () => {
    const { outbox, transport } = client();
    const sent = [pattern(SIMD_FROM, 1), pattern(5000, 2), pattern(65536, 3)];
    const copies = sent.map((payload) => payload.slice());
    for (const payload of sent) outbox.writeFrame(Opcode.Binary, true, false, payload, false);
    assert.equal(outbox.corked, 8 + SIMD_FROM + 8 + 5000 + 14 + 65536, "headers and payloads");
    await microtasks();
    assert.equal(transport.writes.length, 1, "one run of the SIMD memory");
    assert.equal(transport.writes[0].reusable, true);
    assert.ok(transport.writes[0].partial !== true);
    const got = payloads(transport.all);
    assert.equal(got.length, 3);
    for (let i = 0; i < 3; i++) {
      assert.ok(sameBytes(got[i], copies[i]), `payload ${i}`);
      assert.ok(sameBytes(sent[i], copies[i]), `source ${i} unchanged`);
    }
    assert.ok(!sameBytes(transport.all.subarray(14), copies[0].subarray(0, 100)), "masked");
  });

  it("a transport that writes later gets the run in reusable pieces of at most 64 KiB", async () => {
    const { outbox, transport } = client(true);
    const sent = [pattern(65536, 4), pattern(100_000, 5), pattern(3000, 6)];
    for (const payload of sent) outbox.writeFrame(Opcode.Binary, true, false, payload, false);
    await microtasks();
    assert.ok(transport.writes.length >= 3);
    for (const write of transport.writes) {
      assert.ok(write.chunk.length <= 65536, `a piece of ${write.chunk.length} bytes`);
      assert.equal(write.reusable, true);
    }
    assert.equal(transport.writes.at(-1)!.partial, false, "the run ends with a frame");
    assertBoundaries(transport);
    const got = payloads(transport.all);
    assert.equal(got.length, 3);
    for (let i = 0; i < 3; i++) assert.ok(sameBytes(got[i], sent[i]), `payload ${i}`);
  });

  it("more than the SIMD memory holds in one tick: every frame still goes out, in order", async () => {
    for (const writesLater of [false, true]) {
      const { outbox, transport } = client(writesLater);
      const sent = Array.from({ length: 40 }, (_, i) => pattern(65536 + i, i));
      for (let tick = 0; tick < 2; tick++) {
        transport.writes.length = 0;
        for (const payload of sent) outbox.writeFrame(Opcode.Binary, true, false, payload, false);
        await microtasks();
        assertBoundaries(transport);
        const got = payloads(transport.all);
        assert.equal(got.length, sent.length);
        for (let i = 0; i < sent.length; i++) {
          assert.ok(sameBytes(got[i], sent[i]), `tick ${tick}, payload ${i} (${writesLater})`);
        }
      }
    }
  });

  it("small and large frames of three clients, in any mix and alignment, come out whole and in order", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.boolean(),
        fc.array(
          fc.array(
            fc.record({
              length: fc.oneof(fc.nat({ max: 300 }), fc.integer({ min: 300, max: 70_000 })),
              byteOffset: fc.nat({ max: 4100 }),
              opcode: fc.constantFrom(Opcode.Binary, Opcode.Text, Opcode.Ping),
              who: fc.nat({ max: 2 }),
            }),
            { minLength: 1, maxLength: 8 },
          ),
          { minLength: 1, maxLength: 3 },
        ),
        async (writesLater, ticks) => {
          const clients = [client(writesLater), client(writesLater), client(writesLater)];
          const expected: Uint8Array[][] = [[], [], []];
          for (const tick of ticks) {
            for (const { length, byteOffset, opcode, who } of tick) {
              // Control frames carry at most 125 bytes (RFC 6455 §5.5).
              const size = opcode === Opcode.Ping ? Math.min(length, 125) : length;
              const payload = pattern(byteOffset + size, size + who).subarray(byteOffset);
              expected[who].push(payload.slice());
              clients[who].outbox.writeFrame(opcode, true, false, payload, false);
            }
            await microtasks();
          }
          for (let who = 0; who < 3; who++) {
            const { transport } = clients[who];
            assertBoundaries(transport);
            const got = payloads(transport.all);
            assert.equal(got.length, expected[who].length);
            for (let i = 0; i < got.length; i++) {
              assert.ok(sameBytes(got[i], expected[who][i]), `client ${who}, frame ${i}`);
            }
          }
        },
      ),
      { numRuns: 60 },
    );
  });

  it("discard() drops a run of large frames; the next tick's frames are whole", async () => {
    const { outbox, transport } = client();
    outbox.writeFrame(Opcode.Binary, true, false, pattern(20_000, 1), false);
    outbox.writeFrame(Opcode.Binary, true, false, pattern(30_000, 2), false);
    outbox.discard();
    assert.equal(outbox.corked, 0);
    await microtasks();
    assert.equal(transport.writes.length, 0);
    const next = pattern(40_000, 3);
    outbox.writeFrame(Opcode.Binary, true, false, next, false);
    await microtasks();
    const got = payloads(transport.all);
    assert.equal(got.length, 1);
    assert.ok(sameBytes(got[0], next));
  });

  it("small frames before and after a large one in a tick go with it, in one write", async () => {
    const { outbox, transport } = client();
    const sent = [pattern(30, 1), pattern(40, 2), pattern(2000, 3), pattern(10, 4), pattern(0, 5)];
    for (const payload of sent) outbox.writeFrame(Opcode.Binary, true, false, payload, false);
    await microtasks();
    assert.equal(transport.writes.length, 1);
    const got = payloads(transport.all);
    assert.deepEqual(got.map((p) => p.length), [30, 40, 2000, 10, 0]);
    for (let i = 0; i < sent.length; i++) assert.ok(sameBytes(got[i], sent[i]), `payload ${i}`);
  });

  it("two clients corking in turn in one tick: each writes its own frames, a short run in one write", async () => {
    const a = client();
    const b = client();
    const sent = [pattern(9000, 1), pattern(9001, 2), pattern(30, 3), pattern(9003, 4)];
    a.outbox.writeFrame(Opcode.Binary, true, false, sent[0], false);
    b.outbox.writeFrame(Opcode.Binary, true, false, sent[1], false);
    a.outbox.writeFrame(Opcode.Binary, true, false, sent[2], false);
    b.outbox.writeFrame(Opcode.Binary, true, false, sent[3], false);
    await microtasks();
    assert.equal(a.transport.writes.length, 1, "a's run moved behind b's frame");
    const gotA = payloads(a.transport.all);
    const gotB = payloads(b.transport.all);
    assert.deepEqual(gotA.map((p) => p.length), [9000, 30]);
    assert.deepEqual(gotB.map((p) => p.length), [9001, 9003]);
    assert.ok(sameBytes(gotA[0], sent[0]) && sameBytes(gotA[1], sent[2]));
    assert.ok(sameBytes(gotB[0], sent[1]) && sameBytes(gotB[1], sent[3]));
  });

  it("a long run that others followed stays where it is; what comes next is written after it", async () => {
    const a = client();
    const b = client();
    const sent = [pattern(20_000, 1), pattern(20_001, 2), pattern(30, 3), pattern(5000, 4)];
    a.outbox.writeFrame(Opcode.Binary, true, false, sent[0], false);
    b.outbox.writeFrame(Opcode.Binary, true, false, sent[1], false);
    a.outbox.writeFrame(Opcode.Binary, true, false, sent[2], false);
    a.outbox.writeFrame(Opcode.Binary, true, false, sent[3], false);
    await microtasks();
    assertBoundaries(a.transport);
    const got = payloads(a.transport.all);
    assert.deepEqual(got.map((p) => p.length), [20_000, 30, 5000]);
    for (const [i, j] of [[0, 0], [1, 2], [2, 3]]) assert.ok(sameBytes(got[i], sent[j]));
  });
});
