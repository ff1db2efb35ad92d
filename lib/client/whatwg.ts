/**
 * The browser's `WebSocket` (the WHATWG WebSockets Standard, https://websockets.spec.whatwg.org/)
 * on sluice's client: code written for a browser runs unchanged on Deno and Bun over sluice's
 * connection, and a third constructor argument takes what browsers leave out (headers, TLS,
 * limits, compression).
 *
 * @module
 */
import { describe } from "../core/_describe.ts";
import { SendStatus } from "../core/websocket.ts";
import { HandshakeError, WebSocketError } from "../protocol/errors.ts";
import { tchar } from "../protocol/_http_token.ts";
import type { Connect } from "../core/transport.ts";
import type { ClientWebSocket } from "./client_websocket.ts";
import { type ConnectOptions, startConnect } from "./connect.ts";

/**
 * What the facade's third constructor argument takes: `connect`'s options without the
 * subprotocols (the second argument) and the handlers (events instead).
 * `maxBackpressure` defaults to no limit here, as browsers queue whatever is sent; with a limit,
 * a send past it closes the connection as the standard's "full" buffer does.
 *
 * @example
 * ```ts
 * import { serve, WebSocket } from "@sluice/ws";
 * const server = serve({ port: 0 });
 * const ws = new WebSocket(`ws://127.0.0.1:${server.port}`, [], {
 *   headers: { Authorization: "Bearer abc" },
 *   perMessageDeflate: true,
 * });
 * ws.onopen = () => ws.close();
 * await new Promise((resolve) => ws.addEventListener("close", resolve));
 * await server.shutdown();
 * ```
 */
export type WebSocketOptions = Omit<
  ConnectOptions,
  "protocols" | "open" | "message" | "fragment" | "drain" | "ping" | "pong" | "close" | "error"
>;

/**
 * What `binaryType` may be: how binary messages are handed to `message` listeners.
 *
 * @example
 * ```ts
 * import { type BinaryType, serve, WebSocket } from "@sluice/ws";
 * const server = serve({ port: 0, open: (ws) => void ws.send(new Uint8Array([1, 2])) });
 * const ws = new WebSocket(`ws://127.0.0.1:${server.port}/`);
 * const binaryType: BinaryType = "arraybuffer"; // instead of the default "blob"
 * ws.binaryType = binaryType;
 * const event = await new Promise<MessageEvent>((resolve) => (ws.onmessage = resolve));
 * console.log(event.data); // ArrayBuffer { [Uint8Contents]: <01 02>, byteLength: 2 }
 * ws.close();
 * await new Promise((resolve) => (ws.onclose = resolve));
 * await server.shutdown();
 * ```
 */
export type BinaryType = "blob" | "arraybuffer";

/**
 * What `send` takes (the standard's `BufferSource or Blob or USVString`).
 *
 * @example
 * ```ts
 * import type { WebSocketData } from "@sluice/ws";
 * const messages: WebSocketData[] = ["text", new Uint8Array([1]), new ArrayBuffer(2), new Blob(["b"])];
 * console.log(messages.length); // 4: a string goes as text, the others as binary
 * ```
 */
export type WebSocketData = string | ArrayBuffer | ArrayBufferView | Blob;

/** How the facade opens connections: the runtime's connect, set by mod.ts. */
let dialer: (() => Connect) | undefined;

/**
 * Sets how {@linkcode WebSocket} opens connections (mod.ts gives the runtime adapter's, so that
 * lib/client/ never imports lib/runtime/).
 *
 * @param dial Returns the runtime's connect.
 */
export function useDialer(dial: () => Connect): void {
  dialer = dial;
}

const CONNECTING = 0;
const OPEN = 1;
const CLOSING = 2;
const CLOSED = 3;

/** Sends of this size or more are kept by reference by `ClientWebSocket.send`: copy them. */
const BY_REFERENCE = 16 * 1024;

/** An event handler attribute (`onopen`, …) and the listener that calls it. */
interface HandlerSlot {
  handler: (this: WebSocket, event: Event) => unknown;
  listener: EventListener;
}

