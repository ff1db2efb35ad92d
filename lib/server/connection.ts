/**
 * The connection driver: one TCP connection from the first request byte to the last frame. It
 * runs the opening handshake, then a {@linkcode Protocol}, and owns what the protocol core may
 * not: the socket, the outbox, timers and the application's handlers.
 *
 * @module
 */
import { WebSocketError } from "../protocol/errors.ts";
import {
  type DeflateAgreement,
  negotiateDeflate,
} from "../protocol/extensions/deflate_negotiation.ts";
import { concatBytes } from "../protocol/extensions/deflate_engine.ts";
import { parseExtensions } from "../protocol/extensions/extension_header.ts";
import { PerMessageDeflate } from "../protocol/extensions/permessage_deflate.ts";
import {
  acceptResponse,
  type AcceptResponseOptions,
  type HandshakeRefusal,
  httpResponse,
  isRefusal,
  refusalResponse,
  type RequestHead,
  RequestHeadParser,
  type UpgradeRequestInfo,
  validateUpgradeRequest,
} from "../protocol/handshake.ts";
import { encodeFrame } from "../protocol/frame_writer.ts";
import type { PreparedMessage } from "../protocol/prepared_message.ts";
import { CLOSED, OPEN, Protocol } from "../protocol/protocol.ts";
import { clientAddress } from "./forwarded.ts";
import {
  checkFetchResult,
  checkUpgradeResult,
  isThenable,
  type UpgradeDecision,
} from "./_hook_result.ts";
import { Outbox, type OutboxOwner } from "../core/outbox.ts";
import type { ResolvedOptions, ServerCore } from "./server_core.ts";
import { RateLimiter } from "./rate_limit.ts";
import { readResponse, responseHeaders } from "./response_headers.ts";
import { prometheusText, type TrafficCounts } from "./stats.ts";
import type { Subscriber } from "./topics.ts";
import type { Transport, TransportHandler } from "../core/transport.ts";
import { UpgradeRequest } from "./upgrade_request.ts";
import { SendStatus, ServerWebSocket, type WebSocketDriver } from "./websocket.ts";

const EMPTY = new Uint8Array(0);
const encoder = new TextEncoder();

function utf8Length(text: string): number {
  return encoder.encode(text).length;
}

/** Bytes corked in one tick past which `send` reports backpressure (Node streams use 16 KiB). */
const HIGH_WATER_MARK = 64 * 1024;

/** Bytes a client may send ahead while the upgrade hook runs before reading pauses. */
const PENDING_LIMIT = 64 * 1024;

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
/** The upgrade hook runs and the bytes sent ahead of its answer passed `PENDING_LIMIT`. */
const HOLD_HANDSHAKE = 8;

/** One accepted TCP connection. */
export class Connection<T> implements TransportHandler, WebSocketDriver, Subscriber, OutboxOwner {
  readonly transport: Transport;
  #server: ServerCore<T>;
  #options: ResolvedOptions<T>;
  #head: RequestHeadParser | undefined;
  /** Bytes that arrived behind the request head while the upgrade hook ran. */
  #pending: Uint8Array[] | undefined;
  #pendingBytes = 0;
  /** Why reading is held (HOLD_* bits); 0: the socket is read. */
  #holds = 0;
  /** A later turn is scheduled to decode the next slice. */
  #sliceScheduled = false;
  #nextSlice: (() => void) | undefined;
  /** The outbound queue as last counted in the server's total (`counters.queuedBytes`). */
  #queued = 0;
  /** permessage-deflate as negotiated in the handshake, if it was. */
  #deflate: DeflateAgreement | undefined;
  #protocol: Protocol | undefined;
  #outbox: Outbox;
  #ws: ServerWebSocket<T> | undefined;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #closeReported = false;
  #gone = false;
  /** Over the server's connection limit: the request gets 503. */
  #overLimit: boolean;
  // Times on the server's coarse clock (ms): when the connection came, when anything last
  // arrived, when a data message last went either way or a ping or pong came (the idle clock),
  // when our unanswered ping left (0: none).
  #acceptedAt: number;
  #lastReceive: number;
  #lastMessage: number;
  #pingSentAt = 0;
  #pingStarted = 0;
  #latency: number | undefined;
  // Backpressure: a send met it (so `drain` is owed), messages dropped, flushed() waiters.
  #backpressured = false;
  #dropped = 0;
  #flushWaiters: Array<() => void> | undefined;
  // Traffic, for stats (bytes out: the outbox counts, plus urgent pings and pongs).
  #messagesIn = 0;
  #messagesOut = 0;
  #bytesIn = 0;
  #urgentBytes = 0;
  /** The 101 response's bytes, which the outbox counts but stats do not (frames only). */
  #responseBytes = 0;
  /** The request is a plain HTTP one (for `fetch` or the metrics path), not an upgrade. */
  #plainHttp = false;
  /** The plain HTTP request is a HEAD: responses go without their body. */
  #headOnly = false;
  /** A plain HTTP request whose body is still arriving. */
  #http: { head: RequestHead; chunks: Uint8Array[]; received: number; length: number } | undefined;
  /** Rate limits on what the client sends, if the server sets any. */
  #limiter: RateLimiter | undefined;
  /** The control-frame rate limit, made at the first ping or pong from the client. */
  #controlLimiter: RateLimiter | undefined;
  #rateLimited = 0;
  /** The client's address: the TCP peer's, or the one trusted proxies forwarded for. */
  #address: string;
  /** The topics this connection is subscribed to (made at the first subscribe). */
  #topics: Set<string> | undefined;

