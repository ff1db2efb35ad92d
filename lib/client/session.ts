/**
 * The client side of the session protocol `sluice.v1` (lib/session/PROTOCOL.md): a session that
 * outlives its WebSocket connections. It reconnects with backoff, resumes the session, re-sends
 * what the server had not acknowledged, keeps a bounded offline queue, resumes topic
 * subscriptions from their positions and drops what it already delivered.
 *
 * Runtime-neutral: it takes a WebSocket factory (the page's `WebSocket` in a browser, sluice's or
 * the runtime's on Deno and Bun) and names no runtime, so it runs in the browser too.
 *
 * @module
 */
import { checkInteger } from "../core/_checks.ts";
import {
  type ClientFrame,
  decodeServerFrame,
  encodeFrame,
  type Position,
  type ResetReason,
  type ResumeRefusal,
  type ServerFrame,
  SESSION_PROTOCOL,
  type SessionData,
  SessionProtocolError,
} from "../session/wire.ts";
import { Fifo } from "./_session_fifo.ts";

/**
 * What the client needs of a WebSocket: the part of the WHATWG `WebSocket` it uses. The page's
 * `WebSocket`, Deno's and Bun's, and sluice's `WebSocket` facade all fit.
 *
 * @example
 * ```ts
 * import { SessionClient, type WebSocketLike } from "@sluice/ws";
 * // Any WHATWG-shaped WebSocket fits: the page's, the runtime's, or sluice's facade.
 * const socket: WebSocketLike = new WebSocket("ws://127.0.0.1:1", ["sluice.v1"]);
 * socket.onerror = () => {};
 * socket.close();
 * const client = new SessionClient("ws://127.0.0.1:1", { webSocket: () => socket });
 * client.close();
 * ```
 */
export interface WebSocketLike {
  /** Set to `"arraybuffer"` by the client, so binary messages arrive as `ArrayBuffer`s. */
  binaryType: string;
  /** 0 connecting, 1 open, 2 closing, 3 closed. */
  readonly readyState: number;
  /** The subprotocol the server selected. */
  readonly protocol: string;
  /** Called when the connection opens. */
  onopen: ((event: never) => unknown) | null;
  /** Called with `{ data }` for each message: a string, or an `ArrayBuffer`. */
  onmessage: ((event: never) => unknown) | null;
  /** Called with `{ code, reason }` once the connection is closed. */
  onclose: ((event: never) => unknown) | null;
  /** Called on an error (a close event follows). */
  onerror: ((event: never) => unknown) | null;
  /** Sends a message. */
  send(data: string | Uint8Array): void;
  /** Starts the closing handshake (or abandons a connection still connecting). */
  close(code?: number, reason?: string): void;
}

/**
 * Opens a WebSocket: `(url, protocols) => new WebSocket(url, protocols)`.
 *
 * @param url The server's URL.
 * @param protocols The subprotocols to offer: `["sluice.v1"]`.
 * @returns A new WebSocket, connecting.
 *
 * @example
 * ```ts
 * import { SessionClient, WebSocket } from "@sluice/ws";
 * // In a browser the default is the page's WebSocket; here, sluice's WHATWG facade.
 * const client = new SessionClient("ws://127.0.0.1:1", {
 *   webSocket: (url, protocols) => new WebSocket(url, protocols),
 * });
 * console.log(client.state); // connecting
 * client.close();
 * ```
 */
export type WebSocketFactory = (url: string, protocols: string[]) => WebSocketLike;

/**
 * How the client waits between connection attempts (exponential backoff with full jitter).
 *
 * @example
 * ```ts
 * import { connectSession } from "@sluice/ws";
 * // Wait up to 250 ms, 500 ms, 1 s… at most 10 s between attempts; count again after 30 s up.
 * const client = connectSession("ws://127.0.0.1:1", {
 *   backoff: { base: 250, cap: 10_000, minUptime: 30_000 },
 * });
 * client.on("reconnecting", ({ attempt, delay }) => console.log(attempt, delay <= 250)); // 1 true
 * await new Promise((resolve) => client.on("reconnecting", resolve));
 * client.close();
 * ```
 */
export interface SessionBackoffOptions {
  /**
   * Milliseconds: the n-th attempt in a row waits a random time from 0 to
   * `min(cap, base * 2^(n-1))`.
   * @default 500
   */
  base?: number;
  /**
   * The longest wait, in milliseconds.
   * @default 30000
   */
  cap?: number;
  /**
   * Milliseconds a session must stay open before the attempt count starts again from 1; a server
   * that accepts and drops at once keeps the waits growing.
   * @default 5000
   */
  minUptime?: number;
}

/**
 * Bounds on the reliable messages and requests the client holds that the server has not
 * acknowledged: waiting to be sent (offline) or sent and awaiting their acknowledgement.
 *
 * @example
 * ```ts
 * import { connectSession } from "@sluice/ws";
 * // Hold at most 100 messages or 64 KiB for 10 s while offline; past that, drop the oldest.
 * const client = connectSession("ws://127.0.0.1:1", {
 *   queue: { maxMessages: 100, maxBytes: 65_536, maxAge: 10_000, overflow: "drop-oldest" },
 * });
 * const sent = client.send("queued while offline");
 * client.close();
 * await sent.catch((error) => console.log(error.code)); // SESSION_ERR_CLOSED
 * ```
 */
export interface SessionQueueOptions {
  /**
   * How many it holds at most.
   * @default 1000
   */
  maxMessages?: number;
  /**
   * How many bytes of data it holds at most: bytes count their `byteLength`, strings their
   * `length` (UTF-16 code units, which is what they occupy at least, and cheap to count).
   * @default 1048576
   */
  maxBytes?: number;
  /**
   * Milliseconds a message may wait to be sent (while offline) before it is rejected with
   * `SESSION_ERR_EXPIRED`; 0 for no limit. A message already sent is never expired: it is
   * re-sent until acknowledged.
   * @default 60000
   */
  maxAge?: number;
  /**
   * When a send would pass a bound: `"reject"` rejects the new message
   * (`SESSION_ERR_QUEUE_FULL`); `"drop-oldest"` rejects the oldest messages still waiting to be
   * sent (`SESSION_ERR_DROPPED`) to make room, and the new one if that is not enough (messages
   * already sent are never dropped: the server may have them).
   * @default "reject"
   */
  overflow?: "reject" | "drop-oldest";
}

/**
 * Options of {@linkcode SessionClient}.
 *
 * @example
 * ```ts
 * import { connectSession, serveSessions } from "@sluice/ws";
 * const server = serveSessions({ port: 0, secret: "a secret of at least 16 characters", request: () => "pong" });
 * const client = connectSession(`ws://127.0.0.1:${server.port}`, {
 *   backoff: { base: 500, cap: 30_000 },
 *   queue: { maxMessages: 1000, overflow: "reject" },
 *   requestTimeout: 5_000,
 *   welcomeTimeout: 10_000,
 * });
 * console.log(await client.request("ping")); // pong
 * client.close();
 * await server.shutdown();
 * ```
 */
