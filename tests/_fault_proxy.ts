/**
 * A fault-injection TCP proxy for the end-to-end suites, on `node:net` (the same code under
 * Deno and Bun). Put it between a client and a server and it forwards bytes both ways until a
 * test, or a rule, tells it to break the connection.
 *
 * - {@linkcode startFaultProxy}`({ target: { host, port } })` resolves to a
 *   {@linkcode FaultProxy}: `port`, `connections` (live ones), `totals`, `nextConnection()`,
 *   `addRule(rule, count)` / `clearRules()` (rules for the next connections), `cutAll()`,
 *   `stall(direction)` / `unstall(direction)` (live and new connections), `refuseNext(n)`,
 *   `pauseAccepting()` / `resumeAccepting()`, `close()`.
 * - Each {@linkcode FaultConnection}: `forwarded` and `held` bytes each way, `cut(how)`,
 *   `stall(direction)` / `unstall(direction)`, `addRule(rule)`, `draws` (random cut points),
 *   `cutReport` (why and where it was cut, with a one-line `description`), `closed`.
 * - A {@linkcode CutRule} cuts after a byte count, at a byte sequence (found across chunks),
 *   at the shortest prefix a predicate holds for, or at a seeded random byte count.
 *
 * Directions: `"up"` is client → target, `"down"` is target → client.
 *
 * A cut is abrupt by default (`how: "reset"`): both sockets are dropped with
 * `resetAndDestroy()`, which both runtimes implement, so each peer sees a TCP RST (a read
 * fails with `ECONNRESET`), never a FIN. `how: "end"` closes both sockets with a FIN instead.
 * Bytes up to the cut point are written first and the reset waits (at most a second) until
 * the proxy's writes of them completed, so a peer that is reading gets exactly those bytes and
 * then the reset; bytes after the point are never forwarded, and bytes held by a stall are
 * dropped.
 *
 * Rule offsets count the bytes forwarded in the rule's direction from when the rule was
 * attached: for rules given to the proxy, from the start of the connection. Rules see bytes
 * when they are forwarded, so bytes held by a stall are not counted until released.
 *
 * Client → server WebSocket frames are masked (RFC 6455 §5.3): a byte search in `"up"` sees
 * masked payloads. Search `"down"` (server frames are not masked) or count bytes instead.
 *
 * @example
 * ```ts
 * const proxy = await startFaultProxy({ target: { host: "127.0.0.1", port: server.port } });
 * // The next connection is cut (RST both ways) when the server's first ack shows up.
 * proxy.addRule({ direction: "down", match: '"t":"ack"' });
 * const ws = await connect(`ws://127.0.0.1:${proxy.port}/`);
 * const connection = await proxy.nextConnection();
 * await connection.closed;
 * console.log(connection.cutReport?.description);
 * await proxy.close();
 * ```
 *
 * @module
 */
import net from "node:net";

/** `"up"`: client → target; `"down"`: target → client. */
export type Direction = "up" | "down";
/** One direction or both. */
export type Directions = Direction | "both";
/** How a cut ends the connection: a TCP RST to both peers, or a FIN to both. */
export type CutHow = "reset" | "end";

/** What every cut rule may say. */
interface RuleBase {
  /**
   * How the connection is ended.
   * @default {"reset"}
   */
  how?: CutHow;
}

/** Cut once `afterBytes` bytes were forwarded in `direction` (0: before any byte passes). */
export interface CutAfterRule extends RuleBase {
  direction: Direction;
  afterBytes: number;
}

/**
 * Cut when `match` (a string is taken as UTF-8) appears in the bytes forwarded in
 * `direction`, found across chunk boundaries. `at: "start"` forwards nothing of the match
 * (but a match that began in a chunk already forwarded is cut at the start of the chunk that
 * completes it: bytes already forwarded cannot be recalled); `at: "end"` forwards the match
 * and cuts right after it.
 */
export interface CutMatchRule extends RuleBase {
  direction: Direction;
  match: string | Uint8Array;
  /** @default {"start"} */
  at?: "start" | "end";
  /**
   * Which occurrence cuts (1: the first).
   * @default {1}
   */
  occurrence?: number;
}

/**
 * Cut at the shortest prefix of the bytes forwarded in `direction` for which `when` holds.
 * `when` is asked about growing prefixes (a view of every byte since the rule was attached)
 * and must be monotone: once true for a prefix, true for every longer one.
 */
