/**
 * The session server: `serve` with the session protocol `sluice.v1` on every connection
 * (lib/session/PROTOCOL.md). It is built on the public server (`Server` and its options) and
 * adds sessions that outlive connections, topic history, and exactly-once processing of client
 * messages within a session.
 *
 * @module
 */
import { checkInteger, isThenable, reportError } from "../../core/_checks.ts";
import {
  type ClientFrame,
  decodeClientFrame,
  type Position,
  type ResumeRefusal,
  SESSION_PROTOCOL,
  type SessionData,
  SessionProtocolError,
} from "../../session/wire.ts";
import type { Listen } from "../../core/transport.ts";
import type { ServeBaseOptions, ServeOptions, UpgradeResult } from "../options.ts";
import { Server, type ShutdownOptions } from "../server.ts";
import { prometheusText, pushMetric, type ServerStats } from "../stats.ts";
import type { UpgradeRequest } from "../upgrade_request.ts";
import type { ServerWebSocket } from "../websocket.ts";
import { type HistoryOptions, MemoryTopicHistory, type TopicHistory } from "./history.ts";
import {
  checkData,
  checkTopic,
  type Link,
  type Origin,
  type Session,
  SessionCounters,
  type SessionHome,
  SessionState,
} from "./session.ts";
import { MemorySessionStore, type SessionStore } from "./store.ts";
import { randomId, TokenSigner } from "./token.ts";

/**
 * How much each session keeps for replay.
 *
 * @example
 * ```ts
 * import { serveSessions } from "@sluice/ws";
 * // Keep at most 100 messages or 256 KiB per session for its client, 16 MiB in all.
 * const server = serveSessions({
 *   port: 0,
 *   secret: "a secret of at least 16 characters",
 *   replay: { maxMessages: 100, maxBytes: 262_144, maxTotalBytes: 16 * 1024 * 1024 },
 * });
 * console.log(server.stats().sessions.replayBytes); // 0
 * await server.shutdown();
 * ```
 */
export interface ReplayOptions {
  /** Unacknowledged messages kept per session. @default {1000} */
  maxMessages?: number;
  /** Bytes of unacknowledged messages kept per session. @default {1048576} */
  maxBytes?: number;
  /** Bytes of unacknowledged messages kept in all sessions together: past it, the sessions
   * detached longest are evicted (sessions with a connection are bounded by `maxBytes` each).
   * @default {67108864} */
  maxTotalBytes?: number;
}

/**
 * Handlers of the session server.
 *
 * @example
 * ```ts
 * import { connectSession, serveSessions } from "@sluice/ws";
 * const server = serveSessions({
 *   port: 0,
 *   secret: "a secret of at least 16 characters",
 *   open: (session, { resumed }) => console.log("open", resumed), // open false
 *   message: (session, data) => void session.send(`got ${data}`),
 *   request: (_session, data) => ({ echo: data }), // sent back as JSON text
 *   subscribe: (_session, topic) => topic.startsWith("public/"), // which topics a client may join
 *   detach: (_session, code) => console.log("detach", code), // detach 1000
 * });
 * const client = connectSession(`ws://127.0.0.1:${server.port}`);
 * const got = new Promise((resolve) => client.on("message", ({ data }) => resolve(data)));
 * await client.send("hi");
 * console.log(await got); // got hi
 * console.log(await client.request("x")); // {"echo":"x"}
 * client.close();
 * await server.shutdown();
 * ```
 */
export interface SessionHandlers<T> {
  /**
   * A connection carries a session: a new one, or one resumed (`resumed`). A new session after
   * a refused resume says why (`reason`).
   */
  open?(session: Session<T>, info: { resumed: boolean; reason?: ResumeRefusal }): void;
  /**
   * A message from the client: reliable ones exactly once per session, in order (the client's
   * `send` resolves once this returns or its promise settles); volatile ones at most once. The
   * bytes may be kept.
   */
  message?(session: Session<T>, data: SessionData): unknown;
  /**
   * A request from the client: what this returns (or resolves to) is the reply: a string, bytes,
   * or anything else as JSON. Throwing or rejecting sends an error reply with the message.
   * Exactly once per request within the session: a request the client sends again after a
   * reconnect is not run again; its reply is replayed.
   */
  request?(session: Session<T>, data: SessionData): unknown;
  /** Authorises a subscription the client asks for (`false` refuses it). @default allow all */
  subscribe?(session: Session<T>, topic: string): boolean | Promise<boolean>;
  /** A session's connection closed; the session may resume within the window. */
  detach?(session: Session<T>, code: number, reason: string): void;
  /** A session ended for good: `session.close()`, the window passed, or evicted by the caps. */
  end?(session: Session<T>, why: "closed" | "expired" | "evicted"): void;
  /** An error: a handler threw, or a client broke the session protocol. */
  error?(error: unknown, session: Session<T> | undefined): void;
}

