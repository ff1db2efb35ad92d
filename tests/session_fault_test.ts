/**
 * Fault injection for the session layer (issue 15, "Proof"): a real session server
 * (`serveSessions`) and real session clients (`connectSession`) with the fault proxy of
 * tests/_fault_proxy.ts between them, cutting connections at chosen points (in the HTTP upgrade,
 * in the hello and the welcome, inside a frame, between a message and its ack, between a request
 * and its reply, during a replay) and at seeded random ones, and stalling them, within and
 * beyond the resume window; then a server restart with the in-memory store.
 *
 * Each test checks issue 15's invariants with tests/_session_harness.ts: what a client's send
 * resolved for was processed exactly once; nothing a client sent within the window is lost;
 * per topic, each client sees every message in order, exactly once, within the window; past
 * it, or past the caps, the client is told (a session or topic reset), never a silent gap or a
 * wrong replay.
 */
import process from "node:process";
import { test } from "node:test";
import assert from "node:assert/strict";
import { sleep, waitFor } from "./_harness.ts";
import { type SessionClientOptions, WebSocket } from "../mod.ts";
import type { FaultConnection } from "./_fault_proxy.ts";
import {
  afterFrame,
  caughtUp,
  checkCompleteStream,
  checkExactlyOnce,
  checkStream,
  insideFrame,
  type Rig,
  tap,
  type Tracked,
  withRig,
} from "./_session_harness.ts";

const T = { timeout: 20_000 };

/** Opens a client subscribed to `topics` and waits until each subscription has a position. */
async function opened(
  rig: Rig,
  name: string,
  topics: string[] = [],
  options: SessionClientOptions = {},
) {
  const tracked = rig.client(name, options);
  for (const topic of topics) tracked.client.subscribe(topic);
  await tracked.opened();
  await waitFor(
    () => topics.every((topic) => tracked.streams.has(topic)),
    `${name}'s subscriptions`,
  );
  return tracked;
}

/** Everything a client sent was acknowledged and processed once; it saw every session message
 * and every publication of `topics` once, in order; no error. */
async function checkAll(rig: Rig, tracked: Tracked, topics: string[], context = "") {
  await tracked.settled();
  for (const topic of topics) await caughtUp(rig, tracked, topic);
  const sent = rig.sent.get(tracked.client.sessionId!) ?? [];
  await waitFor(() => tracked.messages.length >= sent.length, `${tracked.name}'s messages`);
  checkExactlyOnce(rig, tracked, context);
  for (const topic of topics) checkCompleteStream(rig, tracked, topic, context);
  assert.deepEqual(tracked.messages, sent, `${tracked.name}'s session messages (${context})`);
  assert.deepEqual(tracked.errors, [], `${tracked.name}'s errors (${context})`);
}

/** The newest connection through the proxy: the one the (only) client uses now. */
function live(rig: Rig): FaultConnection {
  const connection = rig.proxy.connections.at(-1);
  assert.ok(connection?.isOpen, "a live connection");
  return connection;
}

test("no faults: messages, requests, session messages and a topic, each once", T, async () => {
  await withRig({}, async (rig) => {
    const a = rig.client("a");
    a.client.subscribe("news");
    await a.opened();
    await waitFor(() => a.streams.get("news") !== undefined, "a subscribed");
    a.send(5);
    a.request();
    rig.publish("news", 5);
    rig.sendTo(a.opens[0].session, 3);
    await a.settled();
    await caughtUp(rig, a, "news");
    await waitFor(() => a.messages.length === 3, "3 session messages");
    checkExactlyOnce(rig, a);
    checkCompleteStream(rig, a, "news");
    assert.deepEqual(a.messages, rig.sent.get(a.opens[0].session));
    assert.equal(a.reconnects.length, 0);
  });
});

