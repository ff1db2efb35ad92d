/**
 * An open WebSocket connection, of either role: from the end of the opening handshake to the
 * last frame. It drives a {@linkcode Protocol} and owns what the protocol core may not: the
 * socket, the outbox, the timers and the calls into application code. The server's handshake
 * phase (lib/server/) and the client's (lib/client/) each hand it a transport whose handshake
 * is done.
 *
 * @module
 */
import { WebSocketError } from "../protocol/errors.ts";
import { encodeFrame } from "../protocol/frame_writer.ts";
import { MaskKeySource } from "../protocol/mask_keys.ts";
import type { PreparedMessage } from "../protocol/prepared_message.ts";
import { CLOSED, CLOSING, OPEN, Protocol, type ProtocolOptions } from "../protocol/protocol.ts";
import { isThenable, reportError } from "./_checks.ts";
import { Outbox, type OutboxOwner } from "./outbox.ts";
import { RateLimiter, type RateLimitOptions } from "./rate_limit.ts";
import type { Transport, TransportHandler } from "./transport.ts";
import {
  type BaseWebSocket,
  type CloseInfo,
  SendStatus,
  type WebSocketDriver,
} from "./websocket.ts";

const EMPTY = new Uint8Array(0);

/** Bytes corked in one tick past which `send` reports backpressure (Node streams use 16 KiB). */
const HIGH_WATER_MARK = 64 * 1024;

/**
 * Bytes waiting in the transport past which a ping or pong goes ahead of them (urgent) rather
 * than behind: more than one write's worth is a reader falling behind.
 */
const URGENT_ABOVE = 64 * 1024;

/**
 * Frames of one connection decoded per turn of the event loop. Past them the connection stops
 * reading and decodes the rest on a later turn, so that other connections' reads, accepts and
 * handshakes interleave with a flood of small frames (100,000 pings in one burst). A turn of a
 * connection that is not flooding (a few frames per chunk) never reaches it.
 */
const SLICE_FRAMES = 1024;

// Why reading from the socket is held: a bit each; the socket is read while none is set.
/** The protocol paused decoding (an inflate in flight, or `ws.pause()`). */
const HOLD_PROTOCOL = 1;
/** Fairness: this connection used its slice; it resumes on a later turn. */
const HOLD_SLICE = 2;
/** The outbound queue is above readPause's high-water mark. */
const HOLD_BACKPRESSURE = 4;

// What else a connection is, a bit each (one field rather than one per flag: there may be a
// great many connections, most of them idle).
/** A later turn is scheduled to decode the next slice. */
const SLICE_SCHEDULED = 1;
/** The close has been reported (the close handler ran or is running). */
const CLOSE_REPORTED = 2;
/** The TCP connection is gone. */
const GONE = 4;
/** A send met backpressure: `drain` is owed. */
const BACKPRESSURED = 8;

/** Masking keys for every client connection of the process (RFC 6455 §5.3). */
let maskKeys: MaskKeySource | undefined;

/**
 * The handlers of a connection, as `connect` takes them (`serve` takes the same, with a
 * `ServerWebSocket`). A handler that throws or rejects fails its connection with 1011.
 *
 * @typeParam W The WebSocket the handlers get.
 *
 * @example
 * ```ts
 * import { type ClientWebSocket, connect, type Handlers, serve } from "@sluice/ws";
 * const handlers: Handlers<ClientWebSocket> = {
 *   message(ws, data) {
 *     console.log(data);
 *     ws.close();
 *   },
 * };
 * const server = serve({ port: 0, open: (ws) => void ws.send("hi") });
 * const ws = await connect(`ws://127.0.0.1:${server.port}`, handlers);
 * await ws.closed;
 * await server.shutdown();
 * ```
 */
export interface Handlers<W> {
  /** The connection is open (before any message is delivered). */
  open?(ws: W): unknown;
  /**
   * A whole message: a string for text, a Uint8Array for binary (memory never reused, so it
   * may be kept).
   */
  message?(ws: W, data: string | Uint8Array, isBinary: boolean): unknown;
  /**
   * Messages piece by piece as they arrive, instead of whole (`message` is then not called):
   * text as decoded characters, binary as views; `fin` on a message's last piece.
   */
  fragment?(
    ws: W,
    data: string | Uint8Array,
    isBinary: boolean,
    fin: boolean,
  ): unknown;
  /** Sends that met backpressure (`SendStatus.Backpressure` or `Dropped`) may go on. */
  drain?(ws: W): unknown;
  /** A ping arrived (the pong is sent automatically). */
  ping?(ws: W, data: Uint8Array): unknown;
  /** A pong arrived. */
  pong?(ws: W, data: Uint8Array): unknown;
  /**
   * The connection closed; called once. `code` is the peer's close code (1005 if its Close
   * frame had none), the code the connection failed with, or 1006 if TCP ended without a
   * closing handshake.
   */
  close?(ws: W, code: number, reason: string): unknown;
  /**
   * An error: a handler threw, the peer broke the protocol (a `WebSocketError`), the
   * connection broke. Without it, handler errors are printed and protocol errors are silent.
   */
  error?(error: unknown, ws: W | undefined): void;
}

