/**
 * The end-to-end benchmark: sluice on Bun and on Deno against the servers an application would
 * otherwise use (Bun.serve, Deno.upgradeWebSocket, Node's `ws`), over real loopback sockets,
 * loaded by the native load generator bench/load/sluice_load.c.
 *
 *     bun bench/e2e.ts            (or: deno run -A bench/e2e.ts)
 *         [--scenarios S1,S2,S3,S4,S5,overload,deflate] [--servers sluice-bun,bun-serve,...]
 *         [--rounds 3] [--seconds 5] [--warmup 3] [--rss-cap 2048]
 *         [--wait-quiet SECONDS] [--max-others PERCENT] [--retries 2]
 *         [--json bench/results/e2e.json] [--out-dir bench/results] [--wsload PATH]
 *         [--load PATH] [--s1-conns 100] [--s1-inflight 16] [--s1-size 32] ...
 *
 * Scenarios (each setting is an option `--<scenario>-<setting>`, defaults shown):
 * - S1 echo: `conns` 100 × `inflight` 16 binary messages of `size` 32 B; msgs/s.
 * - S2 echo: `conns` 8 × `inflight` 1 binary messages of `size` 64 KiB; MB/s.
 * - S3 connect: `conns` 64 slots, each handshake → Close → EOF, again; connections/s.
 * - S4 idle: `conns` 10,000 open connections; the server's KiB per connection.
 * - S5 fanout: `subscribers` 1,000, messages of `size` 64 B, `window` 32; deliveries/s.
 * - overload: `subscribers` 1,000 of which `slow` 100 never read, `rate` 1,000 msg/s offered,
 *   `size` 64 B; deliveries/s to the fast subscribers, and the server's peak RSS.
 * - deflate: permessage-deflate echo, `conns` 32 × `inflight` 4, realistic JSON messages of
 *   1 to 16 KiB (bench/_json_fixtures.ts) sent pre-compressed; msgs/s and MB/s of raw bytes.
 *
 * Each run starts a fresh server (bench/echo_server.ts for sluice, bench/anchors/* for the
 * others; with `--wsload`, one for both loads) pinned to core 0 and the load pinned to core 1
 * (`taskset`, when there is taskset and at least 2 cores; this process moves to core 1 too: it
 * only waits and samples /proc). Rounds are interleaved: round 1 runs every scenario's servers
 * one after the other, then round 2…, so noise on the machine falls on all servers alike. A
 * ratio (sluice / anchor) is the median over the rounds of each round's ratio, the two runs of
 * a pair being from the same round.
 *
 * What is measured, and how:
 * - The metric comes from the load's result line (its own measured window, after `--warmup`).
 * - Load CPU: the load's own figure (`client_cpu_pct`, getrusage over its window).
 * - Server CPU: /proc/PID/stat sampled every 250 ms with timestamps (interpolated between
 *   samples). The load does not say when its window began, only how long it was (S s, its
 *   `seconds`): the window [W, W + S] began no earlier than load start + warm-up and ended no
 *   later than its result line, so [result line − S, load start + warm-up + S] lies inside it
 *   whatever connecting and draining took, and the server's CPU is taken over that. When
 *   setup and drain leave less than 1 s of it (short runs, the overload drain), the span from
 *   load start + warm-up to the result line is used instead, which holds the whole window and
 *   some setup or drain, and the run says so ("CPU≈"). wsload reads the server's CPU itself.
 * - Server CPU per message (per connection in S3, per delivery in fan-out): the server's CPU
 *   over the load's rate, in µs. It moves less than a rate when the machine is shared or the
 *   load, not the server, sets the pace, and it is what a throughput target comes down to once
 *   the server has a core to itself. Each ratio is also given by it: the anchor's µs over
 *   sluice's, the median of the rounds' (above 1, sluice spends less per message). On loopback
 *   the kernel's work for a packet runs on the core that sent it (in its softirq, counted to
 *   the sending process): the server's CPU holds the delivery of what it writes, and the load's
 *   holds both ends of each TCP handshake (in S3 much of the load's core).
 *   "Others": machine-wide busy CPU (/proc/stat) over the same span less the server's, the
 *   load's and this process's: what other processes took from the run.
 * - Peak RSS: VmRSS (/proc/PID/status) every 250 ms from the server's start to the load's end.
 *   A server whose RSS passes `--rss-cap` MiB is killed and reported so: for an anchor that is
 *   a finding (Deno.upgradeWebSocket buffers without bound under overload), for sluice a
 *   failure.
 * - S4: VmRSS 1 s after the server printed `ready` (before) and 2 s after the load printed
 *   `open N` (after); KiB per connection = (after − before) / N. A garbage collection cannot
 *   be forced from outside: the settling time is all there is.
 *
 * The machine may be shared: each run reports the CPU other processes used meanwhile; with
 * `--wait-quiet S` each run first waits up to S s for an idle machine, and `--max-others P`
 * repeats a run (up to `--retries` times) during which others used more than P % of a core,
 * keeping the least disturbed attempt (as bench/fanout.ts does).
 *
 * A run whose load reports errors, whose server died, or whose result lacks the metric is
 * FAILED: shown in its line, in the tables and in the report, never dropped; the script then
 * exits 1. (An anchor killed at the RSS cap is reported, not failed; a 0 with no error stands:
 * a ratio over an anchor at 0 is ∞.) Medians are over the runs that did not fail. S3 reads
 * "load-bound" rather than "NOT met" when sluice's run had the load at ≥ 90 % of its core and
 * the server under 90 %: the load's limit was measured, not the server's.
 *
 * The load generator is compiled on first use into bench/load/.build/ (`cc -O2 -DHAVE_ZLIB …
 * -lz`, or without zlib if that fails; `CC` names another compiler; rebuilt when the source is
 * newer) and must pass its selftest; `--load PATH` uses another binary with the same command
 * line. The deflate scenario's messages are written there too (deflate_messages.bin).
 * `--wsload PATH` adds, for the echo, connect, idle and fanout scenarios, a run of the
 * development tool wsload (outside the project; optional) in every round, against the same
 * server process as ours (a fresh one in S4), the two loads taking turns going first: its
 * tables and ratios follow ours, then both instruments side by side (wsload ÷ ours per
 * server, the median of the rounds' ratios), as a cross-check of the load generator. The
 * verdicts and the chart are ours.
 *
 * Prints a line per run, then per scenario a table of medians and the ratios with their
 * targets; writes the runs and summaries as JSON (`--json`), and to `--out-dir` the report
 * e2e.md (tables, machine, versions, command) and the chart e2e.svg (each ratio on a log
 * scale, anchor = 1×, the target marked). Linux only (/proc).
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from "node:fs";
import { availableParallelism, release } from "node:os";
import process from "node:process";
import { constants, deflateRawSync } from "node:zlib";
import { jsonMessage } from "./_json_fixtures.ts";
import {
  canPin,
  type Child,
  cpuOrNaN,
  cpuSeconds,
  executable,
  keyValues,
  leastDisturbed,
  list,
  type LoadResult,
  machineSeconds,
  median,
  medianOf,
  num,
  option,
  pinSelf,
  quietOptions,
  ROOT,
  rss,
  runHarness,
  type Sample,
  type ServerName,
  SERVERS,
  sleep,
  start,
  startServer,
  stopChild,
} from "./_proc.ts";

// ---------------------------------------------------------------- servers and scenarios

type Mode = "echo" | "connect" | "idle" | "fanout" | "overload";

/** A target: `a` / the best of `b` (same round) must be at least (or at most) `at`. */
interface Target {
  a: ServerName;
  b: ServerName[];
  at: number;
  /** The ratio must be at most `at` (memory: less is better). @default false */
  most?: boolean;
}