/**
 * A WebSocket client with the browser's API (the WHATWG WebSockets Standard) on sluice's
 * `connect`: `readyState` from CONNECTING to CLOSED, the `open`, `message`, `error` and `close`
 * events (and their `on…` attributes), `binaryType`, `bufferedAmount`, `send` and `close` with
 * the standard's checks and exceptions. An `error` event (an `ErrorEvent` whose `error` tells
 * why) comes before every close that is not clean: a refused or failed handshake, a protocol
 * error, a dropped connection; the close event then has code 1006 and `wasClean` false.
 *
 * @example
 * ```ts
 * import { serve, WebSocket } from "@sluice/ws";
 * const server = serve({ port: 0, message: (ws, data) => void ws.send(data) });
 * const ws = new WebSocket(`ws://127.0.0.1:${server.port}/`);
 * ws.onopen = () => ws.send("hello");
 * ws.onmessage = (event) => {
 *   console.log(event.data); // hello
 *   ws.close(1000, "done");
 * };
 * const closed = await new Promise<CloseEvent>((resolve) => (ws.onclose = resolve));
 * console.log(closed.code, closed.wasClean); // 1000 true
 * await server.shutdown();
 * ```
 */
export class WebSocket extends EventTarget {
  /** The connection has not yet been established. */
  declare static readonly CONNECTING: 0;
  /** The connection is established and communication is possible. */
  declare static readonly OPEN: 1;
  /** The connection is going through the closing handshake, or close() was called. */
  declare static readonly CLOSING: 2;
  /** The connection has been closed or could not be opened. */
  declare static readonly CLOSED: 3;
  /** The connection has not yet been established. */
  declare readonly CONNECTING: 0;
  /** The connection is established and communication is possible. */
  declare readonly OPEN: 1;
  /** The connection is going through the closing handshake, or close() was called. */
  declare readonly CLOSING: 2;
  /** The connection has been closed or could not be opened. */
  declare readonly CLOSED: 3;

  #url: string;
  #origin: string;
  /** The subprotocols offered. */
  #offered: string[];
  #state: number = CONNECTING;
  #ws: ClientWebSocket | undefined;
  #abort = new AbortController();
  #binaryType: BinaryType = "blob";
  #protocol = "";
  #extensions = "";
  /** Why the connection failed (then the close is not clean and `error` fires first). */
  #failure: unknown;
  #handlers = new Map<string, HandlerSlot>();
  // bufferedAmount, as the standard counts it: bytes of application data.
  /** Handed to the connection and not yet known to be written. */
  #queued = 0;
  /** Handed over since the last flushed() was asked for. */
  #batch = 0;
  #watching = false;
  /** Waiting in #pending. */
  #waiting = 0;
  /** Sent while closing or closed (the standard counts them, and discards them). */
  #discarded = 0;
  /** Sends behind a Blob being read, so messages keep their order. */
  #pending: Array<string | Uint8Array | Blob> = [];
  #pumping = false;
  /** A close() that waits for #pending to go out first. */
  #closeAfterPending: { code?: number; reason?: string } | undefined;