/**
 * The options of `serve` that the session server takes as they are: all but its handlers and
 * `protocols` (the session layer owns those).
 *
 * @example
 * ```ts
 * import { type SessionBaseOptions, serveSessions } from "@sluice/ws";
 * const base: SessionBaseOptions<undefined> = { port: 0, maxPayloadLength: 65_536, idleTimeout: 0 };
 * const server = serveSessions({ ...base, secret: "a secret of at least 16 characters" });
 * console.log(server.port > 0); // true
 * await server.shutdown();
 * ```
 */
export type SessionBaseOptions<T> = Omit<
  ServeBaseOptions<T>,
  "open" | "message" | "fragment" | "drain" | "ping" | "pong" | "close" | "error" | "protocols"
>;

/**
 * The options of {@linkcode serveSessions}: those of `serve` (limits, TLS, `fetch`, the upgrade
 * hook) but its handlers and `protocols`, plus the session layer's.
 *
 * @example
 * ```ts
 * import { type SessionServeOptions, serveSessions } from "@sluice/ws";
 * const options: SessionServeOptions<{ user: string }> = {
 *   port: 0,
 *   secret: "a secret of at least 16 characters",
 *   upgrade: (request) => ({ data: { user: request.searchParams.get("user") ?? "guest" } }),
 *   bind: (data) => data.user,
 *   resumeWindow: 60_000,
 *   replay: { maxMessages: 500, maxBytes: 256 * 1024 },
 *   history: { maxMessages: 300 },
 *   request: (session, data) => ({ echo: data, user: session.data.user }),
 * };
 * const server = serveSessions(options);
 * await server.shutdown();
 * ```
 */
export type SessionServeOptions<T = undefined> =
  & SessionBaseOptions<T>
  & SessionHandlers<T>
  & {
    /** The upgrade hook, as `serve`'s; the subprotocol is always `sluice.v1`. */
    upgrade?(request: UpgradeRequest): UpgradeResult<T> | Promise<UpgradeResult<T>>;
    /** The key resume tokens are signed with (HMAC-SHA-256): at least 16 bytes, secret, the
     * same on every server that should accept the others' tokens. */
    secret: string | Uint8Array;
    /** The identity a session is bound to: a resume from a connection whose data gives
     * another is refused (`"not-yours"`). @default {() => ""} */
    bind?(data: T): string;
    /** Milliseconds a session outlives its connection. @default {120000} */
    resumeWindow?: number;
    /** Milliseconds a resume token stays valid after it is issued. @default {86400000} */
    tokenLifetime?: number;
    /** Milliseconds a connection has to send its `hello`. @default {10000} */
    helloTimeout?: number;
    /** The replay buffer's caps per session. */
    replay?: ReplayOptions;
    /** The topic history's caps. */
    history?: HistoryOptions;
    /** Sessions kept without a connection; past it the one detached longest is evicted.
     * @default {10000} */
    maxDetachedSessions?: number;
    /** Topics one session may subscribe to at its client's request; a `sub` past it is refused
     * (`unsubscribed`, reason `"denied"`). The application's own `session.subscribe` is not
     * counted against it. @default {1000} */
    maxTopicsPerSession?: number;
    /** Where topic history lives. @default {an in-memory history with the `history` caps} */
    topicHistory?: TopicHistory;
  };

/**
 * The session layer's figures in {@linkcode SessionServer.stats}.
 *
 * @example
 * ```ts
 * import { connectSession, serveSessions } from "@sluice/ws";
 * const server = serveSessions({ port: 0, secret: "a secret of at least 16 characters" });
 * const client = connectSession(`ws://127.0.0.1:${server.port}`);
 * await new Promise((resolve) => client.on("open", resolve));
 * const { sessions, attached, created } = server.stats().sessions;
 * console.log(sessions, attached, created); // 1 1 1
 * client.close();
 * await server.shutdown();
 * ```
 */
export interface SessionStats {
  /** Sessions held, with a connection or without one (within the resume window). */
  sessions: number;
  /** Sessions a connection carries. */
  attached: number;
  /** Sessions without a connection, within their resume window. */
  detached: number;
  /** Sessions started. */
  created: number;
  /** Resumes asked for (a hello with a token). */
  resumes: number;
  /** Resumes granted. */
  resumed: number;
  /** Resumes refused, by reason (`expired`, `restarted`, `invalid`, `not-yours`). */
  refused: Record<string, number>;
  /** Topic positions recovered. */
  topicsRecovered: number;
  /** Topic positions reset (the client was told what it missed). */
  topicsReset: number;
  /** Session messages and replies replayed. */
  replayedMessages: number;
  /** Topic publications replayed. */
  replayedPublications: number;
  /** Unacknowledged session messages dropped by the replay caps. */
  trimmed: number;
  /** Of those, reported lost to a resuming client. */
  lost: number;
  /** Client messages sent again and not processed again. */
  duplicates: number;
  /** Sessions ended by the resume window. */
  expired: number;
  /** Sessions ended by `maxDetachedSessions`. */
  evicted: number;
  /** Connections closed with 1013 because a session frame could not be queued. */
  closedByBackpressure: number;
  /** Unacknowledged messages held in the replay buffers. */
  replayMessages: number;
  /** Their bytes. */
  replayBytes: number;
  /** Topic history: topics, messages and bytes held, and messages dropped by its caps. */
  history: { topics: number; messages: number; bytes: number; trimmed: number };
}

