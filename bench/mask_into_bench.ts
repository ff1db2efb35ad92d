/**
 * A client's masked copy (RFC 6455 §5.3): `maskInto` from lib/protocol/mask.ts, which reads the
 * payload and writes it masked in one pass when source and target sit alike modulo 4, against
 * the copy-then-XOR it falls back to otherwise (`set` then `unmaskWords`), and against what the
 * client's outbox does from lib/core/outbox.ts's `SIMD_FROM` on: copy into a `SimdMaskMemory`
 * (WebAssembly) and mask there 16 bytes a step. On Bun and Deno alike a copy of 64 KiB takes
 * 2 µs, or 20–70 µs when the target's address is 1 to 31 bytes above the source's modulo 4096;
 * the SIMD rows place the payload clear of that, as the outbox does.
 *
 * Run with `deno run -A bench/mask_into_bench.ts` or `bun bench/mask_into_bench.ts`.
 *
 * @module
 */
import { medians, runtime } from "./_report.ts";
import { bench, do_not_optimize, run, summary } from "mitata";
import { maskInto, SimdMaskMemory, unmaskWords } from "../lib/protocol/mask.ts";

const KEY = new Uint8Array([0x37, 0xfa, 0x21, 0x3d]);
const LENGTHS = [256, 1024, 4 * 1024, 16 * 1024, 64 * 1024, 1024 * 1024];

/** Copy, then XOR in place: what maskInto does when the two are not alike modulo 4. */
function copyThenXor(source: Uint8Array, target: Uint8Array, offset: number): number {
  target.set(source, offset);
  unmaskWords(target.subarray(offset, offset + source.length), KEY);
  return offset + source.length;
}

const simd = SimdMaskMemory.create(2 * 1024 * 1024 + 65536);
if (simd === undefined) throw new Error("no WebAssembly SIMD on this runtime");

/** Copy into the SIMD memory, then mask there: the outbox's way for larger payloads. */
function simdCopyMask(source: Uint8Array, at: number): number {
  simd!.bytes.set(source, at);
  simd!.mask(at, source.length, KEY);
  return at + source.length;
}

for (const length of LENGTHS) {
  const source = new Uint8Array(length + 16).subarray(0, length);
  for (let i = 0; i < length; i++) source[i] = i * 7;
  const target = new Uint8Array(length + 32);
  // The two must agree before they are timed.
  const a = new Uint8Array(length + 32);
  maskInto(source, KEY, a, 16);
  copyThenXor(source, target, 16);
  for (let i = 0; i < length + 32; i++) {
    if (a[i] !== target[i]) throw new Error(`mismatch at ${i} of ${length}`);
  }
  // 64 bytes above the source modulo 4096 (large arrays start on a page), behind a 14-byte
  // header.
  const at = 4096 + 64;
  simdCopyMask(source, at);
  for (let i = 0; i < length; i++) {
    if (simd.bytes[at + i] !== a[16 + i]) throw new Error(`simd mismatch at ${i} of ${length}`);
  }
  const label = `${length / 1024} KiB`;
  summary(() => {
    // Offset 16 (a 14-byte header after 2 bytes of padding): alike modulo 4, the one pass.
    bench(`maskInto ${label}`, () => do_not_optimize(maskInto(source, KEY, target, 16)));
    bench(`copy then xor ${label}`, () => do_not_optimize(copyThenXor(source, target, 14)));
    bench(`simd ${label}`, () => do_not_optimize(simdCopyMask(source, at)));
  });
}

const byName = medians(await run());
console.log(`\nmedians in µs (${runtime})`);
for (const length of LENGTHS) {
  const label = `${length / 1024} KiB`;
  const one = byName.get(`maskInto ${label}`)! / 1000;
  const two = byName.get(`copy then xor ${label}`)! / 1000;
  const three = byName.get(`simd ${label}`)! / 1000;
  console.log(
    `${label.padEnd(9)} maskInto ${one.toFixed(2).padStart(8)}  copy then xor ${
      two.toFixed(2).padStart(8)
    }  simd ${three.toFixed(2).padStart(8)}`,
  );
}