/** A column of a scenario's table besides the metric, medians over the rounds. */
interface Extra {
  label: string;
  value(run: Run): number;
  format(n: number): string;
}

interface Scenario {
  /** Its name in the chart. */
  short: string;
  /** What it does, for the reports. */
  title(s: Settings): string;
  mode: Mode;
  servers: ServerName[];
  /** Servers start with `--deflate` and the load sends the fixture file. @default false */
  deflate?: boolean;
  /**
   * Its settings with their defaults, each an option `--<name>-<key>` and passed to the load as
   * FLAGS says.
   */
  defaults: Settings;
  /** The metric's unit; `lower`: less is better. */
  unit: string;
  lower?: boolean;
  /** The metric from a load result (S4 computes it from RSS instead). */
  value(r: LoadResult): number;
  format(n: number): string;
  /**
   * What the server's CPU is counted per: the thing the load's `msgs_per_s` counts (a message
   * echoed, a connection handshaken and closed, a delivery). None for S4.
   */
  per?: "msg" | "conn" | "delivery";
  extras: Extra[];
  targets: Target[];
  /** S3: a ratio that misses while the load, not the server, was saturated says so. */
  loadBoundExcuses?: boolean;
}

type Settings = Record<string, number>;

/** The load generator's flag for each setting (wsload takes the same). */
const FLAGS: Record<string, string> = {
  conns: "-c",
  subscribers: "-c",
  inflight: "-P",
  window: "-P",
  size: "-s",
  slow: "--slow",
  rate: "-r",
};

/** A scenario's settings as load generator flags, between the mode and the URL. */
function loadFlags(s: Settings): string[] {
  return Object.entries(s).flatMap(([key, value]) => [FLAGS[key], `${value}`]);
}

const SCENARIO_NAMES = ["S1", "S2", "S3", "S4", "S5", "overload", "deflate"] as const;
type ScenarioName = typeof SCENARIO_NAMES[number];

const count = (n: number) => Number.isFinite(n) ? Math.round(n).toLocaleString("en-US") : "–";
const fixed = (digits: number) => (n: number) => Number.isFinite(n) ? n.toFixed(digits) : "–";
const mib = (kib: number) => Number.isFinite(kib) ? `${(kib / 1024).toFixed(0)} MiB` : "–";
const p99 = (): Extra => ({
  label: "p99 latency",
  value: (run) => num(run.result, "p99_us") / 1000,
  format: (n) => Number.isFinite(n) ? `${n.toFixed(2)} ms` : "–",
});
const echoTitle = (s: Settings) =>
  `echo, ${s.size >= 1024 ? `${s.size / 1024} KiB` : `${s.size} B`} binary, ${s.conns} ` +
  `connections × ${s.inflight} in flight`;
/** sluice on both runtimes and the runtimes' own WebSocket servers. */
const NATIVE_ANCHORED: ServerName[] = ["sluice-bun", "bun-serve", "sluice-deno", "deno-upgrade"];
const msgsPerS = (r: LoadResult) => num(r, "msgs_per_s");
/** Each sluice against its own runtime's server: sluice-bun / bun-serve, sluice-deno / … */
const OWN_RUNTIME = (bun: number, deno: number, most = false): Target[] => [
  { a: "sluice-bun", b: ["bun-serve"], at: bun, most },
  { a: "sluice-deno", b: ["deno-upgrade"], at: deno, most },
];
/** Each sluice against the best of some anchors. */
const SLUICE_VS = (anchor: ServerName[], at: number): Target[] => [
  { a: "sluice-bun", b: anchor, at },
  { a: "sluice-deno", b: anchor, at },
];

const SCENARIOS: Record<ScenarioName, Scenario> = {
  S1: {
    short: "echo 32 B",
    title: echoTitle,
    mode: "echo",
    servers: ["sluice-bun", "bun-serve", "sluice-deno", "deno-upgrade", "ws-node"],
    defaults: { conns: 100, inflight: 16, size: 32 },
    unit: "msgs/s",
    value: msgsPerS,
    format: count,
    per: "msg",
    extras: [p99()],
    targets: [...OWN_RUNTIME(1, 10), ...SLUICE_VS(["ws-node"], 10)],
  },
  S2: {
    short: "echo 64 KiB",
    title: echoTitle,
    mode: "echo",
    servers: NATIVE_ANCHORED,
    defaults: { conns: 8, inflight: 1, size: 65536 },
    unit: "MB/s",
    value: (r) => num(r, "bytes_per_s") / 1e6,
    format: fixed(1),
    per: "msg",
    extras: [p99()],
    targets: OWN_RUNTIME(1, 1),
  },
  S3: {
    short: "connect",
    title: (s) => `connect: ${s.conns} slots, each handshake → Close → EOF, again`,
    mode: "connect",
    servers: NATIVE_ANCHORED,
    // Fewer slots leave the server and the load waiting on each other: at 8, Bun.serve got
    // two thirds to three quarters of the connections per second it gets at 64 (with either
    // load), and spent more CPU on each, as the load did.
    defaults: { conns: 64 },
    unit: "conn/s",
    value: msgsPerS,
    format: count,
    per: "conn",
    extras: [],
    targets: OWN_RUNTIME(1, 1),
    loadBoundExcuses: true,
  },
  S4: {
    short: "idle memory",
    title: (s) => `idle: ${count(s.conns)} open connections, server memory per connection`,
    mode: "idle",
    servers: NATIVE_ANCHORED,
    defaults: { conns: 10000 },
    unit: "KiB/conn",
    lower: true,
    value: () => NaN,
    format: fixed(2),
    extras: [
      { label: "RSS before", value: (run) => run.idle?.before ?? NaN, format: mib },
      { label: "RSS after", value: (run) => run.idle?.after ?? NaN, format: mib },
    ],
    targets: OWN_RUNTIME(1, 0.5, true),
  },
  S5: {
    short: "fan-out",
    title: (s) => `fan-out: ${count(s.subscribers)} subscribers, ${s.size} B, window ${s.window}`,
    mode: "fanout",
    servers: NATIVE_ANCHORED,
    defaults: { subscribers: 1000, window: 32, size: 64 },
    unit: "deliveries/s",
    value: msgsPerS,
    format: count,
    per: "delivery",
    extras: [p99()],
    targets: OWN_RUNTIME(0.7, 10),
  },
  overload: {
    short: "slow subscribers",
    title: (s) =>
      `fan-out to ${count(s.subscribers)} subscribers of which ${s.slow} never read, ` +
      `${count(s.rate)} msg/s offered, ${s.size} B`,
    mode: "overload",
    servers: NATIVE_ANCHORED,
    defaults: { subscribers: 1000, slow: 100, rate: 1000, size: 64 },
    unit: "fast deliveries/s",
    value: msgsPerS,
    format: count,
    per: "delivery",
    extras: [
      { label: "offered/s", value: (run) => num(run.result, "offered_per_s"), format: count },
      { label: "slow closed", value: (run) => num(run.result, "slow_closed"), format: count },
    ],
    targets: SLUICE_VS(["bun-serve"], 0.95),
  },
  deflate: {
    short: "deflate echo",
    title: (s) =>
      `permessage-deflate echo, JSON 1–16 KiB, ${s.conns} connections × ${s.inflight} in flight`,
    mode: "echo",
    servers: ["sluice-bun", "sluice-deno", "bun-serve", "ws-node"],
    deflate: true,
    defaults: { conns: 32, inflight: 4 },
    unit: "msgs/s",
    value: msgsPerS,
    format: count,
    per: "msg",
    extras: [{
      label: "MB/s (raw)",
      value: (run) => num(run.result, "bytes_per_s") / 1e6,
      format: fixed(1),
    }],
    targets: SLUICE_VS(["ws-node", "bun-serve"], 1),
  },
};

