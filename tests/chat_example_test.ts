/**
 * End to end: examples/chat.ts over real sockets. Refusals with 401, tokens from the query and
 * the header, the subprotocol, who hears what in which room, leaving, errors for bad input,
 * the message size limit, binary messages closed with 1003, `left` announced when a connection
 * goes, and shutdown.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { type ChatUser, MAX_ROOMS, MAX_TEXT, parseTokens, startChat } from "../examples/chat.ts";
import type { Server } from "../mod.ts";
import {
  type HttpResponse,
  Op,
  openWebSocket,
  parseClose,
  RawClient,
  text,
  upgradeRequest,
} from "./_client.ts";

const TOKENS = "alice:a-token,bob:b-token,carol:c-token";

/** What a test body gets: the server, and connections closed after the test. */
interface Chat {
  server: Server<ChatUser>;
  /** Opens a WebSocket as the user of `token` (`?token=`, or with `header` a Bearer header). */
  join(token: string, options?: { header?: boolean; protocols?: string }): Promise<Client>;
  /** Sends `path` and `extra` header lines in an upgrade request; returns the HTTP response. */
  refused(path: string, extra?: string[]): Promise<HttpResponse>;
}

/** A connected user: JSON out, JSON in. */
class Client {
  constructor(readonly raw: RawClient, readonly response: HttpResponse) {}

  send(message: unknown): Promise<void> {
    return this.raw.sendFrame(
      Op.Text,
      typeof message === "string" ? message : JSON.stringify(message),
    );
  }

  /** The next message, which must be a JSON text message. */
  async next(): Promise<Record<string, unknown>> {
    const frame = await this.raw.nextFrame();
    assert.equal(frame.opcode, Op.Text, `expected a text message, got opcode ${frame.opcode}`);
    return JSON.parse(text(frame.payload));
  }

  /** The next message, without its `at` (checked to be the server's clock, now). */
  async nextSaid(): Promise<Record<string, unknown>> {
    const { at, ...rest } = await this.next();
    assert.equal(typeof at, "number", "said carries a numeric at");
    assert.ok(Math.abs(Date.now() - (at as number)) < 5000, `at ${at} is not now`);
    return rest;
  }

  /** Joins a room and checks its own confirmation. */
  async enter(room: string, user: string): Promise<void> {
    await this.send({ type: "join", room });
    assert.deepEqual(await this.next(), { type: "joined", room, user });
  }

  /**
   * Asserts that nothing arrived since the last read: a request the server answers only to
   * this client must come back first (one connection's messages keep their order, so anything
   * sent to it earlier would be ahead of the answer).
   */
  async assertNothing(label: string): Promise<void> {
    await this.send({ type: "leave", room: "fence" });
    assert.deepEqual(
      await this.next(),
      { type: "error", message: "not in room fence" },
      `${label}: something arrived before the fence`,
    );
  }
}

async function withChat(body: (chat: Chat) => Promise<void>): Promise<void> {
  const server = startChat({ hostname: "127.0.0.1", port: 0, tokens: parseTokens(TOKENS) });
  const sockets: RawClient[] = [];
  try {
    await body({
      server,
      async join(token, options = {}) {
        const { client, response } = await openWebSocket(server.port, {
          path: options.header ? "/" : `/?token=${token}`,
          extra: options.header ? [`Authorization: Bearer ${token}`] : [],
          protocols: options.protocols,
        });
        sockets.push(client);
        return new Client(client, response);
      },
      async refused(path, extra = []) {
        const client = await RawClient.connect(server.port);
        sockets.push(client);
        await client.write(upgradeRequest({ path, extra }));
        return await client.response();
      },
    });
  } finally {
    for (const socket of sockets) socket.destroy();
    await Promise.all(sockets.map((socket) => socket.closed));
    await server.shutdown({ timeout: 1000 });
  }
}

