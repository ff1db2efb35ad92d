/**
 * The masking of RFC 6455 §5.3: payload XOR a 4-byte key, in place.
 *
 * @module
 */
import { MASK_WASM } from "./_mask_wasm.ts";

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
    if (data.length < SIMD_UNMASK_FROM || !unmaskSimd(data, mask, offset)) {
      unmaskWords(data, mask, offset);
    }
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

/** WebAssembly's page size: memory grows by whole pages. */
const WASM_PAGE = 65536;

/**
 * From this many bytes on, {@linkcode unmask} copies the bytes into WebAssembly memory, masks
 * them there 16 bytes a step and copies them back: at 4 KiB that already took about half the
 * word loop's time on both runtimes, at 64 KiB 6.6 against 14.7 µs on Deno and 4.7 against
 * 8.0 µs on Bun, side by side (bench/mask_bench.ts compares the two from 4 KiB up).
 */
export const SIMD_UNMASK_FROM = 4096;

/** The scratch memory of {@linkcode unmask}; `null` where there is no WebAssembly SIMD. */
let unmaskScratch: SimdMaskMemory | null | undefined;

/** Bytes unmasked per pass through the scratch memory. */
const UNMASK_PIECE = WASM_PAGE;

/**
 * {@linkcode unmask} through WebAssembly SIMD, piece by piece through a scratch memory of its
 * own (the client's outbox keeps frames in its own SIMD memory across calls).
 *
 * @returns False where WebAssembly SIMD is not available: nothing was changed.
 */
function unmaskSimd(data: Uint8Array, mask: Uint8Array, offset: number): boolean {
  // Room for a piece at any start in the first 4 KiB (below).
  if (unmaskScratch === undefined) {
    unmaskScratch = SimdMaskMemory.create(UNMASK_PIECE + 4096) ?? null;
  }
  const scratch = unmaskScratch;
  if (scratch === null) return false;
  const bytes = scratch.bytes;
  const length = data.length;
  for (let at = 0; at < length; at += UNMASK_PIECE) {
    const piece = at === 0 && length <= UNMASK_PIECE
      ? data
      : data.subarray(at, Math.min(at + UNMASK_PIECE, length));
    // 2 KiB away from the source modulo 4 KiB: copies between addresses a few bytes
    // apart modulo 4 KiB run several times slower (Bun's 64 KiB copy: 2 µs or 30–70 µs).
    const start = (piece.byteOffset + 2048) & 4095;
    const end = start + piece.length;
    bytes.set(piece, start);
    scratch.mask(start, piece.length, mask, offset + at);
    piece.set(bytes.subarray(start, end));
  }
  return true;
}

/**
 * A block of memory that is masked in place 16 bytes a step, by WebAssembly SIMD (`v128.xor`,
 * ./_mask_wasm.ts): a client's outbox copies its larger payloads in and masks them there, which
 * costs a fraction of {@linkcode maskInto}'s word loop (bench/mask_into_bench.ts). Made by
 * {@linkcode SimdMaskMemory.create}, which gives `undefined` where WebAssembly or its SIMD is
 * not available.
 *
 * {@linkcode SimdMaskMemory.grow} replaces {@linkcode SimdMaskMemory.bytes}: every view of the
 * old bytes is then empty (WebAssembly detaches the old buffer).
 *
 * @example
 * ```ts
 * import { SimdMaskMemory } from "./mask.ts";
 * const memory = SimdMaskMemory.create()!;
 * memory.bytes.set(new TextEncoder().encode("Hello"), 100);
 * memory.mask(100, 5, Uint8Array.of(0x37, 0xfa, 0x21, 0x3d));
 * console.log(memory.bytes.subarray(100, 105)); // Uint8Array(5) [127, 159, 77, 81, 88]
 * ```
 */
export class SimdMaskMemory {
  #memory: WebAssembly.Memory;
  #xor: (ptr: number, length: number, key: number) => void;
  #bytes: Uint8Array;