// ---------------------------------------------------------------- the load generator

const LOAD_SOURCE = `${ROOT}bench/load/sluice_load.c`;
const BUILD = `${ROOT}bench/load/.build`;

/**
 * Compiles bench/load/sluice_load.c into bench/load/.build/ unless the binary is newer than the
 * source: with zlib (it then checks compressed echoes) when the machine has it, else without.
 *
 * @returns The binary and whether it has zlib.
 */
function buildLoad(): { path: string; zlib: boolean } {
  const path = `${BUILD}/sluice_load`;
  const flavour = `${path}.flavour`;
  if (!existsSync(LOAD_SOURCE)) throw new Error(`${LOAD_SOURCE} is missing`);
  if (
    existsSync(path) && existsSync(flavour) &&
    statSync(path).mtimeMs >= statSync(LOAD_SOURCE).mtimeMs
  ) {
    return { path, zlib: readFileSync(flavour, "utf8").trim() === "zlib" };
  }
  mkdirSync(BUILD, { recursive: true });
  const cc = process.env.CC ?? "cc";
  const compile = (extra: string[], libs: string[]) =>
    spawnSync(cc, ["-O2", ...extra, "-o", `${path}.tmp`, LOAD_SOURCE, ...libs], {
      encoding: "utf8",
    });
  let zlib = true;
  let built = compile(["-DHAVE_ZLIB"], ["-lz"]);
  if ((built.error as { code?: string } | undefined)?.code === "ENOENT") {
    throw new Error(
      `no C compiler: \`${cc}\` is not on PATH. Install one (apt-get install gcc), set CC, ` +
        "or pass --load PATH to a built load generator.",
    );
  }
  if (built.status !== 0) {
    zlib = false;
    built = compile([], []);
  }
  if (built.status !== 0) {
    throw new Error(`${cc} could not compile ${LOAD_SOURCE}:\n${built.stderr}`);
  }
  renameSync(`${path}.tmp`, path);
  writeFileSync(flavour, zlib ? "zlib\n" : "plain\n");
  console.log(`built ${path} (${zlib ? "with" : "without"} zlib)`);
  return { path, zlib };
}

/**
 * The load generator to run: `--load PATH`, or the one {@linkcode buildLoad} makes, once it has
 * passed its selftest. Shared with bench/scaling.ts.
 *
 * @returns The binary and whether it has zlib (a given binary is taken to have none).
 */
export function loadGenerator(): { path: string; zlib: boolean } {
  const given = option("load", "");
  const built = given !== "" ? { path: given, zlib: false } : buildLoad();
  const selftest = spawnSync(built.path, ["selftest"], { encoding: "utf8" });
  if (selftest.status !== 0) {
    throw new Error(`${built.path} selftest failed:\n${selftest.stdout}${selftest.stderr}`);
  }
  return built;
}

/**
 * Writes the deflate scenario's messages: JSON of 1, 2, 4, 8 and 16 KiB in turn (an API
 * response, then product lists), 80 different ones, each as the load generator's record
 * `[u32 LE raw length][raw][u32 LE compressed length][compressed]`, compressed alone as a
 * client without context takeover does (RFC 7692 §7.2.1: sync flush, the trailing 00 00 ff ff
 * removed).
 *
 * @returns The file's path.
 */
function writeDeflateMessages(): string {
  const path = `${BUILD}/deflate_messages.bin`;
  const parts: Uint8Array[] = [];
  const u32 = (n: number) => {
    const bytes = new Uint8Array(4);
    new DataView(bytes.buffer).setUint32(0, n, true);
    return bytes;
  };
  for (let seed = 1; seed <= 16; seed++) {
    for (const size of [1024, 2048, 4096, 8192, 16384]) {
      const raw = size === 1024 ? jsonMessage("api", seed) : jsonMessage("list", seed, size);
      const flushed = deflateRawSync(raw, { finishFlush: constants.Z_SYNC_FLUSH });
      if (flushed.subarray(-4).join() !== "0,0,255,255") {
        throw new Error("deflateRawSync's sync flush does not end in 00 00 ff ff");
      }
      const comp = flushed.subarray(0, -4);
      parts.push(u32(raw.length), raw, u32(comp.length), comp);
    }
  }
  mkdirSync(BUILD, { recursive: true });
  writeFileSync(path, Buffer.concat(parts));
  return path;
}

// ---------------------------------------------------------------- one run

type Load = "sluice_load" | "wsload";

/** One run: a scenario, a server, a load, a round. CPU in % of one core, memory in KiB. */
interface Run {
  round: number;
  scenario: ScenarioName;
  server: ServerName;
  load: Load;
  /** The scenario's metric. */
  value: number;
  /** The load's result, as it printed it. */
  result?: LoadResult;
  serverCpu: number;
  /**
   * The server's CPU per message (per connection for S3, per delivery for fan-out) in µs:
   * `serverCpu` over the load's `msgs_per_s`. Less noisy than a rate: a disturbed or an
   * under-loaded run has a lower rate but about the same cost per message.
   */
  serverUs: number;
  loadCpu: number;
  /** CPU used by other processes on the machine meanwhile. */
  otherCpu: number;
  /** The server CPU's span holds setup or drain (see the module doc). */
  cpuApprox: boolean;
  startRss: number;
  peakRss: number;
  /** S4: RSS before and after, and the connections the load held open. */
  idle?: { before: number; after: number; open: number };
  /** Killed when its RSS passed --rss-cap. */
  capped: boolean;
  /** Why the run failed. */
  error?: string;
}

interface Context {
  pin: boolean;
  loadPath: string;
  wsload: string;
  deflateFile: string;
  warmup: number;
  seconds: number;
  /** KiB. */
  rssCap: number;
  settings: Record<ScenarioName, Settings>;
}

