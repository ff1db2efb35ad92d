/**
 * Fan-out throughput: N subscribers, one publisher, small messages as fast as the subscribers
 * drain them, on sluice (Deno and Bun) and on the two anchors (Bun.serve's native `publish`, a
 * loop over Deno.upgradeWebSocket sockets), interleaved round by round in one run.
 *
 *     bun bench/fanout.ts [--servers sluice-deno,sluice-bun,bun-serve,deno-upgrade]
 *         [--subscribers 1000] [--size 64] [--seconds 10] [--warmup 2] [--window 32]
 *         [--rounds 3] [--wsload PATH] [--client-runtime bun|deno] [--wait-quiet SECONDS]
 *         [--max-others PERCENT] [--retries 2] [--json FILE]
 *
 * Each run starts one server as a child process (bench/echo_server.ts for sluice,
 * bench/anchors/*.ts for the anchors), pinned to core 0 with `taskset -c 0` when there is
 * `taskset` and at least 2 cores, and the load as another child process pinned to core 1 (this
 * process moves there too; it only waits). Servers go round by round (A, B, C, D, then again),
 * so noise on the machine hits them alike; every run gets a fresh server.
 *
 * The load (this file with `--client`; it also runs by hand against any server that behaves as
 * echo_server.ts does): `--subscribers` connections to `/` and one publisher to `/pub`, raw
 * sockets (bench/_fanout_client.ts). Closed loop: each message carries a sequence number; the
 * publisher keeps at most `--window` messages that have not yet reached every subscriber, and
 * sends the next as soon as the slowest subscriber is within the window. After `--warmup`
 * seconds of it, `--seconds` are measured: deliveries per second (messages received, summed
 * over the subscribers), the server's CPU (utime + stime, /proc/PID/stat) and the load's own.
 * Then publishing stops and every subscriber must hold every message, none lost, none twice,
 * none out of order; a run with no delivery for 5 s is a stall. The server's VmRSS
 * (/proc/PID/status) is sampled each second from its start to the end of the load.
 *
 * A load process is one JavaScript thread: when it sits at a whole core while the server does
 * not, the load is what was measured, and the report says so. No third core is there to spread
 * it over (the server has core 0), so `--wsload PATH` adds, in every round and against the same
 * servers, a run of the native load generator wsload (`wsload fanout`, same subscribers, size,
 * window, warm-up and seconds), to tell how far the JavaScript load holds a server back. wsload
 * is a development instrument outside the project; this benchmark runs without it.
 *
 * The machine may be shared: each run also reports the CPU that other processes used while it
 * ran ("others", from /proc/stat); `--wait-quiet S` waits up to S seconds before each run for
 * the machine to be idle, and `--max-others P` repeats a run (up to `--retries` times) during
 * which others used more than P % of a core, keeping the least disturbed of its attempts.
 *
 * Prints a line per run, then for each load a table of medians over the rounds (with the
 * server's CPU time per delivery, which a shared machine disturbs less than deliveries/s) and
 * the ratios sluice-bun / bun-serve and sluice-deno / deno-upgrade (the median of each round's
 * ratio); `--json FILE` writes every run and the summary.
 * Exits 1 if a run failed (a server that would not start or died, a stall, a lost or reordered
 * message). Linux only (/proc).
 *
 * @module
 */
import { existsSync, writeFileSync } from "node:fs";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { FanoutClient, sequencedFrames } from "./_fanout_client.ts";
import {
  canPin,
  type Child,
  command,
  cpuSeconds,
  keyValues,
  leastDisturbed,
  machineSeconds,
  median,
  option,
  pinSelf,
  quietOptions,
  rss,
  type Runtime,
  type ServerName,
  SERVERS,
  sleep,
  start,
  startServer,
  stopChild,
} from "./_proc.ts";

type Load = "js" | "wsload";

const SELF = fileURLToPath(import.meta.url);

/** What a load does. */
interface LoadSettings {
  subscribers: number;
  size: number;
  warmup: number;
  seconds: number;
  window: number;
}

