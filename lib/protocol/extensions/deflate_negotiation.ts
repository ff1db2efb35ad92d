/**
 * The permessage-deflate negotiation of RFC 7692 §5 and §7.1, for both roles: the server picks
 * an offer from a client's Sec-WebSocket-Extensions and writes the answer to it
 * ({@linkcode negotiateDeflate}); the client writes its offer ({@linkcode deflateOffer}) and
 * checks the server's answer against it ({@linkcode checkDeflateResponse}). Either way the
 * result is a {@linkcode DeflateAgreement} whose parameters say what THIS endpoint does
 * (local: what it compresses) and what its peer does (remote: what it inflates).
 *
 * Pure: offers and options in, the agreed parameters and header values out.
 *
 * @module
 */
import type { ExtensionOffer } from "./extension_header.ts";

/**
 * What this endpoint is willing to do in permessage-deflate, in either role. Local parameters
 * are about what this endpoint compresses, remote ones about what its peer compresses (and it
 * inflates): a server maps them onto `server_*` and `client_*` parameters, a client the other
 * way round.
 *
 * @example
 * ```ts
 * import { deflateOffer, negotiateDeflate } from "./deflate_negotiation.ts";
 * const offers = [{ name: "permessage-deflate", params: [] }];
 * const agreement = negotiateDeflate(offers, { localNoContextTakeover: true });
 * console.log(agreement?.response); // permessage-deflate; server_no_context_takeover
 * console.log(deflateOffer({ remoteMaxWindowBits: 10 }));
 * // permessage-deflate; client_max_window_bits; server_max_window_bits=10
 * ```
 */
export interface DeflateNegotiationOptions {
  /**
   * Never use context takeover when compressing: this endpoint's LZ77 sliding window is reset
   * after each message, so it keeps no state between messages (RFC 7692 §7.1.1). A server
   * answers with `server_no_context_takeover`; a client offers `client_no_context_takeover`.
   *
   * @default {false}
   */
  localNoContextTakeover?: boolean;
  /**
   * Ask the peer not to use context takeover, so that our decompressor keeps no state between
   * messages. A server answers with `client_no_context_takeover` even if the offer did not
   * have it (RFC 7692 §7.1.1.2 allows it); a client offers `server_no_context_takeover` and
   * fails the handshake if the server does not accept it (§7.1.1.1).
   *
   * @default {false}
   */
  remoteNoContextTakeover?: boolean;
  /**
   * The base-2 logarithm of the largest LZ77 window this endpoint compresses with, 8 to 15.
   * A server below 15 answers `server_max_window_bits` even if the offer did not ask
   * (RFC 7692 §7.1.2.1 allows it). A client always offers `client_max_window_bits`, so that
   * the server may ask for a smaller window: with this value below 15 (a promise, §7.1.2.2),
   * without one at 15.
   *
   * @default {15}
   */
  localMaxWindowBits?: number;
  /**
   * The base-2 logarithm of the largest LZ77 window the peer may compress with, 8 to 15.
   * A server answers `client_max_window_bits` with it only to a client whose offer had that
   * parameter (RFC 7692 §7.1.2.2); other clients may use 15. A client below 15 offers
   * `server_max_window_bits` with it and fails the handshake unless the answer has a value no
   * larger (§7.1.2.1).
   *
   * @default {15}
   */
  remoteMaxWindowBits?: number;
}

/**
 * The agreed permessage-deflate parameters, as this endpoint uses them: local for what it
 * compresses, remote for what its peer compresses.
 *
 * @example
 * ```ts
 * import { negotiateDeflate } from "./deflate_negotiation.ts";
 * const agreement = negotiateDeflate([{ name: "permessage-deflate", params: [] }]);
 * console.log(agreement?.params.localMaxWindowBits); // 15
 * ```
 */
export interface DeflateParams {
  /** This endpoint resets its compression window after each message. */
  localNoContextTakeover: boolean;
  /** The peer resets its compression window after each message. */
  remoteNoContextTakeover: boolean;
  /** The largest window this endpoint compresses with, 8–15 (15 when not negotiated). */
  localMaxWindowBits: number;
  /** The largest window the peer compresses with, 8–15 (15 when not negotiated). */
  remoteMaxWindowBits: number;
}

