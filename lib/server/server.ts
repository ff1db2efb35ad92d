/**
 * The runtime-neutral server: binds through a runtime adapter's {@linkcode Listen}, drives one
 * handshake phase per new TCP connection (then an open connection or an HTTP responder), and
 * shuts down gracefully.
 *
 * @module
 */
import { HANDLER_NAMES } from "../core/open_connection.ts";
import { isValidCloseCode, MAX_CLOSE_REASON_BYTES } from "../protocol/close.ts";
import { CloseCode } from "../protocol/errors.ts";
import { DEFAULT_MAX_PAYLOAD_LENGTH, OPEN } from "../protocol/protocol.ts";
import { checkInteger } from "../core/_checks.ts";
import { describe } from "../core/_describe.ts";
import { HandshakePhase } from "./handshake_phase.ts";
import { ServerConnection } from "./server_connection.ts";
import { HttpConnection } from "./http_connection.ts";
import { webEngine } from "../protocol/extensions/web_engine.ts";
import { zlibEngine } from "../protocol/extensions/zlib_engine.ts";
import type {
  ControlFrameLimitOptions,
  PerMessageDeflateOptions,
  ReadPauseOptions,
  ServeBaseOptions,
  ServeOptions,
} from "./options.ts";
import type { DeflateSetup, ResolvedOptions, ServerCore, Tracked } from "./server_core.ts";
import { proxyTrust } from "./forwarded.ts";
import { originMatcher } from "./origin.ts";
import { checkRateLimit } from "../core/rate_limit.ts";
import {
  addTraffic,
  prometheusText,
  ServerCounters,
  type ServerStats,
  zeroTraffic,
} from "./stats.ts";
import { LocalTopics, type TopicRegistry } from "./topics.ts";
import type { Listen, Listener, Transport } from "../core/transport.ts";
import { prepare, type PublishOptions, type ServerWebSocket, topicName } from "./websocket.ts";

/**
 * How {@linkcode Server.shutdown} closes the server.
 *
 * @example Tell clients the server restarts
 * ```ts
 * import { connect, serve } from "@sluice/ws";
 * const server = serve({ port: 0 });
 * const client = await connect(`ws://127.0.0.1:${server.port}/`);
 * // 1012 (Service Restart): clients may reconnect; wait at most 2 s for their Close frames.
 * await server.shutdown({ code: 1012, reason: "restarting", timeout: 2_000 });
 * console.log(await client.closed); // { code: 1012, reason: "restarting" }
 * ```
 */
export interface ShutdownOptions {
  /** The close code sent to every open connection: 1000–1003, 1007–1014 or 3000–4999.
   * @default {1001} */
  code?: number;
  /** The close reason, at most 123 bytes of UTF-8. @default {""} */
  reason?: string;
  /** Milliseconds to wait for closing handshakes before dropping what remains; `Infinity`
   * waits as long as they take. @default {10000} */
  timeout?: number;
}

/**
 * A listening WebSocket server, made by {@linkcode serve}.
 *
 * @example
 * ```ts
 * import { serve } from "@sluice/ws";
 * const server = serve({ port: 0, message(ws, data) { ws.send(data); } });
 * console.log(`listening on ${server.hostname}:${server.port}`);
 * await server.shutdown();
 * ```
 */
export class Server<T = undefined> {
  #core: Core<T>;
  #listener: Listener;
  #shutdown: Promise<void> | undefined;

