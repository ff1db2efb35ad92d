/**
 * Fan-out under overload: 1,000 subscribers, one publisher that sends faster than some of them
 * read. Deliveries to the readers must keep flowing and the server's memory must stay under a
 * stated bound (Deno's built-in server, on the same load, delivered nothing and grew to
 * 3.5–5.8 GB).
 *
 *     bun bench/fanout_overload.ts --runtime deno     # or --runtime bun, or deno,bun
 *     bun bench/fanout_overload.ts --runtime bun --scenario resume --policy close
 *
 * Options (defaults): --runtime deno,bun; --scenario paused,resume; --subscribers 1000;
 * --slow 100; --rate 1000 (messages/s offered); --seconds 20; --resume-after 10;
 * --size 64 (payload bytes); --max-backpressure 65536; --policy drop; --allowance 16 (MiB);
 * --broadcast publish (`server.publish` to a topic: framed once) or loop (`ws.send` per subscriber);
 * --no-floor (skip the runtime's floor, below).
 * The environment variable DENO_V8 replaces the V8 flags given to a Deno server
 * (default `--v8-flags=--expose-gc`), to try heap settings.
 *
 * Each run starts bench/fanout_overload_server.ts on the chosen runtime as a child process,
 * pinned to core 0 with `taskset -c 0` when there is one (this process moves itself to core 1),
 * so its memory (/proc/PID/status) is its own. Then, over node:net on 127.0.0.1:
 * - `--subscribers` subscribers connect; `--slow` of them, spread evenly, pause their socket
 *   at once and read nothing (the kernel buffers fill, then the server's queue);
 * - a publisher connects to `/pub`; the server collects garbage and VmRSS is read: the
 *   baseline; VmHWM is reset to it (Linux ≥ 4.0, /proc/PID/clear_refs);
 * - the publisher sends `--size`-byte binary messages at `--rate` per second for `--seconds`,
 *   open loop: every 10 ms it writes as many as are due by the clock, whatever the server does;
 * - every second: VmRSS, deliveries to the fast and to the slow subscribers, and the server's
 *   counters (`stats`: what each `ws.send` returned, bytes queued);
 * - scenario `resume`: after `--resume-after` s the slow subscribers resume reading;
 * - at the end, up to 5 s for deliveries to settle, then every socket is closed and the
 *   server is stopped (SIGTERM, SIGKILL after 3 s).
 *
 * The runtime's floor: before each sluice run, the same load runs against
 * bench/fanout_overload_floor.ts on the same runtime, a bare `Deno.listen` / `Bun.listen`
 * server that writes the same frames to the same sockets and queues nothing. What its RSS gains
 * under the load is what the runtime itself takes to move those bytes (on Deno, most of it is
 * V8's young generation growing with the `conn.write` calls), and is no part of sluice's cost.
 *
 * The stated bound: the slow subscribers may each hold `--max-backpressure` bytes in the
 * server; the fast ones hold about nothing; `--allowance` covers the rest (garbage not yet
 * collected, one tick's frames). So peak VmHWM ≤ baseline + the runtime's floor +
 * slow × max-backpressure + allowance. Also printed: the bound if every subscriber sat at the limit at once (what the
 * limit alone guarantees: a server that falls behind backs up its fast readers too). The run
 * fails (exit 1) if the stated bound is exceeded, if the fast subscribers got nothing, if the
 * slow ones got nothing after resuming, or if the server exited early.
 *
 * Two things to know when reading the figures. On Linux loopback a subscriber that reads
 * nothing still takes about 4 MB into kernel buffers (a 128 KiB receive buffer and a send
 * buffer that grows to `tcp_wmem`'s 4 MiB), which is not the server's RSS: at 64 bytes ×
 * 1,000/s (66 KB/s) that lasts a minute, so within 20 s the server's queue for a slow reader
 * stays near empty and drops come only from stalls of the whole server. To see slow readers'
 * queues sit at the limit, send ≥ 400 KB/s per subscriber (e.g. `--size 1024 --rate 500`).
 * And the server's `process.memoryUsage()` is printed each second (heap/ext): RSS above the
 * queues is mostly `external` memory, ArrayBuffers awaiting collection.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { type ChildProcess, spawn } from "node:child_process";
import process from "node:process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { FanoutClient, maskedFrame } from "./_fanout_client.ts";
import { memory, resetPeak } from "./deflate_memory.ts";
import { canPin, cpuSeconds, executable, option, pinSelf, ROOT, sleep } from "./_proc.ts";
import type { Stats } from "./_overload_stats.ts";

type Runtime = "deno" | "bun";
type Scenario = "paused" | "resume";

const SERVER = fileURLToPath(new URL("./fanout_overload_server.ts", import.meta.url));
const FLOOR = fileURLToPath(new URL("./fanout_overload_floor.ts", import.meta.url));
const MiB = 1024 * 1024;

/** What one run does. */
interface Settings {
  runtime: Runtime;
  scenario: Scenario;
  subscribers: number;
  slow: number;
  rate: number;
  seconds: number;
  resumeAfter: number;
  size: number;
  maxBackpressure: number;
  policy: string;
  /** How the server broadcasts: "publish" (a topic) or "loop" (ws.send per subscriber). */
  broadcast: string;
  allowance: number;
  /** The server: sluice, or the bare runtime (bench/fanout_overload_floor.ts). */
  floor?: boolean;
}

