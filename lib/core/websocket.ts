/**
 * One WebSocket connection as application code sees it, for both roles: sending (with its
 * status under backpressure), flow control, pings, closing.
 *
 * @module
 */
import { Opcode } from "../protocol/opcode.ts";
import { OPEN, type Protocol } from "../protocol/protocol.ts";

/**
 * What {@linkcode ServerWebSocket.send} did with a message.
 *
 * @example
 * ```ts
 * import { SendStatus, serve } from "@sluice/ws";
 * const server = serve({
 *   port: 0,
 *   async open(ws) {
 *     for (let i = 0; i < 1000; i++) {
 *       if (ws.send(`update ${i}`) === SendStatus.Backpressure) await ws.flushed();
 *     }
 *   },
 * });
 * await server.shutdown();
 * ```
 */
export const SendStatus = {
  /** Framed and corked; the socket was keeping up. */
  Sent: 1,
  /**
   * Queued behind data the socket has not taken yet, or past 64 KiB sent in this tick: slow
   * down, or `await ws.flushed()`.
   */
  Backpressure: -1,
  /**
   * Not sent: more than `maxBackpressure` bytes were already queued, or the connection is
   * closing or closed (`readyState` tells which).
   */
  Dropped: 0,
} as const;

/** One of {@linkcode SendStatus}'s values. */
export type SendStatus = typeof SendStatus[keyof typeof SendStatus];

/** What a {@linkcode BaseWebSocket} needs from the connection that drives it. */
export interface WebSocketDriver {
  /** The protocol state. */
  readonly protocolState: Protocol;
  /** Bytes queued and not yet handed to the operating system. */
  readonly bufferedAmount: number;
  /** The last heartbeat round trip, in ms. */
  readonly latency: number | undefined;
  /** Data messages dropped by the backpressure policy. */
  readonly droppedMessages: number;
  /** Messages from the peer over its rate limits. */
  readonly rateLimitedMessages: number;
  /** Sends a data message under the backpressure policy. */
  sendMessage(data: string | Uint8Array, owned: boolean, compress?: boolean): SendStatus;
  /** Resolves when nothing is queued any more (or the connection is gone). */
  flushed(): Promise<void>;
  /** Stops reading and delivering messages. */
  pause(): void;
  /** Bytes queued, for a streaming sender that waits for room. */
  readonly isBackedUp: boolean;
  /** Reads and delivers again. */
  resume(): void;
  /** Whether reading is paused. */
  readonly isPaused: boolean;
  /** Starts the closing handshake and its timeout. */
  startClose(code?: number, reason?: string): void;
  /** Drops the TCP connection now. */
  terminate(): void;
  /** Resolves with the close code and reason once the connection is closed. */
  whenClosed(): Promise<CloseInfo>;
}

/** Fixed facts about a connection, settled by the handshake. */
export interface WebSocketInit {
  /** The negotiated subprotocol, `""` if none. */
  protocol: string;
  /** The negotiated extensions, as in the response's Sec-WebSocket-Extensions (`""` if none). */
  extensions: string;
  /** The peer's IP address (on a server, the client's: the one trusted proxies forwarded for). */
  remoteAddress: string;
  /** The peer's port. */
  remotePort: number;
}

const encoder = new TextEncoder();
const EMPTY = new Uint8Array(0);

/** Payloads the server may keep by reference: from this size on, sends do not copy. */
const BY_REFERENCE = 16 * 1024;

/**
 * The driver of a WebSocket, for the role's subclasses (a server's topics).
 *
 * @param ws The WebSocket.
 * @returns Its connection.
 */
export let driverOf: (ws: BaseWebSocket) => WebSocketDriver;

/**
 * One open WebSocket connection, of either role: what sending, receiving, flow control, pings
 * and closing do is the same on a server ({@linkcode ServerWebSocket}, which adds per-connection
 * data and topics) and on a client (`ClientWebSocket`, which adds the URL).
 *
 * @example
 * ```ts
 * import { serve } from "@sluice/ws";
 * const server = serve({
 *   port: 0,
 *   message(ws, data) {
 *     ws.send(data); // echo, as text or binary as it came
 *   },
 * });
 * await server.shutdown();
 * ```
 */
