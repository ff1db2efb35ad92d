/**
 * Slow readers: many clients send to examples/echo.ts as fast as they can and do not read the
 * echoes until they have sent everything, then read them all; a few fast clients echo one
 * message at a time meanwhile. It measures what the server's memory peaks at, whether every
 * echo arrives (once, in order), and the fast clients' round trips.
 *
 *     bun bench/slow_readers.ts --runtime deno      # or --runtime bun, or deno,bun
 *     bun bench/slow_readers.ts --runtime bun --clients 20 --messages 200   # a quick run
 *
 * Options (defaults): --runtime deno,bun; --clients 200 (slow clients); --messages 1000 (per
 * slow client); --size 16384 (payload bytes); --fast 4 (fast clients); --fast-gap 10 (ms a fast
 * client waits after an echo before it sends again); --stall 3 (seconds without progress that
 * end the sending phase); --cap 6144 (MiB of server RSS above which the server is killed and
 * the run reported as such); --timeout 600 (seconds for the reading phase).
 *
 * Each run starts examples/echo.ts on the chosen runtime as a child process, pinned to core 0
 * with `taskset -c 0` when there is one (this process moves itself to core 1), so its memory
 * (/proc/PID/status) is its own. Then, over node:net on 127.0.0.1:
 * - the slow clients and the fast ones connect; the slow ones pause their sockets (they read
 *   nothing); the server's VmRSS is the baseline, and VmHWM is reset to it (Linux ≥ 4.0);
 * - the fast clients echo for a second alone (their round trip on a quiet server);
 * - sending: every slow client writes its messages as fast as its socket takes them (binary,
 *   the first 4 bytes a sequence number, masked with a zero key so that one buffer serves
 *   again once the socket took it: a client costs little CPU and holds at most two batches).
 *   The phase ends when every slow client has handed all its bytes to the kernel, or when none
 *   has for `--stall` seconds (the server stopped reading them: TCP holds them back);
 * - reading: the slow clients resume their sockets, write what they have left, and read until
 *   every echo has come (or none for 30 s, or `--timeout`);
 * - every 100 ms the server's VmRSS is sampled; above `--cap` the server is killed (SIGKILL).
 *
 * Reported per runtime: the server's baseline and peak RSS (VmHWM, else the highest sample),
 * how much the slow clients had sent when the sending phase ended, the echoes delivered (of
 * clients × messages; lost or out of order counted apart), how long each phase took, the fast
 * clients' round trips (p50, p99, max) on the quiet server, while the slow clients send and
 * while they read, and the CPU time of the server and of this process.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import process from "node:process";
import { FanoutClient, sequencedFrames } from "./_fanout_client.ts";
import { memory, resetPeak } from "./deflate_memory.ts";
import {
  canPin,
  type Child,
  command,
  cpuSeconds,
  option,
  pinSelf,
  rss,
  sleep,
  start,
  stopChild,
} from "./_proc.ts";

type Runtime = "deno" | "bun";

/** What one run does. */
interface Settings {
  runtime: Runtime;
  clients: number;
  messages: number;
  size: number;
  fast: number;
  fastGap: number;
  stall: number;
  cap: number;
  timeout: number;
}

/** Round trips of the fast clients in one phase, in ms. */
class Latencies {
  readonly values: number[] = [];
  add(ms: number): void {
    this.values.push(ms);
  }
  /** `p50 / p99 / max ms (count)`. */
  describe(): string {
    const sorted = this.values.toSorted((a, b) => a - b);
    if (sorted.length === 0) return "no echoes";
    const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
    return `p50 ${at(0.5).toFixed(1)} / p99 ${at(0.99).toFixed(1)} / max ${
      sorted.at(-1)!.toFixed(1)
    } ms (${sorted.length})`;
  }
  get p50(): number {
    return this.values.length === 0 ? NaN : this.values.toSorted((a, b) => a - b)[
      this.values.length >> 1
    ];
  }
  get max(): number {
    return this.values.length === 0 ? NaN : Math.max(...this.values);
  }
}

