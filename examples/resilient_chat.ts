/**
 * A chat room that survives dropped connections and server restarts, built on sessions
 * (`serveSessions` and `SessionClient`, the `sluice.v1` protocol in lib/session/PROTOCOL.md).
 * One file, two modes; runs unchanged on both runtimes:
 *
 *     deno run -A examples/resilient_chat.ts server [--port 9002] [--hostname 127.0.0.1]
 *     deno run -A examples/resilient_chat.ts client --name ann [--url ws://127.0.0.1:9002]
 *     bun examples/resilient_chat.ts server [--port 9002]
 *     bun examples/resilient_chat.ts client --name ann [--url ws://127.0.0.1:9002]
 *
 * The server signs resume tokens with `--secret S` (or `CHAT_SECRET`); without one it uses a
 * public demo secret and says so. Restart it with the same secret and clients learn that their
 * session's state is gone ("restarted"); with another secret, that their token is "invalid".
 *
 * In the client, each line typed is a chat message: it is sent reliably (processed once by the
 * server, re-sent after a reconnect until acknowledged) and marked `✓ delivered` when the server
 * acknowledges it; lines typed while the connection is down wait in the offline queue. The
 * room is a topic with history: after a reconnect the client receives what it missed, each
 * message once and in order. Commands:
 *
 *     /who    who is online, and who is away (a session waiting in its resume window): a request
 *     /drop   cut the connection abruptly (no closing handshake), as a network failure would;
 *             `kill -USR2 <pid>` does the same (SIGUSR1 is not used: Deno starts its inspector on it)
 *     /drop N the same, and the network stays down for N seconds: each attempt fails meanwhile
 *     /quit   close and exit (end of input and Ctrl-C too)
 *
 * Every change of state is printed: connecting, reconnecting in N ms (attempt k), resumed (and
 * whether the room's position was recovered), history reset (and why), new session (and how
 * many unacknowledged messages were re-sent: those may have been processed twice).
 *
 * What survives what: a dropped connection loses nothing within the server's resume window
 * (2 minutes). A server restart loses the server's state (this example keeps it in memory): the
 * client says so, starts a new session, re-sends what the old one had not acknowledged (a
 * message processed just before the crash whose acknowledgement was lost is then processed
 * twice), and the room starts a new history; what was published while the client was away is
 * lost to it, and it says so.
 *
 * On SIGINT or SIGTERM the server shuts down gracefully: each client is told to come back after
 * a random delay in [1000, 5000] ms (the `bye` frame), so a room of clients does not reconnect
 * all at once.
 */
import process from "node:process";
import { createInterface } from "node:readline";
import {
  type ClientWebSocket,
  connect,
  type ResetReason,
  type ResumeRefusal,
  serveSessions,
  type Session,
  type SessionBackoffOptions,
  SessionClient,
  type SessionData,
  type SessionServer,
  type WebSocketLike,
} from "../mod.ts";

/** The secret used when none is given. Demo only: anyone reading this file has it. */
export const DEMO_SECRET = "resilient-chat demo secret, not for production";
/** The topic the room's messages are published on. */
export const ROOM = "room";
/** The longest message, in UTF-16 code units. */
export const MAX_TEXT = 2000;
const NAME = /^[A-Za-z0-9_-]{1,32}$/;

/** What each session carries (`session.data`): who it is. */
export interface ChatData {
  /** The name given in the URL's `?name=`. */
  name: string;
}

/** A message in the room, as published (JSON). */
export interface ChatLine {
  /** Who said it. */
  from: string;
  /** What was said. */
  text: string;
  /** When the server published it (milliseconds since the Unix epoch). */
  at: number;
}

/** What {@linkcode startServer} takes. */
export interface ChatServerOptions {
  /** The port; 0 picks a free one. @default {9002} */
  port?: number;
  /** The address to bind. @default {"127.0.0.1"} */
  hostname?: string;
  /** The key resume tokens are signed with (at least 16 bytes). @default {DEMO_SECRET} */
  secret?: string;
  /** Where the server says what happens to sessions. @default {() => {}} */
  log?: (line: string) => void;
}

