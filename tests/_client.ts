/**
 * A raw WebSocket test client over `node:net`, so it runs unchanged on Deno and on Bun. It
 * shares no code with the server: it writes any bytes (a well-formed request, a broken one, a
 * frame pipelined behind the request), reads the raw HTTP response, then masks its own frames
 * and parses the server's with its own decoder. With `tls` it speaks TLS (wss://) over
 * `node:tls`, verifying the server's certificate.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { createHash, randomBytes } from "node:crypto";
import net from "node:net";
import tls from "node:tls";
import assert from "node:assert/strict";

/** RFC 6455 §1.3: appended to the key before hashing. */
const GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/** The opcodes of RFC 6455 §5.2. */
export const Op = {
  Continuation: 0x0,
  Text: 0x1,
  Binary: 0x2,
  Close: 0x8,
  Ping: 0x9,
  Pong: 0xa,
} as const;

/** How long a single wait may take before a test fails with a clear message. */
export const WAIT_MS = 5000;

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

/** A raw HTTP response, as the server wrote it. */
export interface HttpResponse {
  /** The status code. */
  status: number;
  /** The status line, without its CRLF. */
  statusLine: string;
  /** Header values by lower-cased name; repeated headers joined with ", ". */
  headers: Map<string, string>;
  /** The body (empty for a 101). */
  body: Uint8Array;
}

/** One frame from the server. */
export interface Frame {
  fin: boolean;
  /** The three RSV bits, as the top nibble's low three bits (0–7). */
  rsv: number;
  opcode: number;
  masked: boolean;
  payload: Uint8Array;
}

/** A new random Sec-WebSocket-Key: 16 random bytes in base64. */
export function newKey(): string {
  return randomBytes(16).toString("base64");
}

/** The Sec-WebSocket-Accept a server must answer `key` with (RFC 6455 §4.2.2). */
export function acceptFor(key: string): string {
  return createHash("sha1").update(key + GUID).digest("base64");
}

/** What {@linkcode upgradeRequest} builds. */
export interface RequestOptions {
  /** @default {newKey()} */
  key?: string;
  /** @default {"/"} */
  path?: string;
  /** Sec-WebSocket-Protocol value, if any. */
  protocols?: string;
  /** Extra header lines (without CRLF). */
  extra?: string[];
}

/** A valid upgrade request head. */
export function upgradeRequest(options: RequestOptions = {}): string {
  const lines = [
    `GET ${options.path ?? "/"} HTTP/1.1`,
    "Host: 127.0.0.1",
    "Upgrade: websocket",
    "Connection: Upgrade",
    `Sec-WebSocket-Key: ${options.key ?? newKey()}`,
    "Sec-WebSocket-Version: 13",
  ];
  if (options.protocols !== undefined) lines.push(`Sec-WebSocket-Protocol: ${options.protocols}`);
  if (options.extra !== undefined) lines.push(...options.extra);
  return lines.join("\r\n") + "\r\n\r\n";
}

/** What {@linkcode encodeFrame} builds. */
export interface FrameOptions {
  /** @default {true} */
  fin?: boolean;
  /** A 4-byte masking key; `null` for an unmasked frame. @default {4 random bytes} */
  mask?: Uint8Array | null;
  /** RSV bits (0–7). @default {0} */
  rsv?: number;
}

/** Builds a frame as a client sends it: masked unless told otherwise (RFC 6455 §5.2, §5.3). */
export function encodeFrame(
  opcode: number,
  payload: Uint8Array | string,
  options: FrameOptions = {},
): Uint8Array {
  const data = typeof payload === "string" ? encoder.encode(payload) : payload;
  const mask = options.mask === undefined ? new Uint8Array(randomBytes(4)) : options.mask;
  const length = data.length;
  const extended = length < 126 ? 0 : length < 65536 ? 2 : 8;
  const head = 2 + extended + (mask === null ? 0 : 4);
  const frame = new Uint8Array(head + length);
  frame[0] = (options.fin === false ? 0 : 0x80) | ((options.rsv ?? 0) << 4) | opcode;
  const maskBit = mask === null ? 0 : 0x80;
  if (extended === 0) {
    frame[1] = maskBit | length;
  } else if (extended === 2) {
    frame[1] = maskBit | 126;
    frame[2] = length >>> 8;
    frame[3] = length & 0xff;
  } else {
    frame[1] = maskBit | 127;
    const high = Math.floor(length / 2 ** 32);
    const view = new DataView(frame.buffer);
    view.setUint32(2, high);
    view.setUint32(6, length >>> 0);
  }
  if (mask === null) {
    frame.set(data, head);
  } else {
    frame.set(mask, head - 4);
    for (let i = 0; i < length; i++) frame[head + i] = data[i] ^ mask[i & 3];
  }
  return frame;
}

