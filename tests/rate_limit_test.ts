/**
 * End to end: per-connection rate limits (`rateLimit`) over real sockets. Under "close" a client
 * past its messages × burst gets Close 1008 "Rate limit exceeded" and no more deliveries; under
 * "drop" the excess is counted and not delivered, the connection stays open, and messages flow
 * again once the bucket refills. Bytes and pings count too; bad options are a RangeError.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import type { ServeOptions, ServerWebSocket } from "../mod.ts";
import {
  encodeFrame,
  type Frame,
  Op,
  parseClose,
  type RawClient,
  text,
  upgradeRequest,
} from "./_client.ts";
import { assertServeThrows, deferred, Queue, sleep, waitFor, withServer } from "./_harness.ts";

/** `count` masked text frames `${prefix}${i}`, in one buffer: they go out in one TCP write. */
function textFrames(count: number, prefix = ""): Uint8Array {
  return Buffer.concat(
    Array.from({ length: count }, (_, i) => encodeFrame(Op.Text, `${prefix}${i}`)),
  );
}

/** Reads frames until a Close frame; returns the frames before it and the Close. */
async function readUntilClose(client: RawClient): Promise<{ before: Frame[]; close: Frame }> {
  const before: Frame[] = [];
  for (;;) {
    const frame = await client.nextFrame();
    if (frame.opcode === Op.Close) return { before, close: frame };
    before.push(frame);
  }
}

/** Records messages, the WebSocket and its close; echoes each message. */
function recorder(extra: Partial<ServeOptions<undefined>>) {
  const messages = new Queue<string>();
  const sockets = new Queue<ServerWebSocket<undefined>>();
  const closes = new Queue<{ code: number; reason: string }>();
  const options: ServeOptions<undefined> = {
    heartbeat: false,
    open(ws) {
      sockets.push(ws);
    },
    message(ws, data) {
      messages.push(data as string);
      ws.send(data);
    },
    close(_ws, code, reason) {
      closes.push({ code, reason });
    },
    ...extra,
  };
  return { messages, sockets, closes, options };
}

test('rate limit "close": past messages × burst at once, Close 1008 and no more deliveries', async () => {
  // 5 per second with a burst of 2: 10 at once are fine, the 11th is over.
  const { messages, sockets, closes, options } = recorder({
    rateLimit: { messages: 5, burst: 2, policy: "close" },
  });
  await withServer(options, async ({ open, server }) => {
    const { client } = await open();
    const ws = await sockets.next("open");
    await client.write(textFrames(15));
    const { before, close } = await readUntilClose(client);
    assert.deepEqual(parseClose(close), { code: 1008, reason: "Rate limit exceeded" });
    // The echoes before the Close are exactly the messages the handler saw: the first ten.
    const expected = Array.from({ length: 10 }, (_, i) => `${i}`);
    assert.deepEqual(before.map((frame) => text(frame.payload)), expected);
    await client.sendClose(1008);
    await client.waitClosed();
    // The close handler reports the peer's answer (it echoed the code).
    assert.equal((await closes.next("close")).code, 1008);
    assert.deepEqual(messages.items, expected);
    assert.ok(
      ws.rateLimitedMessages >= 1 && ws.rateLimitedMessages <= 5,
      `rateLimitedMessages ${ws.rateLimitedMessages}: 1 to 5 of the 15 were over`,
    );
    assert.equal(server.stats().rateLimitedMessages, ws.rateLimitedMessages);
  });
});

test('rate limit "close": a client within messages × burst is not limited', async () => {
  const { messages, sockets, options } = recorder({
    rateLimit: { messages: 5, burst: 2, policy: "close" },
  });
  await withServer(options, async ({ open, server }) => {
    const { client } = await open();
    const ws = await sockets.next("open");
    await client.write(textFrames(10));
    for (let i = 0; i < 10; i++) {
      const frame = await client.nextFrame();
      assert.equal(frame.opcode, Op.Text);
      assert.equal(text(frame.payload), `${i}`);
    }
    assert.equal(messages.items.length, 10);
    assert.equal(ws.readyState, 1);
    assert.equal(ws.rateLimitedMessages, 0);
    assert.equal(server.stats().rateLimitedMessages, 0);
  });
});

test("rate limit: each connection has its own bucket", async () => {
  const { messages, options } = recorder({ rateLimit: { messages: 4, policy: "close" } });
  await withServer(options, async ({ open }) => {
    const a = (await open()).client;
    const b = (await open()).client;
    await a.write(textFrames(4, "a"));
    await b.write(textFrames(4, "b"));
    for (const [client, name] of [[a, "a"], [b, "b"]] as const) {
      for (let i = 0; i < 4; i++) {
        const frame = await client.nextFrame();
        assert.equal(text(frame.payload), `${name}${i}`);
      }
    }
    assert.equal(messages.items.length, 8);
    // Each is now at its limit: one more on a closes a, not b.
    await a.write(textFrames(1, "over"));
    const close = await a.nextFrame();
    assert.deepEqual(parseClose(close), { code: 1008, reason: "Rate limit exceeded" });
  });
});

