/**
 * WebSocket servers of other implementations, started as child processes, for testing and
 * benchmarking clients against them: `bun-serve` (Bun.serve), `deno-serve` (Deno.serve with
 * Deno.upgradeWebSocket) and `node-ws` (npm `ws` on Node.js). Each is an echo server on
 * 127.0.0.1 that answers with a subprotocol, speaks permessage-deflate and TLS when asked, can
 * refuse every upgrade, closes when a client sends `!close CODE REASON`, and reports what it
 * saw (tests/peers/_peer.ts describes them).
 *
 * @module
 */
import { type ChildProcess, spawn } from "node:child_process";
import process from "node:process";
import { createInterface } from "node:readline";
import { command, ROOT, type Runtime } from "../bench/_proc.ts";
import type { PeerConfig, PeerEvent } from "./peers/_peer.ts";

export type { PeerEvent };

/** The peers: the runtime each runs on, its script, and whether it can do permessage-deflate. */
export const PEERS = {
  "bun-serve": { runtime: "bun", script: "tests/peers/bun_serve.ts", deflate: true },
  // Deno.upgradeWebSocket does not implement permessage-deflate.
  "deno-serve": { runtime: "deno", script: "tests/peers/deno_serve.ts", deflate: false },
  "node-ws": { runtime: "node", script: "tests/peers/node_ws.mjs", deflate: true },
} as const satisfies Record<string, { runtime: Runtime; script: string; deflate: boolean }>;

/** A peer's name. */
export type PeerKind = keyof typeof PEERS;

/** Every peer's name. */
export const PEER_KINDS: PeerKind[] = Object.keys(PEERS) as PeerKind[];

/** How to start a peer. */
export interface PeerOptions {
  /**
   * Subprotocols it accepts: it answers with the first of the client's offer in this list.
   * @default []
   */
  protocols?: string[];
  /**
   * Negotiate permessage-deflate when offered, and compress every echo (only the peers whose
   * `PEERS[kind].deflate` is true can: asking another throws).
   * @default false
   */
  deflate?: boolean;
  /** Serve wss:// with this PEM certificate and key (tests/_tls.ts). @default undefined */
  tls?: { cert: string; key: string };
  /**
   * Refuse every upgrade with this status, body and headers.
   * @default undefined
   */
  refuse?: { status: number; body?: string; headers?: Record<string, string> };
  /** A text message each connection gets as soon as it opens. @default undefined */
  greet?: string;
  /** How long it may take to print its port, in ms. @default 30000 */
  startTimeout?: number;
}

/** A running peer. */
export interface Peer {
  kind: PeerKind;
  /** `ws://127.0.0.1:PORT/`, or `wss://` with TLS. */
  url: string;
  port: number;
  /** The child's process id. */
  pid: number;
  /** Every event it reported so far, in order. */
  readonly events: readonly PeerEvent[];
  /**
   * The first event of `type` not taken yet (events of other types are left for later).
   * Rejects after `ms`, or when the peer exits first.
   */
  event<K extends PeerEvent["type"]>(
    type: K,
    ms?: number,
  ): Promise<Extract<PeerEvent, { type: K }>>;
  /** Kills the child and waits for it to exit. */
  stop(): Promise<void>;
}

/**
 * Starts a peer and resolves once it listens.
 *
 * @param kind Which peer.
 * @param options Its subprotocols, deflate, TLS, refusal and greeting.
 * @returns The running peer; `stop()` it.
 * @throws {RangeError} When `deflate` is asked of a peer that cannot do it.
 *
 * @example
 * ```ts ignore
 * const peer = await startPeer("node-ws", { protocols: ["chat"] });
 * try {
 *   const ws = new WebSocket(peer.url, "chat");
 *   // …
 * } finally {
 *   await peer.stop();
 * }
 * ```
 */
export async function startPeer(kind: PeerKind, options: PeerOptions = {}): Promise<Peer> {
  const { runtime, script, deflate } = PEERS[kind];
  if (options.deflate === true && !deflate) {
    throw new RangeError(`Cannot start ${kind} with deflate: it has no permessage-deflate`);
  }
  const config: PeerConfig = {
    protocols: options.protocols ?? [],
    deflate: options.deflate ?? false,
    tls: options.tls,
    refuse: options.refuse === undefined ? undefined : {
      status: options.refuse.status,
      body: options.refuse.body ?? "",
      headers: options.refuse.headers ?? {},
    },
    greet: options.greet,
  };
  const [file, ...args] = command(runtime, script, ["--config", JSON.stringify(config)]);
  const child = spawn(file, args, {
    cwd: ROOT,
    stdio: ["pipe", "pipe", "pipe"],
    env: { ...process.env, NO_COLOR: "1" },
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const output: string[] = [];
  child.stderr!.setEncoding("utf8").on("data", (text: string) => output.push(text));
  const events: PeerEvent[] = [];
  const taken = new Set<number>();
  let wake = () => {};
  let ready: string | undefined;
  createInterface({ input: child.stdout! }).on("line", (line) => {
    if (line.startsWith("event ")) events.push(JSON.parse(line.slice(6)) as PeerEvent);
    else if (line.startsWith("ready ") && ready === undefined) ready = line;
    else output.push(`${line}\n`);
    wake();
  });
  let gone = false;
  exited.then(() => {
    gone = true;
    wake();
  });
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 3000);
      await exited;
      clearTimeout(timer);
    }
    child.stdin!.destroy();
  };

  /** Waits until `found` returns a value, the peer exits, or `ms` pass. */
  const until = async <T>(found: () => T | undefined, what: string, ms: number): Promise<T> => {
    const deadline = Date.now() + ms;
    for (;;) {
      const value = found();
      if (value !== undefined) return value;
      if (gone) throw new Error(`${kind} exited before ${what}${said(child, output)}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`${kind}: no ${what} within ${ms} ms${said(child, output)}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  };

  let port: number;
  let pid: number;
  try {
    const line = await until(() => ready, "its port", options.startTimeout ?? 30_000);
    [port, pid] = line.split(" ").slice(1).map(Number);
  } catch (error) {
    await stop();
    throw error;
  }
  return {
    kind,
    url: `${options.tls === undefined ? "ws" : "wss"}://127.0.0.1:${port}/`,
    port,
    pid,
    events,
    event<K extends PeerEvent["type"]>(type: K, ms = 5000) {
      return until(
        () => {
          const at = events.findIndex((e, i) => e.type === type && !taken.has(i));
          if (at === -1) return undefined;
          taken.add(at);
          return events[at] as Extract<PeerEvent, { type: K }>;
        },
        `"${type}" event`,
        ms,
      );
    },
    stop,
  };
}

/** What the child printed besides its port and events, for an error message. */
function said(child: ChildProcess, output: string[]): string {
  const text = output.join("").trim();
  const status = child.exitCode ?? child.signalCode;
  return (status === null ? "" : ` (exit ${status})`) + (text === "" ? "" : `: ${text}`);
}