/**
 * Starts the chat server.
 *
 * @param options Where to listen, the secret, and where to log.
 * @returns The listening session server; `server.shutdown({ retry })` stops it.
 */
export function startServer(options: ChatServerOptions = {}): SessionServer<ChatData> {
  const log = options.log ?? (() => {});
  // Sessions by id that /who lists: each until it ends, or its client said goodbye (a close
  // with 1000 is `SessionClient.close()`; anything else may come back within the window).
  const present = new Map<string, Session<ChatData>>();

  const server = serveSessions<ChatData>({
    hostname: options.hostname ?? "127.0.0.1",
    port: options.port ?? 9002,
    secret: options.secret ?? DEMO_SECRET,
    // The largest message is 2,000 code units, each at most 6 bytes of JSON (\uXXXX), in a frame.
    maxPayloadLength: 16 * 1024,
    upgrade(request) {
      const name = request.searchParams.get("name") ?? "";
      if (!NAME.test(name)) {
        return new Response("?name= must match /^[A-Za-z0-9_-]{1,32}$/\n", { status: 400 });
      }
      return { data: { name } };
    },
    // A resume token is worth something only to the name it was issued to ("not-yours").
    bind: (data) => data.name,
    open(session, { resumed, reason }) {
      present.set(session.id, session);
      const { name } = session.data;
      if (resumed) {
        log(`${name} resumed session ${session.id}`);
        return;
      }
      log(`${name} started session ${session.id}${reason === undefined ? "" : ` (${reason})`}`);
      // A session message: replayed like the room's messages if the connection drops.
      session.send(`welcome, ${name}: ${names().online.length} online; /who lists them`);
    },
    message(session, data) {
      if (typeof data !== "string" || data.length === 0 || data.length > MAX_TEXT) {
        session.send(`not sent: a message is text of 1 to ${MAX_TEXT} characters`);
        return;
      }
      const line: ChatLine = { from: session.data.name, text: data, at: Date.now() };
      server.publish(ROOM, JSON.stringify(line));
    },
    request(_session, data) {
      if (data !== "who") throw new Error(`unknown request ${JSON.stringify(data)}`);
      return JSON.stringify(names());
    },
    detach(session, code) {
      if (code === 1000) {
        log(`${session.data.name} left (${code})`);
        present.delete(session.id);
      } else log(`${session.data.name} detached (${code}); the session waits for a resume`);
    },
    end(session, why) {
      log(`${session.data.name}'s session ${session.id} ended (${why})`);
      present.delete(session.id);
    },
  });

  function names(): { online: string[]; away: string[] } {
    const online = new Set<string>();
    const away = new Set<string>();
    for (const session of present.values()) {
      (session.connected ? online : away).add(session.data.name);
    }
    for (const name of online) away.delete(name);
    return { online: [...online].sort(), away: [...away].sort() };
  }

  return server;
}

/**
 * What the session client needs of a WebSocket, on sluice's `connect`, plus `cut()`: the
 * connection dropped without a closing handshake, as a failing network drops it. (sluice's
 * `WebSocket` facade has the browser's API, which has no such thing.)
 */
class CuttableSocket implements WebSocketLike {
  binaryType = "arraybuffer";
  readyState = 0;
  protocol = "";
  onopen: ((event: object) => unknown) | null = null;
  onmessage: ((event: { data: SessionData }) => unknown) | null = null;
  onclose: ((event: { code: number; reason: string }) => unknown) | null = null;
  onerror: ((event: { error: unknown }) => unknown) | null = null;
  #ws: ClientWebSocket | undefined;
  #abort = new AbortController();