test('rate limit "drop": the excess is not delivered but counted, the connection stays open, and messages flow after a refill', async () => {
  const { messages, sockets, options } = recorder({
    rateLimit: { messages: 20, policy: "drop" },
  });
  await withServer(options, async ({ open, server }) => {
    const { client } = await open();
    const ws = await sockets.next("open");
    await client.write(textFrames(30));
    await waitFor(() => ws.rateLimitedMessages >= 10, "10 messages over the limit");
    const expected = Array.from({ length: 20 }, (_, i) => `${i}`);
    for (const want of expected) {
      const frame = await client.nextFrame();
      assert.equal(frame.opcode, Op.Text);
      assert.equal(text(frame.payload), want);
    }
    assert.deepEqual(messages.items, expected);
    assert.equal(ws.rateLimitedMessages, 10);
    assert.equal(server.stats().rateLimitedMessages, 10);
    assert.equal(ws.readyState, 1, "the connection stays open");
    // 20 per second: after 250 ms at least 5 tokens are back (a generous wait, not a timing).
    await sleep(250);
    await client.write(textFrames(2, "again"));
    for (const want of ["again0", "again1"]) {
      const frame = await client.nextFrame();
      assert.equal(frame.opcode, Op.Text, "deliveries resumed: an echo, not a Close");
      assert.equal(text(frame.payload), want);
    }
    assert.deepEqual(messages.items.slice(20), ["again0", "again1"]);
    assert.equal(ws.rateLimitedMessages, 10);
    assert.equal(ws.readyState, 1);
  });
});

test('rate limit "close" on bytes: a client past its byte rate gets Close 1008', async () => {
  const { messages, sockets, closes, options } = recorder({
    rateLimit: { bytes: 1000, policy: "close" },
  });
  await withServer(options, async ({ open, server }) => {
    const { client } = await open();
    const ws = await sockets.next("open");
    // 400 bytes of payload, 408 on the wire (8-byte masked header): within 1000.
    await client.sendFrame(Op.Text, "x".repeat(400));
    assert.equal(text((await client.nextFrame()).payload).length, 400);
    // 908 bytes more: over 1000 (short of ~500 ms passing in between, it cannot refill).
    await client.sendFrame(Op.Text, "y".repeat(900));
    const { before, close } = await readUntilClose(client);
    assert.deepEqual(before, [], "the message over the byte rate is not delivered");
    assert.deepEqual(parseClose(close), { code: 1008, reason: "Rate limit exceeded" });
    await client.sendClose(1008);
    await client.waitClosed();
    assert.equal((await closes.next("close")).code, 1008);
    assert.equal(messages.items.length, 1);
    assert.ok(ws.rateLimitedMessages >= 1);
    assert.equal(server.stats().rateLimitedMessages, ws.rateLimitedMessages);
  });
});

test('rate limit "close" on bytes: the one message over the limit is counted once', async () => {
  const { sockets, options } = recorder({ rateLimit: { bytes: 1000, policy: "close" } });
  await withServer(options, async ({ open, server }) => {
    const { client } = await open();
    const ws = await sockets.next("open");
    // 1208 bytes in one frame: over 1000.
    await client.sendFrame(Op.Text, "y".repeat(1200));
    const { before, close } = await readUntilClose(client);
    assert.deepEqual(before, []);
    assert.equal(parseClose(close).code, 1008);
    // The closing handshake is not a message: answering the Close is not "over the limit".
    await client.sendClose(1008);
    await client.waitClosed();
    // "Messages from clients over their rate limits" (ServerStats.rateLimitedMessages): one.
    assert.equal(ws.rateLimitedMessages, 1);
    assert.equal(server.stats().rateLimitedMessages, 1);
  });
});

/** The first frame must be our Close 1008, not the echo of a message over the byte rate. */
async function assertClosedFirst(client: RawClient): Promise<void> {
  const frame = await client.nextFrame();
  assert.equal(
    frame.opcode,
    Op.Close,
    `expected Close 1008, got opcode ${frame.opcode} (${frame.payload.length} bytes): ` +
      "a message over the byte rate was delivered",
  );
  assert.deepEqual(parseClose(frame), { code: 1008, reason: "Rate limit exceeded" });
}

test("rate limit on bytes: bytes pipelined behind the upgrade request count too", async () => {
  const { messages, options } = recorder({ rateLimit: { bytes: 200, policy: "close" } });
  await withServer(options, async ({ open }) => {
    // 808 bytes in the same TCP write as the request head (one read, on either runtime): four
    // times the byte allowance.
    const { client } = await open({ pipelined: encodeFrame(Op.Text, "p".repeat(800)) });
    await assertClosedFirst(client);
    assert.deepEqual(messages.items, []);
  });
});