export class BaseWebSocket {
  #driver: WebSocketDriver;
  /** The negotiated subprotocol, `""` if none. */
  readonly protocol: string;
  /** The negotiated extensions, such as `"permessage-deflate; server_no_context_takeover"`. */
  readonly extensions: string;
  /**
   * The peer's IP address. On a server, the client's: the TCP peer's or, with the `trustProxy`
   * option, the address the trusted proxies forwarded for.
   */
  readonly remoteAddress: string;
  /** The TCP peer's port. */
  readonly remotePort: number;

  static {
    driverOf = (ws) => ws.#driver;
  }

  /**
   * Made by the connection when a handshake completes.
   *
   * Not public API: its parameters are internal types. Connections make it.
   *
   * @param driver The connection.
   * @param init What the handshake settled.
   *
   * @ignore
   */
  constructor(driver: WebSocketDriver, init: WebSocketInit) {
    this.#driver = driver;
    this.protocol = init.protocol;
    this.extensions = init.extensions;
    this.remoteAddress = init.remoteAddress;
    this.remotePort = init.remotePort;
  }

  /** 1 (OPEN), 2 (CLOSING: our Close frame is out) or 3 (CLOSED), as in the WHATWG API. */
  get readyState(): number {
    return this.#driver.protocolState.readyState;
  }

  /** Bytes sent by the application and not yet handed to the operating system. */
  get bufferedAmount(): number {
    return this.#driver.bufferedAmount;
  }

  /**
   * The round trip of the last answered heartbeat ping, in ms (`undefined` before the first).
   * Pings go out after `heartbeat.interval` ms of silence from the peer.
   */
  get latency(): number | undefined {
    return this.#driver.latency;
  }

  /**
   * Sends a message: a string as text, bytes as binary. Messages sent in one tick leave in one
   * socket write. A Uint8Array of 16 KiB or more is sent by reference, as Node's
   * `socket.write` does: do not change it afterwards.
   *
   * @param data The message.
   * @param compress With permessage-deflate: `true` compresses, `false` does not; by default
   * messages from the threshold on are compressed.
   * @returns `SendStatus.Sent`, `SendStatus.Backpressure` (queued behind data the socket has not
   * taken: the `drain` handler or `flushed()` tells when it has), or `SendStatus.Dropped` (the
   * backlog was over `maxBackpressure`, or the connection is closing or closed: nothing more
   * can go out, and that is no error, as in Bun, ws and browsers).
   *
   * @example
   * ```ts
   * import { serve } from "@sluice/ws";
   * const server = serve({ port: 0, open(ws) { ws.send("hello"); } });
   * await server.shutdown();
   * ```
   */
  send(
    data: string | Uint8Array | ArrayBuffer | ArrayBufferView,
    compress?: boolean,
  ): SendStatus {
    if (typeof data === "string") return this.#driver.sendMessage(data, false, compress);
    const bytes = toBytes(data, "send");
    return this.#driver.sendMessage(bytes, bytes.length >= BY_REFERENCE, compress);
  }

  /**
   * Sends a text message.
   *
   * @param text The message.
   * @param compress As for {@linkcode BaseWebSocket.send}.
   * @returns As for {@linkcode BaseWebSocket.send}.
   */
  sendText(text: string, compress?: boolean): SendStatus {
    return this.#driver.sendMessage(String(text), false, compress);
  }

  /**
   * Sends a binary message.
   *
   * @param data The message.
   * @param compress As for {@linkcode BaseWebSocket.send}.
   * @returns As for {@linkcode BaseWebSocket.send}.
   */
  sendBinary(
    data: Uint8Array | ArrayBuffer | ArrayBufferView,
    compress?: boolean,
  ): SendStatus {
    const bytes = toBytes(data, "send");
    return this.#driver.sendMessage(bytes, bytes.length >= BY_REFERENCE, compress);
  }

