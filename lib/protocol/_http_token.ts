/**
 * The token characters of HTTP (RFC 9110 §5.6.2), shared by the request-head parser and the
 * Sec-WebSocket-Extensions parser.
 *
 * @module
 */

/**
 * tchar by byte: 0 = not a tchar, 1 = a tchar, 3 = an upper-case letter (bit 2 tells a parser
 * that a name needs lower-casing). Bytes from 0x80 on are 0.
 */
export const TCHAR: Uint8Array = new Uint8Array(256);
for (const c of "!#$%&'*+-.^_`|~") TCHAR[c.charCodeAt(0)] = 1;
for (let c = 0x30; c <= 0x39; c++) TCHAR[c] = 1;
for (let c = 0x61; c <= 0x7a; c++) TCHAR[c] = 1;
for (let c = 0x41; c <= 0x5a; c++) TCHAR[c] = 3;

/**
 * The {@linkcode TCHAR} entry of a UTF-16 code unit: 0 for anything outside ASCII.
 *
 * @param c A code unit.
 * @returns 0, 1 or 3.
 */
export function tchar(c: number): number {
  return c < 0x80 ? TCHAR[c] : 0;
}