interface Resolved {
  window: number;
  tokenLifetime: number;
  helloTimeout: number;
  maxDetached: number;
  maxTopics: number;
}

/** The session layer over one server: what {@linkcode SessionServer} fronts, and what sessions
 * call back into. */
class SessionHub<T> implements SessionHome<T> {
  readonly #server: Server<Link<T>>;
  readonly #handlers: SessionHandlers<T>;
  readonly #signer: TokenSigner;
  readonly #bind: (data: T) => string;
  readonly #history: TopicHistory;
  readonly #settings: Resolved;
  /** Sessions a connection carries. */
  readonly #attached = new Map<string, SessionState<T>>();
  /** Sessions without a connection, within their window. */
  readonly #store: SessionStore<SessionState<T>>;
  readonly counters = new SessionCounters();
  readonly replayMaxMessages: number;
  readonly replayMaxBytes: number;
  readonly replayMaxTotalBytes: number;
  replayBytes = 0;
  #shutdown: Promise<void> | undefined;

  /**
   * Binds and starts accepting.
   *
   * @param options The session server's options.
   * @param listen The runtime's listen function.
   */
  constructor(options: SessionServeOptions<T>, listen: Listen) {
    const checked = checkOptions(options);
    this.#settings = checked.settings;
    this.replayMaxMessages = checked.replay.maxMessages;
    this.replayMaxBytes = checked.replay.maxBytes;
    this.replayMaxTotalBytes = checked.replay.maxTotalBytes;
    this.#signer = new TokenSigner(options.secret);
    this.#bind = options.bind ?? (() => "");
    this.#history = options.topicHistory ?? new MemoryTopicHistory(checked.history);
    this.#store = new MemorySessionStore(
      checked.settings.maxDetached,
      (state, why) => this.end(state, why),
    );
    const {
      open,
      message,
      request,
      subscribe,
      detach,
      end,
      error,
      upgrade,
      secret: _secret,
      bind: _bind,
      resumeWindow: _window,
      tokenLifetime: _lifetime,
      helloTimeout: _hello,
      replay: _replay,
      history: _history,
      maxDetachedSessions: _max,
      maxTopicsPerSession: _maxTopics,
      topicHistory: _topicHistory,
      ...base
    } = options;
    this.#handlers = { open, message, request, subscribe, detach, end, error };
    const serveOptions = {
      ...base,
      protocols: [SESSION_PROTOCOL],
      upgrade: (request: UpgradeRequest) => this.#upgrade(request, upgrade),
      open: (ws: ServerWebSocket<Link<T>>) => this.#opened(ws),
      message: (ws: ServerWebSocket<Link<T>>, data: string | Uint8Array) =>
        this.#received(ws, data),
      close: (ws: ServerWebSocket<Link<T>>, code: number, reason: string) =>
        this.#closed(ws, code, reason),
      error: (cause: unknown, ws: ServerWebSocket<Link<T>> | undefined) =>
        this.#report(cause, ws?.data.state?.session),
    } as unknown as ServeOptions<Link<T>>;
    this.#server = new Server(serveOptions, listen);
  }

  /** The underlying WebSocket server (its connections, stats and metrics). */
  get server(): Server<Link<T>> {
    return this.#server;
  }

  /**
   * The session with this id, if it is held (with a connection or within its resume window).
   *
   * @param id A session id.
   * @returns The session, or `undefined`.
   */
  session(id: string): Session<T> | undefined {
    return (this.#attached.get(id) ?? this.#store.peek(id))?.session;
  }

  /**
   * Publishes a message to a topic: it is numbered (epoch and offset), kept in the topic's
   * history for clients that come back, and sent to every subscribed session's connection,
   * framed once.
   *
   * @param topic The topic.
   * @param data A string as text, bytes as binary (copied).
   * @returns The message's position.
   */
  publish(topic: string, data: SessionData): Position {
    checkTopic("publish", topic);
    checkData("publish", data);
    // Bytes are copied into the frame, which is encoded once here.
    const { position, frame } = this.#history.append(topic, data);
    this.#server.publish(topic, frame);
    return position;
  }

  /**
   * The server's figures ({@linkcode Server.stats}) with the session layer's in `sessions`.
   *
   * @returns The snapshot.
   */
  stats(): ServerStats & { sessions: SessionStats } {
    let replayMessages = 0;
    for (const state of this.#all()) replayMessages += state.out.length - state.outFirst;
    const c = this.counters;
    const sessions: SessionStats = {
      sessions: this.#attached.size + this.#store.size,
      attached: this.#attached.size,
      detached: this.#store.size,
      created: c.created,
      resumes: c.resumes,
      resumed: c.resumed,
      refused: { ...c.refused },
      topicsRecovered: c.topicsRecovered,
      topicsReset: c.topicsReset,
      replayedMessages: c.replayedMessages,
      replayedPublications: c.replayedPublications,
      trimmed: c.trimmed,
      lost: c.lost,
      duplicates: c.duplicates,
      expired: c.expired,
      evicted: c.evicted,
      closedByBackpressure: c.closedByBackpressure,
      replayMessages,
      replayBytes: this.replayBytes,
      history: this.#history.stats(),
    };
    return { ...this.#server.stats(), sessions };
  }

  /**
   * The server's Prometheus exposition ({@linkcode Server.metrics}) with the session layer's
   * figures.
   *
   * @param prefix The metric name prefix. @default {"sluice"}
   * @returns The exposition text.
   */
  metrics(prefix = "sluice"): string {
    // One snapshot serves the server's lines and the session layer's.
    const all = this.stats();
    const s = all.sessions;
    const lines = [prometheusText(all, prefix).trimEnd()];
    const gauge = (name: string, help: string, value: number) =>
      pushMetric(lines, `${prefix}_${name}`, "gauge", help, value);
    const counter = (name: string, help: string, value: number | Array<[string, number]>) =>
      pushMetric(lines, `${prefix}_${name}_total`, "counter", help, value);
    gauge("sessions_attached", "Sessions carried by a connection.", s.attached);
    gauge("sessions_detached", "Sessions within their resume window.", s.detached);
    gauge("session_replay_bytes", "Bytes held in the replay buffers.", s.replayBytes);
    gauge("topic_history_bytes", "Bytes held in the topic history.", s.history.bytes);
    counter("sessions_created", "Sessions started.", s.created);
    counter("session_resumes", "Resumes asked for.", s.resumes);
    counter("session_resumed", "Resumes granted.", s.resumed);
    counter(
      "session_resumes_refused",
      "Resumes refused, by reason.",
      Object.entries(s.refused).map(([reason, count]) => [`reason="${reason}"`, count]),
    );
    counter("session_topics_recovered", "Topic positions recovered.", s.topicsRecovered);
    counter("session_topics_reset", "Topic positions reset.", s.topicsReset);
    counter("session_replayed_messages", "Session messages replayed.", s.replayedMessages);
    counter("session_replayed_publications", "Publications replayed.", s.replayedPublications);
    counter("session_trimmed", "Unacknowledged messages dropped by replay caps.", s.trimmed);
    counter("session_duplicates", "Client messages resent and not processed again.", s.duplicates);
    counter("sessions_expired", "Sessions ended by the resume window.", s.expired);
    counter("sessions_evicted", "Sessions evicted by maxDetachedSessions.", s.evicted);
    return lines.join("\n") + "\n";
  }

  /**
   * Shuts down: every session's client is told to come back after a delay drawn from `retry`
   * (a `bye` frame), then the server closes as {@linkcode Server.shutdown} does, and the
   * sessions' state, which lives in this process, is dropped.
   *
   * @param options The retry range, and `Server.shutdown`'s options (the code defaults to
   * 1012, Service Restart).
   * @returns A promise that resolves when every connection is closed.
   */
  shutdown(options: SessionShutdownOptions): Promise<void> {
    const { retry = [1000, 5000], ...rest } = options;
    if (
      !Array.isArray(retry) || retry.length !== 2 ||
      !retry.every((n) => Number.isSafeInteger(n) && n >= 0) || retry[0] > retry[1]
    ) {
      return Promise.reject(
        new TypeError("Cannot shut down: retry must be [min, max] milliseconds, min <= max"),
      );
    }
    return this.#shutdown ??= (async () => {
      const bye = JSON.stringify({ t: "bye", retry, reason: rest.reason ?? "" });
      for (const state of this.#attached.values()) state.write(bye);
      await this.#server.shutdown({ code: 1012, ...rest });
      for (const state of this.#all()) this.#drop(state);
    })();
  }

  /** Every session held here, attached or kept. */
  #all(): SessionState<T>[] {
    return [...this.#attached.values(), ...this.#store.values()];
  }

  // --- connections -----------------------------------------------------------------------

  #upgrade(
    request: UpgradeRequest,
    hook: SessionServeOptions<T>["upgrade"],
  ): UpgradeResult<Link<T>> | Promise<UpgradeResult<Link<T>>> {
    if (!request.protocols.includes(SESSION_PROTOCOL)) {
      return new Response(`This server speaks the ${SESSION_PROTOCOL} subprotocol only\n`, {
        status: 400,
      });
    }
    if (hook === undefined) return { data: link(undefined as T), protocol: SESSION_PROTOCOL };
    const result = hook(request);
    return isThenable(result) ? result.then(wrapAccept) : wrapAccept(result);
  }

  #opened(ws: ServerWebSocket<Link<T>>): void {
    ws.data.helloTimer = setTimeout(() => {
      ws.data.helloTimer = undefined;
      // Not a violation: a network that held the hello. 4008 is not fatal: the client retries.
      ws.close(4008, `${SESSION_PROTOCOL}: no hello in time`);
    }, this.#settings.helloTimeout);
  }

  #received(ws: ServerWebSocket<Link<T>>, message: string | Uint8Array): void {
    const link = ws.data;
    let frame: ClientFrame;
    try {
      frame = decodeClientFrame(message);
      if (link.state !== undefined) {
        link.state.receive(frame);
        return;
      }
      if (link.hello) throw new SessionProtocolError(`${frame.t} before welcome`);
      if (frame.t !== "hello") throw new SessionProtocolError(`${frame.t} before hello`);
      if (link.helloTimer === undefined) return; // timed out: closing
      clearTimeout(link.helloTimer);
      link.helloTimer = undefined;
      link.hello = true;
      this.#hello(ws, frame);
    } catch (error) {
      if (!(error instanceof SessionProtocolError)) throw error;
      this.#report(error, link.state?.session);
      ws.close(1008, error.closeReason);
    }
  }

  /** Finds the session a hello resumes (perhaps in a store that answers later), or starts one. */
  #hello(ws: ServerWebSocket<Link<T>>, hello: ClientFrame & { t: "hello" }): void {
    const binding = this.#bind(ws.data.data);
    if (hello.token === undefined) {
      this.#welcome(ws, hello, binding, undefined, undefined);
      return;
    }
    this.counters.resumes++;
    const checked = this.#signer.check(hello.token, this.#store.incarnation, Date.now());
    if ("refusal" in checked) {
      this.#welcome(ws, hello, binding, undefined, checked.refusal);
      return;
    }
    const held = this.#attached.get(checked.id) ?? this.#store.peek(checked.id);
    if (held !== undefined && held.binding !== binding) {
      // Another identity's: refused without touching it (its window keeps running).
      this.#welcome(ws, hello, binding, undefined, "not-yours");
      return;
    }
    const found = held?.ws !== undefined ? held : this.#store.take(checked.id);
    if (!isThenable(found)) {
      this.#welcome(ws, hello, binding, found, found === undefined ? "expired" : undefined);
      return;
    }
    found.then(
      (state) => {
        if (ws.readyState !== 1) {
          // The connection went while the store looked: keep the session for another try.
          if (state !== undefined) this.#store.keep(state, this.#settings.window);
          return;
        }
        this.#welcome(ws, hello, binding, state, state === undefined ? "expired" : undefined);
      },
      (error) => {
        this.#report(error, undefined);
        ws.close(1011, `${SESSION_PROTOCOL}: the session store failed`);
      },
    );
  }

  /** Attaches a connection to its session (resumed, or new) and answers its hello. */
  #welcome(
    ws: ServerWebSocket<Link<T>>,
    hello: ClientFrame & { t: "hello" },
    binding: string,
    found: SessionState<T> | undefined,
    refusal: ResumeRefusal | undefined,
  ): void {
    const counters = this.counters;
    let state = found;
    let reason = refusal;
    if (state !== undefined && state.binding !== binding) {
      // Another identity's, from a store that answered later (peek cannot see into one): it
      // goes back.
      this.#store.keep(state, this.#settings.window);
      state = undefined;
      reason = "not-yours";
    }
    if (reason !== undefined) counters.refused[reason] = (counters.refused[reason] ?? 0) + 1;
    const resumed = state !== undefined;
    if (state === undefined) {
      counters.created++;
      state = new SessionState(randomId(), ws.data.data, binding, this);
    } else {
      counters.resumed++;
      const old = state.ws;
      if (old !== undefined) {
        // The client came back before the server saw the old connection go.
        old.data.state = undefined;
        old.close(4001, `${SESSION_PROTOCOL}: resumed on another connection`);
      }
    }
    this.#attached.set(state.id, state);
    state.ws = ws;
    ws.data.state = state;
    const after = resumed ? Math.min(hello.ack ?? 0, state.outSeq) : 0;
    const lost = resumed ? Math.max(0, state.droppedThrough - after) : 0;
    counters.lost += lost;
    state.ackSent = state.processed;
    state.emit({
      t: "welcome",
      v: 1,
      session: state.id,
      token: this.#signer.issue(
        state.id,
        Date.now() + this.#settings.tokenLifetime,
        this.#store.incarnation,
      ),
      resumed,
      ...(reason === undefined ? {} : { reason }),
      ack: state.processed,
      seq: state.outSeq,
      ...(lost > 0 ? { lost } : {}),
      window: this.#settings.window,
    });
    if (resumed) counters.replayedMessages += state.replay(after);
    const named = hello.topics ?? {};
    for (const [topic, subscription] of [...state.topics]) {
      if (topic in named) continue;
      // The client unsubscribed (its unsub may have been lost): drop it. A server
      // subscription it never heard of resumes from where it was made.
      if (subscription.origin === "client") this.#unsubscribe(state, topic, undefined);
      else this.subscribe(state, topic, subscription.at, "server");
    }
    for (const [topic, from] of Object.entries(named)) {
      this.subscribe(state, topic, from, state.topics.get(topic)?.origin ?? "client");
    }
    this.#call(() => this.#handlers.open?.(state.session, { resumed, reason }), state);
  }

  #closed(ws: ServerWebSocket<Link<T>>, code: number, reason: string): void {
    const link = ws.data;
    if (link.helloTimer !== undefined) clearTimeout(link.helloTimer);
    const state = link.state;
    if (state === undefined || state.ws !== ws) return;
    link.state = undefined;
    state.ws = undefined;
    if (state.ended) return;
    this.#attached.delete(state.id);
    this.#call(() => this.#handlers.detach?.(state.session, code, reason), state);
    // The detach handler may have closed the session.
    if (!state.ended) this.#store.keep(state, this.#settings.window);
  }

  // --- SessionHome --------------------------------------------------------------------------

  /** Runs the message handler. */
  message(session: Session<T>, data: SessionData): unknown {
    return this.#handlers.message?.(session, data);
  }

  /** Runs the request handler (a session without one gets an error reply). */
  request(session: Session<T>, data: SessionData): SessionData | Promise<SessionData> {
    const handler = this.#handlers.request;
    if (handler === undefined) throw new Error("This server takes no requests");
    return handler(session, data) as SessionData | Promise<SessionData>;
  }

  /** Subscribes a session to a topic, from a position or from now, and tells its client. */
  subscribe(
    state: SessionState<T>,
    topic: string,
    from: Position | undefined,
    origin: Origin,
  ): void {
    if (
      origin === "client" && !state.topics.has(topic) &&
      state.topics.size >= this.#settings.maxTopics
    ) {
      state.emit({ t: "unsubscribed", topic, reason: "denied" });
      return;
    }
    const authorise = this.#handlers.subscribe;
    if (origin === "client" && authorise !== undefined && !state.topics.has(topic)) {
      let allowed: boolean | Promise<boolean>;
      try {
        allowed = authorise(state.session, topic);
      } catch (error) {
        this.#report(error, state.session);
        allowed = false;
      }
      if (isThenable(allowed)) {
        allowed.then(
          (ok) => this.#subscribed(state, topic, from, origin, ok === true),
          (error) => {
            this.#report(error, state.session);
            this.#subscribed(state, topic, from, origin, false);
          },
        );
        return;
      }
      this.#subscribed(state, topic, from, origin, allowed === true);
      return;
    }
    this.#subscribed(state, topic, from, origin, true);
  }

  #subscribed(
    state: SessionState<T>,
    topic: string,
    from: Position | undefined,
    origin: Origin,
    allowed: boolean,
  ): void {
    if (state.ended) return;
    if (!allowed) {
      state.emit({ t: "unsubscribed", topic, reason: "denied" });
      return;
    }
    const history = this.#history;
    if (!state.topics.has(topic)) history.retain(topic);
    const head = history.head(topic);
    state.topics.set(topic, { origin, at: from ?? head });
    // Without a connection, the client learns of it when it resumes.
    if (state.ws === undefined) return;
    if (from === undefined) {
      state.emit({ t: "subscribed", topic, ...head, recovered: false });
    } else {
      const since = history.since(topic, from);
      if ("reason" in since) {
        this.counters.topicsReset++;
        state.emit({ t: "reset", topic, ...since.head, reason: since.reason });
      } else {
        this.counters.topicsRecovered++;
        state.emit({ t: "subscribed", topic, ...from, recovered: true });
        for (const frame of since.frames) state.write(frame);
        this.counters.replayedPublications += since.frames.length;
      }
    }
    // In the same turn as the replay: nothing published in between can be missed or doubled.
    state.ws.subscribe(topic);
  }

  /** Ends a subscription (told to the client when the server's application ends it). */
  unsubscribe(state: SessionState<T>, topic: string, reason: "server" | undefined): void {
    if (!state.topics.has(topic)) return;
    this.#unsubscribe(state, topic, reason);
  }

  #unsubscribe(state: SessionState<T>, topic: string, reason: "server" | undefined): void {
    state.topics.delete(topic);
    this.#history.release(topic);
    state.ws?.unsubscribe(topic);
    if (reason !== undefined) state.emit({ t: "unsubscribed", topic, reason });
  }

  /** Evicts the sessions detached longest until the replay buffers fit their total cap. */
  overTotal(): void {
    for (const state of this.#store.values()) {
      if (this.replayBytes <= this.replayMaxTotalBytes) return;
      this.end(state, "evicted");
    }
  }

  /** Ends a session for good. */
  end(state: SessionState<T>, why: "closed" | "expired" | "evicted"): void {
    if (state.ended) return;
    if (why === "expired") this.counters.expired++;
    if (why === "evicted") this.counters.evicted++;
    this.#drop(state);
    this.#call(() => this.#handlers.end?.(state.session, why), state);
  }

  #drop(state: SessionState<T>): void {
    if (state.ended) return;
    state.ended = true;
    this.#attached.delete(state.id);
    this.#store.delete(state.id);
    for (const topic of state.topics.keys()) this.#history.release(topic);
    state.topics.clear();
    this.replayBytes -= state.outBytes;
    state.out = [];
    state.outFirst = 0;
    state.outBytes = 0;
    const ws = state.ws;
    state.ws = undefined;
    if (ws !== undefined) ws.data.state = undefined;
  }

  /** Reports an error to the `error` handler, or prints it. */
  report(error: unknown, session: Session<T>): void {
    this.#report(error, session);
  }

  #report(error: unknown, session: Session<T> | undefined): void {
    // A client's protocol error is the client's problem: silent without a handler, as serve's.
    if (this.#handlers.error === undefined && error instanceof SessionProtocolError) return;
    reportError(this.#handlers.error, error, session);
  }

  #call(run: () => unknown, state: SessionState<T>): void {
    try {
      const result = run();
      if (isThenable(result)) result.then(undefined, (error) => this.#report(error, state.session));
    } catch (error) {
      this.#report(error, state.session);
    }
  }
}