test("a missing, unknown or malformed token is refused with 401 and a Bearer challenge", async () => {
  await withChat(async (chat) => {
    const cases: Array<[string, string, string[]]> = [
      ["no token", "/", []],
      ["an empty token", "/?token=", []],
      ["an unknown query token", "/?token=nope", []],
      ["an unknown header token", "/", ["Authorization: Bearer nope"]],
      ["another scheme", "/", ["Authorization: Basic YWxpY2U6YS10b2tlbg=="]],
      // The header wins: a bad header is not rescued by a good query parameter.
      ["a bad header and a good query", "/?token=a-token", ["Authorization: Bearer nope"]],
    ];
    for (const [label, path, extra] of cases) {
      const response = await chat.refused(path, extra);
      assert.equal(response.status, 401, label);
      assert.equal(response.headers.get("www-authenticate"), 'Bearer realm="chat"', label);
      assert.equal(new TextDecoder().decode(response.body), "Unauthorized", label);
    }
  });
});

test("a token in the query or in the header names the user; chat.v1 when offered", async () => {
  await withChat(async (chat) => {
    const alice = await chat.join("a-token", { protocols: "chat.v1" });
    assert.equal(alice.response.headers.get("sec-websocket-protocol"), "chat.v1");
    await alice.enter("general", "alice");

    const bob = await chat.join("b-token", { header: true, protocols: "other, chat.v1" });
    assert.equal(bob.response.headers.get("sec-websocket-protocol"), "chat.v1");
    await bob.enter("general", "bob");
    assert.deepEqual(await alice.next(), { type: "joined", room: "general", user: "bob" });

    // No offer, or no offer the server speaks: no subprotocol, but still let in.
    const carol = await chat.join("c-token", { protocols: "other" });
    assert.equal(carol.response.headers.get("sec-websocket-protocol"), undefined);
    await carol.enter("general", "carol");
  });
});

test("room members hear each other; a user in another room does not", async () => {
  await withChat(async (chat) => {
    const alice = await chat.join("a-token");
    const bob = await chat.join("b-token");
    const carol = await chat.join("c-token");
    await alice.enter("general", "alice");
    await bob.enter("general", "bob");
    assert.deepEqual(await alice.next(), { type: "joined", room: "general", user: "bob" });
    await carol.enter("random", "carol");

    await alice.send({ type: "say", room: "general", text: "hi bob" });
    const fromAlice = { type: "said", room: "general", user: "alice", text: "hi bob" };
    assert.deepEqual(await alice.nextSaid(), fromAlice, "the sender gets its own message");
    assert.deepEqual(await bob.nextSaid(), fromAlice);

    await bob.send({ type: "say", room: "general", text: "hi alice 👋" });
    const fromBob = { type: "said", room: "general", user: "bob", text: "hi alice 👋" };
    assert.deepEqual(await bob.nextSaid(), fromBob);
    assert.deepEqual(await alice.nextSaid(), fromBob);

    await carol.send({ type: "say", room: "random", text: "anyone?" });
    const fromCarol = { type: "said", room: "random", user: "carol", text: "anyone?" };
    assert.deepEqual(await carol.nextSaid(), fromCarol, "carol got nothing from general");
    await alice.assertNothing("alice after carol spoke in random");
    await bob.assertNothing("bob after carol spoke in random");
  });
});

