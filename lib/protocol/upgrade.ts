/**
 * The WebSocket opening handshake of RFC 6455 §4, both roles, sans-I/O. The server's side:
 * the checks of a request head (§4.2.1), the Sec-WebSocket-Accept key, and the bytes of the
 * 101 response or of a refusal. The client's side: the bytes of the upgrade request (§4.1)
 * with a fresh Sec-WebSocket-Key, and {@linkcode ClientHandshake}, which reads the server's
 * response and checks it (status 101, the upgrade headers, the accept key, a subprotocol and
 * extensions only from those offered, permessage-deflate per RFC 7692 §7.1).
 *
 * The heads themselves are read and written by `./http1.ts`. Nothing here touches a socket, a
 * timer or a runtime global: bytes in, a result or an error out.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { type ErrorCode, HandshakeError } from "./errors.ts";
import {
  checkDeflateResponse,
  type DeflateAgreement,
  type DeflateNegotiationOptions,
  deflateOffer,
} from "./extensions/deflate_negotiation.ts";
import { type ExtensionOffer, parseExtensions } from "./extensions/extension_header.ts";
import {
  checkHeaderName,
  checkHeaderValue,
  type HandshakeRefusal,
  headerLines,
  headerPairs,
  type HeadLimits,
  httpResponse,
  latin1Bytes,
  type RequestHead,
  type ResponseHead,
  ResponseHeadParser,
} from "./http1.ts";
import { TCHAR } from "./_http_token.ts";

const HTAB = 0x09;
const SP = 0x20;

/** Base64 alphabet (RFC 4648 §4): 1 for each of its 64 characters. */
const BASE64 = new Uint8Array(128);
for (const c of "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/") {
  BASE64[c.charCodeAt(0)] = 1;
}

const ENCODER = new TextEncoder();
/** What the writers name in their TypeError messages. */
const RESPONSE = "the response";
const REQUEST = "the request";

// ---------------------------------------------------------------------------------------------
// The server's side: validation

/** What a valid upgrade request asks for. */
export interface UpgradeRequestInfo {
  /** The Sec-WebSocket-Key value. */
  key: string;
  /** The Host value. */
  host: string;
  /** The Origin value, `undefined` if absent. */
  origin: string | undefined;
  /** Sec-WebSocket-Protocol tokens in offered order (all such headers combined). */
  protocols: string[];
  /** All Sec-WebSocket-Extensions values joined with `", "` (`""` if none). */
  extensions: string;
}

function refusal(
  status: number,
  message: string,
  headers: Array<[string, string]> = [],
): HandshakeRefusal {
  return { status, message, headers };
}

function isOws(c: number): boolean {
  return c === SP || c === HTAB;
}

/**
 * Whether the comma-separated list `value` (RFC 9110 §5.6.1) has an item equal to `token`
 * (lower-case letters only) ignoring case.
 */
function listHas(value: string, token: string): boolean {
  const length = token.length;
  let start = 0;
  while (start <= value.length) {
    let end = value.indexOf(",", start);
    if (end < 0) end = value.length;
    let s = start;
    let e = end;
    while (s < e && isOws(value.charCodeAt(s))) s++;
    while (e > s && isOws(value.charCodeAt(e - 1))) e--;
    if (e - s === length) {
      let i = 0;
      // `| 0x20` lower-cases an ASCII letter; a non-letter cannot become one of token's letters.
      while (i < length && (value.charCodeAt(s + i) | 0x20) === token.charCodeAt(i)) i++;
      if (i === length) return true;
    }
    start = end + 1;
  }
  return false;
}

/**
 * Adds the items of one Sec-WebSocket-Protocol value to `protocols`; returns a refusal message
 * if one is empty, not a token, or offered twice.
 */
function addProtocols(value: string, protocols: string[]): string | undefined {
  let start = 0;
  while (start <= value.length) {
    let end = value.indexOf(",", start);
    if (end < 0) end = value.length;
    let s = start;
    let e = end;
    while (s < e && isOws(value.charCodeAt(s))) s++;
    while (e > s && isOws(value.charCodeAt(e - 1))) e--;
    if (s === e) return "Invalid Sec-WebSocket-Protocol header: an empty item";
    for (let i = s; i < e; i++) {
      const c = value.charCodeAt(i);
      if (c > 0x7f || TCHAR[c] === 0) {
        return "Invalid Sec-WebSocket-Protocol header: an item that is not a token";
      }
    }
    const protocol = value.substring(s, e);
    // RFC 6455 §4.1: the offered subprotocols MUST all be unique.
    if (protocols.includes(protocol)) {
      return "Invalid Sec-WebSocket-Protocol header: a subprotocol offered twice";
    }
    protocols.push(protocol);
    start = end + 1;
  }
  return undefined;
}