/**
 * A server whose connections carry sessions (lib/session/PROTOCOL.md), made by
 * {@linkcode serveSessions}.
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
 * });
 * console.log(server.publish("chat", "hello")); // { epoch: "…", offset: 1 }
 * await server.shutdown({ retry: [1000, 5000] });
 * ```
 */
export class SessionServer<T = undefined> {
  readonly #hub: SessionHub<T>;

  /**
   * Binds and starts accepting.
   *
   * Not public API: its parameters are internal types. Use `serveSessions`.
   *
   * @param options The session server's options.
   * @param listen The runtime's listen function.
   *
   * @ignore
   */
  constructor(options: SessionServeOptions<T>, listen: Listen) {
    this.#hub = new SessionHub(options, listen);
  }

  /** The bound host name. */
  get hostname(): string {
    return this.#hub.server.hostname;
  }

  /** The bound port (the chosen one for port 0). */
  get port(): number {
    return this.#hub.server.port;
  }

  /** The underlying WebSocket server (its connections, stats and metrics). Each connection's
   * `data` is the session layer's; the upgrade hook's data is in the session's `data`. */
  get server(): Server<unknown> {
    return this.#hub.server as Server<unknown>;
  }

  /**
   * The session with this id, if it is held (with a connection or within its resume window).
   *
   * @param id A session id.
   * @returns The session, or `undefined`.
   */
  session(id: string): Session<T> | undefined {
    return this.#hub.session(id);
  }