test(
  "cuts in the upgrade, the hello and the welcome: the client retries, one session opens",
  T,
  async () => {
    await withRig({}, async (rig) => {
      // Rules go to the next connections in order; the earliest cut point wins, so connection 1
      // is cut in its request head, 2 in the 101, 3 inside the hello, 4 inside the welcome,
      // 5 right after the welcome (the client opens, then resumes on 6).
      rig.proxy.addRule({ direction: "up", afterBytes: 40 });
      rig.proxy.addRule({ direction: "down", afterBytes: 30 }, 2);
      rig.proxy.addRule(insideFrame("up", 0), 3);
      rig.proxy.addRule({ direction: "down", match: '"t":"welcome"', at: "end" }, 4);
      rig.proxy.addRule(afterFrame("down", (frame) => frame.t === "welcome"), 5);
      const a = rig.client("a");
      const open = await a.opened(2);
      const connections = [];
      for (let i = 0; i < 6; i++) connections.push(await rig.proxy.nextConnection());
      assert.deepEqual(
        connections.map((c) => c.cutReport?.direction),
        ["up", "down", "up", "down", "down", undefined],
      );
      assert.deepEqual(a.opens.map((o) => [o.session, o.resumed]), [
        [open.session, false],
        [open.session, true],
      ]);
      assert.equal(a.reconnects.length, 5);
      // The 4th hello made a session whose welcome was lost: it waits out its window, unused.
      const stats = rig.server.stats().sessions;
      assert.equal(stats.created, 2);
      assert.equal(stats.detached, 1);
      assert.equal(stats.resumed, 1);
      a.send(5);
      a.request();
      rig.sendTo(open.session, 3);
      await checkAll(rig, a, []);
    });
  },
);

test(
  "a resume cut in the upgrade, the hello and the welcome resumes on the next try",
  T,
  async () => {
    await withRig({}, async (rig) => {
      const a = await opened(rig, "a", ["news"]);
      const id = a.opens[0].session;
      a.send(3);
      rig.publish("news", 2);
      rig.sendTo(id, 2);
      await checkAll(rig, a, ["news"], "before the cut");
      rig.unreachableAfterDrop(a);
      rig.proxy.cutAll();
      await a.dropped();
      await waitFor(() => rig.detaches.length === 1, "the server to detach the session");
      rig.sendTo(id, 3);
      rig.publish("news", 3);
      a.send(2); // offline: queued
      rig.proxy.addRule({ direction: "up", afterBytes: 40 });
      rig.proxy.addRule({ direction: "down", afterBytes: 30 }, 2);
      rig.proxy.addRule(insideFrame("up", 0), 3);
      // The 4th resume is granted and its replay sent, but the welcome is cut: the 5th resumes
      // with the same token, gets its welcome and is cut before its replay; the 6th resumes.
      rig.proxy.addRule({ direction: "down", match: '"t":"welcome"', at: "end" }, 4);
      rig.proxy.addRule(afterFrame("down", (frame) => frame.t === "welcome"), 5);
      rig.reachable();
      await a.opened(3);
      assert.deepEqual(a.opens.map((o) => [o.session, o.resumed]), [
        [id, false],
        [id, true],
        [id, true],
      ]);
      assert.deepEqual(rig.opens.map((o) => o.resumed), [false, true, true, true]);
      const stats = rig.server.stats().sessions;
      assert.equal(stats.resumes, 3);
      assert.equal(stats.resumed, 3);
      assert.deepEqual(stats.refused, {});
      a.send(2);
      rig.publish("news", 2);
      await checkAll(rig, a, ["news"], "after the resume");
      assert.deepEqual(a.resets, []);
    });
  },
);

test(
  "the first reconnect, right after the welcome and before any message, resumes",
  T,
  async () => {
    await withRig({}, async (rig) => {
      rig.proxy.addRule(afterFrame("down", (frame) => frame.t === "welcome"));
      const a = rig.client("a");
      rig.unreachableAfterDrop(a);
      await a.dropped();
      assert.equal(a.opens.length, 1);
      assert.equal(a.opens[0].resumed, false);
      assert.deepEqual(a.messages, []);
      await waitFor(() => rig.detaches.length === 1, "the server to detach the session");
      const id = a.opens[0].session;
      rig.sendTo(id, 2); // while the client is away: kept for the resume
      rig.reachable();
      const open = await a.opened(2);
      assert.deepEqual(
        { resumed: open.resumed, session: open.session, lost: open.lost, resent: open.resent },
        { resumed: true, session: id, lost: 0, resent: 0 },
      );
      await checkAll(rig, a, [], "after the first resume");

      // A topic with a position but no message yet resumes from that position too.
      a.client.subscribe("news");
      await waitFor(() => a.streams.has("news"), "the subscription");
      assert.equal(a.client.positions.get("news")?.offset, 0);
      rig.unreachableAfterDrop(a);
      rig.proxy.cutAll();
      await a.dropped(2);
      await waitFor(() => rig.detaches.length === 2, "the server to detach the session");
      rig.publish("news", 3);
      rig.reachable();
      assert.equal((await a.opened(3)).resumed, true);
      await checkAll(rig, a, ["news"], "after the second resume");
      const topicEvents = (a.streams.get("news") ?? []).filter((e) => e.kind === "topic");
      assert.deepEqual(topicEvents.map((e) => e.kind === "topic" && e.recovered), [false, true]);
    });
  },
);

