/**
 * What `server.stats()` reports, how it is counted, and its Prometheus text exposition.
 *
 * Counting stays off the hot path: a connection bumps a few numbers of its own per message,
 * and they are summed over connections only when stats are asked for (closed connections'
 * counts are folded into the server's totals as they go).
 *
 * @module
 */

/** Upper bounds (ms) of the heartbeat round-trip histogram's buckets. */
export const LATENCY_BUCKETS: readonly number[] = [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500];

import type { TrafficCounts } from "../core/open_connection.ts";

export type { TrafficCounts };

/**
 * A snapshot of a server's state and counters since it started (`server.stats()`).
 *
 * @example
 * ```ts
 * import { connect, serve } from "@sluice/ws";
 * const server = serve({
 *   port: 0,
 *   message(ws, data) {
 *     ws.send(data);
 *   },
 * });
 * const client = await connect(`ws://127.0.0.1:${server.port}/`, {
 *   message: (ws) => ws.close(1000),
 * });
 * client.send("hello");
 * await client.closed;
 * const { connections, accepted, messagesIn, messagesOut, refused } = server.stats();
 * console.log(connections, accepted, messagesIn, messagesOut, refused); // 0 1 1 1 {}
 * await server.shutdown();
 * ```
 */
export interface ServerStats extends TrafficCounts {
  /** WebSocket connections open now. */
  connections: number;
  /**
   * TCP connections in the opening handshake now: reading their request head, or an upgrade
   * request waiting for the upgrade hook's answer. A connection whose head is not complete
   * counts, although it may turn out to be a plain HTTP request: until then the server cannot
   * tell, and a slow head is what `handshakeTimeout` guards against. Plain HTTP requests being
   * read or answered do not count, nor connections already refused and closing.
   */
  handshaking: number;
  /** Handshakes completed. */
  accepted: number;
  /**
   * Upgrade requests refused, by HTTP status: `{ "403": 2, "503": 1 }` (408: handshake timeout;
   * a head that is not a valid request, or a plain request with no `fetch` to answer it, 400
   * or 426). Plain HTTP responses are in `httpResponses`.
   */
  refused: Record<string, number>;
  /** Plain HTTP requests received (for the `fetch` handler or the metrics path), refused ones too. */
  httpRequests: number;
  /**
   * Responses to plain HTTP requests, by status: `{ "200": 9, "404": 1 }`, the server's own
   * included (404 when `fetch` returns nothing, 500 when it throws, 400, 413, 417, 431 or 501
   * for a request it cannot take; 408 for a head or body that did not arrive in time). A
   * response counts when its head is written.
   */
  httpResponses: Record<string, number>;
  /** Bytes of plain HTTP requests received: heads and bodies as sent (chunk framing included). */
  httpBytesIn: number;
  /** Bytes of plain HTTP responses sent: heads and bodies as written (chunk framing included). */
  httpBytesOut: number;
  /** TCP connections serving plain HTTP now (between requests too). */
  httpConnections: number;
  /** Of those, the ones idle between requests (keep-alive), waiting for the next one. */
  httpKeepAlive: number;
  /**
   * Compressed size over raw size of what was sent compressed (0 when nothing was): 0.25 means
   * compression saved three quarters.
   */
  compressionRatio: number;
  /** Sends that met backpressure (`SendStatus.Backpressure`, or a publish queued behind it). */
  backpressureEvents: number;
  /** Data messages dropped by the backpressure policy. */
  droppedMessages: number;
  /** Connections closed by the backpressure policy `"close"`. */
  backpressureCloses: number;
  /**
   * Bytes queued for all connections now (sent and not yet taken by their sockets): the total
   * that `maxTotalBackpressure` bounds.
   */
  queuedBytes: number;
  /** Connections whose reading is paused because their outbound queue is above `readPause`'s
   * high-water mark. */
  readPaused: number;
  /** Messages from clients over their rate limits. */
  rateLimitedMessages: number;
  /** Connections failed with 1008 for sending more pings and pongs than `controlFrameLimit`. */
  controlFloodCloses: number;
  /** Topics with at least one subscriber. */
  topics: number;
  /** Subscriptions summed over topics. */
  subscriptions: number;
  /** Heartbeat round trips: count, sum (ms) and cumulative buckets (`le` in ms). */
  latency: { count: number; sum: number; buckets: Array<{ le: number; count: number }> };
}

/** A fresh set of traffic counts, all zero. */
export function zeroTraffic(): TrafficCounts {
  return {
    messagesIn: 0,
    messagesOut: 0,
    bytesIn: 0,
    bytesOut: 0,
    compressedIn: 0,
    rawIn: 0,
    rawOut: 0,
    compressedOut: 0,
  };
}