/** `key` at time `t`, interpolated between the samples around it (clamped at the ends). */
function interpolate(samples: Sample[], key: keyof Sample, t: number): number {
  const known = samples.filter((s) => Number.isFinite(s[key]));
  if (known.length === 0) return NaN;
  const i = known.findIndex((s) => s.at >= t);
  if (i === -1) return known[known.length - 1][key];
  if (i === 0) return known[0][key];
  const [a, b] = [known[i - 1], known[i]];
  return a[key] + ((b[key] - a[key]) * (t - a.at)) / (b.at - a.at);
}

/** The load's command line for a scenario. */
function loadArgv(
  scenario: Scenario,
  load: Load,
  s: Settings,
  port: string,
  pid: number,
  cx: Context,
): string[] {
  const url = `ws://127.0.0.1:${port}/`;
  const timing = ["-d", `${cx.seconds}`, "-w", `${cx.warmup}`];
  if (load === "wsload") {
    const pidArgs = ["--server-pid", `${pid}`];
    return scenario.mode === "idle"
      ? [cx.wsload, "idle", ...loadFlags(s), "-T", "2", "-w", "0", ...pidArgs, url]
      : [cx.wsload, scenario.mode, ...loadFlags(s), ...timing, ...pidArgs, url];
  }
  if (scenario.mode === "idle") return [cx.loadPath, "idle", ...loadFlags(s), url];
  const deflate = scenario.deflate ? ["--deflate", cx.deflateFile] : [];
  return [cx.loadPath, scenario.mode, ...loadFlags(s), ...deflate, ...timing, url];
}

/** Parses wsload's `wsload key=value …` line into the load generator's field names. */
function wsloadResult(line: string): LoadResult {
  const r: LoadResult = Object.fromEntries(keyValues(line));
  r.bytes_per_s = num(r, "MB_per_s") * 1e6;
  r.seconds = num(r, "dur_s");
  r.error = num(r, "errors") > 0 ? `wsload counted ${r.errors} errors` : "";
  return r;
}

/**
 * Starts one server and runs the loads against it one after the other, measuring each. Two
 * loads on one server compare the instruments on the same process: a fresh server's speed
 * varies from one process to the next (JIT, heap), which would otherwise land in the
 * comparison.
 *
 * @returns A run per load; `error` set on each that failed.
 */
async function measure(
  round: number,
  name: ScenarioName,
  server: ServerName,
  loads: Load[],
  cx: Context,
): Promise<Run[]> {
  const scenario = SCENARIOS[name];
  const s = cx.settings[name];
  const runs: Run[] = loads.map((load) => ({
    round,
    scenario: name,
    server,
    load,
    value: NaN,
    serverCpu: NaN,
    serverUs: NaN,
    loadCpu: NaN,
    otherCpu: NaN,
    cpuApprox: false,
    startRss: NaN,
    peakRss: NaN,
    capped: false,
  }));
  const child = startServer(server, cx.pin ? 0 : undefined, scenario.deflate ? ["--deflate"] : []);
  let loader: Child | undefined;
  let sampler: ReturnType<typeof setInterval> | undefined;
  let run = runs[0];
  try {
    const [, port, pidText] = (await child.line("ready", 30_000)).split(" ");
    const pid = Number(pidText);
    let loadPid = 0;
    let samples: Sample[] = [];
    const sample = () => {
      const now: Sample = {
        at: performance.now(),
        server: cpuOrNaN(pid),
        load: loadPid > 0 ? cpuOrNaN(loadPid) : NaN,
        self: cpuSeconds(process.pid),
        machine: machineSeconds(),
      };
      samples.push(now);
      const kib = rss(pid);
      run.peakRss = Math.max(run.peakRss, kib);
      if (kib > cx.rssCap && !run.capped) {
        run.capped = true;
        child.process.kill("SIGKILL");
      }
    };
    run.startRss = run.peakRss = rss(pid);
    sampler = setInterval(sample, 250);
    // The server's end, as a value to race the load's lines against.
    const died = child.exited.then((code) => ({ died: code }));
    for (const next of runs) {
      run = next;
      try {
        if (child.process.exitCode !== null || child.process.signalCode !== null) {
          throw new Error("the server exited during an earlier load");
        }
        const load = run.load;
        if (Number.isNaN(run.startRss)) run.startRss = run.peakRss = rss(pid);
        samples = [];
        const before = scenario.mode === "idle" ? (await sleep(1000), rss(pid)) : NaN;
        const launched = performance.now();
        loader = start(load, loadArgv(scenario, load, s, port, pid, cx), cx.pin ? 1 : undefined);
        loadPid = loader.process.pid ?? 0;
        sample();
        const budget = (cx.warmup + cx.seconds + 60) * 1000;
        if (scenario.mode === "idle" && load === "sluice_load") {
          const opened = await Promise.race([loader.line("open", budget), died]);
          if (typeof opened !== "string") throw new Error(serverEnd(run, opened.died, cx));
          await sleep(2000);
          run.idle = { before, after: rss(pid), open: Number(opened.split(" ")[1]) };
          loader.process.stdin?.end();
        }
        const line = await Promise.race([
          loader.line(load === "wsload" ? "wsload" : "result", budget),
          died,
        ]);
        if (typeof line !== "string") throw new Error(serverEnd(run, line.died, cx));
        const ended = performance.now();
        sample();
        run.result = load === "wsload"
          ? wsloadResult(line)
          : JSON.parse(line.slice("result ".length)) as LoadResult;
        run.loadCpu = num(run.result, "client_cpu_pct");
        if (scenario.mode === "idle") {
          run.idle ??= {
            before: num(run.result, "server_rss_before_kb"),
            after: num(run.result, "server_rss_after_kb"),
            open: num(run.result, "open"),
          };
          run.value = (run.idle.after - run.idle.before) / run.idle.open;
        } else {
          run.value = scenario.value(run.result);
          measureCpu(run, samples, launched, ended, cx);
          // % of a core is 1e4 µs per second.
          run.serverUs = (run.serverCpu * 1e4) / num(run.result, "msgs_per_s");
        }
        run.error = verdictOf(run, scenario, cx);
      } catch (error) {
        run.error = error instanceof Error ? error.message : String(error);
      } finally {
        if (loader !== undefined) await stopChild(loader);
        loader = undefined;
        loadPid = 0;
      }
    }
  } catch (error) {
    // The server never got ready: every run fails with it.
    for (const r of runs) r.error ??= error instanceof Error ? error.message : String(error);
  } finally {
    if (sampler !== undefined) clearInterval(sampler);
    if (loader !== undefined) await stopChild(loader);
    await stopChild(child);
  }
  return runs;
}

/** Why the server is gone, as an error for the run. */
function serverEnd(run: Run, code: number | null, cx: Context): string {
  if (!run.capped) return `the server exited (${code ?? "signal"}) during the run`;
  return `killed: its RSS passed the cap (${(cx.rssCap / 1024).toFixed(0)} MiB)`;
}