test(
  "cuts inside frames from the server (a message, a publication): replayed once",
  T,
  async () => {
    await withRig({}, async (rig) => {
      const a = await opened(rig, "a", ["news"]);
      const id = a.opens[0].session;
      // Inside the 4th session message: the client has 3.
      live(rig).addRule({
        direction: "down",
        match: '"t":"msg"',
        occurrence: 4,
        at: "end",
      });
      rig.sendTo(id, 10);
      assert.equal((await a.opened(2)).resumed, true);
      await checkAll(rig, a, ["news"], "after a cut inside a message");
      // At most 3 arrived (an RST may also discard what the client had not read yet): the
      // resume replayed the rest, from what the client had delivered.
      const delivered = a.drops[0].delivered;
      assert.ok(delivered <= 3, `${delivered} delivered`);
      assert.equal(rig.server.stats().sessions.replayedMessages, 10 - delivered);
      // Inside the 3rd publication.
      live(rig).addRule({
        direction: "down",
        match: '"t":"pub"',
        occurrence: 3,
        at: "end",
      });
      rig.publish("news", 10);
      assert.equal((await a.opened(3)).resumed, true);
      await checkAll(rig, a, ["news"], "after a cut inside a publication");
      const position = a.drops[1].positions.get("news")!.offset;
      assert.ok(position <= 2, `at ${position}`);
      assert.equal(rig.server.stats().sessions.replayedPublications, 10 - position);
    });
  },
);

test("a cut inside a client's frame: what the server did not get is re-sent, once", T, async () => {
  await withRig({}, async (rig) => {
    const a = await opened(rig, "a");
    // Ten messages in one turn; the 5th frame is cut halfway: the server has at most 4.
    live(rig).addRule(insideFrame("up", 4));
    a.send(10);
    const open = await a.opened(2);
    assert.equal(open.resumed, true);
    // The welcome acknowledged at most the 4 whole frames: the client re-sent the rest.
    assert.ok(open.resent >= 6, `${open.resent} re-sent`);
    await checkAll(rig, a, []);
    const request = a.request();
    live(rig).addRule(insideFrame("up", 0));
    await a.settled();
    assert.equal(rig.handled.get(request), 1);
    await checkAll(rig, a, []);
  });
});

test(
  "a cut between a message and its ack: the resume acknowledges it, not processed again",
  T,
  async () => {
    await withRig({}, async (rig) => {
      const a = await opened(rig, "a");
      live(rig).addRule({ direction: "down", match: '"t":"ack"' });
      const [payload] = a.send(1);
      assert.equal((await a.opened(2)).resumed, true);
      await a.settled();
      assert.equal(rig.processed.get(payload), 1);
      // The welcome's ack covered it: the client did not send it again.
      assert.equal(rig.server.stats().sessions.duplicates, 0);
      await checkAll(rig, a, []);
    });
  },
);

test(
  "a message re-sent while the server still processes it is not processed again",
  T,
  async () => {
    await withRig({}, async (rig) => {
      const a = await opened(rig, "a");
      rig.messageDelay = 150;
      const [payload] = a.send(1);
      await waitFor(() => rig.running.has(payload), "the handler to start");
      rig.proxy.cutAll();
      // The welcome's ack is 0 (still processing): the client sends seq 1 again; a duplicate.
      assert.equal((await a.opened(2)).resumed, true);
      await a.settled();
      assert.equal(rig.processed.get(payload), 1);
      assert.equal(rig.server.stats().sessions.duplicates, 1);
      await checkAll(rig, a, []);
    });
  },
);

test(
  "a cut between a request and its reply: the reply is replayed, the handler ran once",
  T,
  async () => {
    await withRig({}, async (rig) => {
      const a = await opened(rig, "a");
      live(rig).addRule({ direction: "down", match: '"t":"reply"' });
      const first = a.request();
      assert.equal((await a.opened(2)).resumed, true);
      await a.settled();
      assert.equal(a.requests.get(first)?.value, `re:${first}`);
      assert.equal(rig.handled.get(first), 1);
      // Cut while the handler runs: the request is sent again, recognised, and its reply comes
      // once the first run ends.
      rig.requestDelay = 150;
      const second = a.request();
      await waitFor(() => rig.running.has(second), "the request handler to start");
      rig.proxy.cutAll();
      assert.equal((await a.opened(3)).resumed, true);
      await a.settled();
      assert.equal(rig.handled.get(second), 1);
      assert.equal(rig.server.stats().sessions.duplicates, 1);
      await checkAll(rig, a, []);
    });
  },
);

