/**
 * A new TCP connection on the server, until its request is read and decided: an accepted
 * upgrade goes to a {@linkcode ServerConnection}, a plain HTTP request to an
 * {@linkcode HttpConnection}, a refusal to an {@linkcode HttpResponder}. The transport changes
 * hands there. A plain HTTP connection hands an upgrade request back to a new handshake phase.
 *
 * @module
 */
import { reportError } from "../core/_checks.ts";
import type { Transport, TransportHandler } from "../core/transport.ts";
import {
  type DeflateAgreement,
  negotiateDeflate,
} from "../protocol/extensions/deflate_negotiation.ts";
import { parseExtensions } from "../protocol/extensions/extension_header.ts";
import { PerMessageDeflate } from "../protocol/extensions/permessage_deflate.ts";
import {
  acceptResponse,
  type AcceptResponseOptions,
  type HandshakeRefusal,
  isRefusal,
  type RequestHead,
  RequestHeadParser,
  type UpgradeRequestInfo,
  validateUpgradeRequest,
} from "../protocol/handshake.ts";
import { checkUpgradeResult, isThenable, type UpgradeDecision } from "./_hook_result.ts";
import { clientAddress } from "./forwarded.ts";
import { HttpConnection, isPlainRequest } from "./http_connection.ts";
import { HttpResponder } from "./http_responder.ts";
import { ServerConnection } from "./server_connection.ts";
import type { ResolvedOptions, ServerCore } from "./server_core.ts";
import { UpgradeRequest } from "./upgrade_request.ts";
import { ServerWebSocket } from "./websocket.ts";

/** Bytes a client may send ahead while the upgrade hook runs before reading pauses. */
const PENDING_LIMIT = 64 * 1024;

/** One accepted TCP connection in its opening handshake. */
export class HandshakePhase<T> implements TransportHandler {
  readonly transport: Transport;
  #server: ServerCore<T>;
  #options: ResolvedOptions<T>;
  #head: RequestHeadParser | undefined;
  /** Bytes that arrived behind the request head while the upgrade hook ran. */
  #pending: Uint8Array[] | undefined;
  #pendingBytes = 0;
  /** Reading is paused: the bytes sent ahead of the hook's answer passed `PENDING_LIMIT`. */
  #held = false;
  /** permessage-deflate as negotiated, if it was. */
  #deflate: DeflateAgreement | undefined;
  /** Over the server's connection limit: the request gets 503. */
  #overLimit: boolean;
  /** When the connection came, on the server's clock. */
  #acceptedAt: number;
  /** The client's address: the TCP peer's, or the one trusted proxies forwarded for. */
  #address: string;
  #ended = false;
  #gone = false;
  #timer: ReturnType<typeof setTimeout> | undefined;

  /**
   * Starts reading a new connection's request.
   *
   * @param server The server it belongs to.
   * @param transport Its socket.
   * @param overLimit The server is at its connection limit: refuse with 503.
   */
  constructor(server: ServerCore<T>, transport: Transport, overLimit = false) {
    this.#server = server;
    this.#options = server.options;
    this.transport = transport;
    this.#head = new RequestHeadParser(server.options);
    this.#overLimit = overLimit;
    this.#acceptedAt = server.now;
    this.#address = transport.remoteAddress;
  }

  /**
   * Reading the request head, or an upgrade request waiting for the upgrade hook (see
   * `ServerStats.handshaking`).
   */
  get handshaking(): boolean {
    return this.#head !== undefined || this.#pending !== undefined;
  }

  /**
   * Drops the connection once the handshake timeout has passed.
   *
   * @param now The server's clock.
   */
  sweep(now: number): void {
    const timeout = this.#options.handshakeTimeout;
    if (timeout !== 0 && now - this.#acceptedAt > timeout && this.handshaking) {
      this.#server.refused(408);
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
    } else if (this.#pending !== undefined) {
      // The upgrade hook is running: hold the bytes; past the limit, hold them back in TCP.
      this.#pending.push(chunk);
      this.#pendingBytes += chunk.length;
      if (this.#pendingBytes > PENDING_LIMIT && !this.#held) {
        this.#held = true;
        this.transport.pause();
      }
    }
  }

  /** @internal */
  onDrain(): void {}

  /** @internal */
  onBelow(): void {}

  /** @internal */
  onEnd(): void {
    // The client left (mid-request, or while the upgrade hook runs: its answer is not acted
    // on). Close our side, and give it the close timeout to go.
    this.#ended = true;
    this.#head = undefined;
    this.transport.end();
    this.#timer = setTimeout(() => this.terminate(), this.#options.closeTimeout);
  }

