/**
 * End to end: the session client (`connectSession`, sluice's own client underneath) against the
 * session server (`serveSessions`): acknowledged sends, requests and error replies, binary data,
 * volatile messages, session messages, topics the client or the server subscribes, refused
 * subscriptions, the server's retry hint, a close that ends the client, and requests whose
 * replies the replay caps dropped. Connections cut at chosen and random points are in
 * session_fault_test.ts.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  connectSession,
  serveSessions,
  type Session,
  type SessionClient,
  type SessionClientEventMap,
  SessionError,
  type SessionServeOptions,
  type SessionServer,
} from "../mod.ts";
import { startFaultProxy } from "./_fault_proxy.ts";
import { within } from "./_client.ts";
import { deferred, waitFor } from "./_harness.ts";

const SECRET = "a test secret of some length";
const FAST = { base: 10, cap: 50, minUptime: 0 };

type Events = { [K in keyof SessionClientEventMap]: SessionClientEventMap[K][] };

/** Records every event of a client. */
function record(client: SessionClient): Events {
  const events = {
    connecting: [],
    open: [],
    topic: [],
    reset: [],
    unsubscribed: [],
    reconnecting: [],
    closed: [],
    message: [],
    publication: [],
    error: [],
  } as Events;
  for (const type of Object.keys(events) as Array<keyof Events>) {
    client.on(type, (event) => void (events[type] as unknown[]).push(event));
  }
  return events;
}

async function withSessions<T = undefined>(
  options: Omit<SessionServeOptions<T>, "secret" | "port">,
  body: (server: SessionServer<T>) => Promise<void>,
): Promise<void> {
  const server = serveSessions<T>(
    { port: 0, hostname: "127.0.0.1", secret: SECRET, ...options } as SessionServeOptions<T>,
  );
  try {
    await body(server);
  } finally {
    await server.shutdown({ timeout: 1000 });
  }
}

/** A client that closes itself after the test, and its events. */
async function client(
  url: string,
  body: (client: SessionClient, events: Events) => Promise<void>,
): Promise<void> {
  const session = connectSession(url, { backoff: FAST });
  const events = record(session);
  try {
    await body(session, events);
  } finally {
    session.close();
    await within(
      new Promise<void>((resolve) => {
        if (events.closed.length > 0) resolve();
        else session.on("closed", () => resolve());
      }),
      "the client to close",
    );
  }
}

const url = (server: { port: number }) => `ws://127.0.0.1:${server.port}/`;

test("send resolves once processed; requests get replies and error replies; binary both ways", async () => {
  const got: Array<string | Uint8Array> = [];
  await withSessions({
    message: (_s, data) => void got.push(data),
    request(_s, data) {
      if (data === "fail") throw new Error("nope");
      return data instanceof Uint8Array ? data.toReversed() : `re: ${data}`;
    },
  }, async (server) => {
    await client(url(server), async (c, events) => {
      await c.send("one");
      assert.deepEqual(got, ["one"]);
      await c.send(Uint8Array.of(1, 2, 3));
      assert.deepEqual(got[1], Uint8Array.of(1, 2, 3));
      assert.equal(await c.request("ping"), "re: ping");
      assert.deepEqual(await c.request(Uint8Array.of(1, 2)), Uint8Array.of(2, 1));
      const error = await c.request("fail").catch((e) => e);
      assert.ok(error instanceof SessionError);
      assert.equal(error.code, "SESSION_ERR_REPLY");
      assert.equal(error.message, "nope");
      await c.send("volatile", { volatile: true });
      await waitFor(() => got.length === 3, "the volatile message");
      assert.equal(got[2], "volatile");
      assert.equal(events.open.length, 1);
      assert.equal(events.open[0].resumed, false);
      assert.equal(c.sessionId, events.open[0].session);
    });
  });
});

test("session messages and topics, subscribed by the client or by the server", async () => {
  let session: Session | undefined;
  await withSessions({
    open: (s) => void (session = s),
    subscribe: (_s, topic) => topic !== "secret",
  }, async (server) => {
    await client(url(server), async (c, events) => {
      c.subscribe("news");
      c.subscribe("secret");
      await waitFor(() => events.topic.length === 1 && events.unsubscribed.length === 1, "answers");
      assert.deepEqual(events.unsubscribed, [{ topic: "secret", reason: "denied" }]);
      assert.deepEqual([...c.positions.keys()], ["news"]);
      server.publish("news", "n1");
      server.publish("news", "n2");
      session!.subscribe("alerts");
      server.publish("alerts", "a1");
      session!.send("direct");
      await waitFor(() => events.publication.length === 3 && events.message.length === 1, "all");
      assert.deepEqual(events.publication.map((p) => `${p.topic}:${p.data}:${p.offset}`), [
        "news:n1:1",
        "news:n2:2",
        "alerts:a1:1",
      ]);
      assert.deepEqual(events.message, [{ data: "direct" }]);
      session!.unsubscribe("alerts");
      await waitFor(() => events.unsubscribed.length === 2, "the server's unsubscribe");
      assert.deepEqual(events.unsubscribed[1], { topic: "alerts", reason: "server" });
      assert.deepEqual([...c.positions.keys()], ["news"]);
    });
  });
});