test("cuts during a replay: each resume starts from what the last one delivered", T, async () => {
  await withRig({}, async (rig) => {
    const c1 = rig.proxy.nextConnection();
    const a = await opened(rig, "a", ["news"]);
    await c1;
    const id = a.opens[0].session;
    rig.publish("news", 3);
    rig.sendTo(id, 2);
    await checkAll(rig, a, ["news"], "before the cuts");
    // The server's figures at each drop of an open session.
    const at: Array<{ replayed: number; publications: number }> = [];
    a.client.on("reconnecting", () => {
      if (a.drops.length === at.length) return; // a failed attempt
      const stats = rig.server.stats().sessions;
      at.push({ replayed: stats.replayedMessages, publications: stats.replayedPublications });
    });
    rig.unreachableAfterDrop(a);
    rig.proxy.cutAll();
    await a.dropped();
    await waitFor(() => rig.detaches.length === 1, "the server to detach the session");
    rig.sendTo(id, 10);
    rig.publish("news", 20);
    a.send(3);
    // The replay (welcome, messages, subscribed, publications) is cut inside its 4th message,
    // then on the next resume inside its 5th publication (that rule is on both connections;
    // the first is cut before any publication).
    rig.proxy.addRule({ direction: "down", match: '"t":"msg"', occurrence: 4, at: "end" });
    rig.proxy.addRule({ direction: "down", match: '"t":"pub"', occurrence: 5, at: "end" }, 2);
    rig.reachable();
    const hellos = [];
    for (let i = 0; i < 3; i++) {
      const connection = await rig.proxy.nextConnection();
      hellos.push(tap(connection, "up"));
    }
    await a.opened(4);
    await checkAll(rig, a, ["news"], "after the cut replays");
    const drops = a.drops.map((d) => [d.delivered, d.positions.get("news")!.offset]);
    assert.equal(drops.length, 3);
    // At most what came before each cut point (an RST may discard bytes not yet read).
    assert.deepEqual(drops[0], [2, 3]);
    assert.ok(drops[1][0] <= 5 && drops[1][1] === 3, `${drops[1]}`);
    assert.ok(drops[2][0] === 12 && drops[2][1] <= 7, `${drops[2]}`);
    for (const [i, tapped] of hellos.entries()) {
      assert.equal(new TextDecoder().decode(tapped.bytes.subarray(0, 4)), "GET ");
      const hello = tapped.frames()[0];
      assert.equal(hello.t, "hello");
      // The hello asks for exactly what the client had delivered when it lost the connection.
      assert.equal(hello.ack, drops[i][0], `hello #${i + 2}'s ack`);
      assert.deepEqual(
        (hello.topics as Record<string, { offset: number }>).news.offset,
        drops[i][1],
        `hello #${i + 2}'s position`,
      );
    }
    // The last resume replayed only what the one before had not delivered.
    const stats = rig.server.stats().sessions;
    assert.equal(stats.replayedMessages - at[2].replayed, 0);
    assert.equal(stats.replayedPublications - at[2].publications, 23 - drops[2][1]);
    assert.deepEqual(a.opens.map((o) => o.resumed), [false, true, true, true]);
  });
});

test(
  "a stalled handshake: the client's welcomeTimeout drops it, the next attempt resumes",
  T,
  async () => {
    await withRig({}, async (rig) => {
      const a = await opened(rig, "a", ["news"], { welcomeTimeout: 300 });
      a.send(2);
      await a.settled();
      rig.proxy.stall("both"); // this connection and new ones
      rig.proxy.cutAll();
      rig.publish("news", 2);
      a.send(2);
      const timedOut = await a.dropped(2);
      assert.equal(timedOut.reason, "no welcome within 300 ms");
      rig.proxy.unstall();
      assert.equal((await a.opened(2)).resumed, true);
      await checkAll(rig, a, ["news"]);
    });
  },
);