  /**
   * Opens a connection; the `open` event (or `error` and `close`) tells how it went.
   *
   * @param url `ws:` or `wss:` (`http:` and `https:` are taken as those), absolute, without a
   * fragment.
   * @param protocols Subprotocols to offer (Sec-WebSocket-Protocol): one or a list of distinct
   * tokens. @default {[]}
   * @param options sluice's connect options that browsers do not have (`headers`, `ca`,
   * `perMessageDeflate`, limits, timeouts). @default {{}}
   * @throws {DOMException} `SyntaxError` when the URL or a subprotocol is not acceptable.
   * @throws {TypeError} For an option of the wrong kind (as `connect` rejects with).
   * @throws {RangeError} For an option out of its range.
   */
  constructor(url: string | URL, protocols?: string | string[], options: WebSocketOptions = {}) {
    super();
    if (arguments.length === 0) {
      throw new TypeError("Cannot construct a WebSocket: the URL is missing");
    }
    let record: URL;
    try {
      record = new URL(String(url));
    } catch {
      throw new DOMException(
        `Cannot construct a WebSocket: ${describe(String(url))} is not an absolute URL`,
        "SyntaxError",
      );
    }
    if (record.protocol === "http:") record.protocol = "ws:";
    else if (record.protocol === "https:") record.protocol = "wss:";
    if (record.protocol !== "ws:" && record.protocol !== "wss:") {
      throw new DOMException(
        `Cannot construct a WebSocket: the URL's scheme must be ws: or wss:, got ${record.protocol}`,
        "SyntaxError",
      );
    }
    // A serialized URL holds "#" only where its fragment starts (an empty one included).
    if (record.href.includes("#")) {
      throw new DOMException(
        "Cannot construct a WebSocket: the URL must not have a fragment",
        "SyntaxError",
      );
    }
    const offered = this.#offered = subprotocols(protocols);
    if (typeof options !== "object" || options === null) {
      throw new TypeError(
        `Cannot construct a WebSocket: the options must be an object, got ${describe(options)}`,
      );
    }
    this.#url = record.href;
    this.#origin = record.origin;
    const signal = options.signal === undefined
      ? this.#abort.signal
      : AbortSignal.any([options.signal, this.#abort.signal]);
    if (dialer === undefined) {
      throw new TypeError("Cannot construct a WebSocket: import it from mod.ts (no dialer is set)");
    }
    // Options it cannot use throw from here, as a bad URL does.
    startConnect(dialer(), this.#url, {
      maxBackpressure: Number.MAX_SAFE_INTEGER,
      ...options,
      signal,
      protocols: offered,
      open: (ws) => this.#opened(ws),
      message: (_ws, data) => this.#received(data),
      close: (_ws, code, reason) => this.#closed(code, reason),
      error: (error) => this.#errored(error),
    }).then(undefined, (error) => {
      this.#failure = error;
      this.#closed(1006, "");
    });
  }

  /** The URL connected to, as parsed (`http:` turned into `ws:`, `https:` into `wss:`). */
  get url(): string {
    return this.#url;
  }

  /** CONNECTING (0), OPEN (1), CLOSING (2) or CLOSED (3). */
  get readyState(): number {
    // The connection may start closing on its own (an idle timeout, the backpressure policy).
    if (this.#state === OPEN && this.#ws!.readyState !== OPEN) return CLOSING;
    return this.#state;
  }

  /**
   * Bytes of application data (text as UTF-8) passed to `send` and not yet handed to the
   * operating system; after the connection has closed it only grows, by each `send`.
   */
  get bufferedAmount(): number {
    return this.#queued + this.#waiting + this.#discarded;
  }

  /** The extensions the server accepted (Sec-WebSocket-Extensions), `""` until open. */
  get extensions(): string {
    return this.#extensions;
  }

  /** The subprotocol the server chose, `""` until open or if none. */
  get protocol(): string {
    return this.#protocol;
  }

  /** How binary messages arrive: `"blob"` (the default) or `"arraybuffer"`. Other values are
   * ignored. */
  get binaryType(): BinaryType {
    return this.#binaryType;
  }

  set binaryType(value: BinaryType) {
    if (value === "blob" || value === "arraybuffer") this.#binaryType = value;
  }

  /** Called with the `open` event (an event handler attribute: `null` removes it). */
  get onopen(): ((this: WebSocket, event: Event) => unknown) | null {
    return this.#handler("open");
  }

  set onopen(handler: ((this: WebSocket, event: Event) => unknown) | null) {
    this.#setHandler("open", handler);
  }

  /** Called with each `message` event. */
  get onmessage(): ((this: WebSocket, event: MessageEvent) => unknown) | null {
    return this.#handler("message");
  }

  set onmessage(handler: ((this: WebSocket, event: MessageEvent) => unknown) | null) {
    this.#setHandler("message", handler as HandlerSlot["handler"] | null);
  }

  /** Called with the `error` event. */
  get onerror(): ((this: WebSocket, event: Event) => unknown) | null {
    return this.#handler("error");
  }

  set onerror(handler: ((this: WebSocket, event: Event) => unknown) | null) {
    this.#setHandler("error", handler);
  }

  /** Called with the `close` event. */
  get onclose(): ((this: WebSocket, event: CloseEvent) => unknown) | null {
    return this.#handler("close");
  }

  set onclose(handler: ((this: WebSocket, event: CloseEvent) => unknown) | null) {
    this.#setHandler("close", handler as HandlerSlot["handler"] | null);
  }

  /**
   * Sends a message: a string as text, bytes (an ArrayBuffer, a typed array, a DataView or a
   * Blob) as binary. The bytes are taken as they are now; `bufferedAmount` grows by the
   * message's size. Once the connection is closing or closed, the message is discarded (and
   * still counted in `bufferedAmount`, as the standard says).
   *
   * @param data The message; anything else is sent as `String(data)`.
   * @throws {DOMException} `InvalidStateError` while the connection is still CONNECTING.
   *
   * @example
   * ```ts
   * import { serve, WebSocket } from "@sluice/ws";
   * const server = serve({ port: 0 });
   * const ws = new WebSocket(`ws://127.0.0.1:${server.port}`);
   * ws.onopen = () => {
   *   ws.send("text");
   *   ws.send(new Uint8Array([1, 2, 3]));
   *   console.log(ws.bufferedAmount); // 7
   *   ws.close();
   * };
   * await new Promise((resolve) => (ws.onclose = resolve));
   * await server.shutdown();
   * ```
   */
  send(data: WebSocketData): void {
    if (arguments.length === 0) throw new TypeError("Cannot send: the message is missing");
    if (this.#state === CONNECTING) {
      throw new DOMException("Cannot send: the connection is not open yet", "InvalidStateError");
    }
    const message = toMessage(data);
    const size = sizeOf(message);
    if (this.readyState !== OPEN) {
      this.#discarded += size;
      return;
    }
    if (message instanceof Blob || this.#pending.length !== 0) {
      // Behind a Blob (read asynchronously) a message waits its turn, as a copy.
      this.#pending.push(
        typeof message === "string" || message instanceof Blob ? message : message.slice(),
      );
      this.#waiting += size;
      if (!this.#pumping) void this.#pump();
      return;
    }
    this.#hand(
      typeof message === "string" || message.length < BY_REFERENCE ? message : message.slice(),
      size,
    );
  }

  /**
   * Starts the closing handshake (or, while CONNECTING, gives up on the connection: then
   * `error` and `close` with 1006 follow). Does nothing once closing. Messages sent before go
   * out first.
   *
   * @param code 1000 or 3000–4999; none sends a Close frame without a code (or 1000 if there
   * is a reason).
   * @param reason At most 123 bytes of UTF-8.
   * @throws {DOMException} `InvalidAccessError` for another code; `SyntaxError` for a longer
   * reason.
   *
   * @example
   * ```ts
   * import { serve, WebSocket } from "@sluice/ws";
   * const server = serve({ port: 0 });
   * const ws = new WebSocket(`ws://127.0.0.1:${server.port}`);
   * ws.onopen = () => ws.close(4000, "done");
   * const event = await new Promise<CloseEvent>((resolve) => (ws.onclose = resolve));
   * console.log(event.code, event.wasClean); // 4000 true (the code the server echoed)
   * await server.shutdown();
   * ```
   */
  close(code?: number, reason?: string): void {
    if (code !== undefined) {
      code = clampUnsignedShort(code);
      if (code !== 1000 && (code < 3000 || code > 4999)) {
        throw new DOMException(
          `Cannot close: the code must be 1000 or from 3000 to 4999, got ${code}`,
          "InvalidAccessError",
        );
      }
    }
    if (reason !== undefined) {
      reason = String(reason);
      const bytes = utf8Length(reason);
      if (bytes > 123) {
        throw new DOMException(
          `Cannot close: the reason must be at most 123 bytes of UTF-8, got ${bytes}`,
          "SyntaxError",
        );
      }
    }
    const state = this.readyState;
    if (state === CLOSING || state === CLOSED) return;
    this.#state = CLOSING;
    if (state === CONNECTING) {
      // Fail the connection: the connect is aborted and rejects; error and close follow.
      this.#abort.abort(
        new DOMException("The WebSocket was closed before it opened", "AbortError"),
      );
      return;
    }
    // A reason goes after a code in the Close frame (RFC 6455 §5.5.1): 1000 stands in.
    if (code === undefined && reason !== undefined && reason !== "") code = 1000;
    if (this.#pending.length !== 0) {
      this.#closeAfterPending = { code, reason };
      return;
    }
    this.#ws!.close(code, reason);
  }