test("a shutdown's retry range sets the client's next delay; a new server refuses the resume", async () => {
  const first = serveSessions({ port: 0, hostname: "127.0.0.1", secret: SECRET });
  const port = first.port;
  first.publish("t", "before");
  await client(url(first), async (c, events) => {
    c.subscribe("t");
    await waitFor(() => events.topic.length === 1, "the subscription");
    await first.shutdown({ retry: [300, 400] });
    await waitFor(() => events.reconnecting.length === 1, "the reconnect");
    const [{ delay, code }] = events.reconnecting;
    assert.equal(code, 1012);
    assert.ok(delay >= 300 && delay <= 400, `delay ${delay}`);
    const second = serveSessions({ port, hostname: "127.0.0.1", secret: SECRET });
    try {
      await waitFor(() => events.open.length === 2, "the second welcome", 5000);
      assert.equal(events.open[1].resumed, false);
      assert.equal(events.open[1].reason, "restarted");
      await waitFor(() => events.reset.length === 2, "the resets");
      assert.deepEqual(events.reset.map((r) => `${r.scope}:${r.reason}`).sort(), [
        "session:restarted",
        "topic:epoch",
      ]);
    } finally {
      await second.shutdown({ timeout: 1000 });
    }
  });
});

test("a close code in 4400-4499 ends the client: no reconnect", async () => {
  await withSessions({ open: (s) => s.close(4403, "go away") }, async (server) => {
    const c = connectSession(url(server), { backoff: FAST });
    const events = record(c);
    const pending = c.send("x").catch((e) => e);
    await waitFor(() => events.closed.length === 1, "the close");
    assert.deepEqual(events.closed, [{ code: 4403, reason: "go away" }]);
    assert.equal(events.reconnecting.length, 0);
    assert.equal(c.state, "closed");
    assert.equal((await pending).code, "SESSION_ERR_CLOSED");
  });
});

test("a request whose reply the replay caps dropped fails with SESSION_ERR_LOST on resume", async () => {
  let session: Session | undefined;
  const replied = deferred();
  await withSessions({
    open: (s) => void (session = s),
    replay: { maxMessages: 1 },
    request: () => {
      queueMicrotask(replied.resolve);
      return "the reply";
    },
  }, async (server) => {
    const proxy = await startFaultProxy({ target: { host: "127.0.0.1", port: server.port } });
    try {
      await client(url(proxy), async (c, events) => {
        await waitFor(() => events.open.length === 1, "the welcome");
        const connection = proxy.connections[0];
        connection.stall("down"); // the reply never reaches the client
        const reply = c.request("q");
        await replied.promise;
        session!.send("m2"); // pushes the reply out of a one-message replay buffer
        session!.send("m3");
        connection.cut();
        const error = await within(reply.catch((e) => e), "the request to fail");
        assert.ok(error instanceof SessionError);
        assert.equal(error.code, "SESSION_ERR_LOST");
        assert.equal(events.open[1].resumed, true);
        assert.equal(events.open[1].lost, 2);
        await waitFor(() => events.message.length === 1, "the last message");
        assert.deepEqual(events.message, [{ data: "m3" }]);
      });
    } finally {
      await proxy.close();
    }
  });
});

test("connectSession passes connect's options to every connection (headers here)", async () => {
  const seen: string[] = [];
  await withSessions<{ user: string }>({
    upgrade(request) {
      const user = request.headers.get("authorization");
      if (user === null) return new Response("who?", { status: 401 });
      seen.push(user);
      return { data: { user } };
    },
    request: (session) => session.data.user,
  }, async (server) => {
    const c = connectSession(url(server), {
      backoff: FAST,
      connect: { headers: { Authorization: "Bearer ann" } },
    });
    try {
      assert.equal(await c.request("who am I?"), "Bearer ann");
      assert.deepEqual(seen, ["Bearer ann"]);
    } finally {
      c.close();
    }
  });
});