/** What one run measured; memory in KiB. */
interface Result {
  settings: Settings;
  baseline: number;
  peak: number;
  /** The server was killed above the cap. */
  killed: boolean;
  /** Bytes the slow clients had handed to the kernel when the sending phase ended. */
  sentBeforeReading: number;
  sendSeconds: number;
  readSeconds: number;
  delivered: number;
  lost: number;
  reordered: number;
  quiet: Latencies;
  sending: Latencies;
  reading: Latencies;
  serverCpu: number;
  clientCpu: number;
}

/** Frames per batch a slow client writes at once (about 128 KiB of 16 KiB messages). */
const BATCH_BYTES = 128 * 1024;

/**
 * One slow client's sender: its messages as masked binary frames with a zero masking key
 * (RFC 6455 §5.3 asks for a key the server cannot predict; the server's unmasking costs the
 * same whatever the key), so the payload is the bytes as sent and a batch buffer is reused
 * once its write has reached the kernel: only the sequence numbers change.
 */
class Sender {
  /** Bytes handed to the kernel. */
  flushed = 0;
  readonly total: number;
  #client: FanoutClient;
  #next = 0;
  #messages: number;
  #frame: number;
  #perBatch: number;
  #template: Buffer;
  #free: Buffer[] = [];
  #inFlight = 0;