export interface SessionClientOptions {
  /**
   * Opens the WebSocket connections.
   * @default (url, protocols) => new globalThis.WebSocket(url, protocols)
   */
  webSocket?: WebSocketFactory;
  /**
   * Reconnection delays.
   * @default {}
   */
  backoff?: SessionBackoffOptions;
  /**
   * Bounds on unacknowledged messages.
   * @default {}
   */
  queue?: SessionQueueOptions;
  /**
   * Default `timeout` of `request`, in milliseconds; 0 for none.
   * @default 30000
   */
  requestTimeout?: number;
  /**
   * Milliseconds from a dial to the server's `welcome` (connect, WebSocket handshake and hello):
   * past it the connection is dropped and another attempt follows.
   * @default 10000
   */
  welcomeTimeout?: number;
  /**
   * Milliseconds the client waits for a socket it closed to report its close; past it, the
   * socket is abandoned (its events ignored) and the client carries on.
   * @default 5000
   */
  closeTimeout?: number;
  /**
   * The random source of the backoff jitter and the `bye` delay: a number in [0, 1). A seam for
   * tests and simulations.
   * @default Math.random
   */
  random?: () => number;
}

/**
 * Options of {@linkcode SessionClient.send}.
 *
 * @example
 * ```ts
 * import { connectSession, serveSessions } from "@sluice/ws";
 * const server = serveSessions({
 *   port: 0,
 *   secret: "a secret of at least 16 characters",
 *   message: (_session, data) => console.log(data), // typing, then hello
 * });
 * const client = connectSession(`ws://127.0.0.1:${server.port}`);
 * await new Promise((resolve) => client.on("open", resolve));
 * await client.send("typing", { volatile: true }); // at most once: only while open
 * await client.send("hello", { signal: AbortSignal.timeout(5_000) }); // exactly once
 * client.close();
 * await server.shutdown();
 * ```
 */
export interface SessionSendOptions {
  /**
   * Send at most once, without a sequence number or an acknowledgement: the promise resolves
   * once the message is written, and rejects with `SESSION_ERR_NOT_OPEN` when the session is
   * not open (volatile messages are never queued).
   * @default false
   */
  volatile?: boolean;
  /**
   * Cancels the message: one still waiting to be sent is removed and its promise rejected with
   * the signal's reason; one already sent has its promise rejected, but is still re-sent if the
   * connection drops before its acknowledgement (its sequence number is taken), so the server
   * may process it.
   * @default undefined
   */
  signal?: AbortSignal;
}

/**
 * Options of {@linkcode SessionClient.request}.
 *
 * @example
 * ```ts
 * import { connectSession, serveSessions } from "@sluice/ws";
 * const server = serveSessions({
 *   port: 0,
 *   secret: "a secret of at least 16 characters",
 *   request: (_session, data) => `price of ${data}: 3`,
 * });
 * const client = connectSession(`ws://127.0.0.1:${server.port}`);
 * const reply = await client.request("tea", { timeout: 2_000, signal: AbortSignal.timeout(5_000) });
 * console.log(reply); // price of tea: 3
 * client.close();
 * await server.shutdown();
 * ```
 */
export interface SessionRequestOptions {
  /**
   * Milliseconds, from the call, to wait for the reply (offline time included) before rejecting
   * with `SESSION_ERR_TIMEOUT`; 0 for none. The request is then cancelled locally: if it was not
   * sent, it never is; if it was, a late reply is acknowledged and dropped.
   * @default the client's requestTimeout
   */
  timeout?: number;
  /**
   * Cancels the request as a timeout does, rejecting with the signal's reason.
   * @default undefined
   */
  signal?: AbortSignal;
}

/**
 * What a {@linkcode SessionClient} is doing.
 *
 * @example
 * ```ts
 * import { connectSession, type SessionClientState } from "@sluice/ws";
 * const client = connectSession("ws://127.0.0.1:1");
 * const before: SessionClientState = client.state;
 * client.close();
 * console.log(before, client.state); // connecting closed
 * ```
 */
export type SessionClientState = "connecting" | "open" | "reconnecting" | "closed";

/**
 * A `reset` event: something could not be recovered, and the client says so.
 *
 * @example
 * ```ts
 * import type { SessionResetEvent } from "@sluice/ws";
 * function explain(event: SessionResetEvent): string {
 *   return event.scope === "session"
 *     ? `new session (${event.reason}): ${event.resent} re-sent, ${event.rejected} lost requests`
 *     : `${event.topic} continues at ${event.offset} (${event.reason})`;
 * }
 * console.log(explain({ scope: "topic", topic: "news", reason: "trimmed", epoch: "e1", offset: 42 }));
 * // news continues at 42 (trimmed)
 * ```
 */
export type SessionResetEvent =
  | {
    /** The session could not be resumed: a new one started. */
    scope: "session";
    /** Why (the server's `welcome.reason`). */
    reason: ResumeRefusal;
    /**
     * Messages and requests sent in the old session without an acknowledgement, re-sent in the
     * new one: the old session may have processed them before its acknowledgement was lost, so
     * these may be processed twice.
     */
    resent: number;
    /** Requests the old session acknowledged whose reply it took with it: rejected. */
    rejected: number;
  }
  | {
    /** A topic's position could not be recovered. */
    scope: "topic";
    /** The topic. */
    topic: string;
    /** Why. */
    reason: ResetReason;
    /** The epoch the subscription continues in. */
    epoch: string;
    /** The offset it continues from: what lies between the old and this one is lost. */
    offset: number;
  };

/**
 * The events of a {@linkcode SessionClient} and what their listeners receive.
 *
 * @example
 * ```ts
 * import { connectSession, serveSessions } from "@sluice/ws";
 * const server = serveSessions({ port: 0, secret: "a secret of at least 16 characters" });
 * const client = connectSession(`ws://127.0.0.1:${server.port}`);
 * const { resumed, lost } = await new Promise<{ resumed: boolean; lost: number }>((resolve) =>
 *   client.on("open", resolve)
 * );
 * console.log(resumed, lost); // false 0
 * client.close();
 * await server.shutdown();
 * ```
 */
export interface SessionClientEventMap {
  /** A connection attempt starts: 0 for the first, then counting since the last stable one. */
  connecting: { attempt: number };
  /**
   * The server welcomed the session: `resumed` whether it continues the previous one (else
   * `reason` says why not, when there was one), `lost` the server messages that could not be
   * replayed (a gap), `resent` the unacknowledged messages and requests sent again.
   */
  open: { session: string; resumed: boolean; reason?: ResumeRefusal; lost: number; resent: number };
  /** A subscription is active: `recovered` from the position asked for, else from `offset`. */
  topic: { topic: string; recovered: boolean; reason?: ResetReason; epoch: string; offset: number };
  /** A session or a topic position could not be recovered. */
  reset: SessionResetEvent;
  /** The server ended a subscription: it refused it (`"denied"`), or its application ended it
   * (`"server"`). The topic is forgotten: no `publication` for it follows. */
  unsubscribed: { topic: string; reason: "denied" | "server" };
  /** The connection was lost; attempt number `attempt` follows in `delay` ms. */
  reconnecting: { attempt: number; delay: number; code: number; reason: string };
  /** The client is closed for good (by `close()`, a fatal close code or a protocol violation). */
  closed: { code: number; reason: string };
  /** A session message from the server (each once, in order). */
  message: { data: SessionData };
  /** A topic message (each once, in offset order). */
  publication: { topic: string; data: SessionData; epoch: string; offset: number };
  /** Something went wrong: a protocol violation by the server, a listener that threw. */
  error: { error: unknown };
}

