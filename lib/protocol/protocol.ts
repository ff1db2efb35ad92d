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
import { FrameParser, type FrameSink } from "./frame_parser.ts";
import { Opcode } from "./opcode.ts";
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
  /** A ping arrived; the pong is already queued. */
  onPing(payload: Uint8Array): void;
  /** A pong arrived. */
  onPong(payload: Uint8Array): void;
  /**
   * The closing handshake is complete (both Close frames are out), or the connection failed
   * (`error` is set, our Close frame with its code is out). The host should flush what is
   * queued and close the TCP connection: RFC 6455 §7.1.1 has the server close it first.
   */
  onClosed(code: number, reason: string, error?: WebSocketError): void;
  /**
   * Sends one frame.
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

/** How a {@linkcode Protocol} treats its peer. */
export interface ProtocolOptions {
  /** The largest message accepted, in bytes; a larger one fails with 1009.
   * @default {16777216} (16 MiB, as Bun's server) */
  maxPayloadLength?: number;
}

/** The default {@linkcode ProtocolOptions.maxPayloadLength}: 16 MiB. */
export const DEFAULT_MAX_PAYLOAD_LENGTH = 16 * 1024 * 1024;

// Strings up to this many UTF-16 units are encoded into a shared scratch buffer (no allocation);
// each unit takes at most 3 bytes of UTF-8.
const SCRATCH_TEXT_UNITS = 16 * 1024;
const scratch = new Uint8Array(SCRATCH_TEXT_UNITS * 3);
const encoder = new TextEncoder();
const EMPTY = new Uint8Array(0);

