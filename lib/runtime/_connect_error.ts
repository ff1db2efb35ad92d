/**
 * The errors a connect rejects with: they name the address and say what was wrong, with the
 * runtime's own error as their `cause`. The codes' wording is shared with listen
 * (_socket_error.ts); each adapter sorts its TLS failures into the kinds worded here.
 *
 * @module
 */
import type { ConnectOptions } from "../core/transport.ts";
import { REASONS, socketError } from "./_socket_error.ts";

/** What a socket error's code means for a connect, where it differs from a listen. */
const CONNECT_REASONS: Readonly<Record<string, string>> = {
  ...REASONS,
  // connect(2): no free local port, or an address that cannot be connected to (0.0.0.0:0).
  EADDRNOTAVAIL: "no local address could be assigned for it",
};

/** How a TLS handshake failed, as far as the adapter can tell. */
export type TlsFailure =
  /** The server's certificate did not verify: an unknown issuer, another name, expired. */
  | "certificate"
  /** The server closed or reset the connection before the handshake was over. */
  | "closed"
  /** Anything else: a protocol error, an alert from the server (the cause says which). */
  | "handshake";

/**
 * An `Error` for a failed connect: `Cannot connect to 127.0.0.1:1: the connection was
 * refused`, the runtime's error as `cause`.
 *
 * @param options What the connect was asked for.
 * @param cause What the runtime threw.
 * @param reason What was wrong, when the adapter knows better than the error's code.
 * @returns The error to reject with.
 *
 * @example
 * ```ts
 * import { connectError } from "./_connect_error.ts";
 * const cause = Object.assign(new Error("Connection refused"), { code: "ECONNREFUSED" });
 * console.log(connectError({ hostname: "::1", port: 1 }, cause).message);
 * // Cannot connect to [::1]:1: the connection was refused
 * ```
 */
export function connectError(options: ConnectOptions, cause: unknown, reason?: string): Error {
  return socketError("Cannot connect to", options, cause, reason, CONNECT_REASONS);
}

/**
 * An `Error` for a TLS handshake that failed: `Cannot connect to localhost:4433: the server's
 * TLS certificate was refused (…)`, the runtime's message in parentheses and its error as
 * `cause`. The name verified is told when it is not the host connected to.
 *
 * @param options What the connect was asked for.
 * @param cause What the runtime threw or reported.
 * @param failure What kind of failure it was.
 * @returns The error to reject with.
 *
 * @example
 * ```ts
 * import { tlsError } from "./_connect_error.ts";
 * const cause = new Error("invalid peer certificate: UnknownIssuer");
 * console.log(tlsError({ hostname: "localhost", port: 4433, tls: {} }, cause, "certificate").message);
 * // Cannot connect to localhost:4433: the server's TLS certificate was refused (invalid peer certificate: UnknownIssuer)
 * ```
 */
export function tlsError(options: ConnectOptions, cause: unknown, failure: TlsFailure): Error {
  if (failure === "closed") {
    return connectError(options, cause, "the connection was closed during the TLS handshake");
  }
  const detail = String((cause as Error | null)?.message ?? cause);
  if (failure === "handshake") {
    return connectError(options, cause, `the TLS handshake failed (${detail})`);
  }
  const serverName = options.tls?.serverName;
  const name = serverName === undefined || serverName === options.hostname
    ? ""
    : ` for the name "${serverName}"`;
  return connectError(
    options,
    cause,
    `the server's TLS certificate was refused${name} (${detail})`,
  );
}