  /**
   * Sends one message as a stream of fragments, chunk by chunk as `source` yields them, so a
   * large message is never held whole. Waits for room when the connection is backed up. Other
   * messages sent meanwhile follow the stream (fragments of one message may not be interleaved
   * with others, RFC 6455 §5.4). Fragments are sent uncompressed. If `source` fails, the
   * message cannot be finished: the connection is closed with 1011 and the promise rejects.
   * Closing the connection while a stream is being sent ends it there: the messages waiting
   * behind it are dropped.
   *
   * @param source The message's bytes (or, for text, strings or UTF-8 bytes).
   * @param options `binary: false` sends a text message. @default {{ binary: true }}
   * @returns A promise that resolves when the last fragment is queued, and rejects with a
   * `TypeError` if the connection was closing or closed when the stream began (a stream is not
   * dropped like a message: its source would be left half-read).
   *
   * @example
   * ```ts
   * import { serve } from "@sluice/ws";
   * const server = serve({
   *   port: 0,
   *   async open(ws) {
   *     async function* rows() {
   *       for (let i = 0; i < 3; i++) yield `row ${i}\n`;
   *     }
   *     await ws.sendStream(rows(), { binary: false });
   *   },
   * });
   * await server.shutdown();
   * ```
   */
  async sendStream(
    source: AsyncIterable<Uint8Array | string> | ReadableStream<Uint8Array | string>,
    options: { binary?: boolean } = {},
  ): Promise<void> {
    const protocol = this.#driver.protocolState;
    protocol.startStream(options.binary ?? true);
    let previous: Uint8Array | undefined;
    let finished = false;
    try {
      for await (const chunk of source as AsyncIterable<Uint8Array | string>) {
        const bytes = typeof chunk === "string" ? encoder.encode(chunk) : toBytes(chunk, "send");
        if (bytes.length === 0) continue;
        // Hold one chunk back: only the source's end tells which fragment is the last.
        if (previous !== undefined) {
          protocol.sendFragment(previous, previous.length >= BY_REFERENCE, false);
          if (this.#driver.isBackedUp) await this.#driver.flushed();
        }
        previous = bytes;
      }
      const last = previous ?? EMPTY;
      protocol.sendFragment(last, last.length >= BY_REFERENCE, true);
      finished = true;
    } finally {
      protocol.endStream();
      if (!finished && protocol.readyState === 1) {
        this.#driver.startClose(1011);
      }
    }
  }

  /**
   * Resolves when everything sent so far has been handed to the operating system (at once if
   * nothing is queued; also when the connection closes). For producers that want to wait for
   * room instead of dropping.
   *
   * @returns A promise that resolves when the queue is empty.
   */
  flushed(): Promise<void> {
    return this.#driver.flushed();
  }

  /**
   * Stops reading from this connection: no `message` (or ping, pong, close) handler runs for
   * it until {@linkcode BaseWebSocket.resume}, and what the peer sends waits in its TCP
   * buffers, so a busy application is not flooded. A message already being delivered
   * finishes. Heartbeats are suspended while paused (pongs could not be read).
   *
   * @example
   * ```ts
   * import { serve } from "@sluice/ws";
   * const server = serve({
   *   port: 0,
   *   async message(ws, data) {
   *     ws.pause();
   *     await Promise.resolve(data); // slow work, such as a database write
   *     ws.resume();
   *   },
   * });
   * await server.shutdown();
   * ```
   */
  pause(): void {
    this.#driver.pause();
  }

  /** Starts reading again after {@linkcode BaseWebSocket.pause}. */
  resume(): void {
    this.#driver.resume();
  }

  /** Whether reading is paused. */
  get isPaused(): boolean {
    return this.#driver.isPaused;
  }

  /** Data messages dropped so far because more than `maxBackpressure` bytes were queued. */
  get droppedMessages(): number {
    return this.#driver.droppedMessages;
  }

  /**
   * Messages (and pings) from the peer that went over the `rateLimit` option's rates: dropped
   * under policy `"drop"`, the cause of the 1008 close under `"close"`.
   */
  get rateLimitedMessages(): number {
    return this.#driver.rateLimitedMessages;
  }

  /**
   * Sends a ping; the peer answers with a pong (the `pong` handler).
   *
   * Once the connection is closing or closed, nothing is sent (and nothing is thrown).
   *
   * @param data At most 125 bytes (a string is sent as its UTF-8).
   * @throws {RangeError} When the payload is over 125 bytes.
   */
  ping(data?: string | Uint8Array): void {
    this.#control(Opcode.Ping, data);
  }

  /**
   * Sends an unsolicited pong (a one-way heartbeat, RFC 6455 §5.5.3).
   *
   * Once the connection is closing or closed, nothing is sent.
   *
   * @param data At most 125 bytes.
   * @throws {RangeError} When the payload is over 125 bytes.
   */
  pong(data?: string | Uint8Array): void {
    this.#control(Opcode.Pong, data);
  }

  #control(opcode: typeof Opcode.Ping | typeof Opcode.Pong, data?: string | Uint8Array): void {
    const payload = controlPayload(data);
    const protocol = this.#driver.protocolState;
    // Closing or closed: nothing goes out, but a payload over 125 bytes is still refused.
    if (protocol.readyState === OPEN || payload.length > 125) protocol.sendControl(opcode, payload);
  }

