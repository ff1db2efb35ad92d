/**
 * Frame headers written into caller buffers (RFC 6455 §5.2). Pure: no sockets, no queues.
 *
 * @module
 */
import { maskInto } from "./mask.ts";

/** The largest header: 2 bytes, 8 of extended length, 4 of masking key. */
export const MAX_HEADER_SIZE = 14;

/**
 * How many header bytes a frame with `length` bytes of payload needs.
 *
 * @param length The payload length.
 * @param masked Whether the frame carries a masking key (client to server).
 * @returns 2 to 14.
 *
 * @example
 * ```ts
 * import { headerSize } from "./frame_writer.ts";
 * console.log(headerSize(125, false), headerSize(126, false), headerSize(65536, true)); // 2 4 14
 * ```
 */
export function headerSize(length: number, masked: boolean): number {
  const base = length < 126 ? 2 : length < 65536 ? 4 : 10;
  return masked ? base + 4 : base;
}

/**
 * Writes a frame header at `offset` in `target`, using the minimal length encoding
 * (RFC 6455 §5.2).
 *
 * @param target Where to write; needs `headerSize(length, mask !== undefined)` bytes at `offset`.
 * @param offset Where the header starts.
 * @param opcode The opcode (0–15).
 * @param length The payload length: an integer from 0 to 2^53 − 1.
 * @param fin Whether this is the message's last frame.
 * @param rsv1 The RSV1 bit (permessage-deflate marks a compressed message's first frame).
 * @param mask The masking key to write, for frames a client sends.
 * @returns The offset just past the header.
 *
 * @example
 * ```ts
 * import { writeHeader } from "./frame_writer.ts";
 * const header = new Uint8Array(14);
 * const end = writeHeader(header, 0, 0x1, 5, true, false);
 * console.log(header.subarray(0, end)); // Uint8Array(2) [129, 5]
 * ```
 */
export function writeHeader(
  target: Uint8Array,
  offset: number,
  opcode: number,
  length: number,
  fin: boolean,
  rsv1: boolean,
  mask?: Uint8Array,
): number {
  target[offset] = (fin ? 0x80 : 0) | (rsv1 ? 0x40 : 0) | opcode;
  const maskBit = mask === undefined ? 0 : 0x80;
  let i = offset + 2;
  if (length < 126) {
    target[offset + 1] = maskBit | length;
  } else if (length < 65536) {
    target[offset + 1] = maskBit | 126;
    target[offset + 2] = length >>> 8;
    target[offset + 3] = length & 0xff;
    i = offset + 4;
  } else {
    target[offset + 1] = maskBit | 127;
    const high = Math.floor(length / 0x100000000);
    const low = length >>> 0;
    target[offset + 2] = high >>> 24;
    target[offset + 3] = (high >>> 16) & 0xff;
    target[offset + 4] = (high >>> 8) & 0xff;
    target[offset + 5] = high & 0xff;
    target[offset + 6] = low >>> 24;
    target[offset + 7] = (low >>> 16) & 0xff;
    target[offset + 8] = (low >>> 8) & 0xff;
    target[offset + 9] = low & 0xff;
    i = offset + 10;
  }
  if (mask !== undefined) {
    target[i] = mask[0];
    target[i + 1] = mask[1];
    target[i + 2] = mask[2];
    target[i + 3] = mask[3];
    i += 4;
  }
  return i;
}

/**
 * Writes a frame's payload at `offset` in `target`, right after its header: copied as is, or
 * masked with the key a client's frame carries (RFC 6455 §5.3). The caller's payload is left
 * unchanged either way.
 *
 * @param target Where to write; needs `payload.length` bytes at `offset`.
 * @param offset Where the payload starts: the offset {@linkcode writeHeader} returned.
 * @param payload The payload.
 * @param mask The masking key the header carries, for frames a client sends.
 * @returns The offset just past the payload.
 *
 * @example
 * ```ts
 * import { headerSize, writeHeader, writePayload } from "./frame_writer.ts";
 * const payload = new TextEncoder().encode("Hello");
 * const mask = Uint8Array.of(0x37, 0xfa, 0x21, 0x3d);
 * const frame = new Uint8Array(headerSize(payload.length, true) + payload.length);
 * const start = writeHeader(frame, 0, 0x1, payload.length, true, false, mask);
 * writePayload(frame, start, payload, mask);
 * console.log(frame); // the RFC 6455 §5.7 masked "Hello":
 * // Uint8Array(11) [129, 133, 55, 250, 33, 61, 127, 159, 77, 81, 88]
 * ```
 */
export function writePayload(
  target: Uint8Array,
  offset: number,
  payload: Uint8Array,
  mask?: Uint8Array,
): number {
  if (mask !== undefined) return maskInto(payload, mask, target, offset);
  target.set(payload, offset);
  return offset + payload.length;
}

/** How {@linkcode encodeFrame} builds a frame. */
export interface EncodeFrameOptions {
  /** The FIN bit. @default {true} */
  fin?: boolean;
  /** The RSV1 bit. @default {false} */
  rsv1?: boolean;
  /** A 4-byte masking key: the frame is masked as a client's must be. @default {undefined} */
  mask?: Uint8Array;
}

/**
 * Builds one whole frame in a new buffer: header and payload (masked if a key is given; the
 * caller's payload is left unchanged).
 *
 * @param opcode The opcode.
 * @param payload The payload.
 * @param options FIN, RSV1 and the masking key.
 * @returns The frame's bytes.
 *
 * @example
 * ```ts
 * import { encodeFrame } from "./frame_writer.ts";
 * const frame = encodeFrame(0x9, new Uint8Array(0));
 * console.log(frame); // Uint8Array(2) [137, 0]
 * ```
 */
export function encodeFrame(
  opcode: number,
  payload: Uint8Array,
  options: EncodeFrameOptions = {},
): Uint8Array {
  const { fin = true, rsv1 = false, mask } = options;
  const frame = new Uint8Array(headerSize(payload.length, mask !== undefined) + payload.length);
  writePayload(
    frame,
    writeHeader(frame, 0, opcode, payload.length, fin, rsv1, mask),
    payload,
    mask,
  );
  return frame;
}