/** RFC 6455 §4.1: 16 random bytes in base64 are 22 characters and "==". */
function isValidKey(key: string): boolean {
  if (key.length !== 24 || key.charCodeAt(22) !== 0x3d || key.charCodeAt(23) !== 0x3d) {
    return false;
  }
  for (let i = 0; i < 22; i++) {
    const c = key.charCodeAt(i);
    if (c > 0x7f || BASE64[c] === 0) return false;
  }
  return true;
}

/**
 * Checks a parsed head against the server requirements of RFC 6455 §4.2.1.
 *
 * @param head The head from {@linkcode RequestHeadParser}.
 * @returns What the request asks for, or the refusal to send (405 for a method other than GET,
 * 426 for a request without Upgrade or with a Sec-WebSocket-Version other than 13, else 400).
 *
 * @example
 * ```ts
 * import { isRefusal, validateUpgradeRequest } from "./upgrade.ts";
 * const result = validateUpgradeRequest({
 *   method: "GET",
 *   target: "/chat",
 *   version: "HTTP/1.1",
 *   headers: [
 *     ["host", "example.com"],
 *     ["upgrade", "websocket"],
 *     ["connection", "Upgrade"],
 *     ["sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="],
 *     ["sec-websocket-version", "13"],
 *   ],
 * });
 * console.log(isRefusal(result) ? result.status : result.key); // dGhlIHNhbXBsZSBub25jZQ==
 * ```
 */
export function validateUpgradeRequest(head: RequestHead): UpgradeRequestInfo | HandshakeRefusal {
  if (head.method !== "GET") {
    return refusal(405, "Method not allowed: a WebSocket handshake uses GET", [["Allow", "GET"]]);
  }
  if (head.version !== "HTTP/1.1") {
    return refusal(400, "HTTP/1.1 or later is required for a WebSocket handshake");
  }
  let host: string | undefined;
  let hosts = 0;
  let upgrades = 0;
  let upgradeWebSocket = false;
  let connectionUpgrade = false;
  let version: string | undefined;
  let versions = 0;
  let key: string | undefined;
  let keys = 0;
  let origin: string | undefined;
  let origins = 0;
  const protocols: string[] = [];
  let protocolError: string | undefined;
  let extensions = "";
  const headers = head.headers;
  for (let i = 0; i < headers.length; i++) {
    const value = headers[i][1];
    switch (headers[i][0]) {
      case "host":
        host = value;
        hosts++;
        break;
      case "upgrade":
        upgrades++;
        if (!upgradeWebSocket) upgradeWebSocket = listHas(value, "websocket");
        break;
      case "connection":
        if (!connectionUpgrade) connectionUpgrade = listHas(value, "upgrade");
        break;
      case "sec-websocket-version":
        version = value;
        versions++;
        break;
      case "sec-websocket-key":
        key = value;
        keys++;
        break;
      case "origin":
        origin = value;
        origins++;
        break;
      case "sec-websocket-protocol":
        if (protocolError === undefined) protocolError = addProtocols(value, protocols);
        break;
      case "sec-websocket-extensions":
        extensions = extensions === "" ? value : `${extensions}, ${value}`;
        break;
    }
  }
  // RFC 9112 §3.2: a request without Host, or with more than one, gets a 400.
  if (hosts === 0) return refusal(400, "Bad request: the Host header is missing");
  if (hosts > 1) return refusal(400, "Bad request: more than one Host header");
  if (upgrades === 0) {
    // RFC 9110 §15.5.22: a 426 MUST say which protocol to upgrade to.
    return refusal(426, "This service requires a WebSocket upgrade", [
      ["Upgrade", "websocket"],
      ["Sec-WebSocket-Version", "13"],
    ]);
  }
  if (!upgradeWebSocket) {
    return refusal(400, 'Bad request: the Upgrade header does not include "websocket"');
  }
  if (!connectionUpgrade) {
    return refusal(400, 'Bad request: the Connection header does not include "Upgrade"');
  }
  // RFC 6455 §4.4: an unsupported version gets a 426 naming the versions the server speaks.
  if (versions !== 1 || version !== "13") {
    return refusal(
      426,
      versions === 0
        ? "The Sec-WebSocket-Version header is missing: version 13 is required"
        : "Unsupported Sec-WebSocket-Version: version 13 is required",
      [["Sec-WebSocket-Version", "13"]],
    );
  }
  if (keys === 0) return refusal(400, "Bad request: the Sec-WebSocket-Key header is missing");
  if (keys > 1) return refusal(400, "Bad request: more than one Sec-WebSocket-Key header");
  if (!isValidKey(key!)) {
    return refusal(400, "Bad request: Sec-WebSocket-Key is not 16 bytes in base64");
  }
  if (protocolError !== undefined) return refusal(400, `Bad request: ${protocolError}`);
  if (origins > 1) return refusal(400, "Bad request: more than one Origin header");
  return { key: key!, host: host!, origin, protocols, extensions };
}

