/**
 * End to end: topics over real sockets. Who gets a publish and what `publish` returns,
 * `ws.publish` and `includeSelf`, subscription bookkeeping, connections that close, the
 * caller's bytes, 1,000 subscribers, backpressure policies for a subscriber that stops
 * reading, and permessage-deflate (one compressed frame shared in shared mode, per-connection
 * compression in dedicated mode and with the web engine).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import process from "node:process";
import {
  assertSameBytes,
  clientInflate,
  ClientStream,
  random,
  repetitive,
} from "../lib/protocol/extensions/_deflate_test_util.ts";
import type { PerMessageDeflateOptions, ServeOptions, Server, ServerWebSocket } from "../mod.ts";
import { type Frame, Op, parseClose, type RawClient, text } from "./_client.ts";
import { deferred, type Harness, Queue, withServer } from "./_harness.ts";

/** RSV1 as `Frame.rsv` shows it (the three RSV bits, RSV1 the highest). */
const RSV1 = 4;
const OFFER = "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits";
const encoder = new TextEncoder();
/** Long tests: Bun's default per-test timeout is 5 s. */
const LONG = { timeout: 120_000 };

interface Data {
  name: string;
  topics: string[];
}

/** The server side of a test: each connection by its name, and the close handler's calls. */
class World {
  readonly sockets = new Map<string, ServerWebSocket<Data>>();
  readonly closes = new Queue<{ name: string; code: number }>();
  readonly drains = new Queue<string>();
  #fences = 0;

  /** Serve options that name each connection and subscribe it from its request's query. */
  options(extra: Partial<ServeOptions<Data>> = {}): ServeOptions<Data> {
    return {
      upgrade(request) {
        const params = request.searchParams;
        const topics = params.get("topics");
        return {
          data: {
            name: params.get("name") ?? "",
            topics: topics === null || topics === "" ? [] : topics.split(","),
          },
        };
      },
      open: (ws) => {
        this.sockets.set(ws.data.name, ws);
        for (const topic of ws.data.topics) ws.subscribe(topic);
      },
      close: (ws, code) => {
        this.closes.push({ name: ws.data.name, code });
      },
      drain: (ws) => {
        this.drains.push(ws.data.name);
      },
      ...extra,
    };
  }

  /** The server side of the connection called `name`. */
  ws(name: string): ServerWebSocket<Data> {
    const ws = this.sockets.get(name);
    assert.ok(ws !== undefined, `no connection called ${name}`);
    return ws;
  }

  /**
   * Asserts that `client` got nothing since its last read: the server sends it a fresh text
   * message directly, and that must be the next frame (frames of one connection keep their
   * order, so anything published to it before would come first).
   */
  async assertNothing(name: string, client: RawClient, label: string): Promise<void> {
    const fence = `fence ${++this.#fences}`;
    this.ws(name).send(fence);
    const frame = await client.nextFrame();
    const got = frame.opcode === Op.Text ? text(frame.payload) : `opcode ${frame.opcode}`;
    assert.equal(got, fence, `${label}: ${name} got something before the fence`);
  }
}

/** Opens a connection called `name`, subscribed to `topics` by its open handler. */
async function join(
  harness: Harness<Data>,
  name: string,
  topics: string[] = [],
  extra?: string[],
): Promise<RawClient> {
  const path = `/?name=${encodeURIComponent(name)}&topics=${encodeURIComponent(topics.join(","))}`;
  const { client } = await harness.open({ path, extra });
  return client;
}

/** The next frame, which must be a whole, uncompressed data frame. */
async function nextData(client: RawClient, label: string): Promise<Frame> {
  const frame = await client.nextFrame(10_000);
  if (frame.opcode === Op.Close) {
    const { code, reason } = parseClose(frame);
    assert.fail(`${label}: expected a data frame, got Close ${code} ${JSON.stringify(reason)}`);
  }
  assert.equal(frame.fin, true, `${label}: fin`);
  return frame;
}

async function expectText(client: RawClient, expected: string, label: string): Promise<void> {
  const frame = await nextData(client, label);
  assert.equal(frame.opcode, Op.Text, `${label}: opcode`);
  assert.equal(frame.rsv, 0, `${label}: rsv`);
  assert.equal(text(frame.payload), expected, label);
}

async function expectBinary(client: RawClient, expected: Uint8Array, label: string) {
  const frame = await nextData(client, label);
  assert.equal(frame.opcode, Op.Binary, `${label}: opcode`);
  assert.equal(frame.rsv, 0, `${label}: rsv`);
  assertSameBytes(frame.payload, expected, label);
}

// Who gets what

