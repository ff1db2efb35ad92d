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

/**
 * From this many bytes on, {@linkcode maskInto} copies and then masks word-wise; below it, it
 * masks byte by byte while copying. The word path's fixed cost (two views) is higher than
 * {@linkcode unmask}'s since the copy comes first (bench/mask_key_bench.ts).
 */
export const MASK_COPY_THRESHOLD = 256;

/**
 * Writes `source` XORed with the 4-byte `mask` into `target` at `offset`, leaving `source`
 * unchanged: how a client's payload is masked into its outgoing buffer (RFC 6455 §5.3).
 * Short payloads are masked byte by byte on the way; from {@linkcode MASK_COPY_THRESHOLD}
 * bytes on they are copied, then masked in place word-wise.
 *
 * @param source The payload.
 * @param mask The masking key: 4 bytes.
 * @param target Where to write; needs `source.length` bytes at `offset`.
 * @param offset Where the masked payload starts in `target`.
 * @returns The offset just past the masked payload.
 *
 * @example
 * ```ts
 * import { maskInto } from "./mask.ts";
 * const out = new Uint8Array(7);
 * const end = maskInto(new TextEncoder().encode("Hello"), Uint8Array.of(0x37, 0xfa, 0x21, 0x3d), out, 2);
 * console.log(end, out); // 7 Uint8Array(7) [0, 0, 127, 159, 77, 81, 88]
 * ```
 */
export function maskInto(
  source: Uint8Array,
  mask: Uint8Array,
  target: Uint8Array,
  offset: number,
): number {
  const length = source.length;
  if (length < MASK_COPY_THRESHOLD) {
    const m0 = mask[0];
    const m1 = mask[1];
    const m2 = mask[2];
    const m3 = mask[3];
    let i = 0;
    for (; i + 4 <= length; i += 4) {
      target[offset + i] = source[i] ^ m0;
      target[offset + i + 1] = source[i + 1] ^ m1;
      target[offset + i + 2] = source[i + 2] ^ m2;
      target[offset + i + 3] = source[i + 3] ^ m3;
    }
    for (; i < length; i++) target[offset + i] = source[i] ^ mask[i & 3];
    return offset + length;
  }
  const at = target.byteOffset + offset;
  if ((at & 3) !== (source.byteOffset & 3)) {
    target.set(source, offset);
    unmaskWords(target.subarray(offset, offset + length), mask);
    return offset + length;
  }
  // Source and target alike modulo 4: one pass, a word at a time, reads the source and writes
  // the target masked. No copy first: Bun's copy of 64 KiB takes 2 µs or 30–70 µs depending on
  // where source and target sit relative to each other, which a caller cannot see.
  let i = Math.min((4 - (at & 3)) & 3, length);
  for (let j = 0; j < i; j++) target[offset + j] = source[j] ^ mask[j & 3];
  const b0 = mask[i & 3];
  const b1 = mask[(i + 1) & 3];
  const b2 = mask[(i + 2) & 3];
  const b3 = mask[(i + 3) & 3];
  // Int32, not Uint32: JavaScriptCore keeps values past 2^31 of a Uint32Array as doubles.
  const word = LITTLE_ENDIAN
    ? (b0 | (b1 << 8) | (b2 << 16) | (b3 << 24))
    : ((b0 << 24) | (b1 << 16) | (b2 << 8) | b3);
  const words = (length - i) >>> 2;
  const from = new Int32Array(source.buffer, source.byteOffset + i, words);
  const to = new Int32Array(target.buffer, at + i, words);
  let w = 0;
  for (; w + 4 <= words; w += 4) {
    to[w] = from[w] ^ word;
    to[w + 1] = from[w + 1] ^ word;
    to[w + 2] = from[w + 2] ^ word;
    to[w + 3] = from[w + 3] ^ word;
  }
  for (; w < words; w++) to[w] = from[w] ^ word;
  i += words << 2;
  for (; i < length; i++) target[offset + i] = source[i] ^ mask[i & 3];
  return offset + length;
}
