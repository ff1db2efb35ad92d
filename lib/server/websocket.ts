/**
 * The server side of one WebSocket connection, as application code sees it: the shared
 * {@linkcode BaseWebSocket} with the upgrade hook's data and topics.
 *
 * @module
 */
import {
  BaseWebSocket,
  driverOf,
  toBytes,
  type WebSocketDriver,
  type WebSocketInit,
} from "../core/websocket.ts";
import { PreparedMessage } from "../protocol/prepared_message.ts";

/** What a {@linkcode ServerWebSocket} needs from its connection beyond the shared driver. */
export interface ServerWebSocketDriver extends WebSocketDriver {
  /** Joins a topic. */
  subscribe(topic: string): void;
  /** Leaves a topic. */
  unsubscribe(topic: string): void;
  /** Whether it is subscribed to a topic. */
  isSubscribed(topic: string): boolean;
  /** Its topics. */
  readonly topics: string[];
  /** Publishes to a topic, skipping this connection unless `includeSelf`. */
  publish(
    topic: string,
    message: PreparedMessage,
    compress: boolean | undefined,
    includeSelf: boolean,
  ): number;
}

/**
 * How {@linkcode ServerWebSocket.publish} and `server.publish` send a message.
 *
 * @example
 * ```ts
 * import { connect, serve } from "@sluice/ws";
 * const server = serve({
 *   port: 0,
 *   open(ws) {
 *     ws.subscribe("room");
 *   },
 *   message(ws, data) {
 *     // To every subscriber, the sender included; compressed only if negotiated.
 *     const reached = ws.publish("room", data, { includeSelf: true, compress: true });
 *     console.log(`reached ${reached}`); // reached 2
 *   },
 * });
 * const url = `ws://127.0.0.1:${server.port}/`;
 * const got: string[] = [];
 * const clients = await Promise.all([
 *   connect(url, { message: (_ws, data) => void got.push(`a: ${data}`) }),
 *   connect(url, { message: (_ws, data) => void got.push(`b: ${data}`) }),
 * ]);
 * clients[0].send("hi all");
 * while (got.length < 2) await new Promise((resolve) => setTimeout(resolve, 5));
 * console.log(got.sort()); // [ "a: hi all", "b: hi all" ]
 * for (const client of clients) client.close();
 * await server.shutdown();
 * ```
 */
export interface PublishOptions {
  /** As for {@linkcode ServerWebSocket.send}: compress, or not; by default from the threshold
   * on. @default {undefined} */
  compress?: boolean;
  /** `ws.publish` only: the sender gets the message too, if it is subscribed.
   * @default {false} */
  includeSelf?: boolean;
}

/**
 * One open WebSocket connection on the server. `T` is the type of {@linkcode ServerWebSocket.data}.
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
export class ServerWebSocket<T = undefined> extends BaseWebSocket {
  /** The data the upgrade hook attached. */
  readonly data: T;

  /**
   * Made by the server when a handshake completes.
   *
   * Not public API: its parameters are internal types. The server makes it.
   *
   * @param driver The connection.
   * @param init What the handshake settled.
   * @param data The upgrade hook's per-connection data.
   *
   * @ignore
   */
  constructor(driver: ServerWebSocketDriver, init: WebSocketInit, data: T) {
    super(driver, init);
    this.data = data;
  }

  #server(): ServerWebSocketDriver {
    return driverOf(this) as ServerWebSocketDriver;
  }

  /**
   * Subscribes this connection to a topic: it gets what is published to it (`server.publish`,
   * `ws.publish`) until it unsubscribes or closes. Subscribing twice is the same as once; a
   * closed connection cannot subscribe (nothing happens).
   *
   * @param topic Any string.
   *
   * @example
   * ```ts
   * import { serve } from "@sluice/ws";
   * const server = serve({
   *   port: 0,
   *   open(ws) {
   *     ws.subscribe("chat");
   *   },
   *   message(ws, data) {
   *     ws.publish("chat", data); // to everyone in "chat" but the sender
   *   },
   * });
   * await server.shutdown();
   * ```
   */
  subscribe(topic: string): void {
    this.#server().subscribe(topicName(topic, "subscribe"));
  }

  /**
   * Unsubscribes from a topic (nothing happens if not subscribed).
   *
   * @param topic The topic.
   */
  unsubscribe(topic: string): void {
    this.#server().unsubscribe(topicName(topic, "unsubscribe"));
  }

  /**
   * Whether this connection is subscribed to a topic.
   *
   * @param topic The topic.
   * @returns `true` if subscribed.
   */
  isSubscribed(topic: string): boolean {
    return this.#server().isSubscribed(topic);
  }

  /** The topics this connection is subscribed to (a copy). */
  get topics(): string[] {
    return this.#server().topics;
  }

  /**
   * Publishes a message to every subscriber of a topic but this connection (unless
   * `includeSelf`). The message is framed once, compressed at most once per compression
   * setting that allows it, and the same bytes go to every subscriber; a subscriber over
   * `maxBackpressure` gets its backpressure policy.
   *
   * @param topic The topic.
   * @param data A string as text, bytes as binary (copied: they may be reused at once).
   * @param options `compress` and `includeSelf`.
   * @returns How many connections the message reached (sent or queued, not dropped).
   */
  publish(
    topic: string,
    data: string | Uint8Array | ArrayBuffer | ArrayBufferView,
    options: PublishOptions = {},
  ): number {
    const name = topicName(topic, "publish");
    return this.#server().publish(
      name,
      prepare(data),
      options.compress,
      options.includeSelf ?? false,
    );
  }
}

/**
 * Frames a message once for a publish.
 *
 * @param data A string as text, bytes as binary.
 * @returns The prepared message.
 */
export function prepare(
  data: string | Uint8Array | ArrayBuffer | ArrayBufferView,
): PreparedMessage {
  return new PreparedMessage(typeof data === "string" ? data : toBytes(data, "publish"));
}

/**
 * Checks a topic name.
 *
 * @param topic The name.
 * @param what The operation, for the error message.
 * @returns The name.
 */
export function topicName(topic: string, what: string): string {
  if (typeof topic !== "string") {
    throw new TypeError(`Cannot ${what}: the topic must be a string, got ${typeof topic}`);
  }
  return topic;
}
