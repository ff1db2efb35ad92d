/**
 * The plain-HTTP benchmark (issue 16): requests per second for a small `fetch` handler over
 * keep-alive connections, sluice on each runtime against the runtime's own HTTP server, in one
 * run.
 *
 *     bun bench/http_bench.ts            (or: deno run -A bench/http_bench.ts)
 *         [--servers sluice-bun,bun-serve,bun-floor,sluice-deno,deno-serve,deno-floor]
 *         [--conns 64]
 *         [--rounds 5] [--seconds 5] [--warmup 1] [--json FILE] [--load PATH]
 *         [--wait-quiet SECONDS] [--max-others PERCENT] [--retries 2]
 *
 * Servers (bench/_http_server.ts, each answering `() => new Response("hello")`):
 * - `sluice-bun`, `sluice-deno`: sluice's `serve({ fetch })` on Bun and on Deno, with its
 *   plain-HTTP defaults (at most 1,000 requests per connection: the load then connects again,
 *   shown as reconnects);
 * - `bun-serve`: `Bun.serve({ fetch })`; `deno-serve`: `Deno.serve(handler)`;
 * - `bun-floor`, `deno-floor`: not servers but a floor, what any HTTP server in JavaScript pays
 *   to call the handler over `Bun.listen` / `Deno.listen` (the standard `Request`, the
 *   `Response`'s body read through a reader, a fixed head written; no parsing, no checks; see
 *   bench/_http_server.ts). `floor / native` is the most a JavaScript server can reach here;
 *   `sluice / floor` is what sluice's own work leaves of it.
 *
 * Load: bench/load/http_load.c, native (a JavaScript load cannot keep Bun.serve busy): `conns`
 * keep-alive connections, one `GET /` in flight on each (no pipelining), each response checked
 * (200, Content-Length, the body `hello`), for `seconds` after `warmup` seconds. It is compiled
 * on first use into bench/load/.build/ (`cc -O2`; `CC` names another compiler; rebuilt when the
 * source is newer); `--load PATH` uses another binary with the same command line.
 *
 * Before each run the load's probe sends one request and the response is kept whole: the
 * servers' header sets differ (names' case, order), and the table shows each response's size,
 * so that the comparison can be seen to be of like with like.
 *
 * Each run starts a fresh server pinned to core 0 and the load pinned to core 1 (`taskset`,
 * with at least 2 cores; this process moves to core 1 too: it only waits and samples /proc).
 * Rounds are interleaved, their order turned by one each round, so that noise on the machine
 * falls on all servers alike. Figures are medians over the rounds; a ratio (sluice / the
 * runtime's server) is the median of each round's ratio.
 *
 * What is measured, and how:
 * - Requests/s, p50 and p99 latency (from a request's write to its response's last byte): the
 *   load's own figures for its window.
 * - Server CPU: /proc/PID/stat read when the load prints `window start` and `window end`, in %
 *   of one core, and per request (µs of server CPU per response in the window).
 * - Load CPU: the load's getrusage figure for its window.
 * - Others: machine-wide busy CPU (/proc/stat) over the window less the server's, the load's
 *   and this process's: what other processes took (loopback softirq time counts there too).
 *   `--wait-quiet`, `--max-others` and `--retries` wait for a quiet machine and repeat a
 *   disturbed run, keeping the least disturbed (bench/_proc.ts).
 * - A run whose load reports errors or whose server died is FAILED, shown, left out of the
 *   medians, and the script exits 1. A verdict of "load-bound" replaces "NOT met" when
 *   sluice's runs had the load at ≥ 90 % of its core and the server under 90 %.
 *
 * Targets (issue 16): sluice-deno / deno-serve ≥ 1.0, sluice-bun / bun-serve ≥ 0.5.
 *
 * To profile a server under this load, start it by hand and run the load against it:
 *     bun --cpu-prof --cpu-prof-dir DIR bench/_http_server.ts --server sluice
 *     bench/load/.build/http_load -c 64 -d 10 -w 1 http://127.0.0.1:PORT/
 * (Deno: `deno run -A --v8-flags=--perf-basic-prof bench/_http_server.ts --server sluice`
 * under `perf record -g -p PID`.) Linux only (/proc).
 *
 * @module
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, renameSync, statSync } from "node:fs";
import { availableParallelism, release } from "node:os";
import process from "node:process";
import {
  canPin,
  type Child,
  command,
  cpuSeconds,
  executable,
  leastDisturbed,
  machineSeconds,
  median,
  option,
  pinSelf,
  quietOptions,
  ROOT,
  runHarness,
  type Runtime,
  start,
  stopChild,
  writeResults,
} from "./_proc.ts";

// ---------------------------------------------------------------- servers and targets

const SERVER_SCRIPT = "bench/_http_server.ts";

/** The servers by name: the runtime and `--server` of bench/_http_server.ts. */
const SERVERS = {
  "sluice-bun": { runtime: "bun", kind: "sluice" },
  "bun-serve": { runtime: "bun", kind: "native" },
  "sluice-deno": { runtime: "deno", kind: "sluice" },
  "deno-serve": { runtime: "deno", kind: "native" },
  "bun-floor": { runtime: "bun", kind: "floor" },
  "deno-floor": { runtime: "deno", kind: "floor" },
} as const satisfies Record<string, { runtime: Runtime; kind: "sluice" | "native" | "floor" }>;

