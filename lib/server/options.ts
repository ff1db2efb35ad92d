/**
 * What {@linkcode serve} takes.
 *
 * @module
 */
import type { TopicRegistryFactory } from "./topics.ts";
import type { OriginRule } from "./origin.ts";
import type { RateLimitOptions } from "../core/rate_limit.ts";
import type { ServerWebSocket } from "./websocket.ts";
import type { UpgradeRequest } from "./upgrade_request.ts";

/**
 * permessage-deflate (RFC 7692). Two memory modes, as users of uWebSockets know them:
 * - `"shared"`: no context takeover in either direction (the server asks the client for it
 *   too). No compression state per connection: with the zlib engine each message is one
 *   synchronous call, and idle compressed connections cost what uncompressed ones do. A
 *   broadcast can be compressed once for every subscriber.
 * - `"dedicated"`: context takeover where the client allows it: a persistent zlib stream per
 *   direction per connection (made on first use), a better ratio for small similar messages,
 *   and about 300 KiB per active connection with the default window and memory level.
 *
 * @example Compress every message in shared mode
 * ```ts
 * import { connect, serve } from "@sluice/ws";
 * const server = serve({
 *   port: 0,
 *   perMessageDeflate: { mode: "shared", threshold: 0, level: 6 },
 *   message(ws, data) {
 *     ws.send(data);
 *   },
 * });
 * // The client offers permessage-deflate; the server accepts, asking for no context takeover.
 * const client = await connect(`ws://127.0.0.1:${server.port}/`, { perMessageDeflate: true });
 * console.log(client.extensions);
 * // permessage-deflate; server_no_context_takeover; client_no_context_takeover
 * client.close();
 * await client.closed;
 * await server.shutdown();
 * ```
 */
export interface PerMessageDeflateOptions {
  /** The memory mode. @default {"shared"} */
  mode?: "shared" | "dedicated";
  /** The engine: node:zlib, or the web-standard CompressionStream (shared mode only).
   * @default {"zlib"} */
  engine?: "zlib" | "web";
  /** Messages smaller than this many bytes are sent uncompressed, unless `send` is told to
   * compress. @default {1024} */
  threshold?: number;
  /** zlib compression level, 0–9. 1, as Bun's server: on JSON messages of 1–16 KiB about
   * twice the throughput of 6, for output about 40 % larger. @default {1} */
  level?: number;
  /** zlib memory level, 1–9 (lower: less memory per compressor, worse ratio). @default {8} */
  memLevel?: number;
  /** The largest window the server compresses with, 8–15. @default {15} */
  serverMaxWindowBits?: number;
  /** The largest window the client may compress with (when it offers the parameter), 8–15.
   * @default {15} */
  clientMaxWindowBits?: number;
}

/**
 * When the server stops reading from a connection whose outbound queue has backed up, and
 * when it reads again (the `readPause` option of {@linkcode ServeOptions}).
 *
 * @example
 * ```ts
 * import { serve } from "@sluice/ws";
 * // Stop reading a client once 256 KiB of answers wait for it; read again below 64 KiB.
 * const server = serve({
 *   port: 0,
 *   readPause: { highWaterMark: 256 * 1024, lowWaterMark: 64 * 1024 },
 *   message(ws, data) {
 *     ws.send(data);
 *   },
 * });
 * await server.shutdown();
 * ```
 */
export interface ReadPauseOptions {
  /**
   * Bytes queued for the connection above which reading from it stops. Throughput does not
   * need more: the queue builds only once the kernel's send buffer is full, and that buffer
   * keeps the socket busy while reading is held.
   * @default {262144}
   */
  highWaterMark?: number;
  /**
   * Bytes queued at or below which reading starts again; at most `highWaterMark`. 0 waits
   * until the socket has taken everything, which costs no throughput for the same reason (when
   * our queue empties, the kernel's send buffer is still full), and needs no progress reports
   * from the socket.
   * @default {0}
   */
  lowWaterMark?: number;
}