  // The connection's handlers.

  #opened(ws: ClientWebSocket): void {
    if (this.#state !== CONNECTING) {
      ws.terminate();
      return;
    }
    // The standard fails a connection whose server chose none of the subprotocols offered
    // (RFC 6455 lets a client go on; a browser's does not, so code written for one expects it).
    if (this.#offered.length !== 0 && ws.protocol === "") {
      this.#failure = new HandshakeError(
        "WS_ERR_HANDSHAKE_SUBPROTOCOL",
        `Handshake failed: the server chose none of the subprotocols offered (${
          this.#offered.join(", ")
        })`,
      );
      ws.terminate();
      return;
    }
    this.#ws = ws;
    this.#state = OPEN;
    this.#protocol = ws.protocol;
    this.#extensions = ws.extensions;
    this.dispatchEvent(new Event("open"));
  }

  #received(data: string | Uint8Array): void {
    // Once closing, messages are no longer delivered (the standard's "message received").
    if (this.readyState !== OPEN) return;
    const payload = typeof data === "string"
      ? data
      : this.#binaryType === "blob"
      ? new Blob([data as Uint8Array<ArrayBuffer>])
      : toArrayBuffer(data);
    this.dispatchEvent(new MessageEvent("message", { data: payload, origin: this.#origin }));
  }

  #errored(error: unknown): void {
    // A dropped message is reported once per connection, and is not a failure; a send past
    // maxBackpressure is handled where it happens.
    if (error instanceof WebSocketError && error.code === "WS_ERR_BACKPRESSURE_DROP") return;
    this.#failure ??= error;
  }

  #closed(code: number, reason: string): void {
    if (this.#state === CLOSED) return;
    this.#state = CLOSED;
    // Clean: both Close frames went through, so everything sent before ours reached the peer.
    const clean = this.#failure === undefined && code !== 1006;
    if (clean) this.#queued = 0;
    if (!clean) {
      const error = this.#failure;
      this.dispatchEvent(
        new ErrorEvent("error", {
          error,
          message: error instanceof Error ? error.message : "The connection closed abnormally",
        }),
      );
    }
    this.dispatchEvent(
      new CloseEvent("close", {
        code: clean ? code : 1006,
        reason: clean ? reason : "",
        wasClean: clean,
      }),
    );
  }

  // Sending.

  /** Hands a message to the connection and counts it until the connection has written it. */
  #hand(message: string | Uint8Array, size: number): void {
    const ws = this.#ws!;
    if (ws.send(message) === SendStatus.Dropped) {
      // The standard's "full" buffer: the connection is closed, with an error.
      this.#discarded += size;
      this.#failure ??= new WebSocketError(
        "WS_ERR_BACKPRESSURE_DROP",
        "Cannot send: more than maxBackpressure bytes are queued; the connection is dropped",
      );
      ws.terminate();
      return;
    }
    this.#queued += size;
    this.#batch += size;
    if (!this.#watching) this.#watch();
  }

  /** Counts off the bytes handed over so far once the connection has written them. */
  #watch(): void {
    const batch = this.#batch;
    this.#batch = 0;
    this.#watching = true;
    void this.#ws!.flushed().then(() => {
      // On the next task: bufferedAmount changes between tasks, not within one.
      setTimeout(() => {
        if (this.#state === CLOSED) return;
        this.#queued -= batch;
        if (this.#batch !== 0) this.#watch();
        else this.#watching = false;
      }, 0);
    });
  }

  /** Sends what waits behind a Blob, in order, reading each Blob as its turn comes. */
  async #pump(): Promise<void> {
    this.#pumping = true;
    const pending = this.#pending;
    const ws = this.#ws!;
    while (pending.length !== 0) {
      const head = pending[0];
      let message: string | Uint8Array;
      if (head instanceof Blob) {
        try {
          message = new Uint8Array(await head.arrayBuffer());
        } catch (error) {
          this.#failure ??= error;
          ws.terminate();
          break;
        }
      } else {
        message = head;
      }
      // Closed meanwhile: what waits is discarded (and stays counted).
      if (ws.readyState !== OPEN) break;
      pending.shift();
      const size = sizeOf(head);
      this.#waiting -= size;
      this.#hand(message, size);
    }
    this.#pumping = false;
    const close = this.#closeAfterPending;
    if (close !== undefined && pending.length === 0) {
      this.#closeAfterPending = undefined;
      ws.close(close.code, close.reason);
    }
  }

  // Event handler attributes (HTML's "event handlers": one listener, added when first set).

  #handler<E extends Event>(type: string): ((this: WebSocket, event: E) => unknown) | null {
    return (this.#handlers.get(type)?.handler as (this: WebSocket, event: E) => unknown) ??
      null;
  }

  #setHandler(type: string, handler: HandlerSlot["handler"] | null): void {
    const slot = this.#handlers.get(type);
    if (typeof handler !== "function") {
      if (slot === undefined) return;
      this.#handlers.delete(type);
      this.removeEventListener(type, slot.listener);
      return;
    }
    if (slot !== undefined) {
      slot.handler = handler;
      return;
    }
    const added: HandlerSlot = {
      handler,
      listener: (event) => void added.handler.call(this, event as Event),
    };
    this.#handlers.set(type, added);
    this.addEventListener(type, added.listener);
  }
}

