/**
 * A raw HTTP/1.1 test client over `node:net`, for the plain HTTP suites on both runtimes: it
 * writes any bytes (pipelined requests, broken framing) and reads responses one after another
 * on one connection, framed by Content-Length, chunked (each chunk seen as it arrives) or the
 * server's close. It shares no code with the server.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import net from "node:net";
import { WAIT_MS } from "./_client.ts";

/** One response as the wire carried it. */
export interface HttpMessage {
  status: number;
  /** Each header line as [lower-cased name, value], in order. */
  lines: Array<[string, string]>;
  /** Header values by lower-cased name; repeats joined with ", ". */
  headers: Map<string, string>;
  /** The body, decoded from its framing, as latin1 text. */
  body: string;
  /** The chunks of a chunked body, as latin1 text. */
  chunks: string[];
  /** The whole response as sent (head and framed body), as latin1 text. */
  raw: string;
}

/** A request head: the request line, `Host`, the lines given, then the body. */
export function httpRequest(
  method: string,
  path: string,
  lines: string[] = [],
  body = "",
): string {
  return [`${method} ${path} HTTP/1.1`, "Host: 127.0.0.1", ...lines].join("\r\n") +
    "\r\n\r\n" + body;
}

/** One TCP connection that reads HTTP responses in order. */
export class HttpClient {
  readonly socket: net.Socket;
  /** Resolves when the connection is fully closed. */
  readonly closed: Promise<void>;
  /** The server sent FIN. */
  ended = false;
  /** Bytes received and not yet read, as latin1 text. */
  #buffer = "";
  /** Bytes received in all. */
  received = 0;
  #isClosed = false;
  #wake: (() => void) | undefined;

  private constructor(socket: net.Socket) {
    this.socket = socket;
    socket.setNoDelay(true);
    socket.on("data", (chunk: Buffer) => {
      this.received += chunk.length;
      this.#buffer += chunk.toString("latin1");
      this.#notify();
    });
    socket.on("end", () => {
      this.ended = true;
      this.#notify();
    });
    socket.on("error", () => {});
    this.closed = new Promise((resolve) => {
      socket.on("close", () => {
        this.#isClosed = true;
        this.#notify();
        resolve();
      });
    });
  }

