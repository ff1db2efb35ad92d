/**
 * The server's side of the permessage-deflate negotiation (RFC 7692 §5, §7.1): picking an offer
 * from a client's Sec-WebSocket-Extensions and writing the answer to it.
 *
 * Pure: offers and options in, the agreed parameters and the response value out.
 *
 * @module
 */
import type { ExtensionOffer } from "./extension_header.ts";

/**
 * What the server is willing to do in permessage-deflate.
 *
 * @example
 * ```ts
 * import { negotiateDeflate } from "./deflate_negotiation.ts";
 * const offers = [{ name: "permessage-deflate", params: [] }];
 * const agreement = negotiateDeflate(offers, { serverNoContextTakeover: true });
 * console.log(agreement?.response); // permessage-deflate; server_no_context_takeover
 * ```
 */
export interface DeflateNegotiationOptions {
  /**
   * Never use context takeover when compressing: the server's LZ77 sliding window is reset
   * after each message, so no state is kept between messages (RFC 7692 §7.1.1.1).
   *
   * @default {false}
   */
  serverNoContextTakeover?: boolean;
  /**
   * Ask the client not to use context takeover: the response carries
   * `client_no_context_takeover` even if the offer did not (RFC 7692 §7.1.1.2 allows it), so
   * the server's decompressor keeps no state between messages.
   *
   * @default {false}
   */
  clientNoContextTakeover?: boolean;
  /**
   * The base-2 logarithm of the largest LZ77 window the server compresses with, 8 to 15.
   * Below 15 the response says so with `server_max_window_bits` even if the offer did not ask
   * (RFC 7692 §7.1.2.1 allows it).
   *
   * @default {15}
   */
  serverMaxWindowBits?: number;
  /**
   * The base-2 logarithm of the largest LZ77 window the server lets the client compress with,
   * 8 to 15. It can only be sent to a client whose offer had `client_max_window_bits`
   * (RFC 7692 §7.1.2.2); other clients may use 15.
   *
   * @default {15}
   */
  clientMaxWindowBits?: number;
}

/**
 * The agreed permessage-deflate parameters, as both sides will use them.
 *
 * @example
 * ```ts
 * import { negotiateDeflate } from "./deflate_negotiation.ts";
 * const agreement = negotiateDeflate([{ name: "permessage-deflate", params: [] }]);
 * console.log(agreement?.params.serverMaxWindowBits); // 15
 * ```
 */
export interface DeflateParams {
  /** The server resets its compression window after each message. */
  serverNoContextTakeover: boolean;
  /** The client resets its compression window after each message. */
  clientNoContextTakeover: boolean;
  /** The largest window the server compresses with, 8–15 (15 when not negotiated). */
  serverMaxWindowBits: number;
  /** The largest window the client compresses with, 8–15 (15 when not negotiated). */
  clientMaxWindowBits: number;
}

/**
 * An accepted permessage-deflate offer.
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
   * The value of the Sec-WebSocket-Extensions response header, e.g.
   * `"permessage-deflate; server_no_context_takeover; client_max_window_bits=10"`.
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
 * Picks the first acceptable permessage-deflate offer among `offers` and writes the answer to
 * it (RFC 7692 §7.1). Offers of other extensions are ignored. An offer is declined, and the
 * next one tried, if it has an unknown parameter, a repeated one, or a bad value: the
 * `*_no_context_takeover` parameters take no value, `server_max_window_bits` takes a value
 * from 8 to 15 in plain decimal, and `client_max_window_bits` takes none or such a value.
 *
 * The response holds only what RFC 7692 lets a server answer, in the order
 * `server_no_context_takeover`, `client_no_context_takeover`, `server_max_window_bits`,
 * `client_max_window_bits`:
 * - `server_no_context_takeover` when offered or when the options ask for it;
 * - `client_no_context_takeover` when offered (the client promised it) or when the options ask
 *   for it;
 * - `server_max_window_bits=M` when offered with N (M = min(N, option)), or when the option is
 *   below 15;
 * - `client_max_window_bits=M` when offered with N (M = min(N, option)), or when offered
 *   without a value and the option is below 15; never when not offered.
 *
 * @param offers The offers, as `parseExtensions` of `./extension_header.ts` returns them, in
 * the client's order of preference.
 * @param options What the server is willing to do.
 * @returns The agreed parameters and the response value, or `undefined` if no offer is
 * acceptable (the handshake then goes on without permessage-deflate).
 * @throws {RangeError} If `serverMaxWindowBits` or `clientMaxWindowBits` is not an integer from
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
 * const agreement = negotiateDeflate(offers, { clientMaxWindowBits: 10 });
 * console.log(agreement?.response); // permessage-deflate; client_max_window_bits=10
 * console.log(agreement?.params.clientMaxWindowBits); // 10
 * ```
 */
export function negotiateDeflate(
  offers: ExtensionOffer[],
  options?: DeflateNegotiationOptions,
): DeflateAgreement | undefined {
  const serverMax = checkBits("serverMaxWindowBits", options?.serverMaxWindowBits ?? 15);
  const clientMax = checkBits("clientMaxWindowBits", options?.clientMaxWindowBits ?? 15);
  const serverNoContextTakeover = options?.serverNoContextTakeover === true;
  const clientNoContextTakeover = options?.clientNoContextTakeover === true;
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
      serverNoContextTakeover,
      clientNoContextTakeover,
      serverMaxWindowBits,
      clientMaxWindowBits,
    },
    response,
  };
}