/**
 * Extra headers for the 101 response, as `fetch` takes them: a `Headers`, `[name, value]` pairs
 * or a record. The handshake's own headers (`Upgrade`, `Connection`, `Sec-WebSocket-Accept`,
 * `Sec-WebSocket-Protocol`, `Sec-WebSocket-Extensions`, `Content-Length`,
 * `Transfer-Encoding`) may not be set: the request is then refused with 500.
 *
 * @example
 * ```ts
 * import { connect, serve } from "@sluice/ws";
 * const server = serve({
 *   port: 0,
 *   upgrade: () => ({ headers: { "Set-Cookie": "seen=1; HttpOnly" } }),
 * });
 * const client = await connect(`ws://127.0.0.1:${server.port}/`);
 * const cookie = client.headers.find(([name]) => name === "set-cookie");
 * console.log(cookie); // [ "set-cookie", "seen=1; HttpOnly" ]
 * client.close();
 * await client.closed;
 * await server.shutdown();
 * ```
 */
export type UpgradeHeaders = Headers | Array<[string, string]> | Record<string, string>;

/**
 * How the upgrade hook accepts a connection: `data` becomes `ws.data`, so it is required when
 * `T` (the type of `ws.data`) does not include `undefined`; `protocol` is the subprotocol to
 * speak (one the client offered, `request.protocols`); `headers` go into the 101 response. An
 * object with any other key (`{ user }` for `{ data: { user } }`) is refused at run time with
 * 500, as it is most likely a mistake.
 *
 * @example
 * ```ts
 * import type { UpgradeAccept } from "@sluice/ws";
 * const accept: UpgradeAccept<{ user: string }> = { data: { user: "ann" }, protocol: "chat" };
 * console.log(accept.data.user); // ann
 * ```
 */
export type UpgradeAccept<T> = undefined extends T ? {
    /** Per-connection data, available as `ws.data`. @default {undefined} */
    data?: T;
    /** The subprotocol to speak: one the client offered. @default {undefined} */
    protocol?: string;
    /** Extra headers for the 101 response. @default {undefined} */
    headers?: UpgradeHeaders;
  }
  : {
    /** Per-connection data, available as `ws.data`. */
    data: T;
    /** The subprotocol to speak: one the client offered. @default {undefined} */
    protocol?: string;
    /** Extra headers for the 101 response. @default {undefined} */
    headers?: UpgradeHeaders;
  };

/**
 * What the upgrade hook returns: `undefined` or an {@linkcode UpgradeAccept} to accept, a
 * `Response` to refuse with its status, headers and body. Anything else (`false`, `null`, a
 * string) refuses the request with 500 and reaches the `error` handler as a `TypeError`.
 *
 * @example
 * ```ts
 * import type { UpgradeResult } from "@sluice/ws";
 * function decide(token: string | null): UpgradeResult<{ user: string }> {
 *   if (token === null) return new Response("Unauthorized", { status: 401 }); // refuse
 *   return { data: { user: token } }; // accept, with ws.data
 * }
 * console.log(decide("ann")); // { data: { user: "ann" } }
 * ```
 */
export type UpgradeResult<T> = UpgradeAccept<T> | Response | undefined | void;

/**
 * The upgrade hook: decides whether a valid upgrade request is accepted, after the protocol
 * checks pass. May be async. Throwing refuses the request with 500 and reports the error.
 *
 * @example Route by path, authenticate, pick a subprotocol
 * ```ts
 * import { connect, HandshakeError, serve, type UpgradeHook } from "@sluice/ws";
 * type Data = { room: string; user: string };
 * const tokens = new Map([["t1", "ann"]]);
 * const upgrade: UpgradeHook<Data> = async (request) => {
 *   const match = /^\/rooms\/(\w+)$/.exec(request.pathname);
 *   if (match === null) return new Response("No such room", { status: 404 });
 *   const user = tokens.get(request.searchParams.get("token") ?? "");
 *   if (user === undefined) return new Response("Unauthorized", { status: 401 });
 *   const protocol = request.protocols.includes("chat.v2") ? "chat.v2" : undefined;
 *   return { data: { room: match[1], user }, protocol };
 * };
 * const server = serve<Data>({
 *   port: 0,
 *   upgrade,
 *   open(ws) {
 *     ws.send(`${ws.data.user} in ${ws.data.room}`);
 *   },
 * });
 * const base = `ws://127.0.0.1:${server.port}`;
 * const client = await connect(`${base}/rooms/tea?token=t1`, {
 *   protocols: ["chat.v2"],
 *   message: (_ws, data) => console.log(data), // ann in tea
 * });
 * console.log(client.protocol); // chat.v2
 * client.close();
 * await client.closed;
 * await connect(`${base}/kitchen`).catch((error: HandshakeError) => {
 *   console.log(error.status); // 404
 * });
 * await server.shutdown();
 * ```
 */
