/**
 * The real client address behind trusted reverse proxies: a trust list of addresses and CIDR
 * ranges, and a walk over the hops that the proxies reported in `Forwarded` (RFC 7239) or
 * `X-Forwarded-For`.
 *
 * Pure and runtime-neutral: strings in, a string out. Addresses are compared as bytes, so
 * every textual form of an IPv6 address (compressed, leading zeros, upper case, embedded
 * IPv4) matches, and an IPv4-mapped IPv6 address (`::ffff:10.0.0.1`, as a dual-stack listener
 * reports an IPv4 peer) is the IPv4 address.
 *
 * @module
 */

// ---------------------------------------------------------------------------------------------
// Addresses

const DOT = 0x2e;
const COLON = 0x3a;

/**
 * The value of a hexadecimal digit, or -1.
 */
function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  const lower = c | 0x20;
  return lower >= 0x61 && lower <= 0x66 ? lower - 0x61 + 10 : -1;
}

/**
 * Dotted-decimal IPv4 (RFC 3986 §3.2.2's dec-octet): four parts of 0–255 without leading
 * zeros, which some parsers read as octal (inet_aton) and others as decimal.
 */
function parseIPv4(text: string): Uint8Array | undefined {
  const bytes = new Uint8Array(4);
  const n = text.length;
  let part = 0;
  let i = 0;
  for (;;) {
    const start = i;
    let value = 0;
    while (i < n && i - start < 3) {
      const d = text.charCodeAt(i) - 0x30;
      if (d < 0 || d > 9) break;
      value = value * 10 + d;
      i++;
    }
    const digits = i - start;
    if (digits === 0 || value > 255 || (digits > 1 && text.charCodeAt(start) === 0x30)) {
      return undefined;
    }
    bytes[part++] = value;
    if (part === 4) return i === n ? bytes : undefined;
    if (i === n || text.charCodeAt(i) !== DOT) return undefined;
    i++;
  }
}

/**
 * IPv6 text (RFC 4291 §2.2): eight groups of 1–4 hex digits in either case, at most one `::`
 * standing for one or more zero groups, the last 32 bits optionally in dotted IPv4. No zone.
 */
function parseIPv6(text: string): Uint8Array | undefined {
  const n = text.length;
  const words = new Uint16Array(8);
  let count = 0;
  let gap = -1; // where `::` stands, as a number of groups before it
  let i = 0;
  if (text.charCodeAt(0) === COLON) {
    if (text.charCodeAt(1) !== COLON) return undefined;
    gap = 0;
    i = 2;
  }
  while (i < n) {
    if (count === 8) return undefined;
    const start = i;
    let value = 0;
    while (i < n && i - start < 4) {
      const d = hexValue(text.charCodeAt(i));
      if (d < 0) break;
      value = value * 16 + d;
      i++;
    }
    if (i < n && text.charCodeAt(i) === DOT) {
      // RFC 4291 §2.2 form 3: dotted IPv4 as the last two groups, and nothing after it.
      const v4 = count <= 6 ? parseIPv4(text.slice(start)) : undefined;
      if (v4 === undefined) return undefined;
      words[count++] = (v4[0] << 8) | v4[1];
      words[count++] = (v4[2] << 8) | v4[3];
      break;
    }
    if (i === start) return undefined; // an empty group: ":::" or a stray colon
    words[count++] = value;
    if (i === n) break;
    if (text.charCodeAt(i) !== COLON) return undefined; // a fifth digit or a foreign character
    i++;
    if (text.charCodeAt(i) === COLON) {
      if (gap >= 0) return undefined;
      gap = count;
      i++;
    } else if (i === n) {
      return undefined; // a trailing single colon
    }
  }
  // Without `::`, all eight groups; with it, at least one group left for it to stand for.
  if (gap < 0 ? count !== 8 : count === 8) return undefined;
  const bytes = new Uint8Array(16);
  const tail = gap < 0 ? count : gap;
  for (let g = 0; g < count; g++) {
    const at = g < tail ? g : 8 - count + g;
    bytes[2 * at] = words[g] >> 8;
    bytes[2 * at + 1] = words[g] & 0xff;
  }
  return bytes;
}

/** The address as bytes: 4 for IPv4, 16 for IPv6 (IPv4-mapped included), or undefined. */
function parseIP(text: string): Uint8Array | undefined {
  return text.includes(":") ? parseIPv6(text) : parseIPv4(text);
}

/** Whether 16 bytes are an IPv4-mapped IPv6 address, `::ffff:a.b.c.d` (RFC 4291 §2.5.5.2). */
function isMapped(bytes: Uint8Array): boolean {
  if (bytes.length !== 16 || bytes[10] !== 0xff || bytes[11] !== 0xff) return false;
  for (let i = 0; i < 10; i++) if (bytes[i] !== 0) return false;
  return true;
}

