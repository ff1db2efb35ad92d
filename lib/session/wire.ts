/**
 * The frames of the session protocol `sluice.v1` (lib/session/PROTOCOL.md), and their text and
 * binary forms. Pure: both ends use it, the browser included, so it names no runtime and does
 * no I/O.
 *
 * @module
 */

/**
 * The subprotocol name the session layer negotiates.
 *
 * @example
 * ```ts
 * import { SESSION_PROTOCOL } from "@sluice/ws";
 * console.log(SESSION_PROTOCOL); // sluice.v1
 * ```
 */
export const SESSION_PROTOCOL = "sluice.v1";

/**
 * Application data: a string travels in the text form, bytes in the binary form.
 *
 * @example
 * ```ts
 * import type { SessionData } from "@sluice/ws";
 * const text: SessionData = "hello"; // the text form
 * const bytes: SessionData = new Uint8Array([1, 2, 3]); // the binary form
 * console.log(typeof text, bytes.length); // string 3
 * ```
 */
export type SessionData = string | Uint8Array;

/**
 * A topic position: an offset within an epoch (offset 0 is before the first message).
 *
 * @example
 * ```ts
 * import { serveSessions } from "@sluice/ws";
 * const server = serveSessions({ port: 0, secret: "a secret of at least 16 characters" });
 * server.publish("news", "one");
 * const { offset } = server.publish("news", "two");
 * console.log(offset); // 2
 * await server.shutdown();
 * ```
 */
export interface Position {
  /** The numbering's identity: offsets of different epochs are unrelated. */
  epoch: string;
  /** The message's number within the epoch, from 1. */
  offset: number;
}

/**
 * Why a resume did not continue the session.
 *
 * @example
 * ```ts
 * import type { ResumeRefusal } from "@sluice/ws";
 * const advice: Record<ResumeRefusal, string> = {
 *   expired: "the session outlived its window",
 *   restarted: "the server restarted",
 *   invalid: "the token did not verify",
 *   "not-yours": "the token belongs to another identity",
 * };
 * console.log(advice.expired); // the session outlived its window
 * ```
 */
export type ResumeRefusal = "expired" | "restarted" | "invalid" | "not-yours";

/**
 * Why a topic position could not be recovered.
 *
 * @example
 * ```ts
 * import type { ResetReason } from "@sluice/ws";
 * const why: Record<ResetReason, string> = {
 *   epoch: "the topic's numbering restarted",
 *   trimmed: "the history no longer holds the position",
 *   ahead: "the position is past the topic's head",
 * };
 * console.log(why.trimmed); // the history no longer holds the position
 * ```
 */
export type ResetReason = "epoch" | "trimmed" | "ahead";

/** A frame from the client. */
export type ClientFrame =
  | { t: "hello"; v: 1; token?: string; ack?: number; topics?: Record<string, Position> }
  | { t: "msg"; seq?: number; d: SessionData }
  | { t: "req"; seq: number; d: SessionData }
  | { t: "ack"; seq: number }
  | { t: "sub"; topic: string; from?: Position }
  | { t: "unsub"; topic: string };

/** A frame from the server. */
export type ServerFrame =
  | {
    t: "welcome";
    v: 1;
    session: string;
    token: string;
    resumed: boolean;
    reason?: ResumeRefusal;
    ack: number;
    seq: number;
    lost?: number;
    window: number;
  }
  | { t: "msg"; seq: number; d: SessionData }
  | { t: "reply"; seq: number; re: number; d?: SessionData; error?: { message: string } }
  | { t: "ack"; seq: number }
  | { t: "subscribed"; topic: string; epoch: string; offset: number; recovered: boolean }
  | { t: "reset"; topic: string; epoch: string; offset: number; reason: ResetReason }
  | { t: "pub"; topic: string; epoch: string; offset: number; d: SessionData }
  | { t: "unsubscribed"; topic: string; reason: "denied" | "server" }
  | { t: "bye"; retry: [number, number]; reason?: string };

/**
 * A frame that breaks the protocol; the receiver closes with 1008 and this message.
 *
 * @example
 * ```ts
 * import { SessionProtocolError } from "@sluice/ws";
 * const error = new SessionProtocolError("unknown frame type");
 * console.log(error.closeReason); // sluice.v1: unknown frame type
 * ```
 */
export class SessionProtocolError extends Error {
  /** The error's name. */
  override name = "SessionProtocolError";
  /** The close reason to send (at most 123 bytes). */
  get closeReason(): string {
    let reason = `sluice.v1: ${this.message}`;
    // A close reason is at most 123 bytes of UTF-8 (RFC 6455 §5.5).
    while (encoder.encode(reason).length > 123) reason = reason.slice(0, -1);
    return reason;
  }
}

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

