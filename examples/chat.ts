/**
 * A small authenticated chat server with rooms, built on topics. Runs unchanged on both
 * runtimes:
 *
 *     deno run -A examples/chat.ts --port 9002
 *     bun examples/chat.ts --port 9002
 *
 * Options: --port N (default 9002), --hostname H (default 127.0.0.1). Users and their tokens
 * come from `CHAT_TOKENS="alice:secret1,bob:secret2"` (user:token pairs); without it a demo
 * table is used and printed.
 *
 * Authentication happens in the upgrade hook, before any WebSocket exists. The token comes
 * from `Authorization: Bearer <token>` (servers, CLIs) or, because browsers cannot set headers
 * on a WebSocket, from a `?token=` query parameter. The header wins when both are present.
 * A token in a URL ends up in access logs, proxy logs and browser history: issue short-lived,
 * single-purpose tokens for it (a login endpoint hands one out just before connecting), never a
 * long-lived password. Smuggling the token in as a fake subprotocol (`"token.<token>"`) is not
 * supported: the server would have to pick a different protocol than the one carrying the
 * secret, and the offer shows up wherever headers are logged anyway. A missing or unknown
 * token is refused with 401 and `WWW-Authenticate: Bearer realm="chat"`. The subprotocol
 * `chat.v1` is chosen when offered, so a later `chat.v2` can live beside it.
 *
 * The protocol is JSON in text messages:
 *
 *     client → server   {"type":"join","room":"general"}
 *                       {"type":"leave","room":"general"}
 *                       {"type":"say","room":"general","text":"hi"}
 *     server → client   {"type":"joined","room":"general","user":"alice"}
 *                       {"type":"left","room":"general","user":"alice"}
 *                       {"type":"said","room":"general","user":"alice","text":"hi","at":1700000000000}
 *                       {"type":"error","message":"..."}
 *
 * Every room event goes to the whole room with `server.publish`, the sender included: the
 * sender's own `joined`, `left` and `said` are its confirmation, carry the server's `at`, and
 * arrive in the same order everyone else sees, so a client renders only what comes back and
 * never has to reconcile an optimistic copy. (`ws.publish`, which skips the sender, suits
 * streams where the sender already has the data, such as cursor positions.) Errors go only to
 * the sender. Room names match /^[a-z0-9-]{1,32}$/, text is 1–2,000 UTF-16 code units (what a
 * browser's `maxlength` counts), and a user is in at most 10 rooms per connection. A binary
 * message closes the connection with 1003; a closed connection's rooms are told it `left`.
 */
import process from "node:process";
import {
  CloseCode,
  serve,
  type Server,
  type ServerWebSocket,
  type UpgradeRequest,
} from "../mod.ts";

/** What each connection carries (`ws.data`): who it is and which rooms it is in. */
export interface ChatUser {
  /** The user name the token maps to. */
  user: string;
  /**
   * The rooms joined, kept beside the topics because a connection has already left its topics
   * when the close handler runs, and that handler must still announce `left` in each room.
   */
  rooms: Set<string>;
}

/** What {@linkcode startChat} takes. */
export interface ChatOptions {
  /** The port; 0 picks a free one. @default {9002} */
  port?: number;
  /** The address to bind. @default {"127.0.0.1"} */
  hostname?: string;
  /** Users by token, as {@linkcode parseTokens} makes them. @default {parseTokens(DEMO_TOKENS)} */
  tokens?: Map<string, string>;
}

/** The table used when `CHAT_TOKENS` is not set. Demo only: anyone reading this file has it. */
export const DEMO_TOKENS = "alice:secret1,bob:secret2,carol:secret3";

/** The subprotocol this server speaks. */
export const PROTOCOL = "chat.v1";
/** Rooms one connection may be in: bounds the fan-out a single client can cause. */
export const MAX_ROOMS = 10;
/** The longest `say` text, in UTF-16 code units. */
export const MAX_TEXT = 2000;
const ROOM_NAME = /^[a-z0-9-]{1,32}$/;
// RFC 7235 §2.1: the scheme is case-insensitive; RFC 6750 §2.1: one token68 after it.
const BEARER = /^bearer +([A-Za-z0-9\-._~+/]+=*) *$/i;
const UNAUTHORIZED = { status: 401, headers: { "WWW-Authenticate": 'Bearer realm="chat"' } };

/**
 * Parses `user:token` pairs separated by commas.
 *
 * @param spec Such as `"alice:secret1,bob:secret2"`.
 * @returns Users by token.
 * @throws {RangeError} On an entry without a user or a token, or a token given twice.
 */
export function parseTokens(spec: string): Map<string, string> {
  const users = new Map<string, string>();
  for (const entry of spec.split(",")) {
    const colon = entry.indexOf(":");
    const user = entry.slice(0, colon).trim();
    const token = entry.slice(colon + 1).trim();
    if (colon <= 0 || user === "" || token === "") {
      throw new RangeError(
        `Cannot parse tokens: expected user:token, got ${JSON.stringify(entry)}`,
      );
    }
    // Two users with one token: whoever holds it would be either of them.
    if (users.has(token)) throw new RangeError(`Cannot parse tokens: a token is given twice`);
    users.set(token, user);
  }
  return users;
}

/**
 * Starts the chat server.
 *
 * @param options Where to listen and whom to let in.
 * @returns The listening server; `server.shutdown()` stops it.
 */
