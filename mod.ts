/**
 * sluice: a WebSocket server for Deno and Bun, built on raw TCP listeners, with the same
 * behaviour on both.
 *
 * ```ts
 * import { serve } from "@sluice/ws";
 *
 * const server = serve({
 *   port: 0,
 *   message(ws, data) {
 *     ws.send(data); // echo
 *   },
 * });
 * console.log(`ws://localhost:${server.port}`);
 * await server.shutdown();
 * ```
 *
 * @module
 */
import { runtimeListen } from "./lib/runtime/runtime.ts";
import type { ServeOptions } from "./lib/server/options.ts";
import { Server } from "./lib/server/server.ts";

export { CloseCode, type ErrorCode, ErrorCodes, WebSocketError } from "./lib/protocol/errors.ts";
export { isValidCloseCode } from "./lib/protocol/close.ts";
export { Opcode } from "./lib/protocol/opcode.ts";
export type {
  ControlFrameLimitOptions,
  HttpRequestInfo,
  PerMessageDeflateOptions,
  ReadPauseOptions,
  ServeBaseOptions,
  ServeOptions,
  UpgradeAccept,
  UpgradeHeaders,
  UpgradeHook,
  UpgradeOption,
  UpgradeResult,
} from "./lib/server/options.ts";
export type { OriginRule } from "./lib/server/origin.ts";
export type { RateLimitOptions } from "./lib/core/rate_limit.ts";
export { Server, type ShutdownOptions } from "./lib/server/server.ts";
export type { ServerStats, TrafficCounts } from "./lib/server/stats.ts";
export { BaseWebSocket, type CloseInfo, SendStatus } from "./lib/core/websocket.ts";
export { type PublishOptions, ServerWebSocket } from "./lib/server/websocket.ts";
export { UpgradeRequest } from "./lib/server/upgrade_request.ts";

/**
 * Starts a WebSocket server on the current runtime (Deno or Bun) and returns it once it is
 * bound.
 *
 * @typeParam T The type of the per-connection data the upgrade hook attaches (`ws.data`).
 * @param options Where to listen, the upgrade hook, the handlers and the limits.
 * @returns The listening server.
 *
 * @example
 * ```ts
 * import { serve } from "@sluice/ws";
 *
 * const server = serve<{ user: string }>({
 *   port: 0,
 *   upgrade(request) {
 *     const user = request.searchParams.get("user");
 *     if (user === null) return new Response("Who are you?", { status: 401 });
 *     return { data: { user } };
 *   },
 *   open(ws) {
 *     ws.send(`hello ${ws.data.user}`);
 *   },
 *   message(ws, data, isBinary) {
 *     ws.send(data);
 *   },
 *   close(ws, code, reason) {
 *     console.log(`${ws.data.user} left: ${code} ${reason}`);
 *   },
 * });
 * await server.shutdown();
 * ```
 */
export function serve<T = undefined>(options: ServeOptions<T> = {} as ServeOptions<T>): Server<T> {
  return new Server(options, runtimeListen());
}
