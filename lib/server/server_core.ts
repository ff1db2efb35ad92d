/**
 * What a server's connections need from their server: the resolved options and the bookkeeping
 * hooks. Kept apart from server.ts so that the connections' modules and server.ts do not import
 * each other.
 *
 * @module
 */
import type { DeflateEngine, DeflateTuning } from "../protocol/extensions/deflate_engine.ts";
import type { DeflateNegotiationOptions } from "../protocol/extensions/deflate_negotiation.ts";
import type { RequestHeadLimits } from "../protocol/handshake.ts";
import type { ConnectionHome } from "../core/open_connection.ts";
import type { HandshakePhase } from "./handshake_phase.ts";
import type { HttpConnection } from "./http_connection.ts";
import type { HttpResponder } from "./http_responder.ts";
import type { ServerConnection } from "./server_connection.ts";
import type { ServeBaseOptions, UpgradeHook } from "./options.ts";
import type { RateLimitOptions } from "../core/rate_limit.ts";
import type { ServerCounters, ServerStats } from "./stats.ts";
import type { TopicRegistry } from "./topics.ts";

/** `ServeOptions` with every default filled in. */
export type ResolvedOptions<T> =
  & Omit<
    ServeBaseOptions<T>,
    | "protocols"
    | "maxPayloadLength"
    | "closeTimeout"
    | "maxHeadSize"
    | "maxHeaders"
    | "maxLineLength"
    | "perMessageDeflate"
    | "handshakeTimeout"
    | "idleTimeout"
    | "heartbeat"
    | "maxConnections"
    | "maxFragments"
    | "maxBackpressure"
    | "backpressurePolicy"
    | "readPause"
    | "maxTotalBackpressure"
    | "origins"
    | "requireOrigin"
    | "trustProxy"
    | "rateLimit"
    | "controlFrameLimit"
    | "maxRequestBodySize"
    | "keepAliveTimeout"
    | "maxRequestsPerConnection"
  >
  & Required<RequestHeadLimits>
  & {
    upgrade?: UpgradeHook<T>;
    protocols: string[];
    maxPayloadLength: number;
    closeTimeout: number;
    deflate: DeflateSetup | undefined;
    /** 0 when disabled. */
    handshakeTimeout: number;
    /** 0 when disabled. */
    idleTimeout: number;
    /** 0 when disabled. */
    heartbeatInterval: number;
    heartbeatTimeout: number;
    maxConnections: number;
    maxFragments: number;
    maxBackpressure: number;
    backpressurePolicy: "drop" | "close";
    /** Reading pauses above this many queued bytes (`Infinity` when `readPause` is off). */
    readHighWaterMark: number;
    /** ... and resumes at or below this many. */
    readLowWaterMark: number;
    maxTotalBackpressure: number;
    /** The Origin allowlist, compiled; `undefined` when every origin is accepted. */
    originAllowed: ((origin: string) => boolean) | undefined;
    requireOrigin: boolean;
    /** Trusted proxies, compiled; `undefined` when none are. */
    trustedProxy: ((address: string) => boolean) | undefined;
    /** Rate limits, checked; `undefined` when there are none. */
    rateLimit: RateLimitOptions | undefined;
    /** Pings and pongs per second a client may send; 0 when unlimited. */
    controlFrameRate: number;
    /** Seconds' worth of `controlFrameRate` a client may send at once. */
    controlFrameBurst: number;
    maxRequestBodySize: number;
    keepAliveTimeout: number;
    maxRequestsPerConnection: number;
  };

/** permessage-deflate as the server offers it, settled from the options. */
export interface DeflateSetup {
  /** The engine. */
  engine: DeflateEngine;
  /** What the server accepts in negotiation. */
  negotiation: DeflateNegotiationOptions;
  /** The size from which messages are compressed by default. */
  threshold: number;
  /** Level and memory level. */
  tuning: DeflateTuning;
}

/** A TCP connection the server tracks, in whichever phase it is. */
export type Tracked<T> =
  | HandshakePhase<T>
  | HttpConnection<T>
  | HttpResponder<T>
  | ServerConnection<T>;

/** The server as its connections see it. */
export interface ServerCore<T> extends ConnectionHome {
  /** The options, defaults applied. */
  readonly options: ResolvedOptions<T>;
  /**
   * A coarse clock (ms), advanced by the server's timeout sweep: cheap to read on every chunk,
   * exact enough for timeouts of seconds.
   */
  readonly now: number;
  /** A snapshot of the stats. */
  stats(): ServerStats;
  /** Counters the connections bump. */
  readonly counters: ServerCounters;
  /** The server's topics. */
  readonly topics: TopicRegistry<ServerConnection<T>>;
  /** A connection changed hands (its handshake is over). */
  handOver(from: Tracked<T>, to: Tracked<T>): void;
  /** A handshake completed: the connection's `open` is about to run. */
  opened(connection: ServerConnection<T>): void;
  /** A handshake was refused with `status`. */
  refused(status: number): void;
  /** An open connection closed (its close handler is about to run). */
  closed(connection: ServerConnection<T>): void;
  /** The TCP connection is gone. */
  untrack(connection: Tracked<T>): void;
}