/** Server CPU, and others', over the part of the run that lies inside the load's window. */
function measureCpu(
  run: Run,
  samples: Sample[],
  launched: number,
  ended: number,
  cx: Context,
): void {
  const window =
    (Number.isFinite(num(run.result, "seconds")) ? num(run.result, "seconds") : cx.seconds) * 1000;
  let from = ended - window;
  let to = launched + cx.warmup * 1000 + window;
  if (to - from < 1000) {
    from = launched + cx.warmup * 1000;
    to = ended;
    run.cpuApprox = true;
  }
  const delta = (key: keyof Sample) =>
    interpolate(samples, key, to) - interpolate(samples, key, from);
  const seconds = (to - from) / 1000;
  if (run.load === "wsload") {
    // wsload read the server's /proc itself over its exact window.
    run.serverCpu = num(run.result, "server_cpu_pct");
    run.cpuApprox = false;
  } else {
    run.serverCpu = (100 * delta("server")) / seconds;
  }
  const others = delta("machine") - delta("server") - delta("load") - delta("self");
  run.otherCpu = Math.max(0, (100 * others) / seconds);
}

/** Whether the run failed: the error to show, or undefined. */
function verdictOf(run: Run, scenario: Scenario, cx: Context): string | undefined {
  // A server killed at the cap makes the load count lost connections: the kill is the news.
  if (run.capped) return serverEnd(run, null, cx);
  const errors = num(run.result, "errors");
  if (errors > 0) {
    const first = run.result?.error;
    return `the load counted ${errors} error(s)${first ? `: ${first}` : ""}`;
  }
  const conns = cx.settings[run.scenario].conns;
  if (run.idle !== undefined && run.idle.open !== conns) {
    return `${run.idle.open} of ${conns} connections open`;
  }
  // Zero with no error stands: an anchor that delivers nothing under overload is a finding.
  if (!Number.isFinite(run.value)) return `no ${scenario.unit} in the load's result`;
  return undefined;
}

/** Whether a capped run is a finding (an anchor's unbounded growth) rather than a failure. */
function failed(run: Run): boolean {
  if (run.error === undefined) return false;
  return !(run.capped && !run.server.startsWith("sluice"));
}

// ---------------------------------------------------------------- summaries and ratios

/** The load used ≥ 90 % of its core while the server had more than 10 % of its own left. */
function loadBound(serverCpu: number, loadCpu: number): boolean {
  return loadCpu >= 90 && serverCpu < 90;
}

interface Summary {
  scenario: ScenarioName;
  server: ServerName;
  load: Load;
  runs: number;
  failed: number;
  capped: number;
  value: number;
  min: number;
  max: number;
  serverCpu: number;
  /** Median of the runs' server CPU per message (per connection, per delivery) in µs. */
  serverUs: number;
  loadCpu: number;
  /** CPU that other processes took meanwhile: a disturbed run shows here. */
  otherCpu: number;
  peakRss: number;
  extras: number[];
  loadBound: boolean;
}

function summarize(runs: Run[], scenario: ScenarioName, server: ServerName, load: Load): Summary {
  const mine = runs.filter((r) =>
    r.scenario === scenario && r.server === server && r.load === load
  );
  const ok = mine.filter((r) => r.error === undefined);
  const values = ok.map((r) => r.value);
  const serverCpu = medianOf(ok.map((r) => r.serverCpu));
  const loadCpu = medianOf(ok.map((r) => r.loadCpu));
  return {
    scenario,
    server,
    load,
    runs: mine.length,
    failed: mine.filter(failed).length,
    capped: mine.filter((r) => r.capped).length,
    value: medianOf(values),
    min: values.length > 0 ? Math.min(...values) : NaN,
    max: values.length > 0 ? Math.max(...values) : NaN,
    serverCpu,
    serverUs: medianOf(ok.map((r) => r.serverUs)),
    loadCpu,
    otherCpu: medianOf(ok.map((r) => r.otherCpu)),
    peakRss: medianOf(mine.map((r) => r.peakRss)),
    extras: SCENARIOS[scenario].extras.map((x) => medianOf(ok.map((r) => x.value(r)))),
    loadBound: loadBound(serverCpu, loadCpu),
  };
}

type Verdict = "met" | "NOT met" | "load-bound" | "not run";

interface Ratio {
  scenario: ScenarioName;
  /** The load whose runs it is computed from (wsload's: the cross-check). */
  load: Load;
  label: string;
  target: Target;
  /** Median over the rounds of each round's ratio. */
  value: number;
  /**
   * The same by CPU: median over the rounds of the anchor's server µs per message (the leanest
   * anchor's) over sluice's. Above 1, sluice spends less per message. NaN for S4.
   */
  cpu: number;
  /** Rounds with both sides measured. */
  rounds: number;
  verdict: Verdict;
}

/** A ratio as text: `0.83×`, `11.6×`, `∞×` (the anchor delivered nothing). */
function times(ratio: number): string {
  if (Number.isNaN(ratio)) return "–";
  if (!Number.isFinite(ratio)) return "∞×";
  return `${ratio < 10 ? ratio.toFixed(2) : ratio.toFixed(1)}×`;
}

function targetText(t: Target): string {
  return `${t.most ? "≤" : "≥"} ${t.at}`;
}

function ratioLabel(t: Target): string {
  return t.b.length === 1 ? `${t.a} / ${t.b[0]}` : `${t.a} / max(${t.b.join(", ")})`;
}

function ratioOf(
  runs: Run[],
  name: ScenarioName,
  t: Target,
  servers: ServerName[],
  summaries: Summary[],
  load: Load,
): Ratio {
  const label = ratioLabel(t);
  if (![t.a, ...t.b].every((x) => servers.includes(x))) {
    return {
      scenario: name,
      load,
      label,
      target: t,
      value: NaN,
      cpu: NaN,
      rounds: 0,
      verdict: "not run",
    };
  }
  const lower = SCENARIOS[name].lower === true;
  const ratios: number[] = [];
  const cpus: number[] = [];
  for (const round of new Set(runs.map((r) => r.round))) {
    const runOf = (server: ServerName) =>
      runs.find((r) =>
        r.round === round && r.scenario === name && r.server === server && r.load === load &&
        r.error === undefined
      );
    const value = (server: ServerName) => runOf(server)?.value ?? NaN;
    const anchors = t.b.map(value);
    // The best anchor of the round: the fastest, or for memory the leanest.
    const best = lower ? Math.min(...anchors) : Math.max(...anchors);
    const ratio = value(t.a) / best;
    // An anchor at 0 (collapsed under overload) gives ∞, which counts; 0 / 0 does not.
    if (!Number.isNaN(ratio)) ratios.push(ratio);
    const cost = (server: ServerName) => runOf(server)?.serverUs ?? NaN;
    const cpu = Math.min(...t.b.map(cost)) / cost(t.a);
    if (Number.isFinite(cpu)) cpus.push(cpu);
  }
  const value = ratios.length > 0 ? median(ratios) : NaN;
  const met = t.most ? value <= t.at : value >= t.at;
  const mine = summaries.find((x) => x.server === t.a && x.load === load);
  const verdict: Verdict = met
    ? "met"
    : SCENARIOS[name].loadBoundExcuses && mine?.loadBound
    ? "load-bound"
    : "NOT met";
  const cpu = cpus.length > 0 ? median(cpus) : NaN;
  return { scenario: name, load, label, target: t, value, cpu, rounds: ratios.length, verdict };
}