type ServerName = keyof typeof SERVERS;
const SERVER_NAMES = Object.keys(SERVERS) as ServerName[];

/**
 * Issue 16's targets: requests/s of sluice over its runtime's own server; and, without a
 * target, where the floor puts any server in JavaScript (floor / native) and how much of the
 * rest is sluice's own (sluice / floor).
 */
const TARGETS: Array<{ of: ServerName; over: ServerName; at?: number }> = [
  { of: "sluice-deno", over: "deno-serve", at: 1.0 },
  { of: "sluice-bun", over: "bun-serve", at: 0.5 },
  { of: "deno-floor", over: "deno-serve" },
  { of: "bun-floor", over: "bun-serve" },
  { of: "sluice-deno", over: "deno-floor" },
  { of: "sluice-bun", over: "bun-floor" },
];

// ---------------------------------------------------------------- the load generator

const LOAD_SOURCE = `${ROOT}bench/load/http_load.c`;

/**
 * Compiles bench/load/http_load.c into bench/load/.build/ unless the binary is newer.
 *
 * @returns The binary's path.
 */
function buildLoad(): string {
  const dir = `${ROOT}bench/load/.build`;
  const binary = `${dir}/http_load`;
  if (existsSync(binary) && statSync(binary).mtimeMs >= statSync(LOAD_SOURCE).mtimeMs) {
    return binary;
  }
  mkdirSync(dir, { recursive: true });
  const cc = process.env.CC ?? "cc";
  const built = spawnSync(cc, ["-O2", "-o", `${binary}.tmp`, LOAD_SOURCE], { encoding: "utf8" });
  if (built.status !== 0) {
    throw new Error(
      built.error !== undefined
        ? `no C compiler (${cc}): install one, set CC, or pass --load PATH`
        : `${cc} could not compile ${LOAD_SOURCE}:\n${built.stderr}`,
    );
  }
  renameSync(`${binary}.tmp`, binary);
  console.log(`built ${binary}`);
  return binary;
}

/** What the load prints after `result `. */
interface LoadResult {
  reqs_per_s: number;
  p50_us: number;
  p99_us: number;
  errors: number;
  error: string;
  reconnects: number;
  response_bytes: number;
  client_cpu_pct: number;
  seconds: number;
}

// ---------------------------------------------------------------- one run

/** What a run measures, and a summary's medians of it. CPU in % of one core. */
interface Figures {
  reqsPerS: number;
  p50Ms: number;
  p99Ms: number;
  serverCpu: number;
  /** µs of server CPU per response. */
  cpuUsPerReq: number;
  loadCpu: number;
  otherCpu: number;
  reconnects: number;
  /** The probe's response: its size and its head as text. */
  responseBytes: number;
  responseHead: string;
}

/** One run: a server in a round. */
interface Run extends Figures {
  round: number;
  server: ServerName;
  error?: string;
}

interface Context {
  pin: boolean;
  load: string;
  conns: number;
  seconds: number;
  warmup: number;
}

/** CPU seconds at one moment: the server's, the load's, this process's, the machine's. */
function cpuNow(server: number, load: number): number[] {
  return [cpuSeconds(server), cpuSeconds(load), cpuSeconds(process.pid), machineSeconds()];
}

