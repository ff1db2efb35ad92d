/**
 * The session server (`serveSessions`) spoken to frame by frame: a sluice client sends the
 * `sluice.v1` frames of lib/session/PROTOCOL.md by hand and checks the server's, so every rule
 * of the server's side is tested on its own: the hello and welcome, acknowledgements, exactly-once
 * processing, requests and replies, the replay buffer and its caps, topics with history and
 * every reset reason, resume tokens and every refusal, the bye on shutdown, and the figures.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  type ClientWebSocket,
  connect,
  HandshakeError,
  serveSessions,
  type Session,
  type SessionServeOptions,
  type SessionServer,
} from "../mod.ts";
import {
  type ClientFrame,
  decodeServerFrame,
  encodeFrame,
  type ServerFrame,
} from "../lib/session/wire.ts";
import { within } from "./_client.ts";
import { Queue, waitFor } from "./_harness.ts";

const SECRET = "0123456789abcdef-test-secret";

/** One connection speaking sluice.v1 by hand. */
class Peer {
  readonly frames = new Queue<ServerFrame>();
  readonly closed: Promise<{ code: number; reason: string }>;
  ws!: ClientWebSocket;

  constructor(ws: ClientWebSocket) {
    this.ws = ws;
    this.closed = ws.closed;
  }

  send(frame: ClientFrame): void {
    this.ws.send(encodeFrame(frame));
  }

  /** The next frame, which must be of type `t`. */
  async next<K extends ServerFrame["t"]>(t: K): Promise<ServerFrame & { t: K }> {
    const frame = await this.frames.next(`a ${t} frame`);
    assert.equal(frame.t, t, `expected ${t}, got ${JSON.stringify(frame)}`);
    return frame as ServerFrame & { t: K };
  }

  /** Sends a hello and returns the welcome. */
  async hello(
    hello: Omit<ClientFrame & { t: "hello" }, "t" | "v"> = {},
  ): Promise<ServerFrame & { t: "welcome" }> {
    this.send({ t: "hello", v: 1, ...hello });
    return await this.next("welcome");
  }

  drop(): Promise<unknown> {
    this.ws.terminate();
    return this.closed;
  }
}

async function withSessions<T = undefined>(
  options: Omit<SessionServeOptions<T>, "secret" | "port"> & { secret?: string },
  body: (h: {
    server: SessionServer<T>;
    peer(path?: string): Promise<Peer>;
  }) => Promise<void>,
): Promise<void> {
  const server = serveSessions<T>(
    { port: 0, hostname: "127.0.0.1", secret: SECRET, ...options } as SessionServeOptions<T>,
  );
  const peers: Peer[] = [];
  try {
    await body({
      server,
      async peer(path = "/") {
        const ws = await connect(`ws://127.0.0.1:${server.port}${path}`, {
          protocols: ["sluice.v1"],
          message(_ws, data) {
            peer.frames.push(decodeServerFrame(data));
          },
        });
        const peer = new Peer(ws);
        peers.push(peer);
        return peer;
      },
    });
  } finally {
    for (const peer of peers) if (peer.ws.readyState !== 3) peer.ws.terminate();
    await within(Promise.all(peers.map((peer) => peer.closed)), "the peers to close");
    await server.shutdown({ timeout: 1000 });
  }
}

test("a client that does not offer sluice.v1 is refused with 400", async () => {
  await withSessions({}, async ({ server }) => {
    const error = await connect(`ws://127.0.0.1:${server.port}/`).then(
      () => undefined,
      (error) => error,
    );
    assert.ok(error instanceof HandshakeError);
    assert.equal(error.status, 400);
  });
});

test("secret and option checks", () => {
  assert.throws(
    () => serveSessions({ port: 0, secret: "short" }),
    {
      name: "RangeError",
      message: "Cannot serve sessions: secret must be at least 16 bytes, got 5",
    },
  );
  assert.throws(
    () => serveSessions({ port: 0, secret: 42 as unknown as string }),
    {
      name: "TypeError",
      message: "Cannot serve sessions: secret must be a string or a Uint8Array",
    },
  );
  assert.throws(
    () => serveSessions({ port: 0, secret: SECRET, resumeWindow: -1 }),
    RangeError,
  );
});