// ---------------------------------------------------------------- reports

function percent(n: number): string {
  return Number.isFinite(n) ? `${n.toFixed(0)} %` : "–";
}

function micros(n: number): string {
  return Number.isFinite(n)
    ? `${n < 10 ? n.toFixed(2) : n < 100 ? n.toFixed(1) : n.toFixed(0)} µs`
    : "–";
}

/** A run on one line. */
function describe(run: Run): string {
  const scenario = SCENARIOS[run.scenario];
  const load = run.load === "wsload" ? " (wsload)" : "";
  const head = `  ${run.scenario.padEnd(8)} ${(run.server + load).padEnd(22)}`;
  const value = `${scenario.format(run.value).padStart(11)} ${scenario.unit}`;
  const cpu = scenario.mode === "idle"
    ? run.idle !== undefined
      ? `(${run.idle.open} open, RSS ${mib(run.idle.before)} → ${mib(run.idle.after)})`
      : ""
    : `server CPU${run.cpuApprox ? "≈" : ""} ${percent(run.serverCpu)} = ` +
      `${micros(run.serverUs)}/${scenario.per}, load CPU ${percent(run.loadCpu)}, peak RSS ` +
      `${mib(run.peakRss)}, others ${percent(run.otherCpu)}` +
      (scenario.extras.length > 0
        ? `, ${scenario.extras.map((x) => `${x.label} ${x.format(x.value(run))}`).join(", ")}`
        : "");
  const notes = (loadBound(run.serverCpu, run.loadCpu) ? "  [LOAD-BOUND]" : "") +
    (run.error === undefined
      ? ""
      : failed(run)
      ? `  FAILED: ${run.error}`
      : `  (${run.error}; peak RSS ${mib(run.peakRss)})`);
  return `${head} ${value}  ${cpu}${notes}`;
}

/** A scenario's markdown: title, table of medians, ratios. */
function scenarioMarkdown(
  name: ScenarioName,
  load: Load,
  summaries: Summary[],
  ratios: Ratio[],
  s: Settings,
  rounds: number,
): string {
  const scenario = SCENARIOS[name];
  const out: string[] = [];
  const via = load === "wsload" ? " — cross-check with wsload" : "";
  out.push(`### ${name}: ${scenario.title(s)}${via}`, "");
  const idle = scenario.mode === "idle";
  const head = [
    "server",
    `${scenario.unit} (median of ${rounds})`,
    "min–max",
    ...(idle ? [] : ["server CPU", `server µs/${scenario.per}`, "load CPU", "others"]),
    "peak RSS",
    ...scenario.extras.map((x) => x.label),
    "notes",
  ];
  out.push(`| ${head.join(" | ")} |`);
  const align = head.map((_, i) => i === 0 || i === 2 || i === head.length - 1 ? "---" : "--:");
  out.push(`| ${align.join(" | ")} |`);
  for (const x of summaries) {
    const notes = [
      x.failed > 0 ? `${x.failed} of ${x.runs} FAILED` : "",
      x.capped > 0 ? `killed at the RSS cap in ${x.capped} of ${x.runs}` : "",
      !idle && x.loadBound ? "load-bound" : "",
    ].filter((n) => n !== "").join("; ");
    out.push(
      `| ${
        [
          x.server,
          scenario.format(x.value),
          Number.isFinite(x.min) ? `${scenario.format(x.min)}–${scenario.format(x.max)}` : "–",
          ...(idle ? [] : [
            percent(x.serverCpu),
            micros(x.serverUs),
            percent(x.loadCpu),
            percent(x.otherCpu),
          ]),
          mib(x.peakRss),
          ...scenario.extras.map((e, i) => e.format(x.extras[i])),
          notes,
        ].join(" | ")
      } |`,
    );
  }
  const mine = ratios.filter((r) => r.scenario === name && r.load === load);
  // S4 has no CPU per message to compare.
  const per = scenario.per;
  if (mine.length > 0) {
    const by = per ? [`by server CPU per ${per} (anchor ÷ sluice)`] : [];
    out.push(
      "",
      `| ${["ratio", "target", "median of the rounds' ratios", ...by, "verdict"].join(" | ")} |`,
    );
    out.push(`| --- | --: | --: | ${per ? "--: | " : ""}--- |`);
    for (const r of mine) {
      const verdict = r.verdict === "load-bound"
        ? "load-bound: the load used ≥ 90 % of its core, the server < 90 % of its own"
        : r.verdict;
      const cells = [r.label, targetText(r.target), times(r.value), ...(per ? [times(r.cpu)] : [])];
      out.push(`| ${[...cells, verdict].join(" | ")} |`);
    }
  }
  return out.join("\n");
}

/**
 * With `--wsload`: a scenario's two instruments side by side. Per server the metric and the
 * server's CPU per message by each load, and wsload's over ours (the median of the rounds'
 * ratios: the two runs of a round are back to back); then each target's ratio by each.
 */
function instrumentsMarkdown(
  name: ScenarioName,
  runs: Run[],
  summaries: Summary[],
  ratios: Ratio[],
): string {
  const scenario = SCENARIOS[name];
  // S4 has no CPU per message to compare.
  const per = scenario.per;
  const row = (cells: string[]) => `| ${cells.join(" | ")} |`;
  const out = [
    `### ${name}: the two instruments side by side`,
    "",
    row([
      "server",
      `${scenario.unit}, sluice_load`,
      `${scenario.unit}, wsload`,
      "wsload ÷ sluice_load",
      ...(per ? [`server µs/${per}, sluice_load`, `server µs/${per}, wsload`] : []),
    ]),
    row(["---", "--:", "--:", "--:", ...(per ? ["--:", "--:"] : [])]),
  ];
  const mine = summaries.filter((x) => x.scenario === name);
  for (const ours of mine.filter((x) => x.load === "sluice_load")) {
    const theirs = mine.find((x) => x.load === "wsload" && x.server === ours.server);
    const pairs: number[] = [];
    for (const round of new Set(runs.map((r) => r.round))) {
      const value = (load: Load) =>
        runs.find((r) =>
          r.round === round && r.scenario === name && r.server === ours.server &&
          r.load === load && r.error === undefined
        )?.value ?? NaN;
      const ratio = value("wsload") / value("sluice_load");
      if (Number.isFinite(ratio)) pairs.push(ratio);
    }
    out.push(row([
      ours.server,
      scenario.format(ours.value),
      scenario.format(theirs?.value ?? NaN),
      times(pairs.length > 0 ? median(pairs) : NaN),
      ...(per ? [micros(ours.serverUs), micros(theirs?.serverUs ?? NaN)] : []),
    ]));
  }
  const targets = ratios.filter((r) =>
    r.scenario === name && r.load === "sluice_load" && r.verdict !== "not run"
  );
  if (targets.length > 0) {
    out.push(
      "",
      row([
        "ratio",
        "target",
        "sluice_load",
        "wsload",
        ...(per ? ["by CPU, sluice_load", "by CPU, wsload"] : []),
      ]),
      row(["---", "--:", "--:", "--:", ...(per ? ["--:", "--:"] : [])]),
    );
    for (const r of targets) {
      const w = ratios.find((q) =>
        q.scenario === name && q.load === "wsload" && q.label === r.label
      );
      out.push(row([
        r.label,
        targetText(r.target),
        times(r.value),
        times(w?.value ?? NaN),
        ...(per ? [times(r.cpu), times(w?.cpu ?? NaN)] : []),
      ]));
    }
  }
  return out.join("\n");
}