/** The names of {@linkcode Handlers}' members: each must be a function when given. */
export const HANDLER_NAMES = [
  "open",
  "message",
  "fragment",
  "drain",
  "ping",
  "pong",
  "close",
  "error",
] as const satisfies ReadonlyArray<keyof Handlers<unknown>>;

/**
 * Traffic counts of one connection, or summed over many (in `server.stats()`).
 *
 * @example
 * ```ts
 * import { serve, type TrafficCounts } from "@sluice/ws";
 * const server = serve({ port: 0 });
 * const traffic: TrafficCounts = server.stats();
 * console.log(traffic.messagesIn, traffic.bytesOut); // 0 0
 * await server.shutdown();
 * ```
 */
export interface TrafficCounts {
  /** Data messages received (a streamed message counts once). */
  messagesIn: number;
  /** Data messages sent. */
  messagesOut: number;
  /** Bytes read from sockets after the handshake: frames, headers included. */
  bytesIn: number;
  /** Bytes handed to sockets after the handshake: frames, headers included. */
  bytesOut: number;
  /** Compressed payload bytes received (permessage-deflate). */
  compressedIn: number;
  /** What they inflated to. */
  rawIn: number;
  /** Bytes of messages sent compressed, before compression. */
  rawOut: number;
  /** What they compressed to. */
  compressedOut: number;
}

/** How an open connection behaves, every default filled in (both roles). */
export interface OpenSettings<W> extends Handlers<W> {
  /** Bytes queued past which a data message is dropped (and the policy applies). */
  maxBackpressure: number;
  /** What a drop does besides dropping. */
  backpressurePolicy: "drop" | "close";
  /** Reading pauses above this many queued bytes (`Infinity`: never). */
  readHighWaterMark: number;
  /** ... and resumes at or below this many. */
  readLowWaterMark: number;
  /** Bytes queued for all connections of the home past which the policy also applies to those
   * above their share. */
  maxTotalBackpressure: number;
  /** Milliseconds for the peer's Close frame, and for the TCP close after it. */
  closeTimeout: number;
  /** Milliseconds without messages before closing with 1001; 0: never. */
  idleTimeout: number;
  /** Milliseconds of silence before a heartbeat ping; 0: no heartbeat. */
  heartbeatInterval: number;
  /** Milliseconds for an answer to the heartbeat ping. */
  heartbeatTimeout: number;
  /** Pings and pongs per second the peer may send; 0: unlimited. */
  controlFrameRate: number;
  /** Seconds' worth of `controlFrameRate` the peer may send at once. */
  controlFrameBurst: number;
  /** Rate limits on what the peer sends, if any. */
  rateLimit: RateLimitOptions | undefined;
  /** The largest message accepted, in bytes. */
  maxPayloadLength: number;
  /** Frames in one message beyond which the connection fails with 1008. */
  maxFragments: number;
}

/** Figures an open connection adds to, shared by the connections of one home. */
export interface ConnectionCounters {
  /** Sends that met backpressure. */
  backpressureEvents: number;
  /** Messages dropped by the backpressure policy. */
  droppedMessages: number;
  /** Connections closed by the backpressure policy. */
  backpressureCloses: number;
  /** Messages over a rate limit. */
  rateLimitedMessages: number;
  /** Connections failed for a ping or pong flood. */
  controlFloodCloses: number;
  /** Bytes queued for all connections, as each last looked. */
  queuedBytes: number;
  /** Connections whose queue was not empty when last looked at. */
  queuing: number;
  /** Records a heartbeat round trip, in ms. */
  latency(ms: number): void;
}

/** Where open connections live (a server, or the process's clients): a clock and counters. */
export interface ConnectionHome {
  /** A coarse clock (ms), advanced by the home's sweep of timeouts. */
  readonly now: number;
  /** The counters its connections add to. */
  readonly counters: ConnectionCounters;
  /**
   * The connection reports its close (its close handler is about to run).
   *
   * @param connection The connection (the home's own kind: a server's, a client's).
   */
  closed(connection: unknown): void;
  /**
   * The TCP connection is gone.
   *
   * @param connection The connection.
   */
  untrack(connection: unknown): void;
}

/** How the protocol of an open connection is set up, beyond the settings. */
export interface OpenProtocolOptions {
  /** Which end this is. */
  role: "server" | "client";
  /** permessage-deflate, if it was agreed. */
  deflate: ProtocolOptions["deflate"];
}

