/**
 * The Origin allowlist: the defence against cross-site WebSocket hijacking.
 *
 * Browsers let any page open a WebSocket to any host, and send that host's cookies with the
 * upgrade request; the server's only clue to which site opened it is the Origin header
 * (RFC 6455 §10.2, RFC 6454 §7). This module compiles a list of allowed origins, once, into a
 * predicate for that header. It is pure and runtime-neutral: no I/O, no globals of a runtime.
 *
 * @module
 */

/**
 * An allowed origin: an exact origin string, a pattern with one leading `*.` wildcard label,
 * or a RegExp tested against the Origin header as sent.
 *
 * - `"https://example.com"`: that origin. Scheme and host compare case-insensitively and a
 *   default port may be written or left out (`https://example.com:443` is the same rule); one
 *   trailing `/` is tolerated, since a URL pasted from the address bar has one.
 * - `"https://*.example.com"`: every origin with that scheme and port whose host ends in
 *   `.example.com` after at least one label (`a.example.com`, `a.b.example.com`); not
 *   `example.com` itself, nor `evilexample.com`.
 * - `"null"`: the opaque origin `null`, sent by sandboxed iframes and `file://` pages.
 * - A RegExp: tested against the header exactly as sent, `null` included. Anchor it and escape
 *   its dots: `/example\.com/` also matches `https://example.com.evil.net`.
 *
 * @example
 * ```ts
 * import type { OriginRule } from "./origin.ts";
 * const rules: OriginRule[] = [
 *   "https://example.com",
 *   "https://*.example.com",
 *   /^http:\/\/localhost:\d+$/,
 * ];
 * ```
 */
export type OriginRule = string | RegExp;

// ---------------------------------------------------------------------------------------------
// Character tables

const DOT = 0x2e;
const SLASH = 0x2f;
const ZERO = 0x30;
const NINE = 0x39;
const COLON = 0x3a;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;

/** 1 for each character that may follow the first letter of a scheme (RFC 3986 §3.1). */
const SCHEME = new Uint8Array(128);
/**
 * 1 for each character of a host name label: letters, digits, `-` and `_`. That is what
 * browsers serialize (hosts are in their ASCII, punycode form, RFC 6454 §4); the rarer
 * characters RFC 3986 allows in a reg-name are never in a browser's Origin header.
 */
const LABEL = new Uint8Array(128);
/** 1 for each character inside the brackets of an IPv6 literal (RFC 3986 §3.2.2). */
const IPV6 = new Uint8Array(128);
for (const c of "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") {
  SCHEME[c.charCodeAt(0)] = 1;
  LABEL[c.charCodeAt(0)] = 1;
}
for (const c of "+-.") SCHEME[c.charCodeAt(0)] = 1;
for (const c of "-_") LABEL[c.charCodeAt(0)] = 1;
for (const c of "0123456789abcdefABCDEF:.") IPV6[c.charCodeAt(0)] = 1;

/**
 * The default port of each scheme whose origins leave it out (the URL Standard's special
 * schemes that can open a WebSocket, and ws/wss themselves).
 */
const DEFAULT_PORTS: Readonly<Record<string, number>> = {
  http: 80,
  https: 443,
  ws: 80,
  wss: 443,
};

function isAsciiLetter(c: number): boolean {
  return (c | 0x20) >= 0x61 && (c | 0x20) <= 0x7a;
}

function isUpper(c: number): boolean {
  return c >= 0x41 && c <= 0x5a;
}

// ---------------------------------------------------------------------------------------------
// Parsing

/**
 * The normalised form of a serialized origin (RFC 6454 §6.2): `scheme://host[:port]` with the
 * scheme and host lower-cased, a default port left out and an IPv6 literal in its canonical
 * form; undefined when `text` is not a serialized origin (a path, a query, userinfo, spaces, an
 * empty label, a port above 65535 or with leading zeros, non-ASCII…).
 *
 * A hand-written scan rather than `new URL`: the URL parser is lenient where an allowlist must
 * not be (it drops paths and userinfo, accepts backslashes and tabs, rewrites `127.1`), and it
 * allocates a URL object per handshake. An origin that is already normalised, as every
 * browser's is, is returned as it is: a scan and no allocation. Only an IPv6 literal goes
 * through `new URL`, after the scan has checked its characters, to put it in canonical form.
 */
