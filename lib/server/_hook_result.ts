/**
 * Checks what the upgrade hook and `fetch` return, so that a mistake (`return false`,
 * `return { user }`, `return "ok"`) refuses the request with 500 and a `TypeError` that names
 * the value, instead of accepting a connection or breaking the response.
 *
 * @module
 */
import { describe } from "../core/_describe.ts";
import { isThenable } from "../core/_checks.ts";

export { isThenable };

/** The keys an accept object may have. */
const ACCEPT_KEYS: ReadonlySet<string> = new Set(["data", "protocol", "headers"]);

/** What the upgrade hook decided, once checked. */
export type UpgradeDecision =
  | { data?: unknown; protocol?: string; headers?: unknown }
  | Response
  | undefined;

/**
 * Checks what the upgrade hook returned (or its promise resolved to).
 *
 * @param value The hook's result.
 * @returns `undefined` or an accept object (accept), or a `Response` (refuse).
 * @throws {TypeError} For anything else, naming the value: `false`, `null`, `"yes"`, an object
 * with keys other than `data`, `protocol` and `headers`, or a `protocol` that is not a string.
 *
 * @example
 * ```ts
 * import { checkUpgradeResult } from "./_hook_result.ts";
 * console.log(checkUpgradeResult({ data: 1 })); // { data: 1 }
 * try {
 *   checkUpgradeResult({ user: "ann" });
 * } catch (error) {
 *   console.log((error as Error).message);
 *   // The upgrade hook returned { user }; return undefined or { data } to accept, or a Response to refuse
 * }
 * ```
 */
export function checkUpgradeResult(value: unknown): UpgradeDecision {
  if (value === undefined || value instanceof Response) return value;
  const accept = value as { data?: unknown; protocol?: unknown; headers?: unknown };
  const prototype = typeof value === "object" && value !== null
    ? Object.getPrototypeOf(value)
    : undefined;
  if (
    // A plain object (not an array, a Map or a class instance) with only the accept keys.
    (prototype !== Object.prototype && prototype !== null) ||
    Object.keys(value as object).some((key) => !ACCEPT_KEYS.has(key))
  ) {
    throw new TypeError(
      `The upgrade hook returned ${
        describe(value)
      }; return undefined or { data } to accept, or a Response to refuse`,
    );
  }
  if (accept.protocol !== undefined && typeof accept.protocol !== "string") {
    throw new TypeError(
      `The upgrade hook returned a protocol that is not a string: ${describe(accept.protocol)}`,
    );
  }
  return accept as UpgradeDecision;
}

/**
 * Checks what `fetch` returned (or its promise resolved to).
 *
 * @param value The handler's result.
 * @returns The `Response`, or `undefined` for nothing (`undefined` or `null`: a 404).
 * @throws {TypeError} For anything else, naming the value.
 *
 * @example
 * ```ts
 * import { checkFetchResult } from "./_hook_result.ts";
 * console.log(checkFetchResult(null)); // undefined
 * try {
 *   checkFetchResult("ok");
 * } catch (error) {
 *   console.log((error as Error).message);
 *   // The fetch handler returned "ok"; return a Response, or undefined for a 404
 * }
 * ```
 */
export function checkFetchResult(value: unknown): Response | undefined {
  if (value === undefined || value === null) return undefined;
  if (value instanceof Response) return value;
  throw new TypeError(
    `The fetch handler returned ${describe(value)}; return a Response, or undefined for a 404`,
  );
}