/**
 * Tells the two results of {@linkcode validateUpgradeRequest} apart.
 *
 * @param x A result of {@linkcode validateUpgradeRequest}.
 * @returns `true` if it is a refusal.
 *
 * @example
 * ```ts
 * import { isRefusal, validateUpgradeRequest } from "./upgrade.ts";
 * const result = validateUpgradeRequest({
 *   method: "POST",
 *   target: "/",
 *   version: "HTTP/1.1",
 *   headers: [],
 * });
 * console.log(isRefusal(result)); // true
 * ```
 */
export function isRefusal(x: UpgradeRequestInfo | HandshakeRefusal): x is HandshakeRefusal {
  return typeof (x as HandshakeRefusal).status === "number";
}

// ---------------------------------------------------------------------------------------------
// The server's side: responses

/** RFC 6455 §1.3: the GUID appended to the key before hashing. */
const GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/** Interim (1xx) responses a client skips before the final one, at most. */
const MAX_INTERIM = 16;

/**
 * The Sec-WebSocket-Accept value for a key (RFC 6455 §4.2.2):
 * base64(SHA-1(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11")).
 *
 * @param key The Sec-WebSocket-Key the client sent.
 * @returns The value of the Sec-WebSocket-Accept header.
 *
 * @example
 * ```ts
 * import { acceptKey } from "./upgrade.ts";
 * console.log(acceptKey("dGhlIHNhbXBsZSBub25jZQ==")); // s3pPLMBiTxaQ9kYGzzhZRbK+xOo=
 * ```
 */
export function acceptKey(key: string): string {
  // node:crypto is synchronous, and faster than crypto.subtle in both runtimes (FACTS.md).
  return createHash("sha1").update(key + GUID).digest("base64");
}

/**
 * Options of {@linkcode acceptResponse}.
 *
 * @example
 * ```ts
 * import { acceptResponse } from "./upgrade.ts";
 * acceptResponse("dGhlIHNhbXBsZSBub25jZQ==", { protocol: "chat", headers: { "X-Id": "1" } });
 * ```
 */
export interface AcceptResponseOptions {
  /**
   * The subprotocol chosen from those offered, sent as Sec-WebSocket-Protocol.
   *
   * @default {undefined}
   */
  protocol?: string;
  /**
   * The negotiated extensions, sent as Sec-WebSocket-Extensions.
   *
   * @default {undefined}
   */
  extensions?: string;
  /**
   * More headers to send, in order: a `Headers`, `[name, value]` pairs or a record, as `fetch`
   * takes them. None may be one the handshake sets itself ({@linkcode HANDSHAKE_HEADERS}).
   *
   * @default {undefined}
   */
  headers?: Headers | Array<[string, string]> | Record<string, string>;
}

/**
 * Headers a 101 response gets from the handshake alone, lower-cased: extra headers may not set
 * them. RFC 6455 §4.2.2 fixes `Upgrade`, `Connection` and `Sec-WebSocket-Accept`; the
 * subprotocol and extensions come from negotiation (a second value would be a different
 * answer); and a 101 has no body to frame (RFC 9110 §8.6, RFC 9112 §6.1).
 */
export const HANDSHAKE_HEADERS: ReadonlySet<string> = new Set([
  "upgrade",
  "connection",
  "sec-websocket-accept",
  "sec-websocket-protocol",
  "sec-websocket-extensions",
  "content-length",
  "transfer-encoding",
]);

/**
 * The bytes of the 101 response that accepts a handshake (RFC 6455 §4.2.2), in latin1.
 *
 * @param key The Sec-WebSocket-Key the client sent.
 * @param options The subprotocol, extensions and extra headers to send.
 * @returns The response head, ending with an empty line.
 * @throws {TypeError} If the extra headers are not headers, set one of
 * {@linkcode HANDSHAKE_HEADERS}, or have a name that is not a token or a value that holds CR, LF,
 * NUL or a character above U+00FF.
 *
 * @example
 * ```ts
 * import { acceptResponse } from "./upgrade.ts";
 * const bytes = acceptResponse("dGhlIHNhbXBsZSBub25jZQ==", { protocol: "chat" });
 * console.log(new TextDecoder().decode(bytes).split("\r\n")[0]); // HTTP/1.1 101 Switching Protocols
 * ```
 */
export function acceptResponse(key: string, options?: AcceptResponseOptions): Uint8Array {
  let text = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
    `Sec-WebSocket-Accept: ${acceptKey(key)}\r\n`;
  if (options !== undefined) {
    const { protocol, extensions, headers } = options;
    if (protocol !== undefined) {
      checkHeaderValue("Sec-WebSocket-Protocol", protocol, RESPONSE);
      text += `Sec-WebSocket-Protocol: ${protocol}\r\n`;
    }
    if (extensions !== undefined) {
      checkHeaderValue("Sec-WebSocket-Extensions", extensions, RESPONSE);
      text += `Sec-WebSocket-Extensions: ${extensions}\r\n`;
    }
    if (headers !== undefined) {
      const pairs = headerPairs(headers);
      for (const [name] of pairs) {
        if (HANDSHAKE_HEADERS.has(name.toLowerCase())) {
          throw new TypeError(
            `Cannot write the response: the handshake sets ${name} itself${
              name.toLowerCase() === "sec-websocket-protocol"
                ? " (to choose a subprotocol, accept with { protocol })"
                : ""
            }`,
          );
        }
      }
      text += headerLines(pairs, RESPONSE);
    }
  }
  return latin1Bytes(text + "\r\n", 0);
}

