/**
 * The rig of tests/session_fault_test.ts: a session server (`serveSessions`) behind the
 * fault-injection proxy (tests/_fault_proxy.ts), session clients (`connectSession`) that record
 * every event, and the checks of issue 15's proof: what was acknowledged was processed exactly
 * once, every topic stream is in order without gaps or duplicates (or its gaps are reported by a
 * reset), and nothing is a wrong replay.
 *
 * It also reads the WebSocket frames that cross the proxy (client frames are masked: RFC 6455
 * §5.3), so a rule can cut right after a frame or inside one, and a test can read the `hello`
 * a client sent.
 *
 * @module
 */
import assert from "node:assert/strict";
import {
  connectSession,
  type Position,
  serveSessions,
  type Session,
  type SessionClient,
  type SessionClientEventMap,
  type SessionClientOptions,
  type SessionServeOptions,
  type SessionServer,
} from "../mod.ts";
import { within } from "./_client.ts";
import {
  type CutWhenRule,
  type Direction,
  type FaultConnection,
  type FaultProxy,
  startFaultProxy,
} from "./_fault_proxy.ts";
import { waitFor } from "./_harness.ts";

/** The servers' HMAC secret (every server of a rig has the same one, as after a restart). */
export const SECRET = "session-fault-test-secret-0123456789";
/** Short backoff, so a cut costs milliseconds. */
export const BACKOFF = { base: 10, cap: 50, minUptime: 0 };

const decoder = new TextDecoder();

// --- frames on the wire ------------------------------------------------------------------------

/** A WebSocket frame read from the bytes that crossed the proxy. */
export interface WireFrame {
  /** Offset of its first byte in the bytes seen. */
  start: number;
  /** Offset of its first payload byte. */
  payloadStart: number;
  /** Offset after its last byte (it may lie beyond the bytes seen). */
  end: number;
  opcode: number;
  /** The unmasked payload, once the frame is complete. */
  payload: Uint8Array | undefined;
}

/**
 * The frames in `seen`: an HTTP head at the start (a request or a 101) is skipped; masked
 * payloads are unmasked. The last frame may be incomplete (`payload` undefined); one whose
 * header is not complete yet is left out.
 */
export function scanFrames(seen: Uint8Array): WireFrame[] {
  let pos = 0;
  const frames: WireFrame[] = [];
  // An HTTP head (or what may still become one) comes first; a frame never starts with "G" or
  // "H" (its first byte has FIN set, or is a continuation's: below 0x10).
  const head = ["GET ", "HTTP/"].some((text) => {
    const n = Math.min(text.length, seen.length);
    return n > 0 && decoder.decode(seen.subarray(0, n)) === text.slice(0, n);
  });
  if (head) {
    pos = -1;
    for (let i = 3; i < seen.length; i++) {
      if (seen[i - 3] === 13 && seen[i - 2] === 10 && seen[i - 1] === 13 && seen[i] === 10) {
        pos = i + 1;
        break;
      }
    }
    if (pos < 0) return frames;
  }
  while (pos + 2 <= seen.length) {
    const masked = (seen[pos + 1] & 0x80) !== 0;
    let length = seen[pos + 1] & 0x7f;
    let header = 2;
    if (length === 126) {
      if (pos + 4 > seen.length) break;
      length = (seen[pos + 2] << 8) | seen[pos + 3];
      header = 4;
    } else if (length === 127) {
      if (pos + 10 > seen.length) break;
      length = Number(
        new DataView(seen.buffer, seen.byteOffset + pos + 2, 8).getBigUint64(0),
      );
      header = 10;
    }
    const maskAt = pos + header;
    if (masked) header += 4;
    if (pos + header > seen.length) break;
    const payloadStart = pos + header;
    const end = payloadStart + length;
    let payload: Uint8Array | undefined;
    if (end <= seen.length) {
      payload = seen.slice(payloadStart, end);
      if (masked) { for (let i = 0; i < payload.length; i++) payload[i] ^= seen[maskAt + (i & 3)]; }
    }
    frames.push({ start: pos, payloadStart, end, opcode: seen[pos] & 0x0f, payload });
    if (payload === undefined) break;
    pos = end;
  }
  return frames;
}

