/**
 * Server memory per connection with permessage-deflate off, in shared mode and in dedicated
 * mode, on each runtime. The server (bench/deflate_memory_server.ts, an echo server that
 * compresses every echo) runs as a child process, so its resident memory (VmRSS in
 * /proc/PID/status) is its own; the clients are raw `node:net` sockets in this process.
 *
 * For each runtime, mode and run: start the server, collect garbage, read VmRSS; open N
 * connections that offer `permessage-deflate; client_max_window_bits` and check each 101 (and
 * that it accepts the extension when the server has it on); collect, read VmRSS: the idle cost.
 * Then every connection sends one compressed ~1 KiB JSON message (a sync-flushed payload, RSV1
 * set; uncompressed when deflate is off) and waits for the compressed echo, which it inflates
 * and checks; collect, read VmRSS: the active cost. Then every connection does it once more
 * (in dedicated mode the echo may now refer to the first one): if the figure holds, the memory
 * is held per connection; if it was transient, it would be reused rather than grow. All are
 * (VmRSS − VmRSS before any connection) / N, in KiB. In dedicated mode the first message makes the connection's zlib
 * streams (permessage_deflate.ts makes them on first use), so idle connections hold none.
 *
 *     deno run -A bench/deflate_memory.ts [--runs 3] [--connections 2000]
 *         [--runtimes deno,bun] [--modes off,shared,dedicated]
 *     bun bench/deflate_memory.ts
 *
 * Prints every run and a table of medians; exits 0 when every check passed. Linux only
 * (/proc). The helpers are exported for bench/deflate_bomb.ts.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import net from "node:net";
import process from "node:process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { constants, deflateRawSync, inflateRawSync } from "node:zlib";
import { jsonMessage } from "./_json_fixtures.ts";
import { executable, median, option, ROOT, sleep } from "./_proc.ts";

const DEFLATE_TAIL = new Uint8Array([0x00, 0x00, 0xff, 0xff]);

/** A runtime that can run the server. */
export type Runtime = "deno" | "bun";
/** The server's permessage-deflate setting. */
export type DeflateMode = "off" | "shared" | "dedicated";

const SERVER = fileURLToPath(new URL("./deflate_memory_server.ts", import.meta.url));

const children = new Set<ChildProcess>();
// Whatever happens to this script, its servers do not outlive it.
process.on("exit", () => {
  for (const child of children) child.kill("SIGKILL");
});

/** A server child process and its line-based control channel. */
export interface ServerChild {
  /** The runtime it runs on. */
  runtime: Runtime;
  /** Its process id. */
  pid: number;
  /** The port it listens on, on 127.0.0.1. */
  port: number;
  /**
   * Sends a command line and waits for the answer that starts with the same word.
   *
   * @param line `gc` or `count`.
   * @returns The answer line.
   */
  command(line: string): Promise<string>;
  /** Ends stdin (the server shuts down and exits); kills it if it has not exited in 3 s. */
  stop(): Promise<void>;
}

/**
 * Starts bench/deflate_memory_server.ts on `runtime` and waits until it listens.
 *
 * @param runtime Deno or Bun.
 * @param deflate The server's permessage-deflate mode.
 * @returns The running server.
 */
