/**
 * What the end-to-end benchmarks (bench/fanout.ts, bench/e2e.ts) share to run servers and
 * loads as child processes and to measure them from outside: the runtimes' executables,
 * pinning to a core, CPU time and memory from /proc, waiting for a quiet machine, and children
 * whose stdout is read line by line and that never outlive the script. Linux only (/proc).
 *
 * @module
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { availableParallelism, release } from "node:os";
import process from "node:process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

import { option } from "./_server_cli.ts";

export { option };

/** A JavaScript runtime a server or a load runs on. */
export type Runtime = "deno" | "bun" | "node";

/**
 * The servers of the end-to-end benchmarks, by the name `--servers` takes: sluice
 * (bench/echo_server.ts) on each runtime and the anchors it is compared with (bench/anchors/).
 * Each echoes, publishes what `/pub` sends to every other connection, prints `ready PORT PID`
 * and takes `--port`, `--hostname`, `--stdin-lifeline` and `--deflate` (deno-upgrade refuses it).
 */
export const SERVERS = {
  "sluice-bun": { runtime: "bun", script: "bench/echo_server.ts" },
  "bun-serve": { runtime: "bun", script: "bench/anchors/bun_serve.ts" },
  "sluice-deno": { runtime: "deno", script: "bench/echo_server.ts" },
  "deno-upgrade": { runtime: "deno", script: "bench/anchors/deno_upgrade.ts" },
  "ws-node": { runtime: "node", script: "bench/anchors/ws_node.mjs" },
} as const satisfies Record<string, { runtime: Runtime; script: string }>;

/** A server's name. */
export type ServerName = keyof typeof SERVERS;

/** The repository's root, with a trailing slash: the children's working directory. */
export const ROOT: string = fileURLToPath(new URL("..", import.meta.url));

/**
 * A promise that resolves after `ms` (at once if `ms` ≤ 0).
 *
 * @param ms Milliseconds.
 * @returns The promise.
 */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));
}

/**
 * The median of some numbers (the mean of the middle two for an even count).
 *
 * @param values At least one number.
 * @returns Their median.
 */
export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/**
 * CPU time of a process so far, in seconds (utime + stime from /proc/PID/stat). Throws once
 * the process is gone.
 *
 * @param pid The process.
 * @returns Seconds of CPU.
 */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // Fields 14 and 15 of proc(5), counted after the command name; USER_HZ is 100 on Linux.
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/**
 * Busy CPU time of the whole machine so far, in seconds: all but idle and iowait (/proc/stat).
 *
 * @returns Seconds of CPU, summed over the cores.
 */
export function machineSeconds(): number {
  const fields = readFileSync("/proc/stat", "utf8").split("\n")[0].trim().split(/\s+/).slice(1)
    .map(Number);
  let busy = 0;
  for (let i = 0; i < fields.length; i++) {
    // user nice system idle iowait irq softirq steal guest guest_nice; guest time is already
    // counted in user and nice.
    if (i !== 3 && i !== 4 && i < 8) busy += fields[i];
  }
  return busy / 100;
}

/**
 * Waits until the machine is quiet: under 10 % of one core busy over a second, at most `ms`.
 *
 * @param ms The longest wait.
 * @returns Whether it got quiet.
 */
export async function quiet(ms: number): Promise<boolean> {
  const deadline = performance.now() + ms;
  for (;;) {
    const before = machineSeconds();
    await sleep(1000);
    if (machineSeconds() - before < 0.1) return true;
    if (performance.now() >= deadline) return false;
  }
}

/** How a benchmark keeps its runs clean on a shared machine. */
export interface QuietOptions {
  /** Before each attempt, wait up to this many seconds for an idle machine (0: don't). @default 0 */
  waitQuiet: number;
  /** Repeat an attempt during which others used more than this % of a core. @default Infinity */
  maxOthers: number;
  /** Repeat an attempt at most this many times. @default 2 */
  retries: number;
}

/**
 * The options `--wait-quiet SECONDS`, `--max-others PERCENT` and `--retries N`.
 *
 * @returns Their values.
 */
export function quietOptions(): QuietOptions {
  return {
    waitQuiet: Number(option("wait-quiet", "0")),
    maxOthers: Number(option("max-others", "Infinity")),
    retries: Number(option("retries", "2")),
  };
}

/**
 * Measures, and measures again while other processes disturbed the measurement: waits for a
 * quiet machine before each attempt (as `options` say), repeats an attempt during which others
 * used more than `options.maxOthers` % of a core, and keeps the least disturbed attempt.
 *
 * @param measure One attempt; its `otherCpu` is what others used meanwhile, in % of a core
 *   (NaN: unknown, never repeated).
 * @param label What to call the measurement when it is repeated.
 * @param options When to wait and repeat.
 * @returns The attempt that others disturbed least.
 */