/** What one load run measured. CPU in % of one core, memory in KiB. */
export interface LoadResult {
  /** Deliveries per second in the measured window, summed over the subscribers. */
  deliveries: number;
  /** Messages published per second in the window. */
  published: number;
  /** Subscribers that were open when publishing started. */
  subscribers: number;
  /** Messages missing at a subscriber (gaps in its sequence), over the whole run. */
  lost: number;
  /** Messages that came twice or out of order, over the whole run. */
  reordered: number;
  /** Subscribers that did not hold every published message when the run ended. */
  incomplete: number;
  /** Subscribers whose connection closed during the run. */
  closed: number;
  /** No delivery for 5 s. */
  stalled: boolean;
  /** The server's CPU in the window. */
  serverCpu: number;
  /** The load process's CPU in the window. */
  loadCpu: number;
  /** Delivery latency (publisher send to subscriber receive), µs, from wsload only. */
  p50?: number;
  /** … its 99th percentile. */
  p99?: number;
  /** What went wrong, if anything. */
  error?: string;
}

/** One run: a server, a load, a round. */
interface Run {
  round: number;
  server: ServerName;
  load: Load;
  result: LoadResult;
  /** Peak VmRSS of the server, sampled each second from its start to the end of the load. */
  peakRss: number;
  /** VmRSS once the server listened, before any connection. */
  startRss: number;
  /**
   * CPU used on the machine by others while the load ran (machine-wide busy time less the
   * server's, the load's and this process's), in % of one core: noise that took from the run.
   */
  otherCpu: number;
}

// ---------------------------------------------------------------- the load (--client)

/**
 * Runs the closed-loop fan-out load against a server on 127.0.0.1.
 *
 * @param port The server's port.
 * @param serverPid The server's process id, for its CPU (0: not measured).
 * @param s What to do.
 * @returns What was measured.
 */
export async function runLoad(
  port: number,
  serverPid: number,
  s: LoadSettings,
): Promise<LoadResult> {
  const subscribers: FanoutClient[] = [];
  let publisher: FanoutClient | undefined;
  const W = s.window;
  // count[q % W]: subscribers that hold message q, for the W messages in flight; `done` is the
  // first message some subscriber still lacks, `next` the next to publish.
  const count = new Uint32Array(W);
  let done = 0;
  let next = 0;
  let deliveries = 0;
  let publishing = false;
  let pumpQueued = false;
  const pump = () => {
    pumpQueued = false;
    if (!publishing) return;
    const room = done + W - next;
    if (room <= 0) return;
    publisher!.socket.write(sequencedFrames(next, room, s.size));
    next += room;
  };
  const ack = (sequence: number) => {
    deliveries++;
    // A message above `next` was never sent; one below `done` every subscriber had already.
    if (sequence >= next || sequence < done) return;
    count[sequence % W]++;
    if (sequence !== done) return;
    while (done < next && count[done % W] >= subscribers.length) count[done++ % W] = 0;
    if (!pumpQueued) {
      // Once per event, after every frame the event brought: one write for the room it made.
      pumpQueued = true;
      queueMicrotask(pump);
    }
  };
  const cpu = () => ({
    server: serverPid > 0 ? cpuSeconds(serverPid) : 0,
    load: cpuSeconds(process.pid),
    at: performance.now(),
  });
  try {
    for (let first = 0; first < s.subscribers; first += 100) {
      const batch = await Promise.all(
        Array.from(
          { length: Math.min(100, s.subscribers - first) },
          () => FanoutClient.connect(port, "/"),
        ),
      );
      for (const client of batch) {
        client.sequenced = true;
        client.onSequence = ack;
        subscribers.push(client);
      }
    }
    publisher = await FanoutClient.connect(port, "/pub");
    // Let every server finish its `open` handlers (the subscriptions) before the first message.
    await sleep(1000);
    const started = performance.now();
    publishing = true;
    pump();
    let before = cpu();
    let deliveriesBefore = 0;
    let publishedBefore = 0;
    let last = 0;
    let quietSince = started;
    let stalled = false;
    const end = s.warmup + s.seconds;
    for (let t = 1; t <= end; t++) {
      await sleep(started + t * 1000 - performance.now());
      if (deliveries !== last) {
        last = deliveries;
        quietSince = performance.now();
      } else if (performance.now() - quietSince >= 5000) {
        stalled = true;
        break;
      }
      if (t === s.warmup) {
        before = cpu();
        deliveriesBefore = deliveries;
        publishedBefore = next;
      }
    }
    const after = cpu();
    const inWindow = deliveries - deliveriesBefore;
    const publishedInWindow = next - publishedBefore;
    publishing = false;
    // Let what is in flight arrive: until every subscriber has every message, at most 5 s.
    for (let k = 0; k < 50 && done < next && !stalled; k++) await sleep(100);
    let lost = 0;
    let reordered = 0;
    let incomplete = 0;
    let closed = 0;
    for (const client of subscribers) {
      lost += client.lost;
      reordered += client.reordered + client.short;
      if (client.lastSequence !== next - 1) incomplete++;
      if (client.closed || client.closeCode !== undefined) closed++;
    }
    const seconds = (after.at - before.at) / 1000;
    const result: LoadResult = {
      deliveries: inWindow / seconds,
      published: publishedInWindow / seconds,
      subscribers: subscribers.length,
      lost,
      reordered,
      incomplete,
      closed,
      stalled,
      serverCpu: (100 * (after.server - before.server)) / seconds,
      loadCpu: (100 * (after.load - before.load)) / seconds,
    };
    const problems = [
      stalled
        ? `stalled (no delivery for 5 s; message ${done} reached ${count[done % W]} of ` +
          `${subscribers.length})`
        : "",
      inWindow === 0 && !stalled ? "no delivery in the measured window" : "",
      lost > 0 ? `${lost} lost` : "",
      reordered > 0 ? `${reordered} duplicated or reordered` : "",
      incomplete > 0 ? `${incomplete} subscribers incomplete` : "",
      closed > 0 ? `${closed} subscribers closed` : "",
    ].filter((p) => p !== "");
    if (problems.length > 0) result.error = problems.join(", ");
    return result;
  } finally {
    publishing = false;
    publisher?.destroy();
    for (const client of subscribers) client.destroy();
  }
}

