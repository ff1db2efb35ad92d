/**
 * A scripted WebSocket server over `node:net`, for the client's suites: it shares no code with
 * sluice. It reads the client's upgrade request, hands each connection to the test, which
 * writes whatever bytes it wants (a crafted 101, a refusal, garbage, nothing), and decodes
 * what the client sends after its request as frames (checking they are masked). Also
 * {@linkcode serverFrame} to write frames as a server does, and {@linkcode rejection} for the
 * connects that must fail.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import net from "node:net";
import assert from "node:assert/strict";
import type { ClientWebSocket } from "../mod.ts";
import { acceptFor, encodeFrame, type Frame, WAIT_MS, within } from "./_client.ts";
import { Queue } from "./_harness.ts";

/** One connection accepted by a {@linkcode RawServer}, once its request head has arrived. */
export class RawPeer {
  /** The socket. */
  readonly socket: net.Socket;
  /** The request head as sent, without its final empty line. */
  readonly head: string;
  /** The request line, such as `GET /chat?x=1 HTTP/1.1`. */
  readonly requestLine: string;
  /** Header values by lower-cased name; repeated headers joined with ", ". */
  readonly headers: Map<string, string>;
  /** Resolves when the TCP connection is fully closed (by either side). */
  readonly closed: Promise<void>;
  /** Resolves when the client sent FIN, or the connection closed. */
  readonly gone: Promise<void>;
  /** Whether the client sent FIN. */
  endReceived = false;
  /** Whether the TCP connection is fully closed. */
  isClosed = false;
  /** Frames the client sent after its request, in order. */
  readonly frames = new Queue<Frame>();
  #buffer: Uint8Array;

  /** @internal */
  constructor(
    socket: net.Socket,
    head: string,
    rest: Uint8Array,
    closed: Promise<void>,
    gone: Promise<void>,
  ) {
    this.socket = socket;
    this.head = head;
    const [requestLine, ...lines] = head.split("\r\n");
    this.requestLine = requestLine;
    const headers = new Map<string, string>();
    for (const line of lines) {
      const colon = line.indexOf(":");
      const name = line.slice(0, colon).toLowerCase();
      const value = line.slice(colon + 1).trim();
      headers.set(name, headers.has(name) ? `${headers.get(name)}, ${value}` : value);
    }
    this.headers = headers;
    this.closed = closed;
    this.gone = gone;
    this.#buffer = rest;
  }

  /** The client's Sec-WebSocket-Key. */
  get key(): string {
    return this.headers.get("sec-websocket-key") ?? "";
  }

  /**
   * The lines of a 101 response that accepts this request, with `extra` header lines (without
   * CRLF) after the handshake's own.
   */
  acceptHead(extra: string[] = []): string {
    return [
      "HTTP/1.1 101 Switching Protocols",
      "Upgrade: websocket",
      "Connection: Upgrade",
      `Sec-WebSocket-Accept: ${acceptFor(this.key)}`,
      ...extra,
    ].join("\r\n") + "\r\n\r\n";
  }

  /** Writes a valid 101 (with `extra` header lines) and `after` in one socket write. */
  accept(extra: string[] = [], after?: Uint8Array): Promise<void> {
    const head = Buffer.from(this.acceptHead(extra), "latin1");
    return this.write(after === undefined ? head : Buffer.concat([head, after]));
  }

  /** Writes raw bytes (or a latin1 string); resolves once the socket took them. */
  write(data: Uint8Array | string): Promise<void> {
    const bytes = typeof data === "string" ? Buffer.from(data, "latin1") : data;
    return new Promise((resolve, reject) => {
      this.socket.write(bytes, (error?: Error | null) => error ? reject(error) : resolve());
    });
  }

  /** The next frame from the client; fails the test after `ms`. */
  nextFrame(ms = WAIT_MS): Promise<Frame> {
    return this.frames.next("a frame from the client", ms);
  }

  /**
   * Waits until the client has closed its side: its FIN (the listener allows half-open
   * connections, so ours may still be open) or the end of the connection.
   */
  waitGone(ms = WAIT_MS): Promise<void> {
    return within(this.gone, "the client to close the TCP connection", ms);
  }

  /** Half-closes our side (FIN). */
  end(): void {
    this.socket.end();
  }

  /** Drops the connection at once. */
  destroy(): void {
    this.socket.destroy();
  }

  /** @internal Bytes that came after the request. */
  receive(chunk: Uint8Array): void {
    const buffer = this.#buffer.length === 0 ? chunk : Buffer.concat([this.#buffer, chunk]);
    let offset = 0;
    while (buffer.length - offset >= 2) {
      const b0 = buffer[offset];
      const b1 = buffer[offset + 1];
      const masked = (b1 & 0x80) !== 0;
      let length = b1 & 0x7f;
      let header = 2;
      if (length === 126) header = 4;
      else if (length === 127) header = 10;
      if (masked) header += 4;
      if (buffer.length - offset < header) break;
      if (length === 126) {
        length = (buffer[offset + 2] << 8) | buffer[offset + 3];
      } else if (length === 127) {
        const view = new DataView(buffer.buffer, buffer.byteOffset + offset + 2, 8);
        length = view.getUint32(0) * 2 ** 32 + view.getUint32(4);
      }
      if (buffer.length - offset < header + length) break;
      const payload = buffer.slice(offset + header, offset + header + length);
      if (masked) {
        const key = buffer.subarray(offset + header - 4, offset + header);
        for (let i = 0; i < length; i++) payload[i] ^= key[i & 3];
      }
      this.frames.push({
        fin: (b0 & 0x80) !== 0,
        rsv: (b0 >> 4) & 0x7,
        opcode: b0 & 0x0f,
        masked,
        payload,
      });
      offset += header + length;
    }
    this.#buffer = buffer.subarray(offset);
  }
}