/**
 * The stable codes of {@linkcode SessionError}.
 *
 * @example
 * ```ts
 * import { connectSession, SessionError } from "@sluice/ws";
 * const client = connectSession("ws://127.0.0.1:1");
 * client.close();
 * await client.send("too late").catch((error: SessionError) => {
 *   console.log(error.code, error.message);
 *   // SESSION_ERR_CLOSED Cannot send: the session client is closed
 * });
 * ```
 */
export type SessionErrorCode =
  | "SESSION_ERR_CLOSED"
  | "SESSION_ERR_NOT_OPEN"
  | "SESSION_ERR_QUEUE_FULL"
  | "SESSION_ERR_DROPPED"
  | "SESSION_ERR_EXPIRED"
  | "SESSION_ERR_TIMEOUT"
  | "SESSION_ERR_REPLY"
  | "SESSION_ERR_LOST";

/**
 * Why a `send` or a `request` of a {@linkcode SessionClient} was rejected:
 * `SESSION_ERR_CLOSED` (the client closed first), `SESSION_ERR_NOT_OPEN` (a volatile message
 * while not open), `SESSION_ERR_QUEUE_FULL` / `SESSION_ERR_DROPPED` / `SESSION_ERR_EXPIRED`
 * (the queue's bounds), `SESSION_ERR_TIMEOUT` (no reply in time), `SESSION_ERR_REPLY` (the
 * server's handler failed: the message is its error's), `SESSION_ERR_LOST` (the session that
 * owed the reply was lost).
 *
 * @example
 * ```ts
 * import { SessionError } from "./session.ts";
 * const error = new SessionError("SESSION_ERR_REPLY", "no such account");
 * console.log(error.code, error.message); // SESSION_ERR_REPLY no such account
 * ```
 */
export class SessionError extends Error {
  /** The error's name. */
  override name = "SessionError";
  /** What happened. */
  readonly code: SessionErrorCode;

  /**
   * Makes the error.
   *
   * @param code What happened.
   * @param message Details.
   * @param options The cause, if any.
   */
  constructor(code: SessionErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
  }
}

/** Close codes after which the client does not come back (lib/session/PROTOCOL.md). */
function isFatal(code: number): boolean {
  return code === 1002 || code === 1003 || code === 1007 || code === 1008 || code === 1009 ||
    code === 1010 || (code >= 4400 && code <= 4499);
}

const MAX_DELAY = 2 ** 31 - 1;
const encoder = new TextEncoder();

// What the connection is doing (finer than the public state).
/** No socket: before the first dial, or backing off. */
const IDLE = 0;
/** A socket is connecting. */
const DIALING = 1;
/** The socket is open, the hello sent, the welcome awaited. */
const HELLO = 2;
/** Welcomed: frames flow. */
const OPEN = 3;
/** The client dropped the socket (no welcome in time) and awaits its close event. */
const DROPPING = 4;
/** Closed for good. */
const CLOSED = 5;

const MSG = 0;
const REQ = 1;

type Abort = (entry: Outbound) => void;

/**
 * A reliable message or request, from `send`/`request` until it is acknowledged (and, for a
 * request, replied). It is its own abort listener, so that a signal costs no closure.
 */
class Outbound {
  /** The client sequence number; 0 until first sent. */
  seq = 0;
  /** Its promise is settled (resolved, rejected, timed out or aborted). */
  settled = false;
  timer: ReturnType<typeof setTimeout> | undefined = undefined;
  resolve!: (value: never) => void;
  reject!: (reason: unknown) => void;
  kind: number;
  /** The data, released once the server acknowledged it. */
  data: SessionData | undefined;
  bytes: number;
  /** When it was queued (performance.now()), for the queue's maxAge. */
  queuedAt = 0;
  signal: AbortSignal | undefined;
  #abort: Abort;

  constructor(
    kind: number,
    data: SessionData,
    bytes: number,
    signal: AbortSignal | undefined,
    abort: Abort,
  ) {
    this.kind = kind;
    this.data = data;
    this.bytes = bytes;
    this.signal = signal;
    this.#abort = abort;
  }

  handleEvent(): void {
    this.#abort(this);
  }
}

/** A subscription: its position, and whether the server is sending it. */
interface Subscription {
  /** Undefined until the server gave a position. */
  epoch: string | undefined;
  offset: number;
  /** `subscribed`/`reset` received on this connection: `pub` frames are taken. */
  active: boolean;
  /** A `sub` (or the hello) for it went out on this connection. */
  asked: boolean;
}

type Listener = (event: unknown) => void;
type Listeners = Record<keyof SessionClientEventMap, Listener[]>;

/**
 * A session that survives reconnects (the client of lib/session/PROTOCOL.md).
 *
 * It dials at once (in a microtask, so listeners added right after construction hear the first
 * `connecting`), and from then on keeps one WebSocket at a time: a new one is dialled only after
 * the old one's close event (or, if that never comes, `closeTimeout`). A lost connection is
 * followed by another attempt after a backoff delay (or the server's `bye` range); a close with
 * 1002, 1003, 1007, 1008, 1009, 1010 or 4400–4499 ends the client, as does `close()`.
 *
 * Reliable messages (`send`) and requests (`request`) are numbered when first sent, kept until
 * the server acknowledges them and re-sent after a reconnect only (never on a timer while a
 * connection lives): with their numbers when the session resumed (the server drops duplicates),
 * renumbered in a new session (reported by a `reset` event, since the old session may have
 * processed them). Session messages and topic messages the client already delivered are
 * dropped when the server sends them again; acknowledgements are coalesced to one per turn.
 *
 * @example
 * ```ts
 * import { serveSessions, SessionClient } from "@sluice/ws";
 * const server = serveSessions({
 *   port: 0,
 *   secret: "a secret of 16 characters or more",
 *   request: (_session, data) => `echo: ${data}`,
 * });
 * const client = new SessionClient(`ws://127.0.0.1:${server.port}`);
 * client.on("open", ({ resumed }) => console.log("open, resumed:", resumed));
 * console.log(await client.request("hi")); // echo: hi
 * client.close();
 * await server.shutdown();
 * ```
 */
export class SessionClient {
  #url: string;
  #factory: WebSocketFactory;
  #base: number;
  #cap: number;
  #minUptime: number;
  #maxMessages: number;
  #maxBytes: number;
  #maxAge: number;
  #dropOldest: boolean;
  #requestTimeout: number;
  #welcomeTimeout: number;
  #closeTimeout: number;
  #random: () => number;

  #state: SessionClientState = "connecting";
  #phase = IDLE;
  #ws: WebSocketLike | undefined;
  /** Connection attempts since the last session that stayed open for minUptime. */
  #attempt = 0;
  #openedAt = 0;
  /** The current socket's `bye` retry range, if it sent one. */
  #bye: [number, number] | undefined;
  /** What to report for a socket the client dropped itself (instead of its close event's). */
  #dropCode = 0;
  #dropReason = "";
  #closeCode = 1000;
  #closeReason = "";
  #welcomeTimer: ReturnType<typeof setTimeout> | undefined;
  #closeTimer: ReturnType<typeof setTimeout> | undefined;
  #backoffTimer: ReturnType<typeof setTimeout> | undefined;
  #ageTimer: ReturnType<typeof setTimeout> | undefined;

