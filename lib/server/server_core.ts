/**
 * What a {@linkcode Connection} needs from its server: the resolved options and the
 * bookkeeping hooks. Kept apart from server.ts so connection.ts and server.ts do not import
 * each other.
 *
 * @module
 */
import type { RequestHeadLimits } from "../protocol/handshake.ts";
import type { Connection } from "./connection.ts";
import type { ServeOptions } from "./options.ts";

/** {@linkcode ServeOptions} with every default filled in. */
export type ResolvedOptions<T> =
  & Omit<
    ServeOptions<T>,
    | "protocols"
    | "maxPayloadLength"
    | "closeTimeout"
    | "maxHeadSize"
    | "maxHeaders"
    | "maxLineLength"
  >
  & Required<RequestHeadLimits>
  & { protocols: string[]; maxPayloadLength: number; closeTimeout: number };

/** The server as its connections see it. */
export interface ServerCore<T> {
  /** The options, defaults applied. */
  readonly options: ResolvedOptions<T>;
  /** A handshake completed. */
  opened(connection: Connection<T>): void;
  /** A handshake was refused with `status`. */
  refused(status: number): void;
  /** An open connection closed (its close handler is about to run). */
  closed(connection: Connection<T>): void;
  /** The TCP connection is gone. */
  untrack(connection: Connection<T>): void;
}
