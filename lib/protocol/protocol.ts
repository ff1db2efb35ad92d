/**
 * One connection's protocol state, sans I/O: bytes in through {@linkcode Protocol.receive},
 * events and frames out through a {@linkcode ProtocolHost}. It reassembles messages, answers
 * pings, runs the closing handshake (RFC 6455 §7) and fails the connection on bad input with
 * the close code the cause calls for. It never touches a socket or a timer.
 *
 * @module
 */
import {
  encodeClosePayload,
  isValidCloseCode,
  MAX_CLOSE_REASON_BYTES,
  parseClosePayload,
} from "./close.ts";
import { WebSocketError } from "./errors.ts";
import { concatBytes } from "./extensions/deflate_engine.ts";
import type { PerMessageDeflate } from "./extensions/permessage_deflate.ts";
import { FrameParser, type FrameSink } from "./frame_parser.ts";
import { Opcode } from "./opcode.ts";
import { payloadOffset, type PreparedMessage } from "./prepared_message.ts";
import { decodeUtf8, Utf8StreamDecoder } from "./utf8.ts";

/** `readyState`: the handshake has not completed. */
export const CONNECTING = 0;
/** `readyState`: messages flow both ways. */
export const OPEN = 1;
/** `readyState`: we sent a Close frame and wait for the peer's. */
export const CLOSING = 2;
/** `readyState`: the closing handshake is over, or the connection failed or was lost. */
export const CLOSED = 3;

/** What a {@linkcode Protocol} tells the code that drives it, and where its frames go. */
export interface ProtocolHost {
  /** A whole message: a string for text, a view for binary (valid after the call returns). */
  onMessage(data: string | Uint8Array, isBinary: boolean): void;
  /**
   * With {@linkcode ProtocolOptions.streaming}: the next piece of a data message, as it
   * arrives (text as decoded characters, binary as a view); `fin` on the message's last piece.
   * A compressed message comes as one piece, inflated.
   */
  onFragment?(data: string | Uint8Array, isBinary: boolean, fin: boolean): void;
  /** A ping arrived; the pong is already queued. */
  onPing(payload: Uint8Array): void;
  /** A pong arrived. */
  onPong(payload: Uint8Array): void;
  /**
   * The closing handshake is complete (both Close frames are out), or the connection failed
   * (`error` is set, our Close frame with its code is out). The host should flush what is
   * queued; RFC 6455 §7.1.1 has the server close the TCP connection first, and the client wait
   * for that (closing it itself only after a timeout).
   */
  onClosed(code: number, reason: string, error?: WebSocketError): void;
  /**
   * Decoding went on after a pause of the protocol's own (an asynchronous inflate finished):
   * input held back from the socket may flow again.
   */
  onResumed?(): void;
  /**
   * Sends one whole frame built elsewhere (a broadcast's, shared by every subscriber: the host
   * may keep it by reference and must not change it). Without this method such frames go
   * through {@linkcode ProtocolHost.writeFrame}.
   *
   * @param frame Header and payload.
   */
  writeFramed?(frame: Uint8Array): void;
  /**
   * Sends one frame. A client's host masks it (RFC 6455 §5.3).
   *
   * @param owned `true` if the host may keep `payload` by reference; `false` if the caller
   * reuses it, so the host must copy it before this call returns.
   */
  writeFrame(
    opcode: number,
    fin: boolean,
    rsv1: boolean,
    payload: Uint8Array,
    owned: boolean,
  ): void;
}

/**
 * Which end of the connection a {@linkcode Protocol} is. A server requires masked frames from
 * its client; a client requires unmasked frames from its server, masks every frame it sends
 * (its host does, with a fresh key per frame, RFC 6455 §5.3), and leaves the TCP close to the
 * server at the end of the closing handshake (§7.1.1).
 */
export type Role = "server" | "client";

