/**
 * Checks both roles make of what application code passes or returns, and how its errors are
 * reported: `serve` and `connect` word their messages with their own verb.
 *
 * @module
 */
import { WebSocketError } from "../protocol/errors.ts";
import { describe } from "./_describe.ts";

/**
 * Whether a value is a promise or another thenable, to be awaited.
 *
 * @param value Anything a hook or a handler returned.
 * @returns `true` if it has a `then` method.
 *
 * @example
 * ```ts
 * import { isThenable } from "./_checks.ts";
 * console.log(isThenable(Promise.resolve()), isThenable(null)); // true false
 * ```
 */
export function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (typeof value === "object" || typeof value === "function") && value !== null &&
    typeof (value as PromiseLike<unknown>).then === "function";
}

/**
 * Checks an integer option: a `TypeError` if it is not a number, a `RangeError` if it is out of
 * range, both worded `Cannot <verb>: <name> must be an integer from <min> to <max>, got …`.
 *
 * @param verb What the caller was doing: `"serve"`, `"connect"`.
 * @param value The option's value.
 * @param min The least allowed.
 * @param max The most allowed.
 * @param name The option's name, as the caller wrote it.
 *
 * @example
 * ```ts
 * import { checkInteger } from "./_checks.ts";
 * checkInteger("connect", 9, 8, 15, "perMessageDeflate.clientMaxWindowBits"); // fine
 * ```
 */
export function checkInteger(
  verb: string,
  value: number,
  min: number,
  max: number,
  name: string,
): void {
  if (!Number.isInteger(value) || value < min || value > max) {
    const message = `Cannot ${verb}: ${name} must be an integer from ${min} to ${max}, got ${
      describe(value)
    }`;
    throw typeof value === "number" ? new RangeError(message) : new TypeError(message);
  }
}

/**
 * Reports an error the application should hear of: to its `error` handler, else on the console
 * (always when `always`, and for anything but a protocol error otherwise). A throwing handler
 * is reported on the console, never thrown.
 *
 * @param handler The application's `error` handler, if it gave one.
 * @param error What went wrong.
 * @param ws The WebSocket it concerns (`undefined` before or without one).
 * @param always Print it even if it is a `WebSocketError`.
 *
 * @example
 * ```ts
 * import { reportError } from "./_checks.ts";
 * reportError((error) => console.log("handled:", (error as Error).message), new Error("x"));
 * ```
 */
export function reportError<W>(
  handler: ((error: unknown, ws: W | undefined) => void) | undefined,
  error: unknown,
  ws?: W,
  always = false,
): void {
  if (handler !== undefined) {
    try {
      handler(error, ws);
    } catch (inner) {
      console.error("sluice: the error handler threw", inner);
    }
  } else if (always || !(error instanceof WebSocketError)) {
    console.error("sluice:", error);
  }
}
