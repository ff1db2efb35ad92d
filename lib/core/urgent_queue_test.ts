import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { encodeFrame } from "../protocol/frame_writer.ts";
import { Opcode } from "../protocol/opcode.ts";
import { UrgentQueue } from "./urgent_queue.ts";

const ping = (n: number) => encodeFrame(Opcode.Ping, new Uint8Array([n]));
const pong = (n: number) => encodeFrame(Opcode.Pong, new Uint8Array([n]));

/** Takes every frame, whole, in order. */
function takeAll(queue: UrgentQueue): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let frame = queue.peek(); frame !== undefined; frame = queue.peek()) {
    assert.equal(queue.consume(frame.length), true);
    out.push(frame);
  }
  return out;
}

describe("UrgentQueue", () => {
  it("gives frames back in the order they were pushed, and counts their bytes", () => {
    const queue = new UrgentQueue();
    const frames = [ping(1), ping(2), encodeFrame(Opcode.Close, new Uint8Array(0)), ping(3)];
    for (const frame of frames) assert.equal(queue.push(frame), frame.length);
    assert.equal(queue.length, 4);
    assert.equal(queue.bytes, 3 + 3 + 2 + 3);
    assert.deepEqual(takeAll(queue), frames);
    assert.equal(queue.length, 0);
    assert.equal(queue.bytes, 0);
    assert.equal(queue.peek(), undefined);
  });

  it("a pong replaces the pong still waiting, in its place (RFC 6455 §5.5.3)", () => {
    const queue = new UrgentQueue();
    queue.push(ping(1));
    queue.push(pong(1));
    queue.push(ping(2));
    assert.equal(queue.push(pong(2)), 0, "same size: no more bytes wait");
    assert.equal(queue.push(encodeFrame(Opcode.Pong, new Uint8Array(5))), 4);
    assert.equal(queue.length, 3);
    assert.deepEqual(takeAll(queue), [
      ping(1),
      encodeFrame(Opcode.Pong, new Uint8Array(5)),
      ping(2),
    ]);
  });

  it("a pong taken (handed to the socket) is not replaced: the next one waits behind", () => {
    const queue = new UrgentQueue();
    queue.push(pong(1));
    queue.push(ping(9));
    assert.equal(queue.consume(queue.peek()!.length), true);
    queue.push(pong(2));
    queue.push(pong(3));
    assert.deepEqual(takeAll(queue), [ping(9), pong(3)]);
  });

  it("a frame partly written is finished first and never replaced", () => {
    const queue = new UrgentQueue();
    const first = encodeFrame(Opcode.Pong, new Uint8Array([1, 2, 3, 4]));
    queue.push(first);
    assert.equal(queue.consume(0), false);
    assert.equal(queue.started, false, "nothing was written");
    assert.equal(queue.consume(2), false);
    assert.equal(queue.started, true);
    assert.equal(queue.bytes, first.length - 2);
    queue.push(pong(7));
    assert.deepEqual(queue.peek(), first.subarray(2));
    assert.equal(queue.consume(1), false);
    assert.deepEqual(queue.peek(), first.subarray(3));
    assert.equal(queue.consume(first.length - 3), true);
    assert.equal(queue.started, false);
    assert.deepEqual(takeAll(queue), [pong(7)]);
  });

  it("stays in order across compactions, the waiting pong included", () => {
    const queue = new UrgentQueue();
    const taken: number[] = [];
    let next = 0;
    // Push three, take two, many times: the taken part grows past the compaction point.
    for (let round = 0; round < 200; round++) {
      for (let i = 0; i < 3; i++) queue.push(ping(next++ & 0xff));
      for (let i = 0; i < 2; i++) {
        const frame = queue.peek()!;
        queue.consume(frame.length);
        taken.push(frame[2]);
      }
    }
    queue.push(pong(1));
    queue.push(pong(2));
    for (const frame of takeAll(queue)) taken.push(frame[0] === 0x8a ? -frame[2] : frame[2]);
    const expected = Array.from({ length: 600 }, (_, i) => i & 0xff);
    assert.deepEqual(taken, [...expected, -2]);
  });

  it("clear() drops everything", () => {
    const queue = new UrgentQueue();
    queue.push(ping(1));
    queue.push(pong(1));
    queue.consume(1);
    queue.clear();
    assert.equal(queue.length, 0);
    assert.equal(queue.bytes, 0);
    assert.equal(queue.started, false);
    queue.push(pong(2));
    assert.deepEqual(takeAll(queue), [pong(2)]);
  });
});
