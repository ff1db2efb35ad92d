/**
 * The server's plain HTTP side: one response per connection, then the connection closes. It
 * answers a request that is not an upgrade (the metrics path, or the `fetch` handler, its
 * body read first), and writes every refusal of an upgrade request (a status from the checks,
 * or the upgrade hook's `Response`). The handshake phase hands the transport over to it.
 *
 * @module
 */
import { reportError } from "../core/_checks.ts";
import type { Transport, TransportHandler } from "../core/transport.ts";
import { concatBytes } from "../protocol/extensions/deflate_engine.ts";
import {
  type HandshakeRefusal,
  httpResponse,
  refusalResponse,
  type RequestHead,
} from "../protocol/handshake.ts";
import { checkFetchResult } from "./_hook_result.ts";
import { readResponse, responseHeaders } from "./response_headers.ts";
import type { ResolvedOptions, ServerCore } from "./server_core.ts";
import { prometheusText } from "./stats.ts";

const encoder = new TextEncoder();

function utf8Length(text: string): number {
  return encoder.encode(text).length;
}

/** A connection that gets one HTTP response and closes. */
export class HttpResponder<T> implements TransportHandler {
  readonly transport: Transport;
  #server: ServerCore<T>;
  #options: ResolvedOptions<T>;
  /** The request is a plain one (for `fetch` or the metrics path), not a refused upgrade. */
  #plainHttp: boolean;
  /** The request is a HEAD: responses go without their body. */
  #headOnly = false;
  /** A plain request whose body is still arriving. */
  #body: { head: RequestHead; chunks: Uint8Array[]; received: number; length: number } | undefined;
  #acceptedAt: number;
  #address: string;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #gone = false;

  /**
   * Takes over a connection whose request was read.
   *
   * @param server The server.
   * @param transport The socket.
   * @param acceptedAt When the connection came (the server's clock), for the handshake timeout.
   * @param address The client's address (forwarded, if the proxy is trusted).
   * @param plainHttp A plain request rather than a refused upgrade (for the counters).
   */
  constructor(
    server: ServerCore<T>,
    transport: Transport,
    acceptedAt: number,
    address: string,
    plainHttp: boolean,
  ) {
    this.#server = server;
    this.#options = server.options;
    this.transport = transport;
    this.#acceptedAt = acceptedAt;
    this.#address = address;
    this.#plainHttp = plainHttp;
  }

  /** Never in the opening handshake (see `ServerStats.handshaking`). */
  get handshaking(): boolean {
    return false;
  }

  /**
   * Checks the handshake timeout while a request body is arriving.
   *
   * @param now The server's clock.
   */
  sweep(now: number): void {
    const timeout = this.#options.handshakeTimeout;
    if (this.#body !== undefined && timeout !== 0 && now - this.#acceptedAt > timeout) {
      this.#countResponse(408);
      this.terminate();
    }
  }

  /** Closes the connection now. */
  terminate(): void {
    this.transport.destroy();
  }

  // TransportHandler

