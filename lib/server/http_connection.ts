/**
 * The server's plain HTTP/1.1 side: a connection whose requests are not upgrades, answered by
 * the metrics path or the `fetch` handler, one request at a time, for as long as the
 * connection persists (RFC 9112 §9.3). Request bodies stream into `request.body` as they
 * arrive; response bodies stream out as the client takes them. An upgrade request on the
 * connection hands it back to a {@linkcode HandshakePhase}.
 *
 * The parsing is sans-I/O, in lib/protocol/http1.ts; here are the state, the timeouts, the
 * flow control and the handler calls.
 *
 * @module
 */
import { isThenable, reportError } from "../core/_checks.ts";
import { concatBytes } from "../protocol/extensions/deflate_engine.ts";
import type { Transport, TransportHandler } from "../core/transport.ts";
import {
  ChunkedBodyParser,
  chunkSizeLine,
  CONTINUE_RESPONSE,
  CRLF,
  encodeChunk,
  type HandshakeRefusal,
  LAST_CHUNK,
  latin1Bytes,
  requestFraming,
  type RequestHead,
  RequestHeadParser,
  type ResponseHeadOptions,
  responseHeadText,
} from "../protocol/http1.ts";
import { checkFetchResult } from "./_hook_result.ts";
import { clientAddress } from "./forwarded.ts";
import { HandshakePhase } from "./handshake_phase.ts";
import { addStringType, plainResponseHeaders } from "./response_headers.ts";
import type { ResolvedOptions, ServerCore } from "./server_core.ts";
import { prometheusText } from "./stats.ts";

/** Bytes of pipelined requests held behind the one being answered before reading pauses. */
const PENDING_LIMIT = 64 * 1024;
/** A streamed response body is read only while less than this is queued for the socket. */
const WRITE_HIGH = 64 * 1024;
/**
 * A response body that keeps coming at once is read whole up to about this many bytes (then
 * sent with Content-Length); past it, it is streamed.
 */
const WHOLE_LIMIT = 1024 * 1024;
/** Chunks smaller than this are framed into one buffer rather than written in three parts. */
const MERGE_BELOW = 16 * 1024;
/**
 * Microtask turns a response body's read may take and still count as "at once": a body made
 * from a string, bytes or a Blob answers within three in both runtimes; a stream waiting on
 * its producer does not answer at all.
 */
const AT_ONCE_TURNS = 8;
/** The request body stream's queue, in bytes, before reading from the socket pauses. */
const BODY_HIGH = 64 * 1024;

const EMPTY = new Uint8Array(0);
const encoder = new TextEncoder();
/**
 * Where a response's head, and a small body after it, are put together to be written. The
 * transports copy whatever they keep of a chunk given as reusable, so this one buffer serves
 * every response: a new buffer per response costs Deno more than the rest of the head.
 */
const SCRATCH = new Uint8Array(MERGE_BELOW + 8192);
const NOT_YET: unique symbol = Symbol("not yet");
const noop = () => {};

/** A read's outcome, filled in when it settles. */
interface Outcome<T> {
  settled: boolean;
  failed: boolean;
  value: T | undefined;
  error: unknown;
}

/**
 * `promise`'s value if it settles within AT_ONCE_TURNS microtask turns, else NOT_YET (the
 * promise can still be awaited). Counts the turns one `await` at a time and stops at the first
 * in which the promise has settled: a body made from a string settles in one to three.
 */
async function soon<T>(promise: Promise<T>): Promise<T | typeof NOT_YET> {
  const outcome: Outcome<T> = { settled: false, failed: false, value: undefined, error: undefined };
  promise.then((value) => {
    outcome.settled = true;
    outcome.value = value;
  }, (error) => {
    outcome.failed = true;
    outcome.error = error;
  });
  for (let i = 0; i < AT_ONCE_TURNS; i++) {
    await undefined;
    if (outcome.settled) return outcome.value as T;
    if (outcome.failed) throw outcome.error;
  }
  return NOT_YET;
}

let dateSecond = -1;
let dateText = "";

/** The `Date` header's value (RFC 9110 §6.6.1), made once a second. */
function httpDate(): string {
  const now = Date.now();
  const second = Math.floor(now / 1000);
  if (second !== dateSecond) {
    dateSecond = second;
    // ECMA-262 Date.prototype.toUTCString is the IMF-fixdate of RFC 9110 §5.6.7.
    dateText = new Date(now).toUTCString();
  }
  return dateText;
}