  /**
   * Publishes a message to a topic: it is numbered (epoch and offset), kept in the topic's
   * history for clients that come back, and sent to every subscribed session's connection,
   * framed once.
   *
   * @param topic The topic.
   * @param data A string as text, bytes as binary (copied).
   * @returns The message's position.
   */
  publish(topic: string, data: SessionData): Position {
    return this.#hub.publish(topic, data);
  }

  /**
   * The server's figures ({@linkcode Server.stats}) with the session layer's in `sessions`.
   *
   * @returns The snapshot.
   */
  stats(): ServerStats & { sessions: SessionStats } {
    return this.#hub.stats();
  }

  /**
   * The server's Prometheus exposition ({@linkcode Server.metrics}) with the session layer's
   * figures.
   *
   * @param prefix The metric name prefix. @default {"sluice"}
   * @returns The exposition text.
   */
  metrics(prefix = "sluice"): string {
    return this.#hub.metrics(prefix);
  }

  /**
   * Shuts down: every session's client is told to come back after a delay drawn from `retry`
   * (a `bye` frame), then the server closes as {@linkcode Server.shutdown} does (the code
   * defaults to 1012, Service Restart), and the sessions' state, which lives in this process,
   * is dropped. Calling it again returns the same promise.
   *
   * @param options The retry range in milliseconds, and `Server.shutdown`'s options.
   * @returns A promise that resolves when every connection is closed.
   */
  shutdown(options: SessionShutdownOptions = {}): Promise<void> {
    return this.#hub.shutdown(options);
  }
}