/**
 * An agreed permessage-deflate: the parameters and the extension as the server's response
 * header states it.
 *
 * @example
 * ```ts
 * import { negotiateDeflate } from "./deflate_negotiation.ts";
 * const agreement = negotiateDeflate([{ name: "permessage-deflate", params: [] }]);
 * console.log(agreement?.response); // permessage-deflate
 * ```
 */
export interface DeflateAgreement {
  /** The agreed parameters. */
  params: DeflateParams;
  /**
   * The extension as in the Sec-WebSocket-Extensions response header, e.g.
   * `"permessage-deflate; server_no_context_takeover; client_max_window_bits=10"`: written by
   * the server, read by the client.
   */
  response: string;
}

const NAME = "permessage-deflate";

// Bits of the parameters seen in one offer, to decline a repeated one (RFC 7692 §7.1).
const SERVER_NO_CONTEXT_TAKEOVER = 1;
const CLIENT_NO_CONTEXT_TAKEOVER = 2;
const SERVER_MAX_WINDOW_BITS = 4;
const CLIENT_MAX_WINDOW_BITS = 8;

/**
 * A window-bits value of RFC 7692 §7.1.2: `1*DIGIT` without leading zeros, from 8 to 15.
 *
 * @returns The number, or -1 if `value` is not one (or is `true`, no value).
 */
function windowBits(value: string | true): number {
  if (value === true) return -1;
  if (value.length === 1) {
    const c = value.charCodeAt(0);
    return c === 0x38 || c === 0x39 ? c - 0x30 : -1; // "8", "9"
  }
  if (value.length === 2 && value.charCodeAt(0) === 0x31) {
    const d = value.charCodeAt(1) - 0x30;
    return d >= 0 && d <= 5 ? 10 + d : -1; // "10" to "15"
  }
  return -1;
}

function checkBits(name: string, value: number): number {
  if (!Number.isInteger(value) || value < 8 || value > 15) {
    throw new RangeError(
      `Cannot negotiate permessage-deflate: ${name} must be an integer from 8 to 15`,
    );
  }
  return value;
}

/**
 * The server's side: picks the first acceptable permessage-deflate offer among `offers` and
 * writes the answer to it (RFC 7692 §7.1). Offers of other extensions are ignored. An offer is declined, and the
 * next one tried, if it has an unknown parameter, a repeated one, or a bad value: the
 * `*_no_context_takeover` parameters take no value, `server_max_window_bits` takes a value
 * from 8 to 15 in plain decimal, and `client_max_window_bits` takes none or such a value.
 *
 * The response holds only what RFC 7692 lets a server answer, in the order
 * `server_no_context_takeover`, `client_no_context_takeover`, `server_max_window_bits`,
 * `client_max_window_bits`:
 * - `server_no_context_takeover` when offered or when `localNoContextTakeover` asks for it;
 * - `client_no_context_takeover` when offered (the client promised it) or when
 *   `remoteNoContextTakeover` asks for it;
 * - `server_max_window_bits=M` when offered with N (M = min(N, `localMaxWindowBits`)), or when
 *   `localMaxWindowBits` is below 15;
 * - `client_max_window_bits=M` when offered with N (M = min(N, `remoteMaxWindowBits`)), or when
 *   offered without a value and `remoteMaxWindowBits` is below 15; never when not offered.
 *
 * @param offers The offers, as `parseExtensions` of `./extension_header.ts` returns them, in
 * the client's order of preference.
 * @param options What the server is willing to do.
 * @returns The agreed parameters (local: the server's) and the response value, or `undefined`
 * if no offer is acceptable (the handshake then goes on without permessage-deflate).
 * @throws {RangeError} If `localMaxWindowBits` or `remoteMaxWindowBits` is not an integer from
 * 8 to 15.
 *
 * @example
 * ```ts
 * import { negotiateDeflate } from "./deflate_negotiation.ts";
 * import { parseExtensions } from "./extension_header.ts";
 * const offers = parseExtensions(
 *   "permessage-deflate; server_max_window_bits=7, permessage-deflate; client_max_window_bits",
 * );
 * if (typeof offers === "string") throw new Error(offers);
 * const agreement = negotiateDeflate(offers, { remoteMaxWindowBits: 10 });
 * console.log(agreement?.response); // permessage-deflate; client_max_window_bits=10
 * console.log(agreement?.params.remoteMaxWindowBits); // 10
 * ```
 */