/**
 * The bytes of an error response for a refused handshake: `HTTP/1.1 <status> <reason>`,
 * `Connection: close`, `Content-Type: text/plain; charset=utf-8`, `Content-Length`, the
 * refusal's headers, then the message as the UTF-8 body.
 *
 * @param refusal The refusal, e.g. from {@linkcode validateUpgradeRequest}.
 * @returns The whole response.
 * @throws {TypeError} If a header name is not a token, or a value holds CR, LF, NUL or a
 * character above U+00FF.
 * @throws {RangeError} If the status is not an integer from 100 to 599.
 *
 * @example
 * ```ts
 * import { refusalResponse } from "./upgrade.ts";
 * const bytes = refusalResponse({ status: 400, message: "Bad request", headers: [] });
 * console.log(new TextDecoder().decode(bytes).split("\r\n")[0]); // HTTP/1.1 400 Bad Request
 * ```
 */
export function refusalResponse(refusal: HandshakeRefusal): Uint8Array {
  return httpResponse(refusal.status, [
    ["Content-Type", "text/plain; charset=utf-8"],
    ...refusal.headers,
  ], ENCODER.encode(refusal.message));
}

// ---------------------------------------------------------------------------------------------
// The client's side: the request

/**
 * Options of {@linkcode handshakeRequest}.
 *
 * @example
 * ```ts
 * import { handshakeRequest } from "./upgrade.ts";
 * handshakeRequest("ws://example.com/chat", {
 *   protocols: ["chat.v2", "chat.v1"],
 *   headers: { Authorization: "Bearer abc" },
 * });
 * ```
 */
export interface HandshakeRequestOptions {
  /**
   * The subprotocols to offer in Sec-WebSocket-Protocol, in order of preference: unique
   * tokens (RFC 6455 §4.1).
   *
   * @default {[]}
   */
  protocols?: string[];
  /**
   * The extensions to offer: a Sec-WebSocket-Extensions value (RFC 6455 §9.1), sent as given.
   *
   * @default {""}
   */
  extensions?: string;
  /**
   * More headers to send, in order, such as `Authorization`, `Origin` or `Cookie`. The headers
   * the handshake writes itself (Host, Upgrade, Connection and the Sec-WebSocket-* ones) are
   * refused.
   *
   * @default {undefined}
   */
  headers?: Headers | Array<[string, string]> | Record<string, string>;
}

/** An upgrade request, as {@linkcode handshakeRequest} writes it. */
export interface HandshakeRequest {
  /** The request head, ending with an empty line, in latin1. */
  bytes: Uint8Array;
  /** The Sec-WebSocket-Key sent: 16 random bytes in base64. */
  key: string;
}

/** The header names the handshake writes itself, lower-cased. */
const OWNED = new Set([
  "host",
  "upgrade",
  "connection",
  "sec-websocket-key",
  "sec-websocket-version",
  "sec-websocket-protocol",
  "sec-websocket-extensions",
]);

/** 16 bytes from a cryptographically secure source, in base64 (RFC 6455 §4.1). */
function randomKey(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  let text = "";
  for (let i = 0; i < 16; i++) text += String.fromCharCode(bytes[i]);
  return btoa(text);
}

function isToken(text: string): boolean {
  if (text.length === 0) return false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c > 0x7f || TCHAR[c] === 0) return false;
  }
  return true;
}

/**
 * The URL of a WebSocket endpoint, checked: `ws:` or `wss:` (or `http:` and `https:`, which
 * the WHATWG WebSocket also takes for them), without a fragment (RFC 6455 §3).
 */
function endpoint(url: string | URL): URL {
  const parsed = typeof url === "string" ? new URL(url) : url;
  const scheme = parsed.protocol;
  if (scheme !== "ws:" && scheme !== "wss:" && scheme !== "http:" && scheme !== "https:") {
    throw new TypeError(
      `Cannot write the request: the URL's scheme must be ws: or wss:, not ${scheme}`,
    );
  }
  if (parsed.hash !== "") {
    throw new TypeError("Cannot write the request: a WebSocket URL has no fragment");
  }
  return parsed;
}