export async function startServer(runtime: Runtime, deflate: DeflateMode): Promise<ServerChild> {
  const args = runtime === "deno"
    ? ["run", "-A", "--v8-flags=--expose-gc", SERVER, "--deflate", deflate]
    : [SERVER, "--deflate", deflate];
  const child = spawn(executable(runtime), args, {
    cwd: ROOT,
    stdio: ["pipe", "pipe", "inherit"],
    env: { ...process.env, NO_COLOR: "1" },
  });
  children.add(child);
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  exited.then(() => children.delete(child));
  const waiters: Array<{ word: string; resolve: (line: string) => void }> = [];
  const lines = createInterface({ input: child.stdout! });
  lines.on("line", (line) => {
    const word = line.split(" ")[0];
    const at = waiters.findIndex((w) => w.word === word);
    if (at !== -1) waiters.splice(at, 1)[0].resolve(line);
  });
  const answer = (word: string, ms = 30_000) =>
    new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${runtime} server: no "${word}"`)), ms);
      waiters.push({
        word,
        resolve: (line) => {
          clearTimeout(timer);
          resolve(line);
        },
      });
    });
  const [, port, pid] = (await Promise.race([
    answer("ready"),
    exited.then(() => {
      throw new Error(`${runtime} server exited before it was ready`);
    }),
  ])).split(" ");
  return {
    runtime,
    pid: Number(pid),
    port: Number(port),
    command(line) {
      const reply = answer(line.split(" ")[0]);
      child.stdin!.write(`${line}\n`);
      return reply;
    },
    async stop() {
      child.stdin!.end();
      const timer = setTimeout(() => child.kill("SIGKILL"), 3000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** Memory of a process, in KiB, from /proc/PID/status. */
export interface Memory {
  /** Resident set size now (VmRSS). */
  rss: number;
  /** The peak resident set size (VmHWM). */
  hwm: number;
}

/**
 * Reads VmRSS and VmHWM of `pid`.
 *
 * @param pid A process id.
 * @returns Both, in KiB.
 */
export function memory(pid: number): Memory {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const field = (name: string) =>
    Number(new RegExp(`^${name}:\\s+(\\d+) kB`, "m").exec(status)![1]);
  return { rss: field("VmRSS"), hwm: field("VmHWM") };
}

/**
 * Resets VmHWM to the current VmRSS (Linux ≥ 4.0: `5` into /proc/PID/clear_refs).
 *
 * @param pid A process id of ours.
 * @returns Whether the kernel took it.
 */
export function resetPeak(pid: number): boolean {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, "5");
    return true;
  } catch {
    return false;
  }
}

/**
 * Collects garbage in the server, lets it settle, and reads its memory.
 *
 * @param server The server.
 * @returns Its memory.
 */
export async function settledMemory(server: ServerChild): Promise<Memory> {
  await server.command("gc");
  await sleep(300);
  await server.command("gc");
  return memory(server.pid);
}

/** A frame from the server. */
export interface Frame {
  /** The FIN bit. */
  fin: boolean;
  /** The RSV1 bit: a compressed message (RFC 7692 §6). */
  rsv1: boolean;
  /** The opcode. */
  opcode: number;
  /** The payload (a server's frames are not masked). */
  payload: Uint8Array;
}

/**
 * A frame as a client sends it: masked (RFC 6455 §5.3), FIN set.
 *
 * @param opcode The opcode.
 * @param payload The payload.
 * @param rsv1 Whether RSV1 is set (a compressed message, RFC 7692 §6).
 * @returns The frame's bytes.
 */
export function clientFrame(opcode: number, payload: Uint8Array, rsv1 = false): Uint8Array {
  const length = payload.length;
  const extended = length < 126 ? 0 : length < 65536 ? 2 : 8;
  const head = 2 + extended + 4;
  const frame = new Uint8Array(head + length);
  const view = new DataView(frame.buffer);
  frame[0] = 0x80 | (rsv1 ? 0x40 : 0) | opcode;
  if (extended === 0) frame[1] = 0x80 | length;
  else if (extended === 2) {
    frame[1] = 0x80 | 126;
    view.setUint16(2, length);
  } else {
    frame[1] = 0x80 | 127;
    view.setBigUint64(2, BigInt(length));
  }
  const mask = randomBytes(4);
  frame.set(mask, head - 4);
  for (let i = 0; i < length; i++) frame[head + i] = payload[i] ^ mask[i & 3];
  return frame;
}

/** A raw WebSocket client over node:net, on 127.0.0.1. */
export class RawClient {
  /** The TCP socket. */
  readonly socket: net.Socket;
  /** The response's Sec-WebSocket-Extensions value ("" if none). */
  extensions = "";
  #buffer: Buffer = Buffer.alloc(0);
  #frames: Frame[] = [];
  #waiting: ((frame: Frame | Error) => void) | undefined;
  #ended: Error | undefined;

  private constructor(socket: net.Socket) {
    this.socket = socket;
  }

  /**
   * Connects and completes the opening handshake; throws unless the answer is 101.
   *
   * @param port The server's port.
   * @param extensions The Sec-WebSocket-Extensions to offer.
   * @returns The open client.
   */
  static connect(port: number, extensions: string): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host: "127.0.0.1", port });
      const client = new RawClient(socket);
      let head = Buffer.alloc(0);
      const onData = (chunk: Buffer) => {
        head = Buffer.concat([head, chunk]);
        const end = head.indexOf("\r\n\r\n");
        if (end === -1) return;
        socket.off("data", onData);
        const lines = head.subarray(0, end).toString("latin1").split("\r\n");
        if (!lines[0].startsWith("HTTP/1.1 101")) {
          socket.destroy();
          reject(new Error(`handshake: ${lines[0]}`));
          return;
        }
        for (const line of lines) {
          const colon = line.indexOf(":");
          if (line.slice(0, colon).toLowerCase() === "sec-websocket-extensions") {
            client.extensions = line.slice(colon + 1).trim();
          }
        }
        client.#listen();
        client.#receive(head.subarray(end + 4));
        resolve(client);
      };
      socket.on("data", onData);
      socket.once("error", reject);
      socket.once("connect", () => {
        socket.write(
          "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
            `Sec-WebSocket-Key: ${randomBytes(16).toString("base64")}\r\n` +
            "Sec-WebSocket-Version: 13\r\n" +
            `Sec-WebSocket-Extensions: ${extensions}\r\n\r\n`,
        );
      });
    });
  }

  #listen(): void {
    this.socket.removeAllListeners("error");
    this.socket.on("data", (chunk: Buffer) => this.#receive(chunk));
    const end = (error?: Error) => {
      this.#ended ??= error ?? new Error("connection closed");
      this.#waiting?.(this.#ended);
      this.#waiting = undefined;
    };
    this.socket.on("error", end);
    this.socket.on("close", () => end());
  }

  #receive(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.#buffer = this.#buffer.length === 0 ? chunk : Buffer.concat([this.#buffer, chunk]);
    for (;;) {
      const b = this.#buffer;
      if (b.length < 2) return;
      let length = b[1] & 0x7f;
      let head = 2;
      if (length === 126) {
        if (b.length < 4) return;
        length = b.readUInt16BE(2);
        head = 4;
      } else if (length === 127) {
        if (b.length < 10) return;
        length = Number(b.readBigUInt64BE(2));
        head = 10;
      }
      if (b.length < head + length) return;
      const frame = {
        fin: (b[0] & 0x80) !== 0,
        rsv1: (b[0] & 0x40) !== 0,
        opcode: b[0] & 0x0f,
        payload: new Uint8Array(b.subarray(head, head + length)),
      };
      this.#buffer = b.subarray(head + length);
      if (this.#waiting !== undefined) {
        const waiting = this.#waiting;
        this.#waiting = undefined;
        waiting(frame);
      } else {
        this.#frames.push(frame);
      }
    }
  }

  /**
   * The next frame from the server.
   *
   * @param ms How long to wait.
   * @returns The frame; rejects if the connection ends or nothing comes in time.
   */
  nextFrame(ms = 30_000): Promise<Frame> {
    const queued = this.#frames.shift();
    if (queued !== undefined) return Promise.resolve(queued);
    if (this.#ended !== undefined) return Promise.reject(this.#ended);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiting = undefined;
        reject(new Error(`no frame in ${ms} ms`));
      }, ms);
      this.#waiting = (frame) => {
        clearTimeout(timer);
        if (frame instanceof Error) reject(frame);
        else resolve(frame);
      };
    });
  }

  /**
   * Writes bytes.
   *
   * @param bytes What to write.
   */
  write(bytes: Uint8Array): void {
    this.socket.write(bytes);
  }

  /** Drops the connection. */
  destroy(): void {
    this.socket.destroy();
  }
}

/** What every client offers. */
export const OFFER = "permessage-deflate; client_max_window_bits";

/**
 * A message compressed as a client without context takeover sends it: sync-flushed, the
 * 00 00 FF FF tail removed (RFC 7692 §7.2.1).
 *
 * @param data The message.
 * @returns The payload.
 */
export function compressMessage(data: Uint8Array): Uint8Array {
  const out = deflateRawSync(data, { finishFlush: constants.Z_SYNC_FLUSH });
  return new Uint8Array(out.subarray(0, out.length - 4));
}

/**
 * Inflates a server's message. With context takeover the server's second message may refer to
 * its first, so the first one's payload goes in first and its output is skipped.
 */
function inflateMessage(payload: Uint8Array, previous?: Uint8Array, skip = 0): Uint8Array {
  const pieces = previous === undefined ? [payload] : [previous, payload];
  const input = Buffer.concat(pieces.flatMap((piece) => [piece, DEFLATE_TAIL]));
  return inflateRawSync(input, { finishFlush: constants.Z_SYNC_FLUSH }).subarray(skip);
}

function equal(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.length).equals(b);
}

/** Runs `task` on every item, at most `width` at a time. */
async function inBatches<T>(
  items: T[],
  width: number,
  task: (item: T, index: number) => Promise<void>,
): Promise<void> {
  for (let start = 0; start < items.length; start += width) {
    await Promise.all(items.slice(start, start + width).map((item, i) => task(item, start + i)));
  }
}

/** One run's result, in KiB per connection. */
interface Result {
  idle: number;
  active: number;
  /** After a second message on every connection: what stays per connection, not transient. */
  second: number;
}

const MESSAGES = Array.from({ length: 16 }, (_, i) => jsonMessage("api", i + 1));
const PAYLOADS = MESSAGES.map(compressMessage);

async function measure(runtime: Runtime, mode: DeflateMode, n: number): Promise<Result> {
  const server = await startServer(runtime, mode);
  const clients: RawClient[] = [];
  try {
    const before = await settledMemory(server);
    const slots = Array.from({ length: n }, (_, i) => i);
    await inBatches(slots, 100, async (_, i) => {
      const client = await RawClient.connect(server.port, OFFER);
      clients[i] = client;
      const agreed = client.extensions.startsWith("permessage-deflate");
      if (agreed !== (mode !== "off")) {
        throw new Error(`${runtime} ${mode}: extensions "${client.extensions}"`);
      }
    });
    const count = await server.command("count");
    if (count !== `count ${n}`) throw new Error(`${runtime} ${mode}: server says ${count}`);
    const idle = await settledMemory(server);

    // The i-th connection sends message i, then message i + 1.
    const firstEchoes: Uint8Array[] = [];
    const exchange = async (client: RawClient, i: number, round: number) => {
      const message = MESSAGES[(i + round) % MESSAGES.length];
      const context = round === 1 && mode === "dedicated";
      const compressed = mode !== "off";
      client.write(
        clientFrame(
          0x1,
          compressed ? PAYLOADS[(i + round) % PAYLOADS.length] : message,
          compressed,
        ),
      );
      const frame = await client.nextFrame();
      if (frame.opcode !== 0x1 || !frame.fin || frame.rsv1 !== compressed) {
        throw new Error(`${runtime} ${mode}: echo opcode ${frame.opcode} rsv1 ${frame.rsv1}`);
      }
      if (round === 0) firstEchoes[i] = frame.payload;
      const echo = !compressed
        ? frame.payload
        : context
        ? inflateMessage(frame.payload, firstEchoes[i], MESSAGES[i % MESSAGES.length].length)
        : inflateMessage(frame.payload);
      if (!equal(echo, message)) throw new Error(`${runtime} ${mode}: echo differs`);
    };
    await inBatches(clients, 100, (client, i) => exchange(client, i, 0));
    const active = await settledMemory(server);
    await inBatches(clients, 100, (client, i) => exchange(client, i, 1));
    const second = await settledMemory(server);
    return {
      idle: (idle.rss - before.rss) / n,
      active: (active.rss - before.rss) / n,
      second: (second.rss - before.rss) / n,
    };
  } finally {
    for (const client of clients) client?.destroy();
    await server.stop();
  }
}

async function main(): Promise<void> {
  const runs = Number(option("runs", "3"));
  const n = Number(option("connections", "2000"));
  const runtimes = option("runtimes", "deno,bun").split(",") as Runtime[];
  const modes = option("modes", "off,shared,dedicated").split(",") as DeflateMode[];
  const client = "Bun" in globalThis ? "bun" : "deno";
  console.log(`${n} connections per run, ${runs} run(s); clients in ${client}, KiB per connection`);
  const rows: string[] = [];
  for (const runtime of runtimes) {
    for (const mode of modes) {
      const results: Result[] = [];
      for (let run = 0; run < runs; run++) {
        const result = await measure(runtime, mode, n);
        results.push(result);
        console.log(
          `  ${runtime} ${mode} run ${run + 1}: idle ${result.idle.toFixed(1)}, ` +
            `active ${result.active.toFixed(1)}, after a 2nd message ${result.second.toFixed(1)}`,
        );
      }
      const all = (key: keyof Result) => results.map((r) => r[key].toFixed(1)).join(" / ");
      rows.push(
        `${runtime.padEnd(8)}${mode.padEnd(10)}` +
          `${median(results.map((r) => r.idle)).toFixed(1).padStart(10)}` +
          `${median(results.map((r) => r.active)).toFixed(1).padStart(12)}` +
          `${median(results.map((r) => r.second)).toFixed(1).padStart(12)}` +
          `    ${all("idle")}  |  ${all("active")}  |  ${all("second")}`,
      );
    }
  }
  console.log(`\nserver memory (VmRSS growth / ${n} connections), KiB per connection, medians`);
  console.log(
    `${"runtime".padEnd(8)}${"mode".padEnd(10)}${"idle".padStart(10)}${"active".padStart(12)}` +
      `${"2nd msg".padStart(12)}    runs: idle  |  active  |  2nd msg`,
  );
  for (const row of rows) console.log(row);
}

if (import.meta.main) {
  await main();
  process.exit(0);
}