/**
 * How {@linkcode SessionServer.shutdown} closes the server.
 *
 * @example
 * ```ts
 * import { connectSession, serveSessions } from "@sluice/ws";
 * const server = serveSessions({ port: 0, secret: "a secret of at least 16 characters" });
 * const client = connectSession(`ws://127.0.0.1:${server.port}`);
 * await new Promise((resolve) => client.on("open", resolve));
 * const next = new Promise<{ delay: number }>((resolve) => client.on("reconnecting", resolve));
 * // 1012 (Service Restart); each client comes back 1 to 2 s later, at a random moment.
 * await server.shutdown({ code: 1012, reason: "deploy", retry: [1_000, 2_000] });
 * const { delay } = await next;
 * console.log(delay >= 1_000 && delay <= 2_000); // true
 * client.close();
 * ```
 */
export interface SessionShutdownOptions extends ShutdownOptions {
  /** The range of milliseconds clients wait, each drawn at random, before they come back.
   * @default {[1000, 5000]} */
  retry?: [number, number];
}

function link<T>(data: T): Link<T> {
  return { data, state: undefined, helloTimer: undefined, hello: false };
}

function wrapAccept<T>(result: UpgradeResult<T>): UpgradeResult<Link<T>> {
  if (result instanceof Response) return result;
  if (result === undefined || result === null) {
    return { data: link(undefined as T), protocol: SESSION_PROTOCOL };
  }
  if (typeof result !== "object") return result as unknown as UpgradeResult<Link<T>>;
  return { ...result, data: link(result.data as T), protocol: SESSION_PROTOCOL };
}

