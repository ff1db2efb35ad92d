/**
 * How the cost grows (issue 17): sluice's benchmark server (bench/echo_server.ts) on Bun and on
 * Deno, beside each runtime's own WebSocket server (bench/anchors/), over three sweeps, so that
 * the shape shows and not one point:
 *
 *     bun bench/scaling.ts            (or: deno run -A bench/scaling.ts)
 *         [--sweeps idle,echo,fanout] [--servers sluice-bun,bun-serve,sluice-deno,deno-upgrade]
 *         [--idle 1000,10000,50000] [--sizes 32,1024,16384,65536,1048576]
 *         [--subscribers 10,100,1000,10000] [--rounds 1] [--seconds 3] [--warmup 1]
 *         [--wait-quiet SECONDS] [--max-others PERCENT] [--retries 2]
 *         [--json bench/results/scaling.json] [--md bench/results/scaling.md] [--load PATH]
 *
 * - idle: N open connections that send nothing; the server's KiB per connection, VmRSS 1 s
 *   after it printed `ready` (before) and 2 s after the load printed `open N` (after), as
 *   bench/e2e.ts's S4 measures it. The load spreads its source addresses over 127.0.0.2..255
 *   (`--spread`): one address has only about 28k ephemeral ports. A process holds at most
 *   RLIMIT_NOFILE descriptors, one per connection: this script raises its soft limit to the
 *   hard one (its children inherit it); a point that needs more than the hard limit allows is
 *   not run (it cannot be: the server is one process) and the largest number of thousands that
 *   fits is measured in its place, both said in the report.
 * - echo: messages of each size, binary, a closed loop (a message is sent for each echo):
 *   echoes/s, MB/s of echoed payload (each way) and the server's CPU per echo (one message
 *   received and one sent). Connections × in flight per size (`echoShape`): enough that the
 *   server, not the load, is saturated, and no more, so the server's queues stay short.
 * - fanout: N subscribers and one publisher, 64 B messages, at most `--window` (128) of them
 *   not yet delivered to every subscriber, the same at every point (`fanoutWindow`);
 *   deliveries/s summed over the subscribers and the server's CPU per delivery. An anchor that
 *   cannot finish a point is not run there (`ANCHOR_LIMITS`), and the report says why.
 *
 * Each run starts a fresh server pinned to core 0 and the load generator
 * (bench/load/sluice_load.c, built by bench/e2e.ts) pinned to core 1; this process moves to
 * core 1 too (it only waits and samples /proc). Within a round every point of a sweep runs on
 * sluice and then on the anchor of the same runtime, so both see the same machine; with
 * `--rounds N` the sweeps repeat and each figure is the median over the rounds.
 *
 * CPU comes from /proc, sampled every 100 ms: the server's (/proc/PID/stat), the load's, this
 * process's and the machine's (/proc/stat). The load measures a window of `--seconds` after
 * `--warmup`; it does not say when the window began, but prints its result as soon as what was
 * in flight at its end has arrived (milliseconds) and its sockets are closed (a RST each), so
 * the CPU is taken from the samples within [result − seconds + 0.25 s, result − 0.25 s], which
 * lies inside the window. "Others": the machine's busy time over the same span less the
 * server's, the load's and this process's, in % of one core: what other processes took from the
 * run (for idle, from the load's start to the RSS reading). `--wait-quiet`, `--max-others` and
 * `--retries` wait for a quiet machine and repeat disturbed runs (not idle ones: memory is not
 * CPU time), keeping the least disturbed (bench/_proc.ts's leastDisturbed). A run is
 * "load-bound" when the load used ≥ 90 % of its core and the server < 90 % of its own.
 *
 * A run whose load counts errors, whose server dies, or that opens fewer connections than
 * asked is FAILED: shown in the tables and the report, and the script exits 1. Writes the runs
 * and medians as JSON and a report in markdown (tables per runtime and sweep, machine,
 * versions, command). Linux only (/proc, taskset).
 *
 * @module
 */
import { spawnSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { loadavg } from "node:os";
import process from "node:process";
import {
  canPin,
  type Child,
  cpuOrNaN,
  cpuSeconds,
  leastDisturbed,
  list,
  type LoadResult,
  machineInfo,
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
  sleep,
  start,
  startServer,
  stopChild,
  writeResults,
} from "./_proc.ts";
import { loadGenerator } from "./e2e.ts";

// ---------------------------------------------------------------- sweeps and servers

const SWEEPS = ["idle", "echo", "fanout"] as const;
type Sweep = typeof SWEEPS[number];

/** Each runtime's pair: sluice, and the runtime's own WebSocket server. */
const RUNTIMES = [
  { name: "Bun", sluice: "sluice-bun", anchor: "bun-serve" },
  { name: "Deno", sluice: "sluice-deno", anchor: "deno-upgrade" },
] as const satisfies ReadonlyArray<{ name: string; sluice: ServerName; anchor: ServerName }>;

const SERVER_NAMES: ServerName[] = RUNTIMES.flatMap((r) => [r.sluice, r.anchor]);

const DEFAULT_POINTS: Record<Sweep, number[]> = {
  idle: [1000, 10_000, 50_000],
  echo: [32, 1024, 16384, 65536, 1048576],
  fanout: [10, 100, 1000, 10_000],
};

/** The point's option: `--idle`, `--sizes`, `--subscribers`. */
const POINT_OPTION: Record<Sweep, string> = { idle: "idle", echo: "sizes", fanout: "subscribers" };

/** The fan-out's message size. */
const FANOUT_SIZE = 64;

/**
 * Connections × messages in flight for an echo of `size` bytes: small messages need many in
 * flight for their per-message cost to keep the server busy (100 × 16, as e2e's S1), large ones
 * few, their bytes do (8 × 1 at 64 KiB in e2e's S2; 8 × 2 here leaves the server no gap between
 * a connection's turns). No more than that, so that the server's queues stay short and the load,
 * which checks every echo, stays below its core.
 */
function echoShape(size: number): { conns: number; inflight: number } {
  if (size <= 1024) return { conns: 100, inflight: 16 };
  if (size <= 16384) return { conns: 32, inflight: 4 };
  if (size <= 65536) return { conns: 8, inflight: 2 };
  return { conns: 4, inflight: 1 };
}

/**
 * Messages the publisher may have out (not yet delivered to every subscriber): the same at
 * every point, so that each subscriber's share of a turn of the server's loop (how many frames
 * one write to it carries) stays the same and only the number of subscribers grows. 128 is
 * enough to keep the server busy with few subscribers, and 10,000 × 128 frames of 66 B (84 MB)
 * stays well within sluice's default `maxTotalBackpressure` (256 MiB), past which it would drop
 * messages. `--window` sets another.
 */
function fanoutWindow(): number {
  return Number(option("window", "128"));
}

/**
 * Points an anchor is not run at, and why: Deno.upgradeWebSocket delivers to many subscribers
 * so slowly that from 1,000 subscribers on, a window of 128 messages does not always arrive
 * within the 2 s the load allows, after its window, for what is in flight (the run fails so).
 */
const ANCHOR_LIMITS: Partial<Record<ServerName, { sweep: Sweep; above: number; why: string }>> = {
  "deno-upgrade": {
    sweep: "fanout",
    above: 100,
    why: "it cannot always deliver what is in flight within the 2 s the load allows after its " +
      "window",
  },
};

/** Descriptors a process needs besides one per connection (the runtime's own, the listener). */
const FD_MARGIN = 100;

// ---------------------------------------------------------------- the load generator

// ---------------------------------------------------------------- open files

/** RLIMIT_NOFILE of this process (/proc/self/limits). */
function openFilesLimit(): { soft: number; hard: number } {
  const line = /^Max open files\s+(\S+)\s+(\S+)/m.exec(readFileSync("/proc/self/limits", "utf8"));
  const value = (s: string | undefined) => s === "unlimited" ? Infinity : Number(s);
  return { soft: value(line?.[1]), hard: value(line?.[2]) };
}

/**
 * Raises this process's soft RLIMIT_NOFILE to its hard limit (allowed without privileges), so
 * that the servers it starts inherit it. The load generator raises its own.
 *
 * @returns The limit now.
 */
function raiseOpenFiles(): { soft: number; hard: number } {
  const limit = openFilesLimit();
  if (limit.soft < limit.hard && Number.isFinite(limit.hard)) {
    const n = String(limit.hard);
    spawnSync("prlimit", ["--pid", String(process.pid), `--nofile=${n}:${n}`]);
  }
  return openFilesLimit();
}

// ---------------------------------------------------------------- one run

/** One run: one point of a sweep on one server. CPU in % of one core, memory in KiB. */
interface Run {
  round: number;
  sweep: Sweep;
  /** Connections (idle), message size (echo) or subscribers (fanout). */
  point: number;
  server: ServerName;
  /** What the load was asked for: connections, in flight or window, message size. */
  conns: number;
  inflight: number;
  size: number;
  /** Echoes/s (echo), deliveries/s (fanout). */
  msgsPerS: number;
  /** Echoed payload, each way (echo). */
  mbPerS: number;
  /** Server CPU per echo or per delivery, in µs. */
  usPerMsg: number;
  serverCpu: number;
  loadCpu: number;
  otherCpu: number;
  /** KiB (idle). */
  rssBefore: number;
  rssAfter: number;
  kibPerConn: number;
  peakRss: number;
  result?: LoadResult;
  /** Runs made for it: more than 1 when others disturbed it (`--max-others`). */
  attempts?: number;
  /** Why the run could not be made on this machine (not a failure). */
  skipped?: string;
  /** Why the run failed. */
  error?: string;
}

interface Context {
  pin: boolean;
  load: string;
  seconds: number;
  warmup: number;
  /** Connections one process may hold here. */
  capacity: number;
}

/**
 * CPU per key over the samples within [from, to] (ms, performance.now()), in % of one core:
 * from the first sample at or after `from` to the last at or before `to`.
 */
function cpuOver(samples: Sample[], from: number, to: number) {
  const inside = samples.filter((s) => s.at >= from && s.at <= to);
  const [a, b] = inside.length >= 2 ? [inside[0], inside[inside.length - 1]] : [];
  const seconds = a === undefined || b === undefined ? NaN : (b.at - a.at) / 1000;
  const pct = (key: keyof Sample) =>
    a === undefined || b === undefined ? NaN : (100 * (b[key] - a[key])) / seconds;
  const others = pct("machine") - pct("server") - pct("load") - pct("self");
  return { server: pct("server"), load: pct("load"), others: Math.max(0, others), seconds };
}

function newRun(round: number, sweep: Sweep, point: number, server: ServerName): Run {
  const shape = sweep === "echo"
    ? { ...echoShape(point), size: point }
    : sweep === "fanout"
    ? { conns: point, inflight: fanoutWindow(), size: FANOUT_SIZE }
    : { conns: point, inflight: 0, size: 0 };
  return {
    round,
    sweep,
    point,
    server,
    ...shape,
    msgsPerS: NaN,
    mbPerS: NaN,
    usPerMsg: NaN,
    serverCpu: NaN,
    loadCpu: NaN,
    otherCpu: NaN,
    rssBefore: NaN,
    rssAfter: NaN,
    kibPerConn: NaN,
    peakRss: NaN,
  };
}

/** The load's command line for a run. */
function loadArgv(run: Run, port: string, cx: Context): string[] {
  const url = `ws://127.0.0.1:${port}/`;
  const timing = ["-d", `${cx.seconds}`, "-w", `${cx.warmup}`];
  const c = ["-c", `${run.conns}`];
  if (run.sweep === "idle") return [cx.load, "idle", ...c, "--spread", url];
  const shape = ["-P", `${run.inflight}`, "-s", `${run.size}`];
  return [cx.load, run.sweep, ...c, ...shape, ...timing, url];
}

/**
 * Runs one server and one load and measures them.
 *
 * @returns The run; `error` set if it failed.
 */
async function measure(
  round: number,
  sweep: Sweep,
  point: number,
  server: ServerName,
  cx: Context,
): Promise<Run> {
  const run = newRun(round, sweep, point, server);
  const limit = ANCHOR_LIMITS[server];
  if (limit !== undefined && limit.sweep === sweep && point > limit.above) {
    run.skipped = limit.why;
    return run;
  }
  if (run.conns > cx.capacity) {
    run.skipped = `one process holds at most ${count(cx.capacity + FD_MARGIN)} open files ` +
      "here (RLIMIT_NOFILE's hard limit, which only a privileged user can raise)";
    return run;
  }
  const child = startServer(server, cx.pin ? 0 : undefined);
  let loader: Child | undefined;
  let sampler: ReturnType<typeof setInterval> | undefined;
  try {
    const [, port, pidText] = (await child.line("ready", 30_000)).split(" ");
    const pid = Number(pidText);
    run.peakRss = rss(pid);
    let loadPid = 0;
    const samples: Sample[] = [];
    const sample = () => {
      samples.push({
        at: performance.now(),
        server: cpuOrNaN(pid),
        load: loadPid > 0 ? cpuOrNaN(loadPid) : 0,
        self: cpuSeconds(process.pid),
        machine: machineSeconds(),
      });
      run.peakRss = Math.max(run.peakRss, rss(pid));
    };
    sampler = setInterval(sample, 100);
    const died = child.exited.then((code) => ({ died: code }));
    const serverEnd = (code: number | null) =>
      new Error(`the server exited (${code ?? "signal"}) during the run`);
    if (sweep === "idle") {
      await sleep(1000);
      run.rssBefore = rss(pid);
    }
    const launched = performance.now();
    loader = start("load", loadArgv(run, port, cx), cx.pin ? 1 : undefined);
    loadPid = loader.process.pid ?? 0;
    const budget = (cx.warmup + cx.seconds + 120) * 1000;
    if (sweep === "idle") {
      const opened = await Promise.race([loader.line("open", budget), died]);
      if (typeof opened !== "string") throw serverEnd(opened.died);
      await sleep(2000);
      run.rssAfter = rss(pid);
      sample();
      const open = Number(opened.split(" ")[1]);
      run.kibPerConn = (run.rssAfter - run.rssBefore) / open;
      run.otherCpu = cpuOver(samples, launched, performance.now()).others;
      loader.process.stdin?.end();
      if (open !== run.conns) throw new Error(`${open} of ${run.conns} connections open`);
    }
    const line = await Promise.race([loader.line("result", budget), died]);
    if (typeof line !== "string") throw serverEnd(line.died);
    const ended = performance.now();
    sample();
    run.result = JSON.parse(line.slice("result ".length)) as LoadResult;
    const errors = num(run.result, "errors");
    if (errors > 0) {
      throw new Error(`the load counted ${errors} error(s): ${run.result.error ?? ""}`);
    }
    if (sweep !== "idle") {
      const window = num(run.result, "seconds") * 1000;
      const cpu = cpuOver(samples, ended - window + 250, ended - 250);
      run.msgsPerS = num(run.result, "msgs_per_s");
      run.mbPerS = num(run.result, "bytes_per_s") / 1e6;
      run.serverCpu = cpu.server;
      run.loadCpu = num(run.result, "client_cpu_pct");
      run.otherCpu = cpu.others;
      run.usPerMsg = (cpu.server * 1e4) / run.msgsPerS;
      if (!(run.msgsPerS > 0)) throw new Error("no message in the load's window");
    }
  } catch (error) {
    run.error = error instanceof Error ? error.message : String(error);
  } finally {
    if (sampler !== undefined) clearInterval(sampler);
    if (loader !== undefined) await stopChild(loader);
    await stopChild(child);
  }
  return run;
}

// ---------------------------------------------------------------- summaries

/** The medians over the rounds of one point on one server. */
interface Summary {
  sweep: Sweep;
  point: number;
  server: ServerName;
  runs: number;
  failed: number;
  skipped?: string;
  conns: number;
  inflight: number;
  msgsPerS: number;
  mbPerS: number;
  usPerMsg: number;
  serverCpu: number;
  loadCpu: number;
  otherCpu: number;
  rssBefore: number;
  rssAfter: number;
  kibPerConn: number;
  peakRss: number;
}

function summarize(runs: Run[], sweep: Sweep, point: number, server: ServerName): Summary {
  const mine = runs.filter((r) => r.sweep === sweep && r.point === point && r.server === server);
  const ok = mine.filter((r) => r.error === undefined && r.skipped === undefined);
  const m = (key: keyof Run) => medianOf(ok.map((r) => r[key] as number));
  const shape = newRun(0, sweep, point, server);
  return {
    sweep,
    point,
    server,
    runs: mine.length,
    failed: mine.filter((r) => r.error !== undefined).length,
    skipped: mine.find((r) => r.skipped !== undefined)?.skipped,
    conns: shape.conns,
    inflight: shape.inflight,
    msgsPerS: m("msgsPerS"),
    mbPerS: m("mbPerS"),
    usPerMsg: m("usPerMsg"),
    serverCpu: m("serverCpu"),
    loadCpu: m("loadCpu"),
    otherCpu: m("otherCpu"),
    rssBefore: m("rssBefore"),
    rssAfter: m("rssAfter"),
    kibPerConn: m("kibPerConn"),
    peakRss: m("peakRss"),
  };
}

// ---------------------------------------------------------------- reports

const count = (n: number) => Number.isFinite(n) ? Math.round(n).toLocaleString("en-US") : "–";
const fixed = (digits: number) => (n: number) => Number.isFinite(n) ? n.toFixed(digits) : "–";
const mib = (kib: number) => Number.isFinite(kib) ? `${(kib / 1024).toFixed(0)} MiB` : "–";
const percent = (n: number) => Number.isFinite(n) ? `${n.toFixed(0)} %` : "–";
const bytes = (n: number) =>
  n >= 1048576 ? `${n / 1048576} MiB` : n >= 1024 ? `${n / 1024} KiB` : `${n} B`;
/** A duration in µs with 2 significant digits at least. */
const micros = (n: number) =>
  !Number.isFinite(n) ? "–" : n < 10 ? n.toFixed(2) : n < 100 ? n.toFixed(1) : n.toFixed(0);

/** A sweep's columns for one server: heading and cell. */
const COLUMNS: Record<Sweep, Array<[string, (x: Summary) => string]>> = {
  idle: [
    ["KiB/conn", (x) => fixed(2)(x.kibPerConn)],
    ["RSS before → after", (x) => `${mib(x.rssBefore)} → ${mib(x.rssAfter)}`],
  ],
  echo: [
    ["msgs/s", (x) => count(x.msgsPerS)],
    ["MB/s", (x) => fixed(1)(x.mbPerS)],
    ["µs/msg (CPU)", (x) => `${micros(x.usPerMsg)} (${percent(x.serverCpu)})`],
  ],
  fanout: [
    ["deliveries/s", (x) => count(x.msgsPerS)],
    ["µs/delivery (CPU)", (x) => `${micros(x.usPerMsg)} (${percent(x.serverCpu)})`],
  ],
};

const POINT_HEAD: Record<Sweep, string> = {
  idle: "connections",
  echo: "size",
  fanout: "subscribers",
};

function pointText(sweep: Sweep, point: number): string {
  return sweep === "echo" ? bytes(point) : count(point);
}

function shapeText(x: Summary): string {
  return x.sweep === "echo" ? `${x.conns} × ${x.inflight}` : `${x.inflight}`;
}

function loadBound(x: { serverCpu: number; loadCpu: number }): boolean {
  return x.loadCpu >= 90 && x.serverCpu < 90;
}

/** One runtime's table for one sweep: a row per point, the runtime's servers side by side. */
function table(sweep: Sweep, points: number[], servers: ServerName[], all: Summary[]): string {
  const of = (point: number, server: ServerName) =>
    all.find((x) => x.sweep === sweep && x.point === point && x.server === server)!;
  const head = [
    POINT_HEAD[sweep],
    ...(sweep === "echo" ? ["conns × in flight"] : sweep === "fanout" ? ["window"] : []),
    ...servers.flatMap((s) => COLUMNS[sweep].map(([h]) => `${s} ${h}`)),
    ...(sweep === "idle" ? [] : ["load CPU"]),
    "others",
    "notes",
  ];
  const out = [
    `| ${head.join(" | ")} |`,
    `| ${head.map((_, i) => i === head.length - 1 ? "---" : "--:").join(" | ")} |`,
  ];
  for (const point of points) {
    const xs = servers.map((s) => of(point, s));
    const notes = xs.flatMap((x) =>
      x.skipped !== undefined
        ? []
        : x.failed > 0
        ? [`${x.server}: ${x.failed} of ${x.runs} FAILED`]
        : sweep !== "idle" && loadBound(x)
        ? [`${x.server} load-bound`]
        : []
    );
    // Servers not run for the same reason share one note.
    for (const why of new Set(xs.map((x) => x.skipped))) {
      if (why === undefined) continue;
      const who = xs.filter((x) => x.skipped === why).map((x) => x.server);
      notes.unshift(
        `${who.length === xs.length ? "not run" : `${who.join(", ")} not run`}: ${why}`,
      );
    }
    const cells = [
      pointText(sweep, point),
      ...(sweep === "idle" ? [] : [shapeText(xs[0])]),
      ...xs.flatMap((x) =>
        COLUMNS[sweep].map(([, cell]) => x.skipped !== undefined ? "not run" : cell(x))
      ),
      ...(sweep === "idle" ? [] : [xs.map((x) => percent(x.loadCpu)).join(" / ")]),
      xs.map((x) => percent(x.otherCpu)).join(" / "),
      notes.join("; "),
    ];
    out.push(`| ${cells.join(" | ")} |`);
  }
  return out.join("\n");
}

const SWEEP_TITLE: Record<Sweep, string> = {
  idle: "Idle connections: the server's memory per connection",
  echo: "Echo: throughput and server CPU per message, by message size",
  fanout: `Fan-out: deliveries and server CPU per delivery, by subscribers (${FANOUT_SIZE} B)`,
};

/** A run on one line. */
function describe(run: Run): string {
  const head = `  ${run.sweep.padEnd(6)} ${pointText(run.sweep, run.point).padStart(8)} ` +
    `${run.server.padEnd(13)}`;
  if (run.skipped !== undefined) return `${head} not run: ${run.skipped}`;
  const body = run.sweep === "idle"
    ? `${fixed(2)(run.kibPerConn).padStart(8)} KiB/conn  (RSS ${mib(run.rssBefore)} → ` +
      `${mib(run.rssAfter)}), others ${percent(run.otherCpu)}`
    : `${count(run.msgsPerS).padStart(11)} ${run.sweep === "echo" ? "msgs/s" : "deliveries/s"}` +
      (run.sweep === "echo" ? `  ${fixed(1)(run.mbPerS)} MB/s` : "") +
      `  server ${micros(run.usPerMsg)} µs/msg (${percent(run.serverCpu)}), load CPU ` +
      `${percent(run.loadCpu)}, others ${percent(run.otherCpu)}, peak RSS ${mib(run.peakRss)}` +
      (loadBound(run) ? "  [LOAD-BOUND]" : "");
  return `${head} ${body}${run.error !== undefined ? `  FAILED: ${run.error}` : ""}`;
}

// ---------------------------------------------------------------- main

function numbers(flag: string, fallback: number[]): number[] {
  const given = option(flag, fallback.join(",")).split(",").filter((x) => x !== "").map(Number);
  if (!given.every((n) => Number.isInteger(n) && n >= 1)) {
    throw new RangeError(`--${flag} takes whole numbers from 1, separated by commas`);
  }
  return [...new Set(given)].sort((a, b) => a - b);
}

async function main(): Promise<void> {
  const sweeps = list("sweeps", SWEEPS);
  const servers = list("servers", SERVER_NAMES);
  const rounds = Number(option("rounds", "1"));
  const seconds = Number(option("seconds", "3"));
  const warmup = Number(option("warmup", "1"));
  if (!(Number.isInteger(rounds) && rounds >= 1 && seconds >= 1 && warmup >= 0)) {
    throw new RangeError("--rounds and --seconds must be at least 1, --warmup at least 0");
  }
  if (!(Number.isInteger(fanoutWindow()) && fanoutWindow() >= 1)) {
    throw new RangeError("--window must be a whole number from 1");
  }
  const points = {} as Record<Sweep, number[]>;
  for (const sweep of SWEEPS) points[sweep] = numbers(POINT_OPTION[sweep], DEFAULT_POINTS[sweep]);
  const quietly = quietOptions();
  const json = option("json", `${ROOT}bench/results/scaling.json`);
  const md = option("md", `${ROOT}bench/results/scaling.md`);
  const loadAtStart = loadavg().map((n) => n.toFixed(2)).join(", ");
  const limit = raiseOpenFiles();
  const capacity = Math.min(limit.soft, limit.hard) - FD_MARGIN;
  // A point beyond what one process may hold is reported as not run; the largest whole
  // thousand that fits is measured in its place, so the sweep still shows its shape.
  const fits = Math.floor(capacity / 1000) * 1000;
  const added = points.idle.some((n) => n > capacity) && !points.idle.includes(fits) && fits > 0
    ? fits
    : undefined;
  if (added !== undefined) points.idle = [...points.idle, added].sort((a, b) => a - b);
  const cx: Context = { pin: canPin(), load: loadGenerator().path, seconds, warmup, capacity };
  if (cx.pin) pinSelf(1);
  console.log(
    `scaling: ${sweeps.map((s) => `${s} ${points[s].join(",")}`).join("; ")}; ` +
      `${rounds} round(s), warm-up ${warmup} s, ${seconds} s measured; open files ` +
      `${count(limit.soft)} (hard ${count(limit.hard)}); load ${cx.load}` +
      (cx.pin ? "; server on core 0, load on core 1" : "; NOT pinned (no taskset or one core)"),
  );
  const runs: Run[] = [];
  for (let round = 1; round <= rounds; round++) {
    console.log(`\nround ${round}`);
    for (const sweep of sweeps) {
      for (const point of points[sweep]) {
        for (const server of servers) {
          let attempts = 0;
          const run = await leastDisturbed(
            () => (attempts++, measure(round, sweep, point, server, cx)),
            `${sweep} ${pointText(sweep, point)} ${server}:`,
            // Memory is not CPU time: an idle point is not repeated for what others used.
            sweep === "idle" ? { ...quietly, maxOthers: Infinity } : quietly,
          );
          run.attempts = attempts;
          runs.push(run);
          console.log(describe(run));
        }
      }
    }
  }

  const summaries = sweeps.flatMap((sweep) =>
    points[sweep].flatMap((point) => servers.map((s) => summarize(runs, sweep, point, s)))
  );
  const sections: string[] = [];
  for (const runtime of RUNTIMES) {
    const mine = servers.filter((s) => s === runtime.sluice || s === runtime.anchor);
    if (mine.length === 0) continue;
    sections.push(`## ${runtime.name}`);
    for (const sweep of sweeps) {
      sections.push(
        `### ${runtime.name} — ${SWEEP_TITLE[sweep]}`,
        table(sweep, points[sweep], mine, summaries),
      );
    }
  }
  const failures = runs.filter((r) => r.error !== undefined);
  console.log(`\n${sections.join("\n\n")}`);
  if (failures.length > 0) {
    console.log(`\n${failures.length} run(s) FAILED:`);
    for (const run of failures) console.log(`round ${run.round} ${describe(run).trim()}`);
  }

  const info: Record<string, string> = { ...machineInfo("bench/scaling.ts"), load: cx.load };
  const busy = runs.filter((r) => r.sweep !== "idle" && Number.isFinite(r.otherCpu))
    .map((r) => r.otherCpu);
  const repeated = runs.filter((r) => (r.attempts ?? 1) > 1).length;
  const disturbance = busy.length === 0 ? "" : `During the echo and fan-out runs others used ` +
    `${percent(median(busy))} of a core (median), at most ${percent(Math.max(...busy))}` +
    (repeated > 0
      ? ` (${repeated} of ${runs.length} runs were repeated because others used more than ` +
        `${quietly.maxOthers} % of a core; the least disturbed attempt is shown)`
      : "") +
    "; " +
    `load average at the start ${loadAtStart}, at the end ${
      loadavg().map((n) => n.toFixed(2)).join(", ")
    }.`;
  const settings = {
    rounds,
    seconds,
    warmup,
    points,
    openFiles: limit,
    pinned: cx.pin,
    echoShapes: Object.fromEntries(points.echo.map((s) => [s, echoShape(s)])),
    fanoutWindow: fanoutWindow(),
  };
  const report = [
    "# sluice: how the cost grows",
    "",
    `Command: \`${info.command}\``,
    "",
    `Machine: ${info.cpu}, ${info.cores} cores, ${info.memory}, Linux ${info.kernel}; ` +
    (cx.pin ? "server pinned to core 0, load to core 1." : "NOT pinned.") +
    ` Open files per process: ${count(limit.hard)} (RLIMIT_NOFILE hard limit).`,
    "",
    `Software: ${info.deno}, Bun ${info.bun}; load generator bench/load/sluice_load.c ` +
    `(${info.cc}). Date ${info.date}.`,
    "",
    `Settings: ${rounds} round(s) (figures are medians over them), warm-up ${warmup} s, ` +
    `${seconds} s measured. Server CPU is /proc/PID/stat over the load's window, in % of one ` +
    "core, and per message: per echo (one message in, one out) or per delivery. MB/s: echoed " +
    'payload, each way. "load CPU" and "others" list the runtime\'s servers in column order; ' +
    '"others" is the CPU other processes on the (shared) machine used meanwhile, in % of one ' +
    'core; "load-bound": the load used ≥ 90 % of its core and the server < 90 % of its own; ' +
    "where neither is near 100 %, the closed loop (in flight, window) held the throughput back, " +
    "and the CPU per message is still what each one cost. " +
    "Idle: VmRSS 1 s after the server started and 2 s after the last connection opened, " +
    "divided by the connections; the load spreads its source addresses over 127.0.0.2–255." +
    (added !== undefined && sweeps.includes("idle")
      ? ` Idle points above ${count(capacity)} connections could not be run here (one open ` +
        `file per connection, ${count(limit.hard)} at most per process); ${count(added)}, ` +
        "the largest whole thousand that fits, was measured as well."
      : ""),
    "",
    ...(disturbance !== "" ? [disturbance, ""] : []),
    sections.join("\n\n"),
    ...(failures.length > 0
      ? [
        "",
        "## Failed runs",
        "",
        ...failures.map((r) => `- round ${r.round} ${describe(r).trim()}`),
      ]
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
  writeFileSync(md, report);
  console.log(`\nwrote ${md}`);
  writeResults(json, { machine: info, settings, runs, summaries });
  process.exitCode = failures.length > 0 ? 1 : 0;
}

if (import.meta.main) await runHarness("bench/scaling.ts", main);