export type UpgradeHook<T> = (
  request: UpgradeRequest,
) => UpgradeResult<T> | Promise<UpgradeResult<T>>;

/**
 * The `upgrade` option of {@linkcode ServeOptions}: optional when `T` includes `undefined`,
 * required otherwise, since only the hook can give `ws.data` a value.
 *
 * @example
 * ```ts
 * import type { UpgradeOption } from "@sluice/ws";
 * // ws.data may be undefined: the hook is optional.
 * const optional: UpgradeOption<{ user: string } | undefined> = {};
 * // ws.data is always set: the hook is required, and must return data.
 * const required: UpgradeOption<{ user: string }> = { upgrade: () => ({ data: { user: "ann" } }) };
 * console.log(Object.keys(optional).length, typeof required.upgrade); // 0 function
 * ```
 */
export type UpgradeOption<T> = undefined extends T ? {
    /** The upgrade hook. @default {undefined} (every valid request is accepted) */
    upgrade?: UpgradeHook<T>;
  }
  : {
    /** The upgrade hook: it must give each connection its `data`. */
    upgrade: UpgradeHook<T>;
  };

/**
 * What the `fetch` handler learns about a plain HTTP request besides the request itself.
 *
 * @example
 * ```ts
 * import { serve } from "@sluice/ws";
 * const server = serve({
 *   port: 0,
 *   fetch: (request, info) => new Response(`you are ${info.remoteAddress}`),
 * });
 * const response = await fetch(`http://127.0.0.1:${server.port}/`);
 * console.log(await response.text()); // you are 127.0.0.1
 * await server.shutdown();
 * ```
 */
export interface HttpRequestInfo {
  /** The client's address (with `trustProxy`, the one the proxies forwarded for). */
  remoteAddress: string;
  /** The TCP peer's address. */
  peerAddress: string;
}

/**
 * How many pings and pongs a client may send (the `controlFrameLimit` option of `serve`).
 *
 * @example
 * ```ts
 * import { connect, serve } from "@sluice/ws";
 * // 10 pings or pongs a second, 20 at once.
 * const server = serve({ port: 0, controlFrameLimit: { rate: 10, burst: 2 } });
 * const client = await connect(`ws://127.0.0.1:${server.port}/`);
 * for (let i = 0; i < 25; i++) client.ping();
 * console.log(await client.closed);
 * // { code: 1008, reason: "Too many pings and pongs: more than 10 per second" }
 * console.log(server.stats().controlFloodCloses); // 1
 * await server.shutdown();
 * ```
 */
export interface ControlFrameLimitOptions {
  /** Pings and pongs per second. @default {1000} */
  rate?: number;
  /** How far a client may get ahead of the rate in a burst, in seconds' worth of it.
   * @default {1} */
  burst?: number;
}

/**
 * The options of {@linkcode serve}. `T` is the type of `ws.data`; unless it includes
 * `undefined`, an upgrade hook that supplies it is required.
 *
 * @example
 * ```ts
 * import { serve, type ServeOptions } from "@sluice/ws";
 * const options: ServeOptions<{ room: string }> = {
 *   port: 0,
 *   upgrade: (request) => ({ data: { room: request.searchParams.get("room") ?? "lobby" } }),
 *   open(ws) {
 *     ws.subscribe(ws.data.room);
 *   },
 * };
 * await serve(options).shutdown();
 * ```
 */
export type ServeOptions<T = undefined> = ServeBaseOptions<T> & UpgradeOption<T>;