/** A session frame (a text frame's JSON), or undefined for anything else. */
export function sessionFrame(frame: WireFrame): Record<string, unknown> | undefined {
  if (frame.opcode !== 1 || frame.payload === undefined) return undefined;
  try {
    return JSON.parse(decoder.decode(frame.payload));
  } catch {
    return undefined;
  }
}

/**
 * A rule that cuts right after the `occurrence`-th complete session frame for which `test`
 * holds, in `direction` (the frame is delivered whole; nothing after it is).
 */
export function afterFrame(
  direction: Direction,
  test: (frame: Record<string, unknown>) => boolean,
  occurrence = 1,
): CutWhenRule {
  return {
    direction,
    when(seen) {
      let count = 0;
      for (const frame of scanFrames(seen)) {
        const decoded = sessionFrame(frame);
        if (decoded !== undefined && test(decoded) && ++count === occurrence) return true;
      }
      return false;
    },
  };
}

/**
 * A rule that cuts inside the `index`-th data frame (0 for the first) in `direction`: its
 * header and half its payload pass, the rest never does. Control frames are not counted.
 */
export function insideFrame(direction: Direction, index: number): CutWhenRule {
  return {
    direction,
    when(seen) {
      const data = scanFrames(seen).filter((frame) => frame.opcode < 8);
      const frame = data[index];
      if (frame === undefined) return false;
      const point = frame.payloadStart + Math.max(1, (frame.end - frame.payloadStart) >> 1);
      return seen.length >= point;
    },
  };
}

/** What a {@linkcode tap} saw: the session frames, in order. */
export interface Tap {
  /** The bytes seen so far. */
  readonly bytes: Uint8Array;
  /** The complete session frames seen so far. */
  frames(): Record<string, unknown>[];
}

/**
 * Watches `direction` of a connection from now (a rule that never cuts: it is shown every byte
 * forwarded).
 */
export function tap(connection: FaultConnection, direction: Direction): Tap {
  let latest: Uint8Array = new Uint8Array(0);
  connection.addRule({
    direction,
    when(seen) {
      latest = seen;
      return false;
    },
  });
  return {
    get bytes() {
      return latest;
    },
    frames: () =>
      scanFrames(latest).map(sessionFrame).filter((frame) => frame !== undefined) as Record<
        string,
        unknown
      >[],
  };
}

// --- the rig -----------------------------------------------------------------------------------

/** A message the server published, as the rig recorded it. */
export interface Published {
  topic: string;
  epoch: string;
  offset: number;
  data: string;
}

/** The rig's options: the session server's, but the secret and where it listens. */
export type RigOptions = Omit<SessionServeOptions, "secret" | "port" | "hostname">;

/**
 * A session server behind a fault proxy. Its handlers count what they process, so the counts
 * outlive a restart (a new server behind a new proxy on the same port).
 */
export class Rig {
  server!: SessionServer;
  proxy!: FaultProxy;
  /** Reliable and volatile messages processed, by payload (payloads are unique). */
  readonly processed = new Map<string, number>();
  /** Requests processed, by payload. */
  readonly handled = new Map<string, number>();
  /** Per topic, every message published, in order (across servers). */
  readonly published = new Map<string, Published[]>();
  /** Sessions by id, as their `open` handler saw them. */
  readonly sessions = new Map<string, Session>();
  /** Messages sent to each session by {@linkcode sendTo}, by session id. */
  readonly sent = new Map<string, string[]>();
  /** `detach` calls: session id and close code. */
  readonly detaches: Array<{ id: string; code: number }> = [];
  /** `end` calls. */
  readonly ends: Array<{ id: string; why: string }> = [];
  /** `open` calls. */
  readonly opens: Array<{ id: string; resumed: boolean; reason?: string }> = [];
  /** Errors the server reported. */
  readonly errors: unknown[] = [];
  /** Clients made by {@linkcode client}, closed by {@linkcode close}. */
  readonly clients: Tracked[] = [];
  /** Delays the message handler by this many ms when set (an asynchronous handler). */
  messageDelay = 0;
  /** Delays the request handler likewise. */
  requestDelay = 0;
  /** Handlers still running, by payload. */
  readonly running = new Set<string>();
  readonly #options: RigOptions;
  readonly #timers = new Set<ReturnType<typeof setTimeout>>();