/** The 4 bytes of an IPv4-mapped address, the bytes unchanged otherwise. */
function unmap(bytes: Uint8Array): Uint8Array {
  return isMapped(bytes) ? bytes.subarray(12) : bytes;
}

/** The text of 4 or 16 bytes: dotted decimal, or RFC 5952's canonical IPv6 form. */
function formatIP(bytes: Uint8Array): string {
  if (bytes.length === 4) return `${bytes[0]}.${bytes[1]}.${bytes[2]}.${bytes[3]}`;
  // RFC 5952 §4.2: `::` replaces the longest run of two or more zero groups, the first one
  // on a tie; §4.1 and §4.3: no leading zeros, lower case.
  let runStart = -1;
  let runLength = 1;
  for (let g = 0; g < 8;) {
    if (bytes[2 * g] !== 0 || bytes[2 * g + 1] !== 0) {
      g++;
      continue;
    }
    const start = g;
    while (g < 8 && bytes[2 * g] === 0 && bytes[2 * g + 1] === 0) g++;
    if (g - start > runLength) {
      runStart = start;
      runLength = g - start;
    }
  }
  let text = "";
  for (let g = 0; g < 8; g++) {
    if (g === runStart) {
      text += "::";
      g += runLength - 1;
      continue;
    }
    if (text !== "" && !text.endsWith(":")) text += ":";
    text += ((bytes[2 * g] << 8) | bytes[2 * g + 1]).toString(16);
  }
  return text;
}

// ---------------------------------------------------------------------------------------------
// Trust

/** The names {@linkcode proxyTrust} knows, and the ranges each stands for. */
const NAMED_RANGES: Readonly<Record<string, readonly string[]>> = {
  loopback: ["127.0.0.0/8", "::1/128"],
  private: ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"],
  linklocal: ["169.254.0.0/16", "fe80::/10"],
};

/** A CIDR range: the network's bytes (host bits cleared) and the prefix length. */
interface Range {
  network: Uint8Array;
  prefix: number;
}

/** A prefix length: decimal without leading zeros, 0 to `max`; -1 when it is not one. */
function parsePrefix(text: string, max: number): number {
  if (text.length === 0 || text.length > 3 || (text.length > 1 && text.charCodeAt(0) === 0x30)) {
    return -1;
  }
  let value = 0;
  for (let i = 0; i < text.length; i++) {
    const d = text.charCodeAt(i) - 0x30;
    if (d < 0 || d > 9) return -1;
    value = value * 10 + d;
  }
  return value <= max ? value : -1;
}

/** One trust entry as a range: an address is a range of one (/32, /128). */
function parseRange(entry: string): Range | undefined {
  const slash = entry.indexOf("/");
  const network = parseIP(slash < 0 ? entry : entry.slice(0, slash));
  if (network === undefined) return undefined;
  const bits = network.length * 8;
  const prefix = slash < 0 ? bits : parsePrefix(entry.slice(slash + 1), bits);
  if (prefix < 0) return undefined;
  // Host bits below the prefix are cleared, as nginx's set_real_ip_from does: "10.1.2.3/8"
  // is 10.0.0.0/8.
  for (let bit = prefix; bit < bits; bit++) network[bit >> 3] &= ~(0x80 >> (bit & 7));
  return { network, prefix };
}

/** Whether `bytes` (as long as the range's network) lie in the range. */
function inRange(bytes: Uint8Array, range: Range): boolean {
  const { network, prefix } = range;
  const whole = prefix >> 3;
  for (let i = 0; i < whole; i++) if (bytes[i] !== network[i]) return false;
  const rest = prefix & 7;
  if (rest === 0) return true;
  const mask = (0xff << (8 - rest)) & 0xff;
  return (bytes[whole] & mask) === network[whole];
}

/** The 16-byte IPv4-mapped form of 4 IPv4 bytes. */
function mapped(v4: Uint8Array): Uint8Array {
  const bytes = new Uint8Array(16);
  bytes[10] = 0xff;
  bytes[11] = 0xff;
  bytes.set(v4, 12);
  return bytes;
}

