/**
 * End to end: the handshake timeout (slowloris), the idle timeout, heartbeats, the connection
 * limit and the fragment limit.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { WebSocketError } from "../mod.ts";
import { type Frame, Op, parseClose, type RawClient, text, upgradeRequest } from "./_client.ts";
import { Queue, withServer } from "./_harness.ts";

test("timeouts: a client that never finishes its request is dropped; others still connect", async () => {
  await withServer({
    handshakeTimeout: 200,
    message(ws, data) {
      ws.send(data);
    },
  }, async ({
    connect,
    open,
  }) => {
    const slow = await connect();
    const started = Date.now();
    await slow.write("GET / HTTP/1.1\r\nHost: localhost\r\n"); // and then nothing
    const { client } = await open(); // a normal client meanwhile
    await client.sendFrame(Op.Text, "still here");
    assert.equal(text((await client.nextFrame()).payload), "still here");
    await slow.waitClosed(3000);
    const elapsed = Date.now() - started;
    assert.ok(elapsed >= 150, `dropped after ${elapsed} ms, before the timeout`);
    assert.ok(elapsed < 2000, `dropped after ${elapsed} ms, long after the timeout`);
  });
});

test("timeouts: a connection without messages is closed with 1001 after idleTimeout", async () => {
  const closes = new Queue<number>();
  await withServer({
    idleTimeout: 200,
    heartbeat: false,
    close: (_ws, code) => closes.push(code),
  }, async ({ open }) => {
    const { client } = await open();
    const started = Date.now();
    const frame = await client.nextFrame(3000);
    assert.equal(frame.opcode, Op.Close);
    assert.deepEqual(parseClose(frame), { code: 1001, reason: "Idle timeout" });
    assert.ok(Date.now() - started >= 150);
    await client.sendClose(1001);
    assert.equal(await closes.next("the close handler"), 1001);
  });
});

test("timeouts: messages keep a connection from going idle", async () => {
  await withServer({
    idleTimeout: 300,
    heartbeat: false,
    message(ws, data) {
      ws.send(data);
    },
  }, async ({ open }) => {
    const { client } = await open();
    for (let i = 0; i < 8; i++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      await client.sendFrame(Op.Text, `tick ${i}`);
      const frame = await client.nextFrame();
      assert.equal(frame.opcode, Op.Text, `message ${i} should be echoed, not closed`);
    }
  });
});

test("heartbeat: the server pings a silent client; a pong measures latency", async () => {
  const latencies = new Queue<number | undefined>();
  await withServer({
    heartbeat: { interval: 150, timeout: 2000 },
    idleTimeout: 0,
    pong: (ws) => {
      // The connection sets latency before the handler runs.
      queueMicrotask(() => latencies.push(ws.latency));
    },
  }, async ({ open }) => {
    const { client } = await open();
    const ping = await client.nextFrame(3000);
    assert.equal(ping.opcode, Op.Ping);
    await client.sendFrame(Op.Pong, ping.payload);
    const latency = await latencies.next("the pong handler");
    assert.equal(typeof latency, "number");
    assert.ok(latency! >= 0 && latency! < 2000, `latency ${latency}`);
  });
});

test("heartbeat: a peer that answers no ping is dropped and reported 1006", async () => {
  const closes = new Queue<number>();
  const errors = new Queue<unknown>();
  await withServer({
    heartbeat: { interval: 100, timeout: 200 },
    idleTimeout: 0,
    close: (_ws, code) => closes.push(code),
    error: (error) => errors.push(error),
  }, async ({ open }) => {
    const { client } = await open();
    assert.equal((await client.nextFrame(3000)).opcode, Op.Ping); // and no answer
    assert.equal(await closes.next("the close handler"), 1006);
    const error = await errors.next("the error handler");
    assert.ok(error instanceof WebSocketError);
    assert.equal(error.code, "WS_ERR_HEARTBEAT_TIMEOUT");
    await client.waitClosed(3000);
  });
});

/** Reads frames for `ms`, answering each ping with a pong; returns the frames that were not pings. */
async function answerPings(
  client: RawClient,
  ms: number,
): Promise<{ pings: number; others: Frame[] }> {
  const deadline = Date.now() + ms;
  let pings = 0;
  const others: Frame[] = [];
  while (Date.now() < deadline && others.length === 0) {
    let frame: Frame;
    try {
      frame = await client.nextFrame(Math.max(1, deadline - Date.now()));
    } catch (error) {
      if (client.isClosed) throw error;
      break; // No frame before the deadline.
    }
    if (frame.opcode === Op.Ping) {
      pings++;
      await client.sendFrame(Op.Pong, frame.payload);
    } else {
      others.push(frame);
    }
  }
  return { pings, others };
}

