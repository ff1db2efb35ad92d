/**
 * The plain-HTTP path alone, in process: keep-alive `GET /` requests fed to sluice's server
 * through an in-memory transport (no sockets, no kernel), answered by
 * `() => new Response("hello")`. What it measures is the JavaScript a request costs the server:
 * parsing, the `Request`, the handler, reading the `Response`, writing the head. The socket
 * costs on top of this are bench/http_bench.ts's.
 *
 *     bun bench/http_path_bench.ts           (or: deno run -A bench/http_path_bench.ts)
 *         [--requests 200000] [--conns 64] [--rounds 5]
 *
 * Prints µs of CPU (user + system, `process.cpuUsage`) and of wall time per request for each
 * round, and the medians.
 *
 * @module
 */
import process from "node:process";
import { Server } from "../lib/server/server.ts";
import type { Listen, Transport, TransportHandler } from "../lib/core/transport.ts";
import { option } from "./_server_cli.ts";

const REQUEST = new TextEncoder().encode(
  "GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n",
);
const BODY_END = "hello".charCodeAt(4);

/** One in-memory connection: every response's last byte sends the next request. */
class Loop implements Transport {
  readonly remoteAddress = "127.0.0.1";
  readonly remotePort = 40000;
  readonly bufferedAmount = 0;
  readonly writesLater = false;
  handler!: TransportHandler;
  left = 0;
  done!: () => void;
  write(chunk: Uint8Array): void {
    // The responses are small and whole: a write that ends with the body's last byte is one.
    if (chunk[chunk.length - 1] !== BODY_END) return;
    if (--this.left === 0) this.done();
    else queueMicrotask(() => this.handler.onData(REQUEST.slice()));
  }
  writeUrgent(): void {}
  end(): void {
    queueMicrotask(() => this.handler.onClose());
  }
  destroy(): void {
    this.end();
  }
  pause(): void {}
  resume(): void {}
  watchBelow(): void {}
  setHandler(handler: TransportHandler): void {
    this.handler = handler;
  }
}

async function round(requests: number, conns: number): Promise<[number, number]> {
  let accept!: (transport: Transport) => TransportHandler;
  const listen: Listen = (_options, onAccept) => {
    accept = onAccept;
    return { hostname: "127.0.0.1", port: 8080, close() {} };
  };
  const server = new Server({
    port: 8080,
    fetch: () => new Response("hello"),
    heartbeat: false,
    idleTimeout: 0,
    // Every request on one connection each, as the load's keep-alive connections would.
    maxRequestsPerConnection: Number.MAX_SAFE_INTEGER,
  }, listen);
  const per = Math.ceil(requests / conns);
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await Promise.all(Array.from({ length: conns }, () =>
    new Promise<void>((resolve) => {
      const loop = new Loop();
      loop.left = per;
      loop.done = resolve;
      loop.handler = accept(loop);
      loop.handler.onData(REQUEST.slice());
    })));
  const wall = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  await server.shutdown({ timeout: 0 });
  const n = per * conns;
  return [(cpu.user + cpu.system) / n, (wall * 1000) / n];
}

const requests = Number(option("requests", "200000"));
const conns = Number(option("conns", "64"));
const rounds = Number(option("rounds", "5"));
await round(20_000, conns); // warm-up
const cpus: number[] = [];
const walls: number[] = [];
for (let i = 0; i < rounds; i++) {
  const [cpu, wall] = await round(requests, conns);
  cpus.push(cpu);
  walls.push(wall);
  console.log(`round ${i + 1}: ${cpu.toFixed(2)} µs CPU, ${wall.toFixed(2)} µs wall per request`);
}
const median = (xs: number[]) => xs.toSorted((a, b) => a - b)[xs.length >> 1];
console.log(
  `median: ${median(cpus).toFixed(2)} µs CPU, ${median(walls).toFixed(2)} µs wall per request`,
);