/**
 * Compiles a list of trusted proxies into a predicate.
 *
 * Each entry is an IPv4 or IPv6 address (`"10.0.0.1"`, `"::1"`), a CIDR range
 * (`"10.0.0.0/8"`, `"fd00::/8"`; host bits below the prefix are ignored, so `"10.1.2.3/8"` is
 * `"10.0.0.0/8"`), or one of the names `"loopback"` (127.0.0.0/8, ::1), `"private"` (10/8,
 * 172.16/12, 192.168/16, fc00::/7) and `"linklocal"` (169.254/16, fe80::/10). Surrounding
 * whitespace is ignored.
 *
 * The predicate compares bytes, not text: every form of an IPv6 address matches, and an IPv4
 * address and its IPv4-mapped IPv6 form (`::ffff:10.0.0.1`) are one address, matched by IPv4
 * ranges and by IPv6 ranges that contain `::ffff:0:0/96` (so `"::/0"` trusts everyone). A
 * `%zone` suffix on an IPv6 address is ignored; text that is not an address is not trusted.
 *
 * @param list The trusted addresses, ranges and names.
 * @returns A predicate telling whether an address is a trusted proxy.
 * @throws {TypeError} `Cannot serve: "10.0.0.0/33" in trustProxy is not an IP address or CIDR
 * range` for an entry that is none of these.
 *
 * @example
 * ```ts
 * import { proxyTrust } from "./forwarded.ts";
 * const trusted = proxyTrust(["loopback", "10.0.0.0/8", "2001:db8::/32"]);
 * console.log(trusted("10.1.2.3"), trusted("::ffff:10.1.2.3")); // true true
 * console.log(trusted("2001:DB8:0:0::7"), trusted("192.0.2.1")); // true false
 * ```
 */
export function proxyTrust(list: readonly string[]): (address: string) => boolean {
  const v4: Range[] = [];
  const v6: Range[] = [];
  for (const item of list) {
    const entry = typeof item === "string" ? item.trim() : "";
    const ranges = Object.hasOwn(NAMED_RANGES, entry) ? NAMED_RANGES[entry] : [entry];
    for (const text of ranges) {
      const range = parseRange(text);
      if (range === undefined) {
        throw new TypeError(
          `Cannot serve: "${String(item)}" in trustProxy is not an IP address or CIDR range`,
        );
      }
      (range.network.length === 4 ? v4 : v6).push(range);
    }
  }
  return (address: string): boolean => {
    const percent = address.indexOf("%");
    const parsed = percent < 0 ? parseIP(address) : parseIPv6(address.slice(0, percent)); // RFC 4007 §11: fe80::1%eth0
    if (parsed === undefined) return false;
    const bytes = unmap(parsed);
    if (bytes.length === 4) {
      for (const range of v4) if (inRange(bytes, range)) return true;
      if (v6.length === 0) return false;
    }
    const wide = bytes.length === 4 ? mapped(bytes) : bytes;
    for (const range of v6) if (inRange(wide, range)) return true;
    return false;
  };
}

// ---------------------------------------------------------------------------------------------
// Hops

/**
 * Hops beyond this many from the right are ignored: the trust walk does bounded work whatever
 * a client puts in the header (the head size limit bounds the splitting before it). A chain
 * of 64 trusted proxies is far more than any deployment has.
 */
const MAX_HOPS = 64;

/**
 * `text` cut at each `separator` outside double quotes (a backslash inside quotes escapes the
 * next character, RFC 9110 §5.6.4). An unclosed quote runs to the end.
 */
function splitOutsideQuotes(text: string, separator: string): string[] {
  const parts: string[] = [];
  let start = 0;
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === "\\") i++;
      else if (c === '"') quoted = false;
    } else if (c === '"') {
      quoted = true;
    } else if (c === separator) {
      parts.push(text.slice(start, i));
      start = i + 1;
    }
  }
  parts.push(text.slice(start));
  return parts;
}

/** A parameter value: a token as is, a quoted-string unquoted; undefined when malformed. */
function unquote(value: string): string | undefined {
  if (!value.startsWith('"')) return value;
  let text = "";
  for (let i = 1; i < value.length; i++) {
    const c = value[i];
    if (c === '"') return i === value.length - 1 ? text : undefined;
    if (c === "\\") i++;
    text += value[i] ?? "";
  }
  return undefined; // no closing quote
}

/**
 * The `for=` value of each element of the `Forwarded` headers (RFC 7239 §4), left to right:
 * null for an element without one, with it twice (§4 forbids that) or malformed.
 */
function forwardedFor(values: readonly string[]): Array<string | null> {
  const hops: Array<string | null> = [];
  // Each header line is split on its own, so that an unclosed quote in one cannot swallow
  // the next.
  for (const value of values) {
    for (const element of splitOutsideQuotes(value, ",")) {
      // RFC 9110 §5.6.1: empty list elements are ignored.
      if (element.trim() === "") continue;
      let found: string | null | undefined;
      for (const pair of splitOutsideQuotes(element, ";")) {
        const equals = pair.indexOf("=");
        if (equals < 0 || pair.slice(0, equals).trim().toLowerCase() !== "for") continue;
        found = found === undefined ? unquote(pair.slice(equals + 1).trim()) ?? null : null;
      }
      hops.push(found ?? null);
    }
  }
  return hops;
}