/**
 * Encodes a frame: the text form when its data is a string or it has none, the binary form when
 * its data is bytes.
 */
export function encodeFrame(frame: ClientFrame | ServerFrame): string | Uint8Array {
  const data = (frame as { d?: SessionData }).d;
  if (typeof data === "string") {
    // The frames sent per message, written directly: the same text as JSON.stringify's, at a
    // fraction of its cost (no object walk).
    if (frame.t === "msg" || frame.t === "req") {
      const seq = (frame as { seq?: number }).seq;
      // A string with nothing JSON escapes is its own JSON, quoted.
      const d = NEEDS_ESCAPE.test(data) ? JSON.stringify(data) : '"' + data + '"';
      return seq === undefined
        ? '{"t":"' + frame.t + '","d":' + d + "}"
        : '{"t":"' + frame.t + '","seq":' + seq + ',"d":' + d + "}";
    }
    return JSON.stringify(frame);
  }
  if (!(data instanceof Uint8Array)) return JSON.stringify(frame);
  const header = encoder.encode(JSON.stringify({ ...frame, d: undefined }));
  const out = new Uint8Array(4 + header.length + data.length);
  new DataView(out.buffer).setUint32(0, header.length);
  out.set(header, 4);
  out.set(data, 4 + header.length);
  return out;
}

/** What JSON.stringify escapes in a string: quotes, backslashes, control characters, and
 * surrogates (lone ones are escaped; pairs are left to it too, for simplicity). */
