/**
 * Fairness under a ping flood. Every ping costs the server a pong (RFC 6455 §5.5.2); one
 * connection writes 100,000 Ping frames (4-byte payloads carrying a counter, 1 MB in all) in
 * one burst, while two other clients each send a message every 100 ms and a fresh client
 * starts a handshake every 500 ms. The server (bench/ping_flood_server.ts, an echo server)
 * runs as a child process on the runtime asked for; the clients are `node:net` sockets here.
 *
 * Measured over the window that starts with the flood's first byte:
 * - echo: the round trip of each message the other clients sent in the window (median, max,
 *   and how many took over 1 s or never came back);
 * - handshake: TCP connect to `101 Switching Protocols` of each fresh client started in the
 *   window (median, max, over 1 s or never);
 * - flooder: pongs received; whether their counters strictly increase (a burst may be
 *   answered with fewer pongs, RFC 6455 §5.5.3, never out of order); whether the last ping's
 *   pong came and when; the close code, if the server closed the connection.
 *
 * Each run is done with the server's control-frame limit off (the flood is processed) and at
 * its default (the flooder should be closed with 1008); a server without such a limit runs
 * the same in both.
 *
 *     bun bench/ping_flood.ts --runtime deno|bun [--runs 3] [--limits off,default]
 *         [--pings 100000] [--window 4000]
 *     deno run -A bench/ping_flood.ts --runtime bun ...
 *
 * Prints a line per run and the medians over runs. Latencies that never completed count as
 * the time they had waited when the run ended (so a max is then a lower bound).
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { randomBytes } from "node:crypto";
import net from "node:net";
import process from "node:process";
import {
  type Child,
  command,
  median,
  option,
  type Runtime,
  sleep,
  start,
  stopChild,
} from "./_proc.ts";

const runtime = option("runtime", "deno") as Runtime;
if (runtime !== "deno" && runtime !== "bun") {
  throw new RangeError(`--runtime must be deno or bun, not ${runtime}`);
}
const RUNS = Number(option("runs", "3"));
const LIMITS = option("limits", "off,default").split(",");
const PINGS = Number(option("pings", "100000"));
const WINDOW = Number(option("window", "4000"));
/** Each of the two other clients sends a message this often (ms). */
const ECHO_EVERY = 100;
/** A fresh client starts a handshake this often (ms). */
const HANDSHAKE_EVERY = 500;
/** The other clients run this long before the flood starts (ms). */
const WARMUP = 500;
/** After the window, what is still outstanding gets this long to complete (ms). */
const GRACE = 3000;
/** A latency over this is late (ms). */
const LATE = 1000;

/** A masked client frame (RFC 6455 §5.2, §5.3). */
function clientFrame(opcode: number, payload: Uint8Array): Uint8Array {
  if (payload.length > 125) throw new RangeError("short frames only");
  const mask = randomBytes(4);
  const frame = new Uint8Array(6 + payload.length);
  frame[0] = 0x80 | opcode;
  frame[1] = 0x80 | payload.length;
  frame.set(mask, 2);
  for (let i = 0; i < payload.length; i++) frame[6 + i] = payload[i] ^ mask[i & 3];
  return frame;
}

/** `count` masked pings whose payloads are the counters 0 … count − 1 (32-bit big-endian). */
function pingFlood(count: number): Uint8Array {
  const all = new Uint8Array(count * 10);
  const payload = new Uint8Array(4);
  const view = new DataView(payload.buffer);
  for (let i = 0; i < count; i++) {
    view.setUint32(0, i);
    all.set(clientFrame(0x9, payload), i * 10);
  }
  return all;
}

function upgradeRequest(): string {
  return "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
    `Sec-WebSocket-Key: ${randomBytes(16).toString("base64")}\r\n` +
    "Sec-WebSocket-Version: 13\r\n\r\n";
}

/**
 * Connects and sends an upgrade request. Resolves with the ms from connect to the end of the
 * response head, or NaN if the connection failed or the answer was not 101; `cancel()`
 * resolves an outstanding one with the time waited so far, negated.
 */
function handshake(port: number): { done: Promise<number>; cancel(): void } {
  const started = performance.now();
  const socket = net.connect({ host: "127.0.0.1", port });
  let head = Buffer.alloc(0);
  let settle!: (ms: number) => void;
  const done = new Promise<number>((resolve) => settle = resolve);
  const finish = (ms: number) => {
    socket.destroy();
    settle(ms);
  };
  socket.setNoDelay(true);
  socket.on("connect", () => socket.write(upgradeRequest()));
  socket.on("data", (chunk: Buffer) => {
    head = Buffer.concat([head, chunk]);
    if (head.indexOf("\r\n\r\n") === -1) return;
    finish(head.subarray(0, 12).toString("latin1") === "HTTP/1.1 101" ? elapsed() : NaN);
  });
  socket.on("error", () => finish(NaN));
  socket.on("close", () => finish(NaN));
  const elapsed = () => performance.now() - started;
  return { done, cancel: () => finish(-elapsed()) };
}

