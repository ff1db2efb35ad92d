/**
 * The server that bench/deflate_memory.ts and bench/deflate_bomb.ts start as a child process,
 * so that its memory (/proc/PID/status) is its own: an echo server on 127.0.0.1, port 0, that
 * compresses every echo (threshold 0) and keeps the default maxPayloadLength (16 MiB).
 *
 *     deno run -A --v8-flags=--expose-gc bench/deflate_memory_server.ts --deflate shared
 *     bun bench/deflate_memory_server.ts --deflate dedicated
 *
 * Options: --deflate off|shared|dedicated (default shared), --engine zlib|web (default zlib).
 *
 * It talks to its parent in lines: it prints `ready PORT PID` once listening; on stdin, `gc`
 * runs a full garbage collection (when the runtime exposes one) and answers `gc`, `count`
 * answers `count N` (the connections open). When stdin ends, or on SIGTERM, it shuts down and
 * exits, so it never outlives its parent.
 *
 * @module
 */
import process from "node:process";
import { createInterface } from "node:readline";
import { serve } from "../mod.ts";
import { option } from "./_server_cli.ts";

const deflate = option("deflate", "shared");
if (deflate !== "shared" && deflate !== "dedicated" && deflate !== "off") {
  throw new RangeError(`--deflate must be shared, dedicated or off, not ${deflate}`);
}
const engine = option("engine", "zlib");
if (engine !== "zlib" && engine !== "web") {
  throw new RangeError(`--engine must be zlib or web, not ${engine}`);
}

let open = 0;
const server = serve({
  hostname: "127.0.0.1",
  port: 0,
  perMessageDeflate: deflate === "off" ? false : { mode: deflate, engine, threshold: 0 },
  open() {
    open++;
  },
  message(ws, data) {
    ws.send(data);
  },
  close() {
    open--;
  },
});

/** A full collection: `Bun.gc(true)` in Bun, `gc()` in Deno with `--v8-flags=--expose-gc`. */
function collect(): void {
  const bun = (globalThis as { Bun?: { gc(force: boolean): void } }).Bun;
  if (bun !== undefined) bun.gc(true);
  else (globalThis as { gc?: () => void }).gc?.();
}

let stopping = false;
async function stop(): Promise<void> {
  if (stopping) return;
  stopping = true;
  await server.shutdown({ timeout: 1000 });
  process.exit(0);
}

const lines = createInterface({ input: process.stdin });
lines.on("line", (line) => {
  const command = line.trim();
  if (command === "gc") {
    collect();
    collect();
    console.log("gc");
  } else if (command === "count") {
    console.log(`count ${open}`);
  }
});
lines.on("close", stop);
process.on("SIGTERM", stop);

console.log(`ready ${server.port} ${process.pid}`);