test("hello, welcome; reliable messages processed once each and acknowledged cumulatively", async () => {
  const got: string[] = [];
  await withSessions({ message: (_s, data) => void got.push(data as string) }, async (h) => {
    const peer = await h.peer();
    const welcome = await peer.hello();
    assert.equal(welcome.resumed, false);
    assert.equal(welcome.ack, 0);
    assert.equal(welcome.window, 120_000);
    assert.match(welcome.token, /^v1\./);
    peer.send({ t: "msg", seq: 1, d: "a" });
    peer.send({ t: "msg", seq: 2, d: "b" });
    peer.send({ t: "msg", d: "volatile" });
    const ack = await peer.next("ack");
    // One turn processed all of them: one ack, of the highest seq.
    assert.ok(ack.seq >= 1);
    if (ack.seq === 1) assert.equal((await peer.next("ack")).seq, 2);
    peer.send({ t: "msg", seq: 2, d: "b again" }); // a duplicate: not processed
    peer.send({ t: "msg", seq: 3, d: "c" });
    assert.equal((await peer.next("ack")).seq, 3);
    assert.deepEqual(got, ["a", "b", "volatile", "c"]);
    assert.equal(h.server.stats().sessions.duplicates, 1);
  });
});

test("a seq that skips ahead, a frame before hello, a bad frame: 1008", async () => {
  await withSessions({}, async (h) => {
    const a = await h.peer();
    await a.hello();
    a.send({ t: "msg", seq: 2, d: "x" });
    assert.deepEqual(await a.closed, { code: 1008, reason: "sluice.v1: seq 2 skips ahead of 1" });
    const b = await h.peer();
    b.send({ t: "msg", seq: 1, d: "x" });
    assert.deepEqual(await b.closed, { code: 1008, reason: "sluice.v1: msg before hello" });
    const c = await h.peer();
    c.ws.send("{nope");
    assert.deepEqual(await c.closed, { code: 1008, reason: "sluice.v1: frame is not JSON" });
    const d = await h.peer();
    await d.hello();
    d.send({ t: "ack", seq: 5 });
    assert.equal((await d.closed).code, 1008);
  });
});

test("no hello within helloTimeout: 4008, which the client retries after", async () => {
  await withSessions({ helloTimeout: 50 }, async (h) => {
    const peer = await h.peer();
    assert.deepEqual(await peer.closed, { code: 4008, reason: "sluice.v1: no hello in time" });
  });
});

test("requests: a reply with its own seq, an error reply, JSON for other values", async () => {
  const reported: unknown[] = [];
  await withSessions({
    error: (error) => void reported.push(error),
    request(_session, data) {
      if (data === "fail") throw new Error("no such thing");
      if (data === "json") return { ok: true };
      if (data === "bigint") return { n: 1n };
      return Promise.resolve(`re: ${data}`);
    },
  }, async (h) => {
    const peer = await h.peer();
    await peer.hello();
    peer.send({ t: "req", seq: 1, d: "ping" });
    const reply = await peer.next("reply");
    assert.deepEqual(reply, { t: "reply", seq: 1, re: 1, d: "re: ping" });
    assert.equal((await peer.next("ack")).seq, 1);
    peer.send({ t: "req", seq: 2, d: "fail" });
    assert.deepEqual(await peer.next("reply"), {
      t: "reply",
      seq: 2,
      re: 2,
      error: { message: "no such thing" },
    });
    await peer.next("ack");
    peer.send({ t: "req", seq: 3, d: "json" });
    assert.equal((await peer.next("reply")).d, '{"ok":true}');
    await peer.next("ack");
    peer.send({ t: "req", seq: 4, d: "bigint" });
    const bigint = await peer.next("reply");
    assert.equal(bigint.re, 4);
    assert.match(bigint.error!.message, /BigInt/);
    assert.equal(reported.length, 1); // the BigInt's TypeError; a thrown handler error is a reply
  });
});

