/**
 * Peer `deno-serve`: an echo server on Deno.serve and Deno.upgradeWebSocket, as
 * tests/peers/_peer.ts describes. permessage-deflate: no — Deno.upgradeWebSocket does not
 * implement it, so `deflate: true` is refused (exit 2) rather than silently ignored.
 *
 *     deno run -A tests/peers/deno_serve.ts --config '{"protocols":[],"deflate":false}'
 *
 * Deno only.
 *
 * @module
 */
import process from "node:process";
import {
  chooseProtocol,
  closeCommand,
  exitWithParent,
  headerObject,
  readConfig,
  report,
} from "./_peer.ts";

if (!("Deno" in globalThis) || "Bun" in globalThis) {
  console.error("tests/peers/deno_serve.ts runs on Deno only");
  process.exit(2);
}

const config = readConfig();
if (config.deflate) {
  console.error("deno-serve: Deno.upgradeWebSocket has no permessage-deflate");
  process.exit(2);
}

function accept(request: Request): Response {
  const url = new URL(request.url);
  const path = url.pathname + url.search;
  if (config.refuse !== undefined) {
    const { status, body, headers } = config.refuse;
    report({ type: "refused", path, status });
    return new Response(body, { status, headers });
  }
  if (request.headers.get("upgrade")?.toLowerCase() !== "websocket") {
    return new Response("Upgrade Required", { status: 426, headers: { Upgrade: "websocket" } });
  }
  const protocol = chooseProtocol(request.headers.get("sec-websocket-protocol"), config.protocols);
  const headers = headerObject(request.headers);
  // idleTimeout 0: no pings, no timeout.
  const { socket, response } = Deno.upgradeWebSocket(request, { protocol, idleTimeout: 0 });
  socket.binaryType = "arraybuffer";
  socket.onopen = () => {
    report({ type: "open", path, protocol: protocol ?? "", headers });
    if (config.greet !== undefined) socket.send(config.greet);
  };
  socket.onmessage = (event) => {
    const data = event.data as string | ArrayBuffer;
    const command = typeof data === "string" ? closeCommand(data) : undefined;
    if (command === undefined) socket.send(data);
    else if (command.code === undefined) socket.close();
    else socket.close(command.code, command.reason);
  };
  socket.onclose = (event) => report({ type: "close", code: event.code, reason: event.reason });
  // A peer that vanishes is reported by the close event; the error event adds nothing.
  socket.onerror = () => {};
  return response;
}

const tls = config.tls === undefined ? {} : { cert: config.tls.cert, key: config.tls.key };
Deno.serve({
  hostname: "127.0.0.1",
  port: 0,
  ...tls,
  onListen({ port }) {
    console.log(`ready ${port} ${Deno.pid}`);
  },
}, accept);

exitWithParent();