  private constructor(instance: WebAssembly.Instance) {
    const exports = instance.exports as {
      memory: WebAssembly.Memory;
      xor: (ptr: number, length: number, key: number) => void;
    };
    this.#memory = exports.memory;
    this.#xor = exports.xor;
    this.#bytes = new Uint8Array(this.#memory.buffer);
  }

  /**
   * Makes a block of at least `size` bytes.
   *
   * @param size The bytes wanted at first (rounded up to 64 KiB pages).
   * @returns The memory, or `undefined` where WebAssembly SIMD is not available (or the memory
   * could not be had).
   *
   * @example
   * ```ts
   * import { SimdMaskMemory } from "./mask.ts";
   * console.log(SimdMaskMemory.create(100_000)?.bytes.length); // 131072
   * ```
   */
  static create(size = WASM_PAGE): SimdMaskMemory | undefined {
    try {
      if (typeof WebAssembly !== "object" || !WebAssembly.validate(MASK_WASM)) return undefined;
      const memory = new SimdMaskMemory(
        new WebAssembly.Instance(new WebAssembly.Module(MASK_WASM)),
      );
      return memory.grow(size) ? memory : undefined;
    } catch {
      return undefined;
    }
  }

  /** The memory's bytes (a new array after each {@linkcode SimdMaskMemory.grow} that grew it). */
  get bytes(): Uint8Array {
    return this.#bytes;
  }

  /**
   * Grows the memory to at least `size` bytes; smaller sizes change nothing. Views of the old
   * {@linkcode SimdMaskMemory.bytes} are emptied, so grow only while none is in use.
   *
   * @param size The bytes wanted.
   * @returns Whether the memory now has `size` bytes (false: there was no memory for it).
   *
   * @example
   * ```ts
   * import { SimdMaskMemory } from "./mask.ts";
   * const memory = SimdMaskMemory.create()!;
   * console.log(memory.grow(200_000), memory.bytes.length); // true 262144
   * ```
   */
  grow(size: number): boolean {
    const have = this.#bytes.length;
    if (size <= have) return true;
    try {
      this.#memory.grow(Math.ceil((size - have) / WASM_PAGE));
    } catch {
      return false;
    }
    this.#bytes = new Uint8Array(this.#memory.buffer);
    return true;
  }

  /**
   * XORs `bytes[start, start + length)` in place with the 4-byte `mask`, as if they started
   * `offset` bytes into the payload: {@linkcode unmask} on this memory, 16 bytes a step.
   *
   * @param start Where the bytes begin in {@linkcode SimdMaskMemory.bytes}.
   * @param length How many.
   * @param mask The masking key: 4 bytes.
   * @param offset How many payload bytes came before them.
   * @throws {RangeError} If the bytes are not all within the memory.
   *
   * @example
   * ```ts
   * import { SimdMaskMemory } from "./mask.ts";
   * const memory = SimdMaskMemory.create()!;
   * memory.mask(3, 6, Uint8Array.of(1, 2, 3, 4), 2);
   * console.log(memory.bytes.subarray(3, 9)); // Uint8Array(6) [3, 4, 1, 2, 3, 4]
   * ```
   */
  mask(start: number, length: number, mask: Uint8Array, offset = 0): void {
    const bytes = this.#bytes;
    if (!(start >= 0 && length >= 0 && start + length <= bytes.length)) {
      throw new RangeError(
        `Cannot mask: bytes ${start} to ${
          start + length
        } are not within the ${bytes.length} bytes of the memory`,
      );
    }
    // WebAssembly is little-endian everywhere: byte j of the key goes to ptr + j.
    const key = mask[offset & 3] | (mask[(offset + 1) & 3] << 8) |
      (mask[(offset + 2) & 3] << 16) | (mask[(offset + 3) & 3] << 24);
    this.#xor(start, length, key);
    for (let i = length & ~15; i < length; i++) bytes[start + i] ^= mask[(i + offset) & 3];
  }
}