// A network that held the hello for helloTimeout broke no rule: the server closes with 4008,
// which the client retries after (PROTOCOL.md).
test(
  "a hello stalled past the server's helloTimeout: the client comes back",
  T,
  async () => {
    await withRig({ helloTimeout: 200 }, async (rig) => {
      const first = rig.proxy.nextConnection();
      const a = await opened(rig, "a", [], { welcomeTimeout: 5000 });
      await first;
      a.send(1);
      await a.settled();
      rig.proxy.cutAll();
      // The next connection's upgrade passes; then its up direction stalls (the hello waits).
      const second = await rig.proxy.nextConnection();
      let stalled = false;
      second.addRule({
        direction: "up",
        when(seen) {
          if (!stalled && new TextDecoder().decode(seen).includes("\r\n\r\n")) {
            stalled = true;
            queueMicrotask(() => second.stall("up"));
          }
          return false;
        },
      });
      await waitFor(
        () => a.events.some((e) => e.type === "closed") || a.opens.length >= 2,
        "the client to close or resume",
      );
      // A network that held the hello is no protocol violation: the client must retry.
      assert.deepEqual(a.events.filter((e) => e.type === "closed"), []);
      second.unstall();
      assert.equal((await a.opened(2)).resumed, true);
    });
  },
);

test(
  "session messages past the replay caps: the resume reports them lost, fails the orphaned request",
  T,
  async () => {
    await withRig({ replay: { maxMessages: 5 } }, async (rig) => {
      const a = await opened(rig, "a");
      const id = a.opens[0].session;
      live(rig).addRule({ direction: "down", match: '"t":"reply"' });
      rig.unreachableAfterDrop(a);
      const request = a.request(); // processed; its reply (server seq 1) is cut
      await a.dropped();
      assert.equal(rig.handled.get(request), 1);
      rig.sendTo(id, 6); // seqs 2..7: the buffer keeps 3..7, the reply and m1 are dropped
      rig.reachable();
      const open = await a.opened(2);
      assert.deepEqual([open.resumed, open.lost], [true, 2]);
      await a.settled();
      const entry = a.requests.get(request)!;
      assert.equal(entry.state, "rejected");
      assert.equal((entry.error as { code: string }).code, "SESSION_ERR_LOST");
      assert.equal(rig.handled.get(request), 1);
      await waitFor(() => a.messages.length === 5, "the replayed messages");
      assert.deepEqual(a.messages, rig.sent.get(id)!.slice(1));
      assert.equal(rig.server.stats().sessions.lost, 2);
    });
  },
);

// Topic history's maxAge counts from each publication, the window from the detach: the
// default maxAge (twice the window) covers what a stalled connection held before its detach.
test(
  "within the window, publications held by a stall before the detach are replayed",
  T,
  async () => {
    await withRig({ resumeWindow: 400 }, async (rig) => {
      const a = await opened(rig, "a", ["news"]);
      rig.publish("news", 1);
      await caughtUp(rig, a, "news");
      const silent = live(rig);
      silent.stall("down");
      rig.publish("news", 3); // written to the connection, held by the stall
      await sleep(300);
      rig.unreachableAfterDrop(a);
      silent.cut(); // the server detaches now: the window runs until +400 ms
      await a.dropped();
      await sleep(150); // within the window; the 3 publications are 450 ms old
      rig.reachable();
      const open = await a.opened(2);
      assert.equal(open.resumed, true);
      await caughtUp(rig, a, "news");
      checkCompleteStream(rig, a, "news");
    });
  },
);

test(
  "a silent connection: the server's heartbeat detaches it, the client resumes in the window",
  T,
  async () => {
    await withRig({ heartbeat: { interval: 100, timeout: 100 } }, async (rig) => {
      const a = await opened(rig, "a", ["news"]);
      const id = a.opens[0].session;
      a.send(2);
      await a.settled();
      const silent = live(rig);
      silent.stall("both");
      rig.publish("news", 3);
      rig.sendTo(id, 3);
      a.send(3); // held by the stall, never delivered on this connection
      await waitFor(() => rig.detaches.length === 1, "the heartbeat to drop the connection", 3000);
      assert.equal(rig.detaches[0].code, 1006);
      // While detached: kept for the resume.
      rig.publish("news", 2);
      rig.sendTo(id, 2);
      // The link comes back: what it held reaches the client, then the server's close.
      silent.unstall();
      assert.equal((await a.opened(2)).resumed, true);
      await checkAll(rig, a, ["news"]);
    });
  },
);

