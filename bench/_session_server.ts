/**
 * The sluice server of bench/session_bench.ts, on Deno or Bun.
 *
 *     deno run -A bench/_session_server.ts --mode raw|session [--port 0] [--hostname 127.0.0.1]
 *         [--stdin-lifeline]
 *     bun bench/_session_server.ts --mode raw|session ...
 *
 * `--mode raw`: `serve`, the same traffic without the session layer: the application
 * acknowledges each message by hand with a one-byte text message (`k`) once its handler ran.
 *
 * Both modes: no heartbeat, no idle timeout, no compression, as in bench/echo_server.ts (a
 * loaded client answers pings late and would be dropped).
 *
 * Prints `ready PORT PID` once listening. Stops on SIGTERM or SIGINT, and with
 * `--stdin-lifeline` when stdin ends (bench/_server_cli.ts).
 *
 * @module
 */
import process from "node:process";
import { option, stopOnSignal } from "./_server_cli.ts";
import { serve } from "../mod.ts";

const LIMITS = {
  hostname: option("hostname", "127.0.0.1"),
  port: Number(option("port", "0")),
  perMessageDeflate: false,
  heartbeat: false,
  idleTimeout: 0,
} as const;

const mode = option("mode", "raw");
if (mode !== "raw") throw new RangeError(`--mode: ${mode}? (raw)`);

const server = serve({
  ...LIMITS,
  message(ws) {
    ws.send("k");
  },
});
stopOnSignal(() => server.shutdown({ timeout: 500 }));
console.log(`ready ${server.port} ${process.pid}`);