  #sessionId: string | undefined;
  #token: string | undefined;
  /** The hello on the current connection asked to resume. */
  #resuming = false;

  /** Reliable messages not sent yet (offline), oldest first. */
  #queue = new Fifo<Outbound>();
  /** Reliable messages sent and not acknowledged, by ascending seq. */
  #inflight = new Fifo<Outbound>();
  /** Requests sent whose reply is awaited, by seq. */
  #requests = new Map<number, Outbound>();
  #lastSeq = 0;
  /** The server's cumulative acknowledgement. */
  #acked = 0;
  /** Entries in #queue and #inflight, and their bytes. */
  #count = 0;
  #bytes = 0;

  /** The highest server seq delivered to the application. */
  #delivered = 0;
  /** After a resume that lost replies: the welcome's seq (the replay's end), else -1. */
  #orphansAfter = -1;
  /** And its ack: requests at or below it whose reply has not come are orphans. */
  #orphansAcked = 0;
  /** The highest server seq acknowledged to the server. */
  #ackSent = 0;
  #ackScheduled = false;

  #topics = new Map<string, Subscription>();
  /** Topics unsubscribed while no connection was open: told to the server after the welcome. */
  #unsubscribed = new Set<string>();
  /** Topics unsubscribed on this connection: a `subscribed` for one crossed the `unsub`. */
  #left = new Set<string>();