  private constructor(options: RigOptions) {
    this.#options = options;
  }

  /** Starts a server and a proxy in front of it. */
  static async start(options: RigOptions = {}): Promise<Rig> {
    const rig = new Rig(options);
    rig.server = rig.#serve();
    try {
      rig.proxy = await startFaultProxy({
        target: { host: "127.0.0.1", port: rig.server.port },
      });
    } catch (error) {
      await rig.server.shutdown({ timeout: 1000 });
      throw error;
    }
    return rig;
  }

  #serve(): SessionServer {
    const options: SessionServeOptions = {
      ...this.#options,
      port: 0,
      hostname: "127.0.0.1",
      secret: SECRET,
      open: (session, info) => {
        this.sessions.set(session.id, session);
        this.opens.push({ id: session.id, ...info });
      },
      message: (_session, data) => this.#run(this.processed, data as string, this.messageDelay),
      request: async (_session, data) => {
        await this.#run(this.handled, data as string, this.requestDelay);
        return `re:${data}`;
      },
      detach: (session, code) => void this.detaches.push({ id: session.id, code }),
      end: (session, why) => void this.ends.push({ id: session.id, why }),
      error: (error) => void this.errors.push(error),
    };
    return serveSessions(options);
  }

  #run(counts: Map<string, number>, data: string, delay: number): Promise<void> | void {
    counts.set(data, (counts.get(data) ?? 0) + 1);
    if (delay === 0) return;
    this.running.add(data);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#timers.delete(timer);
        this.running.delete(data);
        resolve();
      }, delay);
      this.#timers.add(timer);
    });
  }

  /** How many times a payload was processed, as a message or a request. */
  count(payload: string): number {
    return (this.processed.get(payload) ?? 0) + (this.handled.get(payload) ?? 0);
  }

  /** The URL clients dial: the proxy's. */
  get url(): string {
    return `ws://127.0.0.1:${this.proxy.port}/`;
  }

  /** A session client through the proxy, recording its events; closed by {@linkcode close}. */
  client(name: string, options: SessionClientOptions = {}): Tracked {
    const client = connectSession(this.url, {
      backoff: BACKOFF,
      closeTimeout: 1000,
      ...options,
    });
    const tracked = new Tracked(name, client);
    this.clients.push(tracked);
    return tracked;
  }

  /** Publishes `count` numbered messages to `topic` (`<topic>#<n>`, n counting from 1). */
  publish(topic: string, count = 1): Published[] {
    let list = this.published.get(topic);
    if (list === undefined) this.published.set(topic, list = []);
    const made: Published[] = [];
    for (let i = 0; i < count; i++) {
      const data = `${topic}#${list.length + 1}`;
      const { epoch, offset } = this.server.publish(topic, data);
      const entry = { topic, epoch, offset, data };
      list.push(entry);
      made.push(entry);
    }
    return made;
  }

  /** Sends `count` numbered session messages to a session (`<id prefix>/m<n>`). */
  sendTo(id: string, count = 1): void {
    const session = this.sessions.get(id);
    assert.ok(session !== undefined, `no session ${id}`);
    let list = this.sent.get(id);
    if (list === undefined) this.sent.set(id, list = []);
    for (let i = 0; i < count; i++) {
      const data = `${id.slice(0, 6)}/m${list.length + 1}`;
      session.send(data);
      list.push(data);
    }
  }

  /** Makes the proxy refuse every connection (the server is out of reach) until {@linkcode
   * reachable}. */
  unreachable(): void {
    this.proxy.refuseNext(Infinity);
  }

  /**
   * Makes the server unreachable as soon as the client loses its connection (in its
   * `reconnecting` event, before its next dial), until {@linkcode reachable}.
   */
  unreachableAfterDrop(tracked: Tracked): void {
    const off = tracked.client.on("reconnecting", () => {
      off();
      this.unreachable();
    });
  }

  /** Lets connections through again. */
  reachable(): void {
    this.proxy.refuseNext(0);
  }

  /**
   * Stops the server, with a `bye` (graceful) or after cutting every connection (abrupt), and
   * starts a new one with the same secret behind a new proxy on the same port (the proxy cannot
   * be pointed at another target). Between the two, the port refuses connections; with `hold`,
   * the new proxy refuses them too until {@linkcode reachable}.
   */
  async restart(
    how: "abrupt" | "graceful",
    options: { retry?: [number, number]; hold?: boolean } = {},
  ): Promise<void> {
    const port = this.proxy.port;
    if (how === "abrupt") {
      // The process dies: every connection is reset, no bye, no close frame.
      this.proxy.refuseNext(Infinity);
      this.proxy.cutAll();
      await this.proxy.close();
      await this.server.shutdown({ timeout: 1000 });
    } else {
      await this.server.shutdown({ retry: options.retry ?? [0, 20], timeout: 1000 });
      await this.proxy.close();
    }
    this.server = this.#serve();
    this.proxy = await startFaultProxy({
      target: { host: "127.0.0.1", port: this.server.port },
      port,
    });
    // Held: refused until reachable(), so a test can act on the new server first.
    if (options.hold) this.unreachable();
  }

  /** The data published to `topic` at a position, if any. */
  dataAt(topic: string, epoch: string, offset: number): string | undefined {
    return this.published.get(topic)?.find((p) => p.epoch === epoch && p.offset === offset)
      ?.data;
  }

  /** Closes every client (waiting for their `closed` events), the proxy and the server. */
  async close(): Promise<void> {
    this.proxy.unstall();
    this.reachable();
    for (const tracked of this.clients) tracked.client.close();
    await within(
      Promise.all(this.clients.map((tracked) => tracked.closed)),
      "the session clients to close",
    );
    await this.proxy.close();
    await this.server.shutdown({ timeout: 1000 });
    for (const timer of this.#timers) clearTimeout(timer);
  }
}