test("topics: publish reaches exactly the subscribers, as text or binary, and returns the count", async () => {
  const world = new World();
  await withServer(world.options(), async (harness) => {
    const news = [
      await join(harness, "n1", ["news"]),
      await join(harness, "n2", ["news", "sport"]),
      await join(harness, "n3", ["news"]),
    ];
    const sport = await join(harness, "s1", ["sport"]);
    const nobody = await join(harness, "x");
    const { server } = harness;
    assert.equal(server.subscriberCount("news"), 3);
    assert.equal(server.subscriberCount("sport"), 2);

    assert.equal(server.publish("news", "hello, news"), 3);
    const bytes = Uint8Array.of(0, 1, 2, 0xfe, 0xff);
    assert.equal(server.publish("news", bytes), 3);
    assert.equal(server.publish("news", bytes.buffer), 3, "an ArrayBuffer");
    const wide = new Uint16Array([0x0102, 0x0304]);
    assert.equal(server.publish("news", new DataView(wide.buffer, 1, 2)), 3, "a DataView");
    const text = "x".repeat(70_000) + "é€😀"; // a 64-bit length, multi-byte UTF-8
    assert.equal(server.publish("news", text), 3);
    for (const [i, client] of news.entries()) {
      const label = `n${i + 1}`;
      await expectText(client, "hello, news", label);
      await expectBinary(client, bytes, label);
      await expectBinary(client, bytes, `${label}, ArrayBuffer`);
      await expectBinary(client, new Uint8Array(wide.buffer, 1, 2), `${label}, DataView`);
      await expectText(client, text, `${label}, long text`);
    }
    assert.equal(server.publish("sport", "goal"), 2);
    await expectText(news[1], "goal", "n2");
    await expectText(sport, "goal", "s1");
    for (const name of ["n1", "n3"]) {
      await world.assertNothing(name, news[Number(name[1]) - 1], name);
    }
    await world.assertNothing("x", nobody, "not subscribed");
  });
});

test("topics: publishing to a topic with no subscribers returns 0", async () => {
  const world = new World();
  await withServer(world.options(), async (harness) => {
    const client = await join(harness, "a", ["news"]);
    assert.equal(harness.server.publish("weather", "sunny"), 0);
    assert.equal(world.ws("a").publish("weather", "sunny"), 0);
    // Only the sender is subscribed: nobody else to reach.
    assert.equal(world.ws("a").publish("news", "me"), 0);
    assert.equal(harness.server.subscriberCount("weather"), 0);
    await world.assertNothing("a", client, "a");
  });
});

test("topics: ws.publish skips the sender; includeSelf includes it", async () => {
  const world = new World();
  await withServer(world.options(), async (harness) => {
    const a = await join(harness, "a", ["room"]);
    const b = await join(harness, "b", ["room"]);
    const c = await join(harness, "c", ["room"]);
    const outsider = await join(harness, "d");
    const wsA = world.ws("a");
    assert.equal(wsA.publish("room", "from a"), 2);
    await expectText(b, "from a", "b");
    await expectText(c, "from a", "c");
    await world.assertNothing("a", a, "the sender");
    assert.equal(wsA.publish("room", "from a, to all", { includeSelf: true }), 3);
    for (const [client, name] of [[a, "a"], [b, "b"], [c, "c"]] as const) {
      await expectText(client, "from a, to all", name);
    }
    assert.equal(wsA.publish("room", Uint8Array.of(7), { includeSelf: false }), 2);
    await expectBinary(b, Uint8Array.of(7), "b");
    await expectBinary(c, Uint8Array.of(7), "c");
    await world.assertNothing("a", a, "the sender, includeSelf: false");
    // A sender that is not subscribed reaches every subscriber, and gets nothing itself.
    assert.equal(world.ws("d").publish("room", "from d"), 3);
    assert.equal(world.ws("d").publish("room", "from d again", { includeSelf: true }), 3);
    for (const [client, name] of [[a, "a"], [b, "b"], [c, "c"]] as const) {
      await expectText(client, "from d", name);
      await expectText(client, "from d again", name);
    }
    await world.assertNothing("d", outsider, "the unsubscribed sender");
  });
});

test("topics: subscribe, unsubscribe, isSubscribed, topics and subscriberCount agree", async () => {
  const world = new World();
  await withServer(world.options(), async (harness) => {
    const { server } = harness;
    const a = await join(harness, "a");
    const b = await join(harness, "b", ["chat"]);
    const ws = world.ws("a");
    assert.deepEqual(ws.topics, []);
    assert.equal(ws.isSubscribed("chat"), false);
    ws.subscribe("chat");
    ws.subscribe("chat"); // twice is once
    ws.subscribe("news");
    ws.subscribe("");
    assert.equal(server.subscriberCount("chat"), 2);
    assert.equal(server.subscriberCount("news"), 1);
    assert.equal(server.subscriberCount(""), 1);
    assert.deepEqual([...ws.topics].sort(), ["", "chat", "news"]);
    assert.equal(ws.isSubscribed("chat"), true);
    assert.equal(ws.isSubscribed("Chat"), false);
    // topics is a copy.
    const copy = ws.topics;
    copy.length = 0;
    assert.equal(ws.topics.length, 3);

    assert.equal(server.publish("chat", "one"), 2, "subscribed twice, counted once");
    await expectText(a, "one", "a");
    await world.assertNothing("a", a, "a, delivered once");
    await expectText(b, "one", "b");

    ws.unsubscribe("chat");
    ws.unsubscribe("chat"); // nothing happens
    ws.unsubscribe("never subscribed");
    assert.equal(ws.isSubscribed("chat"), false);
    assert.deepEqual([...ws.topics].sort(), ["", "news"]);
    assert.equal(server.subscriberCount("chat"), 1);
    assert.equal(server.publish("chat", "two"), 1);
    await expectText(b, "two", "b");
    await world.assertNothing("a", a, "unsubscribed");
    assert.equal(server.publish("news", "three"), 1);
    await expectText(a, "three", "a, still in news");

    ws.unsubscribe("news");
    ws.unsubscribe("");
    assert.deepEqual(ws.topics, []);
    assert.equal(server.subscriberCount("news"), 0);
    assert.equal(server.publish("news", "four"), 0);
    // Subscribing again after leaving works.
    ws.subscribe("chat");
    assert.equal(server.publish("chat", "five"), 2);
    await expectText(a, "five", "a, back in chat");
    await expectText(b, "five", "b");
  });
});

