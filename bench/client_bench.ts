/**
 * The client benchmark: WebSocket clients echoing against one fast server, each client a child
 * process of its own runtime — the runtimes' built-in clients (`deno-builtin`, `bun-builtin`),
 * npm `ws`'s client on Node.js (`node-ws`), and sluice's client (`sluice-deno`, `sluice-bun`:
 * `connect` from mod.ts).
 *
 *     bun bench/client_bench.ts            (or: deno run -A bench/client_bench.ts)
 *         [--clients deno-builtin,bun-builtin,node-ws,sluice-deno,sluice-bun]
 *         [--server bun-serve] [--sizes 32,65536] [--conns 16] [--window 16]
 *         [--rounds 3] [--seconds 5] [--warmup 1] [--json FILE]
 *         [--wait-quiet SECONDS] [--max-others PERCENT] [--retries 2]
 *         [--baseline DIR]
 *
 * Each run starts a fresh echo server (a peer of tests/_peers.ts, `--server`: Bun.serve's by
 * default, the fastest here) and one client script (bench/_client_web.ts,
 * bench/_client_ws.mjs or bench/_client_sluice.ts, sharing bench/_client_load.ts's loop):
 * `conns` connections each keep `window` binary messages of `size` bytes in flight, sending one
 * for every echo. After `warmup` seconds the client counts echoes and its own CPU time
 * (process.cpuUsage, every thread of its process) for `seconds`, and reports messages/s and
 * CPU µs per message. Meanwhile this script samples the server's CPU (/proc/PID/stat) and the
 * machine's (/proc/stat, without interrupt time): "others" is what the machine's other
 * processes used over the window, the measure of noise from outside.
 *
 * Nothing is pinned: the machine may have only two cores, and client and server each need
 * one. Rounds are interleaved (round 1 runs every size and client once, then round 2…) and
 * the order of the clients turns by one each round, so drift and order fall on all alike;
 * figures are medians over the rounds, and a ratio (sluice's client / the runtime's built-in
 * one) is the median of each round's ratio.
 *
 * `--baseline DIR` adds `base-deno` and `base-bun`: sluice's client as another checkout of the
 * repository in DIR has it (a worktree of the commit to compare with), interleaved with the
 * rest, each run as its runtime's sluice client and compared with it too.
 *
 * A client that cannot run (sluice's before `connect` exists, a failed connection, an echo of
 * the wrong size) is a FAILED run, shown and counted, and the script exits 1: clients are
 * left out only when `--clients` leaves them out. Linux only (/proc).
 *
 * @module
 */
import { readFileSync } from "node:fs";
import { availableParallelism, release } from "node:os";
import { spawnSync } from "node:child_process";
import process from "node:process";
import {
  type Child,
  command,
  cpuSeconds,
  executable,
  leastDisturbed,
  median,
  option,
  quietOptions,
  ROOT,
  runHarness,
  type Runtime,
  start,
  stopChild,
  writeResults,
} from "./_proc.ts";
import type { LoadResult } from "./_client_load.ts";
import { type Peer, PEER_KINDS, type PeerKind, startPeer } from "../tests/_peers.ts";

/**
 * The clients, by the name `--clients` takes; `versus`: the clients it is compared with (the
 * built-in one first).
 */
const CLIENTS: Record<string, { runtime: Runtime; script: string; versus?: string[] }> = {
  "deno-builtin": { runtime: "deno", script: "bench/_client_web.ts" },
  "bun-builtin": { runtime: "bun", script: "bench/_client_web.ts" },
  "node-ws": { runtime: "node", script: "bench/_client_ws.mjs" },
  "sluice-deno": { runtime: "deno", script: "bench/_client_sluice.ts", versus: ["deno-builtin"] },
  "sluice-bun": { runtime: "bun", script: "bench/_client_sluice.ts", versus: ["bun-builtin"] },
};
const BASELINE = option("baseline", "");
if (BASELINE !== "") {
  const script = `${BASELINE.replace(/\/$/, "")}/bench/_client_sluice.ts`;
  CLIENTS["base-deno"] = { runtime: "deno", script, versus: ["deno-builtin"] };
  CLIENTS["base-bun"] = { runtime: "bun", script, versus: ["bun-builtin"] };
  CLIENTS["sluice-deno"].versus!.push("base-deno");
  CLIENTS["sluice-bun"].versus!.push("base-bun");
}

type ClientName = string;
const CLIENT_NAMES = Object.keys(CLIENTS);

