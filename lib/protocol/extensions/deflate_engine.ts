/**
 * The contract between permessage-deflate (RFC 7692) and the code that compresses: an engine
 * makes a compressor and a decompressor for one connection's agreed parameters. Results come
 * through a callback, synchronously when the engine can (no promise per message), later when
 * it cannot; either way in the order the messages went in.
 *
 * @module
 */
import { WebSocketError } from "../errors.ts";
import type { DeflateParams } from "./deflate_negotiation.ts";

/** The 4 bytes a sync flush ends with, stripped on send and restored on receive (RFC 7692 §7.2). */
export const DEFLATE_TAIL: Uint8Array = new Uint8Array([0x00, 0x00, 0xff, 0xff]);

/** Receives the result of one compression or decompression. */
export type DeflateCallback = (result: Uint8Array | WebSocketError) => void;

/** Compresses one direction of one connection, message after message. */
export interface MessageCompressor {
  /**
   * Compresses a whole message.
   *
   * @param data The message; the compressor reads it before returning or copies it.
   * @param done Called once with the payload to send (the trailing 00 00 FF FF removed).
   */
  compress(data: Uint8Array, done: DeflateCallback): void;
  /** Frees the compressor's state. */
  close(): void;
  /**
   * `true` if each message is compressed on its own and `done` is called before `compress`
   * returns, and the engine hands the same compressor to every connection with the same
   * settings: then a broadcast may compress once and send the bytes to all of them.
   */
  readonly shareable?: boolean;
}

/** Decompresses one direction of one connection, message after message. */
export interface MessageDecompressor {
  /**
   * Inflates a whole message. Output past `limit` bytes is refused while inflating (1009):
   * a small compressed bomb never becomes a big buffer.
   *
   * @param data The payload as received (without the 00 00 FF FF tail).
   * @param limit The most bytes the message may inflate to.
   * @param done Called once with the message, or the error that fails the connection.
   */
  decompress(data: Uint8Array, limit: number, done: DeflateCallback): void;
  /** Frees the decompressor's state. */
  close(): void;
}

/** Tuning that does not take part in negotiation. */
export interface DeflateTuning {
  /** zlib compression level, 0–9. @default {1} */
  level?: number;
  /** zlib memory level, 1–9: lower uses less memory per compressor, compresses worse. @default {8} */
  memLevel?: number;
}

/** Makes compressors and decompressors. */
export interface DeflateEngine {
  /** The engine's name, for reports. */
  readonly name: string;
  /** The smallest window (base-2 logarithm) its compressor can keep to, 8 to 15. */
  readonly minWindowBits: number;
  /**
   * A compressor for this endpoint's messages.
   *
   * @param params The agreed parameters; `localNoContextTakeover` and `localMaxWindowBits`
   * apply.
   * @param tuning Level and memory.
   */
  compressor(params: DeflateParams, tuning: DeflateTuning): MessageCompressor;
  /**
   * A decompressor for the peer's messages.
   *
   * @param params The agreed parameters; `remoteNoContextTakeover` applies.
   */
  decompressor(params: DeflateParams): MessageDecompressor;
}

/**
 * The error for an inflate that went over its limit.
 *
 * @param limit The limit.
 * @returns A 1009 error.
 */
export function tooBig(limit: number): WebSocketError {
  return new WebSocketError(
    "WS_ERR_MESSAGE_TOO_BIG",
    `Message too big: it inflates to more than ${limit} bytes`,
  );
}

/**
 * The error for compressed data that does not inflate.
 *
 * @param cause What the engine threw.
 * @returns A 1007 error.
 */
export function inflateFailed(cause: unknown): WebSocketError {
  return new WebSocketError(
    "WS_ERR_INFLATE",
    "Invalid compressed data: the message does not inflate",
    { cause },
  );
}

/**
 * The error for our own compression failing.
 *
 * @param cause What the engine threw.
 * @returns A 1011 error.
 */
export function deflateFailed(cause: unknown): WebSocketError {
  return new WebSocketError("WS_ERR_DEFLATE", "Compression failed", { cause });
}

/**
 * Joins pieces into one buffer (the one piece itself when there is only one).
 *
 * @param pieces The pieces.
 * @param length Their total length.
 * @returns The bytes.
 */
export function concatBytes(pieces: Uint8Array[], length: number): Uint8Array {
  if (pieces.length === 1) return pieces[0];
  const out = new Uint8Array(length);
  let offset = 0;
  for (const piece of pieces) {
    out.set(piece, offset);
    offset += piece.length;
  }
  return out;
}

/**
 * `data` with the 00 00 FF FF tail appended, as RFC 7692 §7.2.2 has the receiver do.
 *
 * @param data A compressed payload.
 * @returns A new buffer.
 */
export function withTail(data: Uint8Array): Uint8Array {
  const out = new Uint8Array(data.length + 4);
  out.set(data);
  out.set(DEFLATE_TAIL, data.length);
  return out;
}

/**
 * A sync-flushed deflate output without its 00 00 FF FF tail (RFC 7692 §7.2.1).
 *
 * @param data Output that ends with a sync flush.
 * @returns A view without the tail.
 */
export function withoutTail(data: Uint8Array): Uint8Array {
  const n = data.length;
  if (
    n >= 4 && data[n - 4] === 0x00 && data[n - 3] === 0x00 && data[n - 2] === 0xff &&
    data[n - 1] === 0xff
  ) {
    return data.subarray(0, n - 4);
  }
  return data;
}