/** How a {@linkcode Protocol} treats its peer. */
export interface ProtocolOptions {
  /** Which end this is. @default {"server"} */
  role?: Role;
  /** The largest message accepted, in bytes; a larger one fails with 1009.
   * @default {16777216} (16 MiB, as Bun's server) */
  maxPayloadLength?: number;
  /**
   * Deliver data messages piece by piece through `onFragment` instead of whole through
   * `onMessage`, so a large message is never held in memory. @default {false}
   */
  streaming?: boolean;
  /** Frames in one message beyond which the connection fails with 1008. @default {Infinity} */
  maxFragments?: number;
  /** permessage-deflate, when it was negotiated. @default {undefined} */
  deflate?: PerMessageDeflate;
  /** A payload shorter than this many bytes, whole in its chunk, is handed out as a copy
   * rather than a view of the chunk. @default {0} */
  copyBelow?: number;
  /**
   * Frames decoded per turn: past them decoding yields ({@linkcode Protocol.yielded}) until
   * {@linkcode Protocol.continue}, which the host calls on a later turn of its event loop, so
   * that one peer's flood does not keep it from others. @default {Infinity} (never yields)
   */
  sliceFrames?: number;
}

/** Bytes through permessage-deflate on one connection, for the compression ratio. */
export interface CompressionCounters {
  /** Compressed payload bytes received. */
  compressedIn: number;
  /** What they inflated to. */
  rawIn: number;
  /** Bytes of the messages sent compressed, before compression. */
  rawOut: number;
  /** What they compressed to. */
  compressedOut: number;
}

/** The default {@linkcode ProtocolOptions.maxPayloadLength}: 16 MiB. */
export const DEFAULT_MAX_PAYLOAD_LENGTH = 16 * 1024 * 1024;

// Strings up to this many UTF-16 units are encoded into a shared scratch buffer (no allocation);
// each unit takes at most 3 bytes of UTF-8.
const SCRATCH_TEXT_UNITS = 16 * 1024;
const scratch = new Uint8Array(SCRATCH_TEXT_UNITS * 3);
const encoder = new TextEncoder();
const EMPTY = new Uint8Array(0);
/** The compression counters of every connection without permessage-deflate: never counted. */
const NO_COMPRESSION: CompressionCounters = Object.freeze({
  compressedIn: 0,
  rawIn: 0,
  rawOut: 0,
  compressedOut: 0,
});

/**
 * The protocol state of one connection, of either role.
 *
 * @example
 * ```ts
 * import { Protocol } from "./protocol.ts";
 * const protocol = new Protocol({
 *   onMessage: (data) => console.log("message", data),
 *   onPing() {},
 *   onPong() {},
 *   onClosed: (code) => console.log("closed", code),
 *   writeFrame: (opcode, _fin, _rsv1, payload) => console.log("out", opcode, payload),
 * });
 * // A masked text frame "hi" (mask 00 00 00 00), then a masked Close frame with code 1000.
 * protocol.receive(new Uint8Array([0x81, 0x82, 0, 0, 0, 0, 0x68, 0x69]));
 * protocol.receive(new Uint8Array([0x88, 0x82, 0, 0, 0, 0, 0x03, 0xe8]));
 * ```
 */
export class Protocol implements FrameSink {
  #host: ProtocolHost;
  /** Which end this is. */
  readonly role: Role;
  /** The frame decoder, made at the first bytes from the peer (or the first pause). */
  #parser: FrameParser | undefined;
  #copyBelow: number | undefined;
  #sliceFrames: number | undefined;
  #maxPayloadLength: number;
  #readyState = OPEN;
  #closeSent = false;
  // The message being assembled: opcode 0 when none is open.
  #messageOpcode = 0;
  #messageLength = 0;
  #fragments = 1;
  #maxFragments: number;
  #pieces: Uint8Array[] | undefined;
  #text = "";
  #utf8: Utf8StreamDecoder | undefined;
  // The frame whose payload spans chunks.
  #frameOpcode = 0;
  #frameFin = false;
  #frameSplit = false;
  #control: Uint8Array | undefined;
  #controlLength = 0;
  // permessage-deflate: whether the open message is compressed, the opcode of the message
  // being inflated, and our frames waiting behind a compression in flight, in send order.
  #deflate: PerMessageDeflate | undefined;
  /**
   * Bytes in and out of compression: counted only when permessage-deflate is in use (without
   * it, zeros shared by every connection).
   */
  readonly compression: CompressionCounters;
  #compressed = false;
  #inflating = 0;
  /** The application paused decoding (pause()). */
  #held = false;
  #streaming: boolean;
  // A message we send as a stream of fragments: its opcode until the first fragment is out,
  // and the sends made meanwhile, which follow it.
  #streamOpcode = -1;
  #heldSends:
    | Array<{ opcode: number; bytes: Uint8Array; compress: boolean | undefined }>
    | undefined;
  #slots: Slot[] | undefined;
  #closedAfterSlots: { code: number; reason: string } | undefined;

