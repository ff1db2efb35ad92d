/**
 * The servers of bench/http_bench.ts: one small `fetch` handler, `() => new Response("hello")`,
 * served by sluice (`serve({ fetch })`) or by the runtime's own HTTP server (`Bun.serve` on Bun,
 * `Deno.serve` on Deno).
 *
 *     bun bench/_http_server.ts --server sluice|native|floor [--port 0] [--hostname 127.0.0.1]
 *         [--stdin-lifeline]
 *     deno run -A bench/_http_server.ts --server sluice|native|floor ...
 *
 * `floor` is not a server: it is what any HTTP server in JavaScript pays to call the same
 * handler over the raw TCP listener sluice uses (`Bun.listen`, `Deno.listen`), and nothing
 * else. Per chunk read (the load sends one request at a time): the standard objects the
 * `fetch` contract needs (a `Request` with the URL and the load's one header, the handler's
 * `Response`, its body read through a reader, as a body of unknown kind must be), then a head
 * of the same bytes as sluice's, written. No parsing, no checks, no keep-alive bookkeeping.
 *
 * sluice runs with its defaults for plain HTTP (keep-alive timeout 5 s, at most 1,000 requests
 * per connection, after which the load connects again), as an application would get them;
 * neither Bun.serve nor Deno.serve caps requests per connection.
 *
 * Prints `ready PORT PID` once listening; exits on SIGTERM, SIGINT, and with `--stdin-lifeline`
 * when stdin ends.
 *
 * @module
 */
import process from "node:process";
import { option, stopOnSignal } from "./_server_cli.ts";
import { serve } from "../mod.ts";
import { concatBytes } from "../lib/protocol/extensions/deflate_engine.ts";

/** The body every server answers with: the load checks it. */
export const BODY = "hello";

/** The handler, the same function on every server. */
const handler = (_request: Request): Response => new Response(BODY);

// The parts of the runtimes' APIs used here, typed locally: `deno check` type-checks bench/
// without bun-types, and Bun has no Deno types.
interface FloorSocket {
  write(bytes: Uint8Array): number;
}

interface DenoConn {
  read(buffer: Uint8Array): Promise<number | null>;
  write(bytes: Uint8Array): Promise<number>;
  close(): void;
}

interface NativeServer {
  port?: number;
  addr?: { port: number };
  stop?(force: boolean): unknown;
  shutdown?(): Promise<void>;
}

interface Runtimes {
  Bun?: {
    serve(
      options: { hostname: string; port: number; fetch(request: Request): Response },
    ): NativeServer;
    listen(options: {
      hostname: string;
      port: number;
      socket: { data(socket: FloorSocket, chunk: Uint8Array): void };
    }): { port: number; stop(force: boolean): void };
  };
  Deno?: {
    serve(
      options: { hostname: string; port: number; onListen(): void },
      handler: (request: Request) => Response,
    ): NativeServer;
    listen(options: { hostname: string; port: number }): AsyncIterable<DenoConn> & {
      addr: { port: number };
      close(): void;
    };
  };
}

const encoder = new TextEncoder();
let dateSecond = -1;
let dateText = "";

/** The Date header's value, made once a second (as sluice does). */
function httpDate(): string {
  const second = Math.floor(Date.now() / 1000);
  if (second !== dateSecond) {
    dateSecond = second;
    dateText = new Date(second * 1000).toUTCString();
  }
  return dateText;
}

/** The floor's answer to one request: the standard objects, the handler, a head, a write. */
async function floorAnswer(url: string, host: string, write: (bytes: Uint8Array) => void) {
  const request = new Request(url, { headers: [["host", host]] });
  const response = handler(request);
  const reader = response.body!.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (let read = await reader.read(); !read.done; read = await reader.read()) {
    chunks.push(read.value);
    total += read.value.length;
  }
  const body = concatBytes(chunks, total);
  const head = `HTTP/1.1 ${response.status} OK\r\nContent-Length: ${body.length}\r\n` +
    `Date: ${httpDate()}\r\ncontent-type: text/plain;charset=UTF-8\r\n\r\n`;
  const bytes = new Uint8Array(head.length + body.length);
  encoder.encodeInto(head, bytes);
  bytes.set(body, head.length);
  write(bytes);
}

/** Serves the floor on Deno: a read loop per connection, as a Deno server in JavaScript has. */
async function denoFloor(conn: DenoConn, url: string, host: string): Promise<void> {
  const buffer = new Uint8Array(16 * 1024);
  try {
    while ((await conn.read(buffer)) !== null) {
      let written: Promise<number> | undefined;
      await floorAnswer(url, host, (bytes) => written = conn.write(bytes));
      await written;
    }
  } catch {
    // The load went away.
  }
  conn.close();
}

function main(): void {
  const hostname = option("hostname", "127.0.0.1");
  const port = Number(option("port", "0"));
  const which = option("server", "sluice");
  const { Bun: bun, Deno: deno } = globalThis as Runtimes;
  if (which === "sluice") {
    const server = serve({ hostname, port, fetch: handler, heartbeat: false, idleTimeout: 0 });
    stopOnSignal(() => server.shutdown({ timeout: 500 }));
    console.log(`ready ${server.port} ${process.pid}`);
  } else if (which === "native" && bun !== undefined) {
    const server = bun.serve({ hostname, port, fetch: handler });
    stopOnSignal(() => server.stop?.(true));
    console.log(`ready ${server.port} ${process.pid}`);
  } else if (which === "native" && deno !== undefined) {
    // onListen: Deno.serve would otherwise print its own "Listening on" line.
    const server = deno.serve({ hostname, port, onListen() {} }, handler);
    stopOnSignal(() => server.shutdown?.());
    console.log(`ready ${server.addr!.port} ${process.pid}`);
  } else if (which === "floor" && bun !== undefined) {
    let url = "";
    let host = "";
    const server = bun.listen({
      hostname,
      port,
      socket: {
        data(socket) {
          floorAnswer(url, host, (bytes) => socket.write(bytes));
        },
      },
    });
    host = `${hostname}:${server.port}`;
    url = `http://${host}/`;
    stopOnSignal(() => server.stop(true));
    console.log(`ready ${server.port} ${process.pid}`);
  } else if (which === "floor" && deno !== undefined) {
    const listener = deno.listen({ hostname, port });
    const host = `${hostname}:${listener.addr.port}`;
    stopOnSignal(() => listener.close());
    console.log(`ready ${listener.addr.port} ${process.pid}`);
    (async () => {
      for await (const conn of listener) denoFloor(conn, `http://${host}/`, host);
    })().catch(() => {});
  } else {
    console.error(`bench/_http_server.ts: --server ${which}? (sluice, native, floor)`);
    process.exit(2);
  }
}

if (import.meta.main) main();
