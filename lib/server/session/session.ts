/**
 * One session on the server: its sequences both ways, its replay buffer, its subscriptions, and
 * the connection that carries it now, if any (lib/session/PROTOCOL.md).
 *
 * @module
 */
import { isThenable } from "../../core/_checks.ts";
import { SendStatus } from "../../core/websocket.ts";
import {
  type ClientFrame,
  encodeFrame,
  type Position,
  type ServerFrame,
  type SessionData,
  SessionProtocolError,
} from "../../session/wire.ts";
import type { ServerWebSocket } from "../websocket.ts";

/** What a connection's `data` holds under the session layer. */
export interface Link<T> {
  /** The upgrade hook's data. */
  data: T;
  /** The session this connection carries, once its `hello` was answered. */
  state: SessionState<T> | undefined;
  /** The hello timer, until the hello arrives. */
  helloTimer: ReturnType<typeof setTimeout> | undefined;
  /** Whether the hello arrived (its session may still be on its way from the store). */
  hello: boolean;
}

/** What a session needs from the server that holds it. */
export interface SessionHome<T> {
  /** Runs the `message` handler (reliable and volatile messages). */
  message(session: Session<T>, data: SessionData): unknown;
  /** Runs the `request` handler. */
  request(session: Session<T>, data: SessionData): SessionData | Promise<SessionData>;
  /** Subscribes a session's connection and sends the topic's answer and missed messages. */
  subscribe(
    state: SessionState<T>,
    topic: string,
    from: Position | undefined,
    origin: Origin,
  ): void;
  /** Ends a subscription. */
  unsubscribe(state: SessionState<T>, topic: string, reason: "server" | undefined): void;
  /** Ends a session for good. */
  end(state: SessionState<T>, why: "closed" | "expired" | "evicted"): void;
  /** Reports an error from a handler. */
  report(error: unknown, session: Session<T>): void;
  /** Counts what happened. */
  readonly counters: SessionCounters;
  /** Replay caps per session. */
  readonly replayMaxMessages: number;
  readonly replayMaxBytes: number;
  /** Bytes in every session's replay buffer, and the cap on them. */
  replayBytes: number;
  readonly replayMaxTotalBytes: number;
  /** Past the total cap: evicts the sessions detached longest. */
  overTotal(): void;
}

/** Who asked for a subscription: it decides what a resume does with it. */
export type Origin = "client" | "server";

/** The session layer's counters (see {@linkcode SessionStats}). */
export class SessionCounters {
  created = 0;
  resumes = 0;
  resumed = 0;
  refused: Record<string, number> = {};
  topicsRecovered = 0;
  topicsReset = 0;
  replayedMessages = 0;
  replayedPublications = 0;
  lost = 0;
  trimmed = 0;
  duplicates = 0;
  expired = 0;
  evicted = 0;
  closedByBackpressure = 0;
}

interface Outgoing {
  seq: number;
  frame: string | Uint8Array;
  bytes: number;
}

/** A subscription as the session remembers it. */
export interface Subscription {
  origin: Origin;
  /** Where a resume that the client did not name it in starts (server subscriptions). */
  at: Position;
}

/** The state of one session. Internal: the application sees {@linkcode Session}. */
export class SessionState<T> {
  readonly session: Session<T>;
  readonly id: string;
  readonly binding: string;
  readonly home: SessionHome<T>;
  ws: ServerWebSocket<Link<T>> | undefined;
  /** The last server sequence number assigned. */
  outSeq = 0;
  /** Unacknowledged outgoing frames, oldest first, from `outFirst`. */
  out: Outgoing[] = [];
  outFirst = 0;
  outBytes = 0;
  /** The highest server seq dropped from the replay buffer before it was acknowledged. */
  droppedThrough = 0;
  /** The highest client seq received, and the highest processed with every lower one. */
  received = 0;
  processed = 0;
  /** Client seqs above `processed` whose handlers finished out of order. */
  done = new Set<number>();
  ackSent = 0;
  ackScheduled = false;
  topics = new Map<string, Subscription>();
  ended = false;

  constructor(id: string, data: T, binding: string, home: SessionHome<T>) {
    this.id = id;
    this.binding = binding;
    this.home = home;
    this.session = new Session(data);
    attachState(this.session, this);
  }

  /** Sends a frame now if attached; a message or a reply is kept until acknowledged. */
  emit(frame: ServerFrame & { t: "msg" | "reply" }): number;
  emit(frame: ServerFrame): undefined;
  emit(frame: ServerFrame): number | undefined {
    const encoded = encodeFrame(frame);
    // Only messages and replies are numbered and kept (a welcome's seq is a position).
    const seq = frame.t === "msg" || frame.t === "reply" ? frame.seq : undefined;
    if (seq !== undefined) {
      const bytes = typeof encoded === "string" ? encoded.length * 2 : encoded.length;
      this.out.push({ seq, frame: encoded, bytes });
      this.outBytes += bytes;
      this.home.replayBytes += bytes;
      this.#cap();
      if (this.home.replayBytes > this.home.replayMaxTotalBytes) this.home.overTotal();
    }
    this.write(encoded);
    return seq;
  }