export async function leastDisturbed<T extends { otherCpu: number }>(
  measure: () => Promise<T>,
  label: string,
  options: QuietOptions,
): Promise<T> {
  let best: T | undefined;
  for (let attempt = 1; attempt <= options.retries + 1; attempt++) {
    if (options.waitQuiet > 0 && !await quiet(options.waitQuiet * 1000)) {
      console.log(`  (the machine is still busy after ${options.waitQuiet} s: running anyway)`);
    }
    const next = await measure();
    // Of a run and its repeats, the one others disturbed least counts.
    if (best === undefined || next.otherCpu < best.otherCpu) best = next;
    if (!(next.otherCpu > options.maxOthers) || attempt > options.retries) break;
    console.log(
      `  ${label} others used ${next.otherCpu.toFixed(0)} % of a core meanwhile: again ` +
        `(repeat ${attempt} of ${options.retries})`,
    );
  }
  return best!;
}

/**
 * VmRSS of a process (/proc/PID/status).
 *
 * @param pid The process.
 * @returns KiB, or 0 once it is gone.
 */
export function rss(pid: number): number {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    return Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1] ?? 0);
  } catch {
    return 0;
  }
}

/**
 * The runtime's executable: the one installed from npm, else the one on PATH.
 *
 * @param runtime The runtime.
 * @returns A path or a command name.
 */
export function executable(runtime: Runtime): string {
  const local = `${ROOT}node_modules/.bin/${runtime}`;
  return existsSync(local) ? local : runtime;
}

/**
 * The command line that runs a script on a runtime (`deno run -A`, `bun`, `node`).
 *
 * @param runtime The runtime.
 * @param script The script, relative to ROOT or absolute.
 * @param args The script's arguments.
 * @returns The argv.
 */
export function command(runtime: Runtime, script: string, args: string[]): string[] {
  return runtime === "deno"
    ? [executable("deno"), "run", "-A", script, ...args]
    : [executable(runtime), script, ...args];
}

/**
 * Whether processes can be pinned to cores 0 and 1: `taskset` is there and so are 2 cores.
 *
 * @returns Whether to pin.
 */
export function canPin(): boolean {
  return availableParallelism() >= 2 && spawnSync("taskset", ["-V"]).status === 0;
}

/**
 * Moves this process (all its threads) to one core. It only waits for its children and
 * samples /proc, so it shares the load's core rather than the server's.
 *
 * @param core The core.
 */
export function pinSelf(core: number): void {
  spawnSync("taskset", ["-a", "-p", "-c", String(core), String(process.pid)]);
}

const children = new Set<ChildProcess>();
// Whatever happens to this script, its children do not outlive it.
process.on("exit", () => {
  for (const child of children) child.kill("SIGKILL");
});

/** A child process whose stdout is read line by line. */
export interface Child {
  process: ChildProcess;
  /** Resolves on exit. */
  exited: Promise<number | null>;
  /** The next line that starts with `word`, or rejects after `ms` or when the child exits. */
  line(word: string, ms: number): Promise<string>;
}

/**
 * Starts a child process in ROOT, with a pipe on stdin (a `--stdin-lifeline` server stops when
 * it ends), stdout read line by line and stderr passed through. Lines nobody asked for are
 * printed, prefixed with `label`, while `line()` waits. Killed if this script exits first.
 *
 * @param label What to call it in the output.
 * @param argv The command line.
 * @param core The core to pin it to with `taskset -c`, or undefined.
 * @returns The child.
 */
export function start(label: string, argv: string[], core: number | undefined): Child {
  const [file, ...args] = core === undefined ? argv : ["taskset", "-c", String(core), ...argv];
  const child = spawn(file, args, {
    cwd: ROOT,
    stdio: ["pipe", "pipe", "inherit"],
    env: { ...process.env, NO_COLOR: "1" },
  });
  children.add(child);
  let code: number | null | undefined;
  const exited = new Promise<number | null>((resolve) =>
    child.once("exit", (c) => {
      code = c;
      children.delete(child);
      resolve(c);
    })
  );
  const lines: string[] = [];
  const waiters: Array<() => void> = [];
  createInterface({ input: child.stdout! }).on("line", (line) => {
    lines.push(line);
    for (const wake of waiters.splice(0)) wake();
  });
  exited.then(() => {
    for (const wake of waiters.splice(0)) wake();
  });
  return {
    process: child,
    exited,
    async line(word, ms) {
      const deadline = performance.now() + ms;
      for (;;) {
        const at = lines.findIndex((l) => l.startsWith(`${word} `) || l === word);
        if (at !== -1) return lines.splice(at, 1)[0];
        for (const l of lines.splice(0)) console.log(`    [${label}] ${l}`);
        if (code !== undefined) throw new Error(`exited (${code}) before "${word}"`);
        const left = deadline - performance.now();
        if (left <= 0) throw new Error(`no "${word}" in ${ms / 1000} s`);
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, left);
          waiters.push(() => {
            clearTimeout(timer);
            resolve();
          });
        });
      }
    },
  };
}

/**
 * Stops a child: SIGTERM, then SIGKILL if it has not exited 3 s later; then closes its stdin.
 *
 * @param child The child.
 */
