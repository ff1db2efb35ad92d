/**
 * The runtime-neutral server: binds through a runtime adapter's {@linkcode Listen}, drives one
 * {@linkcode Connection} per TCP connection, and shuts down gracefully.
 *
 * @module
 */
import { CloseCode } from "../protocol/errors.ts";
import { DEFAULT_MAX_PAYLOAD_LENGTH, OPEN } from "../protocol/protocol.ts";
import { Connection } from "./connection.ts";
import { negotiateDeflate } from "../protocol/extensions/deflate_negotiation.ts";
import { webEngine } from "../protocol/extensions/web_engine.ts";
import { zlibEngine } from "../protocol/extensions/zlib_engine.ts";
import type { PerMessageDeflateOptions, ReadPauseOptions, ServeOptions } from "./options.ts";
import type { DeflateSetup, ResolvedOptions, ServerCore } from "./server_core.ts";
import { proxyTrust } from "./forwarded.ts";
import { originMatcher } from "./origin.ts";
import { checkRateLimit } from "./rate_limit.ts";
import {
  addTraffic,
  prometheusText,
  ServerCounters,
  type ServerStats,
  zeroTraffic,
} from "./stats.ts";
import { LocalTopics } from "./topics.ts";
import type { Listen, Listener, Transport } from "./transport.ts";
import { prepare, type PublishOptions, topicName } from "./websocket.ts";

/** How {@linkcode Server.shutdown} closes the server. */
export interface ShutdownOptions {
  /** The close code sent to every open connection. @default {1001} */
  code?: number;
  /** The close reason. @default {""} */
  reason?: string;
  /** Milliseconds to wait for closing handshakes before dropping what remains. @default {10000} */
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
   * @param options What to serve.
   * @param listen The runtime adapter's listen function.
   */
  constructor(options: ServeOptions<T>, listen: Listen) {
    const { cert, key } = options;
    if ((cert === undefined) !== (key === undefined)) {
      throw new TypeError("Cannot serve: TLS needs both cert and key");
    }
    const core = new Core<T>(resolve(options));
    this.#core = core;
    try {
      this.#listener = listen(
        { hostname: options.hostname ?? "0.0.0.0", port: options.port ?? 8080, cert, key },
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
   * Stops accepting, sends a Close frame to every open connection, waits for their closing
   * handshakes up to the timeout, then drops whatever remains. Resolves when every socket is
   * gone. Calling it again returns the same promise.
   *
   * @param options The close code, reason and timeout.
   * @returns A promise that resolves when every connection is closed.
   */
  shutdown(options: ShutdownOptions = {}): Promise<void> {
    return this.#shutdown ??= this.#stop(options);
  }

  async #stop(options: ShutdownOptions): Promise<void> {
    const { code = CloseCode.GoingAway, reason = "", timeout = 10_000 } = options;
    this.#listener.close();
    const connections = this.#core.connections;
    for (const connection of connections) {
      const ws = connection.webSocket;
      if (ws === undefined) connection.terminate(); // Mid-handshake: nothing to close gracefully.
      else if (ws.readyState === OPEN) ws.close(code, reason);
    }
    if (connections.size === 0) {
      this.#core.stop();
      return;
    }
    const empty = this.#core.whenEmpty();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<"late">((resolve) =>
      timer = setTimeout(() => resolve("late"), timeout)
    );
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
  readonly connections = new Set<Connection<T>>();
  readonly topics = new LocalTopics<Connection<T>>();
  readonly counters = new ServerCounters();
  open = 0;
  now = Date.now();
  #empty: (() => void) | undefined;
  #sweep: ReturnType<typeof setInterval> | undefined;

  constructor(options: ResolvedOptions<T>) {
    this.options = options;
    // One timer for every connection's timeouts, a few times per shortest timeout, instead of a
    // timer per connection: 10,000 idle connections cost one interval.
    const shortest = Math.min(
      ...[
        options.handshakeTimeout,
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

  accept(transport: Transport): Connection<T> {
    this.now = Date.now();
    const connection = new Connection<T>(
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

  opened(_connection: Connection<T>): void {
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
      if (connection.webSocket === undefined) {
        handshaking++;
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
      ...traffic,
      compressionRatio: traffic.rawOut === 0 ? 0 : traffic.compressedOut / traffic.rawOut,
      backpressureEvents: counters.backpressureEvents,
      droppedMessages: counters.droppedMessages,
      backpressureCloses: counters.backpressureCloses,
      queuedBytes: counters.queuedBytes,
      readPaused,
      rateLimitedMessages: counters.rateLimitedMessages,
      topics: this.topics.size,
      subscriptions: this.topics.subscriptions,
      latency: counters.latencySnapshot(),
    };
  }

  closed(_connection: Connection<T>): void {
    this.open--;
  }

  untrack(connection: Connection<T>): void {
    if (connection.webSocket !== undefined) addTraffic(this.counters.closed, connection.traffic());
    this.connections.delete(connection);
    if (this.connections.size === 0) this.#empty?.();
  }
}

function resolve<T>(options: ServeOptions<T>): ResolvedOptions<T> {
  return {
    ...options,
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
    maxRequestBodySize: nonNegative(options.maxRequestBodySize, 1024 * 1024, "maxRequestBodySize"),
    trustedProxy: options.trustProxy === undefined || options.trustProxy.length === 0
      ? undefined
      : proxyTrust(options.trustProxy),
    maxHeadSize: positive(options.maxHeadSize, 8192, "maxHeadSize"),
    maxHeaders: positive(options.maxHeaders, 100, "maxHeaders"),
    maxLineLength: positive(options.maxLineLength, 4096, "maxLineLength"),
  };
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
  const shared = mode === "shared";
  const chosen = engine === "zlib" ? zlibEngine : webEngine;
  const negotiation = {
    serverNoContextTakeover: shared,
    clientNoContextTakeover: shared,
    serverMaxWindowBits,
    clientMaxWindowBits,
  };
  // Checks the window bits now (RangeError), not at the first handshake.
  negotiateDeflate([], negotiation);
  return {
    engine: chosen,
    negotiation,
    threshold,
    tuning: { level, memLevel },
  };
}

function integer(value: number, min: number, max: number, name: string): void {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new RangeError(`Cannot serve: ${name} must be an integer from ${min} to ${max}`);
  }
}

function positive(value: number | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback;
  if (!(value > 0)) {
    throw new RangeError(`Cannot serve: ${name} must be a positive number, got ${value}`);
  }
  return value;
}

function policy(value: "drop" | "close" | undefined): "drop" | "close" {
  if (value === undefined || value === "drop" || value === "close") return value ?? "drop";
  throw new RangeError(`Cannot serve: backpressurePolicy must be "drop" or "close", got ${value}`);
}

function nonNegative(value: number | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback;
  if (!(value >= 0) || !Number.isFinite(value)) {
    throw new RangeError(`Cannot serve: ${name} must be 0 or a positive number, got ${value}`);
  }
  return value;
}