async function clientMain(): Promise<void> {
  const port = Number(option("port", "0"));
  if (!(port > 0)) throw new RangeError("--client needs --port");
  const result = await runLoad(port, Number(option("server-pid", "0")), loadSettings());
  console.log(`result ${JSON.stringify(result)}`);
}

function loadSettings(): LoadSettings {
  const s = {
    subscribers: Number(option("subscribers", "1000")),
    size: Number(option("size", "64")),
    warmup: Number(option("warmup", "2")),
    seconds: Number(option("seconds", "10")),
    window: Number(option("window", "32")),
  };
  if (s.size < 4 || s.size >= 65536) throw new RangeError("--size must be 4 to 65535 bytes");
  if (!(s.subscribers >= 1 && s.window >= 1 && s.seconds >= 1 && s.warmup >= 0)) {
    throw new RangeError("--subscribers, --window and --seconds must be at least 1");
  }
  return s;
}

// ---------------------------------------------------------------- the driver

/** Parses wsload's `key=value` result line. */
function wsloadResult(line: string): LoadResult {
  const field = keyValues(line);
  const number = (key: string) => Number(field.get(key) ?? NaN);
  const result: LoadResult = {
    deliveries: number("msgs_per_s"),
    published: number("pub_per_s"),
    subscribers: number("subscribers"),
    lost: number("lost"),
    reordered: 0,
    incomplete: 0,
    closed: number("conn_errors"),
    stalled: false,
    serverCpu: number("server_cpu_pct"),
    loadCpu: number("client_cpu_pct"),
    p50: number("p50_us"),
    p99: number("p99_us"),
  };
  if (number("errors") > 0) result.error = `wsload: ${field.get("errors")} errors`;
  return result;
}

