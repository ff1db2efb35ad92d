/**
 * The grammar of the Sec-WebSocket-Extensions header (RFC 6455 §9.1), with the list rules of
 * RFC 7230 §7: a parser from the header's value to the offers it lists.
 *
 * Pure: a string in, plain objects or a message out.
 *
 * @module
 */
import { tchar } from "../_http_token.ts";

// ---------------------------------------------------------------------------------------------
// Character tables

const HTAB = 0x09;
const SP = 0x20;
const DQUOTE = 0x22;
const COMMA = 0x2c;
const SEMICOLON = 0x3b;
const EQUALS = 0x3d;
const BACKSLASH = 0x5c;

// ---------------------------------------------------------------------------------------------
// Parser

/** One extension offered in a Sec-WebSocket-Extensions header, with its parameters. */
export interface ExtensionOffer {
  /** The extension name, lower-cased (RFC 6455 §9.1 compares names case-insensitively). */
  name: string;
  /**
   * The parameters in the order sent: each name lower-cased, each value as sent (unquoted if it
   * was a quoted-string), or `true` for a parameter without a value. Repeated names are kept.
   */
  params: Array<[name: string, value: string | true]>;
}

function invalid(reason: string): string {
  return `Invalid Sec-WebSocket-Extensions header: ${reason}`;
}

/** "expected X at index i, found "c"" or "expected X at the end". */
function expected(what: string, value: string, i: number): string {
  return invalid(
    i < value.length
      ? `expected ${what} at index ${i}, found ${JSON.stringify(value.charAt(i))}`
      : `expected ${what} at the end`,
  );
}

/**
 * Parses the value of a Sec-WebSocket-Extensions header (RFC 6455 §9.1):
 * `1#extension`, `extension = token *( OWS ";" OWS param )`,
 * `param = token [ OWS "=" OWS ( token / quoted-string ) ]`.
 *
 * Empty list elements (`a, , b`) are skipped, as RFC 7230 §7 allows; an empty value (or one of
 * empty elements only) has no offers. Extension and parameter names are lower-cased; values keep
 * their case. A quoted-string value is unescaped and must then be a token (RFC 6455 §9.1).
 * The value is read in one left-to-right pass.
 *
 * @param value The header's value; several Sec-WebSocket-Extensions headers are joined with
 * `", "` by the caller.
 * @returns The offers in the order sent, or a message saying why the value is malformed, in the
 * form `Invalid Sec-WebSocket-Extensions header: …`.
 *
 * @example
 * ```ts
 * import { parseExtensions } from "./extension_header.ts";
 * const offers = parseExtensions('permessage-deflate; client_max_window_bits, x-Foo; a="1"');
 * console.log(JSON.stringify(offers));
 * // [{"name":"permessage-deflate","params":[["client_max_window_bits",true]]},
 * //  {"name":"x-foo","params":[["a","1"]]}]
 * console.log(parseExtensions("permessage-deflate;"));
 * // Invalid Sec-WebSocket-Extensions header: expected a parameter name at the end
 * ```
 */
export function parseExtensions(value: string): ExtensionOffer[] | string {
  const offers: ExtensionOffer[] = [];
  const end = value.length;
  let i = 0;
  let c = 0;
  while (true) {
    // RFC 7230 §7: OWS and empty elements before an element are skipped.
    while (i < end && ((c = value.charCodeAt(i)) === SP || c === HTAB || c === COMMA)) i++;
    if (i === end) return offers;

    // extension-token
    let start = i;
    let upper = 0;
    let t = 0;
    while (i < end && (t = tchar(value.charCodeAt(i))) !== 0) {
      upper |= t;
      i++;
    }
    if (i === start) return expected("an extension name", value, i);
    let name = value.substring(start, i);
    if (upper & 2) name = name.toLowerCase();
    const params: Array<[name: string, value: string | true]> = [];
    offers.push({ name, params });

    // *( OWS ";" OWS param ), then OWS and "," or the end.
    while (true) {
      while (i < end && ((c = value.charCodeAt(i)) === SP || c === HTAB)) i++;
      if (i === end) return offers;
      if (c === COMMA) {
        i++;
        break;
      }
      if (c !== SEMICOLON) return expected('";" or ","', value, i);
      i++;
      while (i < end && ((c = value.charCodeAt(i)) === SP || c === HTAB)) i++;

      start = i;
      upper = 0;
      while (i < end && (t = tchar(value.charCodeAt(i))) !== 0) {
        upper |= t;
        i++;
      }
      // Also a trailing ";", or ";;".
      if (i === start) return expected("a parameter name", value, i);
      name = value.substring(start, i);
      if (upper & 2) name = name.toLowerCase();

      let j = i;
      while (j < end && ((c = value.charCodeAt(j)) === SP || c === HTAB)) j++;
      if (j === end || c !== EQUALS) {
        // No value: the OWS after the name is read again by the loop's head.
        params.push([name, true]);
        continue;
      }
      i = j + 1;
      while (i < end && ((c = value.charCodeAt(i)) === SP || c === HTAB)) i++;

      let param: string;
      if (i < end && c === DQUOTE) {
        // quoted-string = DQUOTE *( qdtext / quoted-pair ) DQUOTE (RFC 7230 §3.2.6). RFC 6455
        // §9.1: its content, unescaped, MUST be a token, so only tchars pass, escaped or not.
        const open = i++;
        let escaped = false;
        while (i < end && (c = value.charCodeAt(i)) !== DQUOTE) {
          if (c === BACKSLASH) {
            if (++i === end) break;
            c = value.charCodeAt(i);
            escaped = true;
          }
          if (tchar(c) === 0) {
            return invalid(
              `a quoted parameter value that is not a token, ${
                JSON.stringify(value.charAt(i))
              } at index ${i}`,
            );
          }
          i++;
        }
        if (i >= end) return invalid(`a quoted-string from index ${open} is not terminated`);
        if (i === open + 1) return invalid(`an empty quoted parameter value at index ${open}`);
        param = value.substring(open + 1, i);
        // Only a value with quoted-pairs is rewritten: each "\" escapes the tchar after it.
        if (escaped) param = param.replace(/\\(.)/g, "$1");
        i++;
      } else {
        start = i;
        while (i < end && tchar(value.charCodeAt(i)) !== 0) i++;
        if (i === start) return expected("a parameter value", value, i);
        param = value.substring(start, i);
      }
      params.push([name, param]);
    }
  }
}