  /** @internal */
  onData(chunk: Uint8Array): void {
    // Bytes after the request (or after a refusal) are ignored.
    if (this.#body !== undefined) this.#readBody(chunk);
  }

  /** @internal */
  onDrain(): void {}

  /** @internal */
  onBelow(): void {}

  /** @internal */
  onEnd(): void {
    this.transport.end();
    this.#startTimer();
  }

  /** @internal */
  onClose(): void {
    if (this.#gone) return;
    this.#gone = true;
    this.#clearTimer();
    this.#server.untrack(this);
  }

  /**
   * Answers a plain HTTP request: reads its body, then asks the metrics path or `fetch`.
   *
   * @param head The request head.
   * @param rest Bytes that came behind the head.
   */
  serve(head: RequestHead, rest: Uint8Array): void {
    this.#server.counters.httpRequests++;
    this.#headOnly = head.method === "HEAD";
    let length = 0;
    let lengthSeen = false;
    let hosts = 0;
    for (const [name, value] of head.headers) {
      if (name === "host") hosts++;
      if (name === "transfer-encoding") {
        // RFC 9112 §6.1: a transfer coding the server does not understand gets 501.
        this.refuse({
          status: 501,
          message: "Chunked request bodies are not supported",
          headers: [],
        });
        return;
      }
      if (name === "content-length") {
        // RFC 9112 §6.3: differing lengths are an error (a request smuggled past a proxy).
        if (!/^[0-9]{1,15}$/.test(value) || (lengthSeen && Number(value) !== length)) {
          this.refuse({
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
      this.refuse({
        status: 400,
        message: hosts === 0
          ? "Bad request: the Host header is missing"
          : "Bad request: more than one Host header",
        headers: [],
      });
      return;
    }
    if (length > this.#options.maxRequestBodySize) {
      this.refuse({ status: 413, message: "The request body is too large", headers: [] });
      return;
    }
    this.#body = { head, chunks: [], received: 0, length };
    this.#readBody(rest);
  }

  #readBody(chunk: Uint8Array): void {
    const body = this.#body!;
    if (body.received < body.length && chunk.length !== 0) {
      const piece = chunk.subarray(0, body.length - body.received);
      body.chunks.push(piece);
      body.received += piece.length;
    }
    if (body.received < body.length) return;
    // Bytes past the body (a pipelined request) are ignored from here: each response closes.
    this.#body = undefined;
    this.#answer(body.head, body.chunks, body.length);
  }

  async #answer(head: RequestHead, chunks: Uint8Array[], length: number): Promise<void> {
    const options = this.#options;
    let response: Response | undefined;
    let url: URL;
    try {
      const host = head.headers.find(([name]) => name === "host")![1];
      url = new URL(head.target, `${options.cert === undefined ? "http" : "https"}://${host}`);
    } catch {
      this.refuse({ status: 400, message: "Bad request: invalid Host or target", headers: [] });
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
      reportError(options.error, error, undefined, true);
      this.refuse({ status: 500, message: "Internal Server Error", headers: [] });
      return;
    }
    if (this.#gone) return;
    if (response === undefined) {
      this.refuse({ status: 404, message: "Not found", headers: [] });
      return;
    }
    this.respond(response, head.method === "HEAD");
  }

  /**
   * Writes a short response built from a refusal (a status and a text body), then closes.
   *
   * @param refusal The status, the message and extra headers.
   */
  refuse(refusal: HandshakeRefusal): void {
    this.#countResponse(refusal.status);
    let bytes = refusalResponse(refusal);
    // A response to HEAD has no body (RFC 9110 §9.3.2).
    if (this.#headOnly) bytes = bytes.subarray(0, bytes.length - utf8Length(refusal.message));
    this.transport.write(bytes, false);
    this.transport.end();
    this.#startTimer();
  }

  /**
   * Writes a `Response` (its body read whole), then closes. A refused upgrade's response was
   * counted when it was decided.
   *
   * @param response The response.
   * @param headOnly Without its body (a response to HEAD).
   */
  respond(response: Response, headOnly = false): void {
    readResponse(response).then(
      ({ body, type }) => {
        if (this.#gone) return;
        let bytes: Uint8Array;
        try {
          const headers = responseHeaders(response.headers, type, body);
          bytes = httpResponse(response.status, headers, body);
        } catch (error) {
          this.#failed(error);
          return;
        }
        // A response to HEAD has the headers of the GET response and no body (RFC 9110 §9.3.2).
        if (headOnly) bytes = bytes.subarray(0, bytes.length - body.length);
        if (this.#plainHttp) this.#server.counters.httpResponse(response.status);
        this.transport.write(bytes, false);
        this.transport.end();
        this.#startTimer();
      },
      (error) => {
        if (!this.#gone) this.#failed(error);
      },
    );
  }

  /** Counts a response: a plain HTTP one by status, else a refused upgrade request. */
  #countResponse(status: number): void {
    if (this.#plainHttp) this.#server.counters.httpResponse(status);
    else this.#server.refused(status);
  }

  #failed(error: unknown): void {
    reportError(this.#options.error, error);
    this.refuse({ status: 500, message: "Internal Server Error", headers: [] });
  }

  // The linger after our FIN: the peer has this long to close its side.

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
