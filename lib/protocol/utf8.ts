/**
 * UTF-8 validation and decoding for text messages (RFC 6455 §8.1), whole or across fragments.
 *
 * Both runtimes' fatal `TextDecoder` rejects a sequence at the first byte that cannot continue
 * it, also in streaming mode and across calls (checked in utf8_test.ts), so a fragmented text
 * message fails on the fragment where it goes invalid, not only at its end. `ignoreBOM` keeps a
 * leading U+FEFF: it is part of the message, not a byte-order mark to strip.
 *
 * @module
 */

const DECODER_OPTIONS: TextDecoderOptions = { fatal: true, ignoreBOM: true };
const STREAM: TextDecodeOptions = { stream: true };

// Shared by every connection: a non-streaming call resets the decoder, and one call never
// interleaves with another, so no connection can see another's state.
const whole = new TextDecoder("utf-8", DECODER_OPTIONS);

/**
 * Decodes bytes that must be complete, valid UTF-8.
 *
 * @param bytes The bytes.
 * @returns The string, or `undefined` if the bytes are not valid UTF-8.
 *
 * @example
 * ```ts
 * import { decodeUtf8 } from "./utf8.ts";
 * console.log(decodeUtf8(new Uint8Array([0xce, 0xba])), decodeUtf8(new Uint8Array([0xc0])));
 * // κ undefined
 * ```
 */
export function decodeUtf8(bytes: Uint8Array): string | undefined {
  try {
    return whole.decode(bytes);
  } catch {
    return undefined;
  }
}

/**
 * Decodes a text message that arrives in pieces, failing on the first piece that makes it
 * invalid. One instance serves one connection, one message after another.
 *
 * @example
 * ```ts
 * import { Utf8StreamDecoder } from "./utf8.ts";
 * const decoder = new Utf8StreamDecoder();
 * const head = decoder.push(new Uint8Array([0xce])); // "" (waits for the rest of κ)
 * const tail = decoder.end(new Uint8Array([0xba])); // "κ"
 * console.log(head! + tail!);
 * ```
 */
export class Utf8StreamDecoder {
  #decoder = new TextDecoder("utf-8", DECODER_OPTIONS);

  /**
   * Decodes the next piece.
   *
   * @param piece Bytes of the message, possibly ending inside a character.
   * @returns The characters completed so far, or `undefined` once the message cannot be valid.
   */
  push(piece: Uint8Array): string | undefined {
    try {
      return this.#decoder.decode(piece, STREAM);
    } catch {
      this.reset();
      return undefined;
    }
  }

  /**
   * Decodes the last piece and ends the message.
   *
   * @param piece The last bytes, if any.
   * @returns The remaining characters, or `undefined` if the message is invalid or ends inside
   * a character.
   */
  end(piece?: Uint8Array): string | undefined {
    try {
      return this.#decoder.decode(piece);
    } catch {
      this.reset();
      return undefined;
    }
  }

  /** Forgets a message in progress. */
  reset(): void {
    // A streaming call that threw leaves the decoder mid-stream; a fresh one is the only portable
    // way back to a clean state. This happens only when a connection fails.
    this.#decoder = new TextDecoder("utf-8", DECODER_OPTIONS);
  }
}
