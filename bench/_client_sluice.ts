/**
 * A client of bench/client_bench.ts: sluice's own client (`connect` from mod.ts),
 * `sluice-deno` under Deno and `sluice-bun` under Bun, driven by bench/_client_load.ts, with
 * its defaults but for the heartbeat (off, as the other clients have none) and no extension.
 *
 *     bun bench/_client_sluice.ts --url ws://127.0.0.1:PORT/ [--conns 16] [--window 16]
 *         [--size 32] [--seconds 5] [--warmup 1]
 *
 * @module
 */
import { connect, SendStatus } from "../mod.ts";
import { type LoadConnection, type LoadEvents, runLoad } from "./_client_load.ts";

/** Opens one connection with sluice's client. */
async function dial(url: string, events: LoadEvents): Promise<LoadConnection> {
  const ws = await connect(url, {
    heartbeat: false,
    perMessageDeflate: false,
    message(_ws, data, isBinary) {
      events.message(data.length, isBinary);
    },
    close(_ws, code, reason) {
      events.ended(`closed with ${code} ${reason}`);
    },
    error(error) {
      events.ended(String(error));
    },
  });
  return { send: (payload) => ws.send(payload) !== SendStatus.Dropped };
}

await runLoad("Bun" in globalThis ? "sluice-bun" : "sluice-deno", dial);