/** A Close frame payload: a 2-byte code and a UTF-8 reason. */
export function closePayload(code: number, reason = ""): Uint8Array {
  const text = encoder.encode(reason);
  const payload = new Uint8Array(2 + text.length);
  payload[0] = code >>> 8;
  payload[1] = code & 0xff;
  payload.set(text, 2);
  return payload;
}

/** Reads a Close frame's code (1005 if it has none) and reason. */
export function parseClose(frame: Frame): { code: number; reason: string } {
  assert.equal(frame.opcode, Op.Close, `expected a Close frame, got opcode ${frame.opcode}`);
  const payload = frame.payload;
  if (payload.length === 0) return { code: 1005, reason: "" };
  assert.ok(payload.length >= 2, "a Close payload of one byte");
  return { code: (payload[0] << 8) | payload[1], reason: decoder.decode(payload.subarray(2)) };
}

/** UTF-8 text of a payload (throws on invalid UTF-8). */
export function text(payload: Uint8Array): string {
  return decoder.decode(payload);
}

/** Rejects if `promise` does not settle within `ms`; the timer never outlives the wait. */
export function within<T>(promise: Promise<T>, what: string, ms = WAIT_MS): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

/** TLS for a client: the server's certificate must verify against `ca`. */
export interface ClientTlsOptions {
  /** PEM certificates trusted as roots (for a self-signed server, its own certificate). */
  ca: string;
  /** The name sent in SNI and checked against the certificate. @default {"localhost"} */
  servername?: string;
}

/** How {@linkcode RawClient.connect} connects. */
export interface ConnectOptions {
  /** Speak TLS, verifying the server's certificate; plain TCP without it. */
  tls?: ClientTlsOptions;
}

const HTTP = 0;
const BODY = 1;
const FRAMES = 2;
const DONE = 3;

/** One raw TCP connection to the server under test. */
export class RawClient {
  /** The socket. */
  readonly socket: net.Socket;
  /** Resolves when the TCP connection is fully closed (by either side). */
  readonly closed: Promise<void>;
  /** Whether the server sent FIN (as opposed to a reset, or us closing first). */
  endReceived = false;
  /** The last socket error, if any (a reset, for example). */
  error: Error | undefined;
  #state = HTTP;
  #chunks: Uint8Array[] = [];
  #available = 0;
  #response: HttpResponse | undefined;
  #bodyLength = -1;
  #frames: Frame[] = [];
  /** Where the next frame to read is in `#frames` (Array#shift is O(n) on long arrays). */
  #framesHead = 0;
  #isClosed = false;
  #wake: (() => void) | undefined;

