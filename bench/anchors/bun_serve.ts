/**
 * Anchor for the end-to-end benchmarks: bench/echo_server.ts's behaviour on Bun.serve's native
 * WebSocket server (uWebSockets), the figure sluice on Bun is compared with.
 *
 *     bun bench/anchors/bun_serve.ts --port 9021 [--hostname 127.0.0.1] [--deflate]
 *         [--stdin-lifeline]
 *
 * Every connection echoes each message back with the same opcode; a connection on `/pub` is
 * the publisher, whose messages go to every other connection with `server.publish("all", …)`
 * (every other connection calls `ws.subscribe("all")` when it opens). Limits as in
 * echo_server.ts: 64 MiB messages, no pings, no idle timeout, the default backpressure limit.
 *
 * Prints `ready PORT PID` once listening; exits on SIGTERM, SIGINT, and with
 * `--stdin-lifeline` when stdin ends. Bun only.
 *
 * @module
 */
import process from "node:process";
import { delay, option, stopOnSignal } from "../_server_cli.ts";

// The part of Bun's API used here, typed locally: `deno check` type-checks bench/ without
// bun-types.
interface BunSocket {
  data: { publisher: boolean };
  send(message: string | Uint8Array, compress?: boolean): number;
  subscribe(topic: string): void;
}

interface BunServer {
  port: number;
  upgrade(request: Request, options: { data: { publisher: boolean } }): boolean;
  publish(topic: string, message: string | Uint8Array): number;
  stop(closeActiveConnections?: boolean): Promise<void> | void;
}

interface BunServeOptions {
  hostname: string;
  port: number;
  fetch(request: Request, server: BunServer): Response | undefined;
  websocket: {
    maxPayloadLength: number;
    idleTimeout: number;
    sendPings: boolean;
    perMessageDeflate: boolean;
    open(ws: BunSocket): void;
    message(ws: BunSocket, message: string | Uint8Array): void;
  };
}

const bun = (globalThis as { Bun?: { serve(options: BunServeOptions): BunServer } }).Bun;
if (bun === undefined) {
  console.error("bench/anchors/bun_serve.ts runs on Bun only");
  process.exit(2);
}

const TOPIC = "all";
// Bun compresses a message only when `send` is asked to (its `compress` defaults to false):
// with --deflate every echo is offered for compression, as sluice and ws do with theirs.
const deflate = process.argv.includes("--deflate");

const server = bun.serve({
  hostname: option("hostname", "127.0.0.1"),
  port: Number(option("port", "0")),
  fetch(request, server) {
    const publisher = new URL(request.url).pathname === "/pub";
    if (server.upgrade(request, { data: { publisher } })) return undefined;
    return new Response("Upgrade Required", { status: 426, headers: { Upgrade: "websocket" } });
  },
  websocket: {
    maxPayloadLength: 64 * 1024 * 1024,
    // Seconds; 0 turns it off. With sendPings off nothing is sent unasked.
    idleTimeout: 0,
    sendPings: false,
    perMessageDeflate: deflate,
    open(ws) {
      if (!ws.data.publisher) ws.subscribe(TOPIC);
    },
    message(ws, message) {
      if (ws.data.publisher) server.publish(TOPIC, message);
      else ws.send(message, deflate);
    },
  },
});

stopOnSignal(() => Promise.race([server.stop(true), delay(500)]));

console.log(`ready ${server.port} ${process.pid}`);
