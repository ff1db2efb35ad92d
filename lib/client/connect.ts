/**
 * The client: opens a TCP (or TLS) connection through a runtime adapter, runs the opening
 * handshake (RFC 6455 §4.1) and hands the connection to the same open-connection driver the
 * server uses, in the client's role (masked frames, the server closes TCP first).
 *
 * @module
 */
import { checkInteger } from "../core/_checks.ts";
import { describe } from "../core/_describe.ts";
import {
  type ConnectionCounters,
  type ConnectionHome,
  HANDLER_NAMES,
  type Handlers,
  OpenConnection,
  type OpenSettings,
} from "../core/open_connection.ts";
import type { Connect, Transport, TransportHandler } from "../core/transport.ts";
import { HandshakeError, WebSocketError } from "../protocol/errors.ts";
import type { DeflateNegotiationOptions } from "../protocol/extensions/deflate_negotiation.ts";
import { PerMessageDeflate } from "../protocol/extensions/permessage_deflate.ts";
import { zlibEngine } from "../protocol/extensions/zlib_engine.ts";
import { DEFAULT_MAX_PAYLOAD_LENGTH } from "../protocol/protocol.ts";
import { ChunkedDecoder } from "../protocol/http1.ts";
import { ClientHandshake } from "../protocol/upgrade.ts";
import { ClientWebSocket } from "./client_websocket.ts";

/**
 * permessage-deflate as the client offers it (RFC 7692).
 *
 * @example
 * ```ts
 * import { connect, serve } from "@sluice/ws";
 * const server = serve({ port: 0, perMessageDeflate: true });
 * const ws = await connect(`ws://127.0.0.1:${server.port}`, {
 *   perMessageDeflate: { threshold: 256, clientMaxWindowBits: 12 },
 * });
 * console.log(ws.extensions); // permessage-deflate; ...
 * ws.close();
 * await ws.closed;
 * await server.shutdown();
 * ```
 */
export interface ClientDeflateOptions {
  /**
   * `"dedicated"`: context takeover where the server allows it (a zlib stream per direction
   * for the connection: the best ratio for small similar messages); `"shared"`: ask for no
   * context takeover both ways (nothing is kept between messages). @default {"dedicated"}
   */
  mode?: "shared" | "dedicated";
  /** Messages smaller than this many bytes are sent uncompressed, unless `send` is told to
   * compress. @default {1024} */
  threshold?: number;
  /** zlib compression level, 0–9. @default {1} */
  level?: number;
  /** zlib memory level, 1–9. @default {8} */
  memLevel?: number;
  /** The largest window the client compresses with, 8–15 (offered as
   * `client_max_window_bits`). @default {15} */
  clientMaxWindowBits?: number;
  /** The largest window the server may compress with, 8–15 (`server_max_window_bits` is
   * offered below 15). @default {15} */
  serverMaxWindowBits?: number;
}

/**
 * How {@linkcode connect} opens a connection, and the handlers of the connection it opens
 * (the same shapes as `serve`'s).
 *
 * @example
 * ```ts
 * import { connect, serve } from "@sluice/ws";
 * const server = serve({ port: 0, protocols: ["chat"] });
 * const ws = await connect(`ws://127.0.0.1:${server.port}/room`, {
 *   protocols: ["chat"],
 *   headers: { Authorization: "Bearer abc" },
 *   handshakeTimeout: 5000,
 *   message(ws, data) {
 *     console.log(data);
 *   },
 * });
 * console.log(ws.protocol); // chat
 * ws.close(1000, "bye");
 * await ws.closed;
 * await server.shutdown();
 * ```
 */