test("leaving confirms to the leaver, tells the room, and stops delivery", async () => {
  await withChat(async (chat) => {
    const alice = await chat.join("a-token");
    const bob = await chat.join("b-token");
    await alice.enter("general", "alice");
    await bob.enter("general", "bob");
    assert.deepEqual(await alice.next(), { type: "joined", room: "general", user: "bob" });

    await bob.send({ type: "leave", room: "general" });
    const left = { type: "left", room: "general", user: "bob" };
    assert.deepEqual(await bob.next(), left);
    assert.deepEqual(await alice.next(), left);

    await alice.send({ type: "say", room: "general", text: "still here?" });
    assert.deepEqual(await alice.nextSaid(), {
      type: "said",
      room: "general",
      user: "alice",
      text: "still here?",
    });
    await bob.assertNothing("bob after leaving");

    await bob.send({ type: "say", room: "general", text: "back" });
    assert.deepEqual(await bob.next(), { type: "error", message: "not in room general" });
    await alice.assertNothing("alice after bob's refused say");

    // Leaving is not for good.
    await bob.enter("general", "bob");
    assert.deepEqual(await alice.next(), { type: "joined", room: "general", user: "bob" });

    // A room bob left hears no second `left` when he disconnects (the server reports the close
    // when it answers bob's Close frame, so alice's fence comes after it).
    await bob.send({ type: "leave", room: "general" });
    assert.deepEqual(await bob.next(), left);
    assert.deepEqual(await alice.next(), left);
    await bob.raw.sendClose(1000);
    assert.equal(parseClose(await bob.raw.nextFrame()).code, 1000);
    await alice.assertNothing("alice after bob, who had left, closed");
  });
});

test("bad input gets an error and the connection stays usable", async () => {
  await withChat(async (chat) => {
    const alice = await chat.join("a-token");
    const error = (message: string) => ({ type: "error", message });
    const roomRule = error("room must match /^[a-z0-9-]{1,32}$/");
    const textRule = error(`text must be a string of 1 to ${MAX_TEXT} characters`);
    const typeRule = error('type must be "join", "leave" or "say"');
    const cases: Array<[unknown, unknown]> = [
      ["not json", error("invalid JSON")],
      ['{"type":"join"', error("invalid JSON")],
      ["42", error("expected a JSON object")],
      ["null", error("expected a JSON object")],
      [{ room: "general" }, typeRule],
      [{ type: "shout", room: "general" }, typeRule],
      [{ type: "join" }, roomRule],
      [{ type: "join", room: "General" }, roomRule],
      [{ type: "join", room: "a b" }, roomRule],
      [{ type: "join", room: "" }, roomRule],
      [{ type: "join", room: "x".repeat(33) }, roomRule],
      [{ type: "join", room: 7 }, roomRule],
      [{ type: "say", room: "general", text: "hi" }, error("not in room general")],
      [{ type: "leave", room: "general" }, error("not in room general")],
    ];
    for (const [input, expected] of cases) {
      await alice.send(input);
      assert.deepEqual(await alice.next(), expected, JSON.stringify(input));
    }

    await alice.enter("general", "alice");
    await alice.send({ type: "join", room: "general" });
    assert.deepEqual(await alice.next(), error("already in room general"));
    for (const text of [undefined, 5, "", "x".repeat(MAX_TEXT + 1)]) {
      await alice.send({ type: "say", room: "general", text });
      assert.deepEqual(await alice.next(), textRule, `text ${String(text).slice(0, 10)}`);
    }
    // The limits themselves are allowed: 32-character room names, 2,000-character texts.
    const longest = "x".repeat(MAX_TEXT);
    await alice.send({ type: "say", room: "general", text: longest });
    assert.deepEqual(await alice.nextSaid(), {
      type: "said",
      room: "general",
      user: "alice",
      text: longest,
    });
    for (let i = 1; i < MAX_ROOMS; i++) await alice.enter(`${i}`.padStart(32, "r"), "alice");
    await alice.send({ type: "join", room: "one-too-many" });
    assert.deepEqual(await alice.next(), error(`at most ${MAX_ROOMS} rooms`));
    // Leaving one makes room for another.
    await alice.send({ type: "leave", room: "general" });
    assert.deepEqual(await alice.next(), { type: "left", room: "general", user: "alice" });
    await alice.enter("one-too-many", "alice");
  });
});