// WebIDL constants: on the interface and on its prototype, read-only.
for (const [name, value] of Object.entries({ CONNECTING, OPEN, CLOSING, CLOSED })) {
  const descriptor = { value, enumerable: true, writable: false, configurable: false };
  Object.defineProperty(WebSocket, name, descriptor);
  Object.defineProperty(WebSocket.prototype, name, descriptor);
}

/** The subprotocols to offer: distinct tokens (RFC 6455 §4.1, Sec-WebSocket-Protocol). */
function subprotocols(protocols: string | Iterable<string> | undefined): string[] {
  const list = protocols === undefined
    ? []
    : typeof protocols === "object" && protocols !== null && Symbol.iterator in protocols
    ? Array.from(protocols, String)
    : [String(protocols)];
  const seen = new Set<string>();
  for (const protocol of list) {
    if (!isToken(protocol)) {
      throw new DOMException(
        `Cannot construct a WebSocket: the subprotocol ${
          describe(protocol)
        } is not a token (RFC 6455 §4.1)`,
        "SyntaxError",
      );
    }
    if (seen.has(protocol)) {
      throw new DOMException(
        `Cannot construct a WebSocket: the subprotocol ${describe(protocol)} is offered twice`,
        "SyntaxError",
      );
    }
    seen.add(protocol);
  }
  return list;
}