export async function stopChild(child: Child): Promise<void> {
  if (child.process.exitCode === null && child.process.signalCode === null) {
    child.process.kill("SIGTERM");
    const timer = setTimeout(() => child.process.kill("SIGKILL"), 3000);
    await child.exited;
    clearTimeout(timer);
  }
  child.process.stdin?.destroy();
}

/**
 * Starts one of SERVERS listening on 127.0.0.1, on a port of its choosing, with
 * `--stdin-lifeline` so that it stops if this script dies; it prints `ready PORT PID`.
 *
 * @param name The server.
 * @param core The core to pin it to, or undefined.
 * @param flags More flags for it, such as `--deflate`.
 * @returns The child.
 */
export function startServer(
  name: ServerName,
  core: number | undefined,
  flags: string[] = [],
): Child {
  const { runtime, script } = SERVERS[name];
  const listen = ["--port", "0", "--hostname", "127.0.0.1", "--stdin-lifeline"];
  return start(name, command(runtime, script, [...listen, ...flags]), core);
}

/**
 * The `key=value` words of a line, such as wsload's result line.
 *
 * @param line The line.
 * @returns The values by key, as strings.
 */
export function keyValues(line: string): Map<string, string> {
  return new Map(
    line.split(" ").filter((f) => f.includes("=")).map((f) => {
      const at = f.indexOf("=");
      return [f.slice(0, at), f.slice(at + 1)] as const;
    }),
  );
}

/**
 * Runs a harness's `main` when the file is the script: a setup problem (a bad option, no
 * compiler) prints its message alone and exits with 2; otherwise the exit code `main` set.
 *
 * @param script The harness's path, for the message (`bench/e2e.ts`).
 * @param main The harness.
 */
export async function runHarness(script: string, main: () => Promise<void>): Promise<void> {
  try {
    await main();
  } catch (error) {
    console.error(`${script}: ${error instanceof Error ? error.message : String(error)}`);
    process.exitCode = 2;
  }
  process.exit();
}

/**
 * Writes a harness's results as JSON and says where.
 *
 * @param path The file.
 * @param results What to write.
 */
export function writeResults(path: string, results: unknown): void {
  writeFileSync(path, `${JSON.stringify(results, null, 2)}\n`);
  console.log(`\nwrote ${path}`);
}

/**
 * The machine and the software a harness ran on, for its report: CPU, cores, memory, kernel,
 * the runtimes' versions, the date and the command line.
 *
 * @param script The harness's path, for the command line (`bench/scaling.ts`).
 * @returns The facts by name.
 */
export function machineInfo(script: string): Record<string, string> {
  const first = (argv: string[]) => {
    const out = spawnSync(argv[0], argv.slice(1), { encoding: "utf8" });
    return out.status === 0 ? out.stdout.split("\n")[0].trim() : "?";
  };
  const kib = Number(/^MemTotal:\s+(\d+)/m.exec(readFileSync("/proc/meminfo", "utf8"))?.[1]);
  return {
    cpu: /^model name\s*:\s*(.*)$/m.exec(readFileSync("/proc/cpuinfo", "utf8"))?.[1] ?? "?",
    cores: String(availableParallelism()),
    memory: `${(kib / 1048576).toFixed(1)} GiB`,
    kernel: release(),
    deno: first([executable("deno"), "--version"]),
    bun: first([executable("bun"), "--version"]),
    node: first([executable("node"), "--version"]),
    cc: first([process.env.CC ?? "cc", "--version"]),
    date: new Date().toISOString(),
    command: `${"Bun" in globalThis ? "bun" : "deno run -A"} ${script} ${
      process.argv.slice(2).join(" ")
    }`.trim(),
  };
}

/** What a load generator prints after `result ` (and wsload's fields mapped to the same). */
export type LoadResult = Record<string, number | string>;

/** A number from a load result, NaN if absent or not a number. */
export function num(r: LoadResult | undefined, key: string): number {
  const value = r?.[key];
  return typeof value === "number" ? value : typeof value === "string" ? Number(value) : NaN;
}

/** The median of the finite values, NaN if there are none. */
export function medianOf(values: number[]): number {
  const finite = values.filter(Number.isFinite);
  return finite.length > 0 ? median(finite) : NaN;
}

/** A comma-separated `--flag` of names from `all` (default: all of them), each checked. */
export function list<T extends string>(flag: string, all: readonly T[]): T[] {
  const given = option(flag, all.join(",")).split(",").filter((x) => x !== "") as T[];
  for (const x of given) {
    if (!all.includes(x)) throw new RangeError(`--${flag}: ${x}? (${all.join(", ")})`);
  }
  return given;
}

/** /proc readings at one moment; NaN where a process was gone. */
export interface Sample {
  at: number;
  server: number;
  load: number;
  self: number;
  machine: number;
}

/** A process's CPU seconds, NaN once it is gone. */
export function cpuOrNaN(pid: number): number {
  try {
    return cpuSeconds(pid);
  } catch {
    return NaN;
  }
}