test("topics: one topic, then a second, then one again: the bookkeeping agrees at each step", async () => {
  const world = new World();
  await withServer(world.options(), async (harness) => {
    const { server } = harness;
    const a = await join(harness, "a");
    const ws = world.ws("a");
    ws.subscribe(""); // the empty name is a topic like any other
    ws.subscribe("");
    ws.unsubscribe("news"); // not subscribed: nothing happens
    assert.deepEqual(ws.topics, [""]);
    assert.equal(ws.isSubscribed(""), true);
    assert.equal(ws.isSubscribed("news"), false);
    assert.equal(server.subscriberCount(""), 1);
    ws.subscribe("news");
    assert.deepEqual(ws.topics, ["", "news"], "in the order subscribed");
    ws.unsubscribe("");
    assert.deepEqual(ws.topics, ["news"]);
    assert.equal(ws.isSubscribed(""), false);
    assert.equal(server.subscriberCount(""), 0);
    assert.equal(server.publish("news", "one"), 1);
    await expectText(a, "one", "a, in news");
    ws.unsubscribe("news");
    assert.deepEqual(ws.topics, []);
    assert.equal(server.subscriberCount("news"), 0);
    ws.subscribe("chat");
    assert.deepEqual(ws.topics, ["chat"]);
    assert.equal(server.publish("chat", "two"), 1);
    await expectText(a, "two", "a, in chat");
    // Dropping the connection leaves the one topic.
    a.destroy();
    assert.equal((await world.closes.next("the close handler")).name, "a");
    assert.equal(server.subscriberCount("chat"), 0);
    assert.equal(server.publish("chat", "three"), 0);
  });
});

test("topics: a topic that is not a string is a TypeError", async () => {
  const world = new World();
  await withServer(world.options(), async (harness) => {
    await join(harness, "a", ["t"]);
    const ws = world.ws("a");
    const bad = [1, undefined, null, Symbol("s"), { toString: () => "t" }] as unknown[];
    for (const topic of bad) {
      const type = typeof topic;
      const label = `topic ${String(topic)}`;
      for (
        const [what, call] of [
          ["subscribe", () => ws.subscribe(topic as string)],
          ["unsubscribe", () => ws.unsubscribe(topic as string)],
          ["publish", () => ws.publish(topic as string, "x")],
          ["publish", () => harness.server.publish(topic as string, "x")],
        ] as const
      ) {
        assert.throws(call, {
          name: "TypeError",
          message: `Cannot ${what}: the topic must be a string, got ${type}`,
        }, `${what}, ${label}`);
      }
    }
    assert.deepEqual(ws.topics, ["t"], "nothing was subscribed by the failed calls");
    assert.equal(harness.server.subscriberCount("t"), 1);
  });
});

test("topics: publishing data that is not a string or bytes is a TypeError, with or without subscribers", async () => {
  const world = new World();
  await withServer(world.options(), async (harness) => {
    await join(harness, "a", ["t"]);
    const ws = world.ws("a");
    const expected = {
      name: "TypeError",
      message: "Cannot publish: expected a string, Uint8Array, ArrayBuffer or ArrayBufferView",
    };
    for (const topic of ["t", "nobody"]) {
      for (const data of [42, { a: 1 }, null]) {
        assert.throws(
          () => ws.publish(topic, data as unknown as string),
          expected,
          `ws.publish to ${topic} of ${JSON.stringify(data)}`,
        );
        assert.throws(
          () => harness.server.publish(topic, data as unknown as string),
          expected,
          `server.publish to ${topic} of ${JSON.stringify(data)}`,
        );
      }
    }
  });
});

// Connections that close