/** Runs `body` with a fresh rig and closes everything after it, whatever happens. */
export async function withRig(
  options: RigOptions,
  body: (rig: Rig) => Promise<void>,
): Promise<void> {
  const rig = await Rig.start(options);
  try {
    await body(rig);
  } finally {
    await rig.close();
  }
}

/** One entry of a topic's stream as a client saw it. */
export type StreamEntry =
  | { kind: "topic"; recovered: boolean; reason?: string; epoch: string; offset: number }
  | { kind: "pub"; epoch: string; offset: number; data: string };

type Pending = { state: "pending" | "resolved" | "rejected"; value?: unknown; error?: unknown };

/** A session client and everything it reported. */
export class Tracked {
  readonly name: string;
  readonly client: SessionClient;
  /** Every event, in order. */
  readonly events: Array<{ type: string; event: unknown }> = [];
  readonly opens: SessionClientEventMap["open"][] = [];
  readonly resets: SessionClientEventMap["reset"][] = [];
  readonly reconnects: SessionClientEventMap["reconnecting"][] = [];
  /**
   * At each `reconnecting` event that ended an open session (not a failed attempt): the session
   * messages delivered so far and the topic positions.
   */
  readonly drops: Array<{ delivered: number; positions: Map<string, Position> }> = [];
  #open = false;
  readonly errors: unknown[] = [];
  /** Session messages from the server, in order. */
  readonly messages: string[] = [];
  /** Per topic, `topic` and `publication` events, in order. */
  readonly streams = new Map<string, StreamEntry[]>();
  /** Every `send`, by payload. */
  readonly sends = new Map<string, Pending & { promise: Promise<unknown> }>();
  /** Every `request`, by payload. */
  readonly requests = new Map<string, Pending & { promise: Promise<unknown> }>();
  readonly closed: Promise<SessionClientEventMap["closed"]>;
  #count = 0;

