/**
 * The server's memory per idle WebSocket connection, measured from inside the server: what
 * bench/e2e.ts's S4 measures from outside (RSS only), taken apart. A sluice server set up as
 * bench/echo_server.ts (every connection subscribes to one topic; no heartbeat, no idle
 * timeout) runs in this process; a child process of the same runtime opens `--conns` raw TCP
 * connections to it, 200 handshakes at a time, and holds them open without a word. The
 * server's RSS, JS heap and external (ArrayBuffer) memory are then compared with what they
 * were before: 2 s after the last 101 (as S4 does) and after a forced full collection.
 *
 *     deno run -A --v8-flags=--expose-gc bench/idle_memory.ts [--conns 10000]
 *     bun bench/idle_memory.ts [--conns 10000]
 *
 * On Deno it also shows how much of the growth is V8's spaces (the young generation grows
 * with what survives its collections during the handshakes, and does not shrink while the
 * connections stay idle); on Bun, the heap's objects per connection by class (bun:jsc's
 * heapStats), the first place to look for what an idle connection keeps. Run it a few times:
 * one run is one process, and the figures move with the collector's timing.
 *
 * @module
 */
import { spawn } from "node:child_process";
import { connect as tcpConnect, type Socket } from "node:net";
import process from "node:process";
import v8 from "node:v8";
import { executable, option } from "./_proc.ts";
import { serve } from "../mod.ts";

/** Handshakes in flight at once, as bench/load/sluice_load.c opens them. */
const BATCH = 200;
const HANDSHAKE_KEY = "dGhlIHNhbXBsZSBub25jZQ==";

/** A heap's objects by class, on Bun. */
type Counts = Record<string, number>;

interface Figures {
  rss: number;
  heapUsed: number;
  external: number;
}

const bun = (globalThis as { Bun?: { gc(force: boolean): void } }).Bun;
const gc = (globalThis as { gc?: () => void }).gc;

if (process.argv.includes("--client")) {
  await client(Number(option("port", "0")), Number(option("conns", "10000")));
} else {
  await measure(Number(option("conns", "10000")));
}

/** The server side: serve, have the child connect, compare. */
async function measure(conns: number): Promise<void> {
  if (bun === undefined && gc === undefined) {
    console.error("bench/idle_memory.ts: on Deno, run with --v8-flags=--expose-gc");
    process.exit(2);
  }
  const server = serve<{ publisher: boolean }>({
    hostname: "127.0.0.1",
    port: 0,
    maxPayloadLength: 64 * 1024 * 1024,
    heartbeat: false,
    idleTimeout: 0,
    upgrade: (request) => ({ data: { publisher: request.pathname === "/pub" } }),
    open(ws) {
      if (!ws.data.publisher) ws.subscribe("all");
    },
    message(ws, data) {
      if (ws.data.publisher) server.publish("all", data);
      else ws.send(data);
    },
  });
  await sleep(500);
  await collect();
  const before = figures();
  const spacesBefore = spaces();
  const countsBefore = await heapCounts();
  const script = new URL(import.meta.url).pathname;
  const runtime = bun === undefined ? "deno" : "bun";
  const args = ["--client", "--port", String(server.port), "--conns", String(conns)];
  const child = spawn(
    executable(runtime),
    runtime === "deno" ? ["run", "-A", script, ...args] : [script, ...args],
    { stdio: ["pipe", "pipe", "inherit"] },
  );
  const opened = await new Promise<number>((resolve, reject) => {
    let text = "";
    child.stdout!.on("data", (chunk: Uint8Array) => {
      text += new TextDecoder().decode(chunk);
      const match = /open (\d+)/.exec(text);
      if (match !== null) resolve(Number(match[1]));
    });
    child.on("exit", (code) => reject(new Error(`the client exited (${code})`)));
  });
  await sleep(2000);
  const settled = figures();
  const spacesSettled = spaces();
  await collect();
  const collected = figures();
  const counts = await heapCounts();
  const per = (after: number, was: number) => ((after - was) / opened / 1024).toFixed(2);
  console.log(`${runtime}: ${opened} idle connections; KiB per connection`);
  for (const [label, after] of [["after 2 s", settled], ["after a full GC", collected]] as const) {
    console.log(
      `  ${label.padEnd(16)} RSS ${per(after.rss, before.rss)}, JS heap ${
        per(after.heapUsed, before.heapUsed)
      }, external ${per(after.external, before.external)}`,
    );
  }
  if (spacesSettled.size !== 0) {
    const growth = [...spacesSettled]
      .map(([name, size]) => [name, per(size, spacesBefore.get(name) ?? 0)] as const)
      .filter(([, each]) => each !== "0.00" && each !== "-0.00")
      .map(([name, each]) => `${name} ${each}`);
    console.log(`  V8 spaces after 2 s: ${growth.join(", ")}`);
  }
  if (counts !== undefined && countsBefore !== undefined) {
    const rows = Object.entries(counts)
      .map(([name, count]) => [name, (count - (countsBefore[name] ?? 0)) / opened] as const)
      .filter(([, each]) => each >= 0.5)
      .sort((a, b) => b[1] - a[1]);
    console.log(
      `  heap objects per connection: ${
        rows.map(([name, each]) => `${name} ${each.toFixed(2)}`).join(", ")
      }`,
    );
  }
  child.stdin!.end();
  await new Promise((resolve) => child.on("exit", resolve));
  await server.shutdown({ timeout: 500 });
  process.exit(0);
}

