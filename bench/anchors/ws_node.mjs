/**
 * Anchor for the end-to-end benchmarks: bench/echo_server.ts's behaviour on Node.js with the
 * npm package `ws`, the WebSocket server most JavaScript applications run.
 *
 *     node bench/anchors/ws_node.mjs --port 9023 [--hostname 127.0.0.1] [--deflate]
 *         [--stdin-lifeline]
 *
 * Every connection echoes each message back with the same opcode; a connection on `/pub` is
 * the publisher, whose messages are sent to every other open connection by a loop over
 * `wss.clients` (`ws` has no topics: this is what its applications write). The publisher is
 * skipped as the other servers skip it (it subscribes to nothing). Limits as in echo_server.ts:
 * 64 MiB messages; `ws` sends no pings and has no idle timeout unless asked. `--deflate` turns
 * permessage-deflate on with `ws`'s defaults (`perMessageDeflate: true`: context takeover,
 * messages under 1 KiB sent uncompressed, at most 10 zlib jobs at a time). Neither of `ws`'s
 * optional native add-ons (bufferutil, utf-8-validate) is installed: its JavaScript fallbacks
 * run, as they do for most of its users.
 *
 * Prints `ready PORT PID` once listening; exits on SIGTERM, SIGINT, and with
 * `--stdin-lifeline` when stdin ends. Plain JavaScript: Node.js 20 does not run TypeScript,
 * so bench/_server_cli.ts's helpers are not importable here and their equivalents are below.
 *
 * @module
 */
import process from "node:process";
import { parseArgs } from "node:util";
import { WebSocket, WebSocketServer } from "ws";

const { values } = parseArgs({
  options: {
    port: { type: "string", default: "0" },
    hostname: { type: "string", default: "127.0.0.1" },
    deflate: { type: "boolean", default: false },
    "stdin-lifeline": { type: "boolean", default: false },
  },
});

const wss = new WebSocketServer({
  host: values.hostname,
  port: Number(values.port),
  maxPayload: 64 * 1024 * 1024,
  perMessageDeflate: values.deflate,
});

/** The connections on `/pub`. */
const publishers = new WeakSet();

wss.on("connection", (ws, request) => {
  if (new URL(request.url ?? "/", "http://localhost").pathname === "/pub") {
    publishers.add(ws);
    ws.on("message", (data, isBinary) => {
      for (const client of wss.clients) {
        if (client.readyState === WebSocket.OPEN && !publishers.has(client)) {
          client.send(data, { binary: isBinary });
        }
      }
    });
  } else {
    ws.on("message", (data, isBinary) => ws.send(data, { binary: isBinary }));
  }
  // A client that vanishes must not take the server down with an unhandled 'error'.
  ws.on("error", () => {});
});

wss.on("listening", () => {
  console.log(`ready ${wss.address().port} ${process.pid}`);
});

let stopping = false;
function stop() {
  if (stopping) return;
  stopping = true;
  // Clients that stopped reading never answer a Close frame: drop them instead.
  for (const client of wss.clients) client.terminate();
  wss.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 500).unref();
}
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
if (values["stdin-lifeline"]) {
  process.stdin.on("end", stop);
  process.stdin.on("close", stop);
  process.stdin.resume();
}