export interface CutWhenRule extends RuleBase {
  direction: Direction;
  when: (seen: Uint8Array) => boolean;
}

/**
 * Cut at a random byte count in `[min, max]` (inclusive) drawn from a PRNG seeded with `seed`,
 * in `direction` (drawn too when absent). Each connection the rule applies to takes the next
 * draw, so a run is reproducible from its seed; the draws are in
 * {@linkcode FaultConnection.draws} and in the cut's description.
 */
export interface CutRandomRule extends RuleBase {
  direction?: Direction;
  random: { seed: number; min: number; max: number };
}

/** A rule that cuts a connection. */
export type CutRule = CutAfterRule | CutMatchRule | CutWhenRule | CutRandomRule;

/** A random cut point chosen for a connection. */
export interface RandomDraw {
  seed: number;
  /** 0 for the seed's first draw, 1 for its second… */
  draw: number;
  direction: Direction;
  /** Bytes in `direction`, counted from when the rule was attached. */
  afterBytes: number;
}

/** Why and where a connection was cut. */
export interface CutReport {
  /** `"rule"`, `"cut"` (the connection's `cut()`), `"cutAll"` or `"close"` (the proxy's). */
  cause: "rule" | "cut" | "cutAll" | "close";
  how: CutHow;
  /** The rule that fired, for `cause: "rule"`. */
  rule?: CutRule;
  /** The direction whose rule fired. */
  direction?: Direction;
  /** The random draw, for a random rule. */
  draw?: RandomDraw;
  /** Bytes forwarded each way, since the connection began, when it was cut. */
  forwarded: { up: number; down: number };
  /** One line for a failing test to print (the seed and draw of a random cut included). */
  description: string;
}

/** Where the proxy sends what it accepts. */
export interface FaultProxyTarget {
  host: string;
  port: number;
}

/** Options of {@linkcode startFaultProxy}. */
export interface FaultProxyOptions {
  /** The server behind the proxy. */
  target: FaultProxyTarget;
  /**
   * The address to listen on.
   * @default {"127.0.0.1"}
   */
  hostname?: string;
  /**
   * The port to listen on (0: any free port).
   * @default {0}
   */
  port?: number;
}

/** Counts over the proxy's life. */
export interface FaultProxyTotals {
  /** Connections forwarded (refused ones not included). */
  connections: number;
  /** Connections refused by {@linkcode FaultProxy.refuseNext}. */
  refused: number;
  /** Connections cut (by a rule, `cut()`, `cutAll()` or `close()`). */
  cut: number;
  /** Bytes forwarded each way, over every connection. */
  forwarded: { up: number; down: number };
}

const encoder = new TextEncoder();
const EMPTY = new Uint8Array(0);

/**
 * How long a cut waits for the bytes it lets through to be written before it resets anyway
 * (a receiver that stopped reading would otherwise hold the cut forever).
 */
const CUT_FLUSH_MS = 1000;

type Socket = net.Socket & { resetAndDestroy?: () => net.Socket };

/** Drops a socket with RST where the runtime can (both do today), else a plain destroy. */
function reset(socket: Socket): void {
  if (socket.destroyed) return;
  if (typeof socket.resetAndDestroy === "function" && !socket.connecting) {
    socket.resetAndDestroy();
  } else {
    socket.destroy();
  }
}

/** xorshift32: small, seedable, the same numbers in both runtimes. */
class Prng {
  #state: number;
  draws = 0;
  constructor(seed: number) {
    this.#state = (seed | 0) || 0x9e3779b9;
  }
  /** An integer in `[min, max]`. */
  between(min: number, max: number): number {
    let x = this.#state;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.#state = x;
    this.draws++;
    return min + Math.floor(((x >>> 0) / 0x1_0000_0000) * (max - min + 1));
  }
}

/** A cut rule given to the proxy: the random ones keep their PRNG across connections. */
class ProxyRule {
  readonly rule: CutRule;
  remaining: number;
  readonly prng: Prng | undefined;
  constructor(rule: CutRule, count: number) {
    validateRule(rule);
    this.rule = rule;
    this.remaining = count;
    this.prng = "random" in rule ? new Prng(rule.random.seed) : undefined;
  }
}