interface Settings {
  server: PeerKind;
  sizes: number[];
  conns: number;
  window: number;
  rounds: number;
  seconds: number;
  warmup: number;
}

/** One run: a client echoing messages of one size, in one round. CPU in % of one core. */
interface Run {
  round: number;
  client: ClientName;
  size: number;
  msgsPerS: number;
  bytesPerS: number;
  cpuUsPerMsg: number;
  clientCpu: number;
  serverCpu: number;
  otherCpu: number;
  result?: LoadResult;
  error?: string;
}

/**
 * CPU time the machine's processes used so far, in seconds: user, nice, system and steal from
 * /proc/stat. Interrupt and softirq time are left out: the loopback traffic of the run itself
 * is processed there, and is nobody else's.
 *
 * @returns Seconds of CPU, summed over the cores.
 */
function processSeconds(): number {
  const fields = readFileSync("/proc/stat", "utf8").split("\n")[0].trim().split(/\s+/).slice(1)
    .map(Number);
  return (fields[0] + fields[1] + fields[2] + fields[7]) / 100;
}

/** Runs one client against a fresh server and measures both. */
async function measure(round: number, client: ClientName, size: number, s: Settings): Promise<Run> {
  const run: Run = {
    round,
    client,
    size,
    msgsPerS: NaN,
    bytesPerS: NaN,
    cpuUsPerMsg: NaN,
    clientCpu: NaN,
    serverCpu: NaN,
    otherCpu: NaN,
  };
  let peer: Peer | undefined;
  let child: Child | undefined;
  try {
    peer = await startPeer(s.server);
    const { runtime, script } = CLIENTS[client];
    const args = [
      ...["--url", peer.url, "--conns", `${s.conns}`, "--window", `${s.window}`],
      ...["--size", `${size}`, "--seconds", `${s.seconds}`, "--warmup", `${s.warmup}`],
    ];
    child = start(client, command(runtime, script, args), undefined);
    await child.line("open", 30_000);
    await child.line("window", (s.warmup + 30) * 1000);
    const sample = () => ({
      at: performance.now(),
      server: cpuSeconds(peer!.pid),
      machine: processSeconds(),
      self: cpuSeconds(process.pid),
    });
    const before = sample();
    const line = await child.line("result", (s.seconds + 30) * 1000);
    const after = sample();
    const r = JSON.parse(line.slice("result ".length)) as LoadResult;
    run.result = r;
    const span = (after.at - before.at) / 1000;
    const server = after.server - before.server;
    run.msgsPerS = r.msgs_per_s;
    run.bytesPerS = r.bytes_per_s;
    run.cpuUsPerMsg = r.cpu_us_per_msg;
    run.clientCpu = (100 * r.cpu_s) / r.seconds;
    run.serverCpu = (100 * server) / span;
    const others = after.machine - before.machine - server - r.cpu_s - (after.self - before.self);
    run.otherCpu = Math.max(0, (100 * others) / span);
    if (r.errors > 0) run.error = `the client counted ${r.errors} error(s): ${r.error}`;
    else if (!(r.messages > 0)) run.error = "no echo in the window";
  } catch (error) {
    run.error = error instanceof Error ? error.message : String(error);
  } finally {
    if (child !== undefined) await stopChild(child);
    await peer?.stop();
  }
  return run;
}

// ---------------------------------------------------------------- summaries

interface Summary {
  client: ClientName;
  size: number;
  runs: number;
  failed: number;
  msgsPerS: number;
  min: number;
  max: number;
  bytesPerS: number;
  cpuUsPerMsg: number;
  clientCpu: number;
  serverCpu: number;
  otherCpu: number;
}

function medianOf(values: number[]): number {
  const finite = values.filter(Number.isFinite);
  return finite.length > 0 ? median(finite) : NaN;
}

function summarize(runs: Run[], client: ClientName, size: number): Summary {
  const mine = runs.filter((r) => r.client === client && r.size === size);
  const ok = mine.filter((r) => r.error === undefined);
  const values = ok.map((r) => r.msgsPerS);
  return {
    client,
    size,
    runs: mine.length,
    failed: mine.length - ok.length,
    msgsPerS: medianOf(values),
    min: values.length > 0 ? Math.min(...values) : NaN,
    max: values.length > 0 ? Math.max(...values) : NaN,
    bytesPerS: medianOf(ok.map((r) => r.bytesPerS)),
    cpuUsPerMsg: medianOf(ok.map((r) => r.cpuUsPerMsg)),
    clientCpu: medianOf(ok.map((r) => r.clientCpu)),
    serverCpu: medianOf(ok.map((r) => r.serverCpu)),
    otherCpu: medianOf(ok.map((r) => r.otherCpu)),
  };
}