for (const how of ["a closing handshake", "a dropped TCP connection"]) {
  test(`topics: a connection closed by ${how} leaves all its topics`, async () => {
    const world = new World();
    const inHandler = deferred<{ count: number; subscribed: boolean; topics: string[] }>();
    let server: Server<Data> | undefined;
    await withServer(
      world.options({
        close(ws, code) {
          if (ws.data.name === "leaver") {
            // Subscribing once closed does nothing, even from the close handler.
            ws.subscribe("late");
            inHandler.resolve({
              count: server!.subscriberCount("a"),
              subscribed: ws.isSubscribed("a"),
              topics: ws.topics,
            });
          }
          world.closes.push({ name: ws.data.name, code });
        },
      }),
      async (harness) => {
        server = harness.server;
        const leaver = await join(harness, "leaver", ["a", "b", "c"]);
        const stayer = await join(harness, "stayer", ["a", "b"]);
        const { server: s } = harness;
        assert.deepEqual([s.subscriberCount("a"), s.subscriberCount("b")], [2, 2]);
        assert.equal(s.subscriberCount("c"), 1);
        assert.equal(s.publish("a", "before"), 2);
        await expectText(leaver, "before", "leaver");
        await expectText(stayer, "before", "stayer");
        const ws = world.ws("leaver");

        if (how === "a closing handshake") {
          await leaver.sendClose(1000, "bye");
          // The server echoes the code (RFC 6455 §5.5.1).
          assert.equal(parseClose(await leaver.nextFrame()).code, 1000);
        } else {
          leaver.destroy();
        }
        const closed = await world.closes.next("the close handler");
        assert.deepEqual(closed, {
          name: "leaver",
          code: how === "a closing handshake" ? 1000 : 1006,
        });
        assert.deepEqual(await inHandler.promise, { count: 1, subscribed: false, topics: [] });

        assert.deepEqual(
          ["a", "b", "c", "late"].map((t) => s.subscriberCount(t)),
          [1, 1, 0, 0],
        );
        assert.deepEqual(ws.topics, []);
        assert.equal(ws.isSubscribed("a"), false);
        assert.equal(s.publish("a", "after"), 1);
        assert.equal(s.publish("c", "after"), 0);
        await expectText(stayer, "after", "stayer");
        // Subscribing after the close does nothing.
        ws.subscribe("a");
        ws.subscribe("new");
        assert.equal(ws.isSubscribed("a"), false);
        assert.deepEqual(ws.topics, []);
        assert.equal(s.subscriberCount("a"), 1);
        assert.equal(s.subscriberCount("new"), 0);
        assert.equal(s.publish("new", "x"), 0);
      },
    );
  });
}

test("topics: a closing connection is skipped by publish, and nothing follows its Close", async () => {
  const world = new World();
  await withServer(world.options(), async (harness) => {
    const closing = await join(harness, "closing", ["t"]);
    const open = await join(harness, "open", ["t"]);
    world.ws("closing").close(1000, "done");
    assert.equal(harness.server.publish("t", "after close"), 1);
    await expectText(open, "after close", "open");
    const frame = await closing.nextFrame();
    assert.deepEqual(parseClose(frame), { code: 1000, reason: "done" });
    await closing.sendClose(1000);
    await closing.waitClosed();
    assert.equal((await world.closes.next("the close handler")).name, "closing");
    assert.equal(harness.server.subscriberCount("t"), 1);
  });
});

test("topics: during and after shutdown, publish reaches nobody and every topic is empty", async () => {
  const world = new World();
  await withServer(world.options(), async (harness) => {
    const clients = [await join(harness, "a", ["t", "u"]), await join(harness, "b", ["t"])];
    const { server } = harness;
    const done = server.shutdown({ timeout: 5000 });
    // Every connection is closing now: publish skips them.
    assert.equal(server.publish("t", "during shutdown"), 0);
    for (const client of clients) {
      const frame = await client.nextFrame();
      assert.equal(parseClose(frame).code, 1001, "the Close comes first, nothing before it");
      await client.sendClose(1001);
      await client.waitClosed();
    }
    await done;
    assert.deepEqual([server.subscriberCount("t"), server.subscriberCount("u")], [0, 0]);
    assert.equal(server.publish("t", "after shutdown"), 0);
  });
});

// The caller's bytes

test("topics: publish copies the caller's bytes: changing them at once changes nothing sent", async () => {
  const world = new World();
  await withServer(world.options(), async (harness) => {
    const a = await join(harness, "a", ["t"]);
    const b = await join(harness, "b", ["t"]);
    for (const size of [10, 1000, 20_000, 200_000]) {
      const bytes = random(size, size);
      const original = bytes.slice();
      assert.equal(harness.server.publish("t", bytes), 2);
      bytes.fill(0xaa);
      const buffer = random(size, size + 1);
      const originalBuffer = buffer.slice();
      assert.equal(world.ws("a").publish("t", buffer.buffer as ArrayBuffer), 1);
      buffer.fill(0xbb);
      await expectBinary(a, original, `a, ${size} bytes`);
      await expectBinary(b, original, `b, ${size} bytes`);
      await expectBinary(b, originalBuffer, `b, ${size} bytes from ws.publish`);
    }
  });
});

// Many subscribers