  /**
   * Binds and starts accepting.
   *
   * Not public API: its parameters are internal types. Use `serve`.
   *
   * @param options What to serve.
   * @param listen The runtime adapter's listen function.
   *
   * @ignore
   */
  constructor(options: ServeOptions<T>, listen: Listen) {
    if (typeof options !== "object" || options === null) {
      throw new TypeError(`Cannot serve: the options must be an object, got ${describe(options)}`);
    }
    const { cert, key } = options;
    if ((cert === undefined) !== (key === undefined)) {
      throw new TypeError("Cannot serve: TLS needs both cert and key");
    }
    if (cert !== undefined) checkPem(cert, "cert");
    if (key !== undefined) checkPem(key, "key");
    const hostname = options.hostname ?? "0.0.0.0";
    if (typeof hostname !== "string" || hostname === "") {
      throw new TypeError(
        `Cannot serve: hostname must be an IP address or a host name, got ${describe(hostname)}`,
      );
    }
    const port = options.port ?? 8080;
    integer(port, 0, 65_535, "port");
    const core = new Core<T>(resolve(options));
    warnUnknown(options);
    this.#core = core;
    try {
      this.#listener = listen(
        { hostname, port, cert, key },
        (transport) => core.accept(transport),
      );
    } catch (error) {
      // The port is taken, the certificate is bad...: nothing may outlive the failed serve.
      core.stop();
      throw error;
    }
  }

  /** The bound address. */
  get hostname(): string {
    return this.#listener.hostname;
  }

  /** The bound port: the real one when 0 was asked for. */
  get port(): number {
    return this.#listener.port;
  }

  /** How many WebSocket connections are open. */
  get pendingWebSockets(): number {
    return this.#core.open;
  }

  /**
   * The open WebSocket connections: each one from just before its `open` handler runs until
   * just before its `close` handler runs (connections still in their opening handshake are not
   * in it). The set is live: it changes as connections come and go, including while it is
   * being iterated (a connection that leaves is skipped, one that arrives may be visited).
   *
   * @example Close every connection of one user by hand
   * ```ts
   * import { serve } from "@sluice/ws";
   * const server = serve<{ user: string }>({
   *   port: 0,
   *   upgrade: (request) => ({ data: { user: request.searchParams.get("user") ?? "" } }),
   * });
   * for (const ws of server.clients) {
   *   if (ws.data.user === "mallory") ws.close(4001, "Banned");
   * }
   * console.log(server.clients.size); // 0: nobody has connected
   * await server.shutdown();
   * ```
   */
  get clients(): ReadonlySet<ServerWebSocket<T>> {
    return this.#core.clients;
  }

  /**
   * Publishes a message to every subscriber of a topic. The message is framed once,
   * compressed at most once per compression setting that allows it, and the same bytes go to
   * every subscriber; a subscriber over `maxBackpressure` gets its backpressure policy, and
   * closing subscribers are skipped.
   *
   * @param topic The topic.
   * @param data A string as text, bytes as binary (copied: they may be reused at once).
   * @param options `compress`, as for `ws.send`.
   * @returns How many connections the message reached (sent or queued, not dropped).
   *
   * @example
   * ```ts
   * import { serve } from "@sluice/ws";
   * const server = serve({ port: 0, open(ws) { ws.subscribe("news"); } });
   * console.log(server.publish("news", "hello")); // 0: nobody has subscribed yet
   * await server.shutdown();
   * ```
   */
  publish(
    topic: string,
    data: string | Uint8Array | ArrayBuffer | ArrayBufferView,
    options: Omit<PublishOptions, "includeSelf"> = {},
  ): number {
    // Framed even when nobody here is subscribed: a registry that spans processes forwards it.
    return this.#core.topics.publish(topicName(topic, "publish"), prepare(data), {
      compress: options.compress,
    });
  }

  /**
   * A snapshot of the server's state and its counters since it started: connections, refusals
   * by status, messages and bytes each way, compression, backpressure, rate limits, topics and
   * the heartbeat round-trip histogram. Costs a pass over the open connections.
   *
   * @returns The snapshot.
   *
   * @example
   * ```ts
   * import { serve } from "@sluice/ws";
   * const server = serve({ port: 0 });
   * const { connections, messagesIn, refused } = server.stats();
   * console.log(connections, messagesIn, refused); // 0 0 {}
   * await server.shutdown();
   * ```
   */
  stats(): ServerStats {
    return this.#core.stats();
  }

  /**
   * {@linkcode Server.stats} in the Prometheus text exposition format (version 0.0.4), for a
   * scraper: serve it from the `fetch` handler, or name a path with the `metricsPath` option.
   *
   * @param prefix The metric name prefix. @default {"sluice"}
   * @returns The exposition text.
   */
  metrics(prefix = "sluice"): string {
    return prometheusText(this.#core.stats(), prefix);
  }

  /**
   * How many connections are subscribed to a topic.
   *
   * @param topic The topic.
   * @returns The count.
   */
  subscriberCount(topic: string): number {
    return this.#core.topics.subscriberCount(topic);
  }

  /**
   * Stops accepting, sends a Close frame to every open connection, lets plain HTTP connections
   * finish the response they are writing (idle ones close at once), waits for all of it up to
   * the timeout, then drops whatever remains. Resolves when every socket is
   * gone. Calling it again returns the same promise. The options are checked first: bad ones
   * reject with a `TypeError` or `RangeError` and change nothing, so a later call can still
   * shut the server down.
   *
   * @param options The close code, reason and timeout.
   * @returns A promise that resolves when every connection is closed.
   *
   * @example
   * ```ts
   * import { serve } from "@sluice/ws";
   * const server = serve({ port: 0 });
   * await server.shutdown({ code: 999 }).catch((error) => console.log(error.message));
   * // Cannot shut down: code must be 1000-1003, 1007-1014 or 3000-4999, got 999
   * await server.shutdown({ code: 1012, reason: "Restarting" });
   * ```
   */
  shutdown(options: ShutdownOptions = {}): Promise<void> {
    let checked: Required<ShutdownOptions>;
    try {
      checked = checkShutdown(options);
    } catch (error) {
      return Promise.reject(error);
    }
    return this.#shutdown ??= this.#stop(checked);
  }

  async #stop({ code, reason, timeout }: Required<ShutdownOptions>): Promise<void> {
    this.#listener.close();
    const connections = this.#core.connections;
    for (const connection of connections) {
      // A plain HTTP connection finishes the response it is writing; one mid-handshake has
      // nothing to close gracefully.
      if (connection instanceof HttpConnection) connection.shutdown();
      else if (!(connection instanceof ServerConnection)) connection.terminate();
      else if (connection.webSocket.readyState === OPEN) connection.webSocket.close(code, reason);
    }
    if (connections.size === 0) {
      this.#core.stop();
      return;
    }
    const empty = this.#core.whenEmpty();
    let timer: ReturnType<typeof setTimeout> | undefined;
    // An infinite timeout never fires (setTimeout would fire it at once).
    const late = new Promise<"late">((resolve) => {
      if (timeout !== Infinity) timer = setTimeout(() => resolve("late"), timeout);
    });
    const outcome = await Promise.race([empty, late]);
    clearTimeout(timer);
    if (outcome === "late") {
      for (const connection of connections) connection.terminate();
      await empty;
    }
    this.#core.stop();
  }
}