function validateRule(rule: CutRule): void {
  const count = (name: string, value: number) => {
    if (!Number.isSafeInteger(value) || value < 0) {
      throw new RangeError(`Cannot add the rule: ${name} must be an integer >= 0, got ${value}`);
    }
  };
  if ("afterBytes" in rule) count("afterBytes", rule.afterBytes);
  if ("match" in rule && rule.match.length === 0) {
    throw new RangeError("Cannot add the rule: match is empty");
  }
  if ("match" in rule && rule.occurrence !== undefined && rule.occurrence < 1) {
    throw new RangeError(`Cannot add the rule: occurrence must be >= 1, got ${rule.occurrence}`);
  }
  if ("random" in rule) {
    count("random.min", rule.random.min);
    count("random.max", rule.random.max);
    if (rule.random.max < rule.random.min) {
      throw new RangeError("Cannot add the rule: random.max is below random.min");
    }
  }
}

/** A rule attached to one direction of one connection. */
interface ActiveRule {
  readonly rule: CutRule;
  readonly draw: RandomDraw | undefined;
  /**
   * How many bytes of `chunk` (which starts at stream offset `offset`, counted from the start
   * of the direction) pass before the cut, or -1 when this chunk does not reach the cut.
   */
  check(chunk: Uint8Array, offset: number): number;
}

function afterBytes(rule: CutRule, start: number, bytes: number, draw?: RandomDraw): ActiveRule {
  const point = start + bytes;
  return {
    rule,
    draw,
    check: (chunk, offset) => point - offset <= chunk.length ? Math.max(0, point - offset) : -1,
  };
}

function matching(rule: CutMatchRule): ActiveRule {
  const needle = typeof rule.match === "string" ? encoder.encode(rule.match) : rule.match;
  const atEnd = rule.at === "end";
  let left = rule.occurrence ?? 1;
  // The last needle.length - 1 bytes seen, so a match split over chunks is found.
  let tail = EMPTY;
  return {
    rule,
    draw: undefined,
    check(chunk, offset) {
      const hay = new Uint8Array(tail.length + chunk.length);
      hay.set(tail);
      hay.set(chunk, tail.length);
      const base = offset - tail.length; // Stream offset of hay[0].
      for (let i = 0; i + needle.length <= hay.length; i++) {
        let j = 0;
        while (j < needle.length && hay[i + j] === needle[j]) j++;
        if (j === needle.length && --left === 0) {
          const point = base + i + (atEnd ? needle.length : 0);
          return Math.max(0, point - offset);
        }
      }
      tail = hay.slice(Math.max(0, hay.length - (needle.length - 1)));
      return -1;
    },
  };
}

function predicate(rule: CutWhenRule): ActiveRule {
  let seen = new Uint8Array(1024);
  let length = 0;
  return {
    rule,
    draw: undefined,
    check(chunk) {
      // Every byte since the rule was attached: it only sees chunks forwarded after that.
      if (length + chunk.length > seen.length) {
        const grown = new Uint8Array(Math.max(seen.length * 2, length + chunk.length));
        grown.set(seen.subarray(0, length));
        seen = grown;
      }
      seen.set(chunk, length);
      const before = length;
      length += chunk.length;
      if (!rule.when(seen.subarray(0, length))) return -1;
      // The shortest prefix that holds lies in (before, length]: binary search (monotone).
      let low = before; // Known false (or nothing yet: the empty prefix is asked once).
      let high = length; // Known true.
      if (before === 0 && rule.when(seen.subarray(0, 0))) high = 0;
      while (high - low > 1) {
        const middle = (low + high) >>> 1;
        if (rule.when(seen.subarray(0, middle))) high = middle;
        else low = middle;
      }
      return high - before;
    },
  };
}