export function negotiateDeflate(
  offers: ExtensionOffer[],
  options?: DeflateNegotiationOptions,
): DeflateAgreement | undefined {
  // The server's side: local parameters are the server_* ones, remote the client_* ones.
  const serverMax = checkBits("localMaxWindowBits", options?.localMaxWindowBits ?? 15);
  const clientMax = checkBits("remoteMaxWindowBits", options?.remoteMaxWindowBits ?? 15);
  const serverNoContextTakeover = options?.localNoContextTakeover === true;
  const clientNoContextTakeover = options?.remoteNoContextTakeover === true;
  for (let i = 0; i < offers.length; i++) {
    const offer = offers[i];
    if (offer.name !== NAME) continue;
    const agreement = accept(
      offer.params,
      serverNoContextTakeover,
      clientNoContextTakeover,
      serverMax,
      clientMax,
    );
    if (agreement !== undefined) return agreement;
  }
  return undefined;
}

/** The answer to one permessage-deflate offer, or `undefined` to decline it. */
function accept(
  params: Array<[name: string, value: string | true]>,
  serverNoContextTakeover: boolean,
  clientNoContextTakeover: boolean,
  serverMax: number,
  clientMax: number,
): DeflateAgreement | undefined {
  let seen = 0;
  let serverOffered = -1; // server_max_window_bits: -1 = absent, else 8–15
  let clientOffered = -1; // client_max_window_bits: -1 = absent, 0 = no value, else 8–15
  for (let i = 0; i < params.length; i++) {
    const [name, value] = params[i];
    let bit: number;
    // RFC 7692 §7.1: an offer with an unknown parameter, a repeated one or a bad value is
    // declined.
    switch (name) {
      case "server_no_context_takeover":
        if (value !== true) return undefined;
        bit = SERVER_NO_CONTEXT_TAKEOVER;
        serverNoContextTakeover = true;
        break;
      case "client_no_context_takeover":
        if (value !== true) return undefined;
        bit = CLIENT_NO_CONTEXT_TAKEOVER;
        clientNoContextTakeover = true;
        break;
      case "server_max_window_bits":
        serverOffered = windowBits(value);
        if (serverOffered < 0) return undefined;
        bit = SERVER_MAX_WINDOW_BITS;
        break;
      case "client_max_window_bits":
        clientOffered = value === true ? 0 : windowBits(value);
        if (clientOffered < 0) return undefined;
        bit = CLIENT_MAX_WINDOW_BITS;
        break;
      default:
        return undefined;
    }
    if (seen & bit) return undefined;
    seen |= bit;
  }

  let response = NAME;
  // RFC 7692 §7.1.1.1: accepting an offer with server_no_context_takeover means answering with
  // it; a server that never takes over its context may say so unasked.
  if (serverNoContextTakeover) response += "; server_no_context_takeover";
  // RFC 7692 §7.1.1.2: the server may ask this unasked. When only the client offered it, the
  // answer repeats it, so that both sides plainly agree on what the client promised.
  if (clientNoContextTakeover) response += "; client_no_context_takeover";

  // RFC 7692 §7.1.2.1: the answer to server_max_window_bits=N has a value ≤ N; without an
  // offer, the server may still tell the client that its window is smaller than 15.
  let serverMaxWindowBits = 15;
  if (serverOffered > 0) {
    serverMaxWindowBits = serverOffered < serverMax ? serverOffered : serverMax;
    response += `; server_max_window_bits=${serverMaxWindowBits}`;
  } else if (serverMax < 15) {
    serverMaxWindowBits = serverMax;
    response += `; server_max_window_bits=${serverMaxWindowBits}`;
  }

  // RFC 7692 §7.1.2.2: the server MUST NOT send client_max_window_bits to a client that did not
  // offer it, and its value is at most the one offered.
  let clientMaxWindowBits = 15;
  if (clientOffered > 0) {
    clientMaxWindowBits = clientOffered < clientMax ? clientOffered : clientMax;
    response += `; client_max_window_bits=${clientMaxWindowBits}`;
  } else if (clientOffered === 0 && clientMax < 15) {
    clientMaxWindowBits = clientMax;
    response += `; client_max_window_bits=${clientMaxWindowBits}`;
  }

  return {
    params: {
      localNoContextTakeover: serverNoContextTakeover,
      remoteNoContextTakeover: clientNoContextTakeover,
      localMaxWindowBits: serverMaxWindowBits,
      remoteMaxWindowBits: clientMaxWindowBits,
    },
    response,
  };
}