test("binary data travels in the binary form both ways", async () => {
  await withSessions({ request: (_s, data) => data }, async (h) => {
    const peer = await h.peer();
    await peer.hello();
    const bytes = Uint8Array.of(0, 1, 2, 255);
    peer.send({ t: "req", seq: 1, d: bytes });
    const reply = await peer.next("reply");
    assert.deepEqual(reply.d, bytes);
  });
});

test("resume: unacknowledged session messages and replies replayed, requests not run again", async () => {
  let runs = 0;
  let session: Session | undefined;
  await withSessions({
    open: (s) => void (session = s),
    request: (_s, data) => {
      runs++;
      return `r${data}`;
    },
  }, async (h) => {
    const a = await h.peer();
    const first = await a.hello();
    session!.send("one");
    session!.send("two");
    assert.equal((await a.next("msg")).seq, 1);
    assert.equal((await a.next("msg")).seq, 2);
    a.send({ t: "ack", seq: 1 });
    a.send({ t: "req", seq: 1, d: "x" });
    assert.equal((await a.next("reply")).seq, 3);
    await a.drop();
    await waitFor(() => !session!.connected, "the session to detach");
    session!.send("three"); // while away
    const b = await h.peer();
    const welcome = await b.hello({ token: first.token, ack: 1 });
    assert.equal(welcome.resumed, true);
    assert.equal(welcome.session, first.session);
    assert.equal(welcome.ack, 1);
    assert.notEqual(welcome.token, first.token);
    assert.deepEqual(await b.next("msg"), { t: "msg", seq: 2, d: "two" });
    assert.deepEqual(await b.next("reply"), { t: "reply", seq: 3, re: 1, d: "rx" });
    assert.deepEqual(await b.next("msg"), { t: "msg", seq: 4, d: "three" });
    b.send({ t: "req", seq: 1, d: "x" }); // resent after the reconnect: not run again
    b.send({ t: "msg", seq: 2, d: "new" });
    assert.equal((await b.next("ack")).seq, 2);
    assert.equal(runs, 1);
    const stats = h.server.stats().sessions;
    assert.equal(stats.resumed, 1);
    assert.equal(stats.replayedMessages, 3);
    assert.equal(stats.duplicates, 1);
  });
});

test("the replay buffer's caps: what was dropped is reported as lost, never silently", async () => {
  let session: Session | undefined;
  await withSessions({ open: (s) => void (session = s), replay: { maxMessages: 2 } }, async (h) => {
    const a = await h.peer();
    const first = await a.hello();
    await a.drop();
    await waitFor(() => !session!.connected, "the session to detach");
    for (const text of ["1", "2", "3", "4", "5"]) session!.send(text);
    const b = await h.peer();
    const welcome = await b.hello({ token: first.token, ack: 0 });
    assert.equal(welcome.resumed, true);
    assert.equal(welcome.lost, 3);
    assert.deepEqual(await b.next("msg"), { t: "msg", seq: 4, d: "4" });
    assert.deepEqual(await b.next("msg"), { t: "msg", seq: 5, d: "5" });
    assert.equal(h.server.stats().sessions.lost, 3);
  });
});

test("topics: subscribed, live pubs, then a resume gets the missed ones in order, then live", async () => {
  await withSessions({}, async (h) => {
    h.server.publish("news", "before");
    const a = await h.peer();
    const first = await a.hello();
    a.send({ t: "sub", topic: "news" });
    const subscribed = await a.next("subscribed");
    assert.equal(subscribed.offset, 1);
    assert.equal(subscribed.recovered, false);
    const epoch = subscribed.epoch;
    assert.deepEqual(h.server.publish("news", "x"), { epoch, offset: 2 });
    assert.deepEqual(await a.next("pub"), { t: "pub", topic: "news", epoch, offset: 2, d: "x" });
    await a.drop();
    h.server.publish("news", "y");
    h.server.publish("news", "z");
    const b = await h.peer();
    await b.hello({ token: first.token, topics: { news: { epoch, offset: 2 } } });
    assert.deepEqual(await b.next("subscribed"), {
      t: "subscribed",
      topic: "news",
      epoch,
      offset: 2,
      recovered: true,
    });
    assert.equal((await b.next("pub")).d, "y");
    assert.equal((await b.next("pub")).d, "z");
    h.server.publish("news", "live");
    assert.deepEqual(await b.next("pub"), {
      t: "pub",
      topic: "news",
      epoch,
      offset: 5,
      d: "live",
    });
    // Filling a gap without reconnecting: sub from a position.
    b.send({ t: "sub", topic: "news", from: { epoch, offset: 3 } });
    assert.equal((await b.next("subscribed")).offset, 3);
    assert.equal((await b.next("pub")).offset, 4);
    assert.equal((await b.next("pub")).offset, 5);
    h.server.publish("news", "after");
    assert.equal((await b.next("pub")).offset, 6); // once, not twice
    assert.equal(h.server.stats().sessions.topicsRecovered, 2);
  });
});