test(
  "topics: 1,000 subscribers get 20 publishes in order; after 300 leave and 300 close, exactly 400 get the next",
  LONG,
  async () => {
    const world = new World();
    const COUNT = 1000;
    await withServer(world.options({ idleTimeout: 0, heartbeat: false }), async (harness) => {
      const clients: RawClient[] = [];
      for (let start = 0; start < COUNT; start += 50) {
        const batch = [];
        for (let i = start; i < Math.min(start + 50, COUNT); i++) {
          batch.push(join(harness, `c${i}`, ["crowd"]));
        }
        clients.push(...await Promise.all(batch));
      }
      const { server } = harness;
      assert.equal(server.subscriberCount("crowd"), COUNT);

      // Ten in one tick (corked together), then ten in ten ticks (each frame alone).
      const counts: number[] = [];
      for (let seq = 0; seq < 10; seq++) counts.push(server.publish("crowd", `message ${seq}`));
      for (let seq = 10; seq < 20; seq++) {
        await new Promise((resolve) => setTimeout(resolve, 0));
        counts.push(server.publish("crowd", `message ${seq}`));
      }
      assert.deepEqual(counts, Array(20).fill(COUNT));
      await Promise.all(clients.map(async (client, i) => {
        for (let seq = 0; seq < 20; seq++) await expectText(client, `message ${seq}`, `c${i}`);
      }));

      // 0–299 unsubscribe, 300–599 close (half with a handshake, half dropped), 600–999 stay.
      for (let i = 0; i < 300; i++) world.ws(`c${i}`).unsubscribe("crowd");
      for (let i = 300; i < 600; i++) {
        if (i % 2 === 0) await clients[i].sendClose(1000);
        else clients[i].destroy();
      }
      const closed = new Set<string>();
      while (closed.size < 300) closed.add((await world.closes.next("300 close handlers")).name);
      assert.equal(server.subscriberCount("crowd"), 400);
      assert.equal(server.publish("crowd", "the last"), 400);
      await Promise.all(
        clients.slice(600).map((client, i) => expectText(client, "the last", `c${600 + i}`)),
      );
      await Promise.all(
        clients.slice(0, 300).map((client, i) =>
          world.assertNothing(`c${i}`, client, "unsubscribed")
        ),
      );
    });
  },
);

// Backpressure

const SIZE = 64 * 1024;

/** A 64 KiB message whose first 4 bytes carry its sequence number. */
function numbered(seq: number): Uint8Array {
  const data = new Uint8Array(SIZE);
  new DataView(data.buffer).setUint32(0, seq);
  return data;
}

function seqOf(frame: Frame): number {
  assert.equal(frame.opcode, Op.Binary);
  assert.equal(frame.payload.length, SIZE);
  return new DataView(frame.payload.buffer, frame.payload.byteOffset).getUint32(0);
}

/**
 * Publishes numbered messages to "feed" (two readers and one subscriber that stopped reading)
 * one at a time, each read by both readers before the next, until one publish misses a
 * subscriber, then `after` more. Returns what each publish returned.
 */
async function floodFeed(
  harness: Harness<Data>,
  readers: RawClient[],
  after: number,
): Promise<number[]> {
  const counts: number[] = [];
  let missed = -1;
  for (let seq = 0; seq < 4000; seq++) {
    const count = harness.server.publish("feed", numbered(seq));
    counts.push(count);
    for (const [i, reader] of readers.entries()) {
      assert.equal(seqOf(await nextData(reader, `reader ${i}`)), seq, `reader ${i}`);
    }
    if (count < 3 && missed < 0) missed = seq;
    if (missed >= 0 && seq - missed >= after) return counts;
  }
  assert.fail("4,000 publishes of 64 KiB and the subscriber that stopped reading never missed one");
}

test(
  'topics, backpressure "drop": a subscriber that stops reading misses publishes; the others get all',
  LONG,
  async () => {
    const world = new World();
    await withServer(
      world.options({ maxBackpressure: 256 * 1024, backpressurePolicy: "drop" }),
      async (harness) => {
        const slow = await join(harness, "slow", ["feed"]);
        const readers = [await join(harness, "r0", ["feed"]), await join(harness, "r1", ["feed"])];
        slow.socket.pause();
        const counts = await floodFeed(harness, readers, 5);
        // Every publish reached the readers; the slow one only while under the limit.
        assert.ok(counts.every((n) => n === 3 || n === 2), `counts: ${counts}`);
        const reached = counts.flatMap((n, seq) => n === 3 ? [seq] : []);
        const missed = counts.length - reached.length;
        assert.ok(missed >= 6, `${missed} missed`);
        assert.deepEqual(counts.slice(-6), Array(6).fill(2), "once over, it stays over");
        const ws = world.ws("slow");
        assert.equal(ws.droppedMessages, missed);
        assert.equal(ws.readyState, 1, "the drop policy keeps it open");
        assert.equal(harness.server.subscriberCount("feed"), 3);
        // What it did get comes whole and in order; once it has read it all, the drain handler
        // runs and it is sent to again.
        slow.socket.resume();
        const seqs: number[] = [];
        while (seqs.length < reached.length) seqs.push(seqOf(await nextData(slow, "slow")));
        assert.deepEqual(seqs, reached);
        for (;;) {
          if (await world.drains.next("the slow subscriber's drain") === "slow") break;
        }
        await world.assertNothing("slow", slow, "the slow subscriber, after what it was sent");
        assert.equal(harness.server.publish("feed", "again"), 3);
        for (const client of [slow, ...readers]) {
          await expectText(client, "again", "after the drain");
        }
      },
    );
  },
);