async function measure(
  name: ServerName,
  load: Load,
  s: LoadSettings,
  pin: boolean,
  wsload: string,
  clientRuntime: Runtime,
): Promise<{ result: LoadResult; peakRss: number; startRss: number; otherCpu: number }> {
  const server = startServer(name, pin ? 0 : undefined);
  let loader: Child | undefined;
  let sampler: ReturnType<typeof setInterval> | undefined;
  try {
    const [, port, pid] = (await server.line("ready", 30_000)).split(" ");
    const serverPid = Number(pid);
    let peakRss = rss(serverPid);
    const startRss = peakRss;
    sampler = setInterval(() => peakRss = Math.max(peakRss, rss(serverPid)), 1000);
    const settings = [
      "--subscribers",
      String(s.subscribers),
      "--size",
      String(s.size),
      "--seconds",
      String(s.seconds),
      "--warmup",
      String(s.warmup),
      "--window",
      String(s.window),
    ];
    loader = load === "js"
      ? start(
        "load",
        command(clientRuntime, SELF, [
          "--client",
          "--port",
          port,
          "--server-pid",
          pid,
          ...settings,
        ]),
        pin ? 1 : undefined,
      )
      : start("wsload", [
        wsload,
        "fanout",
        "-c",
        String(s.subscribers),
        "-s",
        String(s.size),
        "-d",
        String(s.seconds),
        "-w",
        String(s.warmup),
        "-P",
        String(s.window),
        "--server-pid",
        pid,
        `ws://127.0.0.1:${port}/`,
      ], pin ? 1 : undefined);
    const loaderPid = loader.process.pid!;
    const busyBefore = machineSeconds();
    const ownBefore = cpuSeconds(serverPid) + cpuSeconds(process.pid);
    const startedAt = performance.now();
    let loaderCpu = 0;
    const loaderSampler = setInterval(() => {
      try {
        loaderCpu = cpuSeconds(loaderPid);
      } catch {
        // Gone: the last reading stands.
      }
    }, 250);
    const budget = (s.warmup + s.seconds + 60) * 1000;
    const exitedEarly = server.exited.then(() => {
      throw new Error(`${name} exited during the run`);
    });
    const line = await Promise.race([
      loader.line(load === "js" ? "result" : "wsload", budget),
      exitedEarly,
    ]);
    exitedEarly.catch(() => {});
    clearInterval(loaderSampler);
    try {
      loaderCpu = cpuSeconds(loaderPid);
    } catch {
      // The load printed its result and exited: the last sample is at most 250 ms old.
    }
    const elapsed = (performance.now() - startedAt) / 1000;
    const otherCpu = (100 *
      (machineSeconds() - busyBefore - (cpuSeconds(serverPid) + cpuSeconds(process.pid) -
        ownBefore) -
        loaderCpu)) / elapsed;
    peakRss = Math.max(peakRss, rss(serverPid));
    const result = load === "js" ? JSON.parse(line.slice(7)) as LoadResult : wsloadResult(line);
    return { result, peakRss, startRss, otherCpu: Math.max(0, otherCpu) };
  } finally {
    if (sampler !== undefined) clearInterval(sampler);
    if (loader !== undefined) await stopChild(loader);
    await stopChild(server);
  }
}

function thousands(n: number): string {
  return Number.isFinite(n) ? `${(n / 1000).toFixed(0)} k` : "–";
}

function percent(n: number): string {
  return Number.isFinite(n) ? `${n.toFixed(0)} %` : "–";
}

/** Server CPU time per delivery, in ns. */
function cost(r: LoadResult): number {
  return (r.serverCpu / 100 / r.deliveries) * 1e9;
}

/** A run spent its load process's whole core while the server had some to spare. */
function loadBound(r: LoadResult): boolean {
  return r.loadCpu >= 90 && r.serverCpu < 90;
}

interface Summary {
  load: Load;
  server: ServerName;
  rounds: number;
  deliveries: number;
  min: number;
  max: number;
  serverCpu: number;
  /** Server CPU time per delivery, ns: steadier than deliveries/s on a noisy machine. */
  cost: number;
  loadCpu: number;
  peakRss: number;
  otherCpu: number;
  loadBound: boolean;
  failed: number;
}

