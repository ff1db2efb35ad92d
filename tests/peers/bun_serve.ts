/**
 * Peer `bun-serve`: an echo server on Bun.serve's WebSocket server (uWebSockets), as
 * tests/peers/_peer.ts describes. permessage-deflate: yes (Bun's `perMessageDeflate`, and every
 * echo is offered for compression: Bun compresses only when `send` is asked to).
 *
 *     bun tests/peers/bun_serve.ts --config '{"protocols":[],"deflate":false}'
 *
 * Bun only.
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

// The part of Bun's API used here, typed locally: `deno check` type-checks tests/ without
// bun-types.
interface Data {
  path: string;
  protocol: string;
  headers: Record<string, string>;
}

interface BunSocket {
  data: Data;
  send(message: string | Uint8Array, compress?: boolean): number;
  close(code?: number, reason?: string): void;
}

interface BunServer {
  port: number;
  upgrade(request: Request, options: { data: Data; headers?: HeadersInit }): boolean;
}

interface BunServeOptions {
  hostname: string;
  port: number;
  tls?: { cert: string; key: string };
  fetch(request: Request, server: BunServer): Response | undefined;
  websocket: {
    maxPayloadLength: number;
    idleTimeout: number;
    sendPings: boolean;
    perMessageDeflate: boolean;
    open(ws: BunSocket): void;
    message(ws: BunSocket, message: string | Uint8Array): void;
    close(ws: BunSocket, code: number, reason: string): void;
  };
}

const bun = (globalThis as { Bun?: { serve(options: BunServeOptions): BunServer } }).Bun;
if (bun === undefined) {
  console.error("tests/peers/bun_serve.ts runs on Bun only");
  process.exit(2);
}

const config = readConfig();

const server = bun.serve({
  hostname: "127.0.0.1",
  port: 0,
  tls: config.tls,
  fetch(request, server) {
    const url = new URL(request.url);
    const path = url.pathname + url.search;
    if (config.refuse !== undefined) {
      const { status, body, headers } = config.refuse;
      report({ type: "refused", path, status });
      return new Response(body, { status, headers });
    }
    const protocol = chooseProtocol(
      request.headers.get("sec-websocket-protocol"),
      config.protocols,
    );
    const data = { path, protocol: protocol ?? "", headers: headerObject(request.headers) };
    // Bun answers with the client's first protocol unless told one; told "", it sends none.
    const headers = { "Sec-WebSocket-Protocol": protocol ?? "" };
    if (server.upgrade(request, { data, headers })) return undefined;
    return new Response("Upgrade Required", { status: 426, headers: { Upgrade: "websocket" } });
  },
  websocket: {
    maxPayloadLength: 64 * 1024 * 1024,
    // Seconds; 0 turns it off. With sendPings off nothing is sent unasked.
    idleTimeout: 0,
    sendPings: false,
    perMessageDeflate: config.deflate,
    open(ws) {
      report({ type: "open", ...ws.data });
      if (config.greet !== undefined) ws.send(config.greet, config.deflate);
    },
    message(ws, message) {
      const command = typeof message === "string" ? closeCommand(message) : undefined;
      if (command === undefined) ws.send(message, config.deflate);
      // Bun sends code 1000 for a bare close(); 1005 asks it for a Close frame with no code.
      else if (command.code === undefined) ws.close(1005);
      else ws.close(command.code, command.reason);
    },
    close(_ws, code, reason) {
      report({ type: "close", code, reason });
    },
  },
});

exitWithParent();
console.log(`ready ${server.port} ${process.pid}`);
