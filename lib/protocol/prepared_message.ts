/**
 * A message framed once for many connections: a broadcast builds one of these and every
 * subscriber writes the same bytes. Compressed forms are made on first need, once per
 * compressor that allows sharing (stateless and synchronous: the same input gives the same
 * bytes for every connection that uses it).
 *
 * @module
 */
import { WebSocketError } from "./errors.ts";
import type { MessageCompressor } from "./extensions/deflate_engine.ts";
import { encodeFrame } from "./frame_writer.ts";
import { Opcode } from "./opcode.ts";

const encoder = new TextEncoder();

/**
 * One data message, framed once (unmasked, as a server sends it) and shared by reference.
 *
 * @example
 * ```ts
 * import { PreparedMessage } from "./prepared_message.ts";
 * const message = new PreparedMessage("hi");
 * console.log(message.frame); // Uint8Array(4) [129, 2, 104, 105]
 * ```
 */
export class PreparedMessage {
  /** `Opcode.Text` or `Opcode.Binary`. */
  readonly opcode: number;
  /** The whole frame: header and payload. Never changed after construction. */
  readonly frame: Uint8Array;
  /** The payload: a view into {@linkcode PreparedMessage.frame}. */
  readonly payload: Uint8Array;
  #compressed: Map<MessageCompressor, Uint8Array | WebSocketError> | undefined;

  /**
   * Frames a message. Bytes are copied into the frame, so the caller may reuse them.
   *
   * @param data A string for a text message, bytes for a binary one.
   */
  constructor(data: string | Uint8Array) {
    const text = typeof data === "string";
    this.opcode = text ? Opcode.Text : Opcode.Binary;
    const bytes = text ? encoder.encode(data) : data;
    this.frame = encodeFrame(this.opcode, bytes);
    this.payload = this.frame.subarray(this.frame.length - bytes.length);
  }

  /**
   * The message compressed by `compressor` and framed with RSV1 set (RFC 7692 §6), made by the
   * first connection that asks and kept for the others.
   *
   * @param compressor A compressor whose `shareable` is true.
   * @returns The frame, or the error compression failed with.
   */
  compressedFrame(compressor: MessageCompressor): Uint8Array | WebSocketError {
    const cache = this.#compressed ??= new Map();
    let frame = cache.get(compressor);
    if (frame !== undefined) return frame;
    compressor.compress(this.payload, (result) => {
      frame = result instanceof WebSocketError
        ? result
        : encodeFrame(this.opcode, result, { rsv1: true });
    });
    if (frame === undefined) {
      // A compressor that says it is shareable answers before compress() returns.
      throw new TypeError("Cannot share a compression: the compressor answered asynchronously");
    }
    cache.set(compressor, frame);
    return frame;
  }
}

/**
 * Where the payload starts in a server frame (no masking key).
 *
 * @param frame A whole frame.
 * @returns 2, 4 or 10.
 */
export function payloadOffset(frame: Uint8Array): number {
  const length = frame[1] & 0x7f;
  return length < 126 ? 2 : length === 126 ? 4 : 10;
}
