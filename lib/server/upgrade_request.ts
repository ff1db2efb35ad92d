/**
 * The request the upgrade hook sees.
 *
 * @module
 */
import type { RequestHead, UpgradeRequestInfo } from "../protocol/handshake.ts";

/**
 * A valid WebSocket upgrade request, as the upgrade hook sees it.
 *
 * @example
 * ```ts
 * import { serve } from "@sluice/ws";
 * const server = serve({
 *   port: 0,
 *   upgrade(request) {
 *     if (request.searchParams.get("token") !== "secret") {
 *       return new Response("Unauthorized", { status: 401 });
 *     }
 *     return { data: { user: "ann" } };
 *   },
 * });
 * await server.shutdown();
 * ```
 */
export class UpgradeRequest {
  #head: RequestHead;
  #info: UpgradeRequestInfo;
  #headers: Headers | undefined;
  #url: URL | undefined;
  #secure: boolean;
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
   *
   * @ignore
   */
  constructor(
    head: RequestHead,
    info: UpgradeRequestInfo,
    remote: { address: string; port: number; peerAddress?: string; secure?: boolean },
  ) {
    this.#head = head;
    this.#info = info;
    this.#secure = remote.secure ?? false;
    this.remoteAddress = remote.address;
    this.remotePort = remote.port;
    this.peerAddress = remote.peerAddress ?? remote.address;
  }

  /** `"GET"`: an upgrade request is always a GET. */
  get method(): string {
    return this.#head.method;
  }

  /** The request target as sent, such as `/chat?room=1`. */
  get target(): string {
    return this.#head.target;
  }

  /**
   * The request URL as a string, resolved against the Host header, with the scheme `fetch`'s
   * `request.url` has: `http://host/chat?room=1`, or `https://` over TLS. `pathname` and
   * `searchParams` are its parts, parsed once.
   */
  get url(): string {
    return this.#parsed().href;
  }

  /** The path of {@linkcode UpgradeRequest.url}, such as `/chat`. */
  get pathname(): string {
    return this.#parsed().pathname;
  }

  /** The query of {@linkcode UpgradeRequest.url}, parsed. */
  get searchParams(): URLSearchParams {
    return this.#parsed().searchParams;
  }

  #parsed(): URL {
    return this.#url ??= new URL(
      this.#head.target,
      `${this.#secure ? "https" : "http"}://${this.#info.host}`,
    );
  }

  /** The request headers. */
  get headers(): Headers {
    if (this.#headers === undefined) {
      const headers = new Headers();
      for (const [name, value] of this.#head.headers) headers.append(name, value);
      this.#headers = headers;
    }
    return this.#headers;
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