  #listeners: Listeners = {
    connecting: [],
    open: [],
    topic: [],
    reset: [],
    unsubscribed: [],
    reconnecting: [],
    closed: [],
    message: [],
    publication: [],
    error: [],
  };

  /**
   * Creates the client; it starts connecting in a microtask.
   *
   * @param url The server's `ws:` or `wss:` URL.
   * @param options Factory, backoff, queue bounds, timeouts.
   * @throws {TypeError} for a mistyped option, or when there is no factory (no global
   * `WebSocket` and no `webSocket` option).
   * @throws {RangeError} for an option out of range.
   */
  constructor(url: string | URL, options: SessionClientOptions = {}) {
    this.#url = String(url);
    const backoff = options.backoff ?? {};
    const queue = options.queue ?? {};
    this.#base = int(backoff.base ?? 500, 1, MAX_DELAY, "backoff.base");
    this.#cap = int(backoff.cap ?? 30_000, 0, MAX_DELAY, "backoff.cap");
    this.#minUptime = int(backoff.minUptime ?? 5_000, 0, MAX_DELAY, "backoff.minUptime");
    this.#maxMessages = int(queue.maxMessages ?? 1000, 1, 2 ** 32, "queue.maxMessages");
    this.#maxBytes = int(queue.maxBytes ?? 1 << 20, 1, Number.MAX_SAFE_INTEGER, "queue.maxBytes");
    this.#maxAge = int(queue.maxAge ?? 60_000, 0, MAX_DELAY, "queue.maxAge");
    const overflow = queue.overflow ?? "reject";
    if (overflow !== "reject" && overflow !== "drop-oldest") {
      throw new TypeError(
        `Cannot connect: queue.overflow must be "reject" or "drop-oldest", got ${String(overflow)}`,
      );
    }
    this.#dropOldest = overflow === "drop-oldest";
    this.#requestTimeout = int(options.requestTimeout ?? 30_000, 0, MAX_DELAY, "requestTimeout");
    this.#welcomeTimeout = int(options.welcomeTimeout ?? 10_000, 1, MAX_DELAY, "welcomeTimeout");
    this.#closeTimeout = int(options.closeTimeout ?? 5_000, 1, MAX_DELAY, "closeTimeout");
    const random = options.random ?? Math.random;
    if (typeof random !== "function") {
      throw new TypeError("Cannot connect: random must be a function");
    }
    this.#random = random;
    let factory = options.webSocket;
    if (factory === undefined) {
      const Native = (globalThis as {
        WebSocket?: new (url: string, protocols: string[]) => WebSocketLike;
      }).WebSocket;
      if (typeof Native !== "function") {
        throw new TypeError(
          "Cannot connect: there is no global WebSocket; pass a webSocket factory",
        );
      }
      factory = (url, protocols) => new Native(url, protocols);
    } else if (typeof factory !== "function") {
      throw new TypeError("Cannot connect: webSocket must be a function");
    }
    this.#factory = factory;
    queueMicrotask(this.#dial);
  }

  /** What the client is doing: connecting, open, reconnecting (backing off) or closed. */
  get state(): SessionClientState {
    return this.#state;
  }

  /** The session's id, once a server welcomed it (it changes when a session is lost). */
  get sessionId(): string | undefined {
    return this.#sessionId;
  }

  /**
   * The position of each subscribed topic the server has given one: a snapshot, which an
   * application may keep to subscribe from later.
   */
  get positions(): Map<string, Position> {
    const positions = new Map<string, Position>();
    for (const [topic, sub] of this.#topics) {
      if (sub.epoch !== undefined) positions.set(topic, { epoch: sub.epoch, offset: sub.offset });
    }
    return positions;
  }

  /**
   * Sends a message to the server's `message` handler.
   *
   * @param data A string (sent as text) or bytes (sent in the binary form; the client keeps a
   * reference until the server acknowledged them: do not change them before).
   * @param options `volatile` to send at most once; `signal` to cancel.
   * @returns A promise that resolves when the server acknowledged the message (a volatile one:
   * once written). It rejects with a {@linkcode SessionError}, or the signal's reason.
   * @throws {TypeError} if `data` is neither a string nor a Uint8Array.
   *
   * @example
   * ```ts
   * import { SessionClient } from "./session.ts";
   * const client = new SessionClient("ws://127.0.0.1:1"); // queued until a server welcomes it
   * const sent = client.send("hello", { signal: AbortSignal.timeout(10) });
   * await sent.catch((error) => console.log(error.name)); // TimeoutError
   * client.close();
   * ```
   */
  send(data: SessionData, options?: SessionSendOptions): Promise<void> {
    checkData("send", data);
    if (options?.volatile) {
      if (this.#phase !== OPEN) {
        return Promise.reject(
          this.#state === "closed" ? closedError() : new SessionError(
            "SESSION_ERR_NOT_OPEN",
            "Cannot send a volatile message: the session is not open",
          ),
        );
      }
      if (options.signal?.aborted) return Promise.reject(options.signal.reason);
      this.#write({ t: "msg", d: data });
      return Promise.resolve();
    }
    return this.#submit(MSG, data, options?.signal, 0) as Promise<void>;
  }

  /**
   * Sends a request to the server's `request` handler and waits for its reply.
   *
   * @param data A string or bytes, as for `send`.
   * @param options `timeout` (ms, 0 for none) and `signal`.
   * @returns A promise of the reply's data. It rejects with a {@linkcode SessionError}: code
   * `SESSION_ERR_REPLY` and the server's message when the handler failed,
   * `SESSION_ERR_TIMEOUT`, …; or with the signal's reason.
   * @throws {TypeError} if `data` is neither a string nor a Uint8Array.
   * @throws {RangeError} if `timeout` is not an integer from 0 to 2^31-1.
   *
   * @example
   * ```ts
   * import { SessionClient } from "./session.ts";
   * const client = new SessionClient("ws://127.0.0.1:1");
   * const reply = client.request("balance?", { timeout: 10 });
   * await reply.catch((error) => console.log(error.code)); // SESSION_ERR_TIMEOUT
   * client.close();
   * ```
   */
  request(data: SessionData, options?: SessionRequestOptions): Promise<SessionData> {
    checkData("request", data);
    const timeout = options?.timeout === undefined
      ? this.#requestTimeout
      : int(options.timeout, 0, MAX_DELAY, "timeout", "request");
    return this.#submit(REQ, data, options?.signal, timeout) as Promise<SessionData>;
  }

  /**
   * Subscribes to a topic. Each reconnect resumes it from its position; its messages come as
   * `publication` events, and a `topic` event tells where it starts (`reset` too, when a
   * position could not be recovered). Subscribing again to a topic is a no-op, unless `from`
   * is given: then it starts again from there.
   *
   * @param topic The topic.
   * @param from A position to start from (one kept from `positions`); none means from now.
   * @throws {TypeError} if the client is closed, or for a mistyped argument.
   *
   * @example
   * ```ts
   * import { SessionClient } from "./session.ts";
   * const client = new SessionClient("ws://127.0.0.1:1");
   * client.subscribe("news");
   * client.on("publication", ({ topic, data }) => console.log(topic, data));
   * client.close();
   * ```
   */
  subscribe(topic: string, from?: Position): void {
    if (typeof topic !== "string") {
      throw new TypeError(`Cannot subscribe: the topic must be a string, got ${typeof topic}`);
    }
    if (
      from !== undefined &&
      (typeof from !== "object" || from === null || typeof from.epoch !== "string" ||
        !Number.isSafeInteger(from.offset) || from.offset < 0)
    ) {
      throw new TypeError("Cannot subscribe: from must be a position { epoch, offset }");
    }
    if (this.#state === "closed") {
      throw new TypeError("Cannot subscribe: the session client is closed");
    }
    let sub = this.#topics.get(topic);
    if (sub !== undefined && from === undefined) return;
    this.#unsubscribed.delete(topic);
    this.#left.delete(topic);
    if (sub === undefined) {
      sub = { epoch: undefined, offset: 0, active: false, asked: false };
      this.#topics.set(topic, sub);
    }
    if (from !== undefined) {
      sub.epoch = from.epoch;
      sub.offset = from.offset;
    }
    sub.active = false;
    sub.asked = false;
    if (this.#phase === OPEN) this.#ask(topic, sub);
  }

  /**
   * Unsubscribes from a topic: no `publication` for it follows.
   *
   * @param topic The topic.
   *
   * @example
   * ```ts
   * import { SessionClient } from "./session.ts";
   * const client = new SessionClient("ws://127.0.0.1:1");
   * client.subscribe("news");
   * client.unsubscribe("news");
   * console.log(client.positions.size); // 0
   * client.close();
   * ```
   */
  unsubscribe(topic: string): void {
    if (!this.#topics.delete(topic)) return;
    if (this.#phase === OPEN) {
      this.#write({ t: "unsub", topic });
      this.#left.add(topic);
    } else if (this.#state !== "closed") this.#unsubscribed.add(topic);
  }

  /**
   * Adds an event listener.
   *
   * @param type The event.
   * @param listener Called with the event's payload. If it throws, the error is reported as an
   * `error` event (on the console when an `error` listener throws).
   * @returns A function that removes the listener.
   *
   * @example
   * ```ts
   * import { SessionClient } from "./session.ts";
   * const client = new SessionClient("ws://127.0.0.1:1");
   * const off = client.on("reconnecting", ({ attempt, delay }) => console.log(attempt, delay));
   * off();
   * client.close();
   * ```
   */
  on<K extends keyof SessionClientEventMap>(
    type: K,
    listener: (event: SessionClientEventMap[K]) => void,
  ): () => void {
    const listeners = this.#listeners[type];
    if (listeners === undefined) throw new TypeError(`Cannot listen: no event ${String(type)}`);
    if (typeof listener !== "function") {
      throw new TypeError("Cannot listen: the listener must be a function");
    }
    // Copy on write: an emit iterates the array it started with.
    this.#listeners[type] = [...listeners, listener as unknown as Listener];
    return () => {
      const current = this.#listeners[type];
      const index = current.indexOf(listener as unknown as Listener);
      if (index !== -1) this.#listeners[type] = current.toSpliced(index, 1);
    };
  }

  /**
   * Closes the client for good, at any moment: while connecting (the pending socket is closed
   * and no other opens), open, or backing off. Pending sends and requests are rejected with
   * `SESSION_ERR_CLOSED` (those already sent may still have been processed). The `closed` event
   * follows once the socket is closed (at once when there is none). A second call does nothing.
   *
   * @param code The close code to send: 1000 or 3000–4999 (what a browser's WebSocket allows).
   * @param reason The close reason (at most 123 bytes of UTF-8).
   * @throws {RangeError} for another code or a longer reason.
   *
   * @example
   * ```ts
   * import { SessionClient } from "./session.ts";
   * const client = new SessionClient("ws://127.0.0.1:1");
   * client.close(1000, "bye");
   * console.log(client.state); // closed
   * ```
   */
  close(code = 1000, reason = ""): void {
    if (!Number.isInteger(code) || (code !== 1000 && (code < 3000 || code > 4999))) {
      throw new RangeError(`Cannot close: the code must be 1000 or from 3000 to 4999, got ${code}`);
    }
    if (typeof reason !== "string" || encoder.encode(reason).length > 123) {
      throw new RangeError("Cannot close: the reason must be a string of at most 123 bytes");
    }
    if (this.#state === "closed") return;
    if (this.#phase === OPEN) this.#flushAck();
    const ws = this.#ws;
    this.#end(code, reason, closedError());
    if (ws === undefined) {
      this.#emit("closed", { code, reason });
      return;
    }
    try {
      ws.close(code, reason);
    } catch {
      // The close timer still bounds the wait.
    }
    this.#armCloseTimer();
  }

  /** Closes the client (`close()`), for `using`. */
  [Symbol.dispose](): void {
    this.close();
  }

  // --- connections ---

  #dial = (): void => {
    this.#backoffTimer = undefined;
    if (this.#state === "closed") return;
    this.#phase = DIALING;
    this.#state = "connecting";
    this.#emit("connecting", { attempt: this.#attempt });
    if (this.state === "closed") return; // a listener closed the client
    let ws: WebSocketLike;
    try {
      ws = this.#factory(this.#url, [SESSION_PROTOCOL]);
      ws.binaryType = "arraybuffer";
    } catch (error) {
      // A factory that throws (a malformed URL, a refused scheme) would throw again.
      this.#end(1006, "the WebSocket factory threw", closedError(error));
      this.#emit("error", { error });
      this.#emit("closed", { code: 1006, reason: "the WebSocket factory threw" });
      return;
    }
    this.#ws = ws;
    this.#bye = undefined;
    this.#dropCode = 0;
    ws.onopen = () => this.#onOpen(ws);
    ws.onmessage = (event: { data: unknown }) => this.#onMessage(ws, event.data);
    ws.onclose = (event: { code?: number; reason?: string }) => {
      if (ws === this.#ws) this.#gone(event.code ?? 1005, event.reason ?? "");
    };
    // A close event follows every error event (WHATWG WebSockets, "fail the WebSocket
    // connection"): the close handler does the work.
    ws.onerror = () => {};
    this.#welcomeTimer = setTimeout(this.#onWelcomeTimeout, this.#welcomeTimeout);
  };

  #onOpen(ws: WebSocketLike): void {
    if (ws !== this.#ws || this.#phase !== DIALING) return;
    if (ws.protocol !== SESSION_PROTOCOL) {
      this.#violate(
        new SessionProtocolError(`the server did not select the subprotocol ${SESSION_PROTOCOL}`),
      );
      return;
    }
    this.#phase = HELLO;
    const hello: ClientFrame & { t: "hello" } = { t: "hello", v: 1 };
    this.#resuming = this.#token !== undefined;
    if (this.#resuming) {
      hello.token = this.#token;
      hello.ack = this.#delivered;
    }
    this.#ackSent = this.#delivered;
    let topics: Record<string, Position> | undefined;
    for (const [topic, sub] of this.#topics) {
      sub.active = false;
      sub.asked = sub.epoch !== undefined;
      if (sub.asked) (topics ??= {})[topic] = { epoch: sub.epoch!, offset: sub.offset };
    }
    if (topics !== undefined) hello.topics = topics;
    this.#write(hello);
  }

  #onWelcomeTimeout = (): void => {
    this.#welcomeTimer = undefined;
    const ws = this.#ws;
    if (ws === undefined) return;
    this.#phase = DROPPING;
    this.#dropCode = 1006;
    this.#dropReason = `no welcome within ${this.#welcomeTimeout} ms`;
    try {
      ws.close();
    } catch {
      // The close timer still bounds the wait.
    }
    this.#armCloseTimer();
  };

  #armCloseTimer(): void {
    clearTimeout(this.#closeTimer);
    this.#closeTimer = setTimeout(this.#onCloseTimeout, this.#closeTimeout);
  }

  #onCloseTimeout = (): void => {
    this.#closeTimer = undefined;
    if (this.#ws !== undefined) this.#gone(1006, "the socket did not close in time");
  };

  /** The current socket is closed (or abandoned): end, or retry after a delay. */
  #gone(code: number, reason: string): void {
    const ws = this.#ws!;
    ws.onopen =
      ws.onmessage =
      ws.onclose =
      ws.onerror =
        null;
    this.#ws = undefined;
    clearTimeout(this.#closeTimer);
    clearTimeout(this.#welcomeTimer);
    this.#closeTimer = this.#welcomeTimer = undefined;
    if (this.#state === "closed") {
      this.#emit("closed", { code: this.#closeCode, reason: this.#closeReason });
      return;
    }
    if (this.#phase === OPEN && performance.now() - this.#openedAt >= this.#minUptime) {
      this.#attempt = 0;
    }
    if (this.#dropCode !== 0) {
      code = this.#dropCode;
      reason = this.#dropReason;
      this.#dropCode = 0;
    }
    if (isFatal(code)) {
      this.#end(code, reason, closedError(undefined, code));
      this.#emit("closed", { code, reason });
      return;
    }
    this.#attempt++;
    let delay: number;
    const bye = this.#bye;
    if (bye !== undefined) {
      this.#bye = undefined;
      delay = bye[0] + Math.floor(this.#random() * (bye[1] - bye[0] + 1));
      if (delay > bye[1]) delay = bye[1];
    } else {
      const ceiling = Math.min(this.#cap, this.#base * 2 ** (this.#attempt - 1));
      delay = Math.floor(this.#random() * ceiling);
    }
    delay = Math.min(delay, MAX_DELAY);
    this.#phase = IDLE;
    this.#state = "reconnecting";
    this.#backoffTimer = setTimeout(this.#dial, delay);
    this.#emit("reconnecting", { attempt: this.#attempt, delay, code, reason });
  }

  /** Ends the client: no more attempts, every pending promise rejected, every timer cleared. */
  #end(code: number, reason: string, error: SessionError): void {
    this.#state = "closed";
    this.#phase = CLOSED;
    this.#closeCode = code;
    this.#closeReason = reason;
    clearTimeout(this.#welcomeTimer);
    clearTimeout(this.#backoffTimer);
    clearTimeout(this.#ageTimer);
    this.#welcomeTimer = this.#backoffTimer = this.#ageTimer = undefined;
    this.#unsubscribed.clear();
    for (const entry of this.#queue.drain()) this.#reject(entry, error);
    for (const entry of this.#inflight.drain()) this.#reject(entry, error);
    for (const entry of this.#requests.values()) this.#reject(entry, error);
    this.#requests.clear();
    this.#count = this.#bytes = 0;
  }

  /** A protocol violation by the server: close with 1008, report, stop (PROTOCOL.md). */
  #violate(error: SessionProtocolError): void {
    if (this.#state === "closed") return;
    const ws = this.#ws!;
    const reason = error.closeReason;
    this.#end(1008, reason, closedError(error, 1008));
    try {
      ws.close(1008, reason);
    } catch {
      // The WHATWG API lets a client send only 1000 and 3000–4999: 4002 (PROTOCOL.md).
      try {
        ws.close(4002, reason);
      } catch {
        // The close timer still bounds the wait.
      }
    }
    this.#armCloseTimer();
    this.#emit("error", { error });
  }

  // --- inbound ---

  #onMessage(ws: WebSocketLike, raw: unknown): void {
    if (ws !== this.#ws || (this.#phase !== OPEN && this.#phase !== HELLO)) return;
    let message: string | Uint8Array;
    if (typeof raw === "string") message = raw;
    else if (raw instanceof ArrayBuffer) message = new Uint8Array(raw);
    else if (ArrayBuffer.isView(raw)) {
      message = new Uint8Array(raw.buffer, raw.byteOffset, raw.byteLength);
    } else {
      this.#violate(new SessionProtocolError("a binary message that is not an ArrayBuffer"));
      return;
    }
    let frame;
    try {
      frame = decodeServerFrame(message);
    } catch (error) {
      this.#violate(
        error instanceof SessionProtocolError ? error : new SessionProtocolError(String(error)),
      );
      return;
    }
    if (this.#phase === HELLO) {
      if (frame.t === "welcome") this.#welcome(frame);
      else this.#violate(new SessionProtocolError(`${frame.t} frame before welcome`));
      return;
    }
    switch (frame.t) {
      case "msg":
        if (this.#take(frame.seq, "msg") && this.#listeners.message.length > 0) {
          this.#emit("message", { data: frame.d });
        }
        break;
      case "reply": {
        if (!this.#take(frame.seq, "reply")) break;
        const entry = this.#requests.get(frame.re);
        // None: a request that timed out or was aborted; the reply is acknowledged and dropped.
        if (entry === undefined) break;
        this.#requests.delete(frame.re);
        if (frame.error !== undefined) {
          this.#reject(entry, new SessionError("SESSION_ERR_REPLY", frame.error.message));
        } else this.#resolve(entry, frame.d!);
        break;
      }
      case "ack":
        if (frame.seq > this.#lastSeq) {
          this.#violate(
            new SessionProtocolError(`ack frame: seq ${frame.seq} is above the last sent`),
          );
        } else this.#acknowledged(frame.seq);
        break;
      case "subscribed":
      case "reset": {
        let sub = this.#topics.get(frame.topic);
        if (sub === undefined) {
          // A subscription the server made (PROTOCOL.md `subscribed`), unless this client
          // unsubscribed the topic on this connection and the answer crossed its `unsub`.
          if (this.#left.has(frame.topic)) break;
          sub = { epoch: undefined, offset: 0, active: false, asked: true };
          this.#topics.set(frame.topic, sub);
        }
        sub.epoch = frame.epoch;
        sub.offset = frame.offset;
        sub.active = true;
        const { topic, epoch, offset } = frame;
        if (frame.t === "subscribed") {
          this.#emit("topic", { topic, recovered: frame.recovered, epoch, offset });
        } else {
          const reason = frame.reason;
          this.#emit("topic", { topic, recovered: false, reason, epoch, offset });
          this.#emit("reset", { scope: "topic", topic, reason, epoch, offset });
        }
        break;
      }
      case "pub": {
        const sub = this.#topics.get(frame.topic);
        if (sub === undefined || !sub.active) break; // unsubscribed, or re-subscribing
        if (frame.epoch === sub.epoch) {
          if (frame.offset <= sub.offset) break; // a duplicate (PROTOCOL.md `pub`)
          if (frame.offset === sub.offset + 1) {
            sub.offset = frame.offset;
            if (this.#listeners.publication.length > 0) {
              const { topic, epoch, offset, d: data } = frame;
              this.#emit("publication", { topic, data, epoch, offset });
            }
            break;
          }
        }
        // A gap or another epoch: fill it from the position without reconnecting (a `sub` with
        // `from`); the answer (`subscribed` or `reset`) tells whether it could be.
        sub.active = false;
        this.#ask(frame.topic, sub);
        break;
      }
      case "unsubscribed":
        // Refused, or ended by the server's application: forgotten, not asked again.
        if (this.#topics.delete(frame.topic)) {
          this.#emit("unsubscribed", { topic: frame.topic, reason: frame.reason });
        }
        break;
      case "bye":
        this.#bye = frame.retry;
        break;
      case "welcome":
        this.#violate(new SessionProtocolError("a second welcome frame"));
        break;
    }
  }

  #welcome(frame: ServerFrame & { t: "welcome" }): void {
    if (frame.resumed) {
      if (!this.#resuming) {
        this.#violate(new SessionProtocolError("welcome frame: resumed without a token"));
        return;
      }
      if (frame.session !== this.#sessionId) {
        this.#violate(new SessionProtocolError("welcome frame: resumed with another session id"));
        return;
      }
      if (frame.ack < this.#acked || frame.ack > this.#lastSeq) {
        this.#violate(
          new SessionProtocolError(
            `welcome frame: ack ${frame.ack} is outside ${this.#acked}..${this.#lastSeq}`,
          ),
        );
        return;
      }
    } else {
      if (this.#resuming && frame.reason === undefined) {
        this.#violate(new SessionProtocolError("welcome frame: a refused resume needs a reason"));
        return;
      }
      if (frame.ack !== 0) {
        this.#violate(new SessionProtocolError("welcome frame: a new session's ack must be 0"));
        return;
      }
    }
    clearTimeout(this.#welcomeTimer);
    this.#welcomeTimer = undefined;
    this.#sessionId = frame.session;
    this.#token = frame.token;
    this.#phase = OPEN;
    this.#state = "open";
    this.#openedAt = performance.now();
    let resent = 0;
    let rejected = 0;
    let lost = 0;
    if (frame.resumed) {
      this.#acknowledged(frame.ack);
      // The server skips what its replay buffer dropped: the next seq comes after them.
      lost = frame.lost ?? 0;
      this.#delivered += lost;
      // Replies the replay buffer dropped cannot come: fail their requests once the replay
      // (which ends at the welcome's seq) is delivered.
      if (lost > 0) {
        this.#orphansAfter = frame.seq;
        this.#orphansAcked = frame.ack;
        if (this.#delivered >= frame.seq) queueMicrotask(this.#failOrphans);
      }
      for (let i = 0; i < this.#inflight.length; i++) {
        this.#send(this.#inflight.at(i)!);
        resent++;
      }
    } else {
      // A new session: sequences restart at 1 both ways. Requests the old session had
      // processed took their replies with it; the rest is renumbered and sent again, except
      // what was cancelled meanwhile (the new session never saw it).
      for (const entry of this.#requests.values()) {
        if (entry.seq <= this.#acked) {
          this.#reject(
            entry,
            new SessionError("SESSION_ERR_LOST", "The session was lost before the reply came"),
          );
          rejected++;
        }
      }
      this.#requests.clear();
      this.#orphansAfter = -1;
      this.#lastSeq =
        this.#acked =
        this.#delivered =
        this.#ackSent =
          0;
      for (const entry of this.#inflight.drain()) {
        if (entry.settled) this.#release(entry);
        else {
          this.#transmit(entry);
          resent++;
        }
      }
    }
    clearTimeout(this.#ageTimer);
    this.#ageTimer = undefined;
    // Subscriptions first: a message queued while offline may be published to one of them.
    for (const topic of this.#unsubscribed) this.#write({ t: "unsub", topic });
    this.#left = this.#unsubscribed;
    this.#unsubscribed = new Set();
    for (const [topic, sub] of this.#topics) if (!sub.asked) this.#ask(topic, sub);
    while (this.#queue.length > 0) this.#transmit(this.#queue.shift()!);
    const reason = frame.resumed ? undefined : frame.reason;
    const session = frame.session;
    this.#emit(
      "open",
      reason === undefined
        ? { session, resumed: frame.resumed, lost, resent }
        : { session, resumed: false, reason, lost, resent },
    );
    if (reason !== undefined && this.#state === "open") {
      this.#emit("reset", { scope: "session", reason, resent, rejected });
    }
  }

  /** Takes a server seq: `true` if it is the next one, `false` for a duplicate or a gap. */
  #take(seq: number, type: string): boolean {
    if (seq <= this.#delivered) return false;
    if (seq !== this.#delivered + 1) {
      this.#violate(
        new SessionProtocolError(`${type} frame: seq ${seq} skips ${this.#delivered + 1}`),
      );
      return false;
    }
    this.#delivered = seq;
    if (seq === this.#orphansAfter) queueMicrotask(this.#failOrphans);
    if (!this.#ackScheduled) {
      this.#ackScheduled = true;
      queueMicrotask(this.#flushAck);
    }
    return true;
  }

  /** Fails the requests the server processed whose replies its replay buffer dropped. */
  #failOrphans = (): void => {
    const acked = this.#orphansAcked;
    this.#orphansAfter = -1;
    for (const [seq, entry] of this.#requests) {
      if (seq > acked) continue;
      this.#requests.delete(seq);
      this.#reject(
        entry,
        new SessionError("SESSION_ERR_LOST", "The reply was dropped by the server's replay caps"),
      );
    }
  };

  /** Sends one `ack` for everything delivered in this turn (PROTOCOL.md: cumulative). */
  #flushAck = (): void => {
    this.#ackScheduled = false;
    if (this.#phase === OPEN && this.#delivered > this.#ackSent) {
      this.#ackSent = this.#delivered;
      this.#write({ t: "ack", seq: this.#delivered });
    }
  };

  /** The server processed every client seq up to `seq`. */
  #acknowledged(seq: number): void {
    if (seq <= this.#acked) return;
    this.#acked = seq;
    const inflight = this.#inflight;
    while (inflight.length > 0 && inflight.at(0)!.seq <= seq) {
      const entry = inflight.shift()!;
      this.#release(entry);
      // A request stays in #requests until its reply.
      if (entry.kind === MSG) this.#resolve(entry, undefined as never);
    }
  }

  // --- outbound ---

  #submit(
    kind: number,
    data: SessionData,
    signal: AbortSignal | undefined,
    timeout: number,
  ): Promise<unknown> {
    if (this.#state === "closed") return Promise.reject(closedError());
    if (signal?.aborted) return Promise.reject(signal.reason);
    const bytes = typeof data === "string" ? data.length : data.byteLength;
    if (bytes > this.#maxBytes || !this.#makeRoom(bytes)) {
      return Promise.reject(
        new SessionError(
          "SESSION_ERR_QUEUE_FULL",
          bytes > this.#maxBytes
            ? `Cannot send: the message is larger than queue.maxBytes (${this.#maxBytes})`
            : "Cannot send: the queue of unacknowledged messages is full",
        ),
      );
    }
    const entry = new Outbound(kind, data, bytes, signal, this.#onAbort);
    const promise = new Promise<unknown>((resolve, reject) => {
      entry.resolve = resolve;
      entry.reject = reject;
    });
    this.#count++;
    this.#bytes += bytes;
    signal?.addEventListener("abort", entry);
    if (timeout > 0) entry.timer = setTimeout(this.#onTimeout, timeout, entry);
    if (this.#phase === OPEN) this.#transmit(entry);
    else {
      entry.queuedAt = performance.now();
      this.#queue.push(entry);
      this.#armAge();
    }
    return promise;
  }

  /** Whether `bytes` more fit the queue's bounds, after dropping the oldest unsent if allowed. */
  #makeRoom(bytes: number): boolean {
    const fits = () => this.#count < this.#maxMessages && this.#bytes + bytes <= this.#maxBytes;
    if (fits()) return true;
    if (!this.#dropOldest) return false;
    while (this.#queue.length > 0 && !fits()) {
      const oldest = this.#queue.shift()!;
      this.#release(oldest);
      this.#reject(
        oldest,
        new SessionError("SESSION_ERR_DROPPED", "The message was dropped from a full queue"),
      );
    }
    return fits();
  }

  #armAge(): void {
    if (this.#maxAge === 0 || this.#ageTimer !== undefined || this.#queue.length === 0) return;
    const wait = this.#queue.at(0)!.queuedAt + this.#maxAge - performance.now();
    this.#ageTimer = setTimeout(this.#onAge, Math.max(0, Math.ceil(wait)));
  }

  #onAge = (): void => {
    this.#ageTimer = undefined;
    const now = performance.now();
    while (this.#queue.length > 0 && now - this.#queue.at(0)!.queuedAt >= this.#maxAge) {
      const entry = this.#queue.shift()!;
      this.#release(entry);
      this.#reject(
        entry,
        new SessionError(
          "SESSION_ERR_EXPIRED",
          `The message waited more than queue.maxAge (${this.#maxAge} ms) to be sent`,
        ),
      );
    }
    this.#armAge();
  };

  #onTimeout = (entry: Outbound): void => {
    entry.timer = undefined;
    this.#cancel(
      entry,
      new SessionError("SESSION_ERR_TIMEOUT", "The request got no reply before its timeout"),
    );
  };

  #onAbort = (entry: Outbound): void => {
    this.#cancel(entry, entry.signal!.reason);
  };

  /**
   * Cancels a send or a request locally. One not sent yet is removed; one sent keeps its place
   * in #inflight (the server may have it, and a resumed session must see every seq), and a
   * request stops waiting: a late reply is acknowledged and dropped.
   */
  #cancel(entry: Outbound, reason: unknown): void {
    if (entry.settled) return;
    if (entry.seq === 0) {
      if (this.#queue.remove(entry)) this.#release(entry);
    } else if (entry.kind === REQ) this.#requests.delete(entry.seq);
    this.#reject(entry, reason);
  }

  /** Sends an entry for the first time in this session: gives it the next seq. */
  #transmit(entry: Outbound): void {
    entry.seq = ++this.#lastSeq;
    this.#inflight.push(entry);
    if (entry.kind === REQ) this.#requests.set(entry.seq, entry);
    this.#send(entry);
  }

  #send(entry: Outbound): void {
    const seq = entry.seq;
    const d = entry.data!;
    this.#write(entry.kind === REQ ? { t: "req", seq, d } : { t: "msg", seq, d });
  }

  #write(frame: ClientFrame): void {
    try {
      this.#ws!.send(encodeFrame(frame));
    } catch {
      // A socket that cannot send any more is closing: its close event follows, and what it
      // did not carry is re-sent after the reconnect.
    }
  }

  #ask(topic: string, sub: Subscription): void {
    sub.asked = true;
    this.#write(
      sub.epoch === undefined
        ? { t: "sub", topic }
        : { t: "sub", topic, from: { epoch: sub.epoch, offset: sub.offset } },
    );
  }

  /** An entry leaves #queue or #inflight. */
  #release(entry: Outbound): void {
    this.#count--;
    this.#bytes -= entry.bytes;
    entry.data = undefined;
  }

  #resolve(entry: Outbound, value: SessionData | undefined): void {
    if (entry.settled) return;
    this.#settle(entry);
    entry.resolve(value as never);
  }

  #reject(entry: Outbound, reason: unknown): void {
    if (entry.settled) return;
    this.#settle(entry);
    entry.reject(reason);
  }

  #settle(entry: Outbound): void {
    entry.settled = true;
    if (entry.timer !== undefined) {
      clearTimeout(entry.timer);
      entry.timer = undefined;
    }
    if (entry.signal !== undefined) {
      entry.signal.removeEventListener("abort", entry);
      entry.signal = undefined;
    }
  }

  #emit<K extends keyof SessionClientEventMap>(type: K, event: SessionClientEventMap[K]): void {
    const listeners = this.#listeners[type];
    if (listeners.length === 0) {
      if (type === "error") {
        console.error("sluice: session client:", (event as { error: unknown }).error);
      }
      return;
    }
    for (let i = 0; i < listeners.length; i++) {
      try {
        listeners[i](event);
      } catch (error) {
        if (type === "error") console.error("sluice: a session client error listener threw", error);
        else this.#emit("error", { error });
      }
    }
  }
}

function int(value: number, min: number, max: number, name: string, verb = "connect"): number {
  checkInteger(verb, value, min, max, name);
  return value;
}

function checkData(verb: string, data: unknown): void {
  if (typeof data !== "string" && !(data instanceof Uint8Array)) {
    throw new TypeError(`Cannot ${verb}: data must be a string or a Uint8Array`);
  }
}

function closedError(cause?: unknown, code?: number): SessionError {
  return new SessionError(
    "SESSION_ERR_CLOSED",
    code === undefined
      ? "Cannot send: the session client is closed"
      : `Cannot send: the session client closed (code ${code})`,
    cause === undefined ? undefined : { cause },
  );
}