/**
 * Writes the client's opening handshake (RFC 6455 §4.1): `GET` of the URL's path and query,
 * `Host` (with the port when it is not the scheme's default), `Upgrade: websocket`,
 * `Connection: Upgrade`, a fresh `Sec-WebSocket-Key` (16 bytes from `crypto.getRandomValues`),
 * `Sec-WebSocket-Version: 13`, the subprotocols and extensions offered, then the extra
 * headers. A user name and password in the URL are not sent.
 *
 * @param url The endpoint: `ws:`, `wss:`, `http:` or `https:`, without a fragment.
 * @param options Subprotocols, extensions and extra headers.
 * @returns The request's bytes and the key it carries.
 * @throws {TypeError} If the URL is not valid or not of those schemes or has a fragment, a
 * subprotocol is not a token or is offered twice, the extensions do not parse, or an extra
 * header is one the handshake writes, has a name that is not a token, or a value holding CR,
 * LF, NUL or a character above U+00FF.
 *
 * @example
 * ```ts
 * import { handshakeRequest } from "./upgrade.ts";
 * const { bytes, key } = handshakeRequest("ws://[::1]:8080/chat?room=1", { protocols: ["chat"] });
 * const lines = new TextDecoder().decode(bytes).split("\r\n");
 * console.log(lines[0], lines[1]); // GET /chat?room=1 HTTP/1.1 Host: [::1]:8080
 * console.log(key.length); // 24
 * ```
 */
export function handshakeRequest(
  url: string | URL,
  options?: HandshakeRequestOptions,
): HandshakeRequest {
  const target = endpoint(url);
  const key = randomKey();
  // URL.host leaves out the scheme's default port and brackets an IPv6 address, as the Host
  // header wants them (RFC 9110 §7.2).
  let text = `GET ${target.pathname}${target.search} HTTP/1.1\r\nHost: ${target.host}\r\n` +
    `Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\n` +
    "Sec-WebSocket-Version: 13\r\n";
  const protocols = options?.protocols ?? [];
  if (protocols.length > 0) {
    for (let i = 0; i < protocols.length; i++) {
      const protocol = protocols[i];
      // RFC 6455 §4.1: each is a token, and they are unique.
      if (typeof protocol !== "string" || !isToken(protocol)) {
        throw new TypeError(
          `Cannot write the request: the subprotocol ${JSON.stringify(protocol)} is not a token`,
        );
      }
      if (protocols.indexOf(protocol) !== i) {
        throw new TypeError(
          `Cannot write the request: the subprotocol "${protocol}" is offered twice`,
        );
      }
    }
    text += `Sec-WebSocket-Protocol: ${protocols.join(", ")}\r\n`;
  }
  const extensions = options?.extensions ?? "";
  if (extensions !== "") {
    const offers = parseExtensions(extensions);
    if (typeof offers === "string") throw new TypeError(`Cannot write the request: ${offers}`);
    checkHeaderValue("Sec-WebSocket-Extensions", extensions, REQUEST);
    text += `Sec-WebSocket-Extensions: ${extensions}\r\n`;
  }
  const headers = options?.headers;
  if (headers !== undefined) {
    const list = headerPairs(headers, REQUEST);
    for (let i = 0; i < list.length; i++) {
      const name = list[i][0];
      checkHeaderName(name, REQUEST);
      if (OWNED.has(name.toLowerCase())) {
        throw new TypeError(
          `Cannot write the request: the header "${name}" is written by the handshake`,
        );
      }
    }
    text += headerLines(list, REQUEST);
  }
  return { bytes: latin1Bytes(text + "\r\n", 0), key };
}

// ---------------------------------------------------------------------------------------------
// The client's side: the response

/**
 * Options of {@linkcode ClientHandshake}: what to offer, and limits on the response head.
 *
 * @example
 * ```ts
 * import { ClientHandshake } from "./upgrade.ts";
 * const handshake = new ClientHandshake("wss://example.com/", {
 *   protocols: ["chat"],
 *   perMessageDeflate: { localNoContextTakeover: true },
 *   maxHeadSize: 4096,
 * });
 * ```
 */
export interface ClientHandshakeOptions extends HandshakeRequestOptions, HeadLimits {
  /**
   * Offer permessage-deflate (`true`: with the defaults), and check the server's answer
   * against RFC 7692 §7.1 (`checkDeflateResponse` of
   * `./extensions/deflate_negotiation.ts`). It is offered before any `extensions`.
   *
   * @default {false}
   */
  perMessageDeflate?: boolean | DeflateNegotiationOptions;
}

/** What a server accepted, once {@linkcode ClientHandshake.receive} returned 1. */
export interface ClientHandshakeResult {
  /** The 101 response head. */
  head: ResponseHead;
  /** The subprotocol the server chose, `""` if none. */
  protocol: string;
  /** The server's Sec-WebSocket-Extensions values joined with `", "`, `""` if none. */
  extensions: string;
  /** permessage-deflate as agreed (local: this client), if the server accepted it. */
  deflate: DeflateAgreement | undefined;
  /**
   * The bytes that followed the head in the chunk that completed it: the server's first
   * frames. A view of that chunk, not a copy; empty if none.
   */
  rest: Uint8Array;
}