test("rate limit on bytes: bytes sent while an async upgrade hook runs count too", async () => {
  const release = deferred();
  const { messages, options } = recorder({
    rateLimit: { bytes: 1000, policy: "close" },
    async upgrade() {
      await release.promise;
    },
  });
  await withServer(options, async ({ connect }) => {
    const client = await connect();
    await client.write(upgradeRequest());
    await client.write(encodeFrame(Op.Text, "p".repeat(5000)));
    await sleep(50); // let the server read them while the hook waits
    release.resolve();
    assert.equal((await client.response()).status, 101);
    await assertClosedFirst(client);
    assert.deepEqual(messages.items, []);
  });
});

test('rate limit "drop" on bytes: messages in a chunk past the byte rate are dropped, then flow again', async () => {
  const { messages, sockets, options } = recorder({
    rateLimit: { bytes: 4000, policy: "drop" },
  });
  await withServer(options, async ({ open }) => {
    const { client } = await open();
    const ws = await sockets.next("open");
    // 6008 bytes in one write: the bucket (4000) goes negative, both messages are dropped.
    await client.write(
      Buffer.concat([encodeFrame(Op.Text, "z".repeat(6000)), encodeFrame(Op.Text, "small")]),
    );
    await waitFor(() => ws.rateLimitedMessages >= 2, "2 messages over the byte rate");
    assert.equal(ws.rateLimitedMessages, 2);
    assert.deepEqual(messages.items, []);
    assert.equal(ws.readyState, 1);
    // 4000 bytes per second refill the ~2000-byte debt in about half a second: probe until a
    // message gets through (generous: up to 5 s).
    let delivered: string | undefined;
    for (let i = 0; i < 50 && delivered === undefined; i++) {
      await sleep(100);
      await client.sendFrame(Op.Text, `probe${i}`);
      await waitFor(
        () => messages.items.length > 0 || ws.rateLimitedMessages > 2 + i,
        "the probe to be delivered or dropped",
      );
      delivered = messages.items[0];
    }
    assert.ok(delivered?.startsWith("probe"), "deliveries resume once the bucket refills");
    assert.equal(text((await client.nextFrame()).payload), delivered);
    assert.equal(ws.readyState, 1);
  });
});

test("rate limit: pings count as messages; the one over the limit closes with 1008", async () => {
  const pings = new Queue<string>();
  const { messages, options } = recorder({
    rateLimit: { messages: 3, policy: "close" },
    ping(_ws, data) {
      pings.push(text(data));
    },
  });
  await withServer(options, async ({ open }) => {
    const { client } = await open();
    await client.write(
      Buffer.concat(Array.from({ length: 5 }, (_, i) => encodeFrame(Op.Ping, `p${i}`))),
    );
    const { before, close } = await readUntilClose(client);
    assert.deepEqual(parseClose(close), { code: 1008, reason: "Rate limit exceeded" });
    // Each ping read before the close was answered (the pong goes before the limit is asked).
    assert.ok(before.length >= 3, `${before.length} pongs`);
    for (const [i, frame] of before.entries()) {
      assert.equal(frame.opcode, Op.Pong);
      assert.equal(text(frame.payload), `p${i}`);
    }
    assert.deepEqual(pings.items, ["p0", "p1", "p2"]);
    assert.equal(messages.items.length, 0);
  });
});

test("rate limit: pings and messages share one bucket", async () => {
  const { messages, sockets, options } = recorder({
    rateLimit: { messages: 4, policy: "drop" },
  });
  await withServer(options, async ({ open }) => {
    const { client } = await open();
    const ws = await sockets.next("open");
    await client.write(
      Buffer.concat([
        encodeFrame(Op.Ping, ""),
        encodeFrame(Op.Ping, ""),
        encodeFrame(Op.Ping, ""),
        ...Array.from({ length: 3 }, (_, i) => encodeFrame(Op.Text, `m${i}`)),
      ]),
    );
    await waitFor(() => ws.rateLimitedMessages >= 2, "2 messages over the limit");
    assert.deepEqual(messages.items, ["m0"], "three pings took three of the four tokens");
    assert.equal(ws.rateLimitedMessages, 2);
  });
});

test("rate limit: invalid options throw RangeError from serve()", async () => {
  const cases: Array<[ServeOptions<undefined>["rateLimit"], string]> = [
    [{ messages: 0 }, "Cannot serve: rateLimit.messages must be a positive number, got 0"],
    [{ messages: -5 }, "Cannot serve: rateLimit.messages must be a positive number, got -5"],
    [{ messages: NaN }, "Cannot serve: rateLimit.messages must be a positive number, got NaN"],
    [{ bytes: 0 }, "Cannot serve: rateLimit.bytes must be a positive number, got 0"],
    [{ burst: 0 }, "Cannot serve: rateLimit.burst must be a positive number, got 0"],
    [{ burst: -1 }, "Cannot serve: rateLimit.burst must be a positive number, got -1"],
    [
      { policy: "ignore" as "drop" },
      'Cannot serve: rateLimit.policy must be "close" or "drop", got ignore',
    ],
  ];
  for (const [rateLimit, message] of cases) {
    await assertServeThrows({ rateLimit }, { name: "RangeError", message });
  }
});
