/**
 * Unmasking (RFC 6455 §5.3) by payload length: `unmask` from lib/protocol/mask.ts against a
 * plain byte loop and the same word loop forced on at every length, to find where the
 * word-wise path starts to win and so which `WORD_MASK_THRESHOLD` the data supports. From
 * `SIMD_UNMASK_FROM` (4 KiB) on, `unmask` goes through WebAssembly SIMD instead: the lengths
 * from 4 KiB up compare it with the word loop.
 *
 * Each payload is a view that starts where a masked frame's payload starts in a chunk (after a
 * 6-, 8- or 14-byte header), so the word loop pays for the unaligned head as it does in the
 * parser. XOR is its own inverse, so re-unmasking the same bytes is valid work every time.
 *
 * After the mitata run, a short extra sweep (16, 24, 48, 96, 192 bytes) with `measure` narrows the
 * crossover, and a table of medians ends the output.
 *
 * Run with `deno run -A bench/mask_bench.ts` or `bun bench/mask_bench.ts`.
 *
 * @module
 */
import { medians, runtime } from "./_report.ts";
import { bench, do_not_optimize, measure, run, summary } from "mitata";
import { unmask, unmaskWords, WORD_MASK_THRESHOLD } from "../lib/protocol/mask.ts";
import { headerSize } from "../lib/protocol/frame_writer.ts";

const LENGTHS = [8, 32, 64, 125, 256, 1024, 4 * 1024, 16 * 1024, 64 * 1024, 1024 * 1024];
// Between the lengths above, where the crossover is likely; measured only for the two loops.
const SWEEP = [16, 24, 48, 96, 192];
const SWEEP_CPU_TIME = 100e6; // ns per measurement, a sixth of mitata's default

const MASK = new Uint8Array([0x37, 0xfa, 0x21, 0x3d]);

/** The reference: one byte at a time. */
function byteLoop(data: Uint8Array, mask: Uint8Array, offset = 0): void {
  const length = data.length;
  for (let i = 0; i < length; i++) data[i] ^= mask[(i + offset) & 3];
}

/** A payload view placed as in a chunk holding one masked frame of that length. */
function payload(length: number): Uint8Array {
  const header = headerSize(length, true);
  const chunk = new Uint8Array(header + length);
  for (let i = 0; i < length; i++) chunk[header + i] = (i * 31 + 7) & 0xff;
  return chunk.subarray(header);
}

// The three must agree before they are timed.
for (const length of [...LENGTHS, ...SWEEP, 1, 3, 5]) {
  const a = payload(length);
  const b = a.slice();
  const c = a.slice();
  unmask(a, MASK, 1);
  byteLoop(b, MASK, 1);
  unmaskWords(c, MASK, 1);
  for (let i = 0; i < length; i++) {
    if (a[i] !== b[i] || b[i] !== c[i]) throw new Error(`mismatch at ${i} of ${length}`);
  }
}

function label(length: number): string {
  return length >= 1024 ? `${length / 1024} KiB` : `${length} B`;
}

for (const length of LENGTHS) {
  const data = payload(length);
  summary(() => {
    bench(`unmask ${label(length)}`, () => do_not_optimize(unmask(data, MASK)));
    bench(`byte loop ${label(length)}`, () => do_not_optimize(byteLoop(data, MASK)));
    bench(`word loop ${label(length)}`, () => do_not_optimize(unmaskWords(data, MASK)));
  });
}

// Medians in ns, by loop and length.
const byName = medians(await run());
for (const length of SWEEP) {
  const data = payload(length);
  for (const [name, loop] of [["byte loop", byteLoop], ["word loop", unmaskWords]] as const) {
    const stats = await measure(() => do_not_optimize(loop(data, MASK)), {
      min_cpu_time: SWEEP_CPU_TIME,
    });
    byName.set(`${name} ${label(length)}`, stats.p50);
  }
}

const all = [...LENGTHS, ...SWEEP].sort((a, b) => a - b);
const ns = (name: string) => byName.get(name);
const fmt = (value: number | undefined) => value === undefined ? "-" : value.toFixed(1);
console.log(
  `\nmedians in ns (WORD_MASK_THRESHOLD = ${WORD_MASK_THRESHOLD}; sweep rows lack unmask)`,
);
console.log("length      unmask       byte       word   word/byte");
for (const length of all) {
  const name = label(length);
  const byte = ns(`byte loop ${name}`)!;
  const word = ns(`word loop ${name}`)!;
  console.log(
    `${name.padEnd(8)} ${fmt(ns(`unmask ${name}`)).padStart(9)} ${fmt(byte).padStart(10)} ` +
      `${fmt(word).padStart(10)} ${(word / byte).toFixed(2).padStart(11)}`,
  );
}
// The crossover: the shortest length from which the word loop's median is at most the byte
// loop's at every longer length measured.
let crossover: number | undefined;
for (let i = all.length - 1; i >= 0; i--) {
  const name = label(all[i]);
  if (ns(`word loop ${name}`)! > ns(`byte loop ${name}`)!) break;
  crossover = all[i];
}
console.log(
  crossover === undefined
    ? `${runtime}: the word loop never wins at the lengths measured`
    : `${runtime}: the word loop wins from ${crossover} B on (previous length measured: ` +
      `${all[all.indexOf(crossover) - 1] ?? "none"} B); WORD_MASK_THRESHOLD is ` +
      `${WORD_MASK_THRESHOLD}`,
);
