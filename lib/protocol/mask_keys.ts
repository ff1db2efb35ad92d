/**
 * Masking keys for the frames a client sends (RFC 6455 §5.3): each a fresh 4 bytes from a
 * cryptographically secure source, drawn from a batch of random bytes filled in one
 * `crypto.getRandomValues` call, so that a frame does not pay for a call of its own
 * (bench/mask_key_bench.ts measures both).
 *
 * @module
 */

/** Most bytes one `crypto.getRandomValues` call may fill (WebCrypto's quota). */
const MAX_BATCH = 65536;

/**
 * Options of {@linkcode MaskKeySource}.
 *
 * @example
 * ```ts
 * import { MaskKeySource } from "./mask_keys.ts";
 * const keys = new MaskKeySource({ batchSize: 1024 });
 * ```
 */
export interface MaskKeySourceOptions {
  /**
   * Bytes of randomness fetched at once: a multiple of 4 from 4 to 65536.
   *
   * @default {4096}
   */
  batchSize?: number;
}

/**
 * Hands out 4-byte masking keys from batches of `crypto.getRandomValues` (RFC 6455 §5.3: "the
 * masking key MUST be derived from a strong source of entropy" and unpredictable, one per
 * frame). Keys are never reused. One source may serve every connection of a process.
 *
 * {@linkcode MaskKeySource.next} returns the same 4-byte array every time, refilled: write
 * the key into its frame (`writeHeader` and `writePayload` of `./frame_writer.ts` copy it)
 * before asking for the next. A view or a new array per key cost more than the random bytes
 * (bench/mask_key_bench.ts).
 *
 * @example
 * ```ts
 * import { MaskKeySource } from "./mask_keys.ts";
 * const keys = new MaskKeySource();
 * const a = keys.next().slice(); // a copy, to keep it
 * const b = keys.next();
 * console.log(a.length, b.length, b === keys.next()); // 4 4 true
 * ```
 */
export class MaskKeySource {
  #batch: Uint8Array;
  #offset: number;
  #key = new Uint8Array(4);

  /**
   * Makes a source; the first batch is fetched at the first key.
   *
   * @param options The batch size.
   * @throws {RangeError} If the batch size is not a multiple of 4 from 4 to 65536.
   *
   * @example
   * ```ts
   * import { MaskKeySource } from "./mask_keys.ts";
   * const keys = new MaskKeySource({ batchSize: 256 });
   * console.log(keys.next().length); // 4
   * ```
   */
  constructor(options?: MaskKeySourceOptions) {
    const size = options?.batchSize ?? 4096;
    if (!Number.isInteger(size) || size < 4 || size > MAX_BATCH || size % 4 !== 0) {
      throw new RangeError(
        `Cannot create a MaskKeySource: batchSize must be a multiple of 4 from 4 to ${MAX_BATCH}`,
      );
    }
    this.#batch = new Uint8Array(size);
    this.#offset = size;
  }

  /**
   * The next masking key.
   *
   * @returns 4 random bytes in an array that the next call overwrites: write them into the
   * frame before then.
   *
   * @example
   * ```ts
   * import { writeHeader } from "./frame_writer.ts";
   * import { MaskKeySource } from "./mask_keys.ts";
   * const header = new Uint8Array(14);
   * const end = writeHeader(header, 0, 0x1, 5, true, false, new MaskKeySource().next());
   * console.log(end, header[1]); // 6 133
   * ```
   */
  next(): Uint8Array {
    const batch = this.#batch;
    let offset = this.#offset;
    if (offset === batch.length) {
      // Each byte is handed out once, then the batch is refilled in place.
      crypto.getRandomValues(batch);
      offset = 0;
    }
    this.#offset = offset + 4;
    const key = this.#key;
    key[0] = batch[offset];
    key[1] = batch[offset + 1];
    key[2] = batch[offset + 2];
    key[3] = batch[offset + 3];
    return key;
  }
}