function normalizeOrigin(text: string): string | undefined {
  const length = text.length;
  let lower = true;
  // scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )
  let c = text.charCodeAt(0);
  if (!isAsciiLetter(c)) return undefined;
  let i = 0;
  for (; i < length; i++) {
    c = text.charCodeAt(i);
    if (c === COLON) break;
    if (SCHEME[c] !== 1) return undefined;
    if (isUpper(c)) lower = false;
  }
  const schemeEnd = i;
  if (text.charCodeAt(i + 1) !== SLASH || text.charCodeAt(i + 2) !== SLASH) return undefined;
  const hostStart = i + 3;
  i = hostStart;
  let ipv6 = false;
  if (text.charCodeAt(i) === OPEN_BRACKET) {
    ipv6 = true;
    i++;
    while (i < length && IPV6[text.charCodeAt(i)] === 1) i++;
    if (text.charCodeAt(i) !== CLOSE_BRACKET) return undefined;
    i++;
  } else {
    // Labels separated by dots, none empty; one trailing dot is part of a distinct origin
    // (`example.com.` is not `example.com`), so it is kept, never matched to the dotless one.
    let labelStart = i;
    for (; i < length; i++) {
      c = text.charCodeAt(i);
      if (c === DOT) {
        if (i === labelStart) return undefined;
        labelStart = i + 1;
      } else if (LABEL[c] === 1) {
        if (isUpper(c)) lower = false;
      } else {
        break;
      }
    }
    if (i === hostStart) return undefined;
  }
  const hostEnd = i;
  let port = -1;
  if (i < length) {
    if (text.charCodeAt(i) !== COLON) return undefined;
    const portStart = ++i;
    port = 0;
    for (; i < length; i++) {
      c = text.charCodeAt(i);
      if (c < ZERO || c > NINE) return undefined;
      port = port * 10 + c - ZERO;
      if (port > 65535) return undefined;
    }
    // RFC 6454 §6.2 serializes the port in decimal, so never empty nor with a leading zero.
    if (i === portStart || (text.charCodeAt(portStart) === ZERO && i > portStart + 1)) {
      return undefined;
    }
  }
  let scheme: string | undefined;
  let defaultPort = false;
  // Every default port is 80 or 443: only then is the scheme worth a string of its own.
  if (port === 80 || port === 443) {
    scheme = text.slice(0, schemeEnd).toLowerCase();
    defaultPort = DEFAULT_PORTS[scheme] === port;
  }
  if (lower && !ipv6 && !defaultPort) return text;

  scheme ??= text.slice(0, schemeEnd).toLowerCase();
  let host = text.slice(hostStart, hostEnd);
  if (ipv6) {
    try {
      host = new URL(`http://${host}`).hostname;
    } catch {
      return undefined;
    }
  } else if (!lower) {
    host = host.toLowerCase();
  }
  return port === -1 || defaultPort ? `${scheme}://${host}` : `${scheme}://${host}:${port}`;
}

// ---------------------------------------------------------------------------------------------
// Matcher

/** A compiled `scheme://*.suffix[:port]` rule. */
interface WildcardRule {
  /** `scheme://`, lower-cased. */
  prefix: string;
  /** `.suffix[:port]`, normalised: the host's dot-led tail, then any non-default port. */
  suffix: string;
}

function refuse(rule: string, why: string): never {
  throw new TypeError(`Cannot serve: the origin rule ${JSON.stringify(rule)} ${why}`);
}

/**
 * `scheme://host[:port]` with its non-ASCII host in ASCII (IDNA, as the URL Standard does it),
 * or undefined when `text` would not be an origin even so.
 */
