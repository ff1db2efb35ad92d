/**
 * The request the upgrade hook sees.
 *
 * @module
 */
import type { RequestHead, UpgradeRequestInfo } from "../protocol/handshake.ts";

/**
 * A valid WebSocket upgrade request, as the upgrade hook sees it: a standard `Request` (the
 * type `fetch` gets: `url` a string, `method`, `headers`), with what a WebSocket upgrade adds —
 * the offered subprotocols, the Origin, the parsed URL's parts and the client's address.
 *
 * @example
 * ```ts
 * import { serve } from "@sluice/ws";
 * const server = serve({
 *   port: 0,
 *   upgrade(request) {
 *     console.log(request instanceof Request); // true
 *     if (request.searchParams.get("token") !== "secret") {
 *       return new Response("Unauthorized", { status: 401 });
 *     }
 *     return { data: { user: "ann" } };
 *   },
 * });
 * await server.shutdown();
 * ```
 */
export class UpgradeRequest extends Request {
  #head: RequestHead;
  #info: UpgradeRequestInfo;
  #url: URL;
  /**
   * The client's IP address: the TCP peer's, or with `trustProxy`, the address the trusted
   * proxies forwarded for.
   */
  readonly remoteAddress: string;
  /** The TCP peer's port. */
  readonly remotePort: number;
  /** The TCP peer's IP address (a proxy's, behind one). */
  readonly peerAddress: string;

  /**
   * Made by the server for each upgrade request.
   *
   * Not public API: its parameters are internal types. The server makes it.
   *
   * @param head The parsed request head.
   * @param info What the handshake checks found.
   * @param remote The client's address, the TCP peer's port, the TCP peer's address, and
   * whether the connection is TLS (for the scheme of `url`).
   * @throws {TypeError} If the Host header and the target make no valid URL.
   *
   * @ignore
   */
  constructor(
    head: RequestHead,
    info: UpgradeRequestInfo,
    remote: { address: string; port: number; peerAddress?: string; secure?: boolean },
  ) {
    const url = new URL(head.target, `${remote.secure ? "https" : "http"}://${info.host}`);
    // The header pairs as they came: the Request makes its Headers from them. The method is
    // GET, the Request's default (the upgrade checks refuse any other).
    super(url.href, { headers: head.headers });
    this.#head = head;
    this.#info = info;
    this.#url = url;
    this.remoteAddress = remote.address;
    this.remotePort = remote.port;
    this.peerAddress = remote.peerAddress ?? remote.address;
  }

  /** The request target as sent, such as `/chat?room=1`. */
  get target(): string {
    return this.#head.target;
  }

  /** The path of `url`, such as `/chat`. */
  get pathname(): string {
    return this.#url.pathname;
  }

  /** The query of `url`, parsed. */
  get searchParams(): URLSearchParams {
    return this.#url.searchParams;
  }

  /** The Origin header, if any (browsers always send it; other clients may send anything). */
  get origin(): string | undefined {
    return this.#info.origin;
  }

  /** The subprotocols the client offered, in its order of preference. */
  get protocols(): string[] {
    return this.#info.protocols;
  }
}