export interface ConnectOptions extends Handlers<ClientWebSocket> {
  /** Subprotocols offered (Sec-WebSocket-Protocol), in order of preference. @default {[]} */
  protocols?: string[];
  /** Extra request headers: `Authorization`, `Origin`, `Cookie`, … (not the handshake's own).
   * @default {undefined} */
  headers?: Headers | Array<[string, string]> | Record<string, string>;
  /** Offer permessage-deflate: `true` for the defaults, or options. @default {false} */
  perMessageDeflate?: boolean | ClientDeflateOptions;
  /** The largest message accepted, in bytes; a larger one fails the connection with 1009.
   * @default {16777216} */
  maxPayloadLength?: number;
  /** Frames in one message beyond which the connection fails with 1008. @default {131072} */
  maxFragments?: number;
  /**
   * Milliseconds from the start of `connect` to an accepted handshake (TCP connect, TLS and
   * the response head); past it `connect` rejects with `WS_ERR_HANDSHAKE_TIMEOUT`. 0 disables.
   * @default {10000}
   */
  handshakeTimeout?: number;
  /**
   * Milliseconds to wait for the server's Close frame after ours, and for its TCP close after
   * the closing handshake (RFC 6455 §7.1.1 has the server close first), before the connection
   * is dropped. @default {5000}
   */
  closeTimeout?: number;
  /** Milliseconds without a data message either way after which the client closes with 1001.
   * 0 disables. @default {0} */
  idleTimeout?: number;
  /**
   * Automatic pings after `interval` ms of silence from the server; no answer within `timeout`
   * ms drops the connection. `ws.latency` is the last round trip. `false` disables.
   * @default {false}
   */
  heartbeat?: { interval?: number; timeout?: number } | false;
  /** Bytes queued past which `send` drops a message (see `SendStatus.Dropped`).
   * @default {16777216} */
  maxBackpressure?: number;
  /** What a drop does besides dropping: nothing more, or close with 1008. @default {"drop"} */
  backpressurePolicy?: "drop" | "close";
  /** Aborts the connect (rejects with the signal's reason); no effect once open.
   * @default {undefined} */
  signal?: AbortSignal;
  /** `wss:` — PEM certificate(s) of a private CA to trust besides the system's.
   * @default {undefined} */
  ca?: string | string[];
  /** `wss:` — the TLS server name to send and verify, when it is not the URL's host.
   * @default {undefined} (the URL's host) */
  serverName?: string;
}

/** Bytes of a refusal's body kept for the error. */
const MAX_REFUSAL_BODY = 64 * 1024;

/** The client connections of this process: one clock and one sweep of their timeouts. */
class ClientHome implements ConnectionHome {
  now = Date.now();
  readonly counters: ConnectionCounters = {
    backpressureEvents: 0,
    droppedMessages: 0,
    backpressureCloses: 0,
    rateLimitedMessages: 0,
    controlFloodCloses: 0,
    queuedBytes: 0,
    queuing: 0,
    latency() {},
  };
  /** Connections with a heartbeat or an idle timeout, swept by the timer. */
  readonly #timed = new Set<OpenConnection<ClientWebSocket>>();
  #sweep: ReturnType<typeof setInterval> | undefined;
  #period = Infinity;