/**
 * Whether a request head goes to the plain HTTP side: it has no Upgrade header, and `fetch`
 * or the metrics path can answer it. Anything else is for the upgrade checks.
 *
 * @param options The server's options.
 * @param head The request head.
 * @returns `true` for plain HTTP.
 */
export function isPlainRequest<T>(options: ResolvedOptions<T>, head: RequestHead): boolean {
  return (options.fetch !== undefined ||
    (options.metricsPath !== undefined && head.target.split("?", 1)[0] === options.metricsPath)) &&
    !head.headers.some(([name]) => name === "upgrade");
}

/** One request on the connection, from its head to the end of its response. */
interface Exchange {
  head: RequestHead;
  /** A HEAD request: the response goes without its body. */
  headOnly: boolean;
  http10: boolean;
  /** The connection carries another request after this one. */
  keepAlive: boolean;
  /** The client waits for `100 Continue` before it sends the body. */
  expectContinue: boolean;
  /** `100 Continue` was sent. */
  continued: boolean;
  /** Content-Length bytes of the body still to come (not chunked). */
  left: number;
  /** The decoder of a chunked body. */
  chunked: ChunkedBodyParser | undefined;
  /** The body has arrived whole (or failed): bytes after it belong to the next request. */
  bodyDone: boolean;
  /** Where the body goes: `request.body`, until it is read whole, cancelled or dropped. */
  controller: ReadableStreamDefaultController<Uint8Array> | undefined;
  /** Reading from the socket waits until `request.body` is read. */
  bodyHeld: boolean;
  /** When body bytes last arrived (the server's clock). */
  bodyAt: number;
  /** The response's head was written. */
  started: boolean;
  /** The response was written whole. */
  done: boolean;
  /** The exchange ended in an error: nothing more is written for it. */
  failed: boolean;
  /** The response body being read, to cancel if the connection goes. */
  reader: ReadableStreamDefaultReader<Uint8Array> | undefined;
  /** Behind `request.signal`, made when the handler first asks for it. */
  abort: AbortController | undefined;
}

/**
 * The `Request` the `fetch` handler gets. Its `signal` aborts when the client leaves before
 * the response is written whole (a stream, server-sent events, learns that nobody listens), as
 * `Bun.serve`'s and `Deno.serve`'s do. The controller behind it is made at the first read of
 * `signal`: most handlers never look, and one per request would cost each of them.
 */
class ServedRequest extends Request {
  #exchange: Exchange;

  constructor(url: string, init: RequestInit, exchange: Exchange) {
    super(url, init);
    this.#exchange = exchange;
  }

  override get signal(): AbortSignal {
    const ex = this.#exchange;
    let abort = ex.abort;
    if (abort === undefined) {
      abort = ex.abort = new AbortController();
      if (ex.failed && !ex.done) abort.abort(gone());
    }
    return abort.signal;
  }
}

/** The reason `request.signal` gives when the client left. */
function gone(): DOMException {
  return new DOMException("The client closed the connection", "AbortError");
}

/** A persistent plain HTTP connection. */
export class HttpConnection<T> implements TransportHandler {
  readonly transport: Transport;
  #server: ServerCore<T>;
  #options: ResolvedOptions<T>;
  /** The head being read, once its first byte came. */
  #parser: RequestHeadParser | undefined;
  /** The parser of the last head, reset and used again for the next one. */
  #spare: RequestHeadParser | undefined;
  /** When the head being read began (the server's clock). */
  #headAt = 0;
  /** When the connection went idle between requests, or -1 while it is not idle. */
  #idleAt = -1;
  #requests = 0;
  #exchange: Exchange | undefined;
  /** Bytes not yet read: the requests pipelined behind the current one. */
  #input: Uint8Array[] = [];
  #inputBytes = 0;
  #running = false;
  /** Reading from the socket is paused (see #updateReading). */
  #paused = false;
  /** No more requests: our FIN is sent or coming, or the connection changed hands. */
  #closing = false;
  /** The client sent FIN. */
  #peerEnded = false;
  #gone = false;
  #timer: ReturnType<typeof setTimeout> | undefined;
  /** Resolves the wait of a streamed response for the socket to drain. */
  #wake: (() => void) | undefined;
  /** When that wait began (the server's clock). */
  #waitAt = 0;
  /** Scratch for a chunked body's pieces. */
  #pieces: Uint8Array[] = [];

  /**
   * Takes over a connection whose first request is plain HTTP.
   *
   * @param server The server.
   * @param transport The socket.
   */
  constructor(server: ServerCore<T>, transport: Transport) {
    this.#server = server;
    this.#options = server.options;
    this.transport = transport;
    server.counters.httpConnections++;
  }

