/**
 * What every micro-benchmark prints after mitata's own report: the medians by name.
 *
 * @module
 */

/** The part of mitata's `run()` result read here. */
interface Trials {
  benchmarks: Array<{ runs: Array<{ name: string; stats?: { p50: number }; error?: unknown }> }>;
}

/** The runtime running the benchmark, for the report's heading. */
export const runtime: string = "Bun" in globalThis ? "bun" : "deno";

/**
 * Formats nanoseconds in the unit that fits.
 *
 * @param ns A duration in nanoseconds.
 * @returns Such as `"93.1 ns"` or `"7.10 µs"`.
 */
export function time(ns: number): string {
  return ns < 1e3
    ? `${ns.toFixed(1)} ns`
    : ns < 1e6
    ? `${(ns / 1e3).toFixed(2)} µs`
    : `${(ns / 1e6).toFixed(2)} ms`;
}

/**
 * The median of every run, by name. Throws if a run failed, so a broken benchmark never
 * reports a time.
 *
 * @param result What mitata's `run()` resolved to.
 * @returns Medians in nanoseconds.
 */
export function medians(result: Trials): Map<string, number> {
  const out = new Map<string, number>();
  for (const trial of result.benchmarks) {
    for (const r of trial.runs) {
      if (r.stats === undefined) throw new Error(`${r.name} failed: ${String(r.error)}`);
      out.set(r.name, r.stats.p50);
    }
  }
  return out;
}

/**
 * Prints one line per run: its name and median.
 *
 * @param result What mitata's `run()` resolved to.
 * @param width The width of the name column.
 */
export function printMedians(result: Trials, width: number): void {
  console.log(`\n${runtime}: medians`);
  for (const [name, p50] of medians(result)) {
    console.log(`${name.padEnd(width)} ${time(p50).padStart(10)}`);
  }
}