test("topic resets: another epoch, a trimmed position, a position ahead", async () => {
  await withSessions({ history: { maxMessages: 2 } }, async (h) => {
    for (const text of ["1", "2", "3", "4"]) h.server.publish("t", text);
    const peer = await h.peer();
    await peer.hello({ topics: { t: { epoch: "another", offset: 3 } } });
    const reset = await peer.next("reset");
    assert.equal(reset.reason, "epoch");
    assert.equal(reset.offset, 4);
    const epoch = reset.epoch;
    peer.send({ t: "sub", topic: "t", from: { epoch, offset: 1 } });
    assert.deepEqual(await peer.next("reset"), {
      t: "reset",
      topic: "t",
      epoch,
      offset: 4,
      reason: "trimmed",
    });
    peer.send({ t: "sub", topic: "t", from: { epoch, offset: 9 } });
    assert.equal((await peer.next("reset")).reason, "ahead");
    peer.send({ t: "sub", topic: "t", from: { epoch, offset: 2 } }); // 3 and 4 are kept
    assert.equal((await peer.next("subscribed")).recovered, true);
    assert.equal((await peer.next("pub")).d, "3");
    assert.equal((await peer.next("pub")).d, "4");
    assert.equal(h.server.stats().sessions.topicsReset, 3);
  });
});

test("a subscription the subscribe hook refuses is answered with unsubscribed", async () => {
  await withSessions(
    { subscribe: (_s, topic) => Promise.resolve(topic !== "admin") },
    async (h) => {
      const peer = await h.peer();
      await peer.hello();
      peer.send({ t: "sub", topic: "admin" });
      assert.deepEqual(await peer.next("unsubscribed"), {
        t: "unsubscribed",
        topic: "admin",
        reason: "denied",
      });
      peer.send({ t: "sub", topic: "lobby" });
      assert.equal((await peer.next("subscribed")).topic, "lobby");
    },
  );
});

test("a server subscription the client never heard of resumes from where it was made", async () => {
  let session: Session | undefined;
  await withSessions({ open: (s) => void (session = s) }, async (h) => {
    const a = await h.peer();
    const first = await a.hello();
    await a.drop();
    await waitFor(() => !session!.connected, "the session to detach");
    session!.subscribe("alerts"); // while away
    h.server.publish("alerts", "fire");
    const b = await h.peer();
    await b.hello({ token: first.token });
    const subscribed = await b.next("subscribed");
    assert.equal(subscribed.offset, 0);
    assert.equal((await b.next("pub")).d, "fire");
  });
});

