/**
 * The sluice client of bench/session_bench.ts, on Deno or Bun, driven by
 * bench/_session_load.mjs.
 *
 *     deno run -A bench/_session_client.ts --mode raw|session --url ws://127.0.0.1:PORT/
 *         [--scenario load|replay] [--conns 16] [--window 64] [--size 64] [--seconds 5]
 *         [--warmup 1] [--count 1000] [--cycles 5]
 *     bun bench/_session_client.ts ...
 *
 * `--mode raw` (load only): `connect` from mod.ts; each message is a text message and the
 * server's `k` acknowledges the oldest one in flight (bench/_session_server.ts).
 *
 * @module
 */
import { connect } from "../mod.ts";
import { type AckConnection, type AckEvents, arg, runAckLoad } from "./_session_load.mjs";

const runtime = "Bun" in globalThis ? "bun" : "deno";
const mode = arg("mode", "raw");
if (mode !== "raw") throw new RangeError(`--mode: ${mode}? (raw)`);

/** Opens one raw connection: the application numbers nothing; the server answers each. */
async function dialRaw(url: string, events: AckEvents): Promise<AckConnection> {
  const ws = await connect(url, {
    message() {
      events.acked();
    },
    close(_ws, code, reason) {
      events.ended(`closed with ${code} ${reason}`);
    },
    error(error) {
      events.ended(String(error));
    },
  });
  return { send: (payload) => void ws.send(payload) };
}

await runAckLoad(`${mode}-${runtime}`, dialRaw);
