/**
 * Short descriptions of values for error messages about what application code passed or
 * returned: `false`, `"yes"`, `{ user }`, `a Headers`.
 *
 * @module
 */

/** Characters of a string shown before it is cut. */
const MAX_STRING = 40;
/** Keys of a plain object shown before the rest are elided. */
const MAX_KEYS = 4;

/**
 * Describes a value in a few words, for an error message.
 *
 * @param value Anything.
 * @returns Primitives as written in code (strings quoted and cut), a plain object as the list
 * of its keys (`{ status, body }`), any other object by its constructor (`a Headers`).
 *
 * @example
 * ```ts
 * import { describe } from "./_describe.ts";
 * console.log(describe(false), describe({ user: "ann" }), describe(new Map())); // false { user } a Map
 * ```
 */
export function describe(value: unknown): string {
  switch (typeof value) {
    case "string": {
      const text = value.length > MAX_STRING ? `${value.slice(0, MAX_STRING)}…` : value;
      return JSON.stringify(text);
    }
    case "bigint":
      return `${value}n`;
    case "function":
      return "a function";
    case "object":
      break;
    default:
      return String(value);
  }
  if (value === null) return "null";
  if (Array.isArray(value)) return `an array of ${value.length}`;
  const prototype = Object.getPrototypeOf(value);
  if (prototype === Object.prototype || prototype === null) {
    const keys = Object.keys(value);
    if (keys.length === 0) return "{}";
    const shown = keys.slice(0, MAX_KEYS).join(", ");
    return `{ ${shown}${keys.length > MAX_KEYS ? ", …" : ""} }`;
  }
  const name = typeof prototype?.constructor === "function" && prototype.constructor.name !== ""
    ? prototype.constructor.name as string
    : "Object";
  return `${/^[AEIO]/.test(name) ? "an" : "a"} ${name}`;
}
