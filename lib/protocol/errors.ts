/**
 * Close codes (RFC 6455 §7.4) and the errors that peer input causes.
 *
 * @module
 */

/**
 * Close codes of RFC 6455 §7.4.1 and the IANA registry.
 *
 * `NoStatusReceived` (1005), `AbnormalClosure` (1006) and `TlsHandshake` (1015) are only ever
 * reported locally: RFC 6455 §7.4.1 forbids sending them in a Close frame.
 *
 * @example
 * ```ts
 * import { CloseCode } from "@sluice/ws";
 * console.log(CloseCode.Normal); // 1000
 * ```
 */
export const CloseCode = {
  /** 1000: the purpose of the connection was fulfilled. */
  Normal: 1000,
  /** 1001: the server is going down or the browser is leaving the page. */
  GoingAway: 1001,
  /** 1002: the peer broke the protocol. */
  ProtocolError: 1002,
  /** 1003: a data type the endpoint cannot accept. */
  UnsupportedData: 1003,
  /** 1005: the Close frame carried no code (never sent). */
  NoStatusReceived: 1005,
  /** 1006: the connection closed without a Close frame (never sent). */
  AbnormalClosure: 1006,
  /** 1007: data inconsistent with the message type, such as invalid UTF-8 in a text message. */
  InvalidPayload: 1007,
  /** 1008: a message violated the endpoint's policy. */
  PolicyViolation: 1008,
  /** 1009: a message too big to process. */
  MessageTooBig: 1009,
  /** 1010: the client expected an extension the server did not negotiate. */
  MandatoryExtension: 1010,
  /** 1011: the server hit an unexpected condition. */
  InternalError: 1011,
  /** 1012: the service is restarting. */
  ServiceRestart: 1012,
  /** 1013: try again later (temporary overload). */
  TryAgainLater: 1013,
  /** 1014: a gateway received an invalid response upstream. */
  BadGateway: 1014,
  /** 1015: the TLS handshake failed (never sent). */
  TlsHandshake: 1015,
} as const;

/**
 * The stable codes of {@linkcode WebSocketError}, with the close code each causes.
 *
 * @example
 * ```ts
 * import { ErrorCodes } from "@sluice/ws";
 * console.log(ErrorCodes.WS_ERR_INVALID_UTF8); // 1007
 * ```
 */
export const ErrorCodes = {
  /** A client frame arrived without a mask (RFC 6455 §5.1). */
  WS_ERR_UNMASKED_FRAME: 1002,
  /** A server frame arrived with a mask (RFC 6455 §5.1). */
  WS_ERR_MASKED_FRAME: 1002,
  /** RSV bits set that no negotiated extension defines (RFC 6455 §5.2). */
  WS_ERR_RESERVED_BITS: 1002,
  /** An opcode RFC 6455 §5.2 reserves. */
  WS_ERR_INVALID_OPCODE: 1002,
  /** A control frame with more than 125 bytes of payload (RFC 6455 §5.5). */
  WS_ERR_CONTROL_FRAME_TOO_LONG: 1002,
  /** A control frame without FIN (RFC 6455 §5.5). */
  WS_ERR_FRAGMENTED_CONTROL_FRAME: 1002,
  /** A 64-bit payload length with its most significant bit set (RFC 6455 §5.2). */
  WS_ERR_INVALID_LENGTH: 1002,
  /** A continuation frame with no message to continue (RFC 6455 §5.4). */
  WS_ERR_UNEXPECTED_CONTINUATION: 1002,
  /** A new data frame while a fragmented message was still open (RFC 6455 §5.4). */
  WS_ERR_EXPECTED_CONTINUATION: 1002,
  /** A Close frame whose payload is one byte, or whose code is not allowed (RFC 6455 §7.4). */
  WS_ERR_INVALID_CLOSE_CODE: 1002,
  /** A text message or close reason that is not valid UTF-8 (RFC 6455 §8.1). */
  WS_ERR_INVALID_UTF8: 1007,
  /** A compressed message that does not inflate (RFC 7692 §7.2.2). */
  WS_ERR_INFLATE: 1007,
  /** Our own compression failed: the connection is closed with 1011. */
  WS_ERR_DEFLATE: 1011,
  /** A message in more frames than the configured limit. */
  WS_ERR_TOO_MANY_FRAGMENTS: 1008,
  /** More pings and pongs from the peer than the configured rate allows. */
  WS_ERR_CONTROL_FLOOD: 1008,
  /** The peer answered no ping within the heartbeat timeout: the connection is dropped. */
  WS_ERR_HEARTBEAT_TIMEOUT: 1006,
  /** A message larger than the configured limit. */
  WS_ERR_MESSAGE_TOO_BIG: 1009,
  /** An application handler threw: the connection is closed with 1011. */
  WS_ERR_HANDLER: 1011,
  /** The peer did not answer our Close frame in time. */
  WS_ERR_CLOSE_TIMEOUT: 1006,
  /** The TCP connection broke or ended before the closing handshake. */
  WS_ERR_CONNECTION_LOST: 1006,
  /**
   * A connection dropped its first message to `maxBackpressure` (reported once per connection).
   * Under the policy `"drop"` it stays open; under `"close"` it is closed with this code.
   */
  WS_ERR_BACKPRESSURE_DROP: 1008,
  /** The server answered the opening handshake with a status other than 101 (RFC 6455 §4.1). */
  WS_ERR_HANDSHAKE_REFUSED: 1006,
  /** The server's answer is not a well-formed HTTP/1.1 or HTTP/1.0 response head (RFC 9112). */
  WS_ERR_HANDSHAKE_BAD_RESPONSE: 1006,
  /** The server's response head went over a configured limit. */
  WS_ERR_HANDSHAKE_TOO_LARGE: 1006,
  /** The connection ended before the server's response head was complete. */
  WS_ERR_HANDSHAKE_INCOMPLETE: 1006,
  /** A 101 response without `Upgrade: websocket` or `Connection: upgrade` (RFC 6455 §4.1). */
  WS_ERR_HANDSHAKE_UPGRADE: 1006,
  /** A 101 response whose Sec-WebSocket-Accept is missing or wrong (RFC 6455 §4.1). */
  WS_ERR_HANDSHAKE_ACCEPT: 1006,
  /** A 101 response with a subprotocol the client did not offer (RFC 6455 §4.1). */
  WS_ERR_HANDSHAKE_SUBPROTOCOL: 1006,
  /** A 101 response with extensions the client did not offer, or cannot accept (RFC 6455 §4.1). */
  WS_ERR_HANDSHAKE_EXTENSION: 1006,
  /** The TCP (or TLS) connection to the server could not be opened; `cause` says why. */
  WS_ERR_CONNECT: 1006,
  /** The connection and the opening handshake did not complete within `handshakeTimeout`. */
  WS_ERR_HANDSHAKE_TIMEOUT: 1006,
} as const;