// deno-lint-ignore no-control-regex -- JSON escapes exactly these (RFC 8259 §7).
const NEEDS_ESCAPE = /["\\\x00-\x1f\ud800-\udfff]/;

/** What a string that may be JSON must not hold for it to be taken as it is. */
// deno-lint-ignore no-control-regex -- JSON escapes exactly these (RFC 8259 §7).
const NOT_PLAIN = /["\\\x00-\x1f]/;

/**
 * The frames that come once per message, `{"t":"msg","seq":N,"d":"..."}` and the same for
 * `req`, as the encoder writes them, read without JSON.parse; anything else (other member
 * orders, escapes in the data) is left to it.
 */
function parseMessage(text: string): ClientFrame | undefined {
  let t: "msg" | "req";
  if (text.startsWith('{"t":"msg","seq":')) t = "msg";
  else if (text.startsWith('{"t":"req","seq":')) t = "req";
  else return undefined;
  let i = 17;
  let seq = 0;
  const first = i;
  for (; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 48 || c > 57) break;
    seq = seq * 10 + c - 48;
  }
  // 1 to 15 digits (a safe integer), no leading zero.
  if (i === first || i - first > 15 || (text.charCodeAt(first) === 48 && i - first > 1)) {
    return undefined;
  }
  if (!text.startsWith(',"d":"', i) || !text.endsWith('"}') || text.length < i + 8) {
    return undefined;
  }
  const d = text.slice(i + 6, text.length - 2);
  if (NOT_PLAIN.test(d)) return undefined;
  return { t, seq, d };
}

/** Parses a message into its JSON object, with `d` set to the binary form's data. */
function parse(message: string | Uint8Array): Record<string, unknown> {
  let json: string;
  let data: Uint8Array | undefined;
  if (typeof message === "string") json = message;
  else {
    if (message.length < 4) throw new SessionProtocolError("binary frame shorter than its header");
    const length = new DataView(message.buffer, message.byteOffset, message.length).getUint32(0);
    if (length > message.length - 4) {
      throw new SessionProtocolError("binary frame header longer than the frame");
    }
    try {
      json = decoder.decode(message.subarray(4, 4 + length));
    } catch {
      throw new SessionProtocolError("binary frame header is not UTF-8");
    }
    data = message.subarray(4 + length);
  }
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch {
    throw new SessionProtocolError("frame is not JSON");
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new SessionProtocolError("frame is not a JSON object");
  }
  const frame = value as Record<string, unknown>;
  if (data !== undefined) {
    if (!BINARY_TYPES.has(frame.t)) {
      throw new SessionProtocolError(`frame ${String(frame.t)} has no binary form`);
    }
    frame.d = data;
  }
  return frame;
}

const BINARY_TYPES = new Set<unknown>(["msg", "req", "reply", "pub"]);

function fail(frame: Record<string, unknown>, member: string, what: string): never {
  throw new SessionProtocolError(`${String(frame.t)} frame: ${member} must be ${what}`);
}

function count(frame: Record<string, unknown>, member: string, optional = false): void {
  const value = frame[member];
  if (value === undefined && optional) return;
  if (!Number.isSafeInteger(value) || (value as number) < 0) {
    fail(frame, member, "a non-negative integer");
  }
}

function text(frame: Record<string, unknown>, member: string, optional = false): void {
  const value = frame[member];
  if (value === undefined && optional) return;
  if (typeof value !== "string") fail(frame, member, "a string");
}

function data(frame: Record<string, unknown>, optional = false): void {
  const value = frame.d;
  if (value === undefined && optional) return;
  if (typeof value !== "string" && !(value instanceof Uint8Array)) {
    fail(frame, "d", "a string");
  }
}

function position(frame: Record<string, unknown>, value: unknown, member: string): void {
  if (typeof value !== "object" || value === null) fail(frame, member, "a position");
  const { epoch, offset } = value as Record<string, unknown>;
  if (typeof epoch !== "string" || !Number.isSafeInteger(offset) || (offset as number) < 0) {
    fail(frame, member, "a position ({ epoch: string, offset: integer })");
  }
}

/**
 * Decodes a frame sent by a client.
 *
 * @throws {SessionProtocolError} when the message is not a valid client frame.
 */
export function decodeClientFrame(message: string | Uint8Array): ClientFrame {
  if (typeof message === "string") {
    const fast = parseMessage(message);
    if (fast !== undefined) return fast;
  }
  const frame = parse(message);
  switch (frame.t) {
    case "hello": {
      if (frame.v !== 1) fail(frame, "v", "1");
      text(frame, "token", true);
      count(frame, "ack", true);
      const topics = frame.topics;
      if (topics !== undefined) {
        if (typeof topics !== "object" || topics === null || Array.isArray(topics)) {
          fail(frame, "topics", "an object");
        }
        for (const [name, at] of Object.entries(topics)) position(frame, at, `topics.${name}`);
      }
      break;
    }
    case "msg":
      count(frame, "seq", true);
      data(frame);
      break;
    case "req":
      count(frame, "seq");
      data(frame);
      break;
    case "ack":
      count(frame, "seq");
      break;
    case "sub":
      text(frame, "topic");
      if (frame.from !== undefined) position(frame, frame.from, "from");
      break;
    case "unsub":
      text(frame, "topic");
      break;
    default:
      throw new SessionProtocolError(`unknown client frame type ${JSON.stringify(frame.t)}`);
  }
  return frame as unknown as ClientFrame;
}

/**
 * Decodes a frame sent by a server.
 *
 * @throws {SessionProtocolError} when the message is not a valid server frame.
 */
export function decodeServerFrame(message: string | Uint8Array): ServerFrame {
  if (typeof message === "string") {
    const fast = parseMessage(message);
    if (fast?.t === "msg") return fast as ServerFrame;
  }
  const frame = parse(message);
  switch (frame.t) {
    case "welcome":
      if (frame.v !== 1) fail(frame, "v", "1");
      text(frame, "session");
      text(frame, "token");
      if (typeof frame.resumed !== "boolean") fail(frame, "resumed", "a boolean");
      text(frame, "reason", true);
      count(frame, "ack");
      count(frame, "seq");
      count(frame, "lost", true);
      count(frame, "window");
      break;
    case "msg":
      count(frame, "seq");
      data(frame);
      break;
    case "reply":
      count(frame, "seq");
      count(frame, "re");
      if (frame.error !== undefined) {
        const error = frame.error as Record<string, unknown> | null;
        if (typeof error !== "object" || error === null || typeof error.message !== "string") {
          fail(frame, "error", "{ message: string }");
        }
      } else data(frame);
      break;
    case "ack":
      count(frame, "seq");
      break;
    case "subscribed":
      text(frame, "topic");
      text(frame, "epoch");
      count(frame, "offset");
      if (typeof frame.recovered !== "boolean") fail(frame, "recovered", "a boolean");
      break;
    case "reset":
      text(frame, "topic");
      text(frame, "epoch");
      count(frame, "offset");
      text(frame, "reason");
      break;
    case "pub":
      text(frame, "topic");
      text(frame, "epoch");
      count(frame, "offset");
      data(frame);
      break;
    case "unsubscribed":
      text(frame, "topic");
      text(frame, "reason");
      break;
    case "bye": {
      const retry = frame.retry;
      if (
        !Array.isArray(retry) || retry.length !== 2 ||
        !retry.every((n) => Number.isSafeInteger(n) && n >= 0) || retry[0] > retry[1]
      ) fail(frame, "retry", "[min, max] milliseconds");
      text(frame, "reason", true);
      break;
    }
    default:
      throw new SessionProtocolError(`unknown server frame type ${JSON.stringify(frame.t)}`);
  }
  return frame as unknown as ServerFrame;
}