/** An open WebSocket client that hands every frame from the server to `onFrame`. */
class WsClient {
  readonly socket: net.Socket;
  onFrame: (opcode: number, payload: Buffer) => void = () => {};
  /** The close code of the server's Close frame, if one came. */
  closeCode: number | undefined;
  #buffer: Buffer = Buffer.alloc(0);

  private constructor(socket: net.Socket) {
    this.socket = socket;
  }

  static open(port: number): Promise<WsClient> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host: "127.0.0.1", port });
      socket.setNoDelay(true);
      const client = new WsClient(socket);
      let head = Buffer.alloc(0);
      const onData = (chunk: Buffer) => {
        head = Buffer.concat([head, chunk]);
        const end = head.indexOf("\r\n\r\n");
        if (end === -1) return;
        socket.off("data", onData);
        if (head.subarray(0, 12).toString("latin1") !== "HTTP/1.1 101") {
          socket.destroy();
          reject(new Error(`handshake: ${head.subarray(0, end).toString("latin1")}`));
          return;
        }
        socket.removeAllListeners("error");
        socket.on("error", () => {});
        socket.on("data", (more: Buffer) => client.#receive(more));
        client.#receive(head.subarray(end + 4));
        resolve(client);
      };
      socket.on("data", onData);
      socket.once("error", reject);
      socket.once("connect", () => socket.write(upgradeRequest()));
    });
  }

  send(opcode: number, payload: Uint8Array): void {
    this.socket.write(clientFrame(opcode, payload));
  }

  #receive(chunk: Buffer): void {
    if (chunk.length === 0) return;
    let b: Buffer = this.#buffer.length === 0 ? chunk : Buffer.concat([this.#buffer, chunk]);
    for (;;) {
      if (b.length < 2) break;
      let length = b[1] & 0x7f;
      let at = 2;
      if (length === 126) {
        if (b.length < 4) break;
        length = b.readUInt16BE(2);
        at = 4;
      } else if (length === 127) {
        if (b.length < 10) break;
        length = Number(b.readBigUInt64BE(2));
        at = 10;
      }
      if (b.length < at + length) break;
      const opcode = b[0] & 0x0f;
      const payload = b.subarray(at, at + length);
      if (opcode === 0x8) this.closeCode = length >= 2 ? payload.readUInt16BE(0) : 1005;
      this.onFrame(opcode, payload);
      b = b.subarray(at + length);
    }
    this.#buffer = b;
  }
}

interface Run {
  echoP50: number;
  echoMax: number;
  echoLate: number;
  echoes: number;
  handshakeP50: number;
  handshakeMax: number;
  handshakeLate: number;
  handshakes: number;
  pongs: number;
  inOrder: boolean;
  /** ms from the flood's start to the last ping's pong; NaN if it never came. */
  lastPong: number;
  closeCode: number | undefined;
}

async function startServer(limit: string): Promise<{ child: Child; port: number }> {
  const child = start(
    `server ${runtime}`,
    command(runtime, "bench/ping_flood_server.ts", [
      "--port",
      "0",
      "--control-limit",
      limit,
      "--stdin-lifeline",
    ]),
    undefined,
  );
  const line = await child.line("ready", 30_000);
  return { child, port: Number(line.split(" ")[1]) };
}

async function run(limit: string, flood: Uint8Array): Promise<Run> {
  const { child, port } = await startServer(limit);
  try {
    return await measure(port, flood);
  } finally {
    await stopChild(child);
  }
}