/** One direction of a connection: reads `from`, applies the rules and stall, writes `to`. */
class Flow {
  readonly direction: Direction;
  readonly from: Socket;
  readonly to: Socket;
  forwarded = 0;
  stalled = false;
  readonly held: Uint8Array[] = [];
  heldBytes = 0;
  /** `from` sent FIN (and it is held behind held bytes or not yet passed on). */
  ended = false;
  rules: ActiveRule[] = [];
  pendingWrites = 0;
  #needDrain = false;
  readonly #connection: FaultConnection;
  readonly #onWritten = () => {
    this.pendingWrites--;
    this.#connection._writeDone();
  };

  constructor(connection: FaultConnection, direction: Direction, from: Socket, to: Socket) {
    this.#connection = connection;
    this.direction = direction;
    this.from = from;
    this.to = to;
  }

  /** Bytes read from `from`. */
  receive(chunk: Uint8Array): void {
    if (!this.#connection._open) return;
    if (this.stalled || this.held.length > 0) {
      this.held.push(chunk);
      this.heldBytes += chunk.length;
      return;
    }
    this.#forward(chunk);
  }

  /** `from` sent FIN. */
  end(): void {
    this.ended = true;
    if (!this.stalled && this.held.length === 0) this.#passEnd();
  }

  stall(): void {
    this.stalled = true;
    // Stop reading too, so the sender meets TCP backpressure as behind a dead link.
    this.from.pause();
  }

  unstall(): void {
    if (!this.stalled) return;
    this.stalled = false;
    while (this.held.length > 0 && this.#connection._open && !this.stalled) {
      const chunk = this.held.shift()!;
      this.heldBytes -= chunk.length;
      this.#forward(chunk);
    }
    if (!this.#connection._open || this.stalled) return;
    if (this.ended) this.#passEnd();
    else if (!this.#needDrain) this.from.resume();
  }

  #passEnd(): void {
    if (this.#connection._open && !this.to.destroyed) this.to.end();
  }

  #forward(chunk: Uint8Array): void {
    if (this.to.destroyed) return;
    let cutAt = -1;
    let fired: ActiveRule | undefined;
    for (const rule of this.rules) {
      const at = rule.check(chunk, this.forwarded);
      if (at >= 0 && (cutAt < 0 || at < cutAt)) {
        cutAt = at;
        fired = rule;
      }
    }
    const pass = cutAt < 0 ? chunk : chunk.subarray(0, cutAt);
    if (pass.length > 0) {
      this.forwarded += pass.length;
      this.#connection._counted(this.direction, pass.length);
      this.pendingWrites++;
      if (!this.to.write(pass, this.#onWritten) && cutAt < 0 && !this.#needDrain) {
        // Backpressure from the receiver: stop reading until it drains.
        this.#needDrain = true;
        this.from.pause();
        this.to.once("drain", () => {
          this.#needDrain = false;
          if (!this.stalled && this.#connection._open) this.from.resume();
        });
      }
    }
    if (fired) this.#connection._cutBy(fired, this.direction);
  }
}

/** One client connection through the proxy. */
export class FaultConnection {
  /** 1 for the proxy's first connection, 2 for the next… */
  readonly id: number;
  /** Resolves when both sockets are closed. */
  readonly closed: Promise<void>;
  /** Set once the connection was cut; `undefined` if it is open or closed by its peers. */
  cutReport: CutReport | undefined;
  /** The random cut points drawn for this connection, in the order the rules were attached. */
  readonly draws: RandomDraw[] = [];
  /** @internal */
  _open = true;
  readonly #client: Socket;
  readonly #target: Socket;
  readonly #up: Flow;
  readonly #down: Flow;
  readonly #proxy: FaultProxy;
  #pendingCut: CutHow | undefined;
  #cutTimer: ReturnType<typeof setTimeout> | undefined;

  /** @internal */
  constructor(proxy: FaultProxy, id: number, client: Socket, target: FaultProxyTarget) {
    this.#proxy = proxy;
    this.id = id;
    this.#client = client;
    this.#target = net.connect({ host: target.host, port: target.port, allowHalfOpen: true });
    this.#up = new Flow(this, "up", this.#client, this.#target);
    this.#down = new Flow(this, "down", this.#target, this.#client);
    let closedCount = 0;
    let done!: () => void;
    this.closed = new Promise<void>((resolve) => done = resolve);
    for (
      const [socket, flow, other] of [
        [this.#client, this.#up, this.#target],
        [this.#target, this.#down, this.#client],
      ] as const
    ) {
      socket.on("data", (chunk: Uint8Array) => flow.receive(chunk));
      socket.on("end", () => flow.end());
      // A peer's reset is passed on as a reset, so each side sees what a direct link shows.
      socket.on("error", () => {
        this._open = false;
        reset(other);
      });
      socket.on("close", () => {
        if (++closedCount < 2) return;
        this._open = false;
        this.#finishCut();
        this.#proxy._closed(this);
        done();
      });
    }
    this.#client.resume();
  }

  /** Bytes forwarded each way so far. */
  get forwarded(): { up: number; down: number } {
    return { up: this.#up.forwarded, down: this.#down.forwarded };
  }

  /**
   * Bytes the proxy read and holds because of a stall, each way (a stall also stops reading,
   * so more may wait in the sockets' buffers).
   */
  get held(): { up: number; down: number } {
    return { up: this.#up.heldBytes, down: this.#down.heldBytes };
  }

  /** Whether the connection is neither cut, nor reset by a peer, nor closed on both sides. */
  get isOpen(): boolean {
    return this._open;
  }

  /**
   * Cuts the connection now: bytes already forwarded are let through, then both sides are
   * reset (or half-closed with `how: "end"`).
   */
  cut(how: CutHow = "reset"): void {
    this._cut({ cause: "cut", how });
  }

  /** Holds bytes in `direction` (read, not forwarded) without closing anything. */
  stall(direction: Directions = "both"): void {
    for (const flow of this.#flows(direction)) flow.stall();
  }

  /** Forwards what a stall held, in order, and resumes forwarding. */
  unstall(direction: Directions = "both"): void {
    for (const flow of this.#flows(direction)) flow.unstall();
  }

  /**
   * Attaches a cut rule to this connection; its byte counts start now. Returns the random
   * draw for a random rule.
   */
  addRule(rule: CutRule): RandomDraw | undefined {
    validateRule(rule);
    return this._attach(rule, "random" in rule ? new Prng(rule.random.seed) : undefined);
  }

  /** @internal */
  _attach(rule: CutRule, prng: Prng | undefined): RandomDraw | undefined {
    let active: ActiveRule;
    let draw: RandomDraw | undefined;
    let direction: Direction;
    if ("random" in rule) {
      const index = prng!.draws;
      direction = rule.direction ?? (prng!.between(0, 1) === 0 ? "up" : "down");
      const bytes = prng!.between(rule.random.min, rule.random.max);
      draw = { seed: rule.random.seed, draw: index, direction, afterBytes: bytes };
      this.draws.push(draw);
      active = afterBytes(rule, this.#flow(direction).forwarded, bytes, draw);
    } else if ("afterBytes" in rule) {
      direction = rule.direction;
      active = afterBytes(rule, this.#flow(direction).forwarded, rule.afterBytes);
    } else if ("match" in rule) {
      direction = rule.direction;
      active = matching(rule);
    } else {
      direction = rule.direction;
      active = predicate(rule);
    }
    this.#flow(direction).rules.push(active);
    return draw;
  }

  #flow(direction: Direction): Flow {
    return direction === "up" ? this.#up : this.#down;
  }

  #flows(direction: Directions): Flow[] {
    return direction === "both" ? [this.#up, this.#down] : [this.#flow(direction)];
  }

  /** @internal */
  _counted(direction: Direction, bytes: number): void {
    this.#proxy._counted(direction, bytes);
  }

  /** @internal */
  _cutBy(active: ActiveRule, direction: Direction): void {
    this._cut({
      cause: "rule",
      how: active.rule.how ?? "reset",
      rule: active.rule,
      direction,
      draw: active.draw,
    });
  }

  /** @internal */
  _cut(report: Omit<CutReport, "forwarded" | "description">): void {
    if (!this._open) return;
    this._open = false;
    const forwarded = this.forwarded;
    let description = `connection #${this.id} cut (${report.how}) by ${report.cause}`;
    if (report.draw) {
      const { seed, draw, direction, afterBytes } = report.draw;
      description += `: random cut after ${afterBytes} bytes ${direction} (seed ${seed}, draw ` +
        `${draw})`;
    } else if (report.direction) {
      description += ` on ${report.direction}`;
    }
    description += `; forwarded up ${forwarded.up} B, down ${forwarded.down} B`;
    this.cutReport = { ...report, forwarded, description };
    this.#proxy._cutCounted();
    for (const flow of [this.#up, this.#down]) {
      flow.from.pause();
      flow.held.length = 0;
      flow.heldBytes = 0;
    }
    this.#pendingCut = report.how;
    this.#cutTimer = setTimeout(() => this.#finishCut(), CUT_FLUSH_MS);
    this._writeDone();
  }

  /** @internal A write completed: a pending cut goes ahead once its bytes were written. */
  _writeDone(): void {
    if (this.#pendingCut === undefined) return;
    const waiting = [this.#up, this.#down].some((flow) =>
      flow.pendingWrites > 0 && !flow.to.destroyed
    );
    if (!waiting) this.#finishCut();
  }

  #finishCut(): void {
    const how = this.#pendingCut;
    if (how === undefined) return;
    this.#pendingCut = undefined;
    clearTimeout(this.#cutTimer);
    if (how === "reset") {
      reset(this.#client);
      reset(this.#target);
    } else {
      // FIN after the bytes already written, then no more reading: a close(), not a half-close.
      for (const socket of [this.#client, this.#target]) socket.end(() => socket.destroy());
    }
  }

  /** @internal Drops both sockets at once (the proxy is closing). */
  _destroy(): void {
    if (this._open) this._cut({ cause: "close", how: "reset" });
    this.#pendingCut = "reset";
    this.#finishCut();
  }
}

/** A running proxy, made by {@linkcode startFaultProxy}. */
export class FaultProxy {
  /** The port it listens on. */
  readonly port: number;
  readonly #live: FaultConnection[] = [];
  /** Counts over the proxy's life. */
  readonly totals: FaultProxyTotals = {
    connections: 0,
    refused: 0,
    cut: 0,
    forwarded: { up: 0, down: 0 },
  };
  readonly #server: net.Server;
  readonly #target: FaultProxyTarget;
  #rules: ProxyRule[] = [];
  #stalled = { up: false, down: false };
  #refuse = 0;
  #refuseHow: CutHow = "reset";
  #accepting = true;
  readonly #waiting: Socket[] = [];
  readonly #sockets = new Set<Socket>();
  readonly #accepted: FaultConnection[] = [];
  #read = 0;
  #wake: (() => void) | undefined;
  #closing: Promise<void> | undefined;

  /** @internal */
  constructor(server: net.Server, port: number, target: FaultProxyTarget) {
    this.#server = server;
    this.port = port;
    this.#target = target;
    server.on("connection", (socket: Socket) => this.#accept(socket));
  }

  /** Live connections (not yet closed on both sides), in the order they were accepted. */
  get connections(): readonly FaultConnection[] {
    return this.#live;
  }

  #accept(socket: Socket): void {
    socket.on("error", () => {});
    this.#sockets.add(socket);
    socket.once("close", () => this.#sockets.delete(socket));
    if (this.#closing) return reset(socket);
    this.#admit(socket);
  }

  #admit(socket: Socket): void {
    if (this.#refuse > 0) {
      this.#refuse--;
      this.totals.refused++;
      if (this.#refuseHow === "reset") reset(socket);
      else socket.destroy(); // Nothing was read, so the close is a FIN.
      return;
    }
    if (!this.#accepting) {
      this.#waiting.push(socket);
      return;
    }
    const connection = new FaultConnection(this, ++this.totals.connections, socket, this.#target);
    this.#live.push(connection);
    this.#accepted.push(connection);
    if (this.#stalled.up) connection.stall("up");
    if (this.#stalled.down) connection.stall("down");
    for (const rule of this.#rules) {
      connection._attach(rule.rule, rule.prng);
      rule.remaining--;
    }
    this.#rules = this.#rules.filter((rule) => rule.remaining > 0);
    this.#wake?.();
  }

  /**
   * Attaches `rule` to each of the next `count` connections (`Infinity`: every one). A new
   * connection takes every rule not used up, in the order they were added; the earliest cut
   * point wins. A random rule draws a new cut point for each connection.
   */
  addRule(rule: CutRule, count = 1): void {
    if (!(count > 0)) throw new RangeError(`Cannot add the rule: count must be > 0, got ${count}`);
    this.#rules.push(new ProxyRule(rule, count));
  }

  /** Forgets the rules not yet attached to a connection (attached ones stay). */
  clearRules(): void {
    this.#rules = [];
  }

  /**
   * Accepts and at once closes the next `count` connections (a server that is down, from the
   * client's side): with a reset, or with `how: "end"` a FIN (a reset still if the client's
   * bytes arrived first: the kernel resets a socket closed with unread data). Sets the count,
   * not adds to it: `refuseNext(Infinity)` until `refuseNext(0)`.
   */
  refuseNext(count = 1, how: CutHow = "reset"): void {
    if (!(count >= 0)) throw new RangeError(`Cannot refuse: count must be >= 0, got ${count}`);
    this.#refuse = count;
    this.#refuseHow = how;
  }

  /**
   * Leaves new connections unanswered: TCP accepts them, but nothing is read and the target
   * is not dialled until {@linkcode resumeAccepting} (a server too busy to accept).
   */
  pauseAccepting(): void {
    this.#accepting = false;
  }

  /** Forwards the connections held by {@linkcode pauseAccepting}, and every new one. */
  resumeAccepting(): void {
    this.#accepting = true;
    for (const socket of this.#waiting.splice(0)) {
      if (!socket.destroyed) this.#admit(socket);
    }
  }

  /** How many connections {@linkcode pauseAccepting} holds. */
  get waiting(): number {
    return this.#waiting.filter((socket) => !socket.destroyed).length;
  }

  /** Cuts every live connection. */
  cutAll(how: CutHow = "reset"): void {
    for (const connection of [...this.connections]) connection._cut({ cause: "cutAll", how });
  }

  /** Stalls `direction` on every live connection and on new ones until {@linkcode unstall}. */
  stall(direction: Directions = "both"): void {
    if (direction !== "down") this.#stalled.up = true;
    if (direction !== "up") this.#stalled.down = true;
    for (const connection of this.connections) connection.stall(direction);
  }

  /** Releases a stall on every live connection; new ones are no longer stalled. */
  unstall(direction: Directions = "both"): void {
    if (direction !== "down") this.#stalled.up = false;
    if (direction !== "up") this.#stalled.down = false;
    for (const connection of [...this.connections]) connection.unstall(direction);
  }

  /**
   * The next accepted connection not returned before (in accept order); rejects after `ms`.
   */
  async nextConnection(ms = 5000): Promise<FaultConnection> {
    if (this.#read >= this.#accepted.length) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      try {
        await new Promise<void>((resolve, reject) => {
          this.#wake = resolve;
          timer = setTimeout(
            () => reject(new Error(`timed out after ${ms} ms waiting for a proxied connection`)),
            ms,
          );
        });
      } finally {
        this.#wake = undefined;
        clearTimeout(timer);
      }
    }
    return this.#accepted[this.#read++];
  }

  /** Resets every connection, closes the listener, and resolves when all of it is closed. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      const listener = new Promise<void>((resolve) => this.#server.close(() => resolve()));
      const connections = [...this.connections];
      const sockets = [...this.#sockets];
      const closes = sockets.map((socket) =>
        new Promise((resolve) => socket.once("close", resolve))
      );
      for (const connection of connections) connection._destroy();
      for (const socket of sockets) reset(socket);
      this.#waiting.length = 0;
      await Promise.all([
        listener,
        ...connections.map((connection) => connection.closed),
        ...closes,
      ]);
    })();
    return this.#closing;
  }

  /** @internal */
  _closed(connection: FaultConnection): void {
    const index = this.#live.indexOf(connection);
    if (index >= 0) this.#live.splice(index, 1);
  }

  /** @internal */
  _counted(direction: Direction, bytes: number): void {
    this.totals.forwarded[direction] += bytes;
  }

  /** @internal */
  _cutCounted(): void {
    this.totals.cut++;
  }
}

/**
 * Starts a fault-injection proxy in front of `options.target`.
 *
 * @param options The target and where to listen.
 * @returns The running proxy, listening.
 *
 * @example
 * ```ts
 * const proxy = await startFaultProxy({ target: { host: "127.0.0.1", port: 8080 } });
 * proxy.addRule({ direction: "down", random: { seed: 42, min: 0, max: 4096 } }, Infinity);
 * // … connect to proxy.port; each connection is cut at its own reproducible point.
 * await proxy.close();
 * ```
 */
export function startFaultProxy(options: FaultProxyOptions): Promise<FaultProxy> {
  const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 0, options.hostname ?? "127.0.0.1", () => {
      server.off("error", reject);
      const port = (server.address() as net.AddressInfo).port;
      resolve(new FaultProxy(server, port, options.target));
    });
  });
}
