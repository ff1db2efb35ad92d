/**
 * sluice: a WebSocket server for Deno and Bun, built on raw TCP listeners, with the same
 * behaviour on both.
 *
 * ```ts
 * import { serve } from "@sluice/ws";
 *
 * const server = serve({
 *   port: 0,
 *   message(ws, data) {
 *     ws.send(data); // echo
 *   },
 * });
 * console.log(`ws://localhost:${server.port}`);
 * await server.shutdown();
 * ```
 *
 * @module
 */
import { type ConnectOptions, connectWith } from "./lib/client/connect.ts";
import type { ClientWebSocket } from "./lib/client/client_websocket.ts";
import { runtimeConnect, runtimeListen } from "./lib/runtime/runtime.ts";
import type { ServeOptions } from "./lib/server/options.ts";
import { Server } from "./lib/server/server.ts";
import { type SessionServeOptions, SessionServer } from "./lib/server/session/session_server.ts";

export {
  CloseCode,
  type ErrorCode,
  ErrorCodes,
  HandshakeError,
  type HandshakeErrorOptions,
  WebSocketError,
} from "./lib/protocol/errors.ts";
export { ClientWebSocket } from "./lib/client/client_websocket.ts";
export type { ClientDeflateOptions, ConnectOptions } from "./lib/client/connect.ts";
export {
  type BinaryType,
  WebSocket,
  type WebSocketData,
  type WebSocketOptions,
} from "./lib/client/whatwg.ts";
import { useDialer } from "./lib/client/whatwg.ts";
import { DirectSocket, type SessionConnectOptions } from "./lib/client/_direct_socket.ts";
export type { SessionConnectOptions } from "./lib/client/_direct_socket.ts";
import { SessionClient, type SessionClientOptions } from "./lib/client/session.ts";
export {
  type SessionBackoffOptions,
  SessionClient,
  type SessionClientEventMap,
  type SessionClientOptions,
  type SessionClientState,
  SessionError,
  type SessionErrorCode,
  type SessionQueueOptions,
  type SessionRequestOptions,
  type SessionResetEvent,
  type SessionSendOptions,
  type WebSocketFactory,
  type WebSocketLike,
} from "./lib/client/session.ts";
export type { Handlers } from "./lib/core/open_connection.ts";
export { isValidCloseCode } from "./lib/protocol/close.ts";
export { Opcode } from "./lib/protocol/opcode.ts";
export type {
  ControlFrameLimitOptions,
  HttpRequestInfo,
  PerMessageDeflateOptions,
  ReadPauseOptions,
  ServeBaseOptions,
  ServeOptions,
  UpgradeAccept,
  UpgradeHeaders,
  UpgradeHook,
  UpgradeOption,
  UpgradeResult,
} from "./lib/server/options.ts";
export type { OriginRule } from "./lib/server/origin.ts";
export type { RateLimitOptions } from "./lib/core/rate_limit.ts";
export { Server, type ShutdownOptions } from "./lib/server/server.ts";
export type { ServerStats, TrafficCounts } from "./lib/server/stats.ts";
export { BaseWebSocket, type CloseInfo, SendStatus } from "./lib/core/websocket.ts";
export { type PublishOptions, ServerWebSocket } from "./lib/server/websocket.ts";
export { UpgradeRequest } from "./lib/server/upgrade_request.ts";
export { Session } from "./lib/server/session/session.ts";
export {
  type ReplayOptions,
  type SessionBaseOptions,
  type SessionHandlers,
  type SessionServeOptions,
  SessionServer,
  type SessionShutdownOptions,
  type SessionStats,
} from "./lib/server/session/session_server.ts";
export type { HistoryOptions, Since, TopicHistory } from "./lib/server/session/history.ts";
export {
  type Position,
  type ResetReason,
  type ResumeRefusal,
  SESSION_PROTOCOL,
  type SessionData,
  SessionProtocolError,
} from "./lib/session/wire.ts";

/**
 * Starts a WebSocket server on the current runtime (Deno or Bun) and returns it once it is
 * bound.
 *
 * @typeParam T The type of the per-connection data the upgrade hook attaches (`ws.data`).
 * @param options Where to listen, the upgrade hook, the handlers and the limits.
 * @returns The listening server.
 *
 * @example
 * ```ts
 * import { serve } from "@sluice/ws";
 *
 * const server = serve<{ user: string }>({
 *   port: 0,
 *   upgrade(request) {
 *     const user = request.searchParams.get("user");
 *     if (user === null) return new Response("Who are you?", { status: 401 });
 *     return { data: { user } };
 *   },
 *   open(ws) {
 *     ws.send(`hello ${ws.data.user}`);
 *   },
 *   message(ws, data, isBinary) {
 *     ws.send(data);
 *   },
 *   close(ws, code, reason) {
 *     console.log(`${ws.data.user} left: ${code} ${reason}`);
 *   },
 * });
 * await server.shutdown();
 * ```
 */