function isToken(text: string): boolean {
  if (text.length === 0) return false;
  for (let i = 0; i < text.length; i++) {
    if (tchar(text.charCodeAt(i)) === 0) return false;
  }
  return true;
}

/** `send`'s argument as text, bytes or a Blob (the standard's union). */
function toMessage(data: unknown): string | Uint8Array | Blob {
  if (typeof data === "string") return data;
  if (data instanceof Blob) return data;
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (ArrayBuffer.isView(data)) {
    if (!(data.buffer instanceof ArrayBuffer)) {
      throw new TypeError("Cannot send: a view of a SharedArrayBuffer cannot be sent");
    }
    return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  }
  if (typeof SharedArrayBuffer === "function" && data instanceof SharedArrayBuffer) {
    throw new TypeError("Cannot send: a SharedArrayBuffer cannot be sent");
  }
  return String(data);
}

function sizeOf(message: string | Uint8Array | Blob): number {
  return typeof message === "string"
    ? utf8Length(message)
    : message instanceof Blob
    ? message.size
    : message.byteLength;
}

/** Bytes of `text` in UTF-8, a lone surrogate counted as the U+FFFD it is sent as. */
function utf8Length(text: string): number {
  let bytes = text.length;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) continue;
    if (c < 0x800) {
      bytes += 1;
    } else {
      bytes += 2;
      // A surrogate pair is two code units and four bytes; a lone surrogate goes as U+FFFD.
      if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length) {
        const next = text.charCodeAt(i + 1);
        if (next >= 0xdc00 && next <= 0xdfff) i++;
      }
    }
  }
  return bytes;
}

/** An ArrayBuffer of exactly these bytes (the view's own buffer when it is all of it). */
function toArrayBuffer(bytes: Uint8Array): ArrayBuffer {
  const buffer = bytes.buffer as ArrayBuffer;
  return bytes.byteOffset === 0 && bytes.byteLength === buffer.byteLength
    ? buffer
    : buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
}

/** WebIDL `[Clamp] unsigned short`: clamped to 0–65535, rounded half to even. */
function clampUnsignedShort(value: unknown): number {
  const number = Number(value);
  if (Number.isNaN(number)) return 0;
  const clamped = Math.min(Math.max(number, 0), 65535);
  const floor = Math.floor(clamped);
  const fraction = clamped - floor;
  return fraction > 0.5 || (fraction === 0.5 && floor % 2 === 1) ? floor + 1 : floor;
}