/** The server's bookkeeping, as its connections see it. */
class Core<T> implements ServerCore<T> {
  readonly options: ResolvedOptions<T>;
  readonly connections = new Set<Tracked<T>>();
  /** The open WebSockets, for `server.clients`. */
  readonly clients = new Set<ServerWebSocket<T>>();
  /** This process's topics: what `stats()` counts. */
  readonly localTopics = new LocalTopics<ServerConnection<T>>();
  /** What connections publish and subscribe through (`topicRegistry`, or the local one). */
  readonly topics: TopicRegistry<ServerConnection<T>>;
  readonly counters = new ServerCounters();
  open = 0;
  now = Date.now();
  #empty: (() => void) | undefined;
  #sweep: ReturnType<typeof setInterval> | undefined;

  constructor(options: ResolvedOptions<T>) {
    this.options = options;
    const topics = options.topicRegistry?.(this.localTopics) ?? this.localTopics;
    for (const method of ["subscribe", "unsubscribe", "publish", "subscriberCount"] as const) {
      if (typeof topics?.[method] !== "function") {
        throw new TypeError(
          `Cannot serve: topicRegistry must return a topic registry (${method} is missing)`,
        );
      }
    }
    this.topics = topics;
    // One timer for every connection's timeouts, a few times per shortest timeout, instead of a
    // timer per connection: 10,000 idle connections cost one interval.
    const shortest = Math.min(
      ...[
        options.handshakeTimeout,
        options.keepAliveTimeout,
        options.idleTimeout,
        options.heartbeatInterval,
        options.heartbeatTimeout,
      ].filter((ms) => ms > 0),
    );
    if (Number.isFinite(shortest)) {
      const period = Math.min(1000, Math.max(25, shortest / 4));
      this.#sweep = setInterval(() => this.#tick(), period);
    }
  }