/**
 * The options of {@linkcode serve} besides the upgrade hook. `T` is the type of `ws.data`.
 *
 * @example The handlers
 * ```ts
 * import { connect, serve } from "@sluice/ws";
 * const server = serve<{ name: string }>({
 *   port: 0,
 *   upgrade: (request) => ({ data: { name: request.searchParams.get("name") ?? "guest" } }),
 *   open(ws) {
 *     ws.send(`welcome ${ws.data.name}`);
 *   },
 *   message(ws, data) {
 *     // Text arrives as a string, binary as a Uint8Array.
 *     ws.send(typeof data === "string" ? data.toUpperCase() : data);
 *   },
 *   close(ws, code, reason) {
 *     console.log(`${ws.data.name} left: ${code} ${reason}`); // bo left: 1000 bye
 *   },
 *   error(error, ws) {
 *     console.error("on", ws?.data.name, error); // a handler threw, or the peer broke the rules
 *   },
 * });
 * const client = await connect(`ws://127.0.0.1:${server.port}/?name=bo`, {
 *   message(ws, data) {
 *     console.log(data); // welcome bo, then HI
 *     if (data === "HI") ws.close(1000, "bye");
 *   },
 * });
 * client.send("hi");
 * await client.closed;
 * await server.shutdown();
 * ```
 *
 * @example Limits against large, slow and hostile clients
 * ```ts
 * import { connect, serve } from "@sluice/ws";
 * const server = serve({
 *   port: 0,
 *   maxPayloadLength: 1024, // larger messages fail the connection with 1009
 *   maxConnections: 10_000, // then 503
 *   handshakeTimeout: 5_000, // from TCP connect to a complete request head
 *   maxBackpressure: 1024 * 1024, // queued for one connection before the policy applies
 *   backpressurePolicy: "close", // close slow readers with 1008 instead of dropping messages
 *   maxTotalBackpressure: 64 * 1024 * 1024, // queued for all connections together
 * });
 * const client = await connect(`ws://127.0.0.1:${server.port}/`);
 * client.send(new Uint8Array(2048));
 * console.log(await client.closed);
 * // { code: 1009, reason: "Message too big: more than 1024 bytes" }
 * await server.shutdown();
 * ```
 *
 * @example The heartbeat and the idle timeout
 * ```ts
 * import { connect, serve } from "@sluice/ws";
 * const server = serve({
 *   port: 0,
 *   // Ping after 50 ms of silence from the peer; drop it if nothing comes back within 1 s.
 *   heartbeat: { interval: 50, timeout: 1_000 },
 *   // Close (1001) after 10 minutes without a message either way or a ping or pong from the peer.
 *   idleTimeout: 600_000,
 * });
 * const client = await connect(`ws://127.0.0.1:${server.port}/`); // answers pings by itself
 * const [ws] = server.clients;
 * while (ws.latency === undefined) await new Promise((resolve) => setTimeout(resolve, 10));
 * console.log(typeof ws.latency); // number: the last ping's round trip in ms
 * client.close();
 * await client.closed;
 * await server.shutdown();
 * ```
 */