  /** Never in the opening handshake (see `ServerStats.handshaking`). */
  get handshaking(): boolean {
    return false;
  }

  /**
   * Applies the timeouts: the keep-alive idle timeout, `handshakeTimeout` on a request head
   * and on a body that stopped arriving, and `idleTimeout` on a streamed response the client
   * stopped reading.
   *
   * @param now The server's clock.
   */
  sweep(now: number): void {
    const options = this.#options;
    if (
      this.#wake !== undefined && options.idleTimeout !== 0 &&
      now - this.#waitAt > options.idleTimeout
    ) {
      // A client that stopped reading a streamed response holds the stream and the socket's
      // buffers: with nothing taken for idleTimeout, the connection goes (its body is cut short).
      this.terminate();
      return;
    }
    if (this.#closing) return;
    const ex = this.#exchange;
    const timeout = options.handshakeTimeout;
    if (ex === undefined) {
      if (this.#parser === undefined) {
        if (this.#idleAt >= 0 && now - this.#idleAt > options.keepAliveTimeout) this.#close();
      } else if (timeout !== 0 && now - this.#headAt > timeout) {
        this.#refuse({
          status: 408,
          message: "Request timeout: the request head did not arrive in time",
          headers: [],
        });
      }
    } else if (!ex.bodyDone && !ex.bodyHeld && timeout !== 0 && now - ex.bodyAt > timeout) {
      this.#bodyFailed(ex, {
        status: 408,
        message: "Request timeout: the request body stopped arriving",
        headers: [],
      });
    }
  }

  /**
   * Closes gracefully, for a server shutting down: an idle connection closes now; a request in
   * progress is answered (with `Connection: close` if its response has not started), then the
   * connection closes. The shutdown's timeout bounds the wait.
   */
  shutdown(): void {
    const ex = this.#exchange;
    if (ex === undefined || ex.done) this.#close();
    else ex.keepAlive = false;
  }

  /** Closes the connection now. */
  terminate(): void {
    this.transport.destroy();
  }

  /**
   * Answers the connection's first request, which the handshake phase read.
   *
   * @param parser The parser that read its head.
   */
  serve(parser: RequestHeadParser): void {
    this.#server.counters.httpBytesIn += parser.size + parser.rest.length;
    const rest = this.#start(parser);
    if (rest.length !== 0) this.#push(rest);
    this.#run();
  }

  // TransportHandler

  /** @internal */
  onData(chunk: Uint8Array): void {
    if (this.#closing) return;
    this.#server.counters.httpBytesIn += chunk.length;
    this.#push(chunk);
    this.#run();
  }

  /** @internal */
  onDrain(): void {
    this.#wakeWriter();
  }

  /** @internal */
  onBelow(): void {
    this.#wakeWriter();
  }

  /** @internal */
  onEnd(): void {
    this.#peerEnded = true;
    const ex = this.#exchange;
    if (ex === undefined || this.#closing) {
      this.#close();
    } else if (!ex.bodyDone) {
      this.#bodyFailed(ex, {
        status: 400,
        message: "Bad request: the connection ended inside the request body",
        headers: [],
      });
    } else if (ex.started) {
      // Mid-response: the client is gone, as far as a stream (server-sent events) can tell.
      ex.failed = true;
      ex.reader?.cancel().catch(noop);
      ex.abort?.abort(gone());
      this.#close();
    } else {
      // The response still goes out (a client may half-close after its request); then close.
      ex.keepAlive = false;
    }
  }

  /** @internal */
  onClose(): void {
    if (this.#gone) return;
    this.#gone = true;
    clearTimeout(this.#timer);
    this.#leave();
    const ex = this.#exchange;
    if (ex !== undefined) {
      ex.failed = true;
      this.#dropBody(ex, "the connection closed");
      // A streamed response (server-sent events) learns that nobody listens any more.
      ex.reader?.cancel().catch(noop);
      if (!ex.done) ex.abort?.abort(gone());
    }
    this.#wakeWriter();
    this.#server.untrack(this);
  }

  /** Leaves the gauges: the connection closed or changed hands. */
  #leave(): void {
    const counters = this.#server.counters;
    counters.httpConnections--;
    if (this.#idleAt >= 0) {
      counters.httpIdle--;
      this.#idleAt = -1;
    }
  }

  // Reading requests

  #push(chunk: Uint8Array): void {
    this.#input.push(chunk);
    this.#inputBytes += chunk.length;
  }

  /**
   * Reads what has arrived, in order: request heads, then their bodies; bytes behind a request
   * whose body is complete wait until its response is written.
   */
  #run(): void {
    if (this.#running) return;
    this.#running = true;
    const input = this.#input;
    while (input.length !== 0 && !this.#closing) {
      const ex = this.#exchange;
      if (ex !== undefined && ex.bodyDone) break;
      const chunk = input.shift()!;
      this.#inputBytes -= chunk.length;
      const rest = ex === undefined ? this.#readHead(chunk) : this.#readBody(ex, chunk);
      if (rest.length !== 0 && !this.#closing) {
        input.unshift(rest);
        this.#inputBytes += rest.length;
      }
    }
    this.#running = false;
    this.#updateReading();
  }

  /** Reads a request head; returns the bytes after it once it is complete and served. */
  #readHead(chunk: Uint8Array): Uint8Array {
    let parser = this.#parser;
    if (parser === undefined) {
      parser = this.#spare;
      if (parser === undefined) parser = new RequestHeadParser(this.#options);
      else parser.reset();
      this.#parser = parser;
      this.#headAt = this.#server.now;
      if (this.#idleAt >= 0) {
        this.#server.counters.httpIdle--;
        this.#idleAt = -1;
      }
    }
    const status = parser.push(chunk);
    if (status === 0) return EMPTY;
    this.#parser = undefined;
    if (status === -1) {
      this.#server.counters.httpRequests++;
      this.#refuse(parser.refusal!);
      return EMPTY;
    }
    if (!isPlainRequest(this.#options, parser.head!)) {
      this.#handOver(parser);
      return EMPTY;
    }
    return this.#start(parser);
  }

  /**
   * An upgrade request (or one only the upgrade checks answer): the connection goes to a
   * handshake phase, with every byte that came after the head.
   */
  #handOver(parser: RequestHeadParser): void {
    this.#closing = true;
    this.#leave();
    let rest = parser.rest;
    if (this.#input.length !== 0) {
      rest = concatBytes([rest, ...this.#input], rest.length + this.#inputBytes);
      this.#input = [];
      this.#inputBytes = 0;
    }
    if (this.#paused) {
      this.#paused = false;
      this.transport.resume();
    }
    const phase = new HandshakePhase<T>(this.#server, this.transport);
    this.transport.setHandler(phase);
    this.#server.handOver(this, phase);
    phase.takeHead(parser.head!, rest);
  }

  /** Starts answering a request whose head was read; returns the bytes after the head. */
  #start(parser: RequestHeadParser): Uint8Array {
    const head = parser.head!;
    this.#spare = parser;
    const server = this.#server;
    const options = this.#options;
    server.counters.httpRequests++;
    this.#requests++;
    if (parser.bareLineFeed) {
      // RFC 9112 §2.2 allows a bare LF; a proxy in front that does not could see other headers.
      return this.#refuse(
        { status: 400, message: "Bad request: an LF not preceded by CR", headers: [] },
        head.method === "HEAD",
      );
    }
    let host: string | undefined;
    let hosts = 0;
    for (const [name, value] of head.headers) {
      if (name === "host") {
        host = value;
        hosts++;
      }
    }
    // RFC 9112 §3.2: a request without Host, or with more than one, gets a 400.
    if (hosts !== 1) {
      return this.#refuse({
        status: 400,
        message: hosts === 0
          ? "Bad request: the Host header is missing"
          : "Bad request: more than one Host header",
        headers: [],
      }, head.method === "HEAD");
    }
    const framing = requestFraming(head);
    if ("status" in framing) return this.#refuse(framing, head.method === "HEAD");
    if (framing.length > options.maxRequestBodySize) {
      return this.#refuse(
        { status: 413, message: "The request body is too large", headers: [] },
        head.method === "HEAD",
      );
    }
    const base = `${options.cert === undefined ? "http" : "https"}://${host}`;
    let url: URL | undefined;
    let href: string;
    if (head.target.charCodeAt(0) === 0x2f && options.metricsPath === undefined) {
      // The usual origin-form target: the Request constructor parses the URL, once.
      href = base + head.target;
    } else {
      try {
        url = new URL(head.target, base);
        href = url.href;
      } catch {
        return this.#refuse(
          { status: 400, message: "Bad request: invalid Host or target", headers: [] },
          head.method === "HEAD",
        );
      }
    }
    const ex: Exchange = {
      head,
      headOnly: head.method === "HEAD",
      http10: head.version === "HTTP/1.0",
      keepAlive: framing.keepAlive && this.#requests < options.maxRequestsPerConnection,
      expectContinue: framing.expectContinue,
      continued: false,
      left: framing.length > 0 ? framing.length : 0,
      chunked: framing.length < 0
        ? new ChunkedBodyParser({
          maxBodySize: options.maxRequestBodySize,
          maxLineLength: options.maxLineLength,
          maxTrailerSize: options.maxHeadSize,
          maxTrailers: options.maxHeaders,
        })
        : undefined,
      bodyDone: framing.length === 0,
      controller: undefined,
      bodyHeld: false,
      bodyAt: server.now,
      started: false,
      done: false,
      failed: false,
      reader: undefined,
      abort: undefined,
    };
    this.#exchange = ex;
    // A GET or HEAD cannot carry a body in a Request: one that came anyway is read and dropped.
    const body = ex.bodyDone || head.method === "GET" || head.method === "HEAD"
      ? undefined
      : this.#bodyStream(ex);
    // Whatever escapes (a body already used, say) fails this exchange, not the process.
    this.#answer(ex, href, url, body).catch((error) => this.#streamFailed(ex, error));
    return parser.rest;
  }

  /** `request.body`: a stream that the socket fills as the client sends. */
  #bodyStream(ex: Exchange): ReadableStream<Uint8Array> {
    return new ReadableStream<Uint8Array>({
      start: (controller) => {
        ex.controller = controller;
      },
      pull: () => this.#bodyPulled(ex),
      cancel: () => {
        // The rest of the body is read and dropped, so the next request can be read.
        ex.controller = undefined;
        this.#release(ex);
      },
    }, {
      // With Expect: 100-continue, pull means the handler reads: only then may the client send.
      highWaterMark: ex.expectContinue ? 0 : BODY_HIGH,
      size: (chunk) => chunk.length,
    });
  }

  /** The handler reads the body (or its queue has room again). */
  #bodyPulled(ex: Exchange): void {
    if (ex.failed || this.#gone) return;
    if (ex.expectContinue && !ex.continued && !ex.started && !ex.bodyDone) {
      // RFC 9110 §10.1.1: the interim response tells the client to send the body.
      ex.continued = true;
      this.#write(CONTINUE_RESPONSE);
    }
    this.#release(ex);
  }

  /** Reading from the socket no longer waits for `request.body`. */
  #release(ex: Exchange): void {
    if (!ex.bodyHeld) return;
    ex.bodyHeld = false;
    this.#updateReading();
  }

  /** Reads body bytes; returns those after the body. */
  #readBody(ex: Exchange, chunk: Uint8Array): Uint8Array {
    ex.bodyAt = this.#server.now;
    const decoder = ex.chunked;
    if (decoder !== undefined) {
      const pieces = this.#pieces;
      const status = decoder.push(chunk, pieces);
      for (let i = 0; i < pieces.length; i++) this.#deliver(ex, pieces[i]);
      pieces.length = 0;
      if (status === 0) return EMPTY;
      if (status === -1) {
        this.#bodyFailed(ex, decoder.refusal!);
        return EMPTY;
      }
      const rest = decoder.rest;
      this.#bodyComplete(ex);
      return rest;
    }
    const take = ex.left < chunk.length ? ex.left : chunk.length;
    this.#deliver(ex, take === chunk.length ? chunk : chunk.subarray(0, take));
    ex.left -= take;
    if (ex.left !== 0) return EMPTY;
    this.#bodyComplete(ex);
    return chunk.subarray(take);
  }

  /** Hands body bytes to `request.body` (views: the transport never reuses their memory). */
  #deliver(ex: Exchange, piece: Uint8Array): void {
    const controller = ex.controller;
    if (controller === undefined || piece.length === 0) return;
    controller.enqueue(piece);
    if (controller.desiredSize! <= 0 && !ex.bodyHeld) {
      ex.bodyHeld = true;
      this.#updateReading();
    }
  }

  #bodyComplete(ex: Exchange): void {
    ex.bodyDone = true;
    const controller = ex.controller;
    ex.controller = undefined;
    controller?.close();
    this.#release(ex);
    if (ex.done) this.#finish();
  }

  /**
   * The body broke (bad framing, over the limit, too slow, cut short): the handler's reads
   * fail, and the client gets the refusal if no response has begun, else the connection drops.
   */
  #bodyFailed(ex: Exchange, refusal: HandshakeRefusal): void {
    ex.bodyDone = true;
    this.#dropBody(ex, refusal.message);
    if (ex.failed || ex.done) {
      this.#close();
      return;
    }
    ex.failed = true;
    ex.reader?.cancel().catch(noop);
    if (ex.started) this.terminate();
    else this.#refuse(refusal, ex.headOnly);
  }

  /** `request.body` fails with `why`; bytes still coming are dropped. */
  #dropBody(ex: Exchange, why: string): void {
    const controller = ex.controller;
    ex.controller = undefined;
    ex.bodyHeld = false;
    controller?.error(new Error(`Cannot read the request body: ${why}`));
  }

  /** Pauses reading while `request.body` is full or too many pipelined bytes wait. */
  #updateReading(): void {
    if (this.#closing) return;
    const hold = (this.#exchange?.bodyHeld ?? false) || this.#inputBytes > PENDING_LIMIT;
    if (hold === this.#paused) return;
    this.#paused = hold;
    if (hold) this.transport.pause();
    else this.transport.resume();
  }

  // Answering

  async #answer(
    ex: Exchange,
    href: string,
    url: URL | undefined,
    body: ReadableStream<Uint8Array> | undefined,
  ): Promise<void> {
    const options = this.#options;
    let response: Response | undefined;
    try {
      if (url !== undefined && url.pathname === options.metricsPath) {
        const method = ex.head.method;
        response = method === "GET" || method === "HEAD"
          ? new Response(prometheusText(this.#server.stats()), {
            headers: { "Content-Type": "text/plain; version=0.0.4; charset=utf-8" },
          })
          : new Response("Method not allowed", { status: 405, headers: { Allow: "GET, HEAD" } });
      } else if (options.fetch !== undefined) {
        // The header pairs as they came: the Request makes its Headers from them. GET is the
        // Request's default method, and naming it costs the constructor another step.
        const method = ex.head.method;
        const init: RequestInit & { duplex?: "half" } = method === "GET"
          ? { headers: ex.head.headers }
          : { method, headers: ex.head.headers };
        if (body !== undefined) {
          init.body = body;
          init.duplex = "half";
        }
        let address = this.transport.remoteAddress;
        if (options.trustedProxy !== undefined) {
          address = clientAddress(address, ex.head.headers, options.trustedProxy);
        }
        let request: Request;
        try {
          request = new ServedRequest(href, init, ex);
        } catch {
          // A Host the URL parser refuses.
          this.#text(ex, 400, "Bad request: invalid Host or target");
          return;
        }
        const result = options.fetch(request, {
          remoteAddress: address,
          peerAddress: this.transport.remoteAddress,
        });
        // A Response returned as it is goes on in this turn: an await would cost one.
        response = checkFetchResult(isThenable(result) ? await result : result);
      }
    } catch (error) {
      // A handler that failed because the body did (the client's doing) was answered then.
      if (ex.failed || this.#gone) return;
      reportError(options.error, error, undefined, true);
      this.#text(ex, 500, "Internal Server Error");
      return;
    }
    if (ex.failed || this.#gone) {
      response?.body?.cancel().catch(noop);
      return;
    }
    if (response === undefined) this.#text(ex, 404, "Not found");
    else await this.#send(ex, response);
  }

  /** A short text response of the server's own. */
  #text(ex: Exchange, status: number, message: string): void {
    const body = encoder.encode(message);
    const head = this.#head(ex, status, [["content-type", "text/plain; charset=utf-8"]], {
      framing: body.length,
    });
    this.#writeResponse(head, ex.headOnly ? undefined : body);
    this.#responseDone(ex);
  }

  /** Writes a `Response`: its body whole with Content-Length if it comes at once, else streamed. */
  async #send(ex: Exchange, response: Response): Promise<void> {
    const status = response.status;
    const owned = plainResponseHeaders(response.headers);
    const bodiless = status < 200 || status === 204 || status === 304;
    const stream = response.body;
    if (stream === null || bodiless) {
      stream?.cancel().catch(noop);
      // RFC 9110 §8.6: no Content-Length in a 1xx or 204, nor in a 304; RFC 9112 §6.3.
      const head = this.#head(
        ex,
        status,
        owned.list,
        { framing: bodiless ? "none" : 0 },
        owned.close,
      );
      this.#writeResponse(head, undefined);
      this.#responseDone(ex);
      return;
    }
    const reader = stream.getReader();
    ex.reader = reader;
    const chunks: Uint8Array[] = [];
    let total = 0;
    let next: Promise<ReadableStreamReadResult<Uint8Array>> | undefined;
    let whole = false;
    let over = false;
    try {
      for (;;) {
        const read = reader.read();
        const result = await soon(read);
        if (result === NOT_YET) {
          next = read;
          break;
        }
        if (result.done) {
          whole = true;
          break;
        }
        const chunk = checkChunk(result.value);
        chunks.push(chunk);
        total += chunk.length;
        // Past the limit, one more read tells a body read whole from one still coming.
        if (over) break;
        over = total > WHOLE_LIMIT;
      }
    } catch (error) {
      this.#streamFailed(ex, error);
      return;
    }
    if (ex.failed || this.#gone) {
      reader.cancel().catch(noop);
      return;
    }
    if (whole) {
      ex.reader = undefined;
      const body = concatBytes(chunks, total);
      addStringType(owned.list, owned.typed, body);
      const head = this.#head(ex, status, owned.list, { framing: body.length }, owned.close);
      if (ex.headOnly || body.length === 0) this.#writeResponse(head, undefined);
      else if (body.length < MERGE_BELOW) this.#writeResponse(head, body);
      else {
        this.#writeResponse(head, undefined);
        this.#write(body);
      }
      this.#responseDone(ex);
      return;
    }
    await this.#stream(ex, status, owned, reader, chunks, next);
  }

  /** Streams a body as it is produced, reading it only while the socket keeps up. */
  async #stream(
    ex: Exchange,
    status: number,
    owned: ReturnType<typeof plainResponseHeaders>,
    reader: ReadableStreamDefaultReader<Uint8Array>,
    chunks: Uint8Array[],
    next: Promise<ReadableStreamReadResult<Uint8Array>> | undefined,
  ): Promise<void> {
    // Its own Content-Length frames it; else chunked, or for HTTP/1.0 the connection's close.
    const length = owned.length;
    const framing = length ?? (ex.http10 ? "none" : "chunked");
    const head = this.#head(ex, status, owned.list, { framing }, owned.close);
    this.#writeResponse(head, undefined);
    if (ex.headOnly) {
      reader.cancel().catch(noop);
      ex.reader = undefined;
      this.#responseDone(ex);
      return;
    }
    const chunked = framing === "chunked";
    let sent = 0;
    try {
      for (let i = 0;; i++) {
        let chunk: Uint8Array;
        if (i < chunks.length) {
          chunk = chunks[i];
        } else {
          if (this.transport.bufferedAmount > WRITE_HIGH) await this.#drained();
          if (ex.failed || this.#gone) break;
          const result = await (next ?? reader.read());
          next = undefined;
          if (ex.failed || this.#gone) break;
          if (result.done) break;
          chunk = checkChunk(result.value);
        }
        if (chunk.length === 0) continue;
        sent += chunk.length;
        if (length !== undefined && sent > length) {
          throw new TypeError(
            `The response body is longer than its Content-Length (${length} bytes)`,
          );
        }
        if (!chunked) this.#write(chunk);
        else if (chunk.length < MERGE_BELOW) this.#write(encodeChunk(chunk));
        else {
          this.#write(chunkSizeLine(chunk.length));
          this.#write(chunk);
          this.#write(CRLF);
        }
      }
      if (ex.failed || this.#gone) {
        reader.cancel().catch(noop);
        return;
      }
      if (length !== undefined && sent !== length) {
        throw new TypeError(
          `The response body is shorter than its Content-Length (${sent} of ${length} bytes)`,
        );
      }
    } catch (error) {
      this.#streamFailed(ex, error);
      return;
    }
    ex.reader = undefined;
    if (chunked) this.#write(LAST_CHUNK);
    else if (framing === "none") ex.keepAlive = false; // The close ends the body.
    this.#responseDone(ex);
  }

  /**
   * The response body failed (its stream errored, or it broke its Content-Length): before the
   * head, a 500; after it, the connection is dropped so the client sees the body cut short.
   */
  #streamFailed(ex: Exchange, error: unknown): void {
    ex.reader?.cancel(error).catch(noop);
    ex.reader = undefined;
    if (ex.failed || this.#gone) return;
    reportError(this.#options.error, error, undefined, true);
    if (!ex.started) {
      this.#text(ex, 500, "Internal Server Error");
      return;
    }
    ex.failed = true;
    this.terminate();
  }

  /** Waits until the socket has taken most of what is queued (or the connection is gone). */
  #drained(): Promise<void> {
    this.transport.watchBelow(WRITE_HIGH / 2);
    this.#waitAt = this.#server.now;
    return new Promise((resolve) => this.#wake = resolve);
  }

  #wakeWriter(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  /**
   * A response head, deciding the connection's fate: it closes after the response if the
   * request or the response asked for that, at the request cap, if the client waits for a
   * `100 Continue` that was not sent, or if it already sent FIN.
   */
  #head(
    ex: Exchange,
    status: number,
    headers: Array<[string, string]>,
    options: Pick<ResponseHeadOptions, "framing">,
    close = false,
  ): string {
    if (
      close || this.#peerEnded ||
      (ex.expectContinue && !ex.continued && !ex.bodyDone) ||
      (options.framing === "none" && !(status < 200 || status === 204 || status === 304))
    ) {
      ex.keepAlive = false;
    }
    ex.started = true;
    this.#server.counters.httpResponse(status);
    return responseHeadText(status, headers, {
      date: httpDate(),
      framing: options.framing,
      connection: !ex.keepAlive ? "close" : ex.http10 ? "keep-alive" : undefined,
    });
  }

  /** The response is written: on to the next request, or close. */
  #responseDone(ex: Exchange): void {
    ex.done = true;
    ex.reader = undefined;
    if (!ex.keepAlive) {
      this.#close();
      return;
    }
    if (ex.bodyDone) {
      this.#finish();
      return;
    }
    // The handler did not read the whole body: the rest is read and dropped.
    this.#dropBody(ex, "the response was sent");
    this.#updateReading();
  }

  /** The request and its response are complete: read the next request. */
  #finish(): void {
    this.#exchange = undefined;
    // The exact time (the server's clock is coarse): the idle timeout never fires early.
    this.#idleAt = Date.now();
    this.#server.counters.httpIdle++;
    this.#run();
  }

  /** Writes a refusal of the server's own and closes; returns EMPTY (no bytes are read on). */
  #refuse(refusal: HandshakeRefusal, headOnly = false): Uint8Array {
    if (this.#closing) return EMPTY;
    const ex = this.#exchange;
    if (ex !== undefined) ex.failed = true;
    this.#server.counters.httpResponse(refusal.status);
    const body = encoder.encode(refusal.message);
    const head = responseHeadText(
      refusal.status,
      [["content-type", "text/plain; charset=utf-8"], ...refusal.headers],
      { date: httpDate(), framing: body.length, connection: "close" },
    );
    // A response to HEAD has no body (RFC 9110 §9.3.2).
    this.#writeResponse(head, headOnly ? undefined : body);
    this.#close();
    return EMPTY;
  }

  /**
   * Writes a head (latin1 text) and the small body that follows it as one chunk, put together
   * in SCRATCH when the head is ASCII (as heads almost always are: UTF-8 is latin1 there).
   */
  #writeResponse(head: string, body: Uint8Array | undefined): void {
    const bodyLength = body === undefined ? 0 : body.length;
    const total = head.length + bodyLength;
    if (total <= SCRATCH.length) {
      const { read, written } = encoder.encodeInto(head, SCRATCH);
      if (read === head.length && written === head.length) {
        if (body !== undefined) SCRATCH.set(body, written);
        this.#write(SCRATCH.subarray(0, total), true);
        return;
      }
    }
    const bytes = latin1Bytes(head, bodyLength);
    if (body !== undefined) bytes.set(body, head.length);
    this.#write(bytes);
  }

  /** Writes bytes: `reusable` if their memory is used again after the call (SCRATCH). */
  #write(bytes: Uint8Array, reusable = false): void {
    this.#server.counters.httpBytesOut += bytes.length;
    this.transport.write(bytes, reusable);
  }

  /** Sends FIN after what is queued and reads no more requests; the peer has the close timeout. */
  #close(): void {
    if (this.#closing || this.#gone) return;
    this.#closing = true;
    this.#input = [];
    this.#inputBytes = 0;
    if (this.#paused) {
      // Read on, so the peer's FIN is seen (the transport drops what comes after ours).
      this.#paused = false;
      this.transport.resume();
    }
    this.transport.end();
    this.#timer = setTimeout(() => this.terminate(), this.#options.closeTimeout);
  }
}

/** A body chunk must be bytes, as the Fetch standard requires of a response body stream. */
function checkChunk(chunk: unknown): Uint8Array {
  if (chunk instanceof Uint8Array) return chunk;
  throw new TypeError(
    "The response body stream gave a chunk that is not a Uint8Array: enqueue bytes " +
      "(new TextEncoder().encode(text) for text)",
  );
}
