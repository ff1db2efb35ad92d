/**
 * The session client's socket on Deno and Bun: the few WHATWG members the session client uses
 * ({@linkcode WebSocketLike}), straight over `connect()`. It skips the WHATWG facade's event
 * objects and bookkeeping (what the facade costs per message is the facade's, not the session
 * layer's), and takes `connect`'s options (headers, TLS, heartbeat) that a browser lacks.
 *
 * @module
 */
import type { Connect } from "../core/transport.ts";
import type { ClientWebSocket } from "./client_websocket.ts";
import { type ConnectOptions, connectWith } from "./connect.ts";
import type { WebSocketLike } from "./session.ts";

/**
 * The options of `connect` a session's connections may take (not its handlers, nor the
 * subprotocols, which are the session layer's).
 *
 * @example
 * ```ts
 * import { connectSession, serveSessions, type SessionConnectOptions } from "@sluice/ws";
 * const server = serveSessions({
 *   port: 0,
 *   secret: "a secret of at least 16 characters",
 *   upgrade(request) {
 *     if (request.headers.get("authorization") !== "Bearer t0ken") {
 *       return new Response(null, { status: 401 });
 *     }
 *   },
 *   request: () => "ok",
 * });
 * const connect: SessionConnectOptions = {
 *   headers: { Authorization: "Bearer t0ken" },
 *   heartbeat: { interval: 20_000, timeout: 10_000 },
 * };
 * const client = connectSession(`ws://127.0.0.1:${server.port}`, { connect });
 * console.log(await client.request("ping")); // ok
 * client.close();
 * await server.shutdown();
 * ```
 */
export type SessionConnectOptions = Omit<
  ConnectOptions,
  | "protocols"
  | "signal"
  | "open"
  | "message"
  | "fragment"
  | "drain"
  | "ping"
  | "pong"
  | "close"
  | "error"
>;

type Handler = ((event: never) => unknown) | null;
type Call = (event: unknown) => unknown;

/** A {@linkcode WebSocketLike} over one `connect()`. */
export class DirectSocket implements WebSocketLike {
  binaryType = "arraybuffer";
  readyState = 0;
  protocol = "";
  onopen: Handler = null;
  onmessage: Handler = null;
  onclose: Handler = null;
  onerror: Handler = null;
  #ws: ClientWebSocket | undefined;
  #abort = new AbortController();
  #closed = false;

  /**
   * Starts connecting.
   *
   * @param dial The runtime's dialer.
   * @param url The URL.
   * @param protocols The subprotocols to offer.
   * @param options `connect`'s other options.
   */
  constructor(dial: Connect, url: string, protocols: string[], options: SessionConnectOptions) {
    connectWith(dial, url, {
      ...options,
      protocols,
      signal: this.#abort.signal,
      message: (_ws, data) => void (this.onmessage as Call | null)?.({ data }),
      close: (_ws, code, reason) => this.#end(code, reason),
    }).then((ws) => {
      this.#ws = ws;
      if (this.#closed) return; // closed while connecting: already reported
      this.protocol = ws.protocol;
      this.readyState = 1;
      (this.onopen as Call | null)?.({});
    }, (error) => {
      (this.onerror as Call | null)?.({ error });
      this.#end(1006, "");
    });
  }

  #end(code: number, reason: string): void {
    if (this.#closed) return;
    this.#closed = true;
    this.readyState = 3;
    (this.onclose as Call | null)?.({ code, reason });
  }

  send(data: string | Uint8Array): void {
    const ws = this.#ws;
    if (ws === undefined || this.readyState !== 1) {
      throw new TypeError("Cannot send: the connection is not open");
    }
    ws.send(data);
  }

  close(code?: number, reason?: string): void {
    const ws = this.#ws;
    if (ws === undefined) {
      // Still connecting: abandon the attempt; its failure reports the close.
      this.readyState = 2;
      this.#abort.abort(new Error("closed while connecting"));
      return;
    }
    if (this.readyState === 1) this.readyState = 2;
    ws.close(code, reason);
  }

  /** Drops the connection without a closing handshake (as a network failure would). */
  terminate(): void {
    if (this.#ws === undefined) this.close();
    else this.#ws.terminate();
  }
}