test(
  'topics, backpressure "close": a subscriber that stops reading is closed with 1008; the others get all',
  LONG,
  async () => {
    const world = new World();
    await withServer(
      world.options({ maxBackpressure: 256 * 1024, backpressurePolicy: "close" }),
      async (harness) => {
        const slow = await join(harness, "slow", ["feed"]);
        const readers = [await join(harness, "r0", ["feed"]), await join(harness, "r1", ["feed"])];
        slow.socket.pause();
        const counts = await floodFeed(harness, readers, 5);
        const reached = counts.flatMap((n, seq) => n === 3 ? [seq] : []);
        assert.deepEqual(
          reached,
          [...Array(reached.length).keys()],
          "reached until the first miss, never after",
        );
        assert.ok(counts.slice(reached.length).every((n) => n === 2), `counts: ${counts}`);
        const ws = world.ws("slow");
        assert.ok(ws.droppedMessages >= 1);
        assert.equal(ws.readyState, 2, "closing");
        slow.socket.resume();
        const seqs: number[] = [];
        let close: Frame;
        for (;;) {
          const frame = await slow.nextFrame(10_000);
          if (frame.opcode === Op.Close) {
            close = frame;
            break;
          }
          seqs.push(seqOf(frame));
        }
        assert.deepEqual(seqs, reached, "its data, in order, before the Close");
        assert.deepEqual(parseClose(close), { code: 1008, reason: "Backpressure limit" });
        await slow.sendClose(1008);
        assert.deepEqual(await world.closes.next("the close handler"), {
          name: "slow",
          code: 1008,
        });
        assert.equal(harness.server.subscriberCount("feed"), 2);
        assert.equal(harness.server.publish("feed", "after"), 2);
        for (const reader of readers) await expectText(reader, "after", "reader");
      },
    );
  },
);

// permessage-deflate

/** Reads a frame that must be compressed and returns what it inflates to. */
async function expectCompressed(
  client: RawClient,
  opcode: number,
  label: string,
  inflate: (payload: Uint8Array) => Uint8Array | Promise<Uint8Array> = clientInflate,
): Promise<{ frame: Frame; data: Uint8Array }> {
  const frame = await nextData(client, label);
  assert.equal(frame.opcode, opcode, `${label}: opcode`);
  assert.equal(frame.rsv, RSV1, `${label}: RSV1`);
  return { frame, data: await inflate(frame.payload) };
}

/** A random kilobyte repeated: a 32 KiB window compresses it well, a 1 KiB one cannot. */
function repeatedBlock(copies: number): Uint8Array {
  const block = random(1500, 77);
  const out = new Uint8Array(block.length * copies);
  for (let i = 0; i < copies; i++) out.set(block, i * block.length);
  return out;
}

test("topics, deflate shared: one compressed frame for every compressed subscriber, plain for the others", async () => {
  const world = new World();
  await withServer(world.options({ perMessageDeflate: { threshold: 0 } }), async (harness) => {
    const z = [
      await join(harness, "z0", ["t"], [OFFER]),
      await join(harness, "z1", ["t"], [OFFER]),
      await join(harness, "z2", ["t"], [OFFER]),
    ];
    const plain = await join(harness, "plain", ["t"]);
    assert.notEqual(world.ws("z0").extensions, "");
    assert.equal(world.ws("plain").extensions, "");
    const messages: Array<[string, string | Uint8Array]> = [
      ["short text", "hello hello hello"],
      ["empty text", ""],
      ["binary", Uint8Array.of(1, 2, 3, 1, 2, 3, 1, 2, 3)],
      ["100 KiB repetitive", repetitive(100 * 1024)],
      ["100 KiB random", random(100 * 1024, 4)],
    ];
    for (const [name, data] of messages) {
      const isText = typeof data === "string";
      const bytes = isText ? encoder.encode(data) : data;
      const opcode = isText ? Op.Text : Op.Binary;
      assert.equal(harness.server.publish("t", data), 4, name);
      const frames: Frame[] = [];
      for (const [i, client] of z.entries()) {
        const { frame, data: inflated } = await expectCompressed(client, opcode, `${name}, z${i}`);
        assertSameBytes(inflated, bytes, `${name}, z${i}`);
        frames.push(frame);
      }
      for (const frame of frames.slice(1)) {
        assertSameBytes(frame.payload, frames[0].payload, `${name}: the same compressed bytes`);
      }
      const frame = await nextData(plain, `${name}, plain`);
      assert.equal(frame.rsv, 0, `${name}, plain: not compressed`);
      assert.equal(frame.opcode, opcode);
      assertSameBytes(frame.payload, bytes, `${name}, plain`);
    }
  });
});