function asciiHostForm(text: string): string | undefined {
  // The host part excludes what `new URL` would quietly drop or split off: a path, a query, a
  // fragment, userinfo, spaces, percent-escapes.
  const match = /^([^:]+:\/\/)([^:/?#@%\\\s[\]]+)(:\d+)?$/.exec(text);
  if (match === null) return undefined;
  let host: string;
  try {
    host = new URL(`http://${match[2]}`).hostname;
  } catch {
    return undefined;
  }
  const ascii = `${match[1]}${host}${match[3] ?? ""}`;
  return normalizeOrigin(ascii) === undefined ? undefined : ascii;
}

/** Adds a string rule other than `"null"` to the exact origins or to the wildcards, or throws. */
function compileStringRule(rule: string, exact: Set<string>, wildcards: WildcardRule[]): void {
  if (rule === "*") {
    refuse(rule, "would allow every origin; to allow every origin, configure no allowlist");
  }
  let text = rule.endsWith("/") ? rule.slice(0, -1) : rule;
  const separator = text.indexOf("://");
  const wildcard = separator > 0 && text.startsWith("*.", separator + 3);
  if (wildcard) text = text.slice(0, separator + 3) + text.slice(separator + 5);
  // deno-lint-ignore no-control-regex
  if (/[^\x00-\x7f]/.test(text)) {
    // Browsers send a host in its ASCII form; say which one rather than quietly convert it,
    // so that the allowlist shows the very strings it compares.
    const ascii = asciiHostForm(text);
    if (ascii === undefined) refuse(rule, "is not an origin (scheme://host[:port])");
    const suggestion = wildcard ? ascii.replace("://", "://*.") : ascii;
    refuse(rule, `has a non-ASCII host; write it in ASCII, as ${JSON.stringify(suggestion)}`);
  }
  if (text.includes("*")) {
    refuse(rule, `has a "*" that is not one whole leading label (as in "https://*.example.com")`);
  }
  const origin = normalizeOrigin(text);
  if (origin === undefined) refuse(rule, "is not an origin (scheme://host[:port])");
  if (!wildcard) {
    exact.add(origin);
    return;
  }
  const hostStart = origin.indexOf("://") + 3;
  const portStart = origin.indexOf(":", hostStart);
  const host = origin.slice(hostStart, portStart === -1 ? origin.length : portStart);
  // A host whose last label is a number is an IPv4 address (URL Standard, "ends in a number"):
  // its "subdomains" are other addresses, not names under one owner.
  if (host.startsWith("[") || /(^|\.)\d+\.?$/.test(host)) {
    refuse(rule, "puts a wildcard on an IP address");
  }
  wildcards.push({ prefix: origin.slice(0, hostStart), suffix: `.${origin.slice(hostStart)}` });
}

/**
 * Compiles an Origin allowlist, once, into a predicate for the Origin header of each upgrade
 * request (see {@linkcode OriginRule} for what each rule matches).
 *
 * An exact rule costs one Set lookup per call, a wildcard rule two string comparisons, a RegExp
 * one test; a header that is already a normalised origin, as a browser's is, is matched without
 * allocating. A header that is not a serialized origin (a path, spaces, userinfo, a list of
 * origins) matches no string rule; RegExps still see it as sent. An empty list allows nothing:
 * to allow every origin, configure no allowlist. What a missing Origin header means (clients
 * other than browsers often send none) is the caller's decision: this predicate only takes one.
 *
 * @param rules The allowed origins.
 * @returns A predicate: true when the Origin header value is allowed.
 * @throws {TypeError} When a rule is neither a string nor a RegExp, or a string rule is not an
 * origin, such as `Cannot serve: the origin rule "https://example.com/app" is not an origin
 * (scheme://host[:port])`; also for `"*"` and for a `*` that is not one whole leading label.
 *
 * @example
 * ```ts
 * import { originMatcher } from "./origin.ts";
 * const allowed = originMatcher(["https://example.com", "https://*.example.com", "null"]);
 * console.log(allowed("https://example.com")); // true
 * console.log(allowed("https://EXAMPLE.com:443")); // true
 * console.log(allowed("https://chat.example.com")); // true
 * console.log(allowed("https://evilexample.com")); // false
 * console.log(allowed("http://example.com")); // false
 * console.log(allowed("null")); // true
 * ```
 */
export function originMatcher(rules: readonly OriginRule[]): (origin: string) => boolean {
  if (!Array.isArray(rules)) {
    throw new TypeError("Cannot serve: the origin rules must be an array");
  }
  const exact = new Set<string>();
  const wildcards: WildcardRule[] = [];
  const patterns: RegExp[] = [];
  let allowNull = false;
  for (const rule of rules as readonly unknown[]) {
    if (rule instanceof RegExp) {
      // A copy, whose lastIndex is ours to reset: the caller's RegExp is left alone.
      patterns.push(new RegExp(rule));
    } else if (typeof rule !== "string") {
      const type = rule === null ? "null" : typeof rule;
      throw new TypeError(`Cannot serve: an origin rule must be a string or a RegExp, not ${type}`);
    } else if (rule === "null") {
      // RFC 6454 §7.1: "null" is case-sensitive (%x6E.75.6C.6C).
      allowNull = true;
    } else {
      compileStringRule(rule, exact, wildcards);
    }
  }

  return (origin: string): boolean => {
    // Typed as a string, but a JavaScript caller may pass undefined for a missing header, and
    // a RegExp would then test the text "undefined".
    if (typeof origin !== "string") return false;
    if (origin === "null") {
      if (allowNull) return true;
    } else {
      const normalized = normalizeOrigin(origin);
      if (normalized !== undefined) {
        if (exact.has(normalized)) return true;
        for (const { prefix, suffix } of wildcards) {
          // The suffix starts with a dot and normalizeOrigin() lets no label be empty, so the
          // host has at least one whole label before the suffix: never the apex itself.
          if (normalized.startsWith(prefix) && normalized.endsWith(suffix)) return true;
        }
      }
    }
    for (const pattern of patterns) {
      // A global or sticky RegExp starts where its last match ended: start each test afresh.
      pattern.lastIndex = 0;
      if (pattern.test(origin)) return true;
    }
    return false;
  };
}