/**
 * Adds `from` into `into`.
 *
 * @param into The totals.
 * @param from One connection's counts.
 */
export function addTraffic(into: TrafficCounts, from: TrafficCounts): void {
  into.messagesIn += from.messagesIn;
  into.messagesOut += from.messagesOut;
  into.bytesIn += from.bytesIn;
  into.bytesOut += from.bytesOut;
  into.compressedIn += from.compressedIn;
  into.rawIn += from.rawIn;
  into.rawOut += from.rawOut;
  into.compressedOut += from.compressedOut;
}

/** The server-wide counters connections bump directly (none of them per message). */
export class ServerCounters {
  /** Handshakes completed. */
  accepted = 0;
  /** Refusals by status. */
  readonly refused: Record<string, number> = {};
  /** Plain HTTP requests received. */
  httpRequests = 0;
  /** Plain HTTP responses by status. */
  readonly httpResponses: Record<string, number> = {};
  /** See {@linkcode ServerStats.httpBytesIn}. */
  httpBytesIn = 0;
  /** See {@linkcode ServerStats.httpBytesOut}. */
  httpBytesOut = 0;
  /** See {@linkcode ServerStats.httpConnections}. */
  httpConnections = 0;
  /** See {@linkcode ServerStats.httpKeepAlive}. */
  httpIdle = 0;
  /** See {@linkcode ServerStats.backpressureEvents}. */
  backpressureEvents = 0;
  /** See {@linkcode ServerStats.droppedMessages}. */
  droppedMessages = 0;
  /** See {@linkcode ServerStats.backpressureCloses}. */
  backpressureCloses = 0;
  /** See {@linkcode ServerStats.rateLimitedMessages}. */
  rateLimitedMessages = 0;
  /** See {@linkcode ServerStats.controlFloodCloses}. */
  controlFloodCloses = 0;
  /**
   * Bytes queued for all connections, as each connection last looked at its queue (so an
   * upper bound in between: sockets only take bytes meanwhile, and a tick's new frames are
   * counted at its flush).
   */
  queuedBytes = 0;
  /** Connections whose queue was not empty when last looked at. */
  queuing = 0;
  /** Traffic of connections that have closed. */
  readonly closed: TrafficCounts = zeroTraffic();
  readonly #latency = new Array<number>(LATENCY_BUCKETS.length + 1).fill(0);
  #latencyCount = 0;
  #latencySum = 0;

  /**
   * Counts a refusal.
   *
   * @param status The HTTP status sent.
   */
  refuse(status: number): void {
    this.refused[status] = (this.refused[status] ?? 0) + 1;
  }

  /**
   * Counts a response to a plain HTTP request.
   *
   * @param status The HTTP status sent.
   */
  httpResponse(status: number): void {
    this.httpResponses[status] = (this.httpResponses[status] ?? 0) + 1;
  }

  /**
   * Records a heartbeat round trip.
   *
   * @param ms The round trip in ms.
   */
  latency(ms: number): void {
    let i = 0;
    while (i < LATENCY_BUCKETS.length && ms > LATENCY_BUCKETS[i]) i++;
    this.#latency[i]++;
    this.#latencyCount++;
    this.#latencySum += ms;
  }