test("topics, deflate shared: compress false sends plain to everyone, compress true overrides the threshold", async () => {
  const world = new World();
  await withServer(world.options({ perMessageDeflate: true }), async (harness) => {
    const z = await join(harness, "z", ["t"], [OFFER]);
    const plain = await join(harness, "plain", ["t"]);
    const big = "compressible ".repeat(200);
    assert.equal(harness.server.publish("t", big, { compress: false }), 2);
    await expectText(z, big, "z, compress: false");
    await expectText(plain, big, "plain, compress: false");
    // The default threshold (1024 bytes): under it plain, from it on compressed.
    harness.server.publish("t", "tiny");
    await expectText(z, "tiny", "z, under the threshold");
    harness.server.publish("t", big);
    assert.equal(text((await expectCompressed(z, Op.Text, "z, over")).data), big);
    harness.server.publish("t", "tiny", { compress: true });
    assert.equal(text((await expectCompressed(z, Op.Text, "z, compress: true")).data), "tiny");
    // ws.publish takes the same option.
    world.ws("plain").publish("t", big, { compress: false });
    await expectText(z, big, "z, ws.publish compress: false");
    world.ws("plain").publish("t", big);
    assert.equal(text((await expectCompressed(z, Op.Text, "z, ws.publish")).data), big);
    for (const expected of ["tiny", big, "tiny"]) await expectText(plain, expected, "plain");
    await world.assertNothing("plain", plain, "plain, the sender of the last two");
  });
});

test("topics, deflate shared: subscribers with different window sizes each get their own compressed frame", async () => {
  const world = new World();
  await withServer(world.options({ perMessageDeflate: { threshold: 0 } }), async (harness) => {
    const wide = [
      await join(harness, "w0", ["t"], [OFFER]),
      await join(harness, "w1", ["t"], [OFFER]),
    ];
    const narrowOffer = "Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=10";
    const narrow = await join(harness, "n", ["t"], [narrowOffer]);
    assert.match(world.ws("n").extensions, /server_max_window_bits=10/);
    const data = repeatedBlock(20);
    assert.equal(harness.server.publish("t", data), 3);
    const frames: Frame[] = [];
    for (const [i, client] of [...wide, narrow].entries()) {
      const { frame, data: inflated } = await expectCompressed(client, Op.Binary, `client ${i}`);
      assertSameBytes(inflated, data, `client ${i}`);
      frames.push(frame);
    }
    assertSameBytes(frames[1].payload, frames[0].payload, "the two 15-bit windows: same bytes");
    assert.ok(
      frames[2].payload.length > 2 * frames[0].payload.length,
      `a 1 KiB window cannot reach the last copy: ${frames[2].payload.length} bytes vs ` +
        `${frames[0].payload.length}`,
    );
  });
});

const PER_CONNECTION: Array<
  { name: string; options: PerMessageDeflateOptions; takeover: boolean }
> = [
  { name: "dedicated", options: { mode: "dedicated", threshold: 0 }, takeover: true },
  { name: "web engine", options: { engine: "web", threshold: 0 }, takeover: false },
];

for (const mode of PER_CONNECTION) {
  test(`topics, deflate ${mode.name}: each subscriber's copy is compressed for it and arrives in order`, async () => {
    const world = new World();
    await withServer(world.options({ perMessageDeflate: mode.options }), async (harness) => {
      const names = ["z0", "z1"];
      const z = [
        await join(harness, "z0", ["t"], [OFFER]),
        await join(harness, "z1", ["t"], [OFFER]),
      ];
      const plain = await join(harness, "plain", ["t"]);
      const streams = names.map(() => new ClientStream("inflate"));
      const inflaters = streams.map((stream) =>
        mode.takeover ? (p: Uint8Array) => stream.message(p) : clientInflate
      );
      try {
        const json = JSON.stringify({ items: Array.from({ length: 50 }, (_, i) => ({ i })) });
        const big = repetitive(200 * 1024);
        // In one tick: compressed messages, a plain one behind them, and a direct send.
        const { server } = harness;
        assert.equal(server.publish("t", json), 3);
        assert.equal(server.publish("t", big), 3);
        assert.equal(server.publish("t", json), 3); // with takeover it refers to the first
        assert.equal(server.publish("t", "plain in between", { compress: false }), 3);
        for (const name of names) world.ws(name).send("direct");
        assert.equal(server.publish("t", "last"), 3);
        for (const [i, client] of z.entries()) {
          const label = `${mode.name}, z${i}`;
          const inflate = inflaters[i];
          const first = await expectCompressed(client, Op.Text, `${label}, json`, inflate);
          assert.equal(text(first.data), json);
          const second = await expectCompressed(client, Op.Binary, `${label}, big`, inflate);
          assertSameBytes(second.data, big, `${label}, big`);
          const third = await expectCompressed(client, Op.Text, `${label}, json again`, inflate);
          assert.equal(text(third.data), json);
          await expectText(client, "plain in between", label);
          const direct = await nextData(client, `${label}, direct`);
          const directText = direct.rsv === RSV1
            ? text(await inflate(direct.payload))
            : text(direct.payload);
          assert.equal(directText, "direct", label);
          const last = await expectCompressed(client, Op.Text, `${label}, last`, inflate);
          assert.equal(text(last.data), "last");
        }
        await expectText(plain, json, "plain");
        await expectBinary(plain, big, "plain");
        await expectText(plain, json, "plain");
        await expectText(plain, "plain in between", "plain");
        await expectText(plain, "last", "plain");
      } finally {
        for (const stream of streams) stream.close();
      }
    });
  });
}