  /**
   * Connects, unless `down`: then it fails as an unreachable server does.
   *
   * @param url The server's URL.
   * @param protocols The subprotocols to offer.
   * @param down Whether the network is down (`/drop N`).
   */
  constructor(url: string, protocols: string[], down: boolean) {
    if (down) {
      // After the caller has set its handlers, as a real failure comes.
      setTimeout(() => {
        this.onerror?.({ error: new Error("the network is down (/drop)") });
        this.#closed(1006, "");
      }, 0);
      return;
    }
    connect(url, {
      protocols,
      signal: this.#abort.signal,
      // Runs before connect resolves, and before any message.
      open: (ws) => {
        this.#ws = ws;
        this.readyState = 1;
        this.protocol = ws.protocol;
        this.onopen?.({});
      },
      message: (_ws, data) => void this.onmessage?.({ data }),
      close: (_ws, code, reason) => this.#closed(code, reason),
    }).catch((error) => {
      // Refused, unreachable, or abandoned by close(): no connection, so no close handler.
      this.onerror?.({ error });
      this.#closed(1006, "");
    });
  }

  send(data: string | Uint8Array): void {
    this.#ws!.send(data);
  }

  close(code?: number, reason?: string): void {
    if (this.readyState >= 2) return;
    if (this.#ws === undefined) this.#abort.abort();
    else this.#ws.close(code, reason);
    this.readyState = 2;
  }

  /** Drops the TCP connection at once: no Close frame; both ends see 1006. */
  cut(): void {
    this.#ws?.terminate();
  }

  #closed(code: number, reason: string): void {
    this.readyState = 3;
    this.onclose?.({ code, reason });
  }
}

/** What {@linkcode ChatClient} takes. */
export interface ChatClientOptions {
  /** The server's URL, without the name. */
  url: string;
  /** The name to chat as (letters, digits, `_` and `-`; 1 to 32). */
  name: string;
  /** Where each line of output goes. */
  print: (line: string) => void;
  /** Reconnection delays (the session client's). @default {{}} */
  backoff?: SessionBackoffOptions;
  /** The random source of the reconnection delays, in [0, 1). @default {Math.random} */
  random?: () => number;
}

const REFUSALS: Record<ResumeRefusal, string> = {
  expired: "the session expired: away longer than the server's resume window",
  restarted: "the server restarted and its state is gone",
  invalid: "the server did not accept the resume token (another secret?)",
  "not-yours": "the session belongs to another name",
};

const RESETS: Record<ResetReason, string> = {
  epoch: "the room's history started again",
  trimmed: "the messages missed are no longer in the room's history",
  ahead: "the position is from another history",
};

/** What a new session re-sent: the old one may have processed some before it was lost. */
function resentText(resent: number): string {
  return resent === 0
    ? "nothing unacknowledged to re-send"
    : `${resent} unacknowledged messages re-sent (the old session may have processed them: ` +
      "they may appear twice)";
}

/**
 * The terminal client's logic, without the terminal: lines in (`input`), lines out (`print`).
 *
 * @example
 * ```ts
 * import { ChatClient, startServer } from "./resilient_chat.ts";
 * const server = startServer({ port: 0 });
 * const ann = new ChatClient({
 *   url: `ws://127.0.0.1:${server.port}`,
 *   name: "ann",
 *   print: console.log,
 * });
 * await ann.input("hello"); // resolves once the server acknowledged it
 * await ann.input("/quit");
 * await server.shutdown();
 * ```
 */
export class ChatClient {
  /** The session client underneath. */
  readonly session: SessionClient;
  #print: (line: string) => void;
  #socket: CuttableSocket | undefined;
  /** Until when (performance.now()) dials fail: `/drop N`. */
  #downUntil = 0;
  #closed: Promise<void>;
  /** Settles at the room's first `topic` event (or the close). */
  #joined: Promise<void>;