  /** The round-trip histogram, with cumulative buckets as Prometheus has them. */
  latencySnapshot(): ServerStats["latency"] {
    let running = 0;
    const buckets = LATENCY_BUCKETS.map((le, i) => ({ le, count: running += this.#latency[i] }));
    return { count: this.#latencyCount, sum: this.#latencySum, buckets };
  }
}

/**
 * Formats stats in the Prometheus text exposition format (version 0.0.4).
 *
 * @param stats A snapshot from `server.stats()`.
 * @param prefix The metric name prefix. @default {"sluice"}
 * @returns The text, to serve with `Content-Type: text/plain; version=0.0.4`.
 *
 * @example
 * ```ts
 * import { serve } from "@sluice/ws";
 * import { prometheusText } from "./stats.ts";
 * const server = serve({ port: 0 });
 * console.log(prometheusText(server.stats()).includes("sluice_connections 0")); // true
 * await server.shutdown();
 * ```
 */
/**
 * Appends one metric to a Prometheus text exposition: its HELP and TYPE lines, then its value,
 * or one line per label set.
 *
 * @param lines The exposition's lines.
 * @param name The metric's full name.
 * @param type `counter` or `gauge`.
 * @param help Its description.
 * @param value A number, or pairs of a label set (`reason="x"`) and a number.
 */
export function pushMetric(
  lines: string[],
  name: string,
  type: "counter" | "gauge",
  help: string,
  value: number | Array<[string, number]>,
): void {
  lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
  if (typeof value === "number") lines.push(`${name} ${value}`);
  else for (const [labels, v] of value) lines.push(`${name}{${labels}} ${v}`);
}

export function prometheusText(stats: ServerStats, prefix = "sluice"): string {
  const lines: string[] = [];
  const metric = (
    name: string,
    type: "counter" | "gauge",
    help: string,
    value: number | Array<[string, number]>,
  ) => pushMetric(lines, `${prefix}_${name}`, type, help, value);
  metric("connections", "gauge", "WebSocket connections open.", stats.connections);
  metric("handshaking", "gauge", "TCP connections in the opening handshake.", stats.handshaking);
  metric("accepted_total", "counter", "Handshakes completed.", stats.accepted);
  metric(
    "refused_total",
    "counter",
    "Upgrade requests refused, by HTTP status.",
    Object.entries(stats.refused).map(([status, n]) => [`status="${status}"`, n]),
  );
  metric("http_requests_total", "counter", "Plain HTTP requests received.", stats.httpRequests);
  metric(
    "http_responses_total",
    "counter",
    "Responses to plain HTTP requests, by HTTP status.",
    Object.entries(stats.httpResponses).map(([status, n]) => [`status="${status}"`, n]),
  );
  metric("http_bytes_total", "counter", "Plain HTTP bytes, by direction.", [
    ['direction="in"', stats.httpBytesIn],
    ['direction="out"', stats.httpBytesOut],
  ]);
  metric(
    "http_connections",
    "gauge",
    "TCP connections serving plain HTTP.",
    stats.httpConnections,
  );
  metric(
    "http_keepalive_connections",
    "gauge",
    "Plain HTTP connections idle between requests.",
    stats.httpKeepAlive,
  );
  metric("messages_total", "counter", "WebSocket data messages, by direction.", [
    ['direction="in"', stats.messagesIn],
    ['direction="out"', stats.messagesOut],
  ]);
  metric("bytes_total", "counter", "WebSocket frame bytes after the handshake, by direction.", [
    ['direction="in"', stats.bytesIn],
    ['direction="out"', stats.bytesOut],
  ]);
  metric("compression_raw_bytes_total", "counter", "Bytes before compression / after inflation.", [
    ['direction="in"', stats.rawIn],
    ['direction="out"', stats.rawOut],
  ]);
  metric("compression_compressed_bytes_total", "counter", "Compressed payload bytes.", [
    ['direction="in"', stats.compressedIn],
    ['direction="out"', stats.compressedOut],
  ]);
  metric(
    "backpressure_events_total",
    "counter",
    "Sends that met backpressure.",
    stats.backpressureEvents,
  );
  metric(
    "dropped_messages_total",
    "counter",
    "Data messages dropped by the backpressure policy.",
    stats.droppedMessages,
  );
  metric(
    "backpressure_closes_total",
    "counter",
    "Connections closed by the backpressure policy.",
    stats.backpressureCloses,
  );
  metric("queued_bytes", "gauge", "Bytes queued for all connections.", stats.queuedBytes);
  metric(
    "read_paused_connections",
    "gauge",
    "Connections not read because their outbound queue is above the high-water mark.",
    stats.readPaused,
  );
  metric(
    "rate_limited_messages_total",
    "counter",
    "Messages over a client's rate limits.",
    stats.rateLimitedMessages,
  );
  metric(
    "control_flood_closes_total",
    "counter",
    "Connections closed for sending too many pings and pongs.",
    stats.controlFloodCloses,
  );
  metric("topics", "gauge", "Topics with subscribers.", stats.topics);
  metric("subscriptions", "gauge", "Subscriptions over all topics.", stats.subscriptions);
  const latency = `${prefix}_heartbeat_rtt_ms`;
  lines.push(
    `# HELP ${latency} Heartbeat ping round trips, in milliseconds.`,
    `# TYPE ${latency} histogram`,
  );
  for (const { le, count } of stats.latency.buckets) {
    lines.push(`${latency}_bucket{le="${le}"} ${count}`);
  }
  lines.push(
    `${latency}_bucket{le="+Inf"} ${stats.latency.count}`,
    `${latency}_sum ${stats.latency.sum}`,
    `${latency}_count ${stats.latency.count}`,
  );
  return lines.join("\n") + "\n";
}