function escapeXml(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

/**
 * The chart: a horizontal bar per ratio, grouped by scenario, on a log scale around the anchor
 * (1×): a bar to the right is sluice ahead (behind for S4's memory), the dashed tick is the
 * target, the colour the verdict.
 */
function chartSvg(ratios: Ratio[], rounds: number): string {
  const shown = ratios.filter((r) => r.verdict !== "not run");
  const groups = [...new Set(shown.map((r) => r.scenario))];
  const [width, row, gap, top] = [1100, 26, 12, 84];
  const [x0, x1] = [420, 850];
  const height = top + shown.length * row + groups.length * gap + 70;
  const values = shown.flatMap((r) => [r.value, r.target.at]).filter((v) =>
    Number.isFinite(v) && v > 0
  );
  const lo = Math.min(-1, Math.floor(Math.log10(Math.min(1, ...values))));
  const hi = Math.max(1, Math.ceil(Math.log10(Math.max(1, ...values))));
  const x = (v: number) => x0 + ((Math.log10(v) - lo) / (hi - lo)) * (x1 - x0);
  const colour: Record<Verdict, string> = {
    "met": "#2e7d32",
    "NOT met": "#c62828",
    "load-bound": "#ef8f00",
    "not run": "#9e9e9e",
  };
  const svg: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" ` +
    `viewBox="0 0 ${width} ${height}" font-family="Helvetica, Arial, sans-serif" ` +
    `font-size="13">`,
    `<rect width="${width}" height="${height}" fill="#ffffff"/>`,
  ];
  const text = (at: number, y: number, body: string, attrs = "") =>
    svg.push(`<text x="${at.toFixed(1)}" y="${y.toFixed(1)}" ${attrs}>${escapeXml(body)}</text>`);
  const line = (xa: number, ya: number, xb: number, yb: number, attrs: string) =>
    svg.push(
      `<line x1="${xa.toFixed(1)}" y1="${ya.toFixed(1)}" x2="${xb.toFixed(1)}" ` +
        `y2="${yb.toFixed(1)}" ${attrs}/>`,
    );
  text(16, 26, "sluice ÷ the anchors, end to end", `font-size="17" font-weight="bold"`);
  text(
    16,
    46,
    `Median of ${rounds} round(s) of each round's ratio; log scale, anchor = 1×; dashed tick: ` +
      "the target. Throughput: right is better; S4 (memory per connection): left is better.",
    `fill="#444" font-size="12"`,
  );
  const bottom = height - 56;
  for (let e = lo; e <= hi; e++) {
    for (const m of e < hi ? [2, 5] : []) {
      line(x(m * 10 ** e), top - 8, x(m * 10 ** e), bottom, `stroke="#f0f0f0"`);
    }
    const at = x(10 ** e);
    line(at, top - 8, at, bottom, `stroke="${e === 0 ? "#333" : "#ccc"}"`);
    text(at, top - 14, `${10 ** e}×`, `text-anchor="middle" fill="#444" font-size="12"`);
  }
  let y = top;
  for (const group of groups) {
    text(16, y + row / 2 + 5, group, `font-weight="bold"`);
    text(16, y + row / 2 + 21, SCENARIOS[group].short, `fill="#444" font-size="12"`);
    for (const r of shown.filter((q) => q.scenario === group)) {
      const mid = y + row / 2;
      const anchor = r.target.b.length === 1 ? r.target.b[0] : `max(${r.target.b.join(", ")})`;
      text(x0 - 10, mid + 5, `${r.target.a} ÷ ${anchor}`, `text-anchor="end"`);
      const ok = r.value > 0;
      if (ok) {
        const [a, b] = [x(1), x(Math.min(r.value, 10 ** hi))];
        svg.push(
          `<rect x="${Math.min(a, b).toFixed(1)}" y="${(mid - 8).toFixed(1)}" width="${
            Math.max(1.5, Math.abs(b - a)).toFixed(1)
          }" height="16" fill="${colour[r.verdict]}"/>`,
        );
      }
      const t = x(r.target.at);
      line(t, mid - 11, t, mid + 11, `stroke="#111" stroke-width="2" stroke-dasharray="4 2"`);
      text(
        x1 + 14,
        mid + 5,
        `${ok ? times(r.value) : "– (failed)"}` +
          `  target ${targetText(r.target)}: ${r.verdict}`,
        `fill="${colour[ok ? r.verdict : "NOT met"]}" font-weight="bold" font-size="12"`,
      );
      y += row;
    }
    y += gap;
    line(16, y - gap / 2, width - 16, y - gap / 2, `stroke="#e4e4e4"`);
  }
  let lx = 16;
  for (
    const [verdict, label] of [
      ["met", "target met"],
      ["NOT met", "NOT met"],
      ["load-bound", "load-bound: the load, not the server, was saturated"],
    ] as const
  ) {
    svg.push(
      `<rect x="${lx}" y="${height - 30}" width="12" height="12" fill="${colour[verdict]}"/>`,
    );
    text(lx + 18, height - 19, label, `font-size="12"`);
    lx += 130;
  }
  svg.push("</svg>");
  return svg.join("\n") + "\n";
}

/** The machine and the software, for the report. */
function machine(zlib: boolean): Record<string, string> {
  const first = (argv: string[]) => {
    const out = spawnSync(argv[0], argv.slice(1), { encoding: "utf8" });
    return out.status === 0 ? out.stdout.split("\n")[0].trim() : "?";
  };
  const cpuinfo = readFileSync("/proc/cpuinfo", "utf8");
  const ws = JSON.parse(readFileSync(`${ROOT}node_modules/ws/package.json`, "utf8")).version;
  return {
    cpu: /^model name\s*:\s*(.*)$/m.exec(cpuinfo)?.[1] ?? "?",
    cores: String(availableParallelism()),
    memory: `${
      (Number(/^MemTotal:\s+(\d+)/m.exec(readFileSync("/proc/meminfo", "utf8"))?.[1]) / 1048576)
        .toFixed(1)
    } GiB`,
    kernel: release(),
    deno: first([executable("deno"), "--version"]),
    bun: first([executable("bun"), "--version"]),
    node: first([executable("node"), "--version"]),
    ws: String(ws),
    cc: first([process.env.CC ?? "cc", "--version"]),
    loadZlib: zlib ? "yes" : "no",
    date: new Date().toISOString(),
    command: `${"Bun" in globalThis ? "bun" : "deno run -A"} bench/e2e.ts ${
      process.argv.slice(2).join(" ")
    }`.trim(),
  };
}

// ---------------------------------------------------------------- main

