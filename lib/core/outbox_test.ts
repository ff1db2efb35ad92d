import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { encodeFrame } from "../protocol/frame_writer.ts";
import { Opcode } from "../protocol/opcode.ts";
import { PreparedMessage } from "../protocol/prepared_message.ts";
import { concat, pattern, sameBytes, toHex } from "../protocol/_test_util.ts";
import { Outbox, ZERO_COPY_THRESHOLD } from "./outbox.ts";
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
