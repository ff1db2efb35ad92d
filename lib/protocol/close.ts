/**
 * Close frame payloads (RFC 6455 §5.5.1, §7.4).
 *
 * @module
 */
import { WebSocketError } from "./errors.ts";
import { decodeUtf8 } from "./utf8.ts";

/** The most bytes a close reason may take: 125 bytes of control payload less the 2-byte code. */
export const MAX_CLOSE_REASON_BYTES = 123;

/**
 * Whether `code` may appear in a Close frame on the wire (RFC 6455 §7.4.1, §7.4.2):
 * 1000–1003, 1007–1014 and 3000–4999. 1004 is reserved; 1005, 1006 and 1015 are for local use
 * only; 1016–2999 are reserved for future RFCs.
 *
 * @param code The close code.
 * @returns `true` if the code may be sent or received.
 *
 * @example
 * ```ts
 * import { isValidCloseCode } from "@sluice/ws";
 * console.log(isValidCloseCode(1000), isValidCloseCode(1005)); // true false
 * ```
 */
export function isValidCloseCode(code: number): boolean {
  return Number.isInteger(code) &&
    ((code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
      (code >= 3000 && code <= 4999));
}

/** A close code and reason, as read from a Close frame. */
export interface ClosePayload {
  /** The code; 1005 (no status) when the frame had no payload. */
  code: number;
  /** The reason, `""` when absent. */
  reason: string;
}

/**
 * Reads a Close frame's payload.
 *
 * @param payload The unmasked payload (at most 125 bytes; the frame parser enforces that).
 * @returns The code and reason, or the error that fails the connection: a 1-byte payload or a
 * code that may not be sent is a protocol error (1002); a reason that is not UTF-8 is 1007.
 *
 * @example
 * ```ts
 * import { parseClosePayload } from "./close.ts";
 * const result = parseClosePayload(new Uint8Array([0x03, 0xe8, 0x68, 0x69]));
 * console.log(result); // { code: 1000, reason: "hi" }
 * ```
 */
export function parseClosePayload(payload: Uint8Array): ClosePayload | WebSocketError {
  if (payload.length === 0) return { code: 1005, reason: "" };
  if (payload.length === 1) {
    return new WebSocketError(
      "WS_ERR_INVALID_CLOSE_CODE",
      "Invalid close frame: a 1-byte payload has no room for a close code",
    );
  }
  const code = (payload[0] << 8) | payload[1];
  if (!isValidCloseCode(code)) {
    return new WebSocketError(
      "WS_ERR_INVALID_CLOSE_CODE",
      `Invalid close frame: close code ${code} may not be sent`,
    );
  }
  if (payload.length === 2) return { code, reason: "" };
  const reason = decodeUtf8(payload.subarray(2));
  if (reason === undefined) {
    return new WebSocketError(
      "WS_ERR_INVALID_UTF8",
      "Invalid close frame: the reason is not UTF-8",
    );
  }
  return { code, reason };
}

const encoder = new TextEncoder();

/**
 * Builds a Close frame's payload, checking what the caller asks for.
 *
 * @param code The close code, or `undefined` for an empty payload (then `reason` must be empty).
 * @param reason The reason; at most 123 bytes of UTF-8.
 * @returns The payload bytes.
 * @throws {RangeError} When the code may not be sent, or the reason is too long.
 * @throws {TypeError} When a reason is given without a code.
 *
 * @example
 * ```ts
 * import { encodeClosePayload } from "./close.ts";
 * console.log(encodeClosePayload(1000, "bye")); // Uint8Array(5) [3, 232, 98, 121, 101]
 * ```
 */
export function encodeClosePayload(code?: number, reason = ""): Uint8Array {
  if (code === undefined) {
    if (reason !== "") throw new TypeError("Cannot close: a reason needs a close code");
    return new Uint8Array(0);
  }
  if (!isValidCloseCode(code)) {
    throw new RangeError(
      `Cannot close: close code ${code} may not be sent (use 1000-1003, 1007-1014 or 3000-4999)`,
    );
  }
  const bytes = encoder.encode(reason);
  if (bytes.length > MAX_CLOSE_REASON_BYTES) {
    throw new RangeError(
      `Cannot close: the reason takes ${bytes.length} bytes of UTF-8, more than ${MAX_CLOSE_REASON_BYTES}`,
    );
  }
  const payload = new Uint8Array(2 + bytes.length);
  payload[0] = code >> 8;
  payload[1] = code & 0xff;
  payload.set(bytes, 2);
  return payload;
}
