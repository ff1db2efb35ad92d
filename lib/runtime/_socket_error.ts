/**
 * The wording both adapters share for a socket that could not be bound or opened: the address,
 * what was wrong, and the runtime's own error as `cause`. Both runtimes put Node-style codes
 * (`EADDRINUSE`, `ECONNREFUSED`, …) on socket errors; a code means the same whether a listen or
 * a connect met it, except where the caller's table says otherwise.
 *
 * @module
 */

/** What a socket error's code means, for the codes a listen or a connect meets. */
export const REASONS: Readonly<Record<string, string>> = {
  EADDRINUSE: "the address is already in use",
  EADDRNOTAVAIL: "the address is not one of this machine's",
  EACCES: "permission denied",
  EPERM: "permission denied",
  ENOTFOUND: "the host name could not be resolved",
  EAI_NONAME: "the host name could not be resolved",
  EAI_AGAIN: "the host name could not be resolved (temporary failure)",
  ECONNREFUSED: "the connection was refused",
  ECONNRESET: "the connection was reset",
  ETIMEDOUT: "the connection timed out",
  EHOSTUNREACH: "the host is unreachable",
  ENETUNREACH: "the network is unreachable",
};

/**
 * `host:port`, with an IPv6 address in brackets (RFC 3986 §3.2.2).
 *
 * @param hostname A host name or an IP address (an IPv6 one without brackets).
 * @param port The port.
 * @returns The address as it is written in a URL.
 *
 * @example
 * ```ts
 * import { formatAddress } from "./_socket_error.ts";
 * console.log(formatAddress("::1", 80)); // [::1]:80
 * ```
 */
export function formatAddress(hostname: string, port: number): string {
  return hostname.includes(":") ? `[${hostname}]:${port}` : `${hostname}:${port}`;
}

/**
 * An `Error` for a socket that failed at `address`: `${failed} ${address}: ${why}`, the
 * runtime's error as `cause`.
 *
 * @param failed What failed, as the message starts: `Cannot serve on`, `Cannot connect to`.
 * @param address Where.
 * @param cause What the runtime threw.
 * @param reason What was wrong, when the adapter knows better than the error's code.
 * @param reasons The meanings of codes, by code.
 * @returns The error to throw.
 *
 * @example
 * ```ts
 * import { REASONS, socketError } from "./_socket_error.ts";
 * const cause = Object.assign(new Error("Connection refused"), { code: "ECONNREFUSED" });
 * const address = { hostname: "127.0.0.1", port: 1 };
 * console.log(socketError("Cannot connect to", address, cause, undefined, REASONS).message);
 * // Cannot connect to 127.0.0.1:1: the connection was refused
 * ```
 */
export function socketError(
  failed: string,
  address: { hostname: string; port: number },
  cause: unknown,
  reason: string | undefined,
  reasons: Readonly<Record<string, string>>,
): Error {
  const code = (cause as { code?: unknown } | null)?.code;
  const why = reason ??
    (typeof code === "string" && Object.hasOwn(reasons, code)
      ? reasons[code]
      : String((cause as Error | null)?.message ?? cause));
  return new Error(`${failed} ${formatAddress(address.hostname, address.port)}: ${why}`, {
    cause,
  });
}