function summarize(runs: Run[], load: Load, servers: ServerName[]): Summary[] {
  return servers.map((server) => {
    const mine = runs.filter((r) => r.server === server && r.load === load);
    const ok = mine.filter((r) => r.result.error === undefined);
    const d = ok.map((r) => r.result.deliveries);
    return {
      load,
      server,
      rounds: ok.length,
      deliveries: d.length > 0 ? median(d) : NaN,
      min: d.length > 0 ? Math.min(...d) : NaN,
      max: d.length > 0 ? Math.max(...d) : NaN,
      serverCpu: ok.length > 0 ? median(ok.map((r) => r.result.serverCpu)) : NaN,
      cost: ok.length > 0 ? median(ok.map((r) => cost(r.result))) : NaN,
      loadCpu: ok.length > 0 ? median(ok.map((r) => r.result.loadCpu)) : NaN,
      peakRss: mine.length > 0 ? median(mine.map((r) => r.peakRss)) : NaN,
      otherCpu: mine.length > 0 ? median(mine.map((r) => r.otherCpu)) : NaN,
      loadBound: ok.length > 0 && ok.filter((r) => loadBound(r.result)).length * 2 > ok.length,
      failed: mine.length - ok.length,
    };
  });
}

/** The median over the rounds of `a`'s deliveries / `b`'s, each round's pair run together. */
function ratio(runs: Run[], load: Load, a: ServerName, b: ServerName): number {
  const ratios: number[] = [];
  for (const round of new Set(runs.map((r) => r.round))) {
    const find = (server: ServerName) =>
      runs.find((r) =>
        r.round === round && r.server === server && r.load === load && r.result.error === undefined
      );
    const x = find(a);
    const y = find(b);
    if (x !== undefined && y !== undefined) ratios.push(x.result.deliveries / y.result.deliveries);
  }
  return ratios.length > 0 ? median(ratios) : NaN;
}

/** One run; a run that could not be measured is returned with its error. */
async function measureOnce(
  round: number,
  server: ServerName,
  load: Load,
  s: LoadSettings,
  pin: boolean,
  wsload: string,
  clientRuntime: Runtime,
): Promise<Run> {
  try {
    return { round, server, load, ...await measure(server, load, s, pin, wsload, clientRuntime) };
  } catch (error) {
    return {
      round,
      server,
      load,
      peakRss: NaN,
      startRss: NaN,
      otherCpu: NaN,
      result: {
        deliveries: NaN,
        published: NaN,
        subscribers: 0,
        lost: 0,
        reordered: 0,
        incomplete: 0,
        closed: 0,
        stalled: false,
        serverCpu: NaN,
        loadCpu: NaN,
        error: error instanceof Error ? error.message : String(error),
      },
    };
  }
}

/** A run on one line. */
function describe(run: Run): string {
  const r = run.result;
  return `  ${run.server.padEnd(13)} ${run.load.padEnd(7)} ${
    thousands(r.deliveries).padStart(8)
  } ` +
    `deliveries/s (${r.published.toFixed(0)} published/s)  server CPU ` +
    `${percent(r.serverCpu)} (${cost(r).toFixed(0)} ns/delivery), load CPU ${
      percent(r.loadCpu)
    }, RSS ` +
    `${(run.startRss / 1024).toFixed(0)} → ${(run.peakRss / 1024).toFixed(0)} MiB, ` +
    `others ${percent(run.otherCpu)}` +
    (r.p50 !== undefined ? `, latency p50 ${(r.p50 / 1000).toFixed(1)} ms` : "") +
    (loadBound(r) ? "  [LOAD-BOUND]" : "") +
    (r.error !== undefined ? `  FAILED: ${r.error}` : "");
}