/** Runs one server under the load and measures both. */
async function measure(round: number, server: ServerName, cx: Context): Promise<Run> {
  const run: Run = {
    round,
    server,
    reqsPerS: NaN,
    p50Ms: NaN,
    p99Ms: NaN,
    serverCpu: NaN,
    cpuUsPerReq: NaN,
    loadCpu: NaN,
    otherCpu: NaN,
    reconnects: NaN,
    responseBytes: NaN,
    responseHead: "",
  };
  const { runtime, kind } = SERVERS[server];
  const argv = command(runtime, SERVER_SCRIPT, [
    "--server",
    kind,
    "--port",
    "0",
    "--hostname",
    "127.0.0.1",
    "--stdin-lifeline",
  ]);
  const child = start(server, argv, cx.pin ? 0 : undefined);
  let loader: Child | undefined;
  try {
    const [, port, pidText] = (await child.line("ready", 30_000)).split(" ");
    const pid = Number(pidText);
    const url = `http://127.0.0.1:${port}/`;
    const probe = spawnSync(cx.load, ["probe", url], { encoding: "latin1" });
    if (probe.status !== 0) throw new Error(`probe: ${probe.stderr.trim()}`);
    const sizes = JSON.parse(/^probe (.*)$/m.exec(probe.stdout)![1]);
    run.responseBytes = sizes.head_bytes + sizes.body_bytes;
    run.responseHead = probe.stdout.slice(0, sizes.head_bytes);
    const died = child.exited.then((code) => `the server exited (${code ?? "signal"})`);
    const budget = (cx.warmup + cx.seconds + 30) * 1000;
    loader = start(
      "http_load",
      [cx.load, "-c", `${cx.conns}`, "-d", `${cx.seconds}`, "-w", `${cx.warmup}`, url],
      cx.pin ? 1 : undefined,
    );
    const loadPid = loader.process.pid!;
    const next = async (word: string) => {
      const line = await Promise.race([
        loader!.line(word, budget),
        died.then((why) => {
          throw new Error(why);
        }),
      ]);
      return line;
    };
    await next("window");
    const before = cpuNow(pid, loadPid);
    await next("window");
    const after = cpuNow(pid, loadPid);
    const result = JSON.parse((await next("result")).slice("result ".length)) as LoadResult;
    const [server, load, self, machine] = after.map((x, i) => x - before[i]);
    run.reqsPerS = result.reqs_per_s;
    run.p50Ms = result.p50_us / 1000;
    run.p99Ms = result.p99_us / 1000;
    run.serverCpu = (100 * server) / result.seconds;
    run.cpuUsPerReq = (1e6 * server) / (result.reqs_per_s * result.seconds);
    run.loadCpu = result.client_cpu_pct;
    run.otherCpu = Math.max(0, (100 * (machine - server - load - self)) / result.seconds);
    run.reconnects = result.reconnects;
    if (result.errors > 0) {
      run.error = `the load counted ${result.errors} error(s): ${result.error}`;
    } else if (result.response_bytes !== run.responseBytes) {
      run.error = `responses of ${result.response_bytes} B under load, ` +
        `${run.responseBytes} B in the probe`;
    }
  } catch (error) {
    run.error = error instanceof Error ? error.message : String(error);
  } finally {
    if (loader !== undefined) await stopChild(loader);
    await stopChild(child);
  }
  return run;
}

// ---------------------------------------------------------------- summaries and reports

const count = (n: number) => Number.isFinite(n) ? Math.round(n).toLocaleString("en-US") : "–";
const fixed = (digits: number) => (n: number) => Number.isFinite(n) ? n.toFixed(digits) : "–";
const percent = (n: number) => Number.isFinite(n) ? `${n.toFixed(0)} %` : "–";

/** The load used ≥ 90 % of its core while the server had more than 10 % of its own left. */
const loadBound = (x: { loadCpu: number; serverCpu: number }) =>
  x.loadCpu >= 90 && x.serverCpu < 90;

/** Medians over a server's runs that did not fail. */
interface Summary extends Figures {
  server: ServerName;
  runs: number;
  failed: number;
  min: number;
  max: number;
}

function summarize(runs: Run[], server: ServerName): Summary {
  const mine = runs.filter((r) => r.server === server);
  const ok = mine.filter((r) => r.error === undefined);
  const of = (key: keyof Run) => {
    const values = ok.map((r) => r[key] as number).filter(Number.isFinite);
    return values.length > 0 ? median(values) : NaN;
  };
  const rates = ok.map((r) => r.reqsPerS);
  return {
    server,
    runs: mine.length,
    failed: mine.length - ok.length,
    reqsPerS: of("reqsPerS"),
    min: Math.min(...rates),
    max: Math.max(...rates),
    p50Ms: of("p50Ms"),
    p99Ms: of("p99Ms"),
    serverCpu: of("serverCpu"),
    cpuUsPerReq: of("cpuUsPerReq"),
    loadCpu: of("loadCpu"),
    otherCpu: of("otherCpu"),
    reconnects: of("reconnects"),
    responseBytes: of("responseBytes"),
    responseHead: mine.find((r) => r.responseHead !== "")?.responseHead ?? "",
  };
}