  /** Starts sweeping a connection's timeouts, the period a quarter of its shortest. */
  watch(connection: OpenConnection<ClientWebSocket>, shortest: number): void {
    this.#timed.add(connection);
    const period = Math.min(1000, Math.max(25, shortest / 4));
    if (period >= this.#period) return;
    this.#period = period;
    clearInterval(this.#sweep);
    this.#sweep = setInterval(() => {
      const now = this.now = Date.now();
      for (const each of this.#timed) each.sweep(now);
    }, period);
  }

  closed(): void {}

  untrack(connection: unknown): void {
    if (!this.#timed.delete(connection as OpenConnection<ClientWebSocket>)) return;
    if (this.#timed.size !== 0) return;
    clearInterval(this.#sweep);
    this.#sweep = undefined;
    this.#period = Infinity;
  }
}

const home = new ClientHome();

/** The option names `connect` reads; others get a warning (most likely a typo). */
const OPTION_NAMES: ReadonlySet<string> = new Set(
  Object.keys(
    {
      protocols: true,
      headers: true,
      perMessageDeflate: true,
      maxPayloadLength: true,
      maxFragments: true,
      handshakeTimeout: true,
      closeTimeout: true,
      idleTimeout: true,
      heartbeat: true,
      maxBackpressure: true,
      backpressurePolicy: true,
      signal: true,
      ca: true,
      serverName: true,
      open: true,
      message: true,
      fragment: true,
      drain: true,
      ping: true,
      pong: true,
      close: true,
      error: true,
    } satisfies Record<keyof ConnectOptions, true>,
  ),
);

/**
 * Opens a WebSocket connection through `dial` (a runtime adapter's connect).
 *
 * @param dial The runtime's connect.
 * @param url `ws://` or `wss://` (`http://` and `https://` are taken as those).
 * @param options How to connect, and the handlers.
 * @returns The open connection, once the handshake has completed.
 */
export function connectWith(
  dial: Connect,
  url: string | URL,
  options: ConnectOptions = {},
): Promise<ClientWebSocket> {
  try {
    return startConnect(dial, url, options);
  } catch (error) {
    return Promise.reject(error);
  }
}

/**
 * {@linkcode connectWith}, but a URL or options that cannot be used throw here, at once, instead
 * of rejecting: for a constructor (the WHATWG `WebSocket`) that must throw what it cannot take.
 *
 * @param dial The transport's connect.
 * @param url As for `connect`.
 * @param options As for `connect`.
 * @returns A promise of the open connection.
 * @throws {TypeError} For a URL or an option of the wrong kind.
 * @throws {RangeError} For an option out of its range.
 *
 * @example
 * ```ts
 * import { startConnect } from "./connect.ts";
 * import { connect as dial } from "../runtime/deno.ts";
 * try {
 *   startConnect(dial, "ws://127.0.0.1:9/", { maxPayloadLength: -1 });
 * } catch (error) {
 *   console.log((error as Error).name); // RangeError
 * }
 * ```
 */
export function startConnect(
  dial: Connect,
  url: string | URL,
  options: ConnectOptions,
): Promise<ClientWebSocket> {
  return new Attempt(dial, url, options).promise;
}

/** One connect: TCP, TLS, the handshake; then the open connection. */
class Attempt implements TransportHandler {
  readonly promise: Promise<ClientWebSocket>;
  #resolve!: (ws: ClientWebSocket) => void;
  #reject!: (error: unknown) => void;
  #url: URL;
  #options: ConnectOptions;
  #settings: OpenSettings<ClientWebSocket>;
  #deflate: Required<ClientDeflateOptions> | undefined;
  #handshake: ClientHandshake;
  #transport: Transport | undefined;
  #abort = new AbortController();
  #timer: ReturnType<typeof setTimeout> | undefined;
  #signal: AbortSignal | undefined;
  #onAbort: (() => void) | undefined;
  /** A refusal whose body is still arriving. */
  #refusal: {
    error: HandshakeError;
    body: Uint8Array[];
    received: number;
    want: number;
    /** The body is chunked (RFC 9112 §7.1). */
    chunked: ChunkedDecoder | undefined;
  } | undefined;
  #done = false;

  constructor(dial: Connect, url: string | URL, options: ConnectOptions) {
    if (typeof options !== "object" || options === null) {
      throw new TypeError(
        `Cannot connect: the options must be an object, got ${describe(options)}`,
      );
    }
    warnUnknown(options);
    const target = typeof url === "string" ? parseUrl(url) : url;
    if (!(target instanceof URL)) {
      throw new TypeError(
        `Cannot connect: the URL must be a string or a URL, got ${describe(url)}`,
      );
    }
    // http: and https: name the same endpoints (as the WHATWG WebSocket constructor takes them).
    if (target.protocol === "http:" || target.protocol === "https:") {
      target.protocol = target.protocol === "http:" ? "ws:" : "wss:";
    }
    this.#url = target;
    this.#options = options;
    this.#settings = resolve(options);
    this.#deflate = resolveDeflate(options.perMessageDeflate);
    const deflate = this.#deflate;
    try {
      this.#handshake = new ClientHandshake(target, {
        protocols: options.protocols,
        headers: options.headers,
        perMessageDeflate: deflate === undefined ? false : negotiation(deflate),
      });
    } catch (error) {
      // The request's own checks, worded for connect's caller.
      if (error instanceof TypeError && error.message.startsWith("Cannot write the request: ")) {
        throw new TypeError(
          `Cannot connect: ${error.message.slice("Cannot write the request: ".length)}`,
        );
      }
      throw error;
    }
    const ca = options.ca;
    if (
      ca !== undefined && typeof ca !== "string" &&
      !(Array.isArray(ca) && ca.every((each) => typeof each === "string"))
    ) {
      throw new TypeError(
        `Cannot connect: ca must be a PEM string or an array of them, got ${describe(ca)}`,
      );
    }
    if (options.serverName !== undefined && typeof options.serverName !== "string") {
      throw new TypeError(
        `Cannot connect: serverName must be a string, got ${describe(options.serverName)}`,
      );
    }
    const signal = options.signal;
    if (signal !== undefined && !(signal instanceof AbortSignal)) {
      throw new TypeError(`Cannot connect: signal must be an AbortSignal, got ${describe(signal)}`);
    }
    this.promise = new Promise((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
    });
    if (signal?.aborted) {
      this.#fail(signal.reason);
      return;
    }
    if (signal !== undefined) {
      this.#signal = signal;
      this.#onAbort = () => this.#fail(signal.reason);
      signal.addEventListener("abort", this.#onAbort, { once: true });
    }
    const timeout = options.handshakeTimeout ?? 10_000;
    if (timeout !== 0) {
      this.#timer = setTimeout(() => {
        // The head of a refusal came in time: it is the answer, with what came of its body.
        if (this.#refusal !== undefined) {
          this.#refused();
          return;
        }
        this.#fail(
          new WebSocketError(
            "WS_ERR_HANDSHAKE_TIMEOUT",
            `Cannot connect to ${target.host}: no accepted handshake within ${timeout} ms`,
          ),
        );
      }, timeout);
    }
    const secure = target.protocol === "wss:";
    // URL keeps an IPv6 host in brackets; sockets take the address without them.
    const hostname = target.hostname.startsWith("[")
      ? target.hostname.slice(1, -1)
      : target.hostname;
    const port = target.port === "" ? (secure ? 443 : 80) : Number(target.port);
    dial({
      hostname,
      port,
      tls: secure
        ? { ca: typeof ca === "string" ? [ca] : ca, serverName: options.serverName }
        : undefined,
      signal: this.#abort.signal,
    }, this).then(
      (transport) => this.#opened(transport),
      (cause) => {
        if (this.#done) return;
        this.#fail(
          cause instanceof WebSocketError || this.#abort.signal.aborted
            ? cause
            : new WebSocketError(
              "WS_ERR_CONNECT",
              cause instanceof Error ? cause.message : `Cannot connect to ${target.host}`,
              { cause },
            ),
        );
      },
    );
  }

  #opened(transport: Transport): void {
    if (this.#done) {
      transport.destroy();
      return;
    }
    this.#transport = transport;
    transport.write(this.#handshake.request, false);
  }

  // TransportHandler, until the handshake is over.

  /** @internal */
  onData(chunk: Uint8Array): void {
    if (this.#done) return;
    const refusal = this.#refusal;
    if (refusal !== undefined) {
      this.#readRefusal(chunk);
      return;
    }
    const state = this.#handshake.receive(chunk);
    if (state === 0) return;
    if (state === 1) {
      this.#accept();
      return;
    }
    const error = this.#handshake.error!;
    if (error.code !== "WS_ERR_HANDSHAKE_REFUSED") {
      this.#fail(error);
      return;
    }
    // A refusal: read its body (up to a cap), for the error. RFC 9110 §6.4.1: 1xx, 204 and
    // 304 responses have none, whatever their headers say.
    const status = error.status;
    const length = error.headers.find(([name]) => name === "content-length")?.[1];
    // RFC 9112 §6.3: a chunked Transfer-Encoding wins over Content-Length.
    const codings = error.headers.filter(([name]) => name === "transfer-encoding")
      .map(([, value]) => value).join(",").split(",").map((coding) => coding.trim().toLowerCase());
    const chunked = codings.at(-1) === "chunked" ? new ChunkedDecoder() : undefined;
    const want = status < 200 || status === 204 || status === 304 ? 0 : Math.min(
      chunked === undefined && length !== undefined && /^[0-9]{1,15}$/.test(length)
        ? Number(length)
        : MAX_REFUSAL_BODY,
      MAX_REFUSAL_BODY,
    );
    this.#refusal = { error, body: [], received: 0, want, chunked };
    this.#readRefusal(error.body);
  }

  #readRefusal(chunk: Uint8Array): void {
    const refusal = this.#refusal!;
    const chunked = refusal.chunked;
    const pieces = chunked === undefined ? [chunk] : chunked.push(chunk);
    for (const each of pieces) {
      if (each.length === 0 || refusal.received >= refusal.want) continue;
      const piece = each.subarray(0, refusal.want - refusal.received);
      refusal.body.push(piece);
      refusal.received += piece.length;
    }
    // A chunked body ends with its last chunk (or at broken framing: what came is kept).
    if (
      refusal.received >= refusal.want ||
      (chunked !== undefined && (chunked.done || chunked.failed))
    ) {
      this.#refused();
    }
  }

  #refused(): void {
    const { error, body, received } = this.#refusal!;
    const bytes = new Uint8Array(received);
    let offset = 0;
    for (const piece of body) {
      bytes.set(piece, offset);
      offset += piece.length;
    }
    this.#fail(
      new HandshakeError(error.code, error.message, {
        status: error.status,
        headers: error.headers,
        body: bytes,
      }),
    );
  }

  /** @internal */
  onDrain(): void {}

  /** @internal */
  onBelow(): void {}

  /** @internal */
  onEnd(): void {
    if (this.#done) return;
    if (this.#refusal !== undefined) this.#refused();
    else this.#fail(this.#handshake.end());
  }

  /** @internal */
  onClose(error?: unknown): void {
    if (this.#done) return;
    if (this.#refusal !== undefined) {
      this.#refused();
      return;
    }
    const ended = this.#handshake.end();
    this.#fail(
      error === undefined ? ended : new HandshakeError(ended.code, ended.message, { cause: error }),
    );
  }

  #accept(): void {
    const result = this.#handshake.result!;
    const transport = this.#transport!;
    this.#finish();
    // The home's clock only moves while some connection has timeouts: bring it to now before
    // the connection reads it to start its idle and heartbeat clocks.
    home.now = Date.now();
    const deflate = this.#deflate;
    const agreement = result.deflate;
    const connection = new OpenConnection<ClientWebSocket>(home, transport, this.#settings, {
      role: "client",
      deflate: agreement === undefined || deflate === undefined ? undefined : new PerMessageDeflate(
        zlibEngine,
        agreement.params,
        deflate.threshold,
        { level: deflate.level, memLevel: deflate.memLevel },
      ),
    });
    const ws = new ClientWebSocket(connection, {
      url: this.#url.href,
      headers: result.head.headers,
      protocol: result.protocol,
      extensions: result.extensions,
      remoteAddress: transport.remoteAddress,
      remotePort: transport.remotePort,
    });
    transport.setHandler(connection);
    const settings = this.#settings;
    const shortest = Math.min(
      ...[settings.idleTimeout, settings.heartbeatInterval, settings.heartbeatTimeout]
        .filter((ms) => ms > 0),
    );
    if (Number.isFinite(shortest)) home.watch(connection, shortest);
    // `open`, and the messages that came with the response, run before `connect` resolves:
    // compressed ones once their inflates are done.
    connection.start(ws, result.rest.length === 0 ? [] : [result.rest.slice()]);
    const inflated = connection.whenInflated();
    if (inflated === undefined) this.#resolve(ws);
    else void inflated.then(() => this.#resolve(ws));
  }

  /** Rejects, and drops the connection if it was made. */
  #fail(error: unknown): void {
    if (this.#done) return;
    this.#finish();
    this.#abort.abort(error);
    this.#transport?.destroy();
    this.#reject(error);
  }

  #finish(): void {
    this.#done = true;
    clearTimeout(this.#timer);
    if (this.#onAbort !== undefined) this.#signal!.removeEventListener("abort", this.#onAbort);
  }
}

function parseUrl(url: string): URL {
  try {
    return new URL(url);
  } catch (cause) {
    throw new TypeError(`Cannot connect: ${describe(url)} is not a URL`, { cause });
  }
}

function warnUnknown(options: object): void {
  for (const name of Object.keys(options)) {
    if (!OPTION_NAMES.has(name)) {
      console.warn(`sluice: connect ignores the unknown option "${name}"`);
    }
  }
}

/** The options with every default filled in, checked. */
function resolve(options: ConnectOptions): OpenSettings<ClientWebSocket> {
  for (const name of HANDLER_NAMES) {
    const handler = options[name];
    if (handler !== undefined && typeof handler !== "function") {
      throw new TypeError(`Cannot connect: ${name} must be a function, got ${describe(handler)}`);
    }
  }
  const heartbeat = options.heartbeat ?? false;
  if (heartbeat !== false && (typeof heartbeat !== "object" || heartbeat === null)) {
    throw new TypeError(
      `Cannot connect: heartbeat must be false or { interval, timeout }, got ${
        describe(heartbeat)
      }`,
    );
  }
  const policy = options.backpressurePolicy ?? "drop";
  if (policy !== "drop" && policy !== "close") {
    throw new TypeError(
      `Cannot connect: backpressurePolicy must be "drop" or "close", got ${describe(policy)}`,
    );
  }
  count(options.handshakeTimeout, "handshakeTimeout", true);
  return {
    open: options.open,
    message: options.message,
    fragment: options.fragment,
    drain: options.drain,
    ping: options.ping,
    pong: options.pong,
    close: options.close,
    error: options.error,
    maxPayloadLength: count(options.maxPayloadLength, "maxPayloadLength", false) ??
      DEFAULT_MAX_PAYLOAD_LENGTH,
    maxFragments: count(options.maxFragments, "maxFragments", false) ?? 131072,
    maxBackpressure: count(options.maxBackpressure, "maxBackpressure", true) ?? 16 * 1024 * 1024,
    backpressurePolicy: policy,
    readHighWaterMark: 256 * 1024,
    readLowWaterMark: 0,
    maxTotalBackpressure: Infinity,
    closeTimeout: count(options.closeTimeout, "closeTimeout", false) ?? 5000,
    idleTimeout: count(options.idleTimeout, "idleTimeout", true) ?? 0,
    heartbeatInterval: heartbeat === false
      ? 0
      : count(heartbeat.interval, "heartbeat.interval", false) ?? 30_000,
    heartbeatTimeout: heartbeat === false
      ? 0
      : count(heartbeat.timeout, "heartbeat.timeout", false) ?? 10_000,
    controlFrameRate: 1000,
    controlFrameBurst: 1,
    rateLimit: undefined,
  };
}

/** Checks a count of bytes or milliseconds: a whole number, above 0 (or 0 when allowed). */
function count(value: number | undefined, name: string, zero: boolean): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== "number" || !Number.isInteger(value) || value < (zero ? 0 : 1)) {
    const message = `Cannot connect: ${name} must be an integer ${
      zero ? "of 0 or more" : "above 0"
    }, got ${describe(value)}`;
    throw typeof value === "number" ? new RangeError(message) : new TypeError(message);
  }
  return value;
}