test("resume refusals: invalid, restarted, not-yours, expired; each starts a new session", async () => {
  let user = "ann";
  await withSessions<{ user: string }>({
    upgrade: () => ({ data: { user } }),
    bind: (data) => data.user,
  }, async (h) => {
    const a = await h.peer();
    const first = await a.hello();
    const tampered = first.token.slice(0, -2) + (first.token.endsWith("A") ? "BB" : "AA");
    const b = await h.peer();
    const invalid = await b.hello({ token: tampered });
    assert.equal(invalid.resumed, false);
    assert.equal(invalid.reason, "invalid");
    assert.notEqual(invalid.session, first.session);
    await a.drop();
    user = "bob";
    const c = await h.peer();
    const stolen = await c.hello({ token: first.token });
    assert.equal(stolen.reason, "not-yours");
    assert.notEqual(stolen.session, first.session);
    user = "ann"; // the session is still there for its owner
    const d = await h.peer();
    assert.equal((await d.hello({ token: first.token })).resumed, true);
    assert.deepEqual(h.server.stats().sessions.refused, { invalid: 1, "not-yours": 1 });
  });
  await withSessions({ resumeWindow: 50 }, async (h) => {
    const a = await h.peer();
    const first = await a.hello();
    await a.drop();
    await waitFor(() => h.server.stats().sessions.expired === 1, "the window to pass");
    const b = await h.peer();
    assert.equal((await b.hello({ token: first.token })).reason, "expired");
    assert.deepEqual(h.server.stats().sessions.refused, { expired: 1 });
  });
  // Another server with the same secret: a token from the first is from another incarnation.
  let token = "";
  await withSessions({}, async (h) => {
    token = (await (await h.peer()).hello()).token;
  });
  await withSessions({}, async (h) => {
    const welcome = await (await h.peer()).hello({ token });
    assert.equal(welcome.resumed, false);
    assert.equal(welcome.reason, "restarted");
  });
});

test("a resume while the old connection is still open supersedes it with 4001", async () => {
  await withSessions({}, async (h) => {
    const a = await h.peer();
    const first = await a.hello();
    const b = await h.peer();
    assert.equal((await b.hello({ token: first.token })).resumed, true);
    assert.deepEqual(await a.closed, {
      code: 4001,
      reason: "sluice.v1: resumed on another connection",
    });
    assert.equal(h.server.stats().sessions.attached, 1);
  });
});

test("maxDetachedSessions evicts the session detached longest", async () => {
  const ended: string[] = [];
  await withSessions({
    maxDetachedSessions: 1,
    end: (session, why) => void ended.push(`${session.id}:${why}`),
  }, async (h) => {
    const a = await h.peer();
    const wa = await a.hello();
    const b = await h.peer();
    await b.hello();
    await a.drop();
    await waitFor(() => h.server.stats().sessions.detached === 1, "a to detach");
    await b.drop();
    await waitFor(() => ended.length === 1, "an eviction");
    assert.deepEqual(ended, [`${wa.session}:evicted`]);
    assert.equal(h.server.stats().sessions.detached, 1);
  });
});

test("shutdown sends bye with the retry range, then closes with 1012", async () => {
  const server = serveSessions({ port: 0, hostname: "127.0.0.1", secret: SECRET });
  const frames: ServerFrame[] = [];
  const ws = await connect(`ws://127.0.0.1:${server.port}/`, {
    protocols: ["sluice.v1"],
    message: (_ws, data) => void frames.push(decodeServerFrame(data)),
  });
  ws.send(encodeFrame({ t: "hello", v: 1 }));
  await waitFor(() => frames.length === 1, "the welcome");
  await server.shutdown({ retry: [100, 200], reason: "deploy" });
  assert.deepEqual(await ws.closed, { code: 1012, reason: "deploy" });
  assert.deepEqual(frames[1], { t: "bye", retry: [100, 200], reason: "deploy" });
  const other = serveSessions({ port: 0, hostname: "127.0.0.1", secret: SECRET });
  await assert.rejects(other.shutdown({ retry: [5, 1] }), {
    name: "TypeError",
    message: "Cannot shut down: retry must be [min, max] milliseconds, min <= max",
  });
  await other.shutdown();
});

test("stats and metrics carry the session figures", async () => {
  await withSessions({}, async (h) => {
    const peer = await h.peer();
    await peer.hello();
    h.server.publish("t", "x");
    const stats = h.server.stats();
    assert.equal(stats.sessions.created, 1);
    assert.equal(stats.sessions.attached, 1);
    assert.equal(stats.sessions.history.messages, 1);
    const text = h.server.metrics();
    assert.match(text, /^sluice_sessions_attached 1$/m);
    assert.match(text, /^sluice_sessions_created_total 1$/m);
  });
});

