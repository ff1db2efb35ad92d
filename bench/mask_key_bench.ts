/**
 * A client's masking (RFC 6455 §5.3), in two parts.
 *
 * Keys: the cost of one 4-byte masking key drawn from `MaskKeySource` (lib/protocol/mask_keys.ts;
 * batches of `crypto.getRandomValues`, 4 KiB by default, also 256 B and 64 KiB here) against one
 * `crypto.getRandomValues` call per frame, into a new 4-byte array or into one reused.
 *
 * Payloads: `maskInto` (lib/protocol/mask.ts) against its two strategies forced on at every
 * length: masking byte by byte while copying, and copying then masking in place word-wise; the
 * length where the second starts to win is where `MASK_COPY_THRESHOLD` should be.
 *
 * Run with `deno run -A bench/mask_key_bench.ts` or `bun bench/mask_key_bench.ts`.
 *
 * @module
 */
import { printMedians } from "./_report.ts";
import { bench, do_not_optimize, run, summary } from "mitata";
import { MASK_COPY_THRESHOLD, maskInto, unmaskWords } from "../lib/protocol/mask.ts";
import { MaskKeySource } from "../lib/protocol/mask_keys.ts";

// ---------------------------------------------------------------------------------------------
// Keys

const batched = new MaskKeySource();
const small = new MaskKeySource({ batchSize: 256 });
const large = new MaskKeySource({ batchSize: 65536 });
const reused = new Uint8Array(4);

summary(() => {
  bench(
    "key: getRandomValues(new Uint8Array(4)) per frame",
    () => do_not_optimize(crypto.getRandomValues(new Uint8Array(4))),
  );
  bench(
    "key: getRandomValues(reused 4 B) per frame",
    () => do_not_optimize(crypto.getRandomValues(reused)),
  );
  bench("key: MaskKeySource 256 B batches", () => do_not_optimize(small.next()));
  bench("key: MaskKeySource 4 KiB batches (default)", () => do_not_optimize(batched.next()));
  bench("key: MaskKeySource 64 KiB batches", () => do_not_optimize(large.next()));
});

// ---------------------------------------------------------------------------------------------
// Payloads

const MASK = Uint8Array.of(0x37, 0xfa, 0x21, 0x3d);

/** Masking while copying, four bytes a step (maskInto's path below the threshold). */
function byteCopy(source: Uint8Array, mask: Uint8Array, target: Uint8Array, offset: number) {
  const length = source.length;
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
}

/** Copying, then masking in place by words (maskInto's path from the threshold on). */
function copyThenWords(source: Uint8Array, mask: Uint8Array, target: Uint8Array, offset: number) {
  target.set(source, offset);
  unmaskWords(target.subarray(offset, offset + source.length), mask);
}

const LENGTHS = [16, 32, 64, 125, 192, 256, 384, 512, 1024, 64 * 1024];
for (const length of LENGTHS) {
  const source = new Uint8Array(length).map((_, i) => i * 31 + 7);
  // Behind a 6-byte header, where a small client frame's payload starts in its buffer.
  const target = new Uint8Array(length + 14);
  const check = new Uint8Array(length + 14);
  maskInto(source, MASK, target, 6);
  byteCopy(source, MASK, check, 6);
  if (target.some((b, i) => b !== check[i])) throw new Error(`maskInto differs at ${length}`);
  copyThenWords(source, MASK, check, 6);
  if (target.some((b, i) => b !== check[i])) throw new Error(`copy + words differs at ${length}`);
  const label = length >= 1024 ? `${length / 1024} KiB` : `${length} B`;
  summary(() => {
    bench(`mask ${label}: maskInto`, () => do_not_optimize(maskInto(source, MASK, target, 6)));
    bench(`mask ${label}: byte copy`, () => do_not_optimize(byteCopy(source, MASK, target, 6)));
    bench(
      `mask ${label}: copy + words`,
      () => do_not_optimize(copyThenWords(source, MASK, target, 6)),
    );
  });
}

console.log(`MASK_COPY_THRESHOLD = ${MASK_COPY_THRESHOLD}`);
printMedians(await run(), 52);
