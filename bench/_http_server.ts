/**
 * The servers of bench/http_bench.ts: one small `fetch` handler, `() => new Response("hello")`,
 * served by sluice (`serve({ fetch })`) or by the runtime's own HTTP server (`Bun.serve` on Bun,
 * `Deno.serve` on Deno).
 *
 *     bun bench/_http_server.ts --server sluice|native [--port 0] [--hostname 127.0.0.1]
 *         [--stdin-lifeline]
 *     deno run -A bench/_http_server.ts --server sluice|native ...
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

/** The body every server answers with: the load checks it. */
export const BODY = "hello";

/** The handler, the same function on every server. */
const handler = (): Response => new Response(BODY);

// The parts of the runtimes' APIs used here, typed locally: `deno check` type-checks bench/
// without bun-types, and Bun has no Deno types.
interface NativeServer {
  port?: number;
  addr?: { port: number };
  stop?(force: boolean): unknown;
  shutdown?(): Promise<void>;
}

interface Runtimes {
  Bun?: {
    serve(options: { hostname: string; port: number; fetch(): Response }): NativeServer;
  };
  Deno?: {
    serve(
      options: { hostname: string; port: number; onListen(): void },
      handler: () => Response,
    ): NativeServer;
  };
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
  } else {
    console.error(`bench/_http_server.ts: --server ${which}? (sluice, native)`);
    process.exit(2);
  }
}

if (import.meta.main) main();