  /**
   * Starts serving a new TCP connection.
   *
   * @param server The server it belongs to.
   * @param transport Its socket.
   * @param overLimit The server is at its connection limit: refuse with 503.
   */
  constructor(server: ServerCore<T>, transport: Transport, overLimit = false) {
    this.#server = server;
    this.#options = server.options;
    this.transport = transport;
    this.#outbox = new Outbox(transport, this);
    this.#head = new RequestHeadParser(server.options);
    this.#overLimit = overLimit;
    this.#acceptedAt = this.#lastReceive = this.#lastMessage = server.now;
    this.#address = transport.remoteAddress;
  }

  /**
   * Checks this connection's timeouts; the server calls it a few times per shortest timeout.
   *
   * @param now The server's clock.
   */
  sweep(now: number): void {
    const options = this.#options;
    const protocol = this.#protocol;
    if (protocol === undefined) {
      // Still in the handshake (reading the head or a plain request's body, or waiting for
      // the upgrade hook).
      if (
        options.handshakeTimeout !== 0 && now - this.#acceptedAt > options.handshakeTimeout &&
        (this.#head !== undefined || this.#pending !== undefined || this.#http !== undefined)
      ) {
        this.#countResponse(408);
        this.terminate();
      }
      return;
    }
    if (protocol.readyState !== OPEN) return;
    if (options.idleTimeout !== 0 && now - this.#lastMessage > options.idleTimeout) {
      this.startClose(1001, "Idle timeout");
      return;
    }
    // A held connection is not read, so its pongs could not be seen: no heartbeat then.
    if (options.heartbeatInterval === 0 || this.#holds !== 0) return;
    if (this.#pingSentAt !== 0) {
      // Anything from the peer since our ping shows it is alive; a pong also times the trip.
      if (this.#lastReceive > this.#pingSentAt) {
        this.#pingSentAt = 0;
      } else if (now - this.#pingSentAt > options.heartbeatTimeout) {
        this.#reportError(
          new WebSocketError(
            "WS_ERR_HEARTBEAT_TIMEOUT",
            `No answer to a ping within ${options.heartbeatTimeout} ms`,
          ),
        );
        this.terminate();
      }
      return;
    }
    if (now - this.#lastReceive >= options.heartbeatInterval) {
      this.#pingSentAt = now;
      this.#pingStarted = performance.now();
      protocol.sendControl(0x9, EMPTY);
    }
  }

  /**
   * In the opening handshake: reading the request head, or an upgrade request waiting for the
   * upgrade hook (see `ServerStats.handshaking`).
   */
  get handshaking(): boolean {
    return this.#protocol === undefined &&
      (this.#head !== undefined || this.#pending !== undefined);
  }

  /** The last measured round trip of a heartbeat ping, in ms. */
  get latency(): number | undefined {
    return this.#latency;
  }

  /** The WebSocket, once the handshake is done. */
  get webSocket(): ServerWebSocket<T> | undefined {
    return this.#ws;
  }

  // TransportHandler

  /** @internal */
  onData(chunk: Uint8Array): void {
    this.#lastReceive = this.#server.now;
    if (this.#protocol !== undefined) {
      this.#receive(chunk);
      return;
    }
    if (this.#overLimit) {
      this.#overLimit = false;
      this.#head = undefined;
      this.#refuse({
        status: 503,
        message: "Service unavailable: the server is at its connection limit",
        headers: [["Retry-After", "1"]],
      });
    } else if (this.#head !== undefined) {
      this.#readHead(chunk);
    } else if (this.#http !== undefined) {
      this.#readBody(chunk);
    } else if (this.#pending !== undefined) {
      // The upgrade hook is running: hold the bytes; past the limit, hold them back in TCP.
      this.#pending.push(chunk);
      this.#pendingBytes += chunk.length;
      if (this.#pendingBytes > PENDING_LIMIT) this.#hold(HOLD_HANDSHAKE);
    }
    // Otherwise the request was refused and the rest is ignored.
  }

  /** Bytes for the protocol: counted, held to the byte rate, decoded. */
  #receive(chunk: Uint8Array): void {
    const protocol = this.#protocol!;
    this.#bytesIn += chunk.length;
    const limiter = this.#limiter;
    if (
      limiter !== undefined && !limiter.takeBytes(chunk.length, Date.now()) &&
      this.#options.rateLimit!.policy === "close" && protocol.readyState === OPEN
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
    if (this.bufferedAmount > this.#options.readHighWaterMark) this.#holdForBackpressure();
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
    if (this.#sliceScheduled) return;
    this.#sliceScheduled = true;
    // A timer, not setImmediate: in Deno a chain of immediates (or of MessageChannel
    // messages) holds off other sockets' reads for a hundred of them or more, while a timer
    // lets the event loop poll for I/O first, in both runtimes. The timer's minimum delay
    // costs only the connection that used its slice.
    setTimeout(this.#nextSlice ??= () => this.#decodeSlice(), 0);
  }

  /** The next slice of input held back since decoding yielded. */
  #decodeSlice(): void {
    this.#sliceScheduled = false;
    if (this.#gone) return;
    const protocol = this.#protocol!;
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
    if ((holds & reason & HOLD_BACKPRESSURE) !== 0) this.#lastMessage = this.#server.now;
    if (this.#holds === 0) this.transport.resume();
  }

  /** @internal */
  outboxFlushed(): void {
    const buffered = this.transport.bufferedAmount;
    this.#observe(buffered);
    if (buffered > this.#options.readHighWaterMark) this.#holdForBackpressure();
    // Held for what was corked, and the socket took it at once (no onDrain follows).
    else if (buffered <= this.#options.readLowWaterMark) this.#release(HOLD_BACKPRESSURE);
    if (buffered === 0) this.#drained();
  }

  /**
   * Stops reading while the peer does not take what we send, so what it sends waits in TCP
   * instead of growing our queue (an echo, a request with an answer); what was read already is
   * still handled. Its Close frame is read once the queue drains, or once we close.
   */
  #holdForBackpressure(): void {
    if ((this.#holds & HOLD_BACKPRESSURE) !== 0 || this.#protocol?.readyState !== OPEN) return;
    this.#hold(HOLD_BACKPRESSURE);
    const low = this.#options.readLowWaterMark;
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
    const low = this.#options.readLowWaterMark;
    // Frames corked this tick count too: if they keep the queue above the mark, wait again.
    if (this.bufferedAmount <= low) this.#release(HOLD_BACKPRESSURE);
    else this.transport.watchBelow(low);
  }

  /**
   * Brings this connection's part of the server's running total of queued bytes up to date
   * (the server's stats pass calls it, so a snapshot's total is exact).
   *
   * @internal
   */
  observeQueue(): void {
    this.#observe(this.transport.bufferedAmount);
  }

  /**
   * Reading is held for outbound backpressure.
   *
   * @internal
   */
  get readPaused(): boolean {
    return (this.#holds & HOLD_BACKPRESSURE) !== 0;
  }

  /** Counts `bytes`, the transport's queue now, in the server's total instead of the last. */
  #observe(bytes: number): void {
    const before = this.#queued;
    if (bytes === before) return;
    this.#queued = bytes;
    const counters = this.#server.counters;
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
    if (!this.#backpressured || this.#ws === undefined) return;
    this.#backpressured = false;
    const handler = this.#options.drain;
    if (handler === undefined) return;
    try {
      const result = handler(this.#ws);
      if (result !== undefined) this.#watch(result);
    } catch (error) {
      this.#handlerFailed(error);
    }
  }

  /** @internal */
  onEnd(): void {
    // The peer will send nothing more. Without a closing handshake that is an abnormal closure.
    const protocol = this.#protocol;
    if (protocol !== undefined && protocol.readyState !== CLOSED) {
      protocol.lost();
      this.#reportClose(1006, "");
    }
    this.#outbox.flush();
    this.transport.end();
    this.#startTimer();
  }

  /** @internal */
  onClose(error?: unknown): void {
    if (this.#gone) return;
    this.#gone = true;
    this.#clearTimer();
    this.#observe(0);
    for (const resolve of this.#flushWaiters?.splice(0) ?? []) resolve();
    this.#outbox.discard();
    const protocol = this.#protocol;
    if (protocol !== undefined) {
      if (protocol.readyState !== CLOSED && error !== undefined) {
        this.#reportError(
          new WebSocketError("WS_ERR_CONNECTION_LOST", "The TCP connection broke", {
            cause: error,
          }),
        );
      }
      protocol.dispose(); // Marks it closed (if the connection was lost) and frees its state.
      this.#reportClose(1006, "");
    }
    this.#server.untrack(this);
  }

  // ProtocolHost

  /** Whether a message from the client is within its rate limits (else: the policy). */
  #admit(): boolean {
    const drop = this.#options.rateLimit!.policy === "drop";
    // Closing (for the rate limit or anything else) under "close": messages already read are
    // not delivered, and not counted again.
    if (!drop && this.#protocol!.readyState !== OPEN) return false;
    if (this.#limiter!.takeMessage(Date.now())) return true;
    this.#rateLimit();
    return false;
  }

  /**
   * Whether a ping or pong from the client is over `controlFrameLimit`: then the connection is
   * failed with 1008. Each ping costs a pong (RFC 6455 §5.5.2) and neither is a message, so
   * without this a client could keep the server busy answering for ever.
   */
  #controlFlood(): boolean {
    const options = this.#options;
    const rate = options.controlFrameRate;
    if (rate === 0) return false;
    const now = Date.now();
    const limiter = this.#controlLimiter ??= new RateLimiter(
      { messages: rate, burst: options.controlFrameBurst },
      now,
    );
    if (limiter.takeMessage(now)) return false;
    this.#server.counters.controlFloodCloses++;
    this.#protocol!.fail(
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
    this.#server.counters.rateLimitedMessages++;
    if (this.#options.rateLimit!.policy !== "drop") this.startClose(1008, "Rate limit exceeded");
  }

  /** This connection's traffic so far (all zero before the handshake completes). */
  traffic(): TrafficCounts {
    const compression = this.#protocol?.compression;
    return {
      messagesIn: this.#messagesIn,
      messagesOut: this.#messagesOut,
      bytesIn: this.#bytesIn,
      // The 101 leaves first: until it has, nothing has been written.
      bytesOut: this.#protocol === undefined
        ? 0
        : Math.max(0, this.#outbox.written - this.#responseBytes) + this.#urgentBytes,
      compressedIn: compression?.compressedIn ?? 0,
      rawIn: compression?.rawIn ?? 0,
      rawOut: compression?.rawOut ?? 0,
      compressedOut: compression?.compressedOut ?? 0,
    };
  }

  /** @internal */
  get rateLimitedMessages(): number {
    return this.#rateLimited;
  }

  /** @internal */
  onMessage(data: string | Uint8Array, isBinary: boolean): void {
    this.#lastMessage = this.#server.now;
    this.#messagesIn++;
    if (this.#limiter !== undefined && !this.#admit()) return;
    const handler = this.#options.message;
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
      this.#lastMessage = this.#server.now;
      this.#messagesIn++;
    }
    // A streamed message counts as one, at its end; its pieces are out already, so even under
    // "drop" it is delivered whole (only counted); "close" closes.
    if (fin && this.#limiter !== undefined && !this.#limiter.takeMessage(Date.now())) {
      this.#rateLimit();
    }
    try {
      const result = this.#options.fragment!(this.#ws!, data, isBinary, fin);
      if (result !== undefined) this.#watch(result);
    } catch (error) {
      this.#handlerFailed(error);
    }
  }

  /** @internal */
  onPing(payload: Uint8Array): void {
    this.#lastMessage = this.#server.now; // A peer that pings is not idle (see idleTimeout).
    if (this.#controlFlood()) return;
    // A ping flood costs a pong each: pings count as messages (the pong has gone already).
    if (this.#limiter !== undefined && !this.#admit()) return;
    this.#notify(this.#options.ping, payload);
  }

  /** @internal */
  onPong(payload: Uint8Array): void {
    this.#lastMessage = this.#server.now; // An answered heartbeat is not idleness.
    if (this.#controlFlood()) return;
    if (this.#pingSentAt !== 0 && payload.length === 0) {
      this.#latency = performance.now() - this.#pingStarted;
      this.#pingSentAt = 0;
      this.#server.counters.latency(this.#latency);
    }
    this.#notify(this.#options.pong, payload);
  }

  /** @internal */
  onClosed(code: number, reason: string, error?: WebSocketError): void {
    // Both Close frames are out (or ours, failing the connection): the server closes the TCP
    // connection first (RFC 6455 §7.1.1), once the queued frames are written.
    this.#clearTimer();
    if (error !== undefined && error.code !== "WS_ERR_HANDLER") this.#reportError(error);
    // Report before ending the transport: Bun may close the socket inside end(), and the
    // transport's close must not be mistaken for a lost connection.
    this.#reportClose(code, reason);
    // A failure during an inflate, or backpressure, leaves reading held: read on, to see the
    // peer's FIN.
    this.#release(this.#holds);
    this.#outbox.flush();
    this.transport.end();
    this.#startTimer();
  }

  /** @internal */
  onResumed(): void {
    // Decoding went on at once, and may have used its slice doing so.
    const protocol = this.#protocol;
    if (protocol !== undefined && protocol.yielded) this.#holdInput(protocol);
    this.#release(HOLD_PROTOCOL);
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
      this.#lastMessage = this.#server.now;
      if (fin) this.#messagesOut++;
    } else if (opcode !== 0x8 && this.transport.bufferedAmount !== 0) {
      // A ping or pong jumps ahead of data backed up for a slow reader (the Close frame does
      // not: the data accepted before it must go first).
      const frame = encodeFrame(opcode, payload);
      this.#urgentBytes += frame.length;
      this.transport.writeUrgent(frame);
      return;
    }
    this.#outbox.writeFrame(opcode, fin, rsv1, payload, owned);
  }

  /** @internal */
  writeFramed(frame: Uint8Array): void {
    this.#lastMessage = this.#server.now;
    this.#messagesOut++;
    this.#outbox.writeShared(frame);
  }

  // WebSocketDriver: what ServerWebSocket asks of its connection.

  /** @internal */
  get protocolState(): Protocol {
    return this.#protocol!;
  }

  /** @internal */
  get bufferedAmount(): number {
    return this.#outbox.corked - this.#corkedResponse + this.transport.bufferedAmount;
  }

  /** The 101 response's bytes while they are corked (it leaves first): not data queued. */
  get #corkedResponse(): number {
    return this.#outbox.written === 0 ? this.#responseBytes : 0;
  }

  /** @internal */
  get droppedMessages(): number {
    return this.#dropped;
  }

  /** @internal */
  sendMessage(data: string | Uint8Array, owned: boolean, compress?: boolean): SendStatus {
    const protocol = this.#protocol!;
    if (protocol.readyState === OPEN && this.#overBackpressure()) return SendStatus.Dropped;
    protocol.send(data, owned, compress); // Throws if closing or closed.
    return this.#sendStatus();
  }

  /** @internal */
  deliver(message: PreparedMessage, compress: boolean | undefined): boolean {
    const protocol = this.#protocol!;
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
    const options = this.#options;
    const counters = this.#server.counters;
    const budget = options.maxTotalBackpressure;
    if (
      queued <= options.maxBackpressure &&
      // Over the server's budget, a connection above its share of it gets the policy too.
      (counters.queuedBytes <= budget || queued * Math.max(counters.queuing, 1) <= budget)
    ) {
      return false;
    }
    if (this.#dropped++ === 0) this.#reportFirstDrop();
    this.#backpressured = true;
    counters.droppedMessages++;
    if (this.#options.backpressurePolicy === "close" && this.#protocol!.readyState === OPEN) {
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
    const { maxBackpressure, backpressurePolicy } = this.#options;
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
      if (this.#options.error !== undefined) this.#reportError(error);
      else console.warn(`sluice: ${this.#address}: ${error.message}`);
    });
  }

  #sendStatus(): SendStatus {
    if (this.isBackedUp) {
      this.#backpressured = true;
      this.#server.counters.backpressureEvents++;
      return SendStatus.Backpressure;
    }
    return SendStatus.Sent;
  }

  /** @internal */
  subscribe(topic: string): void {
    // Once the close is reported the connection has left its topics for good.
    if (this.#closeReported) return;
    const topics = this.#topics ??= new Set();
    if (topics.has(topic)) return;
    topics.add(topic);
    this.#server.topics.subscribe(topic, this);
  }

  /** @internal */
  unsubscribe(topic: string): void {
    if (this.#topics?.delete(topic)) this.#server.topics.unsubscribe(topic, this);
  }

  /** @internal */
  isSubscribed(topic: string): boolean {
    return this.#topics?.has(topic) ?? false;
  }

  /** @internal */
  get topics(): string[] {
    return this.#topics === undefined ? [] : [...this.#topics];
  }

  /** @internal */
  publish(
    topic: string,
    message: PreparedMessage,
    compress?: boolean,
    includeSelf = false,
  ): number {
    return this.#server.topics.publish(topic, message, {
      compress,
      except: includeSelf ? undefined : this,
    });
  }

  /** Leaves every topic: O(1) per topic. */
  #leaveTopics(): void {
    const topics = this.#topics;
    if (topics === undefined) return;
    this.#topics = undefined;
    const registry = this.#server.topics;
    for (const topic of topics) registry.unsubscribe(topic, this);
  }

  /** @internal */
  flushed(): Promise<void> {
    if (this.#gone || this.bufferedAmount === 0) {
      return Promise.resolve();
    }
    return new Promise((resolve) => (this.#flushWaiters ??= []).push(resolve));
  }

  /** @internal */
  startClose(code?: number, reason?: string): void {
    const protocol = this.#protocol!;
    if (protocol.readyState !== OPEN) return;
    protocol.close(code, reason);
    // Nothing more is sent but the Close frame: read on, so the peer's Close frame is seen.
    this.#release(HOLD_BACKPRESSURE);
    // Wait for the peer's Close frame, but not for ever.
    this.#startTimer();
  }

  /** @internal */
  pause(): void {
    const protocol = this.#protocol!;
    if (protocol.readyState === CLOSED) return;
    protocol.pause();
    this.#hold(HOLD_PROTOCOL);
  }

  /** @internal */
  resume(): void {
    const protocol = this.#protocol!;
    protocol.resume();
    // The socket stays held while an inflate still holds decoding; onResumed() follows then.
    if (!protocol.paused) this.onResumed();
  }

  /** @internal */
  get isBackedUp(): boolean {
    // The socket has not taken everything, or this tick's sends already pass the high-water
    // mark (sends in one tick are corked, so the socket has not seen them yet).
    return this.transport.bufferedAmount !== 0 ||
      this.#outbox.corked - this.#corkedResponse >
        Math.min(HIGH_WATER_MARK, this.#options.maxBackpressure);
  }

  /** @internal */
  get isPaused(): boolean {
    return this.#protocol!.paused;
  }

  /** @internal */
  terminate(): void {
    this.#outbox.discard();
    this.transport.destroy();
  }

  // The opening handshake.

  #readHead(chunk: Uint8Array): void {
    const parser = this.#head!;
    const status = parser.push(chunk);
    if (status === 0) return;
    this.#head = undefined;
    if (status === -1) {
      this.#refuse(parser.refusal!);
      return;
    }
    const head = parser.head!;
    const options = this.#options;
    if (options.trustedProxy !== undefined) {
      this.#address = clientAddress(this.#address, head.headers, options.trustedProxy);
    }
    if (
      (options.fetch !== undefined ||
        (options.metricsPath !== undefined &&
          head.target.split("?", 1)[0] === options.metricsPath)) &&
      !head.headers.some(([name]) => name === "upgrade")
    ) {
      this.#startHttp(head, parser.rest);
      return;
    }
    const info = validateUpgradeRequest(head);
    if (isRefusal(info)) {
      this.#refuse(info);
      return;
    }
    const allowed = options.originAllowed;
    if (
      allowed !== undefined &&
      (info.origin === undefined ? options.requireOrigin : !allowed(info.origin))
    ) {
      // Before the hook: a cross-site page must not reach application code (or its database).
      this.#refuse({
        status: 403,
        message: info.origin === undefined
          ? "Forbidden: an Origin header is required"
          : "Forbidden: this Origin is not allowed",
        headers: [],
      });
      return;
    }
    const deflate = this.#options.deflate;
    if (deflate !== undefined && info.extensions !== "") {
      const offers = parseExtensions(info.extensions);
      if (typeof offers === "string") {
        this.#refuse({ status: 400, message: offers, headers: [] });
        return;
      }
      this.#deflate = negotiateDeflate(offers, deflate.negotiation);
    }
    const rest = parser.rest;
    this.#pending = rest.length === 0 ? [] : [rest];
    const hook = this.#options.upgrade;
    if (hook === undefined) {
      this.#accept(info, undefined);
      return;
    }
    const request = new UpgradeRequest(head, info, {
      address: this.#address,
      port: this.transport.remotePort,
      peerAddress: this.transport.remoteAddress,
      secure: options.cert !== undefined,
    });
    let result: unknown;
    try {
      result = hook(request);
    } catch (error) {
      this.#hookFailed(error);
      return;
    }
    if (isThenable(result)) {
      // Keep reading while the hook runs, so a client that leaves is noticed (and costs
      // nothing); bytes it sends early wait in #pending, up to PENDING_LIMIT.
      Promise.resolve(result).then(
        (value) => {
          if (this.#gone) return; // The client left meanwhile: nothing to do, nothing to raise.
          this.#decide(info, value);
        },
        (error) => {
          if (this.#gone) return;
          this.#hookFailed(error);
        },
      );
      return;
    }
    this.#decide(info, result);
  }

  /** Acts on what the upgrade hook returned; anything unusable refuses with 500. */
  #decide(info: UpgradeRequestInfo, result: unknown): void {
    let decision: UpgradeDecision;
    try {
      decision = checkUpgradeResult(result);
    } catch (error) {
      this.#hookFailed(error);
      return;
    }
    if (decision instanceof Response) {
      this.#refuseWith(decision);
      return;
    }
    this.#accept(info, decision);
  }

  #accept(info: UpgradeRequestInfo, accept: Exclude<UpgradeDecision, Response>): void {
    let protocol = accept?.protocol;
    if (protocol !== undefined) {
      // Never answer with a subprotocol the client did not offer (RFC 6455 §4.2.2).
      if (!info.protocols.includes(protocol)) {
        this.#hookFailed(
          new TypeError(
            `Cannot accept: the subprotocol "${protocol}" was not offered by the client`,
          ),
        );
        return;
      }
    } else {
      protocol = this.#options.protocols.length === 0
        ? undefined
        : info.protocols.find((offered) => this.#options.protocols.includes(offered));
    }
    let response: Uint8Array;
    try {
      response = acceptResponse(info.key, {
        protocol,
        extensions: this.#deflate?.response,
        // Checked by acceptResponse: a TypeError for anything but headers.
        headers: accept?.headers as AcceptResponseOptions["headers"],
      });
    } catch (error) {
      this.#hookFailed(error);
      return;
    }
    // Corked with what `open` sends in this tick: one socket write for both, and the first
    // sends see no bytes of the response still in the socket (the same status on Deno, whose
    // writes complete later, as on Bun).
    this.#outbox.writeBytes(response);
    this.#responseBytes = response.length;
    const agreement = this.#deflate;
    const setup = this.#options.deflate;
    this.#lastMessage = this.#server.now;
    this.#protocol = new Protocol(this, {
      maxPayloadLength: this.#options.maxPayloadLength,
      maxFragments: this.#options.maxFragments,
      streaming: this.#options.fragment !== undefined,
      copyBelow: this.transport.copyBelow,
      sliceFrames: SLICE_FRAMES,
      deflate: agreement === undefined || setup === undefined ? undefined : new PerMessageDeflate(
        setup.engine,
        agreement.params,
        setup.threshold,
        setup.tuning,
      ),
    });
    const ws = new ServerWebSocket<T>(this, {
      data: accept?.data as T,
      protocol: protocol ?? "",
      extensions: agreement?.response ?? "",
      remoteAddress: this.#address,
      remotePort: this.transport.remotePort,
    });
    this.#ws = ws;
    const rateLimit = this.#options.rateLimit;
    if (rateLimit !== undefined) this.#limiter = new RateLimiter(rateLimit, Date.now());
    this.#server.opened(this);
    const open = this.#options.open;
    if (open !== undefined) {
      try {
        const result = open(ws);
        if (result !== undefined) this.#watch(result);
      } catch (error) {
        this.#handlerFailed(error);
      }
    }
    const pending = this.#pending!;
    this.#pending = undefined;
    this.#release(HOLD_HANDSHAKE);
    // Bytes that came early count against the rate limits like any others.
    for (const chunk of pending) this.#receive(chunk);
  }

  // Plain HTTP: one request per connection, answered by the metrics path or `fetch`.

  #startHttp(head: RequestHead, rest: Uint8Array): void {
    this.#server.counters.httpRequests++;
    this.#plainHttp = true;
    this.#headOnly = head.method === "HEAD";
    let length = 0;
    let lengthSeen = false;
    let hosts = 0;
    for (const [name, value] of head.headers) {
      if (name === "host") hosts++;
      if (name === "transfer-encoding") {
        // RFC 9112 §6.1: a transfer coding the server does not understand gets 501.
        this.#refuse({
          status: 501,
          message: "Chunked request bodies are not supported",
          headers: [],
        });
        return;
      }
      if (name === "content-length") {
        // RFC 9112 §6.3: differing lengths are an error (a request smuggled past a proxy).
        if (!/^[0-9]{1,15}$/.test(value) || (lengthSeen && Number(value) !== length)) {
          this.#refuse({
            status: 400,
            message: "Bad request: invalid Content-Length",
            headers: [],
          });
          return;
        }
        length = Number(value);
        lengthSeen = true;
      }
    }
    // RFC 9112 §3.2: a request without Host, or with more than one, gets a 400.
    if (hosts !== 1) {
      this.#refuse({
        status: 400,
        message: hosts === 0
          ? "Bad request: the Host header is missing"
          : "Bad request: more than one Host header",
        headers: [],
      });
      return;
    }
    if (length > this.#options.maxRequestBodySize) {
      this.#refuse({ status: 413, message: "The request body is too large", headers: [] });
      return;
    }
    this.#http = { head, chunks: [], received: 0, length };
    this.#readBody(rest);
  }

  #readBody(chunk: Uint8Array): void {
    const http = this.#http!;
    if (http.received < http.length && chunk.length !== 0) {
      const piece = chunk.subarray(0, http.length - http.received);
      http.chunks.push(piece);
      http.received += piece.length;
    }
    if (http.received < http.length) return;
    // Bytes past the body (a pipelined request) are ignored from here: each response closes.
    this.#http = undefined;
    this.#answerHttp(http.head, http.chunks, http.length);
  }

  async #answerHttp(head: RequestHead, chunks: Uint8Array[], length: number): Promise<void> {
    const options = this.#options;
    let response: Response | undefined;
    let url: URL;
    try {
      const host = head.headers.find(([name]) => name === "host")![1];
      url = new URL(head.target, `${options.cert === undefined ? "http" : "https"}://${host}`);
    } catch {
      this.#refuse({ status: 400, message: "Bad request: invalid Host or target", headers: [] });
      return;
    }
    try {
      if (options.metricsPath !== undefined && url.pathname === options.metricsPath) {
        if (head.method === "GET" || head.method === "HEAD") {
          response = new Response(prometheusText(this.#server.stats()), {
            headers: { "Content-Type": "text/plain; version=0.0.4; charset=utf-8" },
          });
        } else {
          response = new Response("Method not allowed", {
            status: 405,
            headers: { Allow: "GET, HEAD" },
          });
        }
      } else if (options.fetch !== undefined) {
        const headers = new Headers();
        for (const [name, value] of head.headers) headers.append(name, value);
        const body = head.method === "GET" || head.method === "HEAD"
          ? undefined
          : concatBytes(chunks, length) as Uint8Array<ArrayBuffer>;
        response = checkFetchResult(
          await options.fetch(new Request(url, { method: head.method, headers, body }), {
            remoteAddress: this.#address,
            peerAddress: this.transport.remoteAddress,
          }),
        );
      }
    } catch (error) {
      if (this.#gone) return;
      this.#reportError(error, true);
      this.#refuse({ status: 500, message: "Internal Server Error", headers: [] });
      return;
    }
    if (this.#gone) return;
    if (response === undefined) {
      this.#refuse({ status: 404, message: "Not found", headers: [] });
      return;
    }
    this.#respond(response, head.method === "HEAD");
  }

  #refuse(refusal: HandshakeRefusal): void {
    this.#countResponse(refusal.status);
    this.#pending = undefined; // No longer in the handshake: later bytes are ignored.
    let bytes = refusalResponse(refusal);
    // A response to HEAD has no body (RFC 9110 §9.3.2).
    if (this.#headOnly) bytes = bytes.subarray(0, bytes.length - utf8Length(refusal.message));
    this.transport.write(bytes, false);
    this.transport.end();
    this.#startTimer();
  }

  #refuseWith(response: Response): void {
    this.#server.refused(response.status);
    this.#pending = undefined; // No longer in the handshake: later bytes are ignored.
    this.#respond(response, false);
  }

  /** Writes a `Response` (its body read whole), then closes. */
  #respond(response: Response, headOnly: boolean): void {
    readResponse(response).then(
      ({ body, type }) => {
        if (this.#gone) return;
        let bytes: Uint8Array;
        try {
          const headers = responseHeaders(response.headers, type, body);
          bytes = httpResponse(response.status, headers, body);
        } catch (error) {
          this.#hookFailed(error);
          return;
        }
        // A response to HEAD has the headers of the GET response and no body (RFC 9110 §9.3.2).
        if (headOnly) bytes = bytes.subarray(0, bytes.length - body.length);
        // (A refusal from the upgrade hook was counted when it was decided.)
        if (this.#plainHttp) this.#server.counters.httpResponse(response.status);
        this.transport.write(bytes, false);
        this.transport.end();
        this.#startTimer();
      },
      (error) => {
        if (!this.#gone) this.#hookFailed(error);
      },
    );
  }

  /** Counts a response: a plain HTTP one by status, else a refused upgrade request. */
  #countResponse(status: number): void {
    if (this.#plainHttp) this.#server.counters.httpResponse(status);
    else this.#server.refused(status);
  }

  #hookFailed(error: unknown): void {
    this.#reportError(error);
    this.#refuse({ status: 500, message: "Internal Server Error", headers: [] });
  }

  // Handlers and errors.

  /** Runs a ping or pong handler; a throw or rejection closes the connection with 1011. */
  #notify(
    handler: ((ws: ServerWebSocket<T>, payload: Uint8Array) => void | Promise<void>) | undefined,
    payload: Uint8Array,
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
    if (isThenable(result)) {
      result.then(undefined, (error) => this.#handlerFailed(error));
    }
  }

  #handlerFailed(error: unknown): void {
    this.#reportError(error, true);
    this.#protocol?.fail(
      new WebSocketError("WS_ERR_HANDLER", "An application handler threw", { cause: error }),
    );
  }

  #reportError(error: unknown, always = false): void {
    const handler = this.#options.error;
    if (handler !== undefined) {
      try {
        handler(error, this.#ws);
      } catch (inner) {
        console.error("sluice: the error handler threw", inner);
      }
    } else if (always || !(error instanceof WebSocketError)) {
      console.error("sluice:", error);
    }
  }

  #reportClose(code: number, reason: string): void {
    if (this.#closeReported) return;
    this.#closeReported = true;
    this.#leaveTopics();
    this.#server.closed(this);
    const handler = this.#options.close;
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
    if (this.#gone) return;
    this.#clearTimer();
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.terminate();
    }, this.#options.closeTimeout);
  }

  #clearTimer(): void {
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
  }
}
