/**
 * Picks the adapter for the runtime the code runs on.
 *
 * @module
 */
import type { Listen } from "../core/transport.ts";
import { listen as bunListen } from "./bun.ts";
import { listen as denoListen } from "./deno.ts";

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
