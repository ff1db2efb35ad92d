/**
 * Write coalescing, end to end: frames sent to one connection in one tick leave in one
 * `transport.write` (corked by the {@linkcode Outbox} until the microtask) versus one
 * `transport.write` per frame.
 *
 * One process: the current runtime's adapter (`runtimeListen()`) listens on 127.0.0.1, and
 * {@linkcode CLIENTS} node:net clients connect to it and only count the bytes they receive. For
 * each accepted transport the server runs a loop of ticks; each tick sends {@linkcode BATCH}
 * binary frames of {@linkcode PAYLOAD} bytes to that connection, then waits for the next
 * macrotask (`setImmediate`), until {@linkcode FRAMES} frames were sent to it:
 * - corked: `outbox.writeFrame(...)` for each frame; the outbox frames them into its pooled
 *   buffer and hands the tick's frames to the transport in one `write` at the microtask;
 * - uncorked: `transport.write(frame, false)` for each frame, the frames encoded once up front
 *   with `encodeFrame` (so this side does no framing work at all during the run: any gain of
 *   the corked side comes from the writes saved, not from cheaper framing).
 *
 * If a connection's transport holds more than {@linkcode HIGH_WATER} bytes not yet handed to
 * the system, its loop waits for `onDrain` instead of the next macrotask, as a server would.
 *
 * Measured per run, from the first tick until every client has received every byte: wall time
 * (reported as frames delivered per second) and the process's CPU time, user + system from
 * `process.cpuUsage()` (reported per frame; it includes the clients' reads, which are the same
 * bytes in both modes). Each mode runs {@linkcode RUNS} times, alternating, after one warm-up
 * run of each; the table shows medians, and the ratio corked / uncorked of the medians.
 *
 * Run with `deno run -A bench/cork_bench.ts` or `bun bench/cork_bench.ts`.
 *
 * @module
 */
import type { Buffer } from "node:buffer";
import { connect, type Socket } from "node:net";
import process from "node:process";
import { setImmediate } from "node:timers";
import { runtime } from "./_report.ts";
import { encodeFrame } from "../lib/protocol/frame_writer.ts";
import { Opcode } from "../lib/protocol/opcode.ts";
import { runtimeListen } from "../lib/runtime/runtime.ts";
import { Outbox } from "../lib/core/outbox.ts";
import type { Transport, TransportHandler } from "../lib/core/transport.ts";

/** Connections. */
const CLIENTS = 16;
/** Frames sent to each connection per tick. */
const BATCH = 16;
/** Payload bytes per frame. */
const PAYLOAD = 32;
/** Frames sent to each connection per run. */
const FRAMES = 20_000;
/** Measured runs per mode. */
const RUNS = 5;
/** Bytes a transport may hold before the loop waits for its `onDrain`. */
const HIGH_WATER = 64 * 1024;
/** Give up on a run after this long. */
const RUN_TIMEOUT_MS = 60_000;

type Mode = "corked" | "uncorked";

/** The payloads of one tick: frame `i` carries bytes equal to `i`. */
const payloads = Array.from({ length: BATCH }, (_, i) => new Uint8Array(PAYLOAD).fill(i));
/** The same, as whole frames for the uncorked side. */
const frames = payloads.map((payload) => encodeFrame(Opcode.Binary, payload));
const FRAME_SIZE = frames[0].length;
const BYTES_PER_CLIENT = FRAMES * FRAME_SIZE;
if (FRAMES % BATCH !== 0) throw new Error("FRAMES must be a multiple of BATCH");

/** A transport that counts the writes an outbox hands to the real one. */
class CountingTransport implements Transport {
  writes = 0;
  #inner: Transport;
  constructor(inner: Transport) {
    this.#inner = inner;
  }
  get remoteAddress(): string {
    return this.#inner.remoteAddress;
  }
  get remotePort(): number {
    return this.#inner.remotePort;
  }
  get bufferedAmount(): number {
    return this.#inner.bufferedAmount;
  }
  write(chunk: Uint8Array, reusable: boolean, partial?: boolean): void {
    this.writes++;
    this.#inner.write(chunk, reusable, partial);
  }
  writeUrgent(chunk: Uint8Array): void {
    this.#inner.writeUrgent(chunk);
  }
  end(): void {
    this.#inner.end();
  }
  destroy(): void {
    this.#inner.destroy();
  }
  pause(): void {
    this.#inner.pause();
  }
  resume(): void {
    this.#inner.resume();
  }
  watchBelow(bytes: number): void {
    this.#inner.watchBelow(bytes);
  }
  setHandler(handler: TransportHandler): void {
    this.#inner.setHandler(handler);
  }
}

/** The server's side of one connection. */
interface ServerConnection {
  transport: CountingTransport;
  outbox: Outbox;
  /** Resolves the loop waiting for `onDrain`, if one is. */
  drained: (() => void) | undefined;
  closed: Promise<void>;
}

/** The client's side of one connection: a byte counter. */
interface ClientConnection {
  socket: Socket;
  received: number;
  closed: Promise<void>;
}

/** What one run measured. */
interface Result {
  mode: Mode;
  wallMs: number;
  cpuUs: number;
  /** `transport.write` calls, summed over the connections. */
  writes: number;
}

