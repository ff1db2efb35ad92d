/**
 * Peer `node-ws`: an echo server on Node.js with the npm package `ws` (its WebSocketServer on a
 * `node:http` or `node:https` server), as tests/peers/_peer.ts describes. permessage-deflate:
 * yes (`ws`'s own, with `threshold: 0` so that every message is compressed, small ones too).
 *
 *     node tests/peers/node_ws.mjs --config '{"protocols":[],"deflate":false}'
 *
 * Plain JavaScript: Node.js 20 does not run TypeScript, so tests/peers/_peer.ts is not
 * importable here and its helpers are repeated below; keep the two in step.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import http from "node:http";
import https from "node:https";
import process from "node:process";
import { WebSocketServer } from "ws";

const at = process.argv.indexOf("--config");
if (at === -1 || at + 1 >= process.argv.length) {
  throw new TypeError("Cannot start the peer: --config JSON is missing");
}
/** @type {import("./_peer.ts").PeerConfig} */
const config = JSON.parse(process.argv[at + 1]);

/** @param {unknown} event */
function report(event) {
  console.log(`event ${JSON.stringify(event)}`);
}

/** @param {string} text */
function closeCommand(text) {
  const match = /^!close(?: (\d+)(?: (.*))?)?$/s.exec(text);
  if (match === null) return undefined;
  return { code: match[1] === undefined ? undefined : Number(match[1]), reason: match[2] ?? "" };
}

/** @param {import("node:http").IncomingHttpHeaders} headers */
function headerObject(headers) {
  return Object.fromEntries(
    Object.entries(headers).map(([name, value]) => [
      name,
      Array.isArray(value) ? value.join(", ") : String(value),
    ]),
  );
}

const wss = new WebSocketServer({
  noServer: true,
  maxPayload: 64 * 1024 * 1024,
  perMessageDeflate: config.deflate ? { threshold: 0 } : false,
  // The first protocol of the client's offer (its order of preference) that the peer accepts.
  handleProtocols: (offered) => [...offered].find((p) => config.protocols.includes(p)) ?? false,
});

const server = config.tls === undefined
  ? http.createServer()
  : https.createServer({ cert: config.tls.cert, key: config.tls.key });

server.on("request", (_request, response) => {
  response.writeHead(426, { Upgrade: "websocket" }).end("Upgrade Required");
});

server.on("upgrade", (request, socket, head) => {
  const path = request.url ?? "/";
  if (config.refuse !== undefined) {
    const { status, body, headers } = config.refuse;
    report({ type: "refused", path, status });
    const bytes = Buffer.from(body);
    const lines = [
      `HTTP/1.1 ${status} ${http.STATUS_CODES[status] ?? "Refused"}`,
      "Connection: close",
      `Content-Length: ${bytes.length}`,
      ...Object.entries(headers).map(([name, value]) => `${name}: ${value}`),
    ];
    socket.end(Buffer.concat([Buffer.from(`${lines.join("\r\n")}\r\n\r\n`), bytes]));
    return;
  }
  wss.handleUpgrade(request, socket, head, (ws) => {
    report({ type: "open", path, protocol: ws.protocol, headers: headerObject(request.headers) });
    ws.on("message", (data, isBinary) => {
      const command = isBinary ? undefined : closeCommand(data.toString());
      if (command === undefined) ws.send(data, { binary: isBinary });
      else if (command.code === undefined) ws.close();
      else ws.close(command.code, command.reason);
    });
    ws.on("close", (code, reason) => report({ type: "close", code, reason: reason.toString() }));
    // A client that vanishes is reported by 'close'; an unhandled 'error' would end the peer.
    ws.on("error", () => {});
    if (config.greet !== undefined) ws.send(config.greet);
  });
});

server.listen(0, "127.0.0.1", () => {
  console.log(`ready ${server.address().port} ${process.pid}`);
});

// Exits when stdin ends: the parent holds its other end, so the peer never outlives it.
process.stdin.on("end", () => process.exit(0));
process.stdin.on("close", () => process.exit(0));
process.stdin.resume();