test("idle: a quiet client that answers heartbeat pings stays open well past idleTimeout", async () => {
  const closes = new Queue<number>();
  await withServer({
    idleTimeout: 250,
    heartbeat: { interval: 50, timeout: 1000 },
    message(ws, data) {
      ws.send(data);
    },
    close: (_ws, code) => closes.push(code),
  }, async ({ open }) => {
    const { client } = await open();
    const { pings, others } = await answerPings(client, 1000);
    assert.deepEqual(others.map((frame) => frame.opcode), [], "no Close frame, nothing but pings");
    assert.ok(pings >= 3, `${pings} pings answered`);
    assert.equal(closes.items.length, 0);
    await client.sendFrame(Op.Text, "still open");
    let frame = await client.nextFrame();
    while (frame.opcode === Op.Ping) frame = await client.nextFrame();
    assert.equal(text(frame.payload), "still open");
  });
});

test("idle: a client that only sends pings, with the heartbeat off, stays open past idleTimeout", async () => {
  await withServer({
    idleTimeout: 250,
    heartbeat: false,
    message(ws, data) {
      ws.send(data);
    },
  }, async ({ open }) => {
    const { client } = await open();
    const started = Date.now();
    while (Date.now() - started < 1000) {
      await client.sendFrame(Op.Ping, "alive");
      const pong = await client.nextFrame();
      assert.equal(pong.opcode, Op.Pong, "a pong, not a Close frame");
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    await client.sendFrame(Op.Text, "still open");
    assert.equal(text((await client.nextFrame()).payload), "still open");
  });
});

test("idle: a client that answers no ping is dropped by the heartbeat, not closed as idle", async () => {
  const closes = new Queue<number>();
  const errors = new Queue<unknown>();
  await withServer({
    idleTimeout: 5000,
    heartbeat: { interval: 50, timeout: 150 },
    close: (_ws, code) => closes.push(code),
    error: (error) => errors.push(error),
  }, async ({ open }) => {
    const { client } = await open();
    const started = Date.now();
    assert.equal((await client.nextFrame()).opcode, Op.Ping); // and no answer
    assert.equal(await closes.next("the close handler"), 1006);
    const error = await errors.next("the error handler");
    assert.ok(error instanceof WebSocketError);
    assert.equal(error.code, "WS_ERR_HEARTBEAT_TIMEOUT");
    assert.equal(error.closeCode, 1006);
    assert.equal(error.message, "No answer to a ping within 150 ms");
    await client.waitClosed();
    assert.ok(Date.now() - started < 5000, "dropped before the idle timeout");
    await assert.rejects(client.nextFrame(100), "no Close frame: the connection was dropped");
  });
});

test("limits: a connection beyond maxConnections gets 503 with Retry-After", async () => {
  await withServer({ maxConnections: 2 }, async ({ open, connect }) => {
    await open();
    await open();
    const third = await connect();
    await third.write(upgradeRequest());
    const response = await third.response();
    assert.equal(response.status, 503);
    assert.equal(response.headers.get("retry-after"), "1");
    await third.waitClosed();
  });
});

test("limits: a message in more than maxFragments frames fails with 1008", async () => {
  const errors = new Queue<unknown>();
  await withServer({ maxFragments: 3, error: (error) => errors.push(error) }, async ({ open }) => {
    const { client } = await open();
    await client.sendFrame(Op.Text, "a", { fin: false });
    await client.sendFrame(Op.Continuation, "b", { fin: false });
    await client.sendFrame(Op.Continuation, "c", { fin: false });
    await client.sendFrame(Op.Continuation, "d", { fin: true });
    const frame = await client.nextFrame();
    assert.equal(parseClose(frame).code, 1008);
    const error = await errors.next("the error handler");
    assert.ok(error instanceof WebSocketError);
    assert.equal(error.code, "WS_ERR_TOO_MANY_FRAGMENTS");
    assert.equal(error.closeCode, 1008);
    await client.waitClosed();
  });
});

test("limits: a message in exactly maxFragments frames is delivered", async () => {
  const messages = new Queue<string>();
  await withServer({ maxFragments: 3, message: (_ws, data) => messages.push(String(data)) }, async (
    { open },
  ) => {
    const { client } = await open();
    await client.sendFrame(Op.Text, "a", { fin: false });
    await client.sendFrame(Op.Continuation, "b", { fin: false });
    await client.sendFrame(Op.Continuation, "c", { fin: true });
    assert.equal(await messages.next("the message"), "abc");
  });
});