  /** Writes an encoded frame to the connection, if any. A frame the connection cannot queue
   * (over `maxBackpressure`) must not become a silent gap: the connection is closed with 1013,
   * and the client resumes and gets it from the replay buffer. */
  write(encoded: string | Uint8Array): void {
    const ws = this.ws;
    // A closing connection takes nothing more; the frame waits for the resume.
    if (ws === undefined || ws.readyState !== 1) return;
    if (ws.send(encoded) === SendStatus.Dropped) {
      this.home.counters.closedByBackpressure++;
      ws.close(1013, "sluice.v1: send buffer over its limit; resume");
    }
  }

  /** Drops the oldest unacknowledged frames past the caps (a resume will report them lost). */
  #cap(): void {
    const { replayMaxMessages, replayMaxBytes } = this.home;
    while (
      this.out.length - this.outFirst > replayMaxMessages || this.outBytes > replayMaxBytes
    ) {
      const dropped = this.out[this.outFirst++];
      this.outBytes -= dropped.bytes;
      this.home.replayBytes -= dropped.bytes;
      this.droppedThrough = dropped.seq;
      this.home.counters.trimmed++;
    }
    this.#compact();
  }

  #compact(): void {
    if (this.outFirst === this.out.length) {
      this.out = [];
      this.outFirst = 0;
    } else if (this.outFirst > 256 && this.outFirst * 2 > this.out.length) {
      this.out = this.out.slice(this.outFirst);
      this.outFirst = 0;
    }
  }

  /** The client has every server seq up to `seq`. */
  acknowledged(seq: number): void {
    if (seq > this.outSeq) {
      throw new SessionProtocolError(`ack ${seq} is beyond the last seq sent (${this.outSeq})`);
    }
    while (this.outFirst < this.out.length && this.out[this.outFirst].seq <= seq) {
      const bytes = this.out[this.outFirst++].bytes;
      this.outBytes -= bytes;
      this.home.replayBytes -= bytes;
    }
    this.#compact();
  }

  /** Replays what the client has not acknowledged, after its `ack`. */
  replay(after: number): number {
    this.acknowledged(after);
    let count = 0;
    for (let i = this.outFirst; i < this.out.length; i++, count++) this.write(this.out[i].frame);
    return count;
  }

  /** Handles a frame from the client after the hello. */
  receive(frame: ClientFrame): void {
    switch (frame.t) {
      case "msg":
        if (frame.seq === undefined) this.#volatile(frame.d);
        else if (this.#accept(frame.seq)) this.#process(frame.seq, frame.d, false);
        return;
      case "req":
        if (this.#accept(frame.seq)) this.#process(frame.seq, frame.d, true);
        return;
      case "ack":
        this.acknowledged(frame.seq);
        return;
      case "sub":
        this.home.subscribe(this, frame.topic, frame.from, "client");
        return;
      case "unsub":
        this.home.unsubscribe(this, frame.topic, undefined);
        return;
      case "hello":
        throw new SessionProtocolError("hello after the session started");
    }
  }

  /** Whether a client seq is new; a resent one is a duplicate and is not processed again. */
  #accept(seq: number): boolean {
    if (seq <= this.received) {
      this.home.counters.duplicates++;
      return false;
    }
    if (seq !== this.received + 1) {
      throw new SessionProtocolError(`seq ${seq} skips ahead of ${this.received + 1}`);
    }
    this.received = seq;
    return true;
  }

  #volatile(data: SessionData): void {
    try {
      const result = this.home.message(this.session, data);
      if (isThenable(result)) {
        result.then(undefined, (error) => this.home.report(error, this.session));
      }
    } catch (error) {
      this.home.report(error, this.session);
    }
  }

  #process(seq: number, data: SessionData, request: boolean): void {
    let result: unknown;
    try {
      result = request
        ? this.home.request(this.session, data)
        : this.home.message(this.session, data);
    } catch (error) {
      this.#finish(seq, request, undefined, error);
      return;
    }
    if (isThenable(result)) {
      result.then(
        (value) => this.#finish(seq, request, value, undefined),
        (error) => this.#finish(seq, request, undefined, error ?? new Error("rejected")),
      );
    } else this.#finish(seq, request, result, undefined);
  }

  #finish(seq: number, request: boolean, value: unknown, error: unknown): void {
    if (this.ended) return;
    if (request) {
      let d: SessionData | undefined;
      if (error === undefined) {
        try {
          d = replyData(value);
        } catch (cause) {
          // A value JSON cannot carry (a BigInt, a cycle): the handler's fault, told as such.
          error = cause;
          this.home.report(cause, this.session);
        }
      }
      const reply: ServerFrame & { t: "reply" } = d !== undefined
        ? { t: "reply", seq: ++this.outSeq, re: seq, d }
        : { t: "reply", seq: ++this.outSeq, re: seq, error: { message: messageOf(error) } };
      this.emit(reply);
    } else if (error !== undefined) this.home.report(error, this.session);
    if (seq === this.processed + 1 && this.done.size === 0) this.processed = seq;
    else {
      this.done.add(seq);
      while (this.done.delete(this.processed + 1)) this.processed++;
    }
    this.scheduleAck();
  }

  /** One `ack` frame per turn, however many messages were processed in it. */
  scheduleAck(): void {
    if (this.ackScheduled) return;
    this.ackScheduled = true;
    queueMicrotask(() => {
      this.ackScheduled = false;
      if (this.processed > this.ackSent && this.ws !== undefined) {
        this.ackSent = this.processed;
        this.write(`{"t":"ack","seq":${this.processed}}`);
      }
    });
  }
}

