/**
 * A client of bench/client_bench.ts: the running runtime's own WebSocket
 * (`globalThis.WebSocket`), `deno-builtin` under Deno and `bun-builtin` under Bun, driven by
 * bench/_client_load.ts. It asks for ArrayBuffers (`binaryType`), the cheapest binary type
 * the WHATWG API has, and offers no extension: Bun's client would offer permessage-deflate,
 * which the other clients do not (the echo servers of the benchmark do not accept it anyway).
 *
 *     deno run -A bench/_client_web.ts --url ws://127.0.0.1:PORT/ [--conns 16] [--window 16]
 *         [--size 32] [--seconds 5] [--warmup 1]
 *
 * @module
 */
import { type LoadConnection, type LoadEvents, runLoad } from "./_client_load.ts";

/** Opens one connection with the runtime's WebSocket. */
function dial(url: string, events: LoadEvents): Promise<LoadConnection> {
  // Bun takes `perMessageDeflate: false` in an options object; Deno ignores what it does not know.
  const Native = WebSocket as unknown as new (
    url: string,
    options: { perMessageDeflate: boolean },
  ) => WebSocket;
  const ws = new Native(url, { perMessageDeflate: false });
  ws.binaryType = "arraybuffer";
  return new Promise((resolve, reject) => {
    ws.onopen = () =>
      resolve({
        send(payload) {
          ws.send(payload);
          return true;
        },
      });
    ws.onmessage = (event) => {
      const data = event.data as string | ArrayBuffer;
      if (typeof data === "string") events.message(data.length, false);
      else events.message(data.byteLength, true);
    };
    ws.onerror = (event) => reject(new Error((event as ErrorEvent).message ?? "error"));
    ws.onclose = (event) => events.ended(`closed with ${event.code} ${event.reason}`);
  });
}

await runLoad("Bun" in globalThis ? "bun-builtin" : "deno-builtin", dial);
