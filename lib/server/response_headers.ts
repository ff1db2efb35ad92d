/**
 * How a `Response` from the `fetch` handler or the upgrade hook becomes bytes on the wire, the
 * same on every runtime: its body read whole, its headers in one order, and its Content-Type
 * as the Fetch standard gives it even where a runtime leaves it out of the header list.
 *
 * @module
 */
import { decodeUtf8 } from "../protocol/utf8.ts";

/**
 * What the Fetch standard's body extraction gives a string body (fetch.spec.whatwg.org,
 * "extract a body"): bytes and streams get no type.
 */
const STRING_TYPE = "text/plain;charset=UTF-8";

/** How much of a body the MIME Sniffing standard reads to tell text from binary (§7.1). */
const RESOURCE_HEADER = 1445;

/** A response's body, read whole, and the type its runtime reports for it. */
export interface ResponseBody {
  /** The body. */
  body: Uint8Array;
  /** `blob.type` of the body: the MIME type the runtime knows for it, or `""`. */
  type: string;
}

/**
 * Reads a response's body whole, with the type the runtime reports for it.
 *
 * @param response The response.
 * @returns The body and its type.
 *
 * @example
 * ```ts
 * import { readResponse } from "./response_headers.ts";
 * const { body, type } = await readResponse(new Response(new Uint8Array([1])));
 * console.log(body.length, type); // 1 ""
 * ```
 */
export async function readResponse(response: Response): Promise<ResponseBody> {
  const blob = await response.blob();
  return { body: new Uint8Array(await blob.arrayBuffer()), type: blob.type };
}

/**
 * The headers to write for a response: its own, but those the server owns (it frames the
 * body and closes the connection after it), sorted by name, with a Content-Type the runtime
 * left out.
 *
 * The order is the Fetch standard's "sort and combine" order, Set-Cookie included (a runtime
 * may put Set-Cookie last when iterating): the same bytes on every runtime.
 *
 * A runtime that follows the standard puts a string body's type in the header list, and
 * derives `blob.type` from that list, so a response without Content-Type has no `type` either.
 * A runtime that leaves the type out of the list (Bun; it reports the same `type` for a string,
 * bytes or an untyped Blob, unable to tell them apart) gets one here: the standard's type for
 * a string when the body is text, valid UTF-8 with no binary data byte (MIME Sniffing §3) in
 * its first 1445 bytes, and none otherwise, as bytes get none.
 *
 * @param headers The response's headers.
 * @param type The type its runtime reports for the body ({@linkcode readResponse}).
 * @param body The body.
 * @returns The headers, in order.
 *
 * @example
 * ```ts
 * import { responseHeaders } from "./response_headers.ts";
 * const headers = new Headers([["X-B", "1"], ["Set-Cookie", "a=1"], ["Content-Length", "9"]]);
 * console.log(responseHeaders(headers, "", new Uint8Array(0)));
 * // [["set-cookie", "a=1"], ["x-b", "1"]]
 * ```
 */
export function responseHeaders(
  headers: Headers,
  type: string,
  body: Uint8Array,
): Array<[string, string]> {
  const list: Array<[string, string]> = [];
  let typed = false;
  headers.forEach((value, name) => {
    // We frame the body ourselves and close after it.
    if (name === "content-length" || name === "connection" || name === "transfer-encoding") return;
    if (name === "content-type") typed = true;
    list.push([name, value]);
  });
  if (!typed && type !== "" && isText(body)) list.push(["content-type", STRING_TYPE]);
  // A stable sort: values of one name (Set-Cookie's) keep their order.
  return list.sort((a, b) => a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0);
}

/** A `fetch` response's headers, as a persistent connection writes them. */
export interface PlainResponseHeaders {
  /**
   * Its headers but those the server owns (the framing and the connection's fate), sorted by
   * name as in {@linkcode responseHeaders}.
   */
  list: Array<[string, string]>;
  /** Its Content-Length, if it set a valid one: the length of a streamed body. */
  length: number | undefined;
  /** It asked for `Connection: close`. */
  close: boolean;
  /** It has a Content-Type. */
  typed: boolean;
}

/** Headers that frame a message or concern only the connection (RFC 9110 §7.6.1). */
const OWNED = new Set([
  "connection",
  "content-length",
  "keep-alive",
  "proxy-connection",
  "transfer-encoding",
  "upgrade",
]);

/**
 * The headers to write for a response on a persistent connection: its own, sorted by name,
 * but those the server owns, whose values it reports instead (a Content-Length frames a
 * streamed body, `Connection: close` closes the connection after the response).
 *
 * @param headers The response's headers.
 * @returns The headers to write and what the owned ones said.
 *
 * @example
 * ```ts
 * import { plainResponseHeaders } from "./response_headers.ts";
 * const headers = new Headers([["X-B", "1"], ["Content-Length", "9"], ["Connection", "close"]]);
 * console.log(plainResponseHeaders(headers));
 * // { list: [ [ "x-b", "1" ] ], length: 9, close: true, typed: false }
 * ```
 */
export function plainResponseHeaders(headers: Headers): PlainResponseHeaders {
  const list: Array<[string, string]> = [];
  let length: number | undefined;
  let close = false;
  let typed = false;
  headers.forEach((value, name) => {
    if (OWNED.has(name)) {
      if (name === "content-length" && /^[0-9]{1,15}$/.test(value)) length = Number(value);
      else if (name === "connection" && /(^|,)\s*close\s*(,|$)/i.test(value)) close = true;
      return;
    }
    if (name === "content-type") typed = true;
    list.push([name, value]);
  });
  list.sort((a, b) => a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0);
  return { list, length, close, typed };
}

/**
 * Adds the Content-Type the Fetch standard gives a string body to the headers of a response
 * whose body was read whole, when it has none and the body is text. A runtime may leave a
 * string body's type out of the header list (Bun), and the body cannot tell a string from
 * bytes, so every runtime applies this one rule: the same bytes everywhere.
 *
 * @param list The sorted headers from {@linkcode plainResponseHeaders}; changed in place.
 * @param typed Whether the response has a Content-Type.
 * @param body The whole body.
 *
 * @example
 * ```ts
 * import { addStringType } from "./response_headers.ts";
 * const list: Array<[string, string]> = [["x-a", "1"]];
 * addStringType(list, false, new TextEncoder().encode("hi"));
 * console.log(list); // [ [ "content-type", "text/plain;charset=UTF-8" ], [ "x-a", "1" ] ]
 * ```
 */
export function addStringType(
  list: Array<[string, string]>,
  typed: boolean,
  body: Uint8Array,
): void {
  if (typed || !isText(body)) return;
  let i = 0;
  while (i < list.length && list[i][0] < "content-type") i++;
  list.splice(i, 0, ["content-type", STRING_TYPE]);
}

/** Valid UTF-8, with no binary data byte (MIME Sniffing §3) in its resource header. */
function isText(body: Uint8Array): boolean {
  const end = Math.min(body.length, RESOURCE_HEADER);
  for (let i = 0; i < end; i++) {
    const byte = body[i];
    // 0x00–0x08, 0x0B, 0x0E–0x1A, 0x1C–0x1F: tab, LF, FF, CR and ESC are text.
    if (
      byte < 0x20 && byte !== 0x09 && byte !== 0x0a && byte !== 0x0c && byte !== 0x0d &&
      byte !== 0x1b
    ) {
      return false;
    }
  }
  return decodeUtf8(body) !== undefined;
}