/**
 * The client's side of the opening handshake (RFC 6455 §4.1), sans-I/O: write
 * {@linkcode ClientHandshake.request}, then {@linkcode ClientHandshake.receive} what the
 * server sends until it returns 1 ({@linkcode ClientHandshake.result}: go on with the
 * WebSocket protocol, starting with `result.rest`) or -1 ({@linkcode ClientHandshake.error}:
 * close the connection). If the connection ends first, {@linkcode ClientHandshake.end} gives
 * the error.
 *
 * The response is checked in RFC 6455 §4.1's order, each failure a {@linkcode HandshakeError}
 * with its own code:
 * - a head that does not parse or is over a limit (`WS_ERR_HANDSHAKE_BAD_RESPONSE`,
 *   `WS_ERR_HANDSHAKE_TOO_LARGE`), or a connection that ends before it does
 *   (`WS_ERR_HANDSHAKE_INCOMPLETE`);
 * - a status other than 101 (`WS_ERR_HANDSHAKE_REFUSED`, with the status, headers and the body
 *   bytes that came with the head); interim responses (a 1xx other than 101, such as a 103 Early Hints)
 *   are skipped, as RFC 9110 §15.2 asks, up to 16 of them;
 * - `Upgrade` without the token `websocket`, `Connection` without `upgrade`, compared
 *   case-insensitively (`WS_ERR_HANDSHAKE_UPGRADE`);
 * - `Sec-WebSocket-Accept` missing, repeated or not the key's (`WS_ERR_HANDSHAKE_ACCEPT`);
 * - extensions that do not parse, were not offered or are repeated, or a permessage-deflate
 *   answer RFC 7692 §7.1 does not allow (`WS_ERR_HANDSHAKE_EXTENSION`);
 * - a subprotocol that was not offered, or more than one (`WS_ERR_HANDSHAKE_SUBPROTOCOL`).
 *
 * @example
 * ```ts
 * import { acceptResponse, ClientHandshake } from "./upgrade.ts";
 * const handshake = new ClientHandshake("ws://localhost:8080/", { protocols: ["chat"] });
 * // The request goes to the server; here, the server's answer is made up.
 * const response = acceptResponse(handshake.key, { protocol: "chat" });
 * console.log(handshake.receive(response)); // 1
 * console.log(handshake.result?.protocol); // chat
 * ```
 */
export class ClientHandshake {
  /** The request to send: write it before anything else. */
  readonly request: Uint8Array;
  /** The Sec-WebSocket-Key in the request. */
  readonly key: string;
  #protocols: string[];
  /** The names of the extensions offered. */
  #offered: string[];
  #deflate: DeflateNegotiationOptions | undefined;
  #parser: ResponseHeadParser;
  #limits: HeadLimits | undefined;
  /** Interim (1xx) responses skipped so far. */
  #interim = 0;
  #result: ClientHandshakeResult | undefined;
  #error: HandshakeError | undefined;

  /**
   * Writes the request.
   *
   * @param url The endpoint: `ws:`, `wss:`, `http:` or `https:`, without a fragment.
   * @param options What to offer, and limits on the response head.
   * @throws {TypeError} As {@linkcode handshakeRequest} does, and if `extensions` offers
   * permessage-deflate while `perMessageDeflate` does too.
   * @throws {RangeError} If a limit or a permessage-deflate window size is out of range.
   *
   * @example
   * ```ts
   * import { ClientHandshake } from "./upgrade.ts";
   * const handshake = new ClientHandshake("ws://example.com/", { perMessageDeflate: true });
   * console.log(new TextDecoder().decode(handshake.request).includes("permessage-deflate"));
   * // true
   * ```
   */
  constructor(url: string | URL, options?: ClientHandshakeOptions) {
    const option = options?.perMessageDeflate ?? false;
    const deflate = option === false ? undefined : option === true ? {} : option;
    let extensions = options?.extensions ?? "";
    let offered: string[] = [];
    if (extensions !== "") {
      const offers = parseExtensions(extensions);
      if (typeof offers === "string") throw new TypeError(`Cannot write the request: ${offers}`);
      offered = offers.map((offer) => offer.name);
      if (deflate !== undefined && offered.includes("permessage-deflate")) {
        throw new TypeError(
          "Cannot write the request: permessage-deflate is offered by both perMessageDeflate " +
            "and extensions",
        );
      }
    }
    if (deflate !== undefined) {
      const offer = deflateOffer(deflate);
      extensions = extensions === "" ? offer : `${offer}, ${extensions}`;
      offered.push("permessage-deflate");
    }
    this.#parser = new ResponseHeadParser(options);
    this.#limits = options;
    const { bytes, key } = handshakeRequest(url, {
      protocols: options?.protocols,
      extensions,
      headers: options?.headers,
    });
    this.request = bytes;
    this.key = key;
    this.#protocols = [...(options?.protocols ?? [])];
    this.#offered = offered;
    this.#deflate = deflate;
  }