test(
  "a silent connection the client notices first: it resumes, the server drops the old one (4001)",
  T,
  async () => {
    await withRig({ heartbeat: false }, async (rig) => {
      const heartbeat = { interval: 100, timeout: 100 };
      const a = await opened(rig, "a", ["news"], {
        webSocket: (url: string, protocols: string[]) =>
          new WebSocket(url, protocols, { heartbeat }),
      });
      const id = a.opens[0].session;
      const silent = live(rig);
      silent.stall("both");
      a.send(2);
      rig.sendTo(id, 2);
      rig.publish("news", 2);
      const drop = await a.dropped(1, 3000);
      assert.equal(drop.code, 1006);
      assert.equal((await a.opened(2)).resumed, true);
      // The server had not noticed (no heartbeat): the resume superseded the old connection,
      // unless the client's own drop reached the server first (an RST through the stall).
      assert.ok(rig.detaches.length <= 1);
      a.send(2);
      await checkAll(rig, a, ["news"]);
    });
  },
);

test(
  "stalled beyond the window: a session reset (expired), a topic reset past the caps",
  T,
  async () => {
    await withRig({
      resumeWindow: 300,
      heartbeat: { interval: 50, timeout: 50 },
      history: { maxMessages: 5, maxAge: 60_000 },
    }, async (rig) => {
      const a = await opened(rig, "a", ["news", "calm"]);
      const id = a.opens[0].session;
      rig.publish("news", 3);
      rig.publish("calm", 2);
      a.send(1);
      await checkAll(rig, a, ["news", "calm"], "before the stall");
      const silent = live(rig);
      // The client stays away until the window passed (the server's drop may reach it as an RST
      // through the stall, or as a FIN once the stall ends, depending on the runtime).
      rig.unreachableAfterDrop(a);
      silent.stall("both");
      const [held] = a.send(1); // held by the stall: the server never gets it
      await waitFor(() => rig.detaches.length === 1, "the heartbeat to drop the connection", 3000);
      rig.sendTo(id, 2); // waits in the session's replay buffer: lost with the session
      rig.publish("news", 17); // offsets 4..20; the history keeps 16..20
      await waitFor(() => rig.ends.length === 1, "the session to expire", 3000);
      assert.deepEqual(rig.ends[0], { id, why: "expired" });
      silent.unstall();
      await a.dropped();
      rig.reachable();
      const open = await a.opened(2);
      assert.equal(open.resumed, false);
      assert.equal(open.reason, "expired");
      assert.notEqual(open.session, id);
      await waitFor(() => a.resets.length === 2, "the resets");
      assert.deepEqual(a.resets[0], {
        scope: "session",
        reason: "expired",
        resent: 1,
        rejected: 0,
      });
      const news = rig.published.get("news")!.at(-1)!;
      assert.deepEqual(a.resets[1], {
        scope: "topic",
        topic: "news",
        reason: "trimmed",
        epoch: news.epoch,
        offset: 20,
      });
      // What the old session held for the client is gone; the client was told (the reset).
      assert.deepEqual(a.messages, []);
      rig.publish("news", 2);
      rig.publish("calm", 2);
      await a.settled();
      assert.equal(rig.processed.get(held), 1); // re-sent in the new session, processed once
      await caughtUp(rig, a, "news");
      await caughtUp(rig, a, "calm");
      checkExactlyOnce(rig, a);
      // "calm" published nothing while the client was away: the new session kept its place.
      checkCompleteStream(rig, a, "calm");
      const { resets, offset } = checkStream(rig, a, "news");
      assert.equal(resets.length, 1);
      assert.equal(offset, 22);
      assert.deepEqual(a.pubs("news").map((p) => p.offset), [1, 2, 3, 21, 22]);
    });
  },
);

test(
  "cut beyond the window after a lost ack: the message is processed twice, and reported",
  T,
  async () => {
    await withRig({ resumeWindow: 300 }, async (rig) => {
      const a = await opened(rig, "a");
      const id = a.opens[0].session;
      live(rig).addRule({ direction: "down", match: '"t":"ack"' });
      rig.unreachableAfterDrop(a);
      const [payload] = a.send(1);
      await a.dropped();
      assert.equal(rig.processed.get(payload), 1);
      await waitFor(() => rig.ends.length === 1, "the session to expire", 3000);
      assert.deepEqual(rig.ends[0], { id, why: "expired" });
      rig.reachable();
      const open = await a.opened(2);
      assert.deepEqual([open.resumed, open.reason, open.resent], [false, "expired", 1]);
      assert.deepEqual(a.resets, [{ scope: "session", reason: "expired", resent: 1, rejected: 0 }]);
      await a.settled();
      // The old session processed it, the new one again: the client said it may be (resent: 1).
      assert.equal(rig.processed.get(payload), 2);
      assert.equal(a.sends.get(payload)?.state, "resolved");
    });
  },
);