  #tick(): void {
    const now = this.now = Date.now();
    for (const connection of this.connections) connection.sweep(now);
  }

  /** Stops the timeout sweep (the server is shutting down). */
  stop(): void {
    clearInterval(this.#sweep);
    this.#sweep = undefined;
  }

  accept(transport: Transport): HandshakePhase<T> {
    this.now = Date.now();
    const connection = new HandshakePhase<T>(
      this,
      transport,
      this.connections.size >= this.options.maxConnections,
    );
    this.connections.add(connection);
    return connection;
  }

  whenEmpty(): Promise<void> {
    if (this.connections.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.#empty = resolve);
  }

  handOver(from: Tracked<T>, to: Tracked<T>): void {
    this.connections.delete(from);
    this.connections.add(to);
  }

  opened(connection: ServerConnection<T>): void {
    this.clients.add(connection.webSocket);
    this.open++;
    this.counters.accepted++;
  }

  refused(status: number): void {
    this.counters.refuse(status);
  }

  stats(): ServerStats {
    const counters = this.counters;
    const traffic = zeroTraffic();
    addTraffic(traffic, counters.closed);
    let handshaking = 0;
    let readPaused = 0;
    for (const connection of this.connections) {
      if (!(connection instanceof ServerConnection)) {
        if (connection.handshaking) handshaking++;
        continue;
      }
      addTraffic(traffic, connection.traffic());
      // The pass makes the running total of queued bytes exact for this snapshot.
      connection.observeQueue();
      if (connection.readPaused) readPaused++;
    }
    return {
      connections: this.open,
      handshaking,
      accepted: counters.accepted,
      refused: { ...counters.refused },
      httpRequests: counters.httpRequests,
      httpResponses: { ...counters.httpResponses },
      httpBytesIn: counters.httpBytesIn,
      httpBytesOut: counters.httpBytesOut,
      httpConnections: counters.httpConnections,
      httpKeepAlive: counters.httpIdle,
      ...traffic,
      compressionRatio: traffic.rawOut === 0 ? 0 : traffic.compressedOut / traffic.rawOut,
      backpressureEvents: counters.backpressureEvents,
      droppedMessages: counters.droppedMessages,
      backpressureCloses: counters.backpressureCloses,
      queuedBytes: counters.queuedBytes,
      readPaused,
      rateLimitedMessages: counters.rateLimitedMessages,
      controlFloodCloses: counters.controlFloodCloses,
      topics: this.localTopics.size,
      subscriptions: this.localTopics.subscriptions,
      latency: counters.latencySnapshot(),
    };
  }

  closed(connection: ServerConnection<T>): void {
    connection.leaveTopics();
    this.clients.delete(connection.webSocket);
    this.open--;
  }

  untrack(connection: Tracked<T>): void {
    if (connection instanceof ServerConnection) {
      addTraffic(this.counters.closed, connection.traffic());
    }
    this.connections.delete(connection);
    if (this.connections.size === 0) this.#empty?.();
  }
}

/** The options that are application code: each must be a function when given. */
const HANDLERS = ["upgrade", "fetch", "topicRegistry", ...HANDLER_NAMES] as const;

/**
 * Every option `serve` reads: a name outside it gets a warning (it is most likely a typo). A
 * record, so the type check fails until a new option is listed here.
 */
const OPTION_NAMES: ReadonlySet<string> = new Set(
  Object.keys(
    {
      upgrade: true,
      fetch: true,
      open: true,
      message: true,
      fragment: true,
      drain: true,
      ping: true,
      pong: true,
      close: true,
      error: true,
      port: true,
      hostname: true,
      cert: true,
      key: true,
      origins: true,
      requireOrigin: true,
      trustProxy: true,
      protocols: true,
      metricsPath: true,
      topicRegistry: true,
      maxRequestBodySize: true,
      keepAliveTimeout: true,
      maxRequestsPerConnection: true,
      perMessageDeflate: true,
      maxPayloadLength: true,
      maxHeadSize: true,
      maxHeaders: true,
      maxLineLength: true,
      maxBackpressure: true,
      backpressurePolicy: true,
      handshakeTimeout: true,
      idleTimeout: true,
      heartbeat: true,
      maxConnections: true,
      rateLimit: true,
      controlFrameLimit: true,
      readPause: true,
      maxTotalBackpressure: true,
      maxFragments: true,
      closeTimeout: true,
    } satisfies Record<keyof ServeBaseOptions<unknown> | "upgrade", true>,
  ),
);

/** Checks the kinds of the options that are not numbers (those are checked as they resolve). */
function checkKinds(options: ServeOptions<unknown>): void {
  for (const name of HANDLERS) {
    const handler = options[name];
    if (handler !== undefined && typeof handler !== "function") {
      throw new TypeError(`Cannot serve: ${name} must be a function, got ${describe(handler)}`);
    }
  }
  for (const name of ["protocols", "trustProxy"] as const) {
    const list = options[name];
    if (
      list !== undefined && (!Array.isArray(list) || list.some((item) => typeof item !== "string"))
    ) {
      throw new TypeError(
        `Cannot serve: ${name} must be an array of strings, got ${describe(list)}`,
      );
    }
  }
  const { requireOrigin, metricsPath, perMessageDeflate, heartbeat, rateLimit } = options;
  if (requireOrigin !== undefined && typeof requireOrigin !== "boolean") {
    throw new TypeError(
      `Cannot serve: requireOrigin must be true or false, got ${describe(requireOrigin)}`,
    );
  }
  if (metricsPath !== undefined && (typeof metricsPath !== "string" || metricsPath[0] !== "/")) {
    throw new TypeError(
      `Cannot serve: metricsPath must be a path starting with "/", got ${describe(metricsPath)}`,
    );
  }
  if (perMessageDeflate !== undefined && typeof perMessageDeflate !== "boolean") {
    object(perMessageDeflate, "perMessageDeflate", "true, false or options");
  }
  if (heartbeat !== undefined && heartbeat !== false) {
    object(heartbeat, "heartbeat", "false or { interval, timeout }");
  }
  if (rateLimit !== undefined) object(rateLimit, "rateLimit", "{ messages, bytes, burst, policy }");
}

function object(value: unknown, name: string, expected: string): void {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new TypeError(`Cannot serve: ${name} must be ${expected}, got ${describe(value)}`);
  }
}

