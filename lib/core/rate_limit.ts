/**
 * Per-connection rate limits: token buckets for messages and bytes a client sends.
 *
 * @module
 */

/**
 * How much a client may send, per second, before {@linkcode RateLimitOptions.policy} applies
 * (the `rateLimit` option of `serve`).
 *
 * @example
 * ```ts
 * import { connect, serve } from "@sluice/ws";
 * // 2 messages a second, no burst beyond that, and 64 KiB a second; close those who send more.
 * const server = serve({
 *   port: 0,
 *   rateLimit: { messages: 2, bytes: 65_536, burst: 1, policy: "close" },
 * });
 * const client = await connect(`ws://127.0.0.1:${server.port}/`);
 * for (let i = 0; i < 3; i++) client.send(`message ${i}`);
 * console.log(await client.closed); // { code: 1008, reason: "Rate limit exceeded" }
 * console.log(server.stats().rateLimitedMessages); // 1
 * await server.shutdown();
 * ```
 */
export interface RateLimitOptions {
  /** Data messages (and pings) per second. @default {Infinity} */
  messages?: number;
  /** Bytes per second, counted as they arrive from the socket (frame headers included).
   * @default {Infinity} */
  bytes?: number;
  /**
   * How far a client may get ahead of the rates in a burst, in seconds' worth of each: with
   * `messages: 10, burst: 2`, 20 messages at once are fine, then 10 per second.
   * @default {1}
   */
  burst?: number;
  /**
   * `"close"` closes the connection with 1008 ("Rate limit exceeded") at the first message
   * over a limit; `"drop"` drops messages while over (the `message` handler does not see them)
   * and counts them (`ws.rateLimitedMessages`).
   * @default {"close"}
   */
  policy?: "close" | "drop";
}

/**
 * Two token buckets, refilled continuously by the clock the caller passes.
 *
 * @example
 * ```ts
 * import { RateLimiter } from "./rate_limit.ts";
 * const limiter = new RateLimiter({ messages: 2 }, 0);
 * console.log(limiter.takeMessage(0), limiter.takeMessage(0), limiter.takeMessage(0)); // true true false
 * console.log(limiter.takeMessage(500)); // true: half a second refilled one
 * ```
 */
export class RateLimiter {
  #messageRate: number;
  #byteRate: number;
  #messageCap: number;
  #byteCap: number;
  #messages: number;
  #bytes: number;
  #last: number;

  /**
   * Starts with full buckets.
   *
   * @param options The rates and the burst.
   * @param now The clock, in ms.
   */
  constructor(options: RateLimitOptions, now: number) {
    const burst = options.burst ?? 1;
    const messages = options.messages ?? Infinity;
    const bytes = options.bytes ?? Infinity;
    this.#messageRate = messages / 1000;
    this.#byteRate = bytes / 1000;
    this.#messages = this.#messageCap = messages * burst;
    this.#bytes = this.#byteCap = bytes * burst;
    this.#last = now;
  }

  #refill(now: number): void {
    const elapsed = now - this.#last;
    if (elapsed <= 0) return;
    this.#last = now;
    this.#messages = Math.min(this.#messageCap, this.#messages + elapsed * this.#messageRate);
    this.#bytes = Math.min(this.#byteCap, this.#bytes + elapsed * this.#byteRate);
  }

  /**
   * Counts bytes that arrived. They are in already, so the bucket may go below zero: messages
   * are refused until it refills.
   *
   * @param count The bytes.
   * @param now The clock, in ms.
   * @returns Whether the client is within its byte rate.
   */
  takeBytes(count: number, now: number): boolean {
    this.#refill(now);
    this.#bytes -= count;
    return this.#bytes >= 0;
  }

  /**
   * Asks for one message.
   *
   * @param now The clock, in ms.
   * @returns Whether the message is within both rates (if not, no token is taken).
   */
  takeMessage(now: number): boolean {
    this.#refill(now);
    if (this.#messages < 1 || this.#bytes < 0) return false;
    this.#messages--;
    return true;
  }
}

/**
 * Checks rate limit options.
 *
 * @param options The options.
 * @returns The options, checked.
 * @throws {RangeError} For a rate or burst that is not a positive number, or an unknown policy.
 */
export function checkRateLimit(options: RateLimitOptions): RateLimitOptions {
  for (const name of ["messages", "bytes", "burst"] as const) {
    const value = options[name];
    if (value !== undefined && !(value > 0)) {
      throw new RangeError(
        `Cannot serve: rateLimit.${name} must be a positive number, got ${value}`,
      );
    }
  }
  // A bucket that never holds one message admits nothing: surely not what was meant.
  if ((options.messages ?? Infinity) * (options.burst ?? 1) < 1) {
    throw new RangeError(
      "Cannot serve: rateLimit.messages × rateLimit.burst must be at least 1 message",
    );
  }
  const policy = options.policy;
  if (policy !== undefined && policy !== "close" && policy !== "drop") {
    throw new RangeError(`Cannot serve: rateLimit.policy must be "close" or "drop", got ${policy}`);
  }
  return options;
}
