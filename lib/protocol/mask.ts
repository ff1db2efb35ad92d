/**
 * The masking of RFC 6455 §5.3: payload XOR a 4-byte key, in place.
 *
 * @module
 */

/**
 * From this many bytes on, {@linkcode unmask} works on 32-bit words. Below it, building the
 * word view costs more than it saves (bench/mask_bench.ts; FACTS.md measured the same).
 */
export const WORD_MASK_THRESHOLD = 64;

const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/**
 * XORs `data` in place with the 4-byte `mask`, as if `data` started `offset` bytes into the
 * payload. Masking and unmasking are the same operation.
 *
 * @param data The bytes to change in place.
 * @param mask The masking key: 4 bytes.
 * @param offset How many payload bytes came before `data`, so a payload split across chunks is
 * unmasked piece by piece.
 *
 * @example
 * ```ts
 * import { unmask } from "./mask.ts";
 * const data = new Uint8Array([0x7f, 0x9f, 0x4d, 0x51, 0x58]);
 * unmask(data, new Uint8Array([0x37, 0xfa, 0x21, 0x3d]));
 * console.log(new TextDecoder().decode(data)); // Hello
 * ```
 */
export function unmask(data: Uint8Array, mask: Uint8Array, offset = 0): void {
  if (data.length >= WORD_MASK_THRESHOLD) {
    unmaskWords(data, mask, offset);
    return;
  }
  for (let i = 0; i < data.length; i++) data[i] ^= mask[(i + offset) & 3];
}

/**
 * {@linkcode unmask} through 32-bit words whatever the length: bytes up to a 4-byte boundary
 * of the underlying buffer, then whole words, then the tail. Exported for bench/mask_bench.ts,
 * which measures where this starts to pay.
 *
 * @param data The bytes to change in place.
 * @param mask The masking key: 4 bytes.
 * @param offset How many payload bytes came before `data`.
 *
 * @example
 * ```ts
 * import { unmaskWords } from "./mask.ts";
 * const data = new Uint8Array(8);
 * unmaskWords(data, new Uint8Array([1, 2, 3, 4]));
 * console.log(data); // Uint8Array(8) [1, 2, 3, 4, 1, 2, 3, 4]
 * ```
 */
export function unmaskWords(data: Uint8Array, mask: Uint8Array, offset = 0): void {
  const length = data.length;
  let i = 0;
  const head = Math.min((4 - (data.byteOffset & 3)) & 3, length);
  for (; i < head; i++) data[i] ^= mask[(i + offset) & 3];
  const start = i + offset;
  const b0 = mask[start & 3];
  const b1 = mask[(start + 1) & 3];
  const b2 = mask[(start + 2) & 3];
  const b3 = mask[(start + 3) & 3];
  const word = LITTLE_ENDIAN
    ? (b0 | (b1 << 8) | (b2 << 16) | (b3 << 24))
    : ((b0 << 24) | (b1 << 16) | (b2 << 8) | b3);
  const words = (length - i) >>> 2;
  const view = new Uint32Array(data.buffer, data.byteOffset + i, words);
  for (let w = 0; w < words; w++) view[w] ^= word;
  i += words << 2;
  for (; i < length; i++) data[i] ^= mask[(i + offset) & 3];
}