/**
 * The protocol state of one server-side connection.
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
  #parser: FrameParser;
  #maxPayloadLength: number;
  #readyState = OPEN;
  #closeSent = false;
  // The message being assembled: opcode 0 when none is open.
  #messageOpcode = 0;
  #messageLength = 0;
  #pieces: Uint8Array[] = [];
  #text = "";
  #utf8: Utf8StreamDecoder | undefined;
  // The frame whose payload spans chunks.
  #frameOpcode = 0;
  #frameFin = false;
  #frameSplit = false;
  #control: Uint8Array | undefined;
  #controlLength = 0;

  /**
   * Makes the state of a connection whose opening handshake just completed.
   *
   * @param host Receives events and frames.
   * @param options Limits.
   */
  constructor(host: ProtocolHost, options: ProtocolOptions = {}) {
    this.#host = host;
    this.#maxPayloadLength = options.maxPayloadLength ?? DEFAULT_MAX_PAYLOAD_LENGTH;
    this.#parser = new FrameParser(this, { requireMask: true });
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
    this.#parser.push(chunk);
  }

  /** Stops decoding after the current event until {@linkcode Protocol.resume}. */
  pause(): void {
    this.#parser.pause();
  }

  /** Decodes what was held back by {@linkcode Protocol.pause}. */
  resume(): void {
    this.#parser.resume();
  }

  /**
   * Sends a message.
   *
   * @param data A string is sent as text; a Uint8Array as binary.
   * @param owned For a Uint8Array: whether the host may keep it by reference.
   * @returns The payload's size in bytes.
   * @throws {TypeError} When the connection is closing or closed.
   */
  send(data: string | Uint8Array, owned = false): number {
    this.#assertOpen("send");
    if (typeof data === "string") {
      if (data.length <= SCRATCH_TEXT_UNITS) {
        const { written } = encoder.encodeInto(data, scratch);
        this.#host.writeFrame(Opcode.Text, true, false, scratch.subarray(0, written), false);
        return written;
      }
      const bytes = encoder.encode(data);
      this.#host.writeFrame(Opcode.Text, true, false, bytes, true);
      return bytes.length;
    }
    this.#host.writeFrame(Opcode.Binary, true, false, data, owned);
    return data.length;
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
    this.#assertOpen(what);
    if (payload.length > 125) {
      throw new RangeError(
        `Cannot ${what}: the payload is ${payload.length} bytes, more than 125`,
      );
    }
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
    this.#host.writeFrame(Opcode.Close, true, false, payload, true);
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
    this.#parser.stop();
    this.#readyState = CLOSED;
    this.#resetMessage();
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
    if (this.#readyState === CLOSED) return;
    this.#parser.stop();
    this.#readyState = CLOSED;
    this.#resetMessage();
  }

  // FrameSink: called by the parser.

  /** @internal */
  onFrame(opcode: number, fin: boolean, _rsv1: boolean, payload: Uint8Array): void {
    if (opcode >= Opcode.Close) {
      this.#onControl(opcode, payload);
      return;
    }
    if (!this.#startDataFrame(opcode, fin, payload.length)) return;
    if (this.#messageOpcode === 0) {
      // A message in one frame in one chunk skips the assembler.
      if (opcode === Opcode.Binary) {
        this.#host.onMessage(payload, true);
        return;
      }
      const text = decodeUtf8(payload);
      if (text === undefined) {
        this.fail(new WebSocketError("WS_ERR_INVALID_UTF8", "Invalid UTF-8 in a text message"));
        return;
      }
      this.#host.onMessage(text, false);
      return;
    }
    this.#appendData(payload, fin);
  }

  /** @internal */
  onFrameStart(opcode: number, fin: boolean, _rsv1: boolean, length: number): void {
    this.#frameOpcode = opcode;
    if (opcode >= Opcode.Close) {
      // At most 125 bytes (checked by the parser), split across chunks: gather them.
      this.#control = new Uint8Array(length);
      this.#controlLength = 0;
      return;
    }
    this.#frameSplit = true;
    const ok = this.#startDataFrame(opcode, fin, length);
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
  #startDataFrame(opcode: number, fin: boolean, length: number): boolean {
    if (opcode === Opcode.Continuation) {
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
    if (total > this.#maxPayloadLength) {
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
    } else if (!fin || this.#frameSplit) {
      // A message in more than one frame, or in one frame split across chunks, goes through
      // the assembler; a whole one-frame message does not open one.
      this.#messageOpcode = opcode;
      this.#messageLength = total;
    }
    return true;
  }

  /** Adds payload to the open message; delivers it when `end`. */
  #appendData(piece: Uint8Array, end: boolean): void {
    if (this.#messageOpcode === Opcode.Text) {
      // Decoded as it arrives, so invalid UTF-8 fails the connection on the piece that
      // carries it (RFC 6455 §8.1), not at the end of a long message.
      const utf8 = this.#utf8 ??= new Utf8StreamDecoder();
      const text = end ? utf8.end(piece) : utf8.push(piece);
      if (text === undefined) {
        this.fail(new WebSocketError("WS_ERR_INVALID_UTF8", "Invalid UTF-8 in a text message"));
        return;
      }
      if (!end) {
        this.#text += text;
        return;
      }
      const message = this.#text + text;
      this.#resetMessage();
      this.#host.onMessage(message, false);
      return;
    }
    if (piece.length !== 0) this.#pieces.push(piece);
    if (!end) return;
    const message = concat(this.#pieces, this.#messageLength);
    this.#resetMessage();
    this.#host.onMessage(message, true);
  }

  #resetMessage(): void {
    if (this.#messageOpcode === Opcode.Text) this.#utf8?.reset();
    this.#messageOpcode = 0;
    this.#messageLength = 0;
    this.#pieces.length = 0;
    this.#text = "";
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
    this.#parser.stop();
    this.#resetMessage();
    this.#readyState = CLOSED;
    if (!this.#closeSent) {
      // RFC 6455 §5.5.1: echo the status code received.
      this.#closeSent = true;
      this.#host.writeFrame(
        Opcode.Close,
        true,
        false,
        close.code === 1005 ? EMPTY : payload.subarray(0, 2),
        false,
      );
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

function concat(pieces: Uint8Array[], length: number): Uint8Array {
  if (pieces.length === 1) return pieces[0];
  const message = new Uint8Array(length);
  let offset = 0;
  for (const piece of pieces) {
    message.set(piece, offset);
    offset += piece.length;
  }
  return message;
}

function truncateReason(message: string): string {
  // Our messages are ASCII, so a cut by length is a cut by bytes.
  return message.length <= MAX_CLOSE_REASON_BYTES
    ? message
    : message.slice(0, MAX_CLOSE_REASON_BYTES);
}