  constructor(client: FanoutClient, messages: number, size: number) {
    this.#client = client;
    this.#messages = messages;
    const head = 8; // 2 + a 16-bit length + a 4-byte key: payloads of 126 B to 64 KiB
    if (size < 126 || size >= 65536) throw new RangeError("--size must be 126 to 65535");
    this.#frame = head + size;
    this.#perBatch = Math.max(1, Math.floor(BATCH_BYTES / this.#frame));
    this.total = messages * this.#frame;
    const frame = Buffer.alloc(this.#frame, 0x5a);
    frame[0] = 0x82;
    frame[1] = 0x80 | 126;
    frame.writeUInt16BE(size, 2);
    frame.writeUInt32BE(0, 4);
    this.#template = Buffer.alloc(this.#perBatch * this.#frame);
    for (let k = 0; k < this.#perBatch; k++) frame.copy(this.#template, k * this.#frame);
  }

  /** Writes while fewer than two batches wait for the kernel. */
  pump(): void {
    const socket = this.#client.socket;
    while (this.#inFlight < 2 && this.#next < this.#messages && !socket.destroyed) {
      const buffer = this.#free.pop() ?? Buffer.from(this.#template);
      const count = Math.min(this.#perBatch, this.#messages - this.#next);
      for (let k = 0; k < count; k++) buffer.writeUInt32LE(this.#next + k, k * this.#frame + 8);
      this.#next += count;
      this.#inFlight++;
      const bytes = count * this.#frame;
      socket.write(count === this.#perBatch ? buffer : buffer.subarray(0, bytes), (error) => {
        this.#inFlight--;
        if (error) return;
        this.flushed += bytes;
        this.#free.push(buffer);
        this.pump();
      });
    }
  }
}

/** A fast client: one message at a time, each round trip timed into the current phase. */
function fastLoop(
  client: FanoutClient,
  size: number,
  gap: number,
  phase: () => Latencies | undefined,
): () => void {
  let seq = 0;
  let sentAt = 0;
  let stopped = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  client.sequenced = true;
  const send = () => {
    timer = undefined;
    if (stopped || client.closed) return;
    sentAt = performance.now();
    client.socket.write(sequencedFrames(seq, 1, size));
  };
  client.onSequence = (sequence) => {
    if (sequence !== seq) return;
    phase()?.add(performance.now() - sentAt);
    seq++;
    timer = setTimeout(send, gap);
  };
  send();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}

/** Resolves with the port examples/echo.ts printed. */
async function echoPort(server: Child): Promise<number> {
  const line = await server.line("echo", 30_000);
  const match = /ws:\/\/[^:]+:(\d+)/.exec(line);
  if (match === null) throw new Error(`no port in "${line}"`);
  return Number(match[1]);
}

async function run(s: Settings, pin: boolean): Promise<Result> {
  const server = start(
    `${s.runtime} server`,
    command(s.runtime, "examples/echo.ts", ["--port", "0", "--hostname", "127.0.0.1"]),
    pin ? 0 : undefined,
  );
  const slow: FanoutClient[] = [];
  const fast: FanoutClient[] = [];
  const stops: Array<() => void> = [];
  let sampler: ReturnType<typeof setInterval> | undefined;
  try {
    const port = await echoPort(server);
    const pid = server.process.pid!;
    for (let start = 0; start < s.clients; start += 50) {
      const batch = await Promise.all(
        Array.from(
          { length: Math.min(50, s.clients - start) },
          () => FanoutClient.connect(port, "/"),
        ),
      );
      for (const client of batch) {
        client.socket.pause();
        client.sequenced = true;
        slow.push(client);
      }
    }
    for (let i = 0; i < s.fast; i++) fast.push(await FanoutClient.connect(port, "/"));
    await sleep(500);
    const baseline = memory(pid).rss;
    const hwm = resetPeak(pid);
    if (!hwm) console.log("  (cannot reset VmHWM: the peak is the highest sample)");
    let sampled = baseline;
    let killed = false;
    sampler = setInterval(() => {
      const now = rss(pid);
      if (now > sampled) sampled = now;
      if (now > s.cap * 1024 && !killed) {
        killed = true;
        console.log(`  server RSS ${(now / 1024).toFixed(0)} MiB is above the cap: killed`);
        server.process.kill("SIGKILL");
      }
    }, 100);
    const serverCpuBefore = cpuSeconds(pid);
    const clientCpuBefore = process.cpuUsage();

    const quiet = new Latencies();
    const sending = new Latencies();
    const reading = new Latencies();
    let phase: Latencies | undefined = quiet;
    for (const client of fast) stops.push(fastLoop(client, s.size, s.fastGap, () => phase));
    await sleep(1000);

    // Sending: as fast as the sockets take it, nothing read.
    phase = sending;
    const senders = slow.map((client) => new Sender(client, s.messages, s.size));
    const total = senders.reduce((sum, sender) => sum + sender.total, 0);
    const flushed = () => senders.reduce((sum, sender) => sum + sender.flushed, 0);
    const sendStart = performance.now();
    for (const sender of senders) sender.pump();
    let last = -1;
    let lastMove = performance.now();
    let progress = 0;
    for (;;) {
      await sleep(100);
      progress = flushed();
      if (progress === total || killed || server.process.exitCode !== null) break;
      if (progress !== last) {
        last = progress;
        lastMove = performance.now();
      } else if (performance.now() - lastMove > s.stall * 1000) {
        break;
      }
    }
    const sendSeconds = (performance.now() - sendStart) / 1000;
    console.log(
      `  sending: ${(progress / 1e6).toFixed(0)} of ${(total / 1e6).toFixed(0)} MB handed to ` +
        `the kernel in ${sendSeconds.toFixed(1)} s${
          progress === total ? "" : ` (no progress for ${s.stall} s)`
        }; server RSS ${(rss(pid) / 1024).toFixed(0)} MiB`,
    );

    // Reading: every slow client reads, and sends what it has left.
    phase = reading;
    const readStart = performance.now();
    for (const client of slow) client.socket.resume();
    const wanted = s.clients * s.messages;
    const delivered = () => slow.reduce((sum, client) => sum + client.messages, 0);
    let shown = performance.now();
    let lastGot = -1;
    let lastEcho = performance.now();
    while (!killed && server.process.exitCode === null) {
      const got = delivered();
      const now = performance.now();
      if (got >= wanted || now - readStart > s.timeout * 1000) break;
      if (got !== lastGot) {
        lastGot = got;
        lastEcho = now;
      } else if (now - lastEcho > 30_000) {
        console.log("  reading: no echo for 30 s: the rest is lost");
        break;
      }
      if (performance.now() - shown > 5000) {
        shown = performance.now();
        console.log(
          `  reading: ${got} of ${wanted} echoes after ${
            ((shown - readStart) / 1000).toFixed(0)
          } s; server RSS ${(rss(pid) / 1024).toFixed(0)} MiB`,
        );
      }
      await sleep(50);
    }
    const readSeconds = (performance.now() - readStart) / 1000;
    phase = undefined;
    for (const stop of stops) stop();
    clearInterval(sampler);
    sampler = undefined;
    const alive = server.process.exitCode === null && !killed;
    const serverCpu = alive ? cpuSeconds(pid) - serverCpuBefore : NaN;
    const clientCpu = process.cpuUsage(clientCpuBefore);
    const peak = alive && hwm ? Math.max(memory(pid).hwm, sampled) : sampled;
    return {
      settings: s,
      baseline,
      peak,
      killed,
      sentBeforeReading: progress,
      sendSeconds,
      readSeconds,
      delivered: delivered(),
      lost: slow.reduce((sum, client) => sum + client.lost, 0),
      reordered: slow.reduce((sum, client) => sum + client.reordered, 0),
      quiet,
      sending,
      reading,
      serverCpu,
      clientCpu: (clientCpu.user + clientCpu.system) / 1e6,
    };
  } finally {
    if (sampler !== undefined) clearInterval(sampler);
    for (const stop of stops) stop();
    for (const client of [...slow, ...fast]) client.destroy();
    await stopChild(server);
  }
}

function mib(kib: number): string {
  return `${(kib / 1024).toFixed(0)} MiB`;
}

async function main(): Promise<void> {
  const runtimes = option("runtime", "deno,bun").split(",") as Runtime[];
  for (const runtime of runtimes) {
    if (runtime !== "deno" && runtime !== "bun") throw new RangeError(`--runtime ${runtime}?`);
  }
  const base = {
    clients: Number(option("clients", "200")),
    messages: Number(option("messages", "1000")),
    size: Number(option("size", "16384")),
    fast: Number(option("fast", "4")),
    fastGap: Number(option("fast-gap", "10")),
    stall: Number(option("stall", "3")),
    cap: Number(option("cap", "6144")),
    timeout: Number(option("timeout", "600")),
  };
  const pin = canPin();
  if (pin) pinSelf(1);
  const load = "Bun" in globalThis ? "bun" : "Deno" in globalThis ? "deno" : "node";
  console.log(
    `${base.clients} slow clients × ${base.messages} × ${base.size} B ` +
      `(${(base.clients * base.messages * (base.size + 8) / 1e9).toFixed(2)} GB), ` +
      `${base.fast} fast clients; server killed above ${base.cap} MiB; load in ${load}` +
      (pin ? "; server on core 0, load on core 1" : "; not pinned (no taskset or one core)"),
  );
  const results: Result[] = [];
  let failed = false;
  for (const runtime of runtimes) {
    console.log(`\n${runtime}`);
    try {
      const r = await run({ runtime, ...base }, pin);
      results.push(r);
      const wanted = base.clients * base.messages;
      console.log(
        `  server RSS: baseline ${mib(r.baseline)}, peak ${mib(r.peak)}${
          r.killed ? " (killed at the cap)" : ""
        }`,
      );
      console.log(
        `  echoes: ${r.delivered} of ${wanted} delivered (${r.lost} lost, ${r.reordered} out ` +
          `of order); reading took ${r.readSeconds.toFixed(1)} s`,
      );
      console.log(`  fast clients, quiet server: ${r.quiet.describe()}`);
      console.log(`  fast clients, slow ones sending: ${r.sending.describe()}`);
      console.log(`  fast clients, slow ones reading: ${r.reading.describe()}`);
      console.log(
        `  CPU: server ${r.serverCpu.toFixed(1)} s, load ${r.clientCpu.toFixed(1)} s`,
      );
      if (r.killed || r.delivered !== wanted || r.lost !== 0 || r.reordered !== 0) failed = true;
    } catch (error) {
      console.log(`  FAILED: ${error instanceof Error ? error.message : String(error)}`);
      failed = true;
    }
  }
  console.log(
    "\n| runtime | peak RSS | sent before reading | echoes delivered | fast p50 / max, " +
      "sending (ms) | fast p50 / max, reading (ms) |",
  );
  console.log("| --- | --: | --: | --: | --: | --: |");
  for (const r of results) {
    console.log(
      `| ${r.settings.runtime} | ${mib(r.peak)}${r.killed ? " (killed)" : ""} | ` +
        `${(r.sentBeforeReading / 1e6).toFixed(0)} MB | ` +
        `${r.delivered} / ${r.settings.clients * r.settings.messages} | ` +
        `${r.sending.p50.toFixed(1)} / ${r.sending.max.toFixed(0)} | ` +
        `${r.reading.p50.toFixed(1)} / ${r.reading.max.toFixed(0)} |`,
    );
  }
  process.exitCode = failed ? 1 : 0;
}

if (import.meta.main) {
  await main();
  process.exit();
}