  /** Connects to 127.0.0.1:`port`. */
  static connect(port: number): Promise<HttpClient> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ port, host: "127.0.0.1" });
      socket.once("error", reject);
      socket.once("connect", () => {
        socket.off("error", reject);
        resolve(new HttpClient(socket));
      });
    });
  }

  /** Whether the connection is fully closed. */
  get isClosed(): boolean {
    return this.#isClosed;
  }

  /** Writes bytes (or latin1 text); resolves once the socket took them. */
  write(data: string | Uint8Array): Promise<void> {
    const bytes = typeof data === "string" ? Buffer.from(data, "latin1") : data;
    return new Promise((resolve, reject) =>
      this.socket.write(bytes, (error?: Error | null) => error ? reject(error) : resolve())
    );
  }

  /** Half-closes: sends FIN. */
  end(): void {
    this.socket.end();
  }

  /** Drops the connection. */
  destroy(): void {
    this.socket.destroy();
  }

  /** Stops reading from the socket (the server's writes back up). */
  pause(): void {
    this.socket.pause();
  }

  /** Reads again. */
  resume(): void {
    this.socket.resume();
  }

  /**
   * Reads the next response. `head: true` for the answer to a HEAD (no body whatever the
   * headers say).
   */
  async response(options: { head?: boolean; ms?: number } = {}): Promise<HttpMessage> {
    const message = await this.head(options.ms);
    if (options.head || message.status < 200 || [204, 304].includes(message.status)) {
      return message;
    }
    const length = message.headers.get("content-length");
    if (message.headers.get("transfer-encoding") === "chunked") {
      for (;;) {
        const chunk = await this.chunk(message, options.ms);
        if (chunk === undefined) break;
      }
    } else if (length !== undefined) {
      await this.#until(() => this.#buffer.length >= Number(length), "the body", options.ms);
      message.body = this.#take(Number(length));
      message.raw += message.body;
    } else {
      await this.#until(() => this.#isClosed || this.ended, "the close", options.ms);
      message.body = this.#take(this.#buffer.length);
      message.raw += message.body;
    }
    return message;
  }

  /** Reads the next response head only. */
  async head(ms = WAIT_MS): Promise<HttpMessage> {
    await this.#until(() => this.#buffer.includes("\r\n\r\n"), "a response head", ms);
    const end = this.#buffer.indexOf("\r\n\r\n");
    const raw = this.#take(end + 4);
    const [statusLine, ...rest] = raw.slice(0, end).split("\r\n");
    const match = /^HTTP\/1\.1 (\d{3}) /.exec(statusLine + " ");
    if (match === null) throw new Error(`bad status line ${JSON.stringify(statusLine)}`);
    const lines = rest.map((line): [string, string] => {
      const colon = line.indexOf(":");
      return [line.slice(0, colon).toLowerCase(), line.slice(colon + 1).trim()];
    });
    const headers = new Map<string, string>();
    for (const [name, value] of lines) {
      headers.set(name, headers.has(name) ? `${headers.get(name)}, ${value}` : value);
    }
    return { status: Number(match[1]), lines, headers, body: "", chunks: [], raw };
  }

  /**
   * Reads the next chunk of `message`'s chunked body as soon as it has arrived whole;
   * `undefined` at the last chunk (its trailer section read too).
   */
  async chunk(message: HttpMessage, ms = WAIT_MS): Promise<string | undefined> {
    await this.#until(() => this.#buffer.includes("\r\n"), "a chunk size", ms);
    const lineEnd = this.#buffer.indexOf("\r\n");
    const size = parseInt(this.#buffer.slice(0, lineEnd), 16);
    if (Number.isNaN(size)) throw new Error(`bad chunk ${JSON.stringify(this.#buffer)}`);
    if (size === 0) {
      await this.#until(() => this.#buffer.includes("\r\n\r\n"), "the trailer section", ms);
      message.raw += this.#take(this.#buffer.indexOf("\r\n\r\n") + 4);
      return undefined;
    }
    await this.#until(() => this.#buffer.length >= lineEnd + 2 + size + 2, "a chunk", ms);
    const framed = this.#take(lineEnd + 2 + size + 2);
    if (!framed.endsWith("\r\n")) throw new Error("chunk data not followed by CRLF");
    const data = framed.slice(lineEnd + 2, -2);
    message.raw += framed;
    message.body += data;
    message.chunks.push(data);
    return data;
  }

  /** Everything received and not read, up to the close. */
  async rest(ms = WAIT_MS): Promise<string> {
    await this.#until(() => this.#isClosed, "the close", ms);
    return this.#take(this.#buffer.length);
  }

  /** Waits for the server to close the connection. */
  async waitClosed(ms = WAIT_MS): Promise<void> {
    await this.#until(() => this.#isClosed, "the close", ms);
  }

  #take(n: number): string {
    const taken = this.#buffer.slice(0, n);
    this.#buffer = this.#buffer.slice(n);
    return taken;
  }

  async #until(ready: () => boolean, what: string, ms = WAIT_MS): Promise<void> {
    const deadline = Date.now() + ms;
    while (!ready()) {
      if (this.#isClosed) {
        throw new Error(
          `the connection closed while waiting for ${what} (unread: ${
            JSON.stringify(this.#buffer.slice(0, 200))
          })`,
        );
      }
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
      let timer: ReturnType<typeof setTimeout> | undefined;
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
        timer = setTimeout(resolve, left);
      });
      clearTimeout(timer);
      this.#wake = undefined;
    }
  }

  #notify(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }
}

/**
 * Writes `request` on a new connection, reads one response, and closes the connection.
 * `head: true` for a HEAD request.
 */
export async function exchange(
  port: number,
  request: string | string[],
  options: { head?: boolean; gap?: number } = {},
): Promise<HttpMessage> {
  const client = await HttpClient.connect(port);
  try {
    const pieces = typeof request === "string" ? [request] : request;
    for (const [i, piece] of pieces.entries()) {
      if (i > 0) await new Promise((resolve) => setTimeout(resolve, options.gap ?? 20));
      await client.write(piece);
    }
    return await client.response({ head: options.head });
  } finally {
    client.destroy();
    await client.closed;
  }
}

/**
 * Runs `body` with a client on `port`, and closes the client when it is done.
 *
 * @param port The server's port.
 * @param body What to do with the client.
 */
export async function withClient(
  port: number,
  body: (client: HttpClient) => Promise<void>,
): Promise<void> {
  const client = await HttpClient.connect(port);
  try {
    await body(client);
  } finally {
    client.destroy();
    await client.closed;
  }
}