// ---------------------------------------------------------------------------------------------
// The client's side

/**
 * The client's side: the permessage-deflate offer for a Sec-WebSocket-Extensions request
 * header (RFC 7692 §7.1), in the order `client_no_context_takeover`,
 * `server_no_context_takeover`, `client_max_window_bits`, `server_max_window_bits`:
 * - `client_no_context_takeover` when `localNoContextTakeover` (a promise, §7.1.1.2);
 * - `server_no_context_takeover` when `remoteNoContextTakeover` (a request, §7.1.1.1);
 * - `client_max_window_bits` always, so that the server may limit our window (§7.1.2.2),
 *   with `=N` when `localMaxWindowBits` is below 15;
 * - `server_max_window_bits=N` when `remoteMaxWindowBits` is below 15 (§7.1.2.1).
 *
 * @param options What the client is willing to do.
 * @returns The offer.
 * @throws {RangeError} If `localMaxWindowBits` or `remoteMaxWindowBits` is not an integer from
 * 8 to 15.
 *
 * @example
 * ```ts
 * import { deflateOffer } from "./deflate_negotiation.ts";
 * console.log(deflateOffer()); // permessage-deflate; client_max_window_bits
 * console.log(deflateOffer({ localNoContextTakeover: true, localMaxWindowBits: 12 }));
 * // permessage-deflate; client_no_context_takeover; client_max_window_bits=12
 * ```
 */
export function deflateOffer(options?: DeflateNegotiationOptions): string {
  const localMax = checkBits("localMaxWindowBits", options?.localMaxWindowBits ?? 15);
  const remoteMax = checkBits("remoteMaxWindowBits", options?.remoteMaxWindowBits ?? 15);
  let offer = NAME;
  if (options?.localNoContextTakeover === true) offer += "; client_no_context_takeover";
  if (options?.remoteNoContextTakeover === true) offer += "; server_no_context_takeover";
  offer += localMax < 15 ? `; client_max_window_bits=${localMax}` : "; client_max_window_bits";
  if (remoteMax < 15) offer += `; server_max_window_bits=${remoteMax}`;
  return offer;
}

/**
 * The client's side: checks the server's answer to {@linkcode deflateOffer}`(options)` against
 * RFC 7692 §7.1, and reads the agreement from it (local: the client's). The answer fails when
 * it is not one a server may give to that offer:
 * - a parameter other than the four of RFC 7692 §7.1, one given twice, or a bad value (the
 *   `*_no_context_takeover` parameters take none, the `*_max_window_bits` ones 8 to 15 in
 *   plain decimal);
 * - `server_no_context_takeover` missing when `remoteNoContextTakeover` asked for it
 *   (§7.1.1.1);
 * - `server_max_window_bits` missing or above `remoteMaxWindowBits` when that is below 15
 *   (§7.1.2.1);
 * - `client_max_window_bits` above `localMaxWindowBits` (§7.1.2.2).
 *
 * A server may add `client_no_context_takeover` and `server_no_context_takeover` unasked
 * (§7.1.1), and `server_max_window_bits` with any value (§7.1.2.1): they bind what they name.
 * The client keeps its own promises whatever the answer: `localNoContextTakeover` and a
 * `localMaxWindowBits` below 15 hold even when the answer does not repeat them.
 *
 * @param response The permessage-deflate element of the server's Sec-WebSocket-Extensions, as
 * `parseExtensions` of `./extension_header.ts` returns it.
 * @param options The options the offer was made with.
 * @returns The agreement, or a message saying why the answer fails the handshake, in the form
 * `Invalid permessage-deflate response: …`.
 * @throws {RangeError} If `localMaxWindowBits` or `remoteMaxWindowBits` is not an integer from
 * 8 to 15.
 *
 * @example
 * ```ts
 * import { checkDeflateResponse } from "./deflate_negotiation.ts";
 * import { parseExtensions } from "./extension_header.ts";
 * const answer = parseExtensions("permessage-deflate; server_no_context_takeover");
 * if (typeof answer === "string") throw new Error(answer);
 * const agreement = checkDeflateResponse(answer[0]);
 * if (typeof agreement === "string") throw new Error(agreement);
 * console.log(agreement.params.remoteNoContextTakeover); // true
 * const bad = parseExtensions("permessage-deflate; server_max_window_bits=12");
 * if (typeof bad === "string") throw new Error(bad);
 * console.log(checkDeflateResponse(bad[0], { remoteMaxWindowBits: 10 }));
 * // Invalid permessage-deflate response: server_max_window_bits=12 is above the 10 asked for
 * ```
 */