async function main(): Promise<void> {
  const servers = option("servers", "sluice-deno,sluice-bun,bun-serve,deno-upgrade")
    .split(",") as ServerName[];
  for (const server of servers) {
    if (!(server in SERVERS)) {
      throw new RangeError(`--servers: ${server}? (${Object.keys(SERVERS).join(", ")})`);
    }
  }
  const s = loadSettings();
  const rounds = Number(option("rounds", "3"));
  const wsload = option("wsload", "");
  if (wsload !== "" && !existsSync(wsload)) throw new Error(`--wsload ${wsload}: no such file`);
  const loads: Load[] = wsload === "" ? ["js"] : ["js", "wsload"];
  const clientRuntime = option("client-runtime", "Bun" in globalThis ? "bun" : "deno") as Runtime;
  const json = option("json", "");
  const quietly = quietOptions();
  const pin = canPin();
  if (pin) pinSelf(1);
  console.log(
    `fan-out: ${s.subscribers} subscribers, ${s.size}-byte binary messages, window ${s.window}, ` +
      `warm-up ${s.warmup} s, ${s.seconds} s measured, ${rounds} round(s); load: ` +
      `${loads.map((l) => l === "js" ? `JavaScript on ${clientRuntime}` : "wsload").join(", ")}` +
      (pin ? "; server on core 0, load on core 1" : "; NOT pinned (no taskset or one core)"),
  );
  const runs: Run[] = [];
  for (let round = 1; round <= rounds; round++) {
    console.log(`\nround ${round}`);
    for (const server of servers) {
      for (const load of loads) {
        const run = await leastDisturbed(
          () => measureOnce(round, server, load, s, pin, wsload, clientRuntime),
          `${server.padEnd(13)} ${load.padEnd(7)}`,
          quietly,
        );
        runs.push(run);
        console.log(describe(run));
      }
    }
  }

  const summaries = loads.flatMap((load) => summarize(runs, load, servers));
  const ratios: Record<string, number> = {};
  for (const load of loads) {
    console.log(
      `\nload: ${
        load === "js" ? `JavaScript (bench/fanout.ts --client, on ${clientRuntime})` : "wsload"
      }; medians of ${rounds} round(s)\n`,
    );
    console.log(
      "| server       | deliveries/s | min–max       | server CPU | CPU/delivery | load CPU | peak RSS | " +
        "others |",
    );
    console.log(
      "| ------------ | -----------: | ------------- | ---------: | -----------: | -------: | -------: | " +
        "-----: |",
    );
    for (const sum of summaries.filter((x) => x.load === load)) {
      console.log(
        `| ${sum.server.padEnd(12)} | ${thousands(sum.deliveries).padStart(12)} | ` +
          `${`${thousands(sum.min)}–${thousands(sum.max)}`.padEnd(13)} | ` +
          `${percent(sum.serverCpu).padStart(10)} | ` +
          `${(Number.isFinite(sum.cost) ? `${sum.cost.toFixed(0)} ns` : "–").padStart(12)} | ` +
          `${percent(sum.loadCpu).padStart(8)} | ` +
          `${`${(sum.peakRss / 1024).toFixed(0)} MiB`.padStart(8)} | ` +
          `${percent(sum.otherCpu).padStart(6)} |` +
          (sum.failed > 0 ? ` ${sum.failed} run(s) FAILED` : ""),
      );
    }
    for (const [a, b] of [["sluice-bun", "bun-serve"], ["sluice-deno", "deno-upgrade"]] as const) {
      if (!servers.includes(a) || !servers.includes(b)) continue;
      const value = ratio(runs, load, a, b);
      ratios[`${load}: ${a} / ${b}`] = value;
      console.log(`${a} / ${b}: ${Number.isFinite(value) ? value.toFixed(2) : "–"}×`);
    }
    const bound = summaries.filter((x) => x.load === load && x.loadBound);
    if (bound.length > 0) {
      console.log(
        `\n!!! THE LOAD GENERATOR WAS THE BOTTLENECK for ${
          bound.map((x) => x.server).join(", ")
        }:` +
          "\n!!! the load process used ≥ 90 % of its core while the server used < 90 % of its" +
          "\n!!! own, so these figures are the load's limit, not the server's." +
          (load === "js" && wsload === "" ? " Compare with --wsload PATH." : ""),
      );
    }
  }
  if (json !== "") {
    writeFileSync(
      json,
      JSON.stringify(
        {
          settings: { ...s, rounds, servers, loads, clientRuntime, pinned: pin },
          runs,
          summaries,
          ratios,
        },
        null,
        2,
      ) + "\n",
    );
    console.log(`\nwrote ${json}`);
  }
  process.exitCode = runs.some((r) => r.result.error !== undefined) ? 1 : 0;
}

if (import.meta.main) {
  if (process.argv.includes("--client")) await clientMain();
  else await main();
  process.exit();
}
