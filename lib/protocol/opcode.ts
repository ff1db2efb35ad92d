/**
 * Frame opcodes (RFC 6455 §5.2, §11.8).
 *
 * @module
 */

/**
 * The opcodes RFC 6455 defines; the others (3–7, 11–15) are reserved and fail the connection.
 *
 * @example
 * ```ts
 * import { Opcode } from "@sluice/ws";
 * console.log(Opcode.Text, Opcode.Close); // 1 8
 * ```
 */
export const Opcode = {
  /** Continues a fragmented message. */
  Continuation: 0x0,
  /** The first frame of a text message. */
  Text: 0x1,
  /** The first frame of a binary message. */
  Binary: 0x2,
  /** Starts the closing handshake. */
  Close: 0x8,
  /** Asks for a pong. */
  Ping: 0x9,
  /** Answers a ping, or is a unidirectional heartbeat. */
  Pong: 0xa,
} as const;