/**
 * A stable error code string, such as `"WS_ERR_INVALID_UTF8"`.
 *
 * @example
 * ```ts
 * import { type ErrorCode, ErrorCodes } from "@sluice/ws";
 * const code: ErrorCode = "WS_ERR_INVALID_UTF8";
 * console.log(ErrorCodes[code]); // 1007: the close code it fails a connection with
 * ```
 */
export type ErrorCode = keyof typeof ErrorCodes;

/**
 * Why a connection was failed. Peer input never throws out of the protocol core: it becomes a
 * `WebSocketError`, reported to the application, whose `closeCode` is sent in the Close frame.
 *
 * @example
 * ```ts
 * import { WebSocketError } from "@sluice/ws";
 * const error = new WebSocketError("WS_ERR_INVALID_UTF8", "Invalid UTF-8 in a text message");
 * console.log(error.code, error.closeCode); // WS_ERR_INVALID_UTF8 1007
 * ```
 */
export class WebSocketError extends Error {
  /** The stable code, for programs. */
  readonly code: ErrorCode;
  /** The close code this error causes (RFC 6455 §7.4.1). */
  readonly closeCode: number;

  /**
   * Makes an error.
   *
   * @param code The stable code; it decides `closeCode`.
   * @param message What happened, for people.
   * @param options The standard `cause`.
   */
  constructor(code: ErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "WebSocketError";
    this.code = code;
    this.closeCode = ErrorCodes[code];
  }
}

/**
 * What a {@linkcode HandshakeError} knows of the server's response, and the standard `cause`.
 *
 * @example
 * ```ts
 * import { HandshakeError } from "./errors.ts";
 * const error = new HandshakeError("WS_ERR_HANDSHAKE_REFUSED", "Refused", { status: 404 });
 * console.log(error.status, error.body.length); // 404 0
 * ```
 */
export interface HandshakeErrorOptions extends ErrorOptions {
  /** The status code, or 0 when no valid status line arrived. @default {0} */
  status?: number;
  /** The response's header fields: names lower-cased, in arrival order. @default {[]} */
  headers?: Array<[name: string, value: string]>;
  /**
   * Bytes that followed the head of a refusal: the start of its body, or all of it.
   * @default {new Uint8Array(0)}
   */
  body?: Uint8Array;
}

/**
 * Why a client's opening handshake failed (RFC 6455 §4.1): the server refused it
 * (`WS_ERR_HANDSHAKE_REFUSED`, with the status, headers and the body bytes that arrived), or
 * its answer broke the rules. No Close frame is ever sent for it: `closeCode` is 1006.
 *
 * @example
 * ```ts
 * import { HandshakeError } from "./errors.ts";
 * const error = new HandshakeError("WS_ERR_HANDSHAKE_REFUSED", "Refused: 403 Forbidden", {
 *   status: 403,
 *   headers: [["content-type", "text/plain"]],
 *   body: new TextEncoder().encode("go away"),
 * });
 * console.log(error.code, error.status, error.closeCode); // WS_ERR_HANDSHAKE_REFUSED 403 1006
 * ```
 */
export class HandshakeError extends WebSocketError {
  /** The response's status code, or 0 when no valid status line arrived. */
  readonly status: number;
  /** The response's header fields (names lower-cased), empty when the head did not parse. */
  readonly headers: Array<[name: string, value: string]>;
  /** Bytes that followed a refusal's head: the start of its body, or all of it. */
  readonly body: Uint8Array;

  /**
   * Makes an error.
   *
   * @param code The stable code, one of the `WS_ERR_HANDSHAKE_*` codes.
   * @param message What happened, for people.
   * @param options What is known of the response, and the standard `cause`.
   */
  constructor(code: ErrorCode, message: string, options?: HandshakeErrorOptions) {
    super(code, message, options);
    this.name = "HandshakeError";
    this.status = options?.status ?? 0;
    this.headers = options?.headers ?? [];
    this.body = options?.body ?? new Uint8Array(0);
  }
}