  /**
   * Connects, and joins the room.
   *
   * @param options The server, the name, where output goes, and the reconnection delays.
   */
  constructor(options: ChatClientOptions) {
    if (!NAME.test(options.name)) {
      throw new TypeError("Cannot chat: the name must match /^[A-Za-z0-9_-]{1,32}$/");
    }
    const url = new URL(options.url);
    url.searchParams.set("name", options.name);
    const print = this.#print = options.print;
    const session = this.session = new SessionClient(url, {
      // The socket is kept so that /drop can cut it.
      webSocket: (target, protocols) =>
        this.#socket = new CuttableSocket(
          target,
          protocols,
          performance.now() < this.#downUntil,
        ),
      backoff: options.backoff,
      random: options.random,
    });
    session.subscribe(ROOM);
    // On the first connection the client sends what it queued before it asks for the room, so
    // a line typed while connecting would be published before this client is in the room and
    // never shown to it: lines wait for the room (later connections name it in their hello).
    let joined!: () => void;
    this.#joined = new Promise((resolve) => joined = resolve);
    const offJoined = session.on("topic", () => {
      offJoined();
      joined();
    });

    session.on(
      "connecting",
      ({ attempt }) => print(`* connecting to ${options.url} (attempt ${attempt})`),
    );
    session.on("reconnecting", ({ attempt, delay, code, reason }) =>
      print(
        `* connection lost (${code}${reason === "" ? "" : ` ${reason}`}); ` +
          `reconnecting in ${delay} ms (attempt ${attempt})`,
      ));
    session.on("open", ({ session: id, resumed, reason, lost, resent }) => {
      if (resumed) {
        print(
          `* resumed session ${id}: ${
            lost === 0 ? "nothing lost" : `${lost} messages to you lost (the replay buffer's caps)`
          }; ${
            resent === 0
              ? "nothing unacknowledged to re-send"
              : `${resent} unacknowledged messages re-sent (the server skips those it has)`
          }`,
        );
      } else if (reason === undefined) {
        print(`* connected: new session ${id} as ${options.name}`);
      }
      // A new session after a refused resume is told by the reset event.
    });
    session.on("reset", (event) => {
      if (event.scope === "session") {
        print(
          `* history reset: ${
            REFUSALS[event.reason]
          } (${event.reason}); new session ${session.sessionId}; ` +
            resentText(event.resent) +
            (event.rejected === 0 ? "" : `; ${event.rejected} requests failed`),
        );
      } else {
        print(
          `* history reset in #${event.topic}: ${RESETS[event.reason]} (${event.reason}); ` +
            `what was said meanwhile is lost; continuing from #${event.offset}`,
        );
      }
    });
    session.on("topic", ({ topic, recovered, reason, offset }) => {
      if (reason !== undefined) return; // told by the reset event
      print(
        recovered
          ? `* #${topic}: recovered from #${offset}; missed messages follow`
          : `* #${topic}: joined at #${offset}`,
      );
    });
    session.on("message", ({ data }) => print(`! server: ${String(data)}`));
    session.on("publication", ({ data, offset }) => {
      const line = JSON.parse(String(data)) as ChatLine;
      print(`#${offset} ${line.from}: ${line.text}`);
    });
    session.on("error", ({ error }) => print(`! error: ${(error as Error).message ?? error}`));
    this.#closed = new Promise((resolve) => {
      session.on("closed", ({ code, reason }) => {
        print(`* closed (${code}${reason === "" ? "" : ` ${reason}`})`);
        joined();
        resolve();
      });
    });
  }

  /** Resolves once the client is closed: by `/quit`, or by the server (a fatal close code). */
  get closed(): Promise<void> {
    return this.#closed;
  }

  /**
   * Takes one line typed by the user: a command (`/who`, `/drop [seconds]`, `/quit`) or a
   * message.
   *
   * @param line The line.
   * @returns A promise that settles once the line is dealt with: a message acknowledged (or
   * refused), the `/who` reply printed, the client closed.
   */
  input(line: string): Promise<void> {
    const text = line.trim();
    if (text === "") return Promise.resolve();
    if (text === "/who") return this.who();
    const drop = /^\/drop(?:\s+(\d+(?:\.\d+)?))?$/.exec(text);
    if (drop !== null) {
      this.drop(Number(drop[1] ?? 0));
      return Promise.resolve();
    }
    if (text === "/quit") return this.close();
    if (text.startsWith("/")) {
      this.#print("! commands: /who, /drop [seconds], /quit");
      return Promise.resolve();
    }
    return this.say(text);
  }

  /**
   * Sends a message to the room, reliably.
   *
   * @param text The message.
   * @returns A promise that settles once it is acknowledged (`✓ delivered` is printed) or
   * refused (`✗`).
   */
  say(text: string): Promise<void> {
    if (this.session.state !== "open") this.#print(`… offline: queued "${text}"`);
    return this.#joined.then(() => this.session.send(text)).then(
      () => this.#print(`✓ delivered: "${text}"`),
      (error) => this.#print(`✗ not delivered: "${text}" (${(error as Error).message})`),
    );
  }

  /**
   * Asks the server who is in the room, and prints it.
   *
   * @returns A promise that settles once the answer is printed.
   */
  who(): Promise<void> {
    return this.session.request("who", { timeout: 10_000 }).then(
      (reply) => {
        const { online, away } = JSON.parse(String(reply)) as { online: string[]; away: string[] };
        this.#print(
          `* online: ${online.join(", ") || "nobody"}` +
            (away.length === 0 ? "" : `; away: ${away.join(", ")}`),
        );
      },
      (error) => this.#print(`✗ /who failed: ${(error as Error).message}`),
    );
  }

  /**
   * Cuts the current connection abruptly (no closing handshake); the client reconnects.
   *
   * @param seconds How long the network then stays down: connection attempts fail meanwhile.
   */
  drop(seconds = 0): void {
    if (this.session.state !== "open") {
      this.#print(`* no connection to drop (${this.session.state})`);
      return;
    }
    this.#downUntil = performance.now() + seconds * 1000;
    this.#print(
      "* dropping the connection (no closing handshake)" +
        (seconds > 0 ? `; the network stays down for ${seconds} s` : ""),
    );
    this.#socket!.cut();
  }

  /**
   * Closes for good (with 1000: the server forgets the name at once).
   *
   * @returns A promise that resolves once the client is closed.
   */
  close(): Promise<void> {
    this.session.close(1000, "quit");
    return this.#closed;
  }
}