  /** @internal */
  onClose(): void {
    if (this.#gone) return;
    this.#gone = true;
    clearTimeout(this.#timer);
    this.#server.untrack(this);
  }

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
    if (
      (options.fetch !== undefined || options.metricsPath !== undefined) &&
      isPlainRequest(options, head)
    ) {
      this.#serveHttp(parser);
      return;
    }
    this.#handshake(head, parser.rest);
  }

  /**
   * Takes over a plain HTTP connection whose next request is an upgrade request (or one only
   * the upgrade checks answer), its head already read.
   *
   * @param head The request head.
   * @param rest The bytes that came after it.
   */
  takeHead(head: RequestHead, rest: Uint8Array): void {
    this.#head = undefined;
    this.#handshake(head, rest);
  }

  /** Checks an upgrade request, then asks the upgrade hook. */
  #handshake(head: RequestHead, rest: Uint8Array): void {
    const options = this.#options;
    if (options.trustedProxy !== undefined) {
      this.#address = clientAddress(this.#address, head.headers, options.trustedProxy);
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
    const deflate = options.deflate;
    if (deflate !== undefined && info.extensions !== "") {
      const offers = parseExtensions(info.extensions);
      if (typeof offers === "string") {
        this.#refuse({ status: 400, message: offers, headers: [] });
        return;
      }
      this.#deflate = negotiateDeflate(offers, deflate.negotiation);
    }
    this.#pending = rest.length === 0 ? [] : [rest];
    const hook = options.upgrade;
    if (hook === undefined) {
      this.#accept(info, undefined);
      return;
    }
    let request: UpgradeRequest;
    try {
      request = new UpgradeRequest(head, info, {
        address: this.#address,
        port: this.transport.remotePort,
        peerAddress: this.transport.remoteAddress,
        secure: options.cert !== undefined,
      });
    } catch {
      // A Host the URL parser refuses: the hook would get no URL.
      this.#refuse({ status: 400, message: "Bad request: invalid Host or target", headers: [] });
      return;
    }
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
          // The client left meanwhile: nothing to do, nothing to raise.
          if (this.#gone || this.#ended) return;
          this.#decide(info, value);
        },
        (error) => {
          if (this.#gone || this.#ended) return;
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
      this.#server.refused(decision.status);
      this.#respondWith().respond(decision);
      return;
    }
    this.#accept(info, decision);
  }

  #accept(info: UpgradeRequestInfo, accept: Exclude<UpgradeDecision, Response>): void {
    const options = this.#options;
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
      protocol = options.protocols.length === 0
        ? undefined
        : info.protocols.find((offered) => options.protocols.includes(offered));
    }
    const agreement = this.#deflate;
    let response: Uint8Array;
    try {
      response = acceptResponse(info.key, {
        protocol,
        extensions: agreement?.response,
        // Checked by acceptResponse: a TypeError for anything but headers.
        headers: accept?.headers as AcceptResponseOptions["headers"],
      });
    } catch (error) {
      this.#hookFailed(error);
      return;
    }
    const setup = options.deflate;
    const transport = this.transport;
    const connection = new ServerConnection<T>(
      this.#server,
      transport,
      agreement === undefined || setup === undefined ? undefined : new PerMessageDeflate(
        setup.engine,
        agreement.params,
        setup.threshold,
        setup.tuning,
      ),
    );
    connection.writeHead(response);
    const ws = new ServerWebSocket<T>(connection, {
      protocol: protocol ?? "",
      extensions: agreement?.response ?? "",
      remoteAddress: this.#address,
      remotePort: transport.remotePort,
    }, accept?.data as T);
    const pending = this.#pending!;
    this.#pending = undefined;
    clearTimeout(this.#timer);
    transport.setHandler(connection);
    this.#server.handOver(this, connection);
    // Read again before `open` runs, so that a ws.pause() there holds.
    if (this.#held) transport.resume();
    connection.start(ws, pending, () => this.#server.opened(connection));
  }

  /** Hands the connection to the plain HTTP side, its first request read. */
  #serveHttp(parser: RequestHeadParser): void {
    this.#pending = undefined;
    clearTimeout(this.#timer);
    const http = new HttpConnection<T>(this.#server, this.transport);
    this.transport.setHandler(http);
    this.#server.handOver(this, http);
    http.serve(parser);
  }

  /** Hands the connection to a responder for one HTTP response (a refusal). */
  #respondWith(): HttpResponder<T> {
    this.#pending = undefined; // No longer in the handshake: later bytes are ignored.
    clearTimeout(this.#timer);
    const responder = new HttpResponder<T>(this.#server, this.transport);
    this.transport.setHandler(responder);
    this.#server.handOver(this, responder);
    return responder;
  }

  #refuse(refusal: HandshakeRefusal): void {
    this.#respondWith().refuse(refusal);
  }

  #hookFailed(error: unknown): void {
    reportError(this.#options.error, error);
    this.#refuse({ status: 500, message: "Internal Server Error", headers: [] });
  }
}
