/**
 * Echoes every text and binary message back. Runs unchanged on both runtimes:
 *
 *     deno run -A examples/echo.ts --port 9001
 *     bun examples/echo.ts --port 9001
 *
 * Options: --port N (default 9001), --hostname H (default 127.0.0.1), --deflate MODE
 * (permessage-deflate when a client offers it: "shared" (default), "dedicated" or "off"),
 * --engine zlib|web (default zlib).
 */
import process from "node:process";
import { serve } from "../mod.ts";

function option(name: string, fallback: string): string {
  const at = process.argv.indexOf(`--${name}`);
  return at !== -1 && at + 1 < process.argv.length ? process.argv[at + 1] : fallback;
}

const deflate = option("deflate", "shared");
if (deflate !== "shared" && deflate !== "dedicated" && deflate !== "off") {
  throw new RangeError(`--deflate must be shared, dedicated or off, not ${deflate}`);
}
const engine = option("engine", "zlib");
if (engine !== "zlib" && engine !== "web") {
  throw new RangeError(`--engine must be zlib or web, not ${engine}`);
}

const server = serve({
  hostname: option("hostname", "127.0.0.1"),
  port: Number(option("port", "9001")),
  maxPayloadLength: 64 * 1024 * 1024,
  // Echo compressed whatever its size (threshold 0), so every echo exercises the compressor.
  perMessageDeflate: deflate === "off" ? false : { mode: deflate, engine, threshold: 0 },
  message(ws, data) {
    ws.send(data);
  },
});

console.log(
  `echo server listening on ws://${server.hostname}:${server.port} (permessage-deflate: ${deflate})`,
);

for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, async () => {
    await server.shutdown({ timeout: 2000 });
    process.exit(0);
  });
}