// What a restart with the in-memory store can duplicate or lose. Its sessions, replay buffers
// and topic history die with the process; the client's unacknowledged messages live in the
// client. So:
// - duplicated: every reliable message or request the client sent in the old session without
//   seeing its acknowledgement is re-sent, renumbered, in the new session. Those the old process
//   had processed (its ack cut or not yet written, or its handler still running when it died)
//   are processed again. The client cannot tell which: it reports how many were re-sent
//   (`open.resent`, `reset.resent`), an upper bound of the duplicates.
// - lost: session messages and replies the old process held for the client (a request the old
//   session acknowledged whose reply never came is rejected, SESSION_ERR_LOST, `reset.rejected`);
//   topic messages after the client's position in the old epoch, and those the new process
//   published before the client came back (the topic reset's offset says where it continues).
//   The session reset says the session's messages are gone, but not how many.
// - never lost: what the client had not seen acknowledged (re-sent), and what it queued offline.
test(
  "an abrupt restart: resume refused (restarted), topics reset (epoch), what was not acknowledged re-sent and reported",
  T,
  async () => {
    await withRig({}, async (rig) => {
      const a = await opened(rig, "a", ["news"]);
      const oldId = a.opens[0].session;
      rig.publish("news", 3);
      const acked = a.send(2);
      await checkAll(rig, a, ["news"], "before the restart");
      // The old server processes three messages and starts a request; their acknowledgement and
      // the reply never reach the client; then the process dies.
      live(rig).addRule({ direction: "down", match: '"t":"ack"' });
      rig.unreachableAfterDrop(a);
      rig.requestDelay = 100;
      const unacked = a.send(3);
      const request = a.request();
      await a.dropped();
      const before = new Map([...unacked, request].map((p) => [p, rig.count(p)]));
      rig.sendTo(oldId, 2); // held for the client by the old process: dies with it
      rig.publish("news", 2); // offsets 4 and 5 of the old epoch: die with it
      await rig.restart("abrupt", { hold: true });
      rig.requestDelay = 0;
      const [first] = rig.publish("news", 2); // the new server's, before the client is back
      const queued = a.send(1); // while away: sent once, in the new session
      rig.reachable();

      const open = await a.opened(2);
      assert.deepEqual(
        [open.resumed, open.reason, open.resent],
        [false, "restarted", 4],
      );
      assert.notEqual(open.session, oldId);
      await waitFor(() => a.resets.length === 2, "the resets");
      // The client reports what may have been processed twice: the 3 messages and the request
      // sent in the old session without an acknowledgement, re-sent in the new one.
      assert.deepEqual(a.resets[0], {
        scope: "session",
        reason: "restarted",
        resent: 4,
        rejected: 0,
      });
      assert.deepEqual(a.resets[1], {
        scope: "topic",
        topic: "news",
        reason: "epoch",
        epoch: first.epoch,
        offset: 2,
      });
      assert.deepEqual(rig.server.stats().sessions.refused, { restarted: 1 });
      await a.settled();
      for (const p of acked) {
        assert.equal(rig.processed.get(p), 1, `${p}: acknowledged, not re-sent`);
      }
      for (const p of queued) assert.equal(rig.processed.get(p), 1, `${p}: queued, sent once`);
      for (const [p, count] of before) {
        assert.equal(rig.count(p), count + 1, `${p}: re-sent to the new server`);
      }
      // The chosen cut lets the old server process all four: each was processed twice.
      assert.deepEqual([...before.values()], [1, 1, 1, 1]);
      assert.equal(a.requests.get(request)?.value, `re:${request}`);
      assert.equal(rig.handled.get(request), 2);
      for (const p of [...acked, ...unacked, ...queued]) {
        assert.equal(a.sends.get(p)?.state, "resolved");
      }
      // What the old session held for the client is gone, and reported by the session reset.
      assert.deepEqual(a.messages, []);
      rig.publish("news", 2);
      await caughtUp(rig, a, "news");
      const { resets } = checkStream(rig, a, "news");
      assert.equal(resets.length, 1);
      assert.deepEqual(
        a.pubs("news").map((p) => [p.epoch === first.epoch ? "new" : "old", p.offset]),
        [["old", 1], ["old", 2], ["old", 3], ["new", 3], ["new", 4]],
      );
      assert.deepEqual(a.errors, []);
    });
  },
);