/** One second of a run. */
interface Sample {
  t: number;
  rss: number;
  fast: number;
  slow: number;
  stats?: Stats;
}

/** What one run measured; memory in KiB. */
interface Result {
  settings: Settings;
  offered: number;
  published: number;
  fastPerSecond: number;
  fastComplete: number;
  slowWhilePaused: number;
  slowAfterResume: number;
  final: Stats;
  baseline: number;
  peak: number;
  end: number;
  /** RSS change over the second half of the publishing window: growth that goes on. */
  drift: number;
  /**
   * What the bare runtime gained under the same load in the same run (its peak above its
   * baseline, bench/fanout_overload_floor.ts), or 0 when it was not measured.
   */
  floor: number;
  /** baseline + floor + slow × maxBackpressure + allowance. */
  bound: number;
  /** baseline + floor + all subscribers × maxBackpressure + allowance: what the limit guarantees. */
  boundAll: number;
  serverCpu: number;
  clientCpu: number;
}

const children = new Set<ChildProcess>();
// Whatever happens to this script, its servers do not outlive it.
process.on("exit", () => {
  for (const child of children) child.kill("SIGKILL");
});

/** A running server child. */
interface ServerChild {
  pid: number;
  port: number;
  /** Whether it has exited. */
  readonly exited: boolean;
  /** Stops it: SIGTERM, then SIGKILL after 3 s. Resolves with its last `stats` line. */
  stop(): Promise<Stats | undefined>;
}

async function startServer(s: Settings, pin: boolean): Promise<ServerChild> {
  const args = [
    ...(s.runtime === "deno" ? ["run", "-A", process.env.DENO_V8 ?? "--v8-flags=--expose-gc"] : []),
    s.floor === true ? FLOOR : SERVER,
    "--port",
    "0",
    "--policy",
    s.policy,
    "--max-backpressure",
    String(s.maxBackpressure),
    "--broadcast",
    s.broadcast,
    "--stdin-lifeline",
  ];
  const command = pin ? "taskset" : executable(s.runtime);
  const child = spawn(command, pin ? ["-c", "0", executable(s.runtime), ...args] : args, {
    cwd: ROOT,
    stdio: ["pipe", "pipe", "inherit"],
    env: { ...process.env, NO_COLOR: "1" },
  });
  children.add(child);
  let exited = false;
  const exit = new Promise<void>((resolve) =>
    child.once("exit", () => {
      exited = true;
      children.delete(child);
      resolve();
    })
  );
  let last: Stats | undefined;
  let ready: (line: string) => void = () => {};
  const readyLine = new Promise<string>((resolve) => ready = resolve);
  createInterface({ input: child.stdout! }).on("line", (line) => {
    if (line.startsWith("ready ")) ready(line);
    else if (line.startsWith("stats ")) last = JSON.parse(line.slice(6));
    else console.log(`  [server] ${line}`);
  });
  const timeout = sleep(30_000).then(() => "timeout");
  const first = await Promise.race([readyLine, exit.then(() => "exited"), timeout]);
  if (!first.startsWith("ready ")) {
    child.kill("SIGKILL");
    throw new Error(`${s.runtime} server: ${first} before it was ready`);
  }
  const [, port, pid] = first.split(" ");
  return {
    pid: Number(pid),
    port: Number(port),
    get exited() {
      return exited;
    },
    async stop() {
      if (!exited) {
        child.kill("SIGTERM");
        const timer = setTimeout(() => child.kill("SIGKILL"), 3000);
        await exit;
        clearTimeout(timer);
      }
      child.stdin!.destroy();
      return last;
    },
  };
}