test("the largest valid say fits in the 16 KiB limit; a bigger message is refused with 1009", async () => {
  await withChat(async (chat) => {
    const alice = await chat.join("a-token");
    await alice.enter("general", "alice");
    // Every character escaped as \u0000: six bytes of JSON each, the worst case.
    const worst = "\u0000".repeat(MAX_TEXT);
    const say = JSON.stringify({ type: "say", room: "general", text: worst });
    assert.ok(say.length > 12_000 && say.length <= 16 * 1024, `${say.length} bytes`);
    await alice.send(say);
    assert.deepEqual(await alice.nextSaid(), {
      type: "said",
      room: "general",
      user: "alice",
      text: worst,
    });

    await alice.send("x".repeat(16 * 1024 + 1));
    assert.equal(parseClose(await alice.raw.nextFrame()).code, 1009);
  });
});

test("a binary message closes with 1003 and the room hears the sender left", async () => {
  await withChat(async (chat) => {
    const alice = await chat.join("a-token");
    const bob = await chat.join("b-token");
    await alice.enter("general", "alice");
    await bob.enter("general", "bob");
    assert.deepEqual(await alice.next(), { type: "joined", room: "general", user: "bob" });

    await bob.raw.sendFrame(Op.Binary, new Uint8Array([1, 2, 3]));
    // A say pipelined behind the binary message must not reach the room: bob is closing.
    await bob.send({ type: "say", room: "general", text: "sneaky" });
    const close = parseClose(await bob.raw.nextFrame());
    assert.equal(close.code, 1003);
    await bob.raw.sendClose(1003);
    await bob.raw.waitClosed();
    assert.deepEqual(await alice.next(), { type: "left", room: "general", user: "bob" });
    await alice.assertNothing("alice after bob was closed");
  });
});

test("a connection that closes or vanishes is announced as left in each of its rooms", async () => {
  await withChat(async (chat) => {
    const alice = await chat.join("a-token");
    const bob = await chat.join("b-token");
    const carol = await chat.join("c-token");
    await alice.enter("general", "alice");
    await alice.enter("random", "alice");
    await carol.enter("random", "carol");
    assert.deepEqual(await alice.next(), { type: "joined", room: "random", user: "carol" });
    for (const room of ["general", "random", "quiet"]) await bob.enter(room, "bob");
    assert.deepEqual(await alice.next(), { type: "joined", room: "general", user: "bob" });
    assert.deepEqual(await alice.next(), { type: "joined", room: "random", user: "bob" });
    assert.deepEqual(await carol.next(), { type: "joined", room: "random", user: "bob" });

    // A closing handshake: each of bob's rooms hears it once.
    await bob.raw.sendClose(1000);
    assert.equal(parseClose(await bob.raw.nextFrame()).code, 1000);
    assert.deepEqual(await alice.next(), { type: "left", room: "general", user: "bob" });
    assert.deepEqual(await alice.next(), { type: "left", room: "random", user: "bob" });
    assert.deepEqual(await carol.next(), { type: "left", room: "random", user: "bob" });
    await alice.assertNothing("alice after bob closed");
    await carol.assertNothing("carol after bob closed");

    // A TCP connection dropped without a Close frame (the close handler sees 1006).
    carol.raw.destroy();
    assert.deepEqual(await alice.next(), { type: "left", room: "random", user: "carol" });
    await alice.assertNothing("alice after carol vanished");
  });
});

test("shutdown closes every connection with 1001", async () => {
  await withChat(async (chat) => {
    const alice = await chat.join("a-token");
    await alice.enter("general", "alice");
    const done = chat.server.shutdown({ timeout: 1000 });
    assert.equal(parseClose(await alice.raw.nextFrame()).code, 1001);
    await alice.raw.sendClose(1001);
    await done;
    await alice.raw.waitClosed();
  });
});

test("parseTokens reads user:token pairs and refuses malformed ones", () => {
  assert.deepEqual(
    parseTokens(" alice:s1 , bob:s2:x"),
    new Map([["s1", "alice"], ["s2:x", "bob"]]),
  );
  for (const spec of ["", "alice", ":s1", "alice:", "alice:s1,,bob:s2", "alice:s1,bob:s1"]) {
    assert.throws(() => parseTokens(spec), RangeError, JSON.stringify(spec));
  }
});
