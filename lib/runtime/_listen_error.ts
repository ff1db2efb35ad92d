/**
 * The error `serve` throws when the runtime cannot listen: it names the address and says what
 * was wrong, with the runtime's own error as its `cause`. The codes' wording is shared with
 * connect (_socket_error.ts); each adapter words what only it can recognise.
 *
 * @module
 */
import type { ListenOptions } from "../core/transport.ts";
import { REASONS, socketError } from "./_socket_error.ts";

/** What a socket error's code means for a listen, where it differs from a connect. */
const LISTEN_REASONS: Readonly<Record<string, string>> = {
  ...REASONS,
  EACCES: "permission denied (ports below 1024 need privileges)",
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
  return socketError("Cannot serve on", options, cause, reason, LISTEN_REASONS);
}