  constructor(name: string, client: SessionClient) {
    this.name = name;
    this.client = client;
    const record = <K extends keyof SessionClientEventMap>(type: K) =>
      client.on(type, (event) => void this.events.push({ type, event }));
    for (
      const type of [
        "connecting",
        "open",
        "topic",
        "reset",
        "reconnecting",
        "closed",
        "error",
      ] as const
    ) record(type);
    client.on("open", (event) => void this.opens.push(event));
    client.on("reset", (event) => void this.resets.push(event));
    client.on("open", () => void (this.#open = true));
    client.on("reconnecting", (event) => {
      this.reconnects.push(event);
      if (this.#open) {
        this.drops.push({ delivered: this.messages.length, positions: client.positions });
      }
      this.#open = false;
    });
    client.on("error", ({ error }) => void this.errors.push(error));
    client.on("message", ({ data }) => void this.messages.push(data as string));
    client.on("topic", ({ topic, recovered, reason, epoch, offset }) => {
      this.#stream(topic).push({ kind: "topic", recovered, reason, epoch, offset });
    });
    client.on("publication", ({ topic, epoch, offset, data }) => {
      this.#stream(topic).push({ kind: "pub", epoch, offset, data: data as string });
    });
    this.closed = new Promise((resolve) => client.on("closed", resolve));
  }

  #stream(topic: string): StreamEntry[] {
    let stream = this.streams.get(topic);
    if (stream === undefined) this.streams.set(topic, stream = []);
    return stream;
  }

  /** Publications of `topic` received so far. */
  pubs(topic: string): Array<StreamEntry & { kind: "pub" }> {
    return (this.streams.get(topic) ?? []).filter((entry) => entry.kind === "pub") as Array<
      StreamEntry & { kind: "pub" }
    >;
  }

  /** Sends `count` reliable messages with unique payloads (`<name>:<n>`); returns them. */
  send(count = 1): string[] {
    const payloads: string[] = [];
    for (let i = 0; i < count; i++) {
      const payload = `${this.name}:${++this.#count}`;
      this.sends.set(payload, track(this.client.send(payload)));
      payloads.push(payload);
    }
    return payloads;
  }

  /** Sends a request with a unique payload (`<name>:q<n>`); returns it. */
  request(timeout?: number): string {
    const payload = `${this.name}:q${++this.#count}`;
    const promise = this.client.request(payload, timeout === undefined ? undefined : { timeout });
    this.requests.set(payload, track(promise));
    return payload;
  }

  /** Resolves once `n` `open` events came. */
  async opened(n = 1, ms = 5000): Promise<SessionClientEventMap["open"]> {
    await waitFor(() => this.opens.length >= n, `${this.name}'s open #${n}`, ms);
    return this.opens[n - 1];
  }

  /** Resolves once `n` `reconnecting` events came. */
  async dropped(n = 1, ms = 5000): Promise<SessionClientEventMap["reconnecting"]> {
    await waitFor(() => this.reconnects.length >= n, `${this.name}'s reconnecting #${n}`, ms);
    return this.reconnects[n - 1];
  }

  /** Waits until every send and request settled; fails if one did not in time. */
  async settled(ms = 5000): Promise<void> {
    await within(
      Promise.allSettled([...this.sends.values(), ...this.requests.values()].map((p) => p.promise)),
      `${this.name}'s sends and requests to settle`,
      ms,
    );
  }
}

function track(promise: Promise<unknown>): Pending & { promise: Promise<unknown> } {
  const entry: Pending & { promise: Promise<unknown> } = { state: "pending", promise };
  promise.then(
    (value) => {
      entry.state = "resolved";
      entry.value = value;
    },
    (error) => {
      entry.state = "rejected";
      entry.error = error;
    },
  );
  return entry;
}

// --- the checks --------------------------------------------------------------------------------

/**
 * Every send and request of `tracked` was acknowledged (resolved; requests with their reply)
 * and processed exactly once by the server, and nothing else of its was processed.
 */
export function checkExactlyOnce(rig: Rig, tracked: Tracked, context = ""): void {
  const where = context === "" ? "" : ` (${context})`;
  for (const [payload, entry] of tracked.sends) {
    assert.equal(entry.state, "resolved", `send ${payload}: ${entry.state}${where}`);
    assert.equal(rig.processed.get(payload), 1, `${payload} processed${where}`);
  }
  for (const [payload, entry] of tracked.requests) {
    assert.equal(entry.state, "resolved", `request ${payload}: ${entry.state}${where}`);
    assert.equal(entry.value, `re:${payload}`, `reply to ${payload}${where}`);
    assert.equal(rig.handled.get(payload), 1, `${payload} handled${where}`);
  }
  for (const [payload] of rig.processed) {
    if (payload.startsWith(`${tracked.name}:`)) {
      assert.ok(tracked.sends.has(payload), `${payload} processed but never sent${where}`);
    }
  }
}

/**
 * Walks a client's stream of `topic`: each publication follows its position by one in the same
 * epoch and carries what the server published there (never a wrong replay); a position changes
 * otherwise only by a `recovered` subscription at the same position or a reset that says why
 * (never a silent gap). Returns the resets and where the client stands.
 */
export function checkStream(
  rig: Rig,
  tracked: Tracked,
  topic: string,
  context = "",
): { resets: Array<StreamEntry & { kind: "topic" }>; epoch: string; offset: number } {
  const where = ` (${tracked.name}, ${topic}${context === "" ? "" : `, ${context}`})`;
  const stream = tracked.streams.get(topic) ?? [];
  assert.ok(stream.length > 0 && stream[0].kind === "topic", `a topic event first${where}`);
  let epoch = "";
  let offset = -1;
  let pubs = 0;
  const resets: Array<StreamEntry & { kind: "topic" }> = [];
  for (const [i, entry] of stream.entries()) {
    const at = `entry ${i} ${JSON.stringify(entry)} at ${epoch}/${offset}${where}`;
    if (entry.kind === "pub") {
      assert.equal(entry.epoch, epoch, `pub in another epoch: ${at}`);
      assert.equal(entry.offset, offset + 1, `pub out of order (gap or duplicate): ${at}`);
      assert.equal(entry.data, rig.dataAt(topic, entry.epoch, entry.offset), `wrong data: ${at}`);
      offset = entry.offset;
      pubs++;
    } else if (entry.recovered) {
      assert.deepEqual([entry.epoch, entry.offset], [epoch, offset], `recovered elsewhere: ${at}`);
    } else if (entry.reason !== undefined) {
      if (entry.reason === "epoch") assert.notEqual(entry.epoch, epoch, `same epoch: ${at}`);
      if (entry.reason === "trimmed") {
        assert.equal(entry.epoch, epoch, `trimmed in another epoch: ${at}`);
        assert.ok(entry.offset > offset, `trimmed, but not ahead: ${at}`);
      }
      resets.push(entry);
      epoch = entry.epoch;
      offset = entry.offset;
    } else {
      // A subscription from now: right only before any publication came (no position to keep).
      assert.equal(pubs, 0, `a subscription from now after publications (a silent gap): ${at}`);
      epoch = entry.epoch;
      offset = entry.offset;
    }
  }
  return { resets, epoch, offset };
}

/**
 * The client's stream of `topic` is every message published to it after its first position,
 * in order, exactly once, with no reset.
 */
export function checkCompleteStream(
  rig: Rig,
  tracked: Tracked,
  topic: string,
  context = "",
): void {
  const { resets, epoch, offset } = checkStream(rig, tracked, topic, context);
  assert.deepEqual(resets, [], `no topic reset within the window (${tracked.name}, ${topic})`);
  const last = rig.published.get(topic)?.at(-1);
  if (last !== undefined && last.epoch === epoch) {
    assert.equal(offset, last.offset, `${tracked.name} caught up with ${topic} (${context})`);
  }
}

/** Waits until the client's stream of `topic` reached the last publication. */
export async function caughtUp(
  rig: Rig,
  tracked: Tracked,
  topic: string,
  ms = 5000,
): Promise<void> {
  const last = rig.published.get(topic)?.at(-1);
  if (last === undefined) return;
  await waitFor(
    () => {
      const entry = tracked.streams.get(topic)?.at(-1);
      return entry !== undefined && entry.epoch === last.epoch && entry.offset >= last.offset;
    },
    `${tracked.name} to receive ${topic} up to ${last.offset}`,
    ms,
  );
}