/** sluice's client over a built-in one, median of the rounds' ratios. */
interface Ratio {
  size: number;
  client: ClientName;
  versus: ClientName;
  /** msgs/s ratio: above 1 is faster. */
  throughput: number;
  /** CPU µs/msg ratio: below 1 is cheaper. */
  cpu: number;
  rounds: number;
}

function ratioOf(runs: Run[], client: ClientName, versus: ClientName, size: number): Ratio {
  const throughput: number[] = [];
  const cpu: number[] = [];
  for (const round of new Set(runs.map((r) => r.round))) {
    const find = (name: ClientName) =>
      runs.find((r) =>
        r.round === round && r.client === name && r.size === size && r.error === undefined
      );
    const [a, b] = [find(client), find(versus)];
    if (a === undefined || b === undefined) continue;
    throughput.push(a.msgsPerS / b.msgsPerS);
    cpu.push(a.cpuUsPerMsg / b.cpuUsPerMsg);
  }
  return {
    size,
    client,
    versus,
    throughput: medianOf(throughput),
    cpu: medianOf(cpu),
    rounds: throughput.length,
  };
}

// ---------------------------------------------------------------- output

const count = (n: number) => Number.isFinite(n) ? Math.round(n).toLocaleString("en-US") : "–";
const fixed = (digits: number) => (n: number) => Number.isFinite(n) ? n.toFixed(digits) : "–";
const percent = (n: number) => Number.isFinite(n) ? `${n.toFixed(0)} %` : "–";
const times = (n: number) => Number.isFinite(n) ? `${n.toFixed(2)}×` : "–";
const bytes = (n: number) => n >= 1024 ? `${n / 1024} KiB` : `${n} B`;

function describe(run: Run): string {
  const head = `  ${bytes(run.size).padStart(7)} ${run.client.padEnd(13)}`;
  if (run.error !== undefined && run.result === undefined) return `${head} FAILED: ${run.error}`;
  return `${head} ${count(run.msgsPerS).padStart(9)} msgs/s ${
    fixed(1)(run.bytesPerS / 1e6).padStart(7)
  } MB/s  client ${fixed(2)(run.cpuUsPerMsg)} µs/msg (${percent(run.clientCpu)}), server ${
    percent(run.serverCpu)
  }, others ${percent(run.otherCpu)}${run.error === undefined ? "" : `  FAILED: ${run.error}`}`;
}

function table(summaries: Summary[], ratios: Ratio[], s: Settings, size: number): string {
  const out = [
    `### echo ${bytes(size)} binary, ${s.conns} connections × ${s.window} in flight, ` +
    `server ${s.server}`,
    "",
    `| client | msgs/s (median of ${s.rounds}) | min–max | spread | MB/s | client CPU µs/msg | ` +
    "client CPU | server CPU | others | notes |",
    "| --- | --: | --- | --: | --: | --: | --: | --: | --: | --- |",
  ];
  for (const x of summaries.filter((y) => y.size === size)) {
    const spread = (100 * (x.max - x.min)) / x.msgsPerS;
    out.push(
      `| ${
        [
          x.client,
          count(x.msgsPerS),
          Number.isFinite(x.min) ? `${count(x.min)}–${count(x.max)}` : "–",
          Number.isFinite(spread) ? `${spread.toFixed(0)} %` : "–",
          fixed(1)(x.bytesPerS / 1e6),
          fixed(2)(x.cpuUsPerMsg),
          percent(x.clientCpu),
          percent(x.serverCpu),
          percent(x.otherCpu),
          x.failed > 0 ? `${x.failed} of ${x.runs} FAILED` : "",
        ].join(" | ")
      } |`,
    );
  }
  const mine = ratios.filter((r) => r.size === size);
  if (mine.length > 0) {
    out.push(
      "",
      "| ratio | msgs/s (> 1: faster) | CPU µs/msg (< 1: cheaper) | rounds |",
      "| --- | --: | --: | --: |",
    );
    for (const r of mine) {
      out.push(
        `| ${r.client} / ${r.versus} | ${times(r.throughput)} | ${times(r.cpu)} | ${r.rounds} |`,
      );
    }
  }
  return out.join("\n");
}

