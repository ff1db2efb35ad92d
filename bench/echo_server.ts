/**
 * The sluice server of the end-to-end benchmarks (bench/fanout.ts, and the harness to come):
 * every connection echoes each message back with the same opcode, except the publisher.
 *
 *     deno run -A bench/echo_server.ts --port 9020 [--hostname 127.0.0.1] [--deflate]
 *         [--stdin-lifeline]
 *     bun bench/echo_server.ts --port 9020 ...
 *
 * Defaults: port 0 (any free port), hostname 127.0.0.1, permessage-deflate off.
 *
 * A connection whose request path is `/pub` is the publisher: each message it sends is
 * published, with the opcode it came with, to every other connection through the topic `all`
 * (`server.publish`), which frames it once for all of them. Every other connection subscribes
 * to `all` when it opens and echoes what it gets. The anchors in bench/anchors/ do the same on
 * Bun.serve and on Deno.upgradeWebSocket, with the same command line.
 *
 * Prints `ready PORT PID` once listening. Stops (shutdown, then exit 0) on SIGTERM or SIGINT,
 * and with `--stdin-lifeline` also when stdin ends, so it never outlives a parent that spawned
 * it with a pipe.
 *
 * @module
 */
import process from "node:process";
import { option, stopOnSignal } from "./_server_cli.ts";
import { serve } from "../mod.ts";

/** The topic every connection but the publisher subscribes to. */
const TOPIC = "all";

interface Peer {
  publisher: boolean;
}

const server = serve<Peer>({
  hostname: option("hostname", "127.0.0.1"),
  port: Number(option("port", "0")),
  perMessageDeflate: process.argv.includes("--deflate"),
  maxPayloadLength: 64 * 1024 * 1024,
  // A benchmark must not be disturbed: no pings to answer (a loaded client answers late and
  // would be dropped), no connection closed for sending nothing (subscribers only read).
  heartbeat: false,
  idleTimeout: 0,
  upgrade(request) {
    return { data: { publisher: request.pathname === "/pub" } };
  },
  open(ws) {
    if (!ws.data.publisher) ws.subscribe(TOPIC);
  },
  message(ws, data) {
    if (ws.data.publisher) server.publish(TOPIC, data);
    else ws.send(data);
  },
});

// Clients that stopped reading never answer our Close frame: do not wait long.
stopOnSignal(() => server.shutdown({ timeout: 500 }));

console.log(`ready ${server.port} ${process.pid}`);
