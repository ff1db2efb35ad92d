/**
 * The client side of one WebSocket connection, as application code sees it: the shared
 * {@linkcode BaseWebSocket} with the URL it was opened to.
 *
 * @module
 */
import { BaseWebSocket, type WebSocketDriver, type WebSocketInit } from "../core/websocket.ts";

/** What the handshake settled for a client connection. */
export interface ClientWebSocketInit extends WebSocketInit {
  /** The URL connected to. */
  url: string;
  /** The 101 response's header fields, names lower-cased. */
  headers: Array<[name: string, value: string]>;
}

/**
 * One open WebSocket connection made by `connect`: the same sending, receiving, flow control,
 * pings and closing as a {@linkcode BaseWebSocket} on the server.
 *
 * @example
 * ```ts
 * import { connect, serve } from "@sluice/ws";
 * const server = serve({ port: 0, message: (ws, data) => void ws.send(data) });
 * const ws = await connect(`ws://127.0.0.1:${server.port}`, {
 *   message(ws, data) {
 *     console.log("echo:", data);
 *     ws.close(1000);
 *   },
 * });
 * ws.send("hello");
 * await ws.closed;
 * await server.shutdown();
 * ```
 */
export class ClientWebSocket extends BaseWebSocket {
  /** The URL connected to (as given, normalised by `URL`). */
  readonly url: string;
  /** The 101 response's header fields, names lower-cased, in arrival order. */
  readonly headers: ReadonlyArray<[name: string, value: string]>;

  /**
   * Made by `connect` when the handshake completes.
   *
   * Not public API: its parameters are internal types. Use `connect`.
   *
   * @param driver The connection.
   * @param init What the handshake settled.
   *
   * @ignore
   */
  constructor(driver: WebSocketDriver, init: ClientWebSocketInit) {
    super(driver, init);
    this.url = init.url;
    this.headers = init.headers;
  }
}
