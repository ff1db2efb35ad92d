/**
 * Anchor for the end-to-end benchmarks: bench/echo_server.ts's behaviour on Deno.serve and
 * Deno.upgradeWebSocket, the figure sluice on Deno is compared with.
 *
 *     deno run -A bench/anchors/deno_upgrade.ts --port 9022 [--hostname 127.0.0.1]
 *         [--stdin-lifeline]
 *
 * Every connection echoes each message back with the same opcode; a connection on `/pub` is
 * the publisher, whose messages are sent to every other open connection by a loop over a Set
 * (Deno has no topics: this is what an application on it writes). Pings and the idle timeout
 * are off (`idleTimeout: 0`); Deno has no message-size or backpressure option to set.
 *
 * `--deflate` is refused (exit 2): Deno.upgradeWebSocket does not implement
 * permessage-deflate, so a compressed scenario has no Deno anchor.
 *
 * Prints `ready PORT PID` once listening; exits on SIGTERM, SIGINT, and with
 * `--stdin-lifeline` when stdin ends. Deno only.
 *
 * @module
 */
import process from "node:process";
import { delay, option, stopOnSignal } from "../_server_cli.ts";

if (!("Deno" in globalThis) || "Bun" in globalThis) {
  console.error("bench/anchors/deno_upgrade.ts runs on Deno only");
  process.exit(2);
}
if (process.argv.includes("--deflate")) {
  console.error("deno_upgrade: Deno.upgradeWebSocket has no permessage-deflate");
  process.exit(2);
}

const subscribers = new Set<WebSocket>();

function accept(request: Request): Response {
  if (request.headers.get("upgrade")?.toLowerCase() !== "websocket") {
    return new Response("Upgrade Required", { status: 426, headers: { Upgrade: "websocket" } });
  }
  const publisher = new URL(request.url).pathname === "/pub";
  // idleTimeout 0: no pings, no timeout.
  const { socket, response } = Deno.upgradeWebSocket(request, { idleTimeout: 0 });
  socket.binaryType = "arraybuffer";
  if (publisher) {
    socket.onmessage = (event) => {
      const data = event.data as string | ArrayBuffer;
      for (const subscriber of subscribers) {
        // send() throws once a socket is closing; it leaves the Set on its close event.
        if (subscriber.readyState === WebSocket.OPEN) subscriber.send(data);
      }
    };
  } else {
    socket.onopen = () => subscribers.add(socket);
    socket.onmessage = (event) => socket.send(event.data as string | ArrayBuffer);
    socket.onclose = () => subscribers.delete(socket);
  }
  return response;
}

const server = Deno.serve({
  hostname: option("hostname", "127.0.0.1"),
  port: Number(option("port", "0")),
  onListen({ port }) {
    console.log(`ready ${port} ${Deno.pid}`);
  },
}, accept);

stopOnSignal(() => Promise.race([server.shutdown(), delay(500)]));