function checkOptions<T>(options: SessionServeOptions<T>): {
  settings: Resolved;
  replay: Required<ReplayOptions>;
  history: Required<HistoryOptions>;
} {
  if (typeof options !== "object" || options === null) {
    throw new TypeError("Cannot serve sessions: options must be an object");
  }
  const { secret } = options;
  const length = typeof secret === "string"
    ? new TextEncoder().encode(secret).length
    : secret instanceof Uint8Array
    ? secret.length
    : -1;
  if (length < 0) {
    throw new TypeError("Cannot serve sessions: secret must be a string or a Uint8Array");
  }
  if (length < 16) {
    throw new RangeError(`Cannot serve sessions: secret must be at least 16 bytes, got ${length}`);
  }
  for (const name of ["bind", "open", "message", "request", "subscribe", "detach", "end"]) {
    const value = (options as unknown as Record<string, unknown>)[name];
    if (value !== undefined && typeof value !== "function") {
      throw new TypeError(`Cannot serve sessions: ${name} must be a function`);
    }
  }
  const int = (value: number | undefined, fallback: number, min: number, name: string) => {
    const resolved = value ?? fallback;
    checkInteger("serveSessions", resolved, min, Number.MAX_SAFE_INTEGER, name);
    return resolved;
  };
  const window = int(options.resumeWindow, 120_000, 0, "resumeWindow");
  const replay = options.replay ?? {};
  const history = options.history ?? {};
  return {
    settings: {
      window,
      tokenLifetime: int(options.tokenLifetime, 86_400_000, 1, "tokenLifetime"),
      helloTimeout: int(options.helloTimeout, 10_000, 1, "helloTimeout"),
      maxDetached: int(options.maxDetachedSessions, 10_000, 0, "maxDetachedSessions"),
      maxTopics: int(options.maxTopicsPerSession, 1000, 0, "maxTopicsPerSession"),
    },
    replay: {
      maxMessages: int(replay.maxMessages, 1000, 0, "replay.maxMessages"),
      maxBytes: int(replay.maxBytes, 1 << 20, 0, "replay.maxBytes"),
      maxTotalBytes: int(replay.maxTotalBytes, 64 << 20, 0, "replay.maxTotalBytes"),
    },
    history: {
      maxMessages: int(history.maxMessages, 1000, 0, "history.maxMessages"),
      maxBytes: int(history.maxBytes, 1 << 20, 0, "history.maxBytes"),
      // Twice the window: the window counts from the detach, a message's age from its
      // publication, and a dead connection takes time to be noticed before the detach.
      maxAge: int(history.maxAge, 2 * window, 0, "history.maxAge"),
      maxTopics: int(history.maxTopics, 10_000, 0, "history.maxTopics"),
      maxTotalBytes: int(history.maxTotalBytes, 64 << 20, 0, "history.maxTotalBytes"),
    },
  };
}