test("topics, deflate dedicated: a subscriber dropped while its copy is compressed costs nothing else", async () => {
  // An exception thrown from a zlib callback is no test's: catch it here, where it belongs.
  const uncaught: unknown[] = [];
  const onUncaught = (error: unknown) => uncaught.push(error);
  process.on("uncaughtException", onUncaught);
  const world = new World();
  try {
    await withServer(
      world.options({ perMessageDeflate: { mode: "dedicated", threshold: 0 } }),
      async (harness) => {
        const gone = await join(harness, "gone", ["t"], [OFFER]);
        const stays = await join(harness, "stays", ["t"]);
        const big = random(1024 * 1024, 12);
        assert.equal(harness.server.publish("t", big), 2);
        // Its compression has started (zlib streams answer later): drop it now.
        world.ws("gone").terminate();
        await gone.waitClosed();
        assert.deepEqual(await world.closes.next("the close handler"), {
          name: "gone",
          code: 1006,
        });
        await expectBinary(stays, big, "stays");
        // Give the compression of the dropped copy time to end (no speed is asserted).
        await new Promise((resolve) => setTimeout(resolve, 300));
        assert.equal(harness.server.publish("t", "still fine"), 1);
        await expectText(stays, "still fine", "stays");
      },
    );
  } finally {
    process.off("uncaughtException", onUncaught);
  }
  assert.deepEqual(uncaught.map(String), [], "exceptions thrown outside any handler");
});

// Mixed with other sends

test("topics: a publish during a streamed message waits for the stream's last fragment", async () => {
  const world = new World();
  const streamed = deferred<void>();
  const step = new Queue<void>();
  await withServer(world.options(), async (harness) => {
    const client = await join(harness, "a", ["t"]);
    const ws = world.ws("a");
    async function* source() {
      // sendStream holds one chunk back until the next (only the end tells which is last):
      // part 1 goes out when part 2 arrives.
      yield encoder.encode("part 1, ");
      yield encoder.encode("part 2, ");
      await step.next("the test to publish");
      yield encoder.encode("part 3");
    }
    ws.sendStream(source(), { binary: false }).then(() => streamed.resolve());
    const first = await client.nextFrame();
    assert.deepEqual([first.opcode, first.fin, text(first.payload)], [Op.Text, false, "part 1, "]);
    // Published while the stream is open: it must not land between its fragments.
    assert.equal(harness.server.publish("t", "published"), 1);
    step.push();
    await streamed.promise;
    const rest: string[] = [];
    for (;;) {
      const frame = await client.nextFrame();
      rest.push(`${frame.opcode}/${frame.fin}/${text(frame.payload)}`);
      if (frame.fin) break;
    }
    assert.deepEqual(rest, [`${Op.Continuation}/false/part 2, `, `${Op.Continuation}/true/part 3`]);
    await expectText(client, "published", "after the stream");
  });
});

test("topics: publish and send to one connection in one tick keep their order", async () => {
  const world = new World();
  await withServer(world.options(), async (harness) => {
    const client = await join(harness, "a", ["t"]);
    const ws = world.ws("a");
    const big = random(40_000, 3);
    ws.send("1 send");
    harness.server.publish("t", "2 publish");
    harness.server.publish("t", big);
    ws.send("4 send");
    ws.send(random(20_000, 4));
    harness.server.publish("t", "6 publish");
    await expectText(client, "1 send", "1");
    await expectText(client, "2 publish", "2");
    await expectBinary(client, big, "3");
    await expectText(client, "4 send", "4");
    await expectBinary(client, random(20_000, 4), "5");
    await expectText(client, "6 publish", "6");
    // A lone publish in its own tick too.
    await new Promise((resolve) => setTimeout(resolve, 0));
    harness.server.publish("t", "7 alone");
    await expectText(client, "7 alone", "7");
    // A publish first in its tick, then sends: the shared frame leads.
    await new Promise((resolve) => setTimeout(resolve, 0));
    harness.server.publish("t", "8 publish first");
    ws.send("9 send");
    harness.server.publish("t", big);
    await expectText(client, "8 publish first", "8");
    await expectText(client, "9 send", "9");
    await expectBinary(client, big, "10");
  });
});