interface Ratio {
  of: ServerName;
  over: ServerName;
  /** NaN: no target, the ratio is for understanding. */
  target: number;
  /** Each round's ratio of requests/s, where both runs succeeded. */
  perRound: number[];
  /** Their median. */
  value: number;
  /** The same for p50 and p99 latency and CPU per request (of / over). */
  p50: number;
  p99: number;
  cpuPerReq: number;
  verdict: "met" | "NOT met" | "load-bound" | "not run" | "–";
}

function ratioOf(runs: Run[], t: typeof TARGETS[number], summaries: Summary[]): Ratio {
  const perRound = (key: keyof Run) => {
    const out: number[] = [];
    for (const round of new Set(runs.map((r) => r.round))) {
      const find = (server: ServerName) =>
        runs.find((r) => r.round === round && r.server === server && r.error === undefined);
      const [a, b] = [find(t.of), find(t.over)];
      if (a !== undefined && b !== undefined) out.push((a[key] as number) / (b[key] as number));
    }
    return out;
  };
  const mid = (values: number[]) => values.length > 0 ? median(values) : NaN;
  const rates = perRound("reqsPerS");
  const value = mid(rates);
  const mine = summaries.find((x) => x.server === t.of);
  return {
    of: t.of,
    over: t.over,
    target: t.at ?? NaN,
    perRound: rates,
    value,
    p50: mid(perRound("p50Ms")),
    p99: mid(perRound("p99Ms")),
    cpuPerReq: mid(perRound("cpuUsPerReq")),
    verdict: rates.length === 0
      ? "not run"
      : t.at === undefined
      ? "–"
      : value >= t.at
      ? "met"
      : mine !== undefined && loadBound(mine)
      ? "load-bound"
      : "NOT met",
  };
}

/** A run on one line. */
function describe(run: Run): string {
  return `  ${run.server.padEnd(12)} ${count(run.reqsPerS).padStart(8)} req/s, p50 ` +
    `${fixed(2)(run.p50Ms)} ms, p99 ${fixed(2)(run.p99Ms)} ms, server CPU ` +
    `${percent(run.serverCpu)} (${fixed(1)(run.cpuUsPerReq)} µs/req), load CPU ` +
    `${percent(run.loadCpu)}, others ${percent(run.otherCpu)}, ${run.responseBytes} B/response, ` +
    `${run.reconnects} reconnects` + (run.error === undefined ? "" : `  FAILED: ${run.error}`);
}

function report(summaries: Summary[], ratios: Ratio[], cx: Context, rounds: number): string {
  const out = [
    `### \`fetch\` → \`new Response("hello")\`, ${cx.conns} keep-alive connections × 1 request ` +
    "in flight",
    "",
    `| server | req/s (median of ${rounds}) | min–max | p50 | p99 | server CPU | CPU/req | ` +
    "load CPU | others | response | reconnects | notes |",
    "| --- | --: | --- | --: | --: | --: | --: | --: | --: | --: | --: | --- |",
  ];
  for (const x of summaries) {
    const notes = [
      x.failed > 0 ? `${x.failed} of ${x.runs} FAILED` : "",
      loadBound(x) ? "load-bound" : "",
    ].filter((n) => n !== "").join("; ");
    out.push(
      `| ${
        [
          x.server,
          count(x.reqsPerS),
          Number.isFinite(x.min) ? `${count(x.min)}–${count(x.max)}` : "–",
          `${fixed(2)(x.p50Ms)} ms`,
          `${fixed(2)(x.p99Ms)} ms`,
          percent(x.serverCpu),
          `${fixed(1)(x.cpuUsPerReq)} µs`,
          percent(x.loadCpu),
          percent(x.otherCpu),
          `${count(x.responseBytes)} B`,
          count(x.reconnects),
          notes,
        ].join(" | ")
      } |`,
    );
  }
  out.push(
    "",
    "| ratio | target | req/s: median of the rounds' ratios | rounds | p50 | p99 | CPU/req | " +
      "verdict |",
    "| --- | --: | --: | --- | --: | --: | --: | --- |",
  );
  const times = (n: number) => Number.isFinite(n) ? `${n.toFixed(2)}×` : "–";
  for (const r of ratios) {
    out.push(
      `| ${r.of} / ${r.over} | ${Number.isNaN(r.target) ? "–" : `≥ ${r.target}`} | ${
        times(r.value)
      } | ${r.perRound.map((v) => v.toFixed(2)).join(", ")} | ${times(r.p50)} | ${times(r.p99)} | ${
        times(r.cpuPerReq)
      } | ${r.verdict} |`,
    );
  }
  return out.join("\n");
}