export function checkDeflateResponse(
  response: ExtensionOffer,
  options?: DeflateNegotiationOptions,
): DeflateAgreement | string {
  // The client's side: local parameters are the client_* ones, remote the server_* ones.
  const localMax = checkBits("localMaxWindowBits", options?.localMaxWindowBits ?? 15);
  const remoteMax = checkBits("remoteMaxWindowBits", options?.remoteMaxWindowBits ?? 15);
  const invalid = (reason: string) => `Invalid permessage-deflate response: ${reason}`;
  if (response.name !== NAME) return invalid(`"${response.name}" is not permessage-deflate`);
  let localNoContextTakeover = options?.localNoContextTakeover === true;
  let remoteNoContextTakeover = false;
  let localMaxWindowBits = localMax;
  let remoteMaxWindowBits = 15;
  let seen = 0;
  let text = NAME;
  const params = response.params;
  for (let i = 0; i < params.length; i++) {
    const [name, value] = params[i];
    let bit: number;
    switch (name) {
      case "server_no_context_takeover":
        if (value !== true) return invalid(`${name} takes no value`);
        bit = SERVER_NO_CONTEXT_TAKEOVER;
        remoteNoContextTakeover = true;
        break;
      case "client_no_context_takeover":
        if (value !== true) return invalid(`${name} takes no value`);
        bit = CLIENT_NO_CONTEXT_TAKEOVER;
        localNoContextTakeover = true;
        break;
      case "server_max_window_bits": {
        const bits = windowBits(value);
        if (bits < 0) return invalid(`${name} needs a value from 8 to 15`);
        // RFC 7692 §7.1.2.1: the answer to server_max_window_bits=N is at most N.
        if (bits > remoteMax) {
          return invalid(`${name}=${bits} is above the ${remoteMax} asked for`);
        }
        bit = SERVER_MAX_WINDOW_BITS;
        remoteMaxWindowBits = bits;
        break;
      }
      case "client_max_window_bits": {
        const bits = windowBits(value);
        if (bits < 0) return invalid(`${name} needs a value from 8 to 15`);
        // RFC 7692 §7.1.2.2: at most the value offered, which the client keeps to anyway.
        if (bits > localMax) {
          return invalid(`${name}=${bits} is above the ${localMax} offered`);
        }
        bit = CLIENT_MAX_WINDOW_BITS;
        localMaxWindowBits = bits;
        break;
      }
      default:
        return invalid(`an unknown parameter "${name}"`);
    }
    if (seen & bit) return invalid(`${name} is repeated`);
    seen |= bit;
    text += value === true ? `; ${name}` : `; ${name}=${value}`;
  }
  // RFC 7692 §7.1.1.1, §7.1.2.1: a server accepts these requests by answering them; an answer
  // without them is to an offer the client did not make.
  if (options?.remoteNoContextTakeover === true && !remoteNoContextTakeover) {
    return invalid("server_no_context_takeover was asked for and not answered");
  }
  if (remoteMax < 15 && (seen & SERVER_MAX_WINDOW_BITS) === 0) {
    return invalid("server_max_window_bits was asked for and not answered");
  }
  return {
    params: {
      localNoContextTakeover,
      remoteNoContextTakeover,
      localMaxWindowBits,
      remoteMaxWindowBits,
    },
    response: text,
  };
}