export function serve<T = undefined>(options: ServeOptions<T> = {} as ServeOptions<T>): Server<T> {
  return new Server(options, runtimeListen());
}

/**
 * Opens a WebSocket connection to a server, on the current runtime (Deno or Bun), over raw TCP
 * (or TLS for `wss:`), and resolves once the opening handshake has completed. The connection
 * behaves as a server's does: the same `send` statuses, backpressure, `flushed()`, pause and
 * resume, pings and closing; every frame it sends is masked with a fresh key (RFC 6455 §5.3).
 *
 * @param url `ws://` or `wss://` (`http://` and `https://` are taken as those); IPv6 hosts in
 * brackets (`ws://[::1]:8080/`).
 * @param options Subprotocols, headers, compression, limits, timeouts, TLS, and the handlers.
 * @returns The open connection.
 * @throws {HandshakeError} (as a rejection) When the server refuses (`status`, `headers`,
 * `body`) or answers wrongly; a `WebSocketError` with code `WS_ERR_CONNECT` when the TCP or TLS
 * connection cannot be made, `WS_ERR_HANDSHAKE_TIMEOUT` past `handshakeTimeout`; the signal's
 * reason when aborted.
 *
 * @example
 * ```ts
 * import { connect, serve } from "@sluice/ws";
 * const server = serve({ port: 0, message: (ws, data) => void ws.send(data) });
 * const ws = await connect(`ws://127.0.0.1:${server.port}/`, {
 *   message(ws, data) {
 *     console.log("got", data); // got hello
 *     ws.close(1000, "done");
 *   },
 * });
 * ws.send("hello");
 * // The server's answer to our Close frame: the code echoed (RFC 6455 §5.5.1).
 * console.log(await ws.closed); // { code: 1000, reason: "" }
 * await server.shutdown();
 * ```
 */
export function connect(url: string | URL, options?: ConnectOptions): Promise<ClientWebSocket> {
  return connectWith(runtimeConnect(), url, options);
}

/**
 * Starts a session server on the current runtime (Deno or Bun): a WebSocket server whose
 * connections carry sessions that outlive them (the `sluice.v1` protocol,
 * lib/session/PROTOCOL.md): client messages acknowledged and processed exactly once per
 * session, requests with replies, session messages replayed after a reconnect, and topics with
 * history that a returning client resumes from its positions.
 *
 * @typeParam T The type of the upgrade hook's per-connection data (`session.data`).
 * @param options The options of `serve` but its handlers, and the session layer's.
 * @returns The listening session server.
 *
 * @example
 * ```ts
 * import { serveSessions } from "@sluice/ws";
 * const server = serveSessions({
 *   port: 0,
 *   secret: "a secret of at least 16 characters",
 *   message(session, data) {
 *     server.publish("chat", data);
 *   },
 *   request(session, data) {
 *     return `you said ${data}`;
 *   },
 *   open(session) {
 *     session.subscribe("chat");
 *   },
 * });
 * await server.shutdown();
 * ```
 */
export function serveSessions<T = undefined>(options: SessionServeOptions<T>): SessionServer<T> {
  return new SessionServer(options, runtimeListen());
}

/**
 * Opens a session client ({@linkcode SessionClient}) whose connections are sluice's own client
 * on raw TCP (`connect`), on the current runtime. In a browser, construct `SessionClient`
 * directly: it uses the page's `WebSocket`.
 *
 * @param url The session server's `ws:` or `wss:` URL.
 * @param options The client's options, and in `connect` the options of each connection
 * (`headers`, `ca`, `heartbeat`, limits: {@linkcode ConnectOptions} but its handlers,
 * `protocols` and `signal`); a `webSocket` factory replaces sluice's client.
 * @returns The client, connecting.
 *
 * @example
 * ```ts
 * import { connectSession, serveSessions } from "@sluice/ws";
 * const server = serveSessions({
 *   port: 0,
 *   secret: "a secret of at least 16 characters",
 *   request: (_session, data) => `echo: ${data}`,
 * });
 * const client = connectSession(`ws://127.0.0.1:${server.port}`);
 * console.log(await client.request("hi")); // echo: hi
 * client.close();
 * await server.shutdown();
 * ```
 */
export function connectSession(
  url: string | URL,
  options: SessionClientOptions & { connect?: SessionConnectOptions } = {},
): SessionClient {
  const { connect: perConnection = {}, ...rest } = options;
  const dial = runtimeConnect();
  return new SessionClient(url, {
    webSocket: (target, protocols) => new DirectSocket(dial, target, protocols, perConnection),
    ...rest,
  });
}

// The WHATWG facade dials through the runtime's adapter, as connect() does.
useDialer(runtimeConnect);