function versions(): Record<string, string> {
  const first = (argv: string[]) => {
    const out = spawnSync(argv[0], argv.slice(1), { encoding: "utf8" });
    return out.status === 0 ? out.stdout.split("\n")[0].trim() : "?";
  };
  const cpuinfo = readFileSync("/proc/cpuinfo", "utf8");
  return {
    cpu: /^model name\s*:\s*(.*)$/m.exec(cpuinfo)?.[1] ?? "?",
    cores: String(availableParallelism()),
    kernel: release(),
    deno: first([executable("deno"), "--version"]),
    bun: first([executable("bun"), "--version"]),
    node: first([executable("node"), "--version"]),
    ws: JSON.parse(readFileSync(`${ROOT}node_modules/ws/package.json`, "utf8")).version,
    date: new Date().toISOString(),
    command: `${"Bun" in globalThis ? "bun" : "deno run -A"} bench/client_bench.ts ${
      process.argv.slice(2).join(" ")
    }`.trim(),
  };
}

// ---------------------------------------------------------------- main

function list<T extends string>(flag: string, all: readonly T[], fallback: readonly T[]): T[] {
  const given = option(flag, fallback.join(",")).split(",").filter((x) => x !== "") as T[];
  for (const x of given) {
    if (!all.includes(x)) throw new RangeError(`--${flag}: ${x}? (${all.join(", ")})`);
  }
  return given;
}

async function main(): Promise<void> {
  const clients = list("clients", CLIENT_NAMES, CLIENT_NAMES);
  const [server] = list("server", PEER_KINDS, ["bun-serve"]);
  const s: Settings = {
    server,
    sizes: option("sizes", "32,65536").split(",").map(Number),
    conns: Number(option("conns", "16")),
    window: Number(option("window", "16")),
    rounds: Number(option("rounds", "3")),
    seconds: Number(option("seconds", "5")),
    warmup: Number(option("warmup", "1")),
  };
  if (
    !(s.rounds >= 1 && s.seconds >= 1 && s.warmup >= 0 && s.conns >= 1 && s.window >= 1) ||
    !s.sizes.every((n) => Number.isInteger(n) && n >= 0)
  ) {
    throw new RangeError(
      "--rounds, --seconds, --conns and --window must be at least 1, --warmup at least 0, " +
        "--sizes whole numbers",
    );
  }
  const json = option("json", "");
  const quietly = quietOptions();
  console.log(
    `client benchmark: ${clients.join(", ")} against ${server}; ${s.rounds} round(s), ` +
      `warm-up ${s.warmup} s, ${s.seconds} s measured; not pinned (${availableParallelism()} cores)`,
  );
  const runs: Run[] = [];
  for (let round = 1; round <= s.rounds; round++) {
    console.log(`\nround ${round}`);
    // The order turns each round, so no client always runs first (or after the same one).
    const turn = (round - 1) % clients.length;
    const order = [...clients.slice(turn), ...clients.slice(0, turn)];
    for (const size of s.sizes) {
      for (const client of order) {
        const run = await leastDisturbed(
          () => measure(round, client, size, s),
          `${bytes(size)} ${client}:`,
          quietly,
        );
        runs.push(run);
        console.log(describe(run));
      }
    }
  }

  const summaries = s.sizes.flatMap((size) => clients.map((c) => summarize(runs, c, size)));
  const ratios: Ratio[] = [];
  for (const size of s.sizes) {
    for (const client of clients) {
      for (const versus of CLIENTS[client].versus ?? []) {
        if (clients.includes(versus)) ratios.push(ratioOf(runs, client, versus, size));
      }
    }
  }
  console.log(`\n${s.sizes.map((size) => table(summaries, ratios, s, size)).join("\n\n")}`);
  console.log(
    "\nMB/s: echoed payload received per second (one direction). Client CPU: the client " +
      "process's own (process.cpuUsage), per echo received. Spread: (max − min) / median of " +
      "msgs/s over the rounds. Others: CPU the rest of the machine used during the window.",
  );
  const failures = runs.filter((r) => r.error !== undefined);
  if (failures.length > 0) {
    console.log(`\n${failures.length} run(s) FAILED:`);
    for (const run of failures) console.log(`round ${run.round} ${describe(run).trim()}`);
  }
  if (json !== "") {
    writeResults(json, { machine: versions(), settings: s, runs, summaries, ratios });
  }
  process.exitCode = failures.length > 0 ? 1 : 0;
}

if (import.meta.main) await runHarness("bench/client_bench.ts", main);