async function measure(port: number, flood: Uint8Array): Promise<Run> {
  const flooder = await WsClient.open(port);
  const others = [await WsClient.open(port), await WsClient.open(port)];
  let floodStart = Infinity;
  let windowEnd = Infinity;
  const inWindow = (at: number) => at >= floodStart && at < windowEnd;

  // The flooder: pongs in order?
  let pongs = 0;
  let last = -1;
  let inOrder = true;
  let lastPong = NaN;
  flooder.onFrame = (opcode, payload) => {
    if (opcode !== 0xa || payload.length !== 4) return;
    const counter = payload.readUInt32BE(0);
    pongs++;
    if (counter <= last) inOrder = false;
    last = counter;
    if (counter === PINGS - 1) lastPong = performance.now() - floodStart;
  };

  // The other clients: a numbered message every ECHO_EVERY ms each; round trips of those sent
  // in the window.
  const sent = new Map<string, number>();
  const echoes: number[] = [];
  let seq = 0;
  for (const client of others) {
    client.onFrame = (opcode, payload) => {
      if (opcode !== 0x1) return;
      const id = payload.toString("latin1");
      const at = sent.get(id);
      if (at === undefined) return;
      sent.delete(id);
      if (inWindow(at)) echoes.push(performance.now() - at);
    };
  }
  const echoTimer = setInterval(() => {
    for (const client of others) {
      const id = `m${seq++}`;
      sent.set(id, performance.now());
      client.send(0x1, Buffer.from(id, "latin1"));
    }
  }, ECHO_EVERY);

  // Fresh clients: a handshake every HANDSHAKE_EVERY ms; those started in the window count.
  const handshakes: Array<{ done: Promise<number>; cancel(): void }> = [];
  const outside: Array<{ cancel(): void }> = [];
  const handshakeTimer = setInterval(() => {
    const started = performance.now();
    const attempt = handshake(port);
    (inWindow(started) ? handshakes : outside).push(attempt);
  }, HANDSHAKE_EVERY);

  await sleep(WARMUP);
  floodStart = performance.now();
  windowEnd = floodStart + WINDOW;
  flooder.socket.write(flood);
  await sleep(WINDOW);
  clearInterval(echoTimer);
  clearInterval(handshakeTimer);

  // Grace: let what is outstanding complete, then count it at the time it had waited.
  const graceEnd = performance.now() + GRACE;
  while (performance.now() < graceEnd) {
    const echoesOut = [...sent.values()].some(inWindow);
    const pongOut = Number.isNaN(lastPong) && flooder.closeCode === undefined &&
      !flooder.socket.destroyed;
    if (!echoesOut && !pongOut && handshakes.length === 0) break;
    if (!echoesOut && !pongOut) {
      const pending = await Promise.race([
        Promise.all(handshakes.map((h) => h.done)).then(() => false),
        sleep(50).then(() => true),
      ]);
      if (!pending) break;
    } else {
      await sleep(50);
    }
  }
  const now = performance.now();
  for (const at of sent.values()) if (inWindow(at)) echoes.push(now - at);
  for (const h of [...handshakes, ...outside]) h.cancel();
  const handshakeTimes = (await Promise.all(handshakes.map((h) => h.done)))
    .filter((ms) => !Number.isNaN(ms)).map(Math.abs);
  const failed = handshakes.length - handshakeTimes.length;

  flooder.socket.destroy();
  for (const client of others) client.socket.destroy();

  return {
    echoP50: echoes.length === 0 ? NaN : median(echoes),
    echoMax: Math.max(...echoes),
    echoLate: echoes.filter((ms) => ms > LATE).length,
    echoes: echoes.length,
    handshakeP50: handshakeTimes.length === 0 ? NaN : median(handshakeTimes),
    handshakeMax: Math.max(...handshakeTimes),
    handshakeLate: handshakeTimes.filter((ms) => ms > LATE).length + failed,
    handshakes: handshakes.length,
    pongs,
    inOrder,
    lastPong,
    closeCode: flooder.closeCode,
  };
}

const ms = (value: number) => Number.isNaN(value) ? "-" : `${value.toFixed(value < 10 ? 1 : 0)} ms`;

function describe(r: Run): string {
  return `echo p50 ${ms(r.echoP50)} max ${ms(r.echoMax)} (${r.echoLate}/${r.echoes} late) | ` +
    `handshake p50 ${ms(r.handshakeP50)} max ${ms(r.handshakeMax)} ` +
    `(${r.handshakeLate}/${r.handshakes} late) | pongs ${r.pongs} ` +
    `${r.inOrder ? "in order" : "OUT OF ORDER"}, last ${ms(r.lastPong)}, close ${
      r.closeCode ?? "-"
    }`;
}

const flood = pingFlood(PINGS);
console.log(
  `ping flood on ${runtime}: ${PINGS} pings (${flood.length} bytes) in one write; ` +
    `2 clients echo every ${ECHO_EVERY} ms, a handshake every ${HANDSHAKE_EVERY} ms; ` +
    `window ${WINDOW} ms; ${RUNS} run(s) per limit (the machine may be shared)`,
);
for (const limit of LIMITS) {
  const results: Run[] = [];
  for (let i = 0; i < RUNS; i++) {
    const result = await run(limit, flood);
    results.push(result);
    console.log(`  control limit ${limit}, run ${i + 1}: ${describe(result)}`);
  }
  const med = (pick: (r: Run) => number) => median(results.map(pick));
  console.log(
    `control limit ${limit}, medians: echo p50 ${ms(med((r) => r.echoP50))} max ${
      ms(med((r) => r.echoMax))
    } | handshake p50 ${ms(med((r) => r.handshakeP50))} max ${
      ms(med((r) => r.handshakeMax))
    } | late handshakes ${med((r) => r.handshakeLate)} | pongs ${med((r) => r.pongs)}, in order ${
      results.filter((r) => r.inOrder).length
    }/${results.length}, last pong ${
      results.filter((r) => !Number.isNaN(r.lastPong)).length
    }/${results.length} | closes ${results.map((r) => r.closeCode ?? "-").join(",")}`,
  );
}
process.exit(0);