/** One open WebSocket connection: the socket's handler, the protocol's host, the API's driver. */
export class OpenConnection<W extends BaseWebSocket>
  implements TransportHandler, WebSocketDriver, OutboxOwner {
  readonly transport: Transport;
  readonly protocolState: Protocol;
  #home: ConnectionHome;
  #settings: OpenSettings<W>;
  #outbox: Outbox;
  #ws: W | undefined;
  /** Why reading is held (HOLD_* bits); 0: the socket is read. */
  #holds = 0;
  /** SLICE_SCHEDULED, CLOSE_REPORTED, GONE, BACKPRESSURED. */
  #flags = 0;
  /** The outbound queue as last counted in the home's total (`counters.queuedBytes`). */
  #queued = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #closeInfo: CloseInfo | undefined;
  #closeWaiters: Array<(info: CloseInfo) => void> | undefined;
  // Times on the home's coarse clock (ms): when anything last arrived, when a data message
  // last went either way or a ping or pong came (the idle clock), when our unanswered ping left
  // (0: none).
  #lastReceive: number;
  #lastMessage: number;
  #pingSentAt = 0;
  #pingStarted = 0;
  #latency: number | undefined;
  // Backpressure: messages dropped, flushed() waiters.
  #dropped = 0;
  #flushWaiters: Array<() => void> | undefined;
  /** Waits for the inflates of the bytes that came with the 101 (a client's connect). */
  #inflated: (() => void) | undefined;
  // Traffic, for stats (bytes out: the outbox counts, plus urgent pings and pongs).
  #messagesIn = 0;
  #messagesOut = 0;
  #bytesIn = 0;
  #urgentBytes = 0;
  /** Bytes that are not frames written first through the outbox (a server's 101 response). */
  #headBytes = 0;
  /** Rate limits on what the peer sends, if there are any. */
  #limiter: RateLimiter | undefined;
  /** The control-frame rate limit, made at the first ping or pong from the peer. */
  #controlLimiter: RateLimiter | undefined;
  #rateLimited = 0;

  /**
   * Takes over a transport whose opening handshake is done. Call {@linkcode OpenConnection.start}
   * with the WebSocket next.
   *
   * @param home Where it lives.
   * @param transport Its socket.
   * @param settings Its settings and handlers.
   * @param protocol The role and the agreed extensions.
   */
  constructor(
    home: ConnectionHome,
    transport: Transport,
    settings: OpenSettings<W>,
    protocol: OpenProtocolOptions,
  ) {
    this.#home = home;
    this.transport = transport;
    this.#settings = settings;
    this.#outbox = new Outbox(
      transport,
      this,
      protocol.role === "client" ? maskKeys ??= new MaskKeySource() : undefined,
    );
    this.#lastReceive = this.#lastMessage = home.now;
    this.protocolState = new Protocol(this, {
      role: protocol.role,
      maxPayloadLength: settings.maxPayloadLength,
      maxFragments: settings.maxFragments,
      streaming: settings.fragment !== undefined,
      copyBelow: transport.copyBelow,
      sliceFrames: SLICE_FRAMES,
      deflate: protocol.deflate,
    });
  }

  /**
   * Writes bytes that are not frames ahead of everything (a server's 101 response): corked
   * with what `open` sends in the same tick, so both leave in one socket write, and the first
   * sends see no bytes of the response still in the socket.
   *
   * @param bytes The bytes (copied).
   */
  writeHead(bytes: Uint8Array): void {
    this.#outbox.writeBytes(bytes);
    this.#headBytes = bytes.length;
  }

  /**
   * Opens: runs the `open` handler, then decodes the bytes that came behind the handshake.
   *
   * @param ws The WebSocket the handlers get.
   * @param early Bytes that arrived behind the handshake, in order.
   * @param opened Called just before `open` runs (the home's bookkeeping).
   */
  start(ws: W, early: readonly Uint8Array[], opened?: () => void): void {
    this.#ws = ws;
    const rateLimit = this.#settings.rateLimit;
    if (rateLimit !== undefined) this.#limiter = new RateLimiter(rateLimit, Date.now());
    opened?.();
    this.#call(this.#settings.open);
    // Bytes that came early count against the rate limits like any others.
    for (const chunk of early) {
      if ((this.#flags & GONE) !== 0) return;
      this.#receive(chunk);
    }
  }

  /** The WebSocket. */
  get webSocket(): W {
    return this.#ws!;
  }

  /**
   * Checks this connection's timeouts; the home calls it a few times per shortest timeout.
   *
   * @param now The home's clock.
   */
  sweep(now: number): void {
    const protocol = this.protocolState;
    if (protocol.readyState !== OPEN) return;
    const settings = this.#settings;
    if (settings.idleTimeout !== 0 && now - this.#lastMessage > settings.idleTimeout) {
      this.startClose(1001, "Idle timeout");
      return;
    }
    // A held connection is not read, so its pongs could not be seen: no heartbeat then.
    if (settings.heartbeatInterval === 0 || this.#holds !== 0) return;
    if (this.#pingSentAt !== 0) {
      // Anything from the peer since our ping shows it is alive; a pong also times the trip.
      if (this.#lastReceive > this.#pingSentAt) {
        this.#pingSentAt = 0;
      } else if (now - this.#pingSentAt > settings.heartbeatTimeout) {
        this.#reportError(
          new WebSocketError(
            "WS_ERR_HEARTBEAT_TIMEOUT",
            `No answer to a ping within ${settings.heartbeatTimeout} ms`,
          ),
        );
        this.terminate();
      }
      return;
    }
    if (now - this.#lastReceive >= settings.heartbeatInterval) {
      this.#pingSentAt = now;
      this.#pingStarted = performance.now();
      protocol.sendControl(0x9, EMPTY);
    }
  }

  /** The last measured round trip of a heartbeat ping, in ms. */
  get latency(): number | undefined {
    return this.#latency;
  }

  // TransportHandler

  /** @internal */
  onData(chunk: Uint8Array): void {
    this.#lastReceive = this.#home.now;
    this.#receive(chunk);
  }

  /** Bytes for the protocol: counted, held to the byte rate, decoded. */
  #receive(chunk: Uint8Array): void {
    const protocol = this.protocolState;
    this.#bytesIn += chunk.length;
    const limiter = this.#limiter;
    if (
      limiter !== undefined && !limiter.takeBytes(chunk.length, Date.now()) &&
      this.#settings.rateLimit!.policy === "close" && protocol.readyState === OPEN
    ) {
      this.#rateLimit();
    }
    protocol.receive(chunk);
    this.#afterDecode(protocol);
  }

  /** After decoding: hold reading for what stopped it (a pause, a used slice) and for the
   * answers it queued. */
  #afterDecode(protocol: Protocol): void {
    if (protocol.paused || protocol.yielded) this.#holdInput(protocol);
    // Answers corked while decoding count now, before the transport reads again.
    if (this.bufferedAmount > this.#settings.readHighWaterMark) this.#holdForBackpressure();
  }

  /**
   * Decoding stopped with input left: hold the socket too, so input cannot pile up. An
   * asynchronous inflate or `ws.pause()` holds it until `onResumed`; a used slice until the
   * next one, on a later turn.
   */
  #holdInput(protocol: Protocol): void {
    if (protocol.paused) this.#hold(HOLD_PROTOCOL);
    if (!protocol.yielded) return;
    this.#hold(HOLD_SLICE);
    if ((this.#flags & SLICE_SCHEDULED) !== 0) return;
    this.#flags |= SLICE_SCHEDULED;
    // A timer, not setImmediate: in Deno a chain of immediates (or of MessageChannel
    // messages) holds off other sockets' reads for a hundred of them or more, while a timer
    // lets the event loop poll for I/O first, in both runtimes. The timer's minimum delay
    // costs only the connection that used its slice.
    setTimeout(OpenConnection.#nextSlice, 0, this);
  }

  /** A timer's callback (a static method: no closure per connection). */
  static #nextSlice(connection: OpenConnection<BaseWebSocket>): void {
    connection.#decodeSlice();
  }

  /** The next slice of input held back since decoding yielded. */
  #decodeSlice(): void {
    this.#flags &= ~SLICE_SCHEDULED;
    if ((this.#flags & GONE) !== 0) return;
    const protocol = this.protocolState;
    protocol.continue();
    this.#afterDecode(protocol);
    if (!protocol.yielded) this.#release(HOLD_SLICE);
  }

  /** Stops reading from the socket for `reason` (a HOLD_* bit). */
  #hold(reason: number): void {
    if (this.#holds === 0) this.transport.pause();
    this.#holds |= reason;
  }

  /** Clears the `reason` bits; reading starts again once nothing holds it. */
  #release(reason: number): void {
    const holds = this.#holds;
    if ((holds & reason) === 0) return;
    this.#holds = holds & ~reason;
    // The queue drained, so the peer is reading: the idle clock starts over (a connection held
    // for backpressure is idle only while it makes no progress either way).
    if ((holds & reason & HOLD_BACKPRESSURE) !== 0) this.#lastMessage = this.#home.now;
    if (this.#holds === 0) this.transport.resume();
  }

  /** @internal */
  outboxFlushed(): void {
    const buffered = this.transport.bufferedAmount;
    this.#observe(buffered);
    const settings = this.#settings;
    if (buffered > settings.readHighWaterMark) this.#holdForBackpressure();
    // Held for what was corked, and the socket took it at once (no onDrain follows).
    else if (buffered <= settings.readLowWaterMark) this.#release(HOLD_BACKPRESSURE);
    if (buffered === 0) this.#drained();
  }

  /**
   * Stops reading while the peer does not take what we send, so what it sends waits in TCP
   * instead of growing our queue (an echo, a request with an answer); what was read already is
   * still handled. Its Close frame is read once the queue drains, or once we close.
   */
  #holdForBackpressure(): void {
    if ((this.#holds & HOLD_BACKPRESSURE) !== 0 || this.protocolState.readyState !== OPEN) return;
    this.#hold(HOLD_BACKPRESSURE);
    const low = this.#settings.readLowWaterMark;
    if (low > 0) this.transport.watchBelow(low);
    // Its answer to our ping could not be read now: the heartbeat starts over afterwards.
    this.#pingSentAt = 0;
  }

  /** @internal */
  onDrain(): void {
    this.#observe(0);
    this.#release(HOLD_BACKPRESSURE);
    if (this.#outbox.corked === 0) this.#drained();
  }

  /** @internal */
  onBelow(): void {
    this.#observe(this.transport.bufferedAmount);
    if ((this.#holds & HOLD_BACKPRESSURE) === 0) return;
    const low = this.#settings.readLowWaterMark;
    // Frames corked this tick count too: if they keep the queue above the mark, wait again.
    if (this.bufferedAmount <= low) this.#release(HOLD_BACKPRESSURE);
    else this.transport.watchBelow(low);
  }

  /**
   * Brings this connection's part of the home's running total of queued bytes up to date
   * (a stats pass calls it, so a snapshot's total is exact).
   */
  observeQueue(): void {
    this.#observe(this.transport.bufferedAmount);
  }

  /** Reading is held for outbound backpressure. */
  get readPaused(): boolean {
    return (this.#holds & HOLD_BACKPRESSURE) !== 0;
  }

  /** Counts `bytes`, the transport's queue now, in the home's total instead of the last. */
  #observe(bytes: number): void {
    const before = this.#queued;
    if (bytes === before) return;
    this.#queued = bytes;
    const counters = this.#home.counters;
    counters.queuedBytes += bytes - before;
    if (before === 0) counters.queuing++;
    else if (bytes === 0) counters.queuing--;
  }

  /** Everything queued reached the socket: wake flushed() waiters; owe no more `drain`. */
  #drained(): void {
    const waiters = this.#flushWaiters;
    if (waiters !== undefined && waiters.length !== 0) {
      for (const resolve of waiters.splice(0)) resolve();
    }
    if ((this.#flags & BACKPRESSURED) === 0) return;
    this.#flags &= ~BACKPRESSURED;
    this.#call(this.#settings.drain);
  }

  /** @internal */
  onEnd(): void {
    // The peer will send nothing more. Without a closing handshake that is an abnormal closure.
    const protocol = this.protocolState;
    if (protocol.readyState !== CLOSED) {
      protocol.lost();
      this.#reportClose(1006, "");
    }
    this.#outbox.flush();
    this.transport.end();
    this.#startTimer();
  }

  /** @internal */
  onClose(error?: unknown): void {
    if ((this.#flags & GONE) !== 0) return;
    this.#flags |= GONE;
    this.#clearTimer();
    this.#observe(0);
    for (const resolve of this.#flushWaiters?.splice(0) ?? []) resolve();
    this.#outbox.discard();
    const protocol = this.protocolState;
    if (protocol.readyState !== CLOSED && error !== undefined) {
      this.#reportError(
        new WebSocketError("WS_ERR_CONNECTION_LOST", "The TCP connection broke", {
          cause: error,
        }),
      );
    }
    protocol.dispose(); // Marks it closed (if the connection was lost) and frees its state.
    this.#reportClose(1006, "");
    this.#home.untrack(this);
  }

  // ProtocolHost

  /** Whether a message from the peer is within its rate limits (else: the policy). */
  #admit(): boolean {
    const drop = this.#settings.rateLimit!.policy === "drop";
    // Closing (for the rate limit or anything else) under "close": messages already read are
    // not delivered, and not counted again.
    if (!drop && this.protocolState.readyState !== OPEN) return false;
    if (this.#limiter!.takeMessage(Date.now())) return true;
    this.#rateLimit();
    return false;
  }

  /**
   * Whether a ping or pong from the peer is over the control-frame limit: then the connection
   * is failed with 1008. Each ping costs a pong (RFC 6455 §5.5.2) and neither is a message, so
   * without this a peer could keep us busy answering for ever.
   */
  #controlFlood(): boolean {
    const settings = this.#settings;
    const rate = settings.controlFrameRate;
    if (rate === 0) return false;
    const now = Date.now();
    const limiter = this.#controlLimiter ??= new RateLimiter(
      { messages: rate, burst: settings.controlFrameBurst },
      now,
    );
    if (limiter.takeMessage(now)) return false;
    this.#home.counters.controlFloodCloses++;
    this.protocolState.fail(
      new WebSocketError(
        "WS_ERR_CONTROL_FLOOD",
        `Too many pings and pongs: more than ${rate} per second`,
      ),
    );
    return true;
  }

  /** Over a rate limit: count, and close if that is the policy. */
  #rateLimit(): void {
    this.#rateLimited++;
    this.#home.counters.rateLimitedMessages++;
    if (this.#settings.rateLimit!.policy !== "drop") this.startClose(1008, "Rate limit exceeded");
  }

  /** This connection's traffic so far. */
  traffic(): TrafficCounts {
    const compression = this.protocolState.compression;
    return {
      messagesIn: this.#messagesIn,
      messagesOut: this.#messagesOut,
      bytesIn: this.#bytesIn,
      // The head leaves first: until it has, no frame has been written.
      bytesOut: Math.max(0, this.#outbox.written - this.#headBytes) + this.#urgentBytes,
      compressedIn: compression.compressedIn,
      rawIn: compression.rawIn,
      rawOut: compression.rawOut,
      compressedOut: compression.compressedOut,
    };
  }

  /** @internal */
  get rateLimitedMessages(): number {
    return this.#rateLimited;
  }

  /** @internal */
  onMessage(data: string | Uint8Array, isBinary: boolean): void {
    this.#lastMessage = this.#home.now;
    this.#messagesIn++;
    if (this.#limiter !== undefined && !this.#admit()) return;
    const handler = this.#settings.message;
    if (handler === undefined) return;
    try {
      const result = handler(this.#ws!, data, isBinary);
      if (result !== undefined) this.#watch(result);
    } catch (error) {
      this.#handlerFailed(error);
    }
  }

  /** @internal */
  onFragment(data: string | Uint8Array, isBinary: boolean, fin: boolean): void {
    if (fin) {
      this.#lastMessage = this.#home.now;
      this.#messagesIn++;
    }
    // A streamed message counts as one, at its end; its pieces are out already, so even under
    // "drop" it is delivered whole (only counted); "close" closes.
    if (fin && this.#limiter !== undefined && !this.#limiter.takeMessage(Date.now())) {
      this.#rateLimit();
    }
    try {
      const result = this.#settings.fragment!(this.#ws!, data, isBinary, fin);
      if (result !== undefined) this.#watch(result);
    } catch (error) {
      this.#handlerFailed(error);
    }
  }

  /** @internal */
  onPing(payload: Uint8Array): void {
    this.#lastMessage = this.#home.now; // A peer that pings is not idle (see idleTimeout).
    if (this.#controlFlood()) return;
    // A ping flood costs a pong each: pings count as messages (the pong has gone already).
    if (this.#limiter !== undefined && !this.#admit()) return;
    this.#call(this.#settings.ping, payload);
  }

  /** @internal */
  onPong(payload: Uint8Array): void {
    this.#lastMessage = this.#home.now; // An answered heartbeat is not idleness.
    if (this.#controlFlood()) return;
    if (this.#pingSentAt !== 0 && payload.length === 0) {
      this.#latency = performance.now() - this.#pingStarted;
      this.#pingSentAt = 0;
      this.#home.counters.latency(this.#latency);
    }
    this.#call(this.#settings.pong, payload);
  }

  /** @internal */
  onClosed(code: number, reason: string, error?: WebSocketError): void {
    this.#clearTimer();
    if (error !== undefined && error.code !== "WS_ERR_HANDLER") this.#reportError(error);
    // Report before ending the transport: Bun may close the socket inside end(), and the
    // transport's close must not be mistaken for a lost connection.
    this.#reportClose(code, reason);
    // A failure during an inflate, or backpressure, leaves reading held: read on, to see the
    // peer's FIN.
    this.#release(this.#holds);
    this.#outbox.flush();
    // RFC 6455 §7.1.1: the server closes the TCP connection first; the client waits for that
    // (onEnd), and closes it itself only when the close timeout runs out.
    if (this.protocolState.role !== "client") this.transport.end();
    this.#startTimer();
  }

  /** @internal */
  onResumed(): void {
    // Decoding went on at once, and may have used its slice doing so.
    const protocol = this.protocolState;
    if (protocol.yielded) this.#holdInput(protocol);
    this.#release(HOLD_PROTOCOL);
    if (!protocol.inflating) this.#wakeInflated();
  }

  /** @internal */
  writeFrame(
    opcode: number,
    fin: boolean,
    rsv1: boolean,
    payload: Uint8Array,
    owned: boolean,
  ): void {
    if (opcode < 0x8) {
      this.#lastMessage = this.#home.now;
      if (fin) this.#messagesOut++;
    } else if (opcode !== 0x8 && this.transport.bufferedAmount > URGENT_ABOVE) {
      // A ping or pong jumps ahead of data backed up for a slow reader (the Close frame does
      // not: the data accepted before it must go first). A write merely in flight (Deno's are
      // asynchronous) is no backlog: there the frame goes in order, and a Pong is never
      // replaced by a later one, so each Ping of a burst split across reads gets its own.
      const frame = this.protocolState.role === "client"
        ? encodeFrame(opcode, payload, { mask: (maskKeys ??= new MaskKeySource()).next() })
        : encodeFrame(opcode, payload);
      this.#urgentBytes += frame.length;
      this.transport.writeUrgent(frame);
      return;
    }
    this.#outbox.writeFrame(opcode, fin, rsv1, payload, owned);
  }

  /** @internal */
  writeFramed(frame: Uint8Array): void {
    this.#lastMessage = this.#home.now;
    this.#messagesOut++;
    this.#outbox.writeShared(frame);
  }

  // WebSocketDriver: what the WebSocket asks of its connection.

  /** @internal */
  get bufferedAmount(): number {
    return this.#outbox.corked - this.#corkedHead + this.transport.bufferedAmount;
  }

  /** The head's bytes while they are corked (they leave first): not data queued. */
  get #corkedHead(): number {
    return this.#outbox.written === 0 ? this.#headBytes : 0;
  }

  /** @internal */
  get droppedMessages(): number {
    return this.#dropped;
  }

  /** @internal */
  sendMessage(data: string | Uint8Array, owned: boolean, compress?: boolean): SendStatus {
    const protocol = this.protocolState;
    // Closing or closed: nothing more goes out. That is no error, as in Bun, ws and browsers: a
    // handler that answers after an await cannot know the peer has left meanwhile.
    if (protocol.readyState !== OPEN || this.#overBackpressure()) return SendStatus.Dropped;
    protocol.send(data, owned, compress);
    return this.#sendStatus();
  }

  /**
   * Sends a message framed once for many connections (a publish), under the backpressure
   * policy.
   *
   * @param message The message.
   * @param compress As for `send`.
   * @returns Whether the message reached this connection (sent or queued, not dropped).
   */
  deliver(message: PreparedMessage, compress: boolean | undefined): boolean {
    const protocol = this.protocolState;
    // A publish skips connections that are closing: our Close frame may be out already.
    if (protocol.readyState !== OPEN || this.#overBackpressure()) return false;
    protocol.sendPrepared(message, compress);
    this.#sendStatus();
    // A compression error fails the connection inside sendPrepared: then it was not reached.
    return protocol.readyState === OPEN;
  }

  /** Over `maxBackpressure`: the message is dropped, and the policy applies. */
  #overBackpressure(): boolean {
    const queued = this.bufferedAmount;
    const settings = this.#settings;
    const counters = this.#home.counters;
    const budget = settings.maxTotalBackpressure;
    if (
      queued <= settings.maxBackpressure &&
      // Over the home's budget, a connection above its share of it gets the policy too.
      (counters.queuedBytes <= budget || queued * Math.max(counters.queuing, 1) <= budget)
    ) {
      return false;
    }
    if (this.#dropped++ === 0) this.#reportFirstDrop();
    this.#flags |= BACKPRESSURED;
    counters.droppedMessages++;
    if (settings.backpressurePolicy === "close" && this.protocolState.readyState === OPEN) {
      counters.backpressureCloses++;
      this.startClose(1008, "Backpressure limit");
    }
    return true;
  }

  /**
   * Says once per connection that it dropped a message: a drop is otherwise silent, and a
   * sender that ignores SendStatus loses messages (its last ones too) without knowing.
   */
  #reportFirstDrop(): void {
    const { maxBackpressure, backpressurePolicy } = this.#settings;
    const error = new WebSocketError(
      "WS_ERR_BACKPRESSURE_DROP",
      `A message was dropped: more than maxBackpressure (${maxBackpressure} bytes) is queued ` +
        "for this connection. To lose none, stop sending when a send returns " +
        "SendStatus.Backpressure and go on in the drain handler or after await ws.flushed(), " +
        "or raise maxBackpressure. " +
        (backpressurePolicy === "close"
          ? 'The connection is closed with 1008 (backpressurePolicy "close").'
          : "Further drops on this connection are counted in ws.droppedMessages, not reported."),
    );
    // After the send or publish returns: application code must not run inside a send, nor in
    // the middle of a publish's pass over its subscribers.
    queueMicrotask(() => {
      if (this.#settings.error !== undefined) this.#reportError(error);
      else console.warn(`sluice: ${this.#ws?.remoteAddress}: ${error.message}`);
    });
  }

  #sendStatus(): SendStatus {
    if (this.isBackedUp) {
      this.#flags |= BACKPRESSURED;
      this.#home.counters.backpressureEvents++;
      return SendStatus.Backpressure;
    }
    return SendStatus.Sent;
  }

  /** @internal */
  flushed(): Promise<void> {
    if ((this.#flags & GONE) !== 0 || this.bufferedAmount === 0) {
      return Promise.resolve();
    }
    return new Promise((resolve) => (this.#flushWaiters ??= []).push(resolve));
  }

  /** @internal */
  whenClosed(): Promise<CloseInfo> {
    const info = this.#closeInfo;
    if (info !== undefined) return Promise.resolve(info);
    return new Promise((resolve) => (this.#closeWaiters ??= []).push(resolve));
  }

  /** @internal */
  startClose(code?: number, reason?: string): void {
    const protocol = this.protocolState;
    if (protocol.readyState !== OPEN) return;
    protocol.close(code, reason);
    // Nothing more is sent but the Close frame: read on, so the peer's Close frame is seen.
    this.#release(HOLD_BACKPRESSURE);
    // Wait for the peer's Close frame, but not for ever.
    this.#startTimer();
  }

  /** @internal */
  pause(): void {
    const protocol = this.protocolState;
    if (protocol.readyState === CLOSED) return;
    protocol.pause();
    this.#hold(HOLD_PROTOCOL);
    // Paused by the application: what comes after waits for it, not for an inflate.
    this.#wakeInflated();
  }

  /**
   * After {@linkcode OpenConnection.start}: `undefined` if its early bytes were decoded at once,
   * else a promise that resolves once no inflate holds them (or the application paused, or the
   * connection closed), so a client's `connect` resolves after their messages, compressed or
   * not.
   *
   * @returns The promise, or `undefined`.
   */
  whenInflated(): Promise<void> | undefined {
    if (!this.protocolState.inflating || (this.#flags & CLOSE_REPORTED) !== 0) return undefined;
    return new Promise((resolve) => (this.#inflated = resolve));
  }

  #wakeInflated(): void {
    const resolve = this.#inflated;
    if (resolve === undefined) return;
    this.#inflated = undefined;
    resolve();
  }

  /** @internal */
  resume(): void {
    const protocol = this.protocolState;
    protocol.resume();
    // The socket stays held while an inflate still holds decoding; onResumed() follows then.
    if (!protocol.paused) this.onResumed();
  }

  /** @internal */
  get isBackedUp(): boolean {
    // The socket has not taken everything, or this tick's sends already pass the high-water
    // mark (sends in one tick are corked, so the socket has not seen them yet).
    return this.transport.bufferedAmount !== 0 ||
      this.#outbox.corked - this.#corkedHead >
        Math.min(HIGH_WATER_MARK, this.#settings.maxBackpressure);
  }

  /** @internal */
  get isPaused(): boolean {
    return this.protocolState.paused;
  }

  /** @internal */
  terminate(): void {
    this.#outbox.discard();
    this.transport.destroy();
  }

  // Handlers and errors.

  /** Runs a handler that takes the WebSocket and maybe a payload; a throw or rejection fails
   * the connection with 1011. */
  #call(
    handler: ((ws: W, payload: Uint8Array) => unknown) | undefined,
    payload: Uint8Array = EMPTY,
  ): void {
    if (handler === undefined) return;
    try {
      const result = handler(this.#ws!, payload);
      if (result !== undefined) this.#watch(result);
    } catch (error) {
      this.#handlerFailed(error);
    }
  }

  /** Watches what a handler returned: a rejected promise fails the connection; a value is fine. */
  #watch(result: unknown): void {
    if (isThenable(result)) result.then(undefined, (error) => this.#handlerFailed(error));
  }

  #handlerFailed(error: unknown): void {
    this.#reportError(error, true);
    this.protocolState.fail(
      new WebSocketError("WS_ERR_HANDLER", "An application handler threw", { cause: error }),
    );
  }

  #reportError(error: unknown, always = false): void {
    reportError(this.#settings.error, error, this.#ws, always);
  }

  #reportClose(code: number, reason: string): void {
    if ((this.#flags & CLOSE_REPORTED) !== 0) return;
    this.#flags |= CLOSE_REPORTED;
    const info = this.#closeInfo = { code, reason };
    this.#home.closed(this);
    this.#wakeInflated();
    const waiters = this.#closeWaiters;
    if (waiters !== undefined) {
      this.#closeWaiters = undefined;
      for (const resolve of waiters) resolve(info);
    }
    const handler = this.#settings.close;
    if (handler === undefined) return;
    try {
      const result = handler(this.#ws!, code, reason);
      if (result !== undefined) this.#watch(result);
    } catch (error) {
      this.#reportError(error, true);
    }
  }

  // Timers: the close timeout, and the linger after our FIN.

  #startTimer(): void {
    if ((this.#flags & GONE) !== 0) return;
    this.#clearTimer();
    const timeout = this.#settings.closeTimeout;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      // Our Close frame went unanswered (after the closing handshake the wait is for TCP only).
      if (this.protocolState.readyState === CLOSING) {
        this.#reportError(
          new WebSocketError(
            "WS_ERR_CLOSE_TIMEOUT",
            `No Close frame from the peer within ${timeout} ms of ours`,
          ),
        );
      }
      this.terminate();
    }, timeout);
  }

  #clearTimer(): void {
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
  }
}
