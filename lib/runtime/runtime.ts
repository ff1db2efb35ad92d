/**
 * Picks the adapter for the runtime the code runs on.
 *
 * @module
 */
import type { Connect, Listen } from "../core/transport.ts";
import { connect as bunConnect, listen as bunListen } from "./bun.ts";
import { connect as denoConnect, listen as denoListen } from "./deno.ts";

/**
 * The listen function of the current runtime.
 *
 * @returns Bun's adapter under Bun, Deno's under Deno.
 * @throws {Error} On any other runtime.
 */
export function runtimeListen(): Listen {
  if ("Bun" in globalThis) return bunListen;
  if ("Deno" in globalThis) return denoListen;
  throw new Error("sluice runs on Deno or Bun; this runtime is neither");
}

/**
 * The connect function of the current runtime.
 *
 * @returns Bun's adapter under Bun, Deno's under Deno.
 * @throws {Error} On any other runtime.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { runtimeConnect, runtimeListen } from "./runtime.ts";
 * const quiet = { onData() {}, onDrain() {}, onBelow() {}, onEnd() {}, onClose() {} };
 * const listener = runtimeListen()({ hostname: "127.0.0.1", port: 0 }, () => quiet);
 * const transport = await runtimeConnect()({ hostname: "127.0.0.1", port: listener.port }, quiet);
 * assert.equal(transport.remotePort, listener.port);
 * transport.destroy();
 * listener.close();
 * ```
 */
export function runtimeConnect(): Connect {
  if ("Bun" in globalThis) return bunConnect;
  if ("Deno" in globalThis) return denoConnect;
  throw new Error("sluice runs on Deno or Bun; this runtime is neither");
}