function option(name: string, fallback: string): string {
  const at = process.argv.indexOf(`--${name}`);
  return at !== -1 && at + 1 < process.argv.length ? process.argv[at + 1] : fallback;
}

function runServer(): void {
  const given = option("secret", process.env.CHAT_SECRET ?? "");
  const server = startServer({
    hostname: option("hostname", "127.0.0.1"),
    port: Number(option("port", "9002")),
    secret: given === "" ? undefined : given,
    log: (line) => console.log(line),
  });
  if (given === "") console.log("using the public demo secret (set --secret or CHAT_SECRET)");
  console.log(`listening on ws://${server.hostname}:${server.port}`);
  let stopping = false;
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    process.on(signal, async () => {
      if (stopping) return;
      stopping = true;
      console.log(`${signal}: shutting down; clients come back in 1 to 5 s`);
      await server.shutdown({ retry: [1000, 5000], reason: "restart", timeout: 2000 });
      process.exit(0);
    });
  }
}

function runClient(): void {
  const name = option("name", "");
  if (!NAME.test(name)) {
    console.error("usage: resilient_chat.ts client --name NAME [--url ws://127.0.0.1:9002]");
    process.exit(2);
  }
  const client = new ChatClient({
    url: option("url", "ws://127.0.0.1:9002"),
    name,
    print: (line) => console.log(line),
  });
  const lines = createInterface({ input: process.stdin });
  lines.on("line", (line) => void client.input(line));
  lines.on("close", () => client.close());
  process.on("SIGINT", () => client.close());
  void client.closed.then(() => process.exit(0));
  process.on("SIGUSR2", () => client.drop());
}

if (import.meta.main) {
  const mode = process.argv[2];
  if (mode === "server") runServer();
  else if (mode === "client") runClient();
  else {
    console.error(
      "usage: resilient_chat.ts server [--port 9002] [--hostname H] [--secret S]\n" +
        "       resilient_chat.ts client --name NAME [--url ws://127.0.0.1:9002]",
    );
    process.exit(2);
  }
}
