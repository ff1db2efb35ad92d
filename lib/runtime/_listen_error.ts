/**
 * The error `serve` throws when the runtime cannot listen: it names the address and says what
 * was wrong, with the runtime's own error as its `cause`. Both runtimes put Node-style codes
 * (`EADDRINUSE`, …) on socket errors; each adapter words what only it can recognise.
 *
 * @module
 */
import type { ListenOptions } from "../core/transport.ts";

/** What a socket error's code means, for the codes a listen meets. */
const REASONS: Record<string, string> = {
  EADDRINUSE: "the address is already in use",
  EADDRNOTAVAIL: "the address is not one of this machine's",
  EACCES: "permission denied (ports below 1024 need privileges)",
  EPERM: "permission denied",
  ENOTFOUND: "the host name could not be resolved",
  EAI_NONAME: "the host name could not be resolved",
};

/**
 * An `Error` for a failed listen: `Cannot serve on 127.0.0.1:8080: the address is already in
 * use`, the runtime's error as `cause`.
 *
 * @param options Where the listen was asked for.
 * @param cause What the runtime threw.
 * @param reason What was wrong, when the adapter knows better than the error's code.
 * @returns The error to throw.
 *
 * @example
 * ```ts
 * import { listenError } from "./_listen_error.ts";
 * const cause = Object.assign(new Error("Address already in use"), { code: "EADDRINUSE" });
 * console.log(listenError({ hostname: "::1", port: 80 }, cause).message);
 * // Cannot serve on [::1]:80: the address is already in use
 * ```
 */
export function listenError(options: ListenOptions, cause: unknown, reason?: string): Error {
  const { hostname, port } = options;
  const where = hostname.includes(":") ? `[${hostname}]:${port}` : `${hostname}:${port}`;
  const code = (cause as { code?: unknown } | null)?.code;
  const why = reason ??
    (typeof code === "string" && Object.hasOwn(REASONS, code)
      ? REASONS[code]
      : String((cause as Error | null)?.message ?? cause));
  return new Error(`Cannot serve on ${where}: ${why}`, { cause });
}