  private constructor(socket: net.Socket) {
    this.socket = socket;
    socket.setNoDelay(true);
    socket.on("data", (chunk: Uint8Array) => this.#receive(chunk));
    socket.on("end", () => {
      this.endReceived = true;
      this.#notify();
    });
    socket.on("error", (error: Error) => {
      this.error = error;
    });
    this.closed = new Promise<void>((resolve) => {
      socket.on("close", () => {
        this.#isClosed = true;
        this.#notify();
        resolve();
      });
    });
  }

  /**
   * Opens a TCP connection to 127.0.0.1:`port`; with `options.tls`, a TLS connection that
   * resolves once the handshake is done and the server's certificate verified.
   */
  static connect(port: number, options: ConnectOptions = {}): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const secure = options.tls;
      const socket = secure === undefined ? net.connect({ port, host: "127.0.0.1" }) : tls.connect({
        port,
        host: "127.0.0.1",
        servername: secure.servername ?? "localhost",
        ca: secure.ca,
      });
      const failed = (error: Error) => {
        socket.destroy();
        reject(error);
      };
      socket.once("error", failed);
      socket.once(secure === undefined ? "connect" : "secureConnect", () => {
        socket.off("error", failed);
        resolve(new RawClient(socket));
      });
    });
  }

  /** Whether the TCP connection is fully closed. */
  get isClosed(): boolean {
    return this.#isClosed;
  }

  /** Writes raw bytes (or a latin1 string); resolves once the socket took them. */
  write(data: Uint8Array | string): Promise<void> {
    const bytes = typeof data === "string" ? Buffer.from(data, "latin1") : data;
    return new Promise((resolve, reject) => {
      this.socket.write(bytes, (error?: Error | null) => error ? reject(error) : resolve());
    });
  }

  /** Sends a frame, masked unless `options.mask` is `null`. */
  sendFrame(opcode: number, payload: Uint8Array | string, options?: FrameOptions): Promise<void> {
    return this.write(encodeFrame(opcode, payload, options));
  }

  /** Sends a masked Close frame (an empty one without `code`). */
  sendClose(code?: number, reason?: string): Promise<void> {
    return this.sendFrame(
      Op.Close,
      code === undefined ? new Uint8Array(0) : closePayload(code, reason),
    );
  }

  /** The HTTP response, once its head (and, unless 101, its body) has arrived. */
  async response(ms = WAIT_MS): Promise<HttpResponse> {
    await this.#until(() => this.#state !== HTTP && this.#state !== BODY, "the HTTP response", ms);
    if (this.#response === undefined || (this.#state === BODY && this.#bodyLength >= 0)) {
      throw new Error("the connection closed before a whole HTTP response arrived");
    }
    return this.#response;
  }

  /**
   * Reads another HTTP response on this connection (a persistent one): the next `response()`
   * waits for it. Call it once the previous response was read whole.
   */
  expectResponse(): void {
    this.#state = HTTP;
    this.#response = undefined;
    this.#bodyLength = -1;
    this.#receive(new Uint8Array(0));
  }

  /** The next frame from the server; rejects if the connection closes first. */
  async nextFrame(ms = WAIT_MS): Promise<Frame> {
    await this.#until(() => this.#frames.length !== this.#framesHead, "a frame", ms);
    const frame = this.#nextFrame();
    if (frame === undefined) {
      throw new Error(
        `the connection closed instead of sending a frame${
          this.#available ? ` (${this.#available} bytes of a partial frame)` : ""
        }`,
      );
    }
    return frame;
  }

  /** Takes the next parsed frame, if any. */
  #nextFrame(): Frame | undefined {
    const frames = this.#frames;
    if (this.#framesHead === frames.length) return undefined;
    const frame = frames[this.#framesHead++];
    if (this.#framesHead === frames.length) {
      frames.length = 0;
      this.#framesHead = 0;
    } else if (this.#framesHead >= 1024 && this.#framesHead * 2 >= frames.length) {
      frames.splice(0, this.#framesHead);
      this.#framesHead = 0;
    }
    return frame;
  }

  /** Waits until the TCP connection is fully closed. */
  waitClosed(ms = WAIT_MS): Promise<void> {
    return within(this.closed, "the TCP connection to close", ms);
  }

  /** Half-closes our side (FIN). */
  end(): void {
    this.socket.end();
  }

  /** Drops the connection at once. */
  destroy(): void {
    this.socket.destroy();
  }

  async #until(ready: () => boolean, what: string, ms: number): Promise<void> {
    if (ready() || this.#isClosed) return;
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      await new Promise<void>((resolve, reject) => {
        timer = setTimeout(() => {
          this.#wake = undefined;
          reject(new Error(`timed out after ${ms} ms waiting for ${what}`));
        }, ms);
        this.#wake = () => {
          if (ready() || this.#isClosed) {
            this.#wake = undefined;
            resolve();
          }
        };
      });
    } finally {
      clearTimeout(timer);
    }
  }

  #notify(): void {
    this.#wake?.();
  }

  #receive(chunk: Uint8Array): void {
    if (chunk.length !== 0) {
      this.#chunks.push(chunk);
      this.#available += chunk.length;
    }
    if (this.#state === HTTP) this.#readHead();
    if (this.#state === BODY) this.#readBody();
    if (this.#state === FRAMES) this.#readFrames();
    this.#notify();
  }

  #readHead(): void {
    const all = this.#take(this.#available);
    const end = Buffer.from(all.buffer, all.byteOffset, all.length).indexOf("\r\n\r\n");
    if (end < 0) {
      this.#unshift(all);
      return;
    }
    const head = Buffer.from(all.subarray(0, end)).toString("latin1");
    this.#unshift(all.subarray(end + 4));
    const [statusLine, ...lines] = head.split("\r\n");
    const match = /^HTTP\/1\.1 (\d{3}) /.exec(statusLine + " ");
    assert.ok(match !== null, `bad status line: ${JSON.stringify(statusLine)}`);
    const headers = new Map<string, string>();
    for (const line of lines) {
      const colon = line.indexOf(":");
      assert.ok(colon > 0, `bad header line: ${JSON.stringify(line)}`);
      const name = line.slice(0, colon).toLowerCase();
      const value = line.slice(colon + 1).trim();
      headers.set(name, headers.has(name) ? `${headers.get(name)}, ${value}` : value);
    }
    const status = Number(match[1]);
    this.#response = { status, statusLine, headers, body: new Uint8Array(0) };
    if (status === 101) {
      this.#state = FRAMES;
      return;
    }
    const length = headers.get("content-length");
    this.#bodyLength = length === undefined ? -1 : Number(length);
    this.#state = BODY;
  }

  #readBody(): void {
    const response = this.#response!;
    if (this.#bodyLength >= 0) {
      if (this.#available < this.#bodyLength) return;
      response.body = this.#take(this.#bodyLength);
      this.#state = DONE;
      return;
    }
    // No Content-Length: the body runs to the end of the connection (handled by #until).
    response.body = this.#take(this.#available);
    this.#unshift(response.body);
  }

  #readFrames(): void {
    while (this.#available >= 2) {
      // The header, read in place when the first chunk holds it: no copy per frame.
      const first = this.#chunks[0];
      const start = first.length >= 14 || first.length === this.#available
        ? first
        : this.#peek(Math.min(14, this.#available));
      const b0 = start[0];
      const b1 = start[1];
      const masked = (b1 & 0x80) !== 0;
      let length = b1 & 0x7f;
      let header = 2;
      if (length === 126) header = 4;
      else if (length === 127) header = 10;
      if (masked) header += 4;
      if (start.length < header) return;
      if (length === 126) {
        length = (start[2] << 8) | start[3];
      } else if (length === 127) {
        const view = new DataView(start.buffer, start.byteOffset, start.length);
        length = view.getUint32(2) * 2 ** 32 + view.getUint32(6);
      }
      if (this.#available < header + length) return;
      const head = this.#take(header);
      const payload = this.#take(length);
      if (masked) {
        for (let i = 0; i < length; i++) payload[i] ^= head[header - 4 + (i & 3)];
      }
      this.#frames.push({
        fin: (b0 & 0x80) !== 0,
        rsv: (b0 >> 4) & 0x7,
        opcode: b0 & 0x0f,
        masked,
        payload,
      });
    }
  }

  /** A copy of the first `n` buffered bytes, left in place. */
  #peek(n: number): Uint8Array {
    const bytes = this.#take(n);
    this.#unshift(bytes);
    return bytes.slice();
  }

  /** Removes the first `n` buffered bytes and returns them in one new buffer. */
  #take(n: number): Uint8Array {
    const out = new Uint8Array(n);
    let offset = 0;
    while (offset < n) {
      const chunk = this.#chunks[0];
      const need = n - offset;
      if (chunk.length <= need) {
        out.set(chunk, offset);
        offset += chunk.length;
        this.#chunks.shift();
      } else {
        out.set(chunk.subarray(0, need), offset);
        offset = n;
        this.#chunks[0] = chunk.subarray(need);
      }
    }
    this.#available -= n;
    return out;
  }

  #unshift(bytes: Uint8Array): void {
    if (bytes.length === 0) return;
    this.#chunks.unshift(bytes);
    this.#available += bytes.length;
  }
}

/** What {@linkcode openWebSocket} does on top of {@linkcode upgradeRequest}. */
export interface OpenOptions extends RequestOptions, ConnectOptions {
  /** Bytes written in the same TCP write, right behind the request. */
  pipelined?: Uint8Array;
}

/**
 * Connects, sends a valid upgrade request and checks the 101: status, Upgrade, Connection and
 * the Sec-WebSocket-Accept for the key sent.
 */
export async function openWebSocket(
  port: number,
  options: OpenOptions = {},
): Promise<{ client: RawClient; response: HttpResponse }> {
  const client = await RawClient.connect(port, { tls: options.tls });
  try {
    const key = options.key ?? newKey();
    const request = Buffer.from(upgradeRequest({ ...options, key }), "latin1");
    await client.write(
      options.pipelined === undefined ? request : Buffer.concat([request, options.pipelined]),
    );
    const response = await client.response();
    assert.equal(response.status, 101, `expected 101, got ${response.statusLine}`);
    assert.equal(response.headers.get("upgrade")?.toLowerCase(), "websocket");
    assert.equal(response.headers.get("connection")?.toLowerCase(), "upgrade");
    assert.equal(response.headers.get("sec-websocket-accept"), acceptFor(key));
    return { client, response };
  } catch (error) {
    client.destroy();
    throw error;
  }
}
