/**
 * A WebAssembly module that XORs memory with a 32-bit key, 16 bytes a step (SIMD `v128.xor`):
 * the fast path of `SimdMaskMemory` in ./mask.ts. Hand-assembled; every byte is annotated
 * below. In the text format it is:
 *
 * ```wat
 * (module
 *   (memory (export "memory") 1)
 *   ;; XORs [ptr, ptr + (len & -16)) with `key` repeated; byte j of `key` (little-endian)
 *   ;; goes to the bytes at ptr + j, ptr + j + 4, ... The caller does the last len & 15.
 *   (func (export "xor") (param $ptr i32) (param $len i32) (param $key i32)
 *     (local $end i32) (local $k v128)
 *     (local.set $k (i32x4.splat (local.get $key)))
 *     ;; 64 bytes a step while they last
 *     (local.set $end (i32.add (local.get $ptr) (i32.and (local.get $len) (i32.const -64))))
 *     (block (loop
 *       (br_if 1 (i32.ge_u (local.get $ptr) (local.get $end)))
 *       (v128.store offset=0 (local.get $ptr)
 *         (v128.xor (v128.load offset=0 (local.get $ptr)) (local.get $k)))
 *       ;; ... the same at offset=16, offset=32, offset=48
 *       (local.set $ptr (i32.add (local.get $ptr) (i32.const 64)))
 *       (br 0)))
 *     ;; then 16 bytes a step
 *     (local.set $end (i32.add (local.get $ptr) (i32.and (local.get $len) (i32.const 48))))
 *     (block (loop
 *       (br_if 1 (i32.ge_u (local.get $ptr) (local.get $end)))
 *       (v128.store (local.get $ptr) (v128.xor (v128.load (local.get $ptr)) (local.get $k)))
 *       (local.set $ptr (i32.add (local.get $ptr) (i32.const 16)))
 *       (br 0)))))
 * ```
 *
 * Encoding: WebAssembly Core Specification 2.0, §5 (binary format); SIMD opcodes are 0xfd
 * followed by the instruction's number (v128.load 0x00, v128.store 0x0b, i32x4.splat 0x11,
 * v128.xor 0x51), memory arguments are `align offset` (align 0: one byte, so any address).
 *
 * @module
 */

/** `local.get`, `local.set`. */
const GET = 0x20;
const SET = 0x21;

/** `v128.store offset=o (ptr) (v128.xor (v128.load offset=o (ptr)) k)` */
function step(offset: number): number[] {
  return [
    ...[GET, 0, GET, 0], // ptr (for the store), ptr (for the load)
    ...[0xfd, 0x00, 0x00, offset], // v128.load align=0 offset
    ...[GET, 4, 0xfd, 0x51], // k, v128.xor
    ...[0xfd, 0x0b, 0x00, offset], // v128.store align=0 offset
  ];
}

const CODE = [
  ...[0x02, 0x01, 0x7f, 0x01, 0x7b], // locals: 1 × i32 ($end, 3), 1 × v128 ($k, 4)
  ...[GET, 2, 0xfd, 0x11, SET, 4], // k = i32x4.splat(key)
  // end = ptr + (len & -64)   (i32.const -64 is the signed LEB128 byte 0x40)
  ...[GET, 0, GET, 1, 0x41, 0x40, 0x71, 0x6a, SET, 3],
  ...[0x02, 0x40, 0x03, 0x40], // block, loop
  ...[GET, 0, GET, 3, 0x4f, 0x0d, 1], // br_if 1 (ptr >= end, unsigned)
  ...step(0),
  ...step(16),
  ...step(32),
  ...step(48),
  ...[GET, 0, 0x41, 0xc0, 0x00, 0x6a, SET, 0], // ptr += 64   (64 is 0xc0 0x00 in signed LEB128)
  ...[0x0c, 0, 0x0b, 0x0b], // br 0, end loop, end block
  // end = ptr + (len & 48)
  ...[GET, 0, GET, 1, 0x41, 0x30, 0x71, 0x6a, SET, 3],
  ...[0x02, 0x40, 0x03, 0x40],
  ...[GET, 0, GET, 3, 0x4f, 0x0d, 1],
  ...step(0),
  ...[GET, 0, 0x41, 0x10, 0x6a, SET, 0], // ptr += 16
  ...[0x0c, 0, 0x0b, 0x0b],
  0x0b, // end of the function
];

/** The module's bytes. */
export const MASK_WASM: Uint8Array<ArrayBuffer> = new Uint8Array([
  ...[0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00], // "\0asm", version 1
  // Type section: one type, (i32, i32, i32) -> ()
  ...[0x01, 0x07, 0x01, 0x60, 0x03, 0x7f, 0x7f, 0x7f, 0x00],
  // Function section: one function, of type 0
  ...[0x03, 0x02, 0x01, 0x00],
  // Memory section: one memory, at least 1 page (64 KiB), no maximum
  ...[0x05, 0x03, 0x01, 0x00, 0x01],
  // Export section: "memory" (memory 0), "xor" (function 0)
  ...[0x07, 0x10, 0x02],
  ...[0x06, 0x6d, 0x65, 0x6d, 0x6f, 0x72, 0x79, 0x02, 0x00],
  ...[0x03, 0x78, 0x6f, 0x72, 0x00, 0x00],
  // Code section: one body (sizes as LEB128)
  ...[0x0a, ...leb128(1 + leb128(CODE.length).length + CODE.length), 0x01],
  ...leb128(CODE.length),
  ...CODE,
]);

/** An unsigned LEB128 of a number below 2^14. */
function leb128(n: number): number[] {
  return n < 0x80 ? [n] : [(n & 0x7f) | 0x80, n >> 7];
}