/**
 * A `node:net` listener whose connections are handed to the test as {@linkcode RawPeer}s once
 * their request head has arrived. {@linkcode RawServer.close} drops every connection.
 */
export class RawServer {
  readonly #server: net.Server;
  readonly #sockets = new Set<net.Socket>();
  /** Every connection whose request arrived, in order. */
  readonly peers = new Queue<RawPeer>();
  /** Connections accepted (the request may not have arrived). */
  accepted = 0;
  /** The port. */
  port = 0;
  readonly #hostname: string;

  private constructor(hostname: string, onPeer: ((peer: RawPeer) => void) | undefined) {
    this.#hostname = hostname;
    this.#server = net.createServer({ allowHalfOpen: true }, (socket) => {
      this.accepted++;
      this.#sockets.add(socket);
      socket.setNoDelay(true);
      socket.on("error", () => {});
      let peer: RawPeer | undefined;
      let pending: Uint8Array = new Uint8Array(0);
      let markClosed!: () => void;
      const closed = new Promise<void>((resolve) => markClosed = resolve);
      let markGone!: () => void;
      const gone = new Promise<void>((resolve) => markGone = resolve);
      socket.on("close", () => {
        this.#sockets.delete(socket);
        if (peer !== undefined) peer.isClosed = true;
        markClosed();
        markGone();
      });
      socket.on("end", () => {
        if (peer !== undefined) peer.endReceived = true;
        markGone();
      });
      socket.on("data", (chunk: Uint8Array) => {
        if (peer !== undefined) {
          peer.receive(chunk);
          return;
        }
        pending = Buffer.concat([pending, chunk]);
        const end = Buffer.from(pending.buffer, pending.byteOffset, pending.length)
          .indexOf("\r\n\r\n");
        if (end < 0) return;
        const head = Buffer.from(pending.subarray(0, end)).toString("latin1");
        peer = new RawPeer(socket, head, pending.slice(end + 4), closed, gone);
        this.peers.push(peer);
        onPeer?.(peer);
        peer.receive(new Uint8Array(0));
      });
    });
  }

  /**
   * Listens on `hostname` with a free port; `onPeer` (if given) runs for each connection once
   * its request head has arrived.
   */
  static async listen(
    onPeer?: (peer: RawPeer) => void,
    hostname = "127.0.0.1",
  ): Promise<RawServer> {
    const server = new RawServer(hostname, onPeer);
    await new Promise<void>((resolve, reject) => {
      server.#server.once("error", reject);
      server.#server.listen(0, hostname, () => resolve());
    });
    server.port = (server.#server.address() as net.AddressInfo).port;
    return server;
  }

  /** A `ws:` URL of this server. */
  url(path = "/"): string {
    const host = this.#hostname.includes(":") ? `[${this.#hostname}]` : this.#hostname;
    return `ws://${host}:${this.port}${path}`;
  }

  /** The next connection whose request arrived. */
  nextPeer(ms = WAIT_MS): Promise<RawPeer> {
    return this.peers.next("a connection with its request", ms);
  }

  /** Drops every connection and stops listening. */
  async close(): Promise<void> {
    const sockets = [...this.#sockets];
    for (const socket of sockets) socket.destroy();
    await Promise.all(
      sockets.map((socket) =>
        new Promise<void>((resolve) => {
          if (socket.destroyed && !this.#sockets.has(socket)) resolve();
          else socket.once("close", () => resolve());
        })
      ),
    );
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}

/** Runs `body` with a fresh {@linkcode RawServer}; closes it (and every connection) after. */
export async function withRawServer(
  onPeer: ((peer: RawPeer) => void) | undefined,
  body: (server: RawServer) => Promise<void>,
  hostname?: string,
): Promise<void> {
  const server = await RawServer.listen(onPeer, hostname);
  try {
    await body(server);
  } finally {
    await server.close();
  }
}

/** What `promise` rejected with; fails the test (and drops the connection) if it resolved. */
export async function rejection(promise: Promise<ClientWebSocket>): Promise<unknown> {
  let ws: ClientWebSocket;
  try {
    ws = await promise;
  } catch (error) {
    return error;
  }
  ws.terminate();
  await ws.closed;
  assert.fail("connect should have rejected");
}

/** An unmasked frame, as a server sends it. */
export function serverFrame(opcode: number, payload: Uint8Array | string, fin = true): Uint8Array {
  return encodeFrame(opcode, payload, { mask: null, fin });
}