/**
 * Warns, once per server, about options `serve` does not know. A warning rather than an error:
 * an options object may be shared with other code, or written for a newer version; but a typo
 * (`onMessage`, `messsage`) would otherwise leave a handler silently unused.
 */
function warnUnknown(options: object): void {
  const unknown = Object.keys(options).filter((name) => !OPTION_NAMES.has(name));
  if (unknown.length === 0) return;
  const named = unknown.map((name) => {
    const guess = closestOption(name);
    return guess === undefined ? `"${name}"` : `"${name}" (did you mean "${guess}"?)`;
  });
  console.warn(
    `sluice: serve() ignores the unknown option${unknown.length > 1 ? "s" : ""} ${
      named.join(", ")
    }`,
  );
}

/** The known option a misspelt or `on`-prefixed name most likely meant, if one is close. */
function closestOption(name: string): string | undefined {
  const plain = name.toLowerCase().replace(/^on(?=.)/, "");
  let best: string | undefined;
  let bestDistance = 3;
  for (const known of OPTION_NAMES) {
    const distance = editDistance(plain, known.toLowerCase());
    if (distance < bestDistance) {
      best = known;
      bestDistance = distance;
    }
  }
  return best;
}

/** Levenshtein distance (the names are short). */
function editDistance(a: string, b: string): number {
  let row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const next = [i];
    for (let j = 1; j <= b.length; j++) {
      next[j] = Math.min(row[j] + 1, next[j - 1] + 1, row[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    row = next;
  }
  return row[b.length];
}

/**
 * Checks that a TLS `cert` or `key` is PEM text, so a file path or a swapped pair gets a clear
 * error here rather than a TLS library's ("NO_START_LINE") from the runtime.
 */
function checkPem(value: unknown, name: "cert" | "key"): void {
  if (typeof value !== "string") {
    throw new TypeError(
      `Cannot serve: ${name} must be PEM text (a string), got ${describe(value)}`,
    );
  }
  if (!value.includes("-----BEGIN")) {
    const path = !/[\r\n]/.test(value) && /[/\\]|\.(pem|crt|cer|key)$/i.test(value.trim());
    throw new TypeError(
      path
        ? `Cannot serve: ${name} looks like a file path (${describe(value)}): pass the PEM text ` +
          `it holds, e.g. readFileSync(path, "utf8") from node:fs`
        : `Cannot serve: ${name} must be PEM text ("-----BEGIN ..."), got ${describe(value)}`,
    );
  }
  const holdsKey = /-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(value);
  const holdsCertificate = value.includes("-----BEGIN CERTIFICATE-----");
  if (name === "cert" ? holdsKey && !holdsCertificate : holdsCertificate && !holdsKey) {
    throw new TypeError(
      `Cannot serve: ${name} holds a ${
        name === "cert" ? "private key" : "certificate"
      }: are cert and key swapped?`,
    );
  }
}

function resolve<T>(options: ServeOptions<T>): ResolvedOptions<T> {
  checkKinds(options as ServeOptions<unknown>);
  return {
    ...options as ServeBaseOptions<T> & Pick<ResolvedOptions<T>, "upgrade">,
    deflate: resolveDeflate(options.perMessageDeflate),
    protocols: options.protocols ?? [],
    maxPayloadLength: positive(
      options.maxPayloadLength,
      DEFAULT_MAX_PAYLOAD_LENGTH,
      "maxPayloadLength",
    ),
    closeTimeout: positive(options.closeTimeout, 5000, "closeTimeout"),
    handshakeTimeout: nonNegative(options.handshakeTimeout, 10_000, "handshakeTimeout"),
    idleTimeout: nonNegative(options.idleTimeout, 120_000, "idleTimeout"),
    heartbeatInterval: options.heartbeat === false
      ? 0
      : positive(options.heartbeat?.interval, 30_000, "heartbeat.interval"),
    heartbeatTimeout: options.heartbeat === false
      ? 0
      : positive(options.heartbeat?.timeout, 10_000, "heartbeat.timeout"),
    maxConnections: positive(options.maxConnections, Infinity, "maxConnections"),
    maxFragments: positive(options.maxFragments, 131_072, "maxFragments"),
    maxBackpressure: nonNegative(options.maxBackpressure, 16 * 1024 * 1024, "maxBackpressure"),
    backpressurePolicy: policy(options.backpressurePolicy),
    ...readPause(options.readPause),
    maxTotalBackpressure: positive(
      options.maxTotalBackpressure,
      256 * 1024 * 1024,
      "maxTotalBackpressure",
    ),
    originAllowed: options.origins === undefined ? undefined : originMatcher(options.origins),
    requireOrigin: options.requireOrigin ?? false,
    rateLimit: options.rateLimit === undefined ? undefined : checkRateLimit(options.rateLimit),
    ...controlFrameLimit(options.controlFrameLimit),
    maxRequestBodySize: nonNegative(options.maxRequestBodySize, 1024 * 1024, "maxRequestBodySize"),
    keepAliveTimeout: positive(options.keepAliveTimeout, 5000, "keepAliveTimeout"),
    maxRequestsPerConnection: requestCount(options.maxRequestsPerConnection),
    trustedProxy: options.trustProxy === undefined || options.trustProxy.length === 0
      ? undefined
      : proxyTrust(options.trustProxy),
    maxHeadSize: positive(options.maxHeadSize, 8192, "maxHeadSize"),
    maxHeaders: positive(options.maxHeaders, 100, "maxHeaders"),
    maxLineLength: positive(options.maxLineLength, 4096, "maxLineLength"),
  };
}

function controlFrameLimit(
  option: ControlFrameLimitOptions | false | undefined,
): { controlFrameRate: number; controlFrameBurst: number } {
  if (option === false) return { controlFrameRate: 0, controlFrameBurst: 1 };
  if (option !== undefined && (typeof option !== "object" || option === null)) {
    throw new RangeError(
      `Cannot serve: controlFrameLimit must be false or { rate, burst }, got ${option}`,
    );
  }
  const rate = positive(option?.rate, 1000, "controlFrameLimit.rate");
  const burst = positive(option?.burst, 1, "controlFrameLimit.burst");
  // A bucket that never holds one frame would fail every client at its first pong.
  if (rate * burst < 1) {
    throw new RangeError(
      "Cannot serve: controlFrameLimit.rate × controlFrameLimit.burst must be at least 1 frame",
    );
  }
  return { controlFrameRate: rate, controlFrameBurst: burst };
}

function readPause(
  option: ReadPauseOptions | false | undefined,
): { readHighWaterMark: number; readLowWaterMark: number } {
  if (option === false) return { readHighWaterMark: Infinity, readLowWaterMark: 0 };
  if (option === undefined) option = {};
  if (typeof option !== "object" || option === null) {
    throw new TypeError(`Cannot serve: readPause must be an object or false, got ${option}`);
  }
  const high = positive(option.highWaterMark, 256 * 1024, "readPause.highWaterMark");
  const low = nonNegative(option.lowWaterMark, 0, "readPause.lowWaterMark");
  if (low > high) {
    throw new RangeError(
      `Cannot serve: readPause.lowWaterMark must not be above readPause.highWaterMark, got ${low} > ${high}`,
    );
  }
  return { readHighWaterMark: high, readLowWaterMark: low };
}

function resolveDeflate(
  option: boolean | PerMessageDeflateOptions | undefined,
): DeflateSetup | undefined {
  if (option === undefined || option === false) return undefined;
  const {
    mode = "shared",
    engine = "zlib",
    threshold = 1024,
    level = 1,
    memLevel = 8,
    serverMaxWindowBits = 15,
    clientMaxWindowBits = 15,
  } = option === true ? {} : option;
  if (mode !== "shared" && mode !== "dedicated") {
    throw new RangeError(`Cannot serve: perMessageDeflate.mode must be "shared" or "dedicated"`);
  }
  if (engine !== "zlib" && engine !== "web") {
    throw new RangeError(`Cannot serve: perMessageDeflate.engine must be "zlib" or "web"`);
  }
  if (engine === "web" && mode !== "shared") {
    throw new RangeError(
      `Cannot serve: the "web" engine has no context takeover; use mode "shared" or engine "zlib"`,
    );
  }
  integer(level, 0, 9, "perMessageDeflate.level");
  integer(memLevel, 1, 9, "perMessageDeflate.memLevel");
  integer(threshold, 0, Number.MAX_SAFE_INTEGER, "perMessageDeflate.threshold");
  // Checks the window bits now (RangeError), not at the first handshake.
  integer(serverMaxWindowBits, 8, 15, "perMessageDeflate.serverMaxWindowBits");
  integer(clientMaxWindowBits, 8, 15, "perMessageDeflate.clientMaxWindowBits");
  const shared = mode === "shared";
  const chosen = engine === "zlib" ? zlibEngine : webEngine;
  // The server's side of the negotiation: local is the server, remote the client.
  const negotiation = {
    localNoContextTakeover: shared,
    remoteNoContextTakeover: shared,
    localMaxWindowBits: serverMaxWindowBits,
    remoteMaxWindowBits: clientMaxWindowBits,
  };
  return {
    engine: chosen,
    negotiation,
    threshold,
    tuning: { level, memLevel },
  };
}

function integer(value: number, min: number, max: number, name: string): void {
  checkInteger("serve", value, min, max, name);
}

function positive(value: number | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback;
  if (!(value > 0) || typeof value !== "number") {
    const message = `Cannot serve: ${name} must be a positive number, got ${describe(value)}`;
    throw typeof value === "number" ? new RangeError(message) : new TypeError(message);
  }
  return value;
}

function requestCount(value: number | undefined): number {
  if (value === Infinity) return value;
  if (value !== undefined) integer(value, 1, Number.MAX_SAFE_INTEGER, "maxRequestsPerConnection");
  return value ?? 1000;
}

function policy(value: "drop" | "close" | undefined): "drop" | "close" {
  if (value === undefined || value === "drop" || value === "close") return value ?? "drop";
  throw new RangeError(
    `Cannot serve: backpressurePolicy must be "drop" or "close", got ${describe(value)}`,
  );
}

function nonNegative(value: number | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback;
  if (!(value >= 0) || !Number.isFinite(value)) {
    const message = `Cannot serve: ${name} must be 0 or a positive number, got ${describe(value)}`;
    throw typeof value === "number" ? new RangeError(message) : new TypeError(message);
  }
  return value;
}

/** Checks {@linkcode ShutdownOptions} before anything is closed, and fills in the defaults. */
function checkShutdown(options: ShutdownOptions): Required<ShutdownOptions> {
  if (typeof options !== "object" || options === null) {
    throw new TypeError(
      `Cannot shut down: the options must be an object, got ${describe(options)}`,
    );
  }
  const { code = CloseCode.GoingAway, reason = "", timeout = 10_000 } = options;
  if (!isValidCloseCode(code)) {
    const message = `Cannot shut down: code must be 1000-1003, 1007-1014 or 3000-4999, got ${
      describe(code)
    }`;
    throw typeof code === "number" ? new RangeError(message) : new TypeError(message);
  }
  if (typeof reason !== "string") {
    throw new TypeError(`Cannot shut down: reason must be a string, got ${describe(reason)}`);
  }
  const bytes = new TextEncoder().encode(reason).length;
  if (bytes > MAX_CLOSE_REASON_BYTES) {
    throw new RangeError(
      `Cannot shut down: reason must be at most ${MAX_CLOSE_REASON_BYTES} bytes of UTF-8, got ${bytes}`,
    );
  }
  if (typeof timeout !== "number" || !(timeout >= 0)) {
    const message = `Cannot shut down: timeout must be 0 or a positive number of ms, got ${
      describe(timeout)
    }`;
    throw typeof timeout === "number" ? new RangeError(message) : new TypeError(message);
  }
  return { code, reason, timeout: timeout > MAX_TIMER_MS ? Infinity : timeout };
}

/** The longest delay setTimeout honours (2^31 − 1 ms); longer ones fire at once. */
const MAX_TIMER_MS = 2 ** 31 - 1;
