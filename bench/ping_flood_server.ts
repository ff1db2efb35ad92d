/**
 * The server bench/ping_flood.ts starts as a child process: an echo server (every message
 * goes back with its opcode) with the defaults a deployment would have, except that nothing
 * disturbs a benchmark: no heartbeat, no idle timeout, and errors are not printed.
 *
 *     deno run -A bench/ping_flood_server.ts [--port 0] [--hostname 127.0.0.1]
 *         [--control-limit default|off] [--stdin-lifeline]
 *     bun bench/ping_flood_server.ts ...
 *
 * `--control-limit off` sets `controlFrameLimit: false`, so that a ping flood is processed
 * rather than closed with 1008. Prints `ready PORT PID` once listening; stops on SIGTERM,
 * SIGINT and, with `--stdin-lifeline`, when stdin ends.
 *
 * @module
 */
import process from "node:process";
import { option, stopOnSignal } from "./_server_cli.ts";
import { serve } from "../mod.ts";

const limit = option("control-limit", "default");
if (limit !== "default" && limit !== "off") {
  throw new RangeError(`--control-limit must be default or off, not ${limit}`);
}

const server = serve({
  hostname: option("hostname", "127.0.0.1"),
  port: Number(option("port", "0")),
  heartbeat: false,
  idleTimeout: 0,
  ...(limit === "off" ? { controlFrameLimit: false as const } : {}),
  message(ws, data) {
    ws.send(data);
  },
  // The flooder's 1008 is expected: nothing to print.
  error() {},
});

stopOnSignal(() => server.shutdown({ timeout: 500 }));

console.log(`ready ${server.port} ${process.pid}`);