export interface ServeBaseOptions<T = undefined> {
  /** The port; 0 picks a free one (read it from `server.port`). @default {8080} */
  port?: number;
  /** The address to bind. @default {"0.0.0.0"} */
  hostname?: string;
  /**
   * The PEM text (not a file path: read the file first) of the certificate chain. With `key`,
   * the server speaks TLS (wss://): `Deno.listenTls` on Deno, `Bun.listen` with `tls` on Bun.
   * Give both or neither. @default {undefined}
   */
  cert?: string;
  /** The PEM text of `cert`'s private key. @default {undefined} */
  key?: string;
  /**
   * The Origin allowlist: exact origins (`"https://app.example.com"`, default ports and case
   * normalised), one leading wildcard label (`"https://*.example.com"`), `"null"`, or RegExps
   * tested against the header as sent. An upgrade request from any other Origin is refused
   * with 403 before the upgrade hook runs.
   *
   * This stops cross-site WebSocket hijacking: a page on another site opening a WebSocket to
   * this server with the user's cookies (browsers always send Origin, and pages cannot change
   * it). It does not authenticate anyone: a client outside a browser can send any Origin, or
   * none, so requests without an Origin are let through unless `requireOrigin` is set.
   * @default {undefined} (every origin is accepted)
   */
  origins?: OriginRule[];
  /** With `origins`: refuse upgrade requests that have no Origin header (403) too.
   * @default {false} */
  requireOrigin?: boolean;
  /**
   * Reverse proxies whose word on the client's address is trusted: IP addresses, CIDR ranges
   * (`"10.0.0.0/8"`, `"fd00::/8"`) and the names `"loopback"`, `"private"`, `"linklocal"`. When
   * the TCP peer is one of them, `request.remoteAddress` and `ws.remoteAddress` are the client
   * it forwarded for, read from `Forwarded` (RFC 7239) or else `X-Forwarded-For`, walking back
   * from the nearest proxy past the trusted ones. `request.peerAddress` stays the TCP peer.
   * @default {[]} (headers are ignored: anyone can send them)
   */
  trustProxy?: string[];
  /**
   * Subprotocols the server speaks, used when the upgrade hook does not choose one: the first
   * one the client offers that is in this list is chosen. @default {[]}
   */
  protocols?: string[];
  /**
   * Answers plain HTTP requests (those without an `Upgrade` header) on the same port: health
   * checks, pages, an API, a framework's `app.fetch`. Returning nothing (`undefined` or `null`)
   * answers 404; throwing, or returning anything but a `Response`, answers 500 and reports the
   * error. Without this handler such requests get 426 Upgrade Required.
   *
   * Connections are persistent (HTTP/1.1 keep-alive; HTTP/1.0 with `Connection: keep-alive`),
   * up to `maxRequestsPerConnection` requests, closed after `keepAliveTimeout` idle; pipelined
   * requests are answered in order, one at a time; an upgrade request on the connection
   * turns it into a WebSocket. `request.body` streams as it arrives, Content-Length or
   * chunked, at most `maxRequestBodySize` bytes (413), and `Expect: 100-continue` is answered
   * when the handler first reads it. A request whose framing two implementations could read
   * differently (request smuggling) gets 400 and its connection closes.
   *
   * A response body that is read whole within a few microtasks (a string, bytes, a Blob, a
   * stream that has it all queued; up to about 1 MiB) goes out with our `Content-Length`;
   * any other `ReadableStream` goes out as it is produced, chunked (or with the
   * Content-Length it set), read only as fast as the client takes it: server-sent events and
   * large downloads work. Responses carry `Date` and the response's headers sorted by name:
   * the same bytes on every runtime. Its Content-Type is its own, or for a body read whole
   * that is text (valid UTF-8 without control bytes) the Fetch standard's type of a string,
   * `text/plain;charset=UTF-8` (a runtime may leave that type out of `response.headers`, and
   * the body cannot tell a string from bytes), else none; set Content-Type yourself to be
   * sure. The upgrade hook's `Response` is read whole and closes its connection.
   */
  fetch?(
    request: Request,
    info: HttpRequestInfo,
  ): Response | undefined | void | Promise<Response | undefined | void>;
  /**
   * A path (such as `"/metrics"`) where a GET answers `server.metrics()`, the Prometheus text
   * exposition, before the `fetch` handler is asked. Serve it only where scrapers can reach
   * it (it shows traffic figures). @default {undefined}
   */
  metricsPath?: string;
  /**
   * Bytes of a plain HTTP request body (after chunked decoding) the server takes. A larger
   * Content-Length gets 413 before `fetch` runs; a chunked body gets 413 as soon as a chunk
   * would take it past this (the body stream errors, and the connection closes). Bodies stream:
   * this bounds what a request may send, not what the server holds at once.
   * @default {1048576}
   */
  maxRequestBodySize?: number;
  /**
   * Milliseconds a plain HTTP connection may wait, idle, for its next request before the
   * server closes it. @default {5000}
   */
  keepAliveTimeout?: number;
  /**
   * Requests one plain HTTP connection may carry: the last response says
   * `Connection: close`. 1 turns keep-alive off. @default {1000}
   */
  maxRequestsPerConnection?: number;
  /**
   * Makes the topic registry the server publishes and subscribes through, from the one that
   * serves this process: the seam for topics that span processes (a registry that forwards
   * publishes to a broker and hands what arrives to the local one). Called once, as the server
   * starts. Not a stable API yet: the registry sees the server's framed messages, whose type is
   * internal, until the Redis-backed registry settles it.
   * @default {undefined} (the local registry alone)
   * @ignore
   */
  topicRegistry?: TopicRegistryFactory;
  /** A connection is open. */
  open?(ws: ServerWebSocket<T>): unknown;
  /**
   * A message arrived: a string for text, a Uint8Array for binary. The Uint8Array is a view of
   * memory the server never reuses, so it may be kept. `typeof data === "string"` tells them
   * apart in a way TypeScript narrows `data` by (`isBinary` says the same, but TypeScript
   * cannot tie the two parameters together without rejecting handlers that omit `isBinary`).
   */
  message?(
    ws: ServerWebSocket<T>,
    data: string | Uint8Array,
    isBinary: boolean,
  ): unknown;
  /**
   * Receive data messages piece by piece, as they arrive, instead of whole: text as decoded
   * characters, binary as views; `fin` on a message's last piece. With this handler `message`
   * is not called, and a large upload never needs a buffer of its size (raise
   * `maxPayloadLength`, which still limits each message). A compressed message comes as one
   * piece.
   */
  fragment?(
    ws: ServerWebSocket<T>,
    data: string | Uint8Array,
    isBinary: boolean,
    fin: boolean,
  ): unknown;
  /**
   * A connection whose sends met backpressure (a send returned `SendStatus.Backpressure` or
   * `SendStatus.Dropped`) has written everything it had queued.
   */
  drain?(ws: ServerWebSocket<T>): unknown;
  /** A ping arrived (the pong is sent automatically). */
  ping?(ws: ServerWebSocket<T>, data: Uint8Array): unknown;
  /** A pong arrived. */
  pong?(ws: ServerWebSocket<T>, data: Uint8Array): unknown;
  /**
   * The connection closed; called once per opened connection. `code` is the peer's close code
   * (1005 if its Close frame had none), the code we failed the connection with, or 1006 if the
   * TCP connection ended without a closing handshake.
   */
  close?(ws: ServerWebSocket<T>, code: number, reason: string): unknown;
  /**
   * An error: a handler threw (the connection is then closed with 1011), the peer broke the
   * protocol (a `WebSocketError`; the connection is failed with its close code), or the upgrade
   * hook or `fetch` threw or returned something unusable (a `TypeError` naming it; the request
   * got 500, and `ws` is `undefined`). Without this option, handler errors are printed with
   * `console.error` and protocol errors are silent.
   */
  error?(error: unknown, ws: ServerWebSocket<T> | undefined): void;
  /**
   * Accept permessage-deflate when a client offers it: `true` for the defaults, or options.
   * Off by default, as in ws, Bun and uWebSockets: compression costs CPU per message, and
   * compressing secrets together with data an attacker chooses leaks them (CRIME, BREACH).
   * @default {false}
   */
  perMessageDeflate?: boolean | PerMessageDeflateOptions;
  /** The largest message accepted, in bytes; larger ones fail with 1009.
   * @default {16777216} */
  maxPayloadLength?: number;
  /** Bytes in a request head before 431. @default {8192} */
  maxHeadSize?: number;
  /** Header lines in a request head before 431. @default {100} */
  maxHeaders?: number;
  /** Bytes in one request-head line before 414 (request line) or 431 (header). @default {4096} */
  maxLineLength?: number;
  /**
   * Bytes a connection may have queued (sent by the application, not yet taken by the socket)
   * before `backpressurePolicy` applies to further data messages. Pings, pongs and Close frames
   * are never dropped. @default {16777216} (16 MiB, as Bun's server)
   */
  maxBackpressure?: number;
  /**
   * What happens to a data message sent while more than `maxBackpressure` bytes are queued:
   * `"drop"` drops it (`send` returns `SendStatus.Dropped`, `ws.droppedMessages` counts it);
   * `"close"` drops it and closes the slow connection with 1008 ("Backpressure limit").
   * @default {"drop"}
   */
  backpressurePolicy?: "drop" | "close";
  /**
   * Inbound flow follows outbound backpressure: while more than `highWaterMark` bytes are
   * queued for a connection (sent to it and not yet taken by its socket), the server stops
   * reading from it, so TCP holds the client back, and reads again once the queue is down to
   * `lowWaterMark`. A client that sends requests and does not read the answers then costs
   * about `highWaterMark` of memory, not `maxBackpressure`; nothing it sent is dropped, it waits
   * in TCP. Set `highWaterMark` below `maxBackpressure`, or its messages are dropped before
   * reading pauses. While reading is held, heartbeat pings wait (an answer could not be read);
   * the idle timeout counts from the last message or the last time the queue drained. What the
   * client sent meanwhile waits in the kernel's socket buffers, bounded by the kernel's TCP
   * memory limits. Publishes to a connection are not held back by this (only by
   * `maxBackpressure` and `maxTotalBackpressure`). `false` reads on whatever is queued.
   * @default {{ highWaterMark: 262144, lowWaterMark: 0 }}
   */
  readPause?: ReadPauseOptions | false;
  /**
   * Bytes queued for all connections together (sends and publishes, not yet taken by the
   * sockets) past which `backpressurePolicy` also applies to each connection that holds more
   * than its share: this budget divided by the number of connections with anything queued
   * (idle connections do not shrink the shares). A connection within its share is never
   * affected by what others queue, and while the total is over the budget at least one
   * connection is over its share, so the policy lands on the heaviest. The total is updated
   * when a connection's queue is looked at (after it hands a tick's frames to its socket, when
   * its socket drains or reports progress, when it closes, and by `server.stats()`); between
   * those the sockets only take bytes, so it is an upper bound. `Infinity` disables.
   * @default {268435456} (256 MiB)
   */
  maxTotalBackpressure?: number;
  /**
   * Milliseconds a client has from TCP connect to a complete request head (and the upgrade
   * hook's answer); after it the connection is dropped. Stops slowloris clients from holding
   * sockets. It also bounds a later request head on a persistent connection (from its first
   * byte, 408) and a pause in a request body's arrival (408, or the connection is dropped
   * once the response has begun). 0 disables. @default {10000}
   */
  handshakeTimeout?: number;
  /**
   * Milliseconds without a data message either way, and without a ping or pong from the peer,
   * after which the server closes the connection with 1001 ("Idle timeout"). 0 disables.
   *
   * The peer's pings and pongs count: a peer that answers the heartbeat's pings (browsers do,
   * without the page's help) is alive and wants the connection, and closing it for being quiet
   * would only make an open but idle page reconnect. Dead peers are the heartbeat's to drop.
   * So with the heartbeat on, this closes only peers that neither send nor answer for this
   * long; to close connections that carry no messages whatever their pongs, time them in
   * `message`. Our own pings do not count.
   *
   * On a plain HTTP connection it bounds a streamed response that the client stops reading:
   * when the socket takes nothing more for this long, the connection is dropped (the body is
   * cut short, and the response stream is cancelled).
   * @default {120000} (as Bun's server)
   */
  idleTimeout?: number;
  /**
   * Automatic pings: after `interval` ms without anything from the peer, ping it; if nothing
   * (a pong or any data) arrives within `timeout` ms more, drop the connection (close handler:
   * 1006). Each answered ping updates `ws.latency`. `false` disables.
   * @default {{ interval: 30000, timeout: 10000 }}
   */
  heartbeat?: { interval?: number; timeout?: number } | false;
  /**
   * Open TCP connections (including those still in their handshake) beyond which new ones are
   * refused with 503. @default {Infinity}
   */
  maxConnections?: number;
  /**
   * Per-connection rate limits on what clients send: messages and bytes per second, with a
   * burst allowance, and what happens past them (close with 1008, or drop and count).
   * @default {undefined} (no limit)
   */
  rateLimit?: RateLimitOptions;
  /**
   * Pings and pongs a client may send: `rate` per second, with a burst of `burst` seconds'
   * worth. Every ping costs the server a pong (RFC 6455 §5.5.2) and neither counts as a
   * message, so past this the connection is failed with 1008 and the `error` handler gets a
   * `WebSocketError` with code `"WS_ERR_CONTROL_FLOOD"` (`server.stats().controlFloodCloses`
   * counts them). Applies whether or not `rateLimit` is set; `false` disables it.
   * @default {{ rate: 1000, burst: 1 }}
   */
  controlFrameLimit?: ControlFrameLimitOptions | false;
  /**
   * Frames in one message beyond which the connection is failed with 1008. Autobahn 9.3 sends
   * 65,536; this allows twice that. @default {131072}
   */
  maxFragments?: number;
  /**
   * Milliseconds to wait for the peer's Close frame after ours, and for its TCP close after the
   * closing handshake, before the connection is dropped. @default {5000}
   */
  closeTimeout?: number;
}
