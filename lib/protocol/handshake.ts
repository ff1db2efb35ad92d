/**
 * The server's side of the opening handshake of RFC 6455 §4.2, under the names it has always
 * had here: the request-head parser lives in `./http1.ts`, the upgrade rules and the response
 * writers in `./upgrade.ts`. New code imports from those two.
 *
 * @module
 */
export {
  type HandshakeRefusal,
  headerPairs,
  httpResponse,
  type RequestHead,
  type RequestHeadLimits,
  RequestHeadParser,
} from "./http1.ts";
export {
  acceptKey,
  acceptResponse,
  type AcceptResponseOptions,
  HANDSHAKE_HEADERS,
  isRefusal,
  refusalResponse,
  type UpgradeRequestInfo,
  validateUpgradeRequest,
} from "./upgrade.ts";
