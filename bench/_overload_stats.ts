/**
 * What bench/fanout_overload.ts asks its servers (bench/fanout_overload_server.ts, and the
 * bare runtime's bench/fanout_overload_floor.ts) with the `stats` and `gc` commands.
 *
 * @module
 */
import process from "node:process";

/** What `ws.send` returned, counted. */
export interface SendCounts {
  /** `SendStatus.Sent`. */
  sent: number;
  /** `SendStatus.Backpressure`: queued behind unsent data (still delivered). */
  backpressure: number;
  /** `SendStatus.Dropped`: over `maxBackpressure`, not sent. */
  dropped: number;
  /** Skipped because the subscriber was closing (policy `close`). */
  skipped: number;
}

/** The server's counters, as the `stats` command answers them. */
export interface Stats extends SendCounts {
  /** Subscribers open now. */
  subscribers: number;
  /** Binary messages from the publisher. */
  published: number;
  /** The part of the send counts that went to subscribers tagged `?slow`. */
  slow: SendCounts;
  /** `drain` handler calls: a backed-up subscriber wrote out everything it had queued. */
  drains: number;
  /** Subscribers closed so far, by close code. */
  closes: Record<string, number>;
  /** Bytes queued now (`ws.bufferedAmount`), summed over all subscribers. */
  queued: number;
  /** … over the subscribers tagged `?slow`. */
  queuedSlow: number;
  /** The most any one subscriber has queued now. */
  maxQueued: number;
  /** The most any subscriber had queued at any `stats` so far. */
  peakQueued: number;
  /** The most all subscribers together had queued at any `stats` so far. */
  peakQueuedTotal: number;
  /** `process.memoryUsage()` now, in bytes: where the resident memory is. */
  memory: { heapTotal: number; heapUsed: number; external: number; arrayBuffers: number };
}

/** Counters at zero. */
export function emptyStats(): Stats {
  const counts = (): SendCounts => ({ sent: 0, backpressure: 0, dropped: 0, skipped: 0 });
  return {
    subscribers: 0,
    published: 0,
    ...counts(),
    slow: counts(),
    drains: 0,
    closes: {},
    queued: 0,
    queuedSlow: 0,
    maxQueued: 0,
    peakQueued: 0,
    peakQueuedTotal: 0,
    memory: memoryNow(),
  };
}

/** `process.memoryUsage()` now, the parts {@linkcode Stats} reports. */
export function memoryNow(): Stats["memory"] {
  const { heapTotal, heapUsed, external, arrayBuffers } = process.memoryUsage();
  return { heapTotal, heapUsed, external, arrayBuffers };
}

/** A full collection: `Bun.gc(true)` in Bun, `gc()` in Deno with `--v8-flags=--expose-gc`. */
export function collect(): void {
  const bun = (globalThis as { Bun?: { gc(force: boolean): void } }).Bun;
  if (bun !== undefined) bun.gc(true);
  else (globalThis as { gc?: () => void }).gc?.();
}
