/**
 * The server's answer to an upgrade request it refuses: one HTTP response (a status from the
 * checks, or the upgrade hook's `Response`), then the connection closes. The handshake phase
 * hands the transport over to it. Plain HTTP requests are the {@linkcode HttpConnection}'s.
 *
 * @module
 */
import { reportError } from "../core/_checks.ts";
import type { Transport, TransportHandler } from "../core/transport.ts";
import { type HandshakeRefusal, httpResponse, refusalResponse } from "../protocol/handshake.ts";
import { readResponse, responseHeaders } from "./response_headers.ts";
import type { ResolvedOptions, ServerCore } from "./server_core.ts";

/** A connection that gets one HTTP response and closes. */
export class HttpResponder<T> implements TransportHandler {
  readonly transport: Transport;
  #server: ServerCore<T>;
  #options: ResolvedOptions<T>;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #gone = false;

  /**
   * Takes over a connection whose request was read and refused.
   *
   * @param server The server.
   * @param transport The socket.
   */
  constructor(server: ServerCore<T>, transport: Transport) {
    this.#server = server;
    this.#options = server.options;
    this.transport = transport;
  }

  /** Never in the opening handshake (see `ServerStats.handshaking`). */
  get handshaking(): boolean {
    return false;
  }

  /** Nothing to time: the linger after the response has its own timer. */
  sweep(): void {}

  /** Closes the connection now. */
  terminate(): void {
    this.transport.destroy();
  }

  // TransportHandler

  /** @internal */
  onData(): void {
    // Bytes after the refused request are ignored.
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
   * Writes a short response built from a refusal (a status and a text body), then closes.
   *
   * @param refusal The status, the message and extra headers.
   */
  refuse(refusal: HandshakeRefusal): void {
    this.#server.refused(refusal.status);
    this.transport.write(refusalResponse(refusal), false);
    this.transport.end();
    this.#startTimer();
  }

  /**
   * Writes a `Response` (its body read whole), then closes. It was counted when it was
   * decided.
   *
   * @param response The response.
   */
  respond(response: Response): void {
    readResponse(response).then(
      ({ body, type }) => {
        if (this.#gone) return;
        let bytes: Uint8Array;
        try {
          bytes = httpResponse(
            response.status,
            responseHeaders(response.headers, type, body),
            body,
          );
        } catch (error) {
          this.#failed(error);
          return;
        }
        this.transport.write(bytes, false);
        this.transport.end();
        this.#startTimer();
      },
      (error) => {
        if (!this.#gone) this.#failed(error);
      },
    );
  }

  #failed(error: unknown): void {
    reportError(this.#options.error, error);
    this.transport.write(
      refusalResponse({ status: 500, message: "Internal Server Error", headers: [] }),
      false,
    );
    this.transport.end();
    this.#startTimer();
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