test("replay.maxTotalBytes evicts the sessions detached longest", async () => {
  const sessions: Session[] = [];
  const ended: string[] = [];
  await withSessions({
    open: (s) => void sessions.push(s),
    end: (s, why) => void ended.push(`${s.id}:${why}`),
    replay: { maxTotalBytes: 3000 },
  }, async (h) => {
    const a = await h.peer();
    await a.hello();
    const b = await h.peer();
    await b.hello();
    await a.drop();
    await waitFor(() => h.server.stats().sessions.detached === 1, "a to detach");
    await b.drop();
    await waitFor(() => h.server.stats().sessions.detached === 2, "b to detach");
    sessions[0].send("x".repeat(500)); // about 1 KiB each as UTF-16
    sessions[1].send("y".repeat(500));
    assert.deepEqual(ended, []);
    sessions[1].send("z".repeat(500)); // past 3000 bytes: the older goes
    assert.deepEqual(ended, [`${sessions[0].id}:evicted`]);
    assert.ok(h.server.stats().sessions.replayBytes <= 3000);
  });
});

test("a detach handler that closes the session ends it: no resume", async () => {
  await withSessions({ detach: (session) => session.close() }, async (h) => {
    const a = await h.peer();
    const first = await a.hello();
    await a.drop();
    await waitFor(() => h.server.stats().sessions.sessions === 0, "the session to end");
    const b = await h.peer();
    const welcome = await b.hello({ token: first.token });
    assert.equal(welcome.resumed, false);
    assert.equal(welcome.reason, "expired");
  });
});

test("maxTopicsPerSession refuses a client's subscriptions past it", async () => {
  await withSessions({ maxTopicsPerSession: 2 }, async (h) => {
    const peer = await h.peer();
    await peer.hello({ topics: { a: { epoch: "x", offset: 0 }, b: { epoch: "x", offset: 0 } } });
    assert.equal((await peer.next("reset")).topic, "a");
    assert.equal((await peer.next("reset")).topic, "b");
    peer.send({ t: "sub", topic: "c" });
    assert.deepEqual(await peer.next("unsubscribed"), {
      t: "unsubscribed",
      topic: "c",
      reason: "denied",
    });
    peer.send({ t: "sub", topic: "a" }); // one it has: answered again
    assert.equal((await peer.next("subscribed")).topic, "a");
  });
});

test("bad arguments to send, publish and subscribe throw at the call", async () => {
  let session: Session | undefined;
  await withSessions({ open: (s) => void (session = s) }, async (h) => {
    const peer = await h.peer();
    await peer.hello();
    assert.throws(() => session!.send(42 as unknown as string), {
      name: "TypeError",
      message: "Cannot send: data must be a string or a Uint8Array, got number",
    });
    assert.throws(() => h.server.publish("t", {} as unknown as string), {
      name: "TypeError",
      message: "Cannot publish: data must be a string or a Uint8Array, got object",
    });
    assert.throws(() => h.server.publish(7 as unknown as string, "x"), {
      name: "TypeError",
      message: "Cannot publish: the topic must be a string, got number",
    });
    assert.throws(() => session!.subscribe(undefined as unknown as string), TypeError);
    session!.send("still fine");
    assert.deepEqual(await peer.next("msg"), { t: "msg", seq: 1, d: "still fine" });
  });
});

test("a token presented by another identity leaves the session where it was", async () => {
  let user = "ann";
  const evicted: string[] = [];
  await withSessions<{ user: string }>({
    upgrade: () => ({ data: { user } }),
    bind: (data) => data.user,
    maxDetachedSessions: 2,
    end: (session, why) => void evicted.push(`${session.data.user}:${why}`),
  }, async (h) => {
    const detach = async (name: string) => {
      user = name;
      const peer = await h.peer();
      const welcome = await peer.hello();
      const before = h.server.stats().sessions.detached;
      await peer.drop();
      await waitFor(() => h.server.stats().sessions.detached === before + 1, `${name} to detach`);
      return welcome.token;
    };
    const annToken = await detach("ann");
    await detach("carol");
    user = "bob";
    const thief = await h.peer();
    assert.equal((await thief.hello({ token: annToken })).reason, "not-yours");
    // ann is still the session detached longest: the next detach evicts her, not carol.
    user = "dave";
    const dave = await h.peer();
    await dave.hello();
    await dave.drop();
    await waitFor(() => evicted.length === 1, "an eviction");
    assert.deepEqual(evicted, ["ann:evicted"]);
  });
});