test(
  "a graceful restart: bye, the client comes back in its range; refused (restarted); duplicates reported",
  T,
  async () => {
    await withRig({}, async (rig) => {
      const a = await opened(rig, "a", ["news"]);
      rig.publish("news", 2);
      a.send(2);
      await checkAll(rig, a, ["news"], "before the restart");
      const inflight = a.send(5); // some may be acknowledged before the shutdown, some not
      await rig.restart("graceful", { retry: [0, 20] });
      const open = await a.opened(2);
      assert.deepEqual([open.resumed, open.reason], [false, "restarted"]);
      // The bye's range replaced the backoff for the first attempt.
      assert.equal(a.reconnects[0].code, 1012);
      assert.ok(a.reconnects[0].delay <= 20, `${a.reconnects[0].delay} ms`);
      await a.settled();
      const twice = inflight.filter((p) => rig.processed.get(p) === 2);
      for (const p of inflight) assert.ok([1, 2].includes(rig.processed.get(p)!), p);
      // Every message processed twice is among those the client reported re-sent.
      assert.ok(
        twice.length <= open.resent,
        `${twice.length} processed twice, ${open.resent} re-sent`,
      );
      await waitFor(() => a.resets.some((r) => r.scope === "topic"), "the topic reset");
      assert.equal(a.resets.find((r) => r.scope === "topic")?.reason, "epoch");
      rig.publish("news", 2);
      await caughtUp(rig, a, "news");
      assert.equal(checkStream(rig, a, "news").resets.length, 1);
    });
  },
);

test(
  "seeded random cuts: traffic both ways, every invariant holds",
  { timeout: 40_000 },
  async () => {
    const seed = Number(process.env.SESSION_FAULT_SEED ?? Math.floor(Math.random() * 2 ** 31));
    const duration = Number(process.env.SESSION_FAULT_MS ?? 3000);
    const cuts: string[] = [];
    let rounds = 0;
    try {
      await withRig({}, async (rig) => {
        rig.proxy.addRule({ random: { seed, min: 0, max: 4000 } }, Infinity);
        const clients = [rig.client("a"), rig.client("b")];
        for (const c of clients) {
          c.client.subscribe("news");
          c.client.subscribe(`only-${c.name}`);
        }
        const seen = new Set<FaultConnection>();
        const end = Date.now() + duration;
        while (Date.now() < end) {
          rounds++;
          // Half the time the handlers are asynchronous: a cut then often comes while one runs,
          // and the client re-sends what the server is still processing.
          rig.messageDelay = rig.requestDelay = rounds % 100 < 50 ? 0 : 3;
          for (const c of clients) {
            c.send(2);
            if (rounds % 4 === 0) c.request();
            const id = c.client.sessionId;
            if (id !== undefined && rounds % 2 === 0) rig.sendTo(id, 1);
            if (c.streams.has(`only-${c.name}`)) rig.publish(`only-${c.name}`, 1);
          }
          if (clients.every((c) => c.streams.has("news"))) rig.publish("news", 1);
          for (const connection of rig.proxy.connections) seen.add(connection);
          await sleep(5);
        }
        rig.proxy.clearRules();
        for (const connection of seen) {
          if (connection.cutReport) cuts.push(connection.cutReport.description);
        }
        for (const c of clients) {
          await c.settled(15_000);
          for (const topic of ["news", `only-${c.name}`]) await caughtUp(rig, c, topic, 10_000);
          const sent = rig.sent.get(c.client.sessionId!) ?? [];
          await waitFor(() => c.messages.length >= sent.length, `${c.name}'s messages`, 10_000);
          checkExactlyOnce(rig, c);
          for (const topic of ["news", `only-${c.name}`]) checkCompleteStream(rig, c, topic);
          assert.deepEqual(c.messages, sent);
          assert.deepEqual(c.errors, []);
          // Within the window: one session, every reconnect a resume.
          assert.ok(c.opens.every((o) => o.resumed === (o !== c.opens[0])));
          assert.deepEqual(c.resets, []);
        }
        assert.ok(rig.proxy.totals.cut >= 5, `only ${rig.proxy.totals.cut} cuts`);
      });
    } catch (error) {
      const where = `seed ${seed} (SESSION_FAULT_SEED=${seed} to repeat the cut points), ` +
        `${rounds} rounds; cuts:\n  ${cuts.join("\n  ")}`;
      console.error(`random cuts failed: ${where}`);
      throw new Error(`${(error as Error).message}\n${where}`, { cause: error });
    }
  },
);