  /**
   * Makes the state of a connection whose opening handshake just completed.
   *
   * @param host Receives events and frames.
   * @param options Limits.
   */
  constructor(host: ProtocolHost, options: ProtocolOptions = {}) {
    this.#host = host;
    this.role = options.role ?? "server";
    this.#maxPayloadLength = options.maxPayloadLength ?? DEFAULT_MAX_PAYLOAD_LENGTH;
    this.#deflate = options.deflate;
    this.compression = options.deflate === undefined
      ? NO_COMPRESSION
      : { compressedIn: 0, rawIn: 0, rawOut: 0, compressedOut: 0 };
    this.#maxFragments = options.maxFragments ?? Infinity;
    this.#streaming = options.streaming ?? false;
    if (this.#streaming && host.onFragment === undefined) {
      throw new TypeError("Cannot stream messages: the host has no onFragment");
    }
    const slice = options.sliceFrames;
    if (slice !== undefined && !(slice >= 1)) {
      throw new RangeError(`Cannot decode: sliceFrames must be at least 1, got ${slice}`);
    }
    this.#copyBelow = options.copyBelow;
    this.#sliceFrames = slice;
  }

  /**
   * The frame decoder. An idle connection (most of a server's, at any time) never needs one
   * until the peer sends something, so it is made then.
   */
  get #frames(): FrameParser {
    return this.#parser ??= new FrameParser(this, {
      // RFC 6455 §5.1: a server fails on an unmasked frame, a client on a masked one.
      requireMask: this.role === "server",
      allowRsv1: this.#deflate !== undefined,
      copyBelow: this.#copyBelow,
      sliceFrames: this.#sliceFrames,
    });
  }

  /** `OPEN`, `CLOSING` or `CLOSED`. */
  get readyState(): number {
    return this.#readyState;
  }

  /**
   * Decodes bytes from the peer. Bad input does not throw: it fails the connection through
   * {@linkcode ProtocolHost.onClosed}.
   *
   * @param chunk Bytes from the socket; they are unmasked in place and handed out as views, so
   * the caller must never reuse this memory.
   */
  receive(chunk: Uint8Array): void {
    this.#frames.push(chunk);
  }

  /**
   * Whether decoding is paused (by {@linkcode Protocol.pause} or an inflate in progress). A
   * closed protocol is never paused: nothing waits on it any more.
   */
  get paused(): boolean {
    return this.#parser !== undefined && this.#parser.paused && this.#readyState !== CLOSED;
  }

  /** Whether a compressed message is being inflated (decoding waits for it). */
  get inflating(): boolean {
    return this.#inflating !== 0;
  }

  /**
   * Whether decoding used its turn's budget of frames ({@linkcode ProtocolOptions.sliceFrames})
   * with input left. The host should stop reading and call {@linkcode Protocol.continue} on a
   * later turn of its event loop (a macrotask: the core keeps no timers).
   */
  get yielded(): boolean {
    return this.#parser !== undefined && this.#parser.yielded;
  }

  /** Decodes the next slice of the input held back since decoding yielded. */
  continue(): void {
    this.#parser?.continue();
  }

  /**
   * Stops decoding after the current event until {@linkcode Protocol.resume} (inbound flow
   * control: the application is busy).
   */
  pause(): void {
    this.#held = true;
    this.#frames.pause();
  }

  /** Decodes what was held back by {@linkcode Protocol.pause}, unless an inflate still runs. */
  resume(): void {
    if (!this.#held) return;
    this.#held = false;
    if (this.#inflating === 0 && this.#readyState !== CLOSED) this.#frames.resume();
  }

  /**
   * Sends a message. With permessage-deflate, it is compressed when `compress` says so or, if
   * `compress` is undefined, when it is at least the extension's threshold.
   *
   * @param data A string is sent as text; a Uint8Array as binary.
   * @param owned For a Uint8Array: whether the host may keep it by reference.
   * @param compress Compress this message (when permessage-deflate was negotiated).
   * @returns The payload's size in bytes, before compression.
   * @throws {TypeError} When the connection is closing or closed.
   */
  send(data: string | Uint8Array, owned = false, compress?: boolean): number {
    this.#assertOpen("send");
    let opcode: number = Opcode.Binary;
    let bytes: Uint8Array;
    if (typeof data === "string") {
      opcode = Opcode.Text;
      if (data.length <= SCRATCH_TEXT_UNITS) {
        bytes = scratch.subarray(0, encoder.encodeInto(data, scratch).written);
        owned = false;
      } else {
        bytes = encoder.encode(data);
        owned = true;
      }
    } else {
      bytes = data;
    }
    const held = this.#heldSends;
    if (held !== undefined) {
      // A fragmented message is being sent: no other data frame may come between its
      // fragments (RFC 6455 §5.4), so this message follows it.
      held.push({ opcode, bytes: owned ? bytes : bytes.slice(), compress });
    } else {
      this.#sendBytes(opcode, bytes, owned, compress);
    }
    return bytes.length;
  }

  /**
   * Sends a message framed once for many connections: its frame is written as it is, or its
   * compressed frame, made once per shareable compressor.
   *
   * @param message The message.
   * @param compress As for {@linkcode Protocol.send}.
   * @returns The payload's size in bytes, before compression.
   * @throws {TypeError} When the connection is closing or closed.
   */
  sendPrepared(message: PreparedMessage, compress?: boolean): number {
    this.#assertOpen("send");
    const { opcode, payload } = message;
    const held = this.#heldSends;
    if (held !== undefined) {
      held.push({ opcode, bytes: payload, compress });
    } else if (this.#compresses(payload.length, compress)) {
      const compressor = this.#deflate!.compressor;
      if (compressor.shareable !== true) {
        this.#sendBytes(opcode, payload, true, compress);
      } else {
        const frame = message.compressedFrame(compressor);
        if (frame instanceof WebSocketError) {
          this.fail(frame);
        } else {
          this.compression.rawOut += payload.length;
          this.compression.compressedOut += frame.length - payloadOffset(frame);
          this.#emitFramed(opcode, frame, true);
        }
      }
    } else {
      this.#emitFramed(opcode, message.frame, false);
    }
    return payload.length;
  }

  /** Whether a message of `length` bytes goes out compressed. */
  #compresses(length: number, compress: boolean | undefined): boolean {
    const deflate = this.#deflate;
    return deflate !== undefined && deflate.compresses && compress !== false &&
      (compress === true || length >= deflate.threshold);
  }

  /** Writes a whole frame now, or queues its payload behind messages being compressed. */
  #emitFramed(opcode: number, frame: Uint8Array, rsv1: boolean): void {
    const host = this.#host;
    // A client's frames are masked, each with its own key: a shared frame cannot serve it.
    if (
      (this.#slots !== undefined && this.#slots.length !== 0) || host.writeFramed === undefined ||
      this.role === "client"
    ) {
      this.#emit(opcode, frame.subarray(payloadOffset(frame)), rsv1, true);
    } else {
      host.writeFramed(frame);
    }
  }

  #sendBytes(opcode: number, bytes: Uint8Array, owned: boolean, compress?: boolean): void {
    const deflate = this.#deflate;
    if (deflate !== undefined && this.#compresses(bytes.length, compress)) {
      // The slot keeps this message's place in the send order while it is compressed (at
      // once with a synchronous engine: then the slot is written and gone before this returns).
      (this.#slots ??= []).push({ opcode, payload: undefined, rsv1: true, fin: true });
      this.compression.rawOut += bytes.length;
      deflate.compressor.compress(
        bytes,
        // A closure per message rather than a field per connection: beside a compression it
        // costs nothing.
        (result) => this.#deflated(result),
      );
      return;
    }
    this.#emit(opcode, bytes, false, owned);
  }

  /**
   * Begins a message sent as a stream of fragments ({@linkcode Protocol.sendFragment}); other
   * messages sent until {@linkcode Protocol.endStream} follow it.
   *
   * @param isBinary Binary, or text (then the fragments together must be UTF-8).
   * @throws {TypeError} When closing or closed, or when a stream is already open.
   */
  startStream(isBinary: boolean): void {
    this.#assertOpen("send");
    if (this.#heldSends !== undefined) {
      throw new TypeError("Cannot send a stream: another stream is being sent");
    }
    this.#heldSends = [];
    this.#streamOpcode = isBinary ? Opcode.Binary : Opcode.Text;
  }

  /**
   * Sends the next fragment of the open stream (uncompressed).
   *
   * @param data The fragment's payload.
   * @param owned Whether the host may keep `data` by reference.
   * @param fin Whether it is the last.
   * @throws {TypeError} When closing or closed, or when no stream is open.
   */
  sendFragment(data: Uint8Array, owned: boolean, fin: boolean): void {
    this.#assertOpen("send");
    if (this.#heldSends === undefined) {
      throw new TypeError("Cannot send a fragment: no stream is open");
    }
    const opcode = this.#streamOpcode;
    this.#streamOpcode = Opcode.Continuation;
    if (this.#slots === undefined || this.#slots.length === 0) {
      this.#host.writeFrame(opcode, fin, false, data, owned);
    } else {
      this.#slots.push({ opcode, payload: owned ? data : data.slice(), rsv1: false, fin });
    }
  }

  /**
   * Closes the stream: the messages sent meanwhile go out. If the last fragment was not sent
   * (the source failed), the connection cannot finish the message and should be failed.
   */
  endStream(): void {
    const held = this.#heldSends;
    if (held === undefined) return;
    this.#heldSends = undefined;
    this.#streamOpcode = -1;
    if (this.#readyState !== OPEN) return;
    for (const { opcode, bytes, compress } of held) this.#sendBytes(opcode, bytes, true, compress);
  }

  /**
   * Sends a ping or a pong.
   *
   * @param opcode `Opcode.Ping` or `Opcode.Pong`.
   * @param payload At most 125 bytes.
   * @throws {TypeError} When the connection is closing or closed.
   * @throws {RangeError} When the payload is over 125 bytes.
   */
  sendControl(opcode: typeof Opcode.Ping | typeof Opcode.Pong, payload: Uint8Array): void {
    const what = opcode === Opcode.Ping ? "ping" : "pong";
    if (payload.length > 125) {
      throw new RangeError(
        `Cannot ${what}: the payload is ${payload.length} bytes, more than 125`,
      );
    }
    this.#assertOpen(what);
    this.#host.writeFrame(opcode, true, false, payload, false);
  }

  /**
   * Starts the closing handshake: sends a Close frame; the peer's answer completes it. Does
   * nothing if a Close frame was already sent.
   *
   * @param code A close code that may be sent, or `undefined` for an empty Close frame.
   * @param reason At most 123 bytes of UTF-8.
   * @throws {RangeError} When the code may not be sent or the reason is too long.
   */
  close(code?: number, reason?: string): void {
    const payload = encodeClosePayload(code, reason);
    if (this.#closeSent || this.#readyState === CLOSED) return;
    this.#closeSent = true;
    this.#readyState = CLOSING;
    // Behind the messages already accepted: none of them is lost (RFC 6455 §5.5.1).
    this.#emit(Opcode.Close, payload, false, true);
  }

  /**
   * Fails the connection (RFC 6455 §7.1.7): sends a Close frame with the error's code unless one
   * was sent already or the code may not be sent (1006), stops decoding, and reports it through
   * `onClosed`.
   *
   * @param error Why.
   */
  fail(error: WebSocketError): void {
    if (this.#readyState === CLOSED) return;
    this.lost();
    // 1006 (a lost connection, a close timeout) is never sent (RFC 6455 §7.4.1): no frame then.
    if (!this.#closeSent && isValidCloseCode(error.closeCode)) {
      this.#closeSent = true;
      // 1011 carries no details (they are the server's); the others describe the peer's input.
      const reason = error.closeCode === 1011 ? "" : truncateReason(error.message);
      this.#host.writeFrame(
        Opcode.Close,
        true,
        false,
        encodeClosePayload(error.closeCode, reason),
        true,
      );
    }
    this.#host.onClosed(error.closeCode, error.message, error);
  }

  /**
   * Marks the connection closed without a closing handshake (the TCP connection ended or was
   * terminated). Nothing more is sent or decoded.
   */
  lost(): void {
    if (this.#readyState !== CLOSED) {
      this.#frames.stop();
      this.#readyState = CLOSED;
      this.#resetMessage();
    }
    if (this.#slots !== undefined) this.#slots.length = 0;
    this.#closedAfterSlots = undefined;
  }

  /** Frees what the connection held (compression state). Call once the socket is gone. */
  dispose(): void {
    this.lost();
    this.#deflate?.close();
  }

  // FrameSink: called by the parser.

  /** @internal */
  onFrame(opcode: number, fin: boolean, rsv1: boolean, payload: Uint8Array): void {
    if (opcode >= Opcode.Close) {
      this.#onControl(opcode, payload);
      return;
    }
    if (!this.#startDataFrame(opcode, fin, rsv1, payload.length)) return;
    if (this.#messageOpcode === 0) {
      // A message in one frame in one chunk skips the assembler.
      if (opcode === Opcode.Binary) {
        this.#deliver(payload, true);
        return;
      }
      const text = decodeUtf8(payload);
      if (text === undefined) {
        this.fail(new WebSocketError("WS_ERR_INVALID_UTF8", "Invalid UTF-8 in a text message"));
        return;
      }
      this.#deliver(text, false);
      return;
    }
    this.#appendData(payload, fin);
  }

  /** @internal */
  onFrameStart(opcode: number, fin: boolean, rsv1: boolean, length: number): void {
    this.#frameOpcode = opcode;
    if (opcode >= Opcode.Close) {
      // At most 125 bytes (checked by the parser), split across chunks: gather them.
      this.#control = new Uint8Array(length);
      this.#controlLength = 0;
      return;
    }
    this.#frameSplit = true;
    const ok = this.#startDataFrame(opcode, fin, rsv1, length);
    this.#frameSplit = false;
    if (ok) this.#frameFin = fin;
  }

  /** @internal */
  onFrameData(piece: Uint8Array, last: boolean): void {
    if (this.#frameOpcode >= Opcode.Close) {
      const control = this.#control!;
      control.set(piece, this.#controlLength);
      this.#controlLength += piece.length;
      if (last) {
        this.#control = undefined;
        this.#onControl(this.#frameOpcode, control);
      }
      return;
    }
    this.#appendData(piece, last && this.#frameFin);
  }

  /** @internal */
  onFrameError(error: WebSocketError): void {
    this.fail(error);
  }

  /** Applies the message-level rules to a data frame's header; opens a message if it starts one. */
  #startDataFrame(opcode: number, fin: boolean, rsv1: boolean, length: number): boolean {
    if (opcode === Opcode.Continuation) {
      if (++this.#fragments > this.#maxFragments) {
        this.fail(
          new WebSocketError(
            "WS_ERR_TOO_MANY_FRAGMENTS",
            `Message in too many fragments: more than ${this.#maxFragments}`,
          ),
        );
        return false;
      }
      if (this.#messageOpcode === 0) {
        this.fail(
          new WebSocketError(
            "WS_ERR_UNEXPECTED_CONTINUATION",
            "Invalid frame: a continuation frame with no message to continue",
          ),
        );
        return false;
      }
    } else if (this.#messageOpcode !== 0) {
      this.fail(
        new WebSocketError(
          "WS_ERR_EXPECTED_CONTINUATION",
          "Invalid frame: a new message began before the fragmented one ended",
        ),
      );
      return false;
    }
    const total = this.#messageLength + length;
    // A compressed message is held to the limit when it inflates; its compressed size gets a
    // little room, since incompressible data grows by a few bytes per block.
    const compressed = opcode === Opcode.Continuation ? this.#compressed : rsv1;
    const limit = compressed
      ? this.#maxPayloadLength + (this.#maxPayloadLength >>> 10) + 64
      : this.#maxPayloadLength;
    if (total > limit) {
      this.fail(
        new WebSocketError(
          "WS_ERR_MESSAGE_TOO_BIG",
          `Message too big: more than ${this.#maxPayloadLength} bytes`,
        ),
      );
      return false;
    }
    if (opcode === Opcode.Continuation) {
      this.#messageLength = total;
    } else if (!fin || this.#frameSplit || rsv1) {
      // A message in more than one frame, in one frame split across chunks, or compressed goes
      // through the assembler; a whole, uncompressed one-frame message does not open one.
      this.#messageOpcode = opcode;
      this.#messageLength = total;
      this.#compressed = rsv1;
    }
    return true;
  }

  /** Hands a whole message to the host: in one piece, or as the one fragment of a stream. */
  #deliver(data: string | Uint8Array, isBinary: boolean): void {
    if (this.#streaming) this.#host.onFragment!(data, isBinary, true);
    else this.#host.onMessage(data, isBinary);
  }

  /** Adds payload to the open message; delivers it when `end`. */
  #appendData(piece: Uint8Array, end: boolean): void {
    if (this.#compressed) {
      if (piece.length !== 0) (this.#pieces ??= []).push(piece);
      if (end) this.#inflate();
      return;
    }
    if (this.#messageOpcode === Opcode.Text) {
      // Decoded as it arrives, so invalid UTF-8 fails the connection on the piece that
      // carries it (RFC 6455 §8.1), not at the end of a long message.
      const utf8 = this.#utf8 ??= new Utf8StreamDecoder();
      const text = end ? utf8.end(piece) : utf8.push(piece);
      if (text === undefined) {
        this.fail(new WebSocketError("WS_ERR_INVALID_UTF8", "Invalid UTF-8 in a text message"));
        return;
      }
      if (this.#streaming) {
        if (end) this.#resetMessage();
        this.#host.onFragment!(text, false, end);
        return;
      }
      if (!end) {
        this.#text += text;
        return;
      }
      const message = this.#text + text;
      this.#resetMessage();
      this.#deliver(message, false);
      return;
    }
    if (this.#streaming) {
      if (end) this.#resetMessage();
      this.#host.onFragment!(piece, true, end);
      return;
    }
    if (piece.length !== 0) (this.#pieces ??= []).push(piece);
    if (!end) return;
    const message = concatBytes(this.#pieces ?? [], this.#messageLength);
    this.#resetMessage();
    this.#deliver(message, true);
  }

  #resetMessage(): void {
    // The UTF-8 decoder needs no reset: end() leaves it clean, a failed push() resets it, and
    // a message abandoned half-way (a Close frame, a failure) ends the connection.
    this.#compressed = false;
    this.#fragments = 1;
    this.#messageOpcode = 0;
    this.#messageLength = 0;
    if (this.#pieces !== undefined) this.#pieces.length = 0;
    this.#text = "";
  }

  /** Inflates the compressed message just completed; decoding waits until it is done. */
  #inflate(): void {
    const data = concatBytes(this.#pieces ?? [], this.#messageLength);
    this.compression.compressedIn += data.length;
    this.#inflating = this.#messageOpcode;
    this.#resetMessage();
    this.#frames.pause();
    this.#deflate!.decompressor.decompress(
      data,
      this.#maxPayloadLength,
      (result) => this.#inflated(result),
    );
  }

  #inflated(result: Uint8Array | WebSocketError): void {
    const opcode = this.#inflating;
    this.#inflating = 0;
    if (this.#readyState === CLOSED) return;
    if (result instanceof WebSocketError) {
      this.fail(result);
      return;
    }
    this.compression.rawIn += result.length;
    if (opcode === Opcode.Text) {
      const text = decodeUtf8(result);
      if (text === undefined) {
        this.fail(new WebSocketError("WS_ERR_INVALID_UTF8", "Invalid UTF-8 in a text message"));
        return;
      }
      this.#deliver(text, false);
    } else {
      this.#deliver(result, true);
    }
    if (this.#readyState !== CLOSED && !this.#held) {
      this.#frames.resume();
      this.#host.onResumed?.();
    }
  }

  /** Writes a frame now, or queues it behind messages still being compressed. */
  #emit(opcode: number, payload: Uint8Array, rsv1: boolean, owned: boolean): void {
    if (this.#slots === undefined || this.#slots.length === 0) {
      this.#host.writeFrame(opcode, true, rsv1, payload, owned);
      return;
    }
    this.#slots.push({ opcode, payload: owned ? payload : payload.slice(), rsv1, fin: true });
  }

  #deflated(result: Uint8Array | WebSocketError): void {
    // Engines answer in order: this is the first slot still waiting (none if the connection
    // failed meanwhile and dropped its slots).
    const slot = this.#slots?.find((each) => each.payload === undefined);
    if (slot === undefined) return;
    if (result instanceof WebSocketError) {
      this.fail(result);
      return;
    }
    this.compression.compressedOut += result.length;
    slot.payload = result;
    const slots = this.#slots!;
    while (slots.length !== 0 && slots[0].payload !== undefined) {
      const { opcode, payload, rsv1, fin } = slots.shift()!;
      this.#host.writeFrame(opcode, fin, rsv1, payload!, true);
    }
    const closed = this.#closedAfterSlots;
    if (slots.length === 0 && closed !== undefined) {
      this.#closedAfterSlots = undefined;
      this.#host.onClosed(closed.code, closed.reason);
    }
  }

  #onControl(opcode: number, payload: Uint8Array): void {
    if (opcode === Opcode.Ping) {
      // RFC 6455 §5.5.2: answer with a pong carrying the same payload, unless we already
      // sent our Close frame (§5.5.1: nothing follows it).
      if (!this.#closeSent) this.#host.writeFrame(Opcode.Pong, true, false, payload, false);
      this.#host.onPing(payload);
      return;
    }
    if (opcode === Opcode.Pong) {
      this.#host.onPong(payload);
      return;
    }
    const close = parseClosePayload(payload);
    if (close instanceof WebSocketError) {
      this.fail(close);
      return;
    }
    this.#frames.stop();
    this.#resetMessage();
    this.#readyState = CLOSED;
    if (!this.#closeSent) {
      // RFC 6455 §5.5.1: echo the status code received (after the messages already accepted).
      this.#closeSent = true;
      this.#emit(Opcode.Close, close.code === 1005 ? EMPTY : payload.subarray(0, 2), false, false);
    }
    if (this.#slots !== undefined && this.#slots.length !== 0) {
      // Messages are still being compressed: the TCP connection closes after they are out.
      this.#closedAfterSlots = close;
      return;
    }
    this.#host.onClosed(close.code, close.reason);
  }

  #assertOpen(what: string): void {
    if (this.#readyState !== OPEN) {
      throw new TypeError(
        `Cannot ${what}: the connection is ${this.#readyState === CLOSING ? "closing" : "closed"}`,
      );
    }
  }
}

/** A frame waiting for its turn: `payload` is undefined while it is being compressed. */
interface Slot {
  opcode: number;
  payload: Uint8Array | undefined;
  rsv1: boolean;
  fin: boolean;
}

function truncateReason(message: string): string {
  // Our messages are ASCII, so a cut by length is a cut by bytes.
  return message.length <= MAX_CLOSE_REASON_BYTES
    ? message
    : message.slice(0, MAX_CLOSE_REASON_BYTES);
}