/** The client side: open `conns` connections and hold them until stdin ends. */
async function client(port: number, conns: number): Promise<void> {
  const sockets: Socket[] = [];
  let opened = 0;
  const request = `GET / HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\n` +
    `Connection: Upgrade\r\nSec-WebSocket-Key: ${HANDSHAKE_KEY}\r\n` +
    "Sec-WebSocket-Version: 13\r\n\r\n";
  const one = () =>
    new Promise<void>((resolve) => {
      const socket = tcpConnect({ host: "127.0.0.1", port }, () => socket.write(request));
      let head = "";
      const onData = (chunk: Uint8Array) => {
        head += new TextDecoder().decode(chunk);
        if (!head.includes("\r\n\r\n")) return;
        socket.off("data", onData);
        if (head.startsWith("HTTP/1.1 101")) {
          opened++;
          sockets.push(socket);
        } else {
          socket.destroy();
        }
        resolve();
      };
      socket.on("data", onData);
      socket.on("error", () => resolve());
    });
  for (let i = 0; i < conns; i += BATCH) {
    await Promise.all(Array.from({ length: Math.min(BATCH, conns - i) }, one));
  }
  console.log(`open ${opened}`);
  process.stdin.resume();
  await new Promise((resolve) => process.stdin.on("end", resolve));
  for (const socket of sockets) socket.destroy();
  process.exit(0);
}

function figures(): Figures {
  const { rss, heapUsed, external } = process.memoryUsage();
  return { rss, heapUsed, external };
}

/** V8's spaces and their sizes (none on Bun). */
function spaces(): Map<string, number> {
  if (bun !== undefined) return new Map();
  return new Map(
    v8.getHeapSpaceStatistics().map((space) => [space.space_name, space.space_size] as const),
  );
}

async function heapCounts(): Promise<Counts | undefined> {
  if (bun === undefined) return undefined;
  const jsc = await import("bun:jsc" as string) as { heapStats(): { objectTypeCounts: Counts } };
  return jsc.heapStats().objectTypeCounts;
}

/** Full collections, a few times, with turns of the event loop between them. */
async function collect(): Promise<void> {
  for (let i = 0; i < 3; i++) {
    if (bun !== undefined) bun.gc(true);
    else gc!();
    await sleep(50);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