export function startChat(options: ChatOptions = {}): Server<ChatUser> {
  const tokens = options.tokens ?? parseTokens(DEMO_TOKENS);

  // Stands in for a database or an auth service: the answer comes a macrotask later, so the
  // upgrade hook really is asynchronous (the handshake timeout covers the wait).
  function lookUp(token: string): Promise<string | undefined> {
    return new Promise((resolve) => setTimeout(() => resolve(tokens.get(token)), 0));
  }

  const server = serve<ChatUser>({
    hostname: options.hostname ?? "127.0.0.1",
    port: options.port ?? 9002,
    // The largest valid `say` is 2,000 code units, each at most 6 bytes of JSON (\uXXXX):
    // 12,000 bytes plus the envelope. Anything bigger is not chat; fail it with 1009 unread.
    maxPayloadLength: 16 * 1024,
    // A tab left open in a silent room holds a seat for nothing; after 10 minutes without a
    // message either way it is closed with 1001 and a client reconnects when it needs to.
    idleTimeout: 10 * 60_000,
    // heartbeat: the default (a ping after 30 s of silence, dropped 10 s later) finds peers
    // that vanished without a FIN, so their rooms hear `left` within a minute.
    // A reader that cannot keep up with its rooms is closed (1008) instead of buffering for it
    // without bound; 256 KiB is hundreds of typical messages, 20 of the largest.
    maxBackpressure: 256 * 1024,
    backpressurePolicy: "close",
    // People type: 20 messages a second with a burst of 100 is generous for a person (and for a
    // client rejoining its rooms) and stops a script from flooding a room (1008).
    rateLimit: { messages: 20, burst: 5, policy: "close" },
    async upgrade(request) {
      const token = tokenOf(request);
      const user = token === undefined ? undefined : await lookUp(token);
      if (user === undefined) return new Response("Unauthorized", UNAUTHORIZED);
      return {
        data: { user, rooms: new Set() },
        protocol: request.protocols.includes(PROTOCOL) ? PROTOCOL : undefined,
      };
    },
    message(ws, data, isBinary) {
      // Messages the client sent before our Close frame reached it still arrive: a closing
      // connection (readyState 2) can no longer be answered, so they are ignored.
      if (ws.readyState !== 1) return;
      // RFC 6455 §7.4.1: 1003 is for a data type the endpoint cannot accept.
      if (isBinary) return ws.close(CloseCode.UnsupportedData, "Text JSON only");
      handle(ws, data as string);
    },
    close(ws) {
      const { user, rooms } = ws.data;
      // The connection has already left every topic, so this reaches only the others.
      for (const room of rooms) server.publish(topic(room), event({ type: "left", room, user }));
      rooms.clear();
    },
  });

  function handle(ws: ServerWebSocket<ChatUser>, data: string): void {
    let message: unknown;
    try {
      message = JSON.parse(data);
    } catch {
      return fail(ws, "invalid JSON");
    }
    if (typeof message !== "object" || message === null) {
      return fail(ws, "expected a JSON object");
    }
    const { type, room, text } = message as Record<string, unknown>;
    if (type !== "join" && type !== "leave" && type !== "say") {
      return fail(ws, 'type must be "join", "leave" or "say"');
    }
    if (typeof room !== "string" || !ROOM_NAME.test(room)) {
      return fail(ws, "room must match /^[a-z0-9-]{1,32}$/");
    }
    const { user, rooms } = ws.data;
    const name = topic(room);
    if (type === "join") {
      if (ws.isSubscribed(name)) return fail(ws, `already in room ${room}`);
      if (ws.topics.length >= MAX_ROOMS) return fail(ws, `at most ${MAX_ROOMS} rooms`);
      ws.subscribe(name);
      rooms.add(room);
      server.publish(name, event({ type: "joined", room, user }));
      return;
    }
    if (!ws.isSubscribed(name)) return fail(ws, `not in room ${room}`);
    if (type === "leave") {
      // Published before unsubscribing, so the leaver gets its confirmation in the same order.
      server.publish(name, event({ type: "left", room, user }));
      ws.unsubscribe(name);
      rooms.delete(room);
      return;
    }
    if (typeof text !== "string" || text.length === 0 || text.length > MAX_TEXT) {
      return fail(ws, `text must be a string of 1 to ${MAX_TEXT} characters`);
    }
    server.publish(name, event({ type: "said", room, user, text, at: Date.now() }));
  }

  return server;
}

/** The Bearer token of the Authorization header, else the `token` query parameter. */
function tokenOf(request: UpgradeRequest): string | undefined {
  const authorization = request.headers.get("authorization");
  if (authorization !== null) return BEARER.exec(authorization)?.[1];
  return request.searchParams.get("token") || undefined;
}

/** Rooms live in their own topic namespace, so other topics added later cannot collide. */
function topic(room: string): string {
  return `room:${room}`;
}

function event(value: Record<string, string | number>): string {
  return JSON.stringify(value);
}

function fail(ws: ServerWebSocket<ChatUser>, message: string): void {
  ws.send(event({ type: "error", message }));
}

function option(name: string, fallback: string): string {
  const at = process.argv.indexOf(`--${name}`);
  return at !== -1 && at + 1 < process.argv.length ? process.argv[at + 1] : fallback;
}

if (import.meta.main) {
  const spec = process.env.CHAT_TOKENS;
  const tokens = parseTokens(spec ?? DEMO_TOKENS);
  const server = startChat({
    hostname: option("hostname", "127.0.0.1"),
    port: Number(option("port", "9002")),
    tokens,
  });
  const url = `ws://${server.hostname}:${server.port}/`;
  if (spec === undefined) {
    // Printing tokens is fine only because these are the public demo ones.
    console.log(`demo users (set CHAT_TOKENS="user:token,..." to replace): ${DEMO_TOKENS}`);
    console.log(`chat on ${url}?token=${tokens.keys().next().value}`);
  } else {
    console.log(`chat on ${url}?token=<token> (users from CHAT_TOKENS: ${tokens.size})`);
  }
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    process.on(signal, async () => {
      await server.shutdown({ timeout: 2000 });
      process.exit(0);
    });
  }
}
