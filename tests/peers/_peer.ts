/**
 * What the TypeScript peers (bun_serve.ts, deno_serve.ts) share: their configuration, the lines
 * they print for the parent (tests/_peers.ts), the subprotocol choice and the `!close`
 * command. tests/peers/node_ws.mjs does the same in plain JavaScript (Node.js 20 does not run
 * TypeScript), so a change here goes there too.
 *
 * A peer is a WebSocket echo server of another implementation, run as a child process:
 * - It reads its {@linkcode PeerConfig} as JSON from the argument after `--config`, binds
 *   127.0.0.1 on a port of the system's choosing and prints `ready PORT PID`.
 * - It echoes every message with its opcode (text as text, binary as binary), except a text
 *   message `!close [CODE [REASON]]`: it then starts the closing handshake itself, with that
 *   code and reason (RFC 6455 §5.5.1), or with no code when none is given.
 * - It prints one `event JSON` line per connection opened, refused or closed
 *   ({@linkcode PeerEvent}), so a test sees what the other end saw.
 * - It exits when its stdin ends (the parent's pipe: it never outlives the parent) or on
 *   SIGTERM.
 *
 * @module
 */
import process from "node:process";

/** How the parent configures a peer. */
export interface PeerConfig {
  /**
   * The subprotocols the peer accepts: it answers with the first protocol of the client's offer
   * that is in this list (the client's order of preference), and with none when none is.
   */
  protocols: string[];
  /** Negotiate permessage-deflate when the client offers it (and compress what it echoes). */
  deflate: boolean;
  /** Serve wss:// with this PEM certificate and key; plain ws:// when absent. */
  tls?: { cert: string; key: string };
  /** Refuse every upgrade with this response instead of accepting it. */
  refuse?: { status: number; body: string; headers: Record<string, string> };
  /** A text message sent as soon as a connection opens (it may arrive with the 101). */
  greet?: string;
}

/** What a peer reports on its stdout, one `event JSON` line each. */
export type PeerEvent =
  | {
    type: "open";
    /** The request target (path and query). */
    path: string;
    /** The subprotocol the peer chose, "" for none. */
    protocol: string;
    /** The request's headers, names lower-cased, repeated ones joined with ", ". */
    headers: Record<string, string>;
  }
  | { type: "refused"; path: string; status: number }
  | {
    type: "close";
    /** The code the peer's implementation reports (1005 when the Close frame had none). */
    code: number;
    reason: string;
  };

/**
 * The peer's configuration, from the JSON after `--config`.
 *
 * @returns The configuration.
 */
export function readConfig(): PeerConfig {
  const at = process.argv.indexOf("--config");
  if (at === -1 || at + 1 >= process.argv.length) {
    throw new TypeError("Cannot start the peer: --config JSON is missing");
  }
  return JSON.parse(process.argv[at + 1]) as PeerConfig;
}

/**
 * The subprotocol to answer with: the first of the client's offer that the peer accepts.
 *
 * @param offer The request's Sec-WebSocket-Protocol value, or null.
 * @param accepted The peer's {@linkcode PeerConfig.protocols}.
 * @returns The protocol, or undefined for none.
 */
export function chooseProtocol(offer: string | null, accepted: string[]): string | undefined {
  if (offer === null) return undefined;
  return offer.split(",").map((p) => p.trim()).find((p) => accepted.includes(p));
}

/**
 * Whether a text message is the `!close` command, and with what.
 *
 * @param text The message.
 * @returns The code (undefined: close with no code) and reason, or undefined for a message to
 *   echo.
 */
export function closeCommand(text: string): { code?: number; reason: string } | undefined {
  const match = /^!close(?: (\d+)(?: (.*))?)?$/s.exec(text);
  if (match === null) return undefined;
  return { code: match[1] === undefined ? undefined : Number(match[1]), reason: match[2] ?? "" };
}

/**
 * A request's headers as a plain object (lower-cased names).
 *
 * @param headers The headers.
 * @returns The object.
 */
export function headerObject(headers: Headers): Record<string, string> {
  return Object.fromEntries(headers.entries());
}

/**
 * Prints an event for the parent.
 *
 * @param event The event.
 */
export function report(event: PeerEvent): void {
  console.log(`event ${JSON.stringify(event)}`);
}

/**
 * Exits when stdin ends: the parent holds its other end, so the peer never outlives it.
 */
export function exitWithParent(): void {
  const exit = () => process.exit(0);
  process.stdin.on("end", exit);
  process.stdin.on("close", exit);
  process.stdin.resume();
}