  /**
   * What the server accepted, once {@linkcode ClientHandshake.receive} returned 1, else
   * `undefined`.
   *
   * @returns The result, or `undefined`.
   *
   * @example
   * ```ts
   * import { acceptResponse, ClientHandshake } from "./upgrade.ts";
   * const handshake = new ClientHandshake("ws://localhost/");
   * handshake.receive(acceptResponse(handshake.key));
   * console.log(handshake.result?.head.status); // 101
   * ```
   */
  get result(): ClientHandshakeResult | undefined {
    return this.#result;
  }

  /**
   * Why the handshake failed, once {@linkcode ClientHandshake.receive} returned -1 or
   * {@linkcode ClientHandshake.end} was called, else `undefined`.
   *
   * @returns The error, or `undefined`.
   *
   * @example
   * ```ts
   * import { ClientHandshake } from "./upgrade.ts";
   * const handshake = new ClientHandshake("ws://localhost/");
   * handshake.receive(new TextEncoder().encode("HTTP/1.1 404 Not Found\r\n\r\n"));
   * console.log(handshake.error?.code, handshake.error?.status); // WS_ERR_HANDSHAKE_REFUSED 404
   * ```
   */
  get error(): HandshakeError | undefined {
    return this.#error;
  }

  /**
   * Feeds the next bytes from the server.
   *
   * @param chunk The bytes. The handshake keeps no reference to them unless the head
   * completes in them (then `result.rest` is a view of them).
   * @returns 0 if more bytes are needed, 1 if the server accepted
   * ({@linkcode ClientHandshake.result}), -1 if the handshake failed
   * ({@linkcode ClientHandshake.error}).
   * @throws {TypeError} If called again after it returned 1 or -1, or after
   * {@linkcode ClientHandshake.end}.
   *
   * @example
   * ```ts
   * import { acceptResponse, ClientHandshake } from "./upgrade.ts";
   * const handshake = new ClientHandshake("ws://localhost/");
   * const response = acceptResponse(handshake.key);
   * console.log(handshake.receive(response.subarray(0, 20))); // 0
   * console.log(handshake.receive(response.subarray(20))); // 1
   * ```
   */
  receive(chunk: Uint8Array): -1 | 0 | 1 {
    if (this.#result !== undefined || this.#error !== undefined) {
      throw new TypeError("Cannot receive: the handshake is already over");
    }
    let parser = this.#parser;
    let state = parser.push(chunk);
    // RFC 9110 §15.2: a client skips interim responses (a 103 Early Hints, a 100) that come
    // before the final one; a 101 is final here.
    while (state === 1 && parser.head!.status < 200 && parser.head!.status !== 101) {
      if (++this.#interim > MAX_INTERIM) {
        this.#error = failure(
          "WS_ERR_HANDSHAKE_BAD_RESPONSE",
          `more than ${MAX_INTERIM} interim (1xx) responses`,
          parser.head!,
        );
        return -1;
      }
      const rest = parser.rest;
      parser = this.#parser = new ResponseHeadParser(this.#limits);
      state = rest.length === 0 ? 0 : parser.push(rest);
    }
    if (state === 0) return 0;
    if (state === -1) {
      this.#error = parser.error;
      return -1;
    }
    const verdict = this.#verify(parser.head!, parser.rest);
    if (verdict instanceof HandshakeError) {
      this.#error = verdict;
      return -1;
    }
    this.#result = verdict;
    return 1;
  }

  /**
   * Tells the handshake that the connection ended (or will carry nothing more): if the
   * response was not complete, that is its error.
   *
   * @returns The error the handshake failed with: `WS_ERR_HANDSHAKE_INCOMPLETE`, or the one
   * it had already failed with.
   * @throws {TypeError} If the handshake had succeeded: the connection's end is then the
   * WebSocket protocol's to handle.
   *
   * @example
   * ```ts
   * import { ClientHandshake } from "./upgrade.ts";
   * const handshake = new ClientHandshake("ws://localhost/");
   * handshake.receive(new TextEncoder().encode("HTTP/1.1 101 Switching"));
   * console.log(handshake.end().code); // WS_ERR_HANDSHAKE_INCOMPLETE
   * ```
   */
  end(): HandshakeError {
    if (this.#result !== undefined) {
      throw new TypeError("Cannot end the handshake: it has succeeded");
    }
    return this.#error ??= new HandshakeError(
      "WS_ERR_HANDSHAKE_INCOMPLETE",
      "Handshake failed: the connection ended before the response head was complete",
    );
  }

  /** The checks of RFC 6455 §4.1 on a complete response head. */
  #verify(head: ResponseHead, rest: Uint8Array): ClientHandshakeResult | HandshakeError {
    const { status, headers } = head;
    if (status !== 101) {
      return new HandshakeError(
        "WS_ERR_HANDSHAKE_REFUSED",
        `Handshake refused: the server answered ${status}${
          head.reason === "" ? "" : ` ${head.reason}`
        }`,
        // A copy: the chunk it is a view of may be reused by the caller.
        { status, headers, body: rest.slice() },
      );
    }
    const fail = (code: ErrorCode, reason: string) => failure(code, reason, head);
    // RFC 9110 §7.8: a 101 answers an HTTP/1.1 request only.
    if (head.version !== "HTTP/1.1") {
      return fail("WS_ERR_HANDSHAKE_BAD_RESPONSE", "a 101 response in HTTP/1.0");
    }
    let upgrades = 0;
    let upgradeWebSocket = false;
    let connectionUpgrade = false;
    let accept: string | undefined;
    let accepts = 0;
    let extensions = "";
    let protocol: string | undefined;
    let protocols = 0;
    for (let i = 0; i < headers.length; i++) {
      const value = headers[i][1];
      switch (headers[i][0]) {
        case "upgrade":
          upgrades++;
          if (!upgradeWebSocket) upgradeWebSocket = listHas(value, "websocket");
          break;
        case "connection":
          if (!connectionUpgrade) connectionUpgrade = listHas(value, "upgrade");
          break;
        case "sec-websocket-accept":
          accept = value;
          accepts++;
          break;
        case "sec-websocket-extensions":
          extensions = extensions === "" ? value : `${extensions}, ${value}`;
          break;
        case "sec-websocket-protocol":
          protocol = value;
          protocols++;
          break;
      }
    }
    // RFC 6455 §4.1, the client's checks 2 to 6, in order.
    if (upgrades === 0) return fail("WS_ERR_HANDSHAKE_UPGRADE", "the Upgrade header is missing");
    if (!upgradeWebSocket) {
      return fail("WS_ERR_HANDSHAKE_UPGRADE", 'the Upgrade header does not include "websocket"');
    }
    if (!connectionUpgrade) {
      return fail("WS_ERR_HANDSHAKE_UPGRADE", 'the Connection header does not include "upgrade"');
    }
    if (accepts === 0) {
      return fail("WS_ERR_HANDSHAKE_ACCEPT", "the Sec-WebSocket-Accept header is missing");
    }
    if (accepts > 1) {
      return fail("WS_ERR_HANDSHAKE_ACCEPT", "more than one Sec-WebSocket-Accept header");
    }
    if (accept !== acceptKey(this.key)) {
      return fail(
        "WS_ERR_HANDSHAKE_ACCEPT",
        "Sec-WebSocket-Accept is not the accept key of the Sec-WebSocket-Key sent",
      );
    }
    let deflate: DeflateAgreement | undefined;
    if (extensions !== "") {
      const answers = parseExtensions(extensions);
      if (typeof answers === "string") return fail("WS_ERR_HANDSHAKE_EXTENSION", answers);
      const reason = this.#checkExtensions(answers);
      if (typeof reason === "string") return fail("WS_ERR_HANDSHAKE_EXTENSION", reason);
      deflate = reason;
    }
    if (protocols > 1) {
      return fail("WS_ERR_HANDSHAKE_SUBPROTOCOL", "more than one Sec-WebSocket-Protocol header");
    }
    if (protocol !== undefined && !this.#protocols.includes(protocol)) {
      return fail(
        "WS_ERR_HANDSHAKE_SUBPROTOCOL",
        this.#protocols.length === 0
          ? `the server chose the subprotocol ${JSON.stringify(protocol)}, but none was offered`
          : `the server chose the subprotocol ${JSON.stringify(protocol)}, which was not offered`,
      );
    }
    return { head, protocol: protocol ?? "", extensions, deflate, rest };
  }

  /**
   * RFC 6455 §4.1 and §9.1: every extension answered was offered, and is answered once; a
   * permessage-deflate answer is one RFC 7692 §7.1 allows. Returns the deflate agreement (if
   * any) or why the answer fails.
   */
  #checkExtensions(answers: ExtensionOffer[]): DeflateAgreement | undefined | string {
    let deflate: DeflateAgreement | undefined;
    for (let i = 0; i < answers.length; i++) {
      const name = answers[i].name;
      if (!this.#offered.includes(name)) {
        return `the server accepted the extension "${name}", which was not offered`;
      }
      for (let j = 0; j < i; j++) {
        if (answers[j].name === name) return `the server accepted the extension "${name}" twice`;
      }
      if (name === "permessage-deflate" && this.#deflate !== undefined) {
        const agreement = checkDeflateResponse(answers[i], this.#deflate);
        if (typeof agreement === "string") return agreement;
        deflate = agreement;
      }
    }
    return deflate;
  }
}

/** A failed check of a 101 response. */
function failure(code: ErrorCode, reason: string, head: ResponseHead): HandshakeError {
  return new HandshakeError(code, `Handshake failed: ${reason}`, {
    status: head.status,
    headers: head.headers,
  });
}