/** Sends commands as text messages over the publisher; answers come back in order. */
function commander(publisher: FanoutClient): (text: string) => Promise<string> {
  const waiting: Array<(answer: string) => void> = [];
  publisher.onText = (text) => waiting.shift()?.(text);
  return (text) =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no answer to ${text} in 10 s`)), 10_000);
      waiting.push((answer) => {
        clearTimeout(timer);
        resolve(answer);
      });
      publisher.sendText(text);
    });
}

function sum(clients: FanoutClient[]): number {
  let total = 0;
  for (const client of clients) total += client.messages;
  return total;
}

async function run(s: Settings, pin: boolean, floor = 0): Promise<Result> {
  const server = await startServer(s, pin);
  const fast: FanoutClient[] = [];
  const slow: FanoutClient[] = [];
  let publisher: FanoutClient | undefined;
  let timer: ReturnType<typeof setInterval> | undefined;
  try {
    // The slow subscribers are spread evenly over the server's subscriber set; `?slow` only
    // tells the server to count their sends apart.
    const isSlow = (i: number) =>
      Math.floor((i + 1) * s.slow / s.subscribers) > Math.floor(i * s.slow / s.subscribers);
    for (let start = 0; start < s.subscribers; start += 100) {
      const end = Math.min(start + 100, s.subscribers);
      const batch = await Promise.all(
        Array.from(
          { length: end - start },
          (_, k) => FanoutClient.connect(server.port, isSlow(start + k) ? "/?slow" : "/"),
        ),
      );
      batch.forEach((client, k) => {
        if (isSlow(start + k)) {
          client.socket.pause();
          slow.push(client);
        } else {
          fast.push(client);
        }
      });
    }
    publisher = await FanoutClient.connect(server.port, "/pub");
    const command = commander(publisher);
    const opened: Stats = JSON.parse(await command("stats"));
    if (opened.subscribers !== s.subscribers) {
      throw new Error(`server has ${opened.subscribers} subscribers, not ${s.subscribers}`);
    }
    await command("gc");
    await sleep(500);
    await command("gc");
    const baseline = memory(server.pid).rss;
    if (!resetPeak(server.pid)) console.log("  (cannot reset VmHWM: the peak includes startup)");
    const cpuBefore = cpuSeconds(server.pid);
    const clientCpuBefore = process.cpuUsage();

    // The publisher: open loop, as many messages as the clock says are due, every 10 ms.
    const payload = Buffer.alloc(s.size, 0x5a);
    const frame = maskedFrame(0x2, payload);
    const total = s.rate * s.seconds;
    const most = Math.ceil(s.rate / 10); // due in 100 ms: the batch a late timer catches up
    // All frames are the same bytes, so a write the socket still holds may share the buffer.
    const frames = Buffer.alloc(frame.length * most);
    for (let k = 0; k < most; k++) frame.copy(frames, k * frame.length);
    let written = 0;
    const started = performance.now();
    timer = setInterval(() => {
      const due = Math.min(Math.floor((performance.now() - started) * s.rate / 1000), total);
      while (written < due) {
        const n = Math.min(due - written, most);
        publisher!.socket.write(frames.subarray(0, n * frame.length));
        written += n;
      }
    }, 10);

    const samples: Sample[] = [];
    let slowAtResume = 0;
    const paused = s.scenario === "paused" ? s.seconds : s.resumeAfter;
    console.log(
      "  t/s  RSS MiB  fast msg/s  slow msg/s  published  dropped slow/fast  " +
        "queued KiB slow/all  max/conn KiB  heap/ext MiB",
    );
    const printSample = (sample: Sample, previous: Sample | undefined) => {
      const st = sample.stats;
      console.log(
        `  ${String(sample.t).padStart(3)}${(sample.rss / 1024).toFixed(1).padStart(9)}` +
          `${String(sample.fast - (previous?.fast ?? 0)).padStart(12)}` +
          `${String(sample.slow - (previous?.slow ?? 0)).padStart(12)}` +
          `${String(st?.published ?? "-").padStart(11)}` +
          `${
            (st === undefined ? "-" : `${st.slow.dropped}/${st.dropped - st.slow.dropped}`)
              .padStart(19)
          }` +
          `${
            (st === undefined
              ? "-"
              : `${(st.queuedSlow / 1024).toFixed(0)}/${(st.queued / 1024).toFixed(0)}`)
              .padStart(21)
          }` +
          `${(st === undefined ? "-" : (st.maxQueued / 1024).toFixed(1)).padStart(14)}` +
          `${
            (st === undefined
              ? "-"
              : `${(st.memory.heapTotal / MiB).toFixed(0)}/${
                (st.memory.external / MiB).toFixed(0)
              }`).padStart(14)
          }`,
      );
    };
    for (let t = 1; t <= s.seconds; t++) {
      await sleep(started + t * 1000 - performance.now());
      if (server.exited) throw new Error(`${s.runtime} server exited during the run`);
      const sample: Sample = { t, rss: memory(server.pid).rss, fast: sum(fast), slow: sum(slow) };
      samples.push(sample);
      // Asked now, answered when the server gets to it; the line is printed a second later.
      command("stats").then((answer) => sample.stats = JSON.parse(answer), () => {});
      if (t >= 2) printSample(samples[t - 2], samples[t - 3]);
      if (t === paused && s.scenario === "resume") {
        slowAtResume = sum(slow);
        for (const client of slow) client.socket.resume();
      }
    }
    clearInterval(timer);
    timer = undefined;
    const fastInWindow = sum(fast);
    const slowInWindow = s.scenario === "paused" ? sum(slow) : slowAtResume;
    // Let the deliveries settle: until nothing more arrives for a second, at most 5 s.
    let delivered = -1;
    for (let k = 0; k < 10; k++) {
      await sleep(500);
      const now = sum(fast) + sum(slow);
      if (now === delivered) break;
      delivered = now;
    }
    const final: Stats = JSON.parse(await command("stats"));
    samples[samples.length - 1].stats ??= final;
    printSample(samples[samples.length - 1], samples[samples.length - 2]);
    const mem = memory(server.pid);
    const serverCpu = cpuSeconds(server.pid) - cpuBefore;
    const clientCpu = process.cpuUsage(clientCpuBefore);
    const fastTotal = sum(fast);
    return {
      settings: s,
      offered: written / s.seconds,
      published: final.published / s.seconds,
      fastPerSecond: fastInWindow / s.seconds,
      fastComplete: fastTotal / (final.published * fast.length),
      slowWhilePaused: slowInWindow,
      slowAfterResume: s.scenario === "resume" ? sum(slow) - slowAtResume : 0,
      final,
      baseline,
      peak: mem.hwm,
      end: mem.rss,
      drift: samples[samples.length - 1].rss - samples[Math.floor(samples.length / 2) - 1].rss,
      floor,
      bound: baseline + floor + (slow.length * s.maxBackpressure) / 1024 + s.allowance * 1024,
      boundAll: baseline + floor + (s.subscribers * s.maxBackpressure) / 1024 +
        s.allowance * 1024,
      serverCpu: serverCpu / s.seconds,
      clientCpu: (clientCpu.user + clientCpu.system) / 1e6 / s.seconds,
    };
  } finally {
    if (timer !== undefined) clearInterval(timer);
    publisher?.destroy();
    for (const client of fast) client.destroy();
    for (const client of slow) client.destroy();
    await server.stop();
  }
}

function mib(kib: number): string {
  return `${(kib / 1024).toFixed(1)} MiB`;
}

function describe(r: Result): string[] {
  const s = r.settings;
  const f = r.final;
  return [
    `  offered ${r.offered.toFixed(0)} msg/s, the server read ${r.published.toFixed(0)} msg/s`,
    `  fast (${s.subscribers - s.slow}): ${r.fastPerSecond.toFixed(0)} deliveries/s in the ` +
    `window; ${(r.fastComplete * 100).toFixed(1)} % of what was published reached them`,
    `  slow (${s.slow}): ${r.slowWhilePaused} deliveries while paused` +
    (s.scenario === "resume" ? `, ${r.slowAfterResume} after resuming` : ""),
    `  server sends: ${f.sent} sent, ${f.backpressure} backpressure, ${f.dropped} dropped ` +
    `(${f.slow.dropped} of them to slow subscribers), ${f.skipped} skipped; ${f.drains} drain ` +
    `events; closes ${JSON.stringify(f.closes)}`,
    `  server queues (sampled each second): one subscriber at most ${
      (f.peakQueued / 1024).toFixed(1)
    } KiB, all together at most ${mib(f.peakQueuedTotal / 1024)}`,
    `  server RSS: baseline ${mib(r.baseline)}, peak ${mib(r.peak)} (+${
      mib(r.peak - r.baseline)
    }), at the end ${mib(r.end)}; ${r.drift >= 0 ? "+" : ""}${
      mib(r.drift)
    } over the second half of the window`,
    `  bound, slow readers only (baseline + ${
      r.floor > 0 ? `the runtime's floor ${mib(r.floor)} + ` : ""
    }${s.slow} × ${s.maxBackpressure} B + ${s.allowance} ` +
    `MiB): ${mib(r.bound)}, ${r.peak <= r.bound ? "within" : "EXCEEDED"}; every subscriber ` +
    `at the limit (+ ${s.subscribers} × ${s.maxBackpressure} B + ${s.allowance} MiB): ` +
    `${mib(r.boundAll)}, ${r.peak <= r.boundAll ? "within" : "EXCEEDED"}`,
    `  CPU: server ${(r.serverCpu * 100).toFixed(0)} %, load generator ${
      (r.clientCpu * 100).toFixed(0)
    } % of a core`,
  ];
}

async function main(): Promise<void> {
  const runtimes = option("runtime", "deno,bun").split(",") as Runtime[];
  const scenarios = option("scenario", "paused,resume").split(",") as Scenario[];
  for (const runtime of runtimes) {
    if (runtime !== "deno" && runtime !== "bun") throw new RangeError(`--runtime ${runtime}?`);
  }
  for (const scenario of scenarios) {
    if (scenario !== "paused" && scenario !== "resume") {
      throw new RangeError(`--scenario ${scenario}?`);
    }
  }
  const base = {
    subscribers: Number(option("subscribers", "1000")),
    slow: Number(option("slow", "100")),
    rate: Number(option("rate", "1000")),
    seconds: Number(option("seconds", "20")),
    resumeAfter: Number(option("resume-after", "10")),
    size: Number(option("size", "64")),
    maxBackpressure: Number(option("max-backpressure", "65536")),
    policy: option("policy", "drop"),
    broadcast: option("broadcast", "publish"),
    allowance: Number(option("allowance", "16")),
  };
  const withFloor = !process.argv.includes("--no-floor");
  const pin = canPin();
  if (pin) pinSelf(1);
  const client = "Bun" in globalThis ? "bun" : "deno";
  console.log(
    `${base.subscribers} subscribers (${base.slow} stop reading), ${base.size}-byte messages at ` +
      `${base.rate}/s for ${base.seconds} s; maxBackpressure ${base.maxBackpressure}, policy ` +
      `${base.policy}, broadcast by ${base.broadcast}; load generator in ${client}` +
      (pin ? "; server on core 0, load on core 1" : "; not pinned (no taskset or one core)"),
  );
  const results: Result[] = [];
  let failed = false;
  for (const runtime of runtimes) {
    for (const scenario of scenarios) {
      const settings: Settings = { runtime, scenario, ...base };
      console.log(
        `\n${runtime}, ${
          scenario === "paused"
            ? "slow subscribers paused throughout"
            : `slow subscribers resume after ${base.resumeAfter} s`
        }`,
      );
      const started = performance.now();
      try {
        let floor = 0;
        if (withFloor) {
          // The bare runtime first, on the same load: what it gains is not sluice's.
          const bare = await run({ ...settings, floor: true }, pin);
          floor = Math.max(0, bare.peak - bare.baseline);
          console.log(
            `  the runtime's floor (bench/fanout_overload_floor.ts): baseline ${
              mib(bare.baseline)
            }, peak ${mib(bare.peak)} (+${mib(floor)}); ${
              bare.fastPerSecond.toFixed(0)
            } fast deliveries/s`,
          );
        }
        const result = await run(settings, pin, floor);
        results.push(result);
        for (const line of describe(result)) console.log(line);
        if (result.peak > result.bound || result.fastPerSecond === 0) failed = true;
        if (scenario === "resume" && result.slowAfterResume === 0) failed = true;
      } catch (error) {
        console.log(`  FAILED: ${error instanceof Error ? error.message : String(error)}`);
        failed = true;
      }
      console.log(`  (run took ${((performance.now() - started) / 1000).toFixed(1)} s)`);
    }
  }
  console.log(
    "\n| runtime | scenario | offered msg/s | fast deliveries/s | slow while paused | " +
      "slow after resume | dropped slow / fast | baseline RSS | peak RSS | runtime floor | " +
      "bound slow / all |",
  );
  console.log("| --- | --- | --: | --: | --: | --: | --: | --: | --: | --: | --: |");
  for (const r of results) {
    console.log(
      `| ${r.settings.runtime} | ${r.settings.scenario} | ${r.offered.toFixed(0)} | ` +
        `${r.fastPerSecond.toFixed(0)} | ${r.slowWhilePaused} | ` +
        `${r.settings.scenario === "resume" ? r.slowAfterResume : "–"} | ` +
        `${r.final.slow.dropped} / ${r.final.dropped - r.final.slow.dropped} | ` +
        `${mib(r.baseline)} | ${mib(r.peak)} | +${mib(r.floor)} | ${mib(r.bound)} / ` +
        `${mib(r.boundAll)} |`,
    );
  }
  process.exitCode = failed ? 1 : 0;
}

if (import.meta.main) {
  await main();
  process.exit();
}