/** Whether `text` is a port: 1–5 digits, or an obfuscated port `_xyz` (RFC 7239 §6.3). */
function isPort(text: string): boolean {
  if (text.length === 0) return false;
  if (text[0] === "_") return text.length > 1;
  if (text.length > 5) return false;
  for (let i = 0; i < text.length; i++) {
    const d = text.charCodeAt(i) - 0x30;
    if (d < 0 || d > 9) return false;
  }
  return true;
}

/**
 * The address of one hop as text in canonical form, or undefined when it is none: `unknown`,
 * an obfuscated `_xyz` (RFC 7239 §6.2, §6.3), garbage. Takes `1.2.3.4`, `1.2.3.4:80`, bare
 * IPv6, `[v6]` and `[v6]:80`.
 */
function hopAddress(node: string): string | undefined {
  let host = node;
  if (node.startsWith("[")) {
    const close = node.indexOf("]");
    if (close < 0) return undefined;
    const after = node.slice(close + 1);
    if (after !== "" && !(after[0] === ":" && isPort(after.slice(1)))) return undefined;
    const bytes = parseIPv6(node.slice(1, close));
    return bytes === undefined ? undefined : formatIP(unmap(bytes));
  }
  const colon = node.indexOf(":");
  if (colon >= 0 && colon === node.lastIndexOf(":")) {
    // One colon: IPv4 and a port (IPv6 has at least two).
    if (!isPort(node.slice(colon + 1))) return undefined;
    host = node.slice(0, colon);
  }
  const bytes = parseIP(host);
  return bytes === undefined ? undefined : formatIP(unmap(bytes));
}

/**
 * The client's address as trusted proxies report it.
 *
 * When `remote` (the peer of the TCP connection) is not trusted, it is the client, and the
 * headers are ignored: anyone can send them. When it is trusted, the hops the proxies
 * reported are walked from the nearest (rightmost) back: a trusted address is passed over,
 * the first untrusted address is the client, and an entry that is not an address (`unknown`,
 * an obfuscated identifier, garbage) stops the walk at the trusted proxy that reported it. If
 * every hop is trusted, the leftmost is the client. Only the 64 rightmost hops are looked at.
 *
 * The hops come from every `Forwarded` header (RFC 7239), in order, when there is one: the
 * `for=` parameter of each element (quoted or not, IPv6 in brackets, a port stripped).
 * Otherwise from every `X-Forwarded-For` header, comma-separated (a port on `1.2.3.4:5678` or
 * `[v6]:5678` stripped).
 *
 * An address read from a header is returned in canonical form (dotted IPv4, RFC 5952 IPv6);
 * `remote` is returned as given, except that an IPv4-mapped address is returned as IPv4.
 *
 * @param remote The peer address of the connection, as the runtime reports it.
 * @param headers The request headers, names in lower case (`RequestHead.headers`).
 * @param trusted Whether an address is a trusted proxy, usually from {@linkcode proxyTrust}.
 * @returns The client's address.
 *
 * @example
 * ```ts
 * import { clientAddress, proxyTrust } from "./forwarded.ts";
 * const trusted = proxyTrust(["loopback", "10.0.0.0/8"]);
 * const headers: Array<[string, string]> = [
 *   ["x-forwarded-for", "198.51.100.7, 203.0.113.9, 10.0.0.2"],
 * ];
 * console.log(clientAddress("::ffff:127.0.0.1", headers, trusted)); // 203.0.113.9
 * console.log(clientAddress("192.0.2.1", headers, trusted)); // 192.0.2.1
 * ```
 */
export function clientAddress(
  remote: string,
  headers: ReadonlyArray<[string, string]>,
  trusted: (address: string) => boolean,
): string {
  const parsedRemote = parseIP(remote);
  const client = parsedRemote !== undefined && isMapped(parsedRemote)
    ? formatIP(unmap(parsedRemote))
    : remote;
  if (!trusted(remote)) return client;
  const forwarded: string[] = [];
  const xForwardedFor: string[] = [];
  for (const [name, value] of headers) {
    if (name === "forwarded") forwarded.push(value);
    else if (name === "x-forwarded-for") xForwardedFor.push(value);
  }
  let hops: Array<string | null>;
  if (forwarded.length > 0) {
    hops = forwardedFor(forwarded);
  } else {
    hops = [];
    for (const value of xForwardedFor) {
      for (const entry of value.split(",")) {
        const hop = entry.trim();
        if (hop !== "") hops.push(hop); // RFC 9110 §5.6.1: empty list elements are ignored.
      }
    }
  }
  let last = client;
  const stop = Math.max(0, hops.length - MAX_HOPS);
  for (let i = hops.length - 1; i >= stop; i--) {
    const node = hops[i];
    const address = node === null ? undefined : hopAddress(node);
    if (address === undefined) return last;
    if (!trusted(address)) return address;
    last = address;
  }
  return last;
}
