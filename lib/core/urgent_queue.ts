/**
 * The urgent frames (pings, pongs) a transport holds while data is queued ahead of them: in
 * the order they were given, each added and taken at O(1) amortised cost. Both runtime
 * adapters keep one, and hand its frames to the socket at the first frame boundary of what
 * they are writing.
 *
 * @module
 */

/** The first byte of an unfragmented Pong frame (FIN and opcode 0xA, RFC 6455 §5.2). */
const PONG = 0x8a;
/** A queue whose taken part reaches this many slots is compacted when half of it is taken. */
const COMPACT_FROM = 64;

/**
 * Whole control frames waiting for a frame boundary, first in, first out. A Pong still
 * waiting is replaced by a later Pong (RFC 6455 §5.5.3: a Pong for the most recent Ping
 * answers a burst of them), so the queue holds at most one Pong, and a Ping flood costs it
 * nothing but the replacement. A frame whose first bytes went to the socket is never replaced.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { UrgentQueue } from "./urgent_queue.ts";
 * const queue = new UrgentQueue();
 * queue.push(new Uint8Array([0x89, 0x00])); // a Ping
 * queue.push(new Uint8Array([0x8a, 0x01, 1])); // a Pong
 * queue.push(new Uint8Array([0x8a, 0x01, 2])); // a later Pong replaces it
 * assert.equal(queue.length, 2);
 * assert.deepEqual([...queue.peek()!], [0x89, 0x00]);
 * queue.consume(2);
 * assert.deepEqual([...queue.peek()!], [0x8a, 0x01, 2]);
 * ```
 */
export class UrgentQueue {
  #frames: Uint8Array[] = [];
  /** Where the next frame to take is in `#frames`. */
  #head = 0;
  /** Where a Pong that may still be replaced is in `#frames`; −1: none. */
  #pong = -1;
  /** The head frame is partly written: it must be finished before anything else. */
  #started = false;
  #bytes = 0;

  /** How many frames wait (a partly written one included). */
  get length(): number {
    return this.#frames.length - this.#head;
  }

  /** How many bytes wait. */
  get bytes(): number {
    return this.#bytes;
  }

  /** Whether the head frame is partly written: the socket must get its rest next. */
  get started(): boolean {
    return this.#started;
  }

  /**
   * Adds a whole frame behind those waiting; a Pong replaces a Pong still waiting whole.
   *
   * @param frame One whole frame; the queue keeps a reference.
   * @returns How many bytes more now wait (less than `frame.length` if it replaced one).
   */
  push(frame: Uint8Array): number {
    const frames = this.#frames;
    let added = frame.length;
    if (frame[0] === PONG) {
      const at = this.#pong;
      if (at !== -1) {
        added -= frames[at].length;
        frames[at] = frame;
        this.#bytes += added;
        return added;
      }
      this.#pong = frames.length;
    }
    frames.push(frame);
    this.#bytes += added;
    return added;
  }

  /** The next bytes to write: the head frame, or the rest of it. */
  peek(): Uint8Array | undefined {
    return this.length === 0 ? undefined : this.#frames[this.#head];
  }

  /**
   * Takes `count` bytes of the head frame, which the socket took.
   *
   * @param count At most the head's length.
   * @returns Whether the head frame is done (taken whole, or its rest now).
   */
  consume(count: number): boolean {
    if (count <= 0) return false;
    const frames = this.#frames;
    const head = this.#head;
    const frame = frames[head];
    this.#bytes -= count;
    if (count < frame.length) {
      frames[head] = frame.subarray(count);
      this.#started = true;
      if (this.#pong === head) this.#pong = -1;
      return false;
    }
    this.#started = false;
    if (this.#pong === head) this.#pong = -1;
    if (head + 1 === frames.length) {
      frames.length = 0;
      this.#head = 0;
      return true;
    }
    frames[head] = EMPTY;
    this.#head = head + 1;
    if (head + 1 >= COMPACT_FROM && (head + 1) * 2 >= frames.length) {
      frames.splice(0, head + 1);
      if (this.#pong !== -1) this.#pong -= head + 1;
      this.#head = 0;
    }
    return true;
  }

  /** Drops every frame (the connection is gone). */
  clear(): void {
    this.#frames.length = 0;
    this.#head = 0;
    this.#pong = -1;
    this.#started = false;
    this.#bytes = 0;
  }
}

const EMPTY = new Uint8Array(0);