  /**
   * Starts the closing handshake. The `close` handler runs when the peer answers, or after the
   * close timeout, when the connection is dropped. Does nothing if closing already.
   *
   * @param code 1000–1003, 1007–1014 or 3000–4999; none sends an empty Close frame.
   * @param reason At most 123 bytes of UTF-8.
   * @throws {RangeError} When the code may not be sent or the reason is too long.
   *
   * @example
   * ```ts
   * import { serve } from "@sluice/ws";
   * const server = serve({ port: 0, open(ws) { ws.close(4000, "go away"); } });
   * await server.shutdown();
   * ```
   */
  close(code?: number, reason?: string): void {
    this.#driver.startClose(code, reason);
  }

  /** Drops the TCP connection at once, without a closing handshake (the peer sees 1006). */
  terminate(): void {
    this.#driver.terminate();
  }

  /**
   * Resolves with the close code and reason once the connection is closed: the closing
   * handshake completed (the peer's code, 1005 if it sent none), the connection failed (the
   * code it failed with), or the TCP connection ended without a handshake (1006).
   *
   * @example
   * ```ts
   * import { serve } from "@sluice/ws";
   * const server = serve({
   *   port: 0,
   *   async open(ws) {
   *     const { code } = await ws.closed;
   *     console.log("closed with", code);
   *   },
   * });
   * await server.shutdown();
   * ```
   */
  get closed(): Promise<CloseInfo> {
    return this.#driver.whenClosed();
  }
}

/**
 * How a connection closed: see {@linkcode BaseWebSocket.closed}.
 *
 * @example
 * ```ts
 * import { type CloseInfo, connect, serve } from "@sluice/ws";
 * const server = serve({ port: 0, open: (ws) => ws.close(4000, "go away") });
 * const client = await connect(`ws://127.0.0.1:${server.port}/`);
 * const info: CloseInfo = await client.closed;
 * console.log(info); // { code: 4000, reason: "go away" }
 * await server.shutdown();
 * ```
 */
export interface CloseInfo {
  /** The close code. */
  code: number;
  /** The reason (`""` if none). */
  reason: string;
}

/**
 * A message's bytes as a Uint8Array (a view, no copy).
 *
 * @param data Bytes in any of the forms `send` takes.
 * @param what The operation, for the error message.
 * @returns A view of the same memory.
 * @throws {TypeError} For anything else.
 */
export function toBytes(
  data: Uint8Array | ArrayBuffer | ArrayBufferView,
  what: string,
): Uint8Array {
  if (data instanceof Uint8Array) return data;
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (ArrayBuffer.isView(data)) {
    return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  }
  throw new TypeError(
    `Cannot ${what}: expected a string, Uint8Array, ArrayBuffer or ArrayBufferView`,
  );
}

function controlPayload(data: string | Uint8Array | undefined): Uint8Array {
  if (data === undefined) return EMPTY;
  return typeof data === "string" ? encoder.encode(data) : data;
}