function nextMacrotask(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

const servers: ServerConnection[] = [];
const clients: ClientConnection[] = [];
let accepted: (() => void) | undefined;
// Called by a client once it has everything of the current run.
let clientDone: (() => void) | undefined;
let clientsDone = 0;

const listener = runtimeListen()({ hostname: "127.0.0.1", port: 0 }, (inner) => {
  const transport = new CountingTransport(inner);
  let onClose!: () => void;
  const connection: ServerConnection = {
    transport,
    outbox: new Outbox(transport),
    drained: undefined,
    closed: new Promise((resolve) => onClose = resolve),
  };
  servers.push(connection);
  if (servers.length === CLIENTS) accepted?.();
  return {
    onData() {},
    onDrain() {
      const drained = connection.drained;
      connection.drained = undefined;
      drained?.();
    },
    onBelow() {},
    onEnd() {},
    onClose(error) {
      if (error !== undefined) console.error("server connection closed:", error);
      connection.outbox.discard();
      connection.drained?.();
      onClose();
    },
  };
});

/** Sends {@linkcode FRAMES} frames to one connection, {@linkcode BATCH} per tick. */
async function pump(connection: ServerConnection, mode: Mode): Promise<void> {
  const { transport, outbox } = connection;
  for (let sent = 0; sent < FRAMES; sent += BATCH) {
    if (mode === "corked") {
      for (let i = 0; i < BATCH; i++) {
        outbox.writeFrame(Opcode.Binary, true, false, payloads[i], false);
      }
    } else {
      for (let i = 0; i < BATCH; i++) transport.write(frames[i], false);
    }
    if (transport.bufferedAmount > HIGH_WATER) {
      await new Promise<void>((resolve) => connection.drained = resolve);
    } else {
      await nextMacrotask();
    }
  }
}

async function run(mode: Mode): Promise<Result> {
  for (const client of clients) client.received = 0;
  for (const server of servers) server.transport.writes = 0;
  clientsDone = 0;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const done = new Promise<void>((resolve, reject) => {
    clientDone = () => {
      if (++clientsDone === CLIENTS) resolve();
    };
    timer = setTimeout(() => reject(new Error(`${mode} run timed out`)), RUN_TIMEOUT_MS);
  });
  const cpu = process.cpuUsage();
  const start = performance.now();
  const pumps = servers.map((server) => pump(server, mode));
  await done;
  const wallMs = performance.now() - start;
  const used = process.cpuUsage(cpu);
  clearTimeout(timer);
  await Promise.all(pumps);
  clientDone = undefined;
  for (const client of clients) {
    if (client.received !== BYTES_PER_CLIENT) {
      throw new Error(`${mode}: a client got ${client.received} bytes, not ${BYTES_PER_CLIENT}`);
    }
  }
  const writes = servers.reduce((sum, server) => sum + server.transport.writes, 0);
  return { mode, wallMs, cpuUs: used.user + used.system, writes };
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

async function main(): Promise<void> {
  const allAccepted = new Promise<void>((resolve) => accepted = resolve);
  for (let i = 0; i < CLIENTS; i++) {
    const socket = connect({ host: "127.0.0.1", port: listener.port });
    const client: ClientConnection = {
      socket,
      received: 0,
      closed: new Promise((resolve) => socket.once("close", () => resolve())),
    };
    socket.on("data", (chunk: Buffer) => {
      const before = client.received;
      client.received += chunk.length;
      if (before < BYTES_PER_CLIENT && client.received >= BYTES_PER_CLIENT) clientDone?.();
    });
    socket.on("error", (error) => console.error("client error:", error));
    clients.push(client);
  }
  await allAccepted;

  const frameCount = CLIENTS * FRAMES;
  console.log(
    `${runtime}: ${CLIENTS} connections × ${FRAMES} frames of ${PAYLOAD} B (${FRAME_SIZE} B ` +
      `framed), ${BATCH} per connection per tick; ${RUNS} runs per mode, alternating`,
  );
  await run("corked");
  await run("uncorked");
  const results: Record<Mode, Result[]> = { corked: [], uncorked: [] };
  for (let i = 0; i < RUNS; i++) {
    // Alternate which mode goes first, so neither always follows the other.
    const order: Mode[] = i % 2 === 0 ? ["corked", "uncorked"] : ["uncorked", "corked"];
    for (const mode of order) {
      const result = await run(mode);
      results[mode].push(result);
      console.log(
        `  ${mode.padEnd(8)} ${result.wallMs.toFixed(1).padStart(8)} ms wall  ` +
          `${(result.cpuUs / 1e3).toFixed(1).padStart(8)} ms CPU`,
      );
    }
  }

  // Everything closed: clients first (the server sees their FIN), then the server's sockets
  // and the listener.
  for (const client of clients) client.socket.destroy();
  for (const server of servers) server.transport.destroy();
  listener.close();
  await Promise.all([...clients.map((c) => c.closed), ...servers.map((s) => s.closed)]);

  const rows = (["corked", "uncorked"] as const).map((mode) => {
    const list = results[mode];
    const wallMs = median(list.map((r) => r.wallMs));
    const cpuUs = median(list.map((r) => r.cpuUs));
    return {
      mode,
      rate: frameCount / (wallMs / 1e3),
      cpuPerFrame: cpuUs / frameCount,
      writesPerTick: list[0].writes / (CLIENTS * (FRAMES / BATCH)),
    };
  });
  const [a, b] = rows;
  console.log(`\n${runtime}: medians of ${RUNS} runs`);
  console.log(
    `${"mode".padEnd(12)}${"frames/s".padStart(14)}${"CPU µs/frame".padStart(15)}` +
      `${"writes/tick".padStart(13)}`,
  );
  for (const row of rows) {
    console.log(
      `${row.mode.padEnd(12)}${Math.round(row.rate).toLocaleString("en-US").padStart(14)}` +
        `${row.cpuPerFrame.toFixed(3).padStart(15)}${row.writesPerTick.toFixed(2).padStart(13)}`,
    );
  }
  console.log(
    `${"a/b".padEnd(12)}${(a.rate / b.rate).toFixed(2).padStart(13)}×` +
      `${(a.cpuPerFrame / b.cpuPerFrame).toFixed(2).padStart(14)}×`,
  );
}

await main();