/** Throws the caller's mistake: data that is neither a string nor bytes. */
export function checkData(verb: string, data: unknown): void {
  if (typeof data !== "string" && !(data instanceof Uint8Array)) {
    throw new TypeError(
      `Cannot ${verb}: data must be a string or a Uint8Array, got ${typeof data}`,
    );
  }
}

/** Throws the caller's mistake: a topic that is not a string. */
export function checkTopic(verb: string, topic: unknown): void {
  if (typeof topic !== "string") {
    throw new TypeError(`Cannot ${verb}: the topic must be a string, got ${typeof topic}`);
  }
}

function replyData(value: unknown): SessionData {
  if (typeof value === "string" || value instanceof Uint8Array) return value;
  if (value === undefined) return "";
  // Anything else is the application's JSON.
  return JSON.stringify(value);
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

// deno-lint-ignore no-explicit-any
let attachState: (session: Session<any>, state: SessionState<any>) => void;

/**
 * A session: a conversation with one client that outlives the connections carrying it. Made
 * by the session server ({@linkcode serveSessions}); handlers get it.
 *
 * @typeParam T The type of the upgrade hook's data for the connection that started it.
 *
 * @example
 * ```ts
 * import { serveSessions } from "@sluice/ws";
 * const server = serveSessions({
 *   port: 0,
 *   secret: "a secret of at least 16 characters",
 *   open(session) {
 *     session.subscribe("news");
 *     session.send(`welcome, ${session.id}`);
 *   },
 * });
 * await server.shutdown();
 * ```
 */
export class Session<T = undefined> {
  #state!: SessionState<T>;
  /** The upgrade hook's data for the connection that started the session. */
  readonly data: T;

  /**
   * Made by the session server only: a session made otherwise has no state and cannot be used.
   *
   * @param data The upgrade hook's data.
   *
   * @ignore
   */
  constructor(data: T) {
    this.data = data;
  }

  static {
    attachState = (session, state) => {
      session.#state = state;
    };
  }

  /** The session id (also in the client's `open` event). */
  get id(): string {
    return this.#state.id;
  }

  /** Whether a connection carries the session now (it may resume within the window if not). */
  get connected(): boolean {
    return this.#state.ws !== undefined;
  }

  /** Whether the session has ended (closed, expired or evicted): it cannot come back. */
  get ended(): boolean {
    return this.#state.ended;
  }

  /** The topics the session is subscribed to. */
  get topics(): string[] {
    return [...this.#state.topics.keys()];
  }

  /**
   * Sends a message to this session's client, reliably: it is numbered, kept until the client
   * acknowledges it, and replayed if the connection drops first (within the replay caps).
   * While no connection carries the session, it waits in the replay buffer.
   *
   * @param data A string as text, bytes as binary (copied).
   * @returns The message's sequence number.
   * @throws {TypeError} When the session has ended.
   */
  send(data: SessionData): number {
    const state = this.#state;
    checkData("send", data);
    if (state.ended) throw new TypeError("Cannot send: the session has ended");
    // Bytes are copied into the encoded frame, which is what the replay buffer keeps.
    return state.emit({ t: "msg", seq: ++state.outSeq, d: data });
  }

  /**
   * Subscribes the session to a topic from now; the client is told (`subscribed`) and resumes
   * the subscription with the session.
   *
   * @param topic The topic.
   */
  subscribe(topic: string): void {
    checkTopic("subscribe", topic);
    if (this.#state.ended) throw new TypeError("Cannot subscribe: the session has ended");
    this.#state.home.subscribe(this.#state, topic, undefined, "server");
  }

  /**
   * Ends a subscription; the client is told (`unsubscribed`).
   *
   * @param topic The topic.
   */
  unsubscribe(topic: string): void {
    this.#state.home.unsubscribe(this.#state, topic, "server");
  }

  /**
   * Ends the session for good: its connection is closed (with the code and reason) and its
   * state dropped; the client cannot resume it.
   *
   * @param code The close code. @default {1000}
   * @param reason The close reason. @default {""}
   */
  close(code = 1000, reason = ""): void {
    const state = this.#state;
    if (state.ended) return;
    const ws = state.ws;
    state.home.end(state, "closed");
    ws?.close(code, reason);
  }
}