function resolveDeflate(
  option: boolean | ClientDeflateOptions | undefined,
): Required<ClientDeflateOptions> | undefined {
  if (option === undefined || option === false) return undefined;
  if (option !== true && (typeof option !== "object" || option === null)) {
    throw new TypeError(
      `Cannot connect: perMessageDeflate must be true, false or options, got ${describe(option)}`,
    );
  }
  const {
    mode = "dedicated",
    threshold = 1024,
    level = 1,
    memLevel = 8,
    clientMaxWindowBits = 15,
    serverMaxWindowBits = 15,
  } = option === true ? {} : option;
  if (mode !== "shared" && mode !== "dedicated") {
    throw new RangeError(`Cannot connect: perMessageDeflate.mode must be "shared" or "dedicated"`);
  }
  const range = (value: number, min: number, max: number, name: string) =>
    checkInteger("connect", value, min, max, `perMessageDeflate.${name}`);
  range(threshold, 0, Number.MAX_SAFE_INTEGER, "threshold");
  range(level, 0, 9, "level");
  range(memLevel, 1, 9, "memLevel");
  range(clientMaxWindowBits, 8, 15, "clientMaxWindowBits");
  range(serverMaxWindowBits, 8, 15, "serverMaxWindowBits");
  return { mode, threshold, level, memLevel, clientMaxWindowBits, serverMaxWindowBits };
}

/** The client's side of the negotiation: local is the client, remote the server. */
function negotiation(deflate: Required<ClientDeflateOptions>): DeflateNegotiationOptions {
  const shared = deflate.mode === "shared";
  return {
    localNoContextTakeover: shared,
    remoteNoContextTakeover: shared,
    localMaxWindowBits: deflate.clientMaxWindowBits,
    remoteMaxWindowBits: deflate.serverMaxWindowBits,
  };
}