async function main(): Promise<void> {
  const scenarios = list("scenarios", SCENARIO_NAMES);
  const serverFilter = list("servers", Object.keys(SERVERS) as ServerName[]);
  const rounds = Number(option("rounds", "3"));
  const seconds = Number(option("seconds", "5"));
  // A fresh server in JavaScript (sluice) reaches its pace after 2–3 s of traffic (JIT tiers,
  // heap sizing); the runtimes' native servers need no such time. A shorter warm-up measures
  // sluice colder than the anchors it is compared with.
  const warmup = Number(option("warmup", "3"));
  const quietly = quietOptions();
  const outDir = option("out-dir", `${ROOT}bench/results`);
  const json = option("json", `${outDir}/e2e.json`);
  const wsload = option("wsload", "");
  const rssCapMiB = Number(option("rss-cap", "2048"));
  if (!(rounds >= 1 && seconds >= 1 && warmup >= 0 && rssCapMiB > 0)) {
    throw new RangeError("--rounds and --seconds must be at least 1, --warmup at least 0");
  }
  if (wsload !== "" && !existsSync(wsload)) throw new Error(`--wsload ${wsload}: no such file`);
  const settings = {} as Record<ScenarioName, Settings>;
  for (const name of SCENARIO_NAMES) {
    settings[name] = {};
    for (const [key, fallback] of Object.entries(SCENARIOS[name].defaults)) {
      settings[name][key] = Number(option(`${name.toLowerCase()}-${key}`, String(fallback)));
    }
  }
  const built = loadGenerator();
  const cx: Context = {
    pin: canPin(),
    loadPath: built.path,
    wsload,
    deflateFile: scenarios.includes("deflate") ? writeDeflateMessages() : "",
    warmup,
    seconds,
    rssCap: rssCapMiB * 1024,
    settings,
  };
  if (cx.pin) pinSelf(1);
  const plan = scenarios.map((name) => ({
    name,
    servers: SCENARIOS[name].servers.filter((x) => serverFilter.includes(x)),
    loads:
      (wsload !== "" && SCENARIOS[name].mode !== "overload" && !SCENARIOS[name].deflate
        ? ["sluice_load", "wsload"]
        : ["sluice_load"]) as Load[],
  }));
  console.log(
    `end-to-end: ${scenarios.join(", ")}; ${rounds} round(s), warm-up ${warmup} s, ` +
      `${seconds} s measured; load ${built.path}` +
      (cx.pin ? "; server on core 0, load on core 1" : "; NOT pinned (no taskset or one core)"),
  );
  const runs: Run[] = [];
  for (let round = 1; round <= rounds; round++) {
    console.log(`\nround ${round}`);
    for (const { name, servers, loads } of plan) {
      // S4 measures RSS from a server's start: each load gets a fresh server there.
      const groups = SCENARIOS[name].mode === "idle" ? loads.map((l) => [l]) : [loads];
      for (const server of servers) {
        for (const group of groups) {
          // Two loads on one server take turns going first, so neither always meets the
          // warmer server.
          const order = round % 2 === 0 ? [...group].reverse() : group;
          const attempt = await leastDisturbed(
            async () => {
              const these = await measure(round, name, server, order, cx);
              return { these, otherCpu: Math.max(...these.map((r) => r.otherCpu)) };
            },
            `${name.padEnd(8)} ${server}${group.length > 1 ? " (both loads)" : ""}:`,
            quietly,
          );
          for (const run of attempt.these) {
            runs.push(run);
            console.log(describe(run));
          }
        }
      }
    }
  }

  const summaries: Summary[] = [];
  const ratios: Ratio[] = [];
  const sections: string[] = [];
  for (const { name, servers, loads } of plan) {
    for (const load of loads) {
      const these = servers.map((server) => summarize(runs, name, server, load));
      summaries.push(...these);
      ratios.push(
        ...SCENARIOS[name].targets.map((t) => ratioOf(runs, name, t, servers, these, load)),
      );
      sections.push(scenarioMarkdown(name, load, these, ratios, settings[name], rounds));
    }
    if (loads.length > 1) sections.push(instrumentsMarkdown(name, runs, summaries, ratios));
  }
  // The verdicts and the chart are the project's own load's; wsload's ratios cross-check them.
  const verdicts = ratios.filter((r) => r.load === "sluice_load");
  const failures = runs.filter(failed);
  console.log(`\n${sections.join("\n\n")}`);
  if (failures.length > 0) {
    console.log(`\n${failures.length} run(s) FAILED:`);
    for (const run of failures) console.log(describe(run));
  }

  mkdirSync(outDir, { recursive: true });
  const info = machine(built.zlib);
  const notMet = verdicts.filter((r) => r.verdict === "NOT met").length;
  const report = [
    "# sluice: end-to-end benchmark",
    "",
    `![ratios](e2e.svg)`,
    "",
    `${verdicts.filter((r) => r.verdict === "met").length} of ${
      verdicts.filter((r) => r.verdict !== "not run").length
    } targets met` + (notMet > 0 ? `, ${notMet} NOT met` : "") +
    (failures.length > 0 ? `; ${failures.length} run(s) FAILED` : "") + ".",
    "",
    `Command: \`${info.command}\``,
    "",
    `Machine: ${info.cpu}, ${info.cores} cores, ${info.memory}, Linux ${info.kernel}; ` +
    (cx.pin ? "server pinned to core 0, load to core 1." : "NOT pinned."),
    "",
    `Software: ${info.deno}, Bun ${info.bun}, Node ${info.node}, ws ${info.ws}; load ` +
    `generator bench/load/sluice_load.c (${info.cc}, zlib: ${info.loadZlib}). Date ${info.date}.`,
    "",
    `Settings: ${rounds} round(s), warm-up ${warmup} s, ${seconds} s measured, RSS cap ` +
    `${rssCapMiB} MiB. Ratios are the median over the rounds of each round's ratio. Server CPU ` +
    "is /proc/PID/stat over the part of the run inside the load's window (≈ where setup or " +
    "drain had to be included); load CPU is the load's own getrusage figure for its window; " +
    '"others": CPU that other processes used meanwhile (in % of one core; the machine may be ' +
    'shared); "load-bound": the load used ≥ 90 % of its core while the server used < 90 %.',
    "",
    sections.join("\n\n"),
    ...(failures.length > 0
      ? ["", "## Failed runs", "", ...failures.map((r) => `- ${describe(r).trim()}`)]
      : []),
    "",
    "<details><summary>Every run</summary>",
    "",
    "```",
    ...runs.map((r) => `round ${r.round} ${describe(r).trim()}`),
    "```",
    "",
    "</details>",
    "",
  ].join("\n");
  writeFileSync(`${outDir}/e2e.md`, report);
  writeFileSync(`${outDir}/e2e.svg`, chartSvg(verdicts, rounds));
  writeFileSync(
    json,
    JSON.stringify(
      {
        machine: info,
        settings: { rounds, seconds, warmup, rssCapMiB, pinned: cx.pin, scenarios: settings },
        runs,
        summaries,
        ratios,
      },
      null,
      2,
    ) + "\n",
  );
  console.log(`\nwrote ${outDir}/e2e.md, ${outDir}/e2e.svg and ${json}`);
  process.exitCode = failures.length > 0 ? 1 : 0;
}

if (import.meta.main) await runHarness("bench/e2e.ts", main);