function machine(): Record<string, string> {
  const first = (argv: string[]) => {
    const out = spawnSync(argv[0], argv.slice(1), { encoding: "utf8" });
    return out.status === 0 ? out.stdout.split("\n")[0].trim() : "?";
  };
  return {
    cpu: /^model name\s*:\s*(.*)$/m.exec(readFileSync("/proc/cpuinfo", "utf8"))?.[1] ?? "?",
    cores: String(availableParallelism()),
    kernel: release(),
    deno: first([executable("deno"), "--version"]),
    bun: first([executable("bun"), "--version"]),
    date: new Date().toISOString(),
    command: `${"Bun" in globalThis ? "bun" : "deno run -A"} bench/http_bench.ts ${
      process.argv.slice(2).join(" ")
    }`.trim(),
  };
}

// ---------------------------------------------------------------- main

async function main(): Promise<void> {
  const servers = option("servers", SERVER_NAMES.join(",")).split(",") as ServerName[];
  for (const s of servers) {
    if (!SERVER_NAMES.includes(s)) {
      throw new RangeError(`--servers: ${s}? (${SERVER_NAMES.join(", ")})`);
    }
  }
  const rounds = Number(option("rounds", "5"));
  const cx: Context = {
    pin: canPin(),
    load: option("load", "") || buildLoad(),
    conns: Number(option("conns", "64")),
    seconds: Number(option("seconds", "5")),
    warmup: Number(option("warmup", "1")),
  };
  if (![rounds, cx.conns, cx.seconds].every((n) => Number.isInteger(n) && n >= 1)) {
    throw new RangeError("--rounds, --conns and --seconds must be whole numbers from 1");
  }
  if (!(cx.warmup >= 0)) throw new RangeError("--warmup must be at least 0");
  const json = option("json", "");
  const quietly = quietOptions();
  if (cx.pin) pinSelf(1);
  console.log(
    `plain-HTTP benchmark: ${servers.join(", ")}; ${rounds} round(s), ${cx.conns} connections, ` +
      `warm-up ${cx.warmup} s, ${cx.seconds} s measured; load ${cx.load}` +
      (cx.pin ? "; server on core 0, load on core 1" : "; NOT pinned (no taskset or one core)"),
  );
  const runs: Run[] = [];
  for (let round = 1; round <= rounds; round++) {
    console.log(`\nround ${round}`);
    // The order turns by one each round: no server always runs first or after another.
    const turn = (round - 1) % servers.length;
    for (const server of [...servers.slice(turn), ...servers.slice(0, turn)]) {
      const run = await leastDisturbed(() => measure(round, server, cx), server, quietly);
      runs.push(run);
      console.log(describe(run));
    }
  }
  const summaries = servers.map((s) => summarize(runs, s));
  const ratios = TARGETS.filter((t) => servers.includes(t.of) && servers.includes(t.over))
    .map((t) => ratioOf(runs, t, summaries));
  console.log(`\n${report(summaries, ratios, cx, rounds)}`);
  console.log("\nResponses (the probe's head, then the 5-byte body):");
  for (const x of summaries) {
    console.log(`  ${x.server}: ${JSON.stringify(x.responseHead)}`);
  }
  const failures = runs.filter((r) => r.error !== undefined);
  if (failures.length > 0) {
    console.log(`\n${failures.length} run(s) FAILED:`);
    for (const run of failures) console.log(`round ${run.round} ${describe(run).trim()}`);
  }
  if (json !== "") {
    const settings = { rounds, conns: cx.conns, seconds: cx.seconds, warmup: cx.warmup };
    const results = { machine: machine(), settings, pinned: cx.pin, runs, summaries, ratios };
    writeResults(json, results);
  }
  process.exitCode = failures.length > 0 ? 1 : 0;
}

if (import.meta.main) await runHarness("bench/http_bench.ts", main);
