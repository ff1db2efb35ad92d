/**
 * End to end: the closing handshake from either side, the close timeout, lost connections,
 * and sending once closing has begun.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { SendStatus, type ServerWebSocket } from "../mod.ts";
import { Op, parseClose, text } from "./_client.ts";
import { Queue, withServer } from "./_harness.ts";

type Closed = [code: number, reason: string];

test("close: the client's Close 1000 reaches the handler, is echoed, then TCP closes", async () => {
  const closes = new Queue<Closed>();
  await withServer({
    close(_ws, code, reason) {
      closes.push([code, reason]);
    },
  }, async ({ open }) => {
    const { client } = await open();
    await client.sendClose(1000, "bye");
    assert.deepEqual(await closes.next("the close handler"), [1000, "bye"]);
    const frame = await client.nextFrame();
    assert.equal(frame.masked, false);
    assert.equal(parseClose(frame).code, 1000);
    // RFC 6455 §7.1.1: the server closes the TCP connection first.
    await client.waitClosed();
    assert.equal(client.endReceived, true, "the server should close with FIN");
    await assert.rejects(client.nextFrame(), /closed/, "nothing may follow the Close frame");
    assert.equal(closes.items.length, 1);
  });
});

test("close: an empty Close frame is reported as 1005 and answered with an empty one", async () => {
  const closes = new Queue<Closed>();
  await withServer({
    close(_ws, code, reason) {
      closes.push([code, reason]);
    },
  }, async ({ open }) => {
    const { client } = await open();
    await client.sendClose();
    assert.deepEqual(await closes.next("the close handler"), [1005, ""]);
    const frame = await client.nextFrame();
    assert.equal(frame.opcode, Op.Close);
    assert.equal(frame.payload.length, 0, "1005 must never be sent");
    await client.waitClosed();
  });
});

test("close: ws.close(4000, 'done') reaches the client; its answer reaches the handler", async () => {
  const closes = new Queue<Closed>();
  const states: number[] = [];
  await withServer({
    message(ws) {
      ws.close(4000, "done");
      states.push(ws.readyState);
    },
    close(ws, code, reason) {
      states.push(ws.readyState);
      closes.push([code, reason]);
    },
  }, async ({ open }) => {
    const { client } = await open();
    await client.sendFrame(Op.Text, "close me");
    const frame = await client.nextFrame();
    assert.deepEqual(parseClose(frame), { code: 4000, reason: "done" });
    assert.equal(closes.items.length, 0, "the handler waits for the client's answer");
    await client.sendClose(4000, "ok");
    assert.deepEqual(await closes.next("the close handler"), [4000, "ok"]);
    assert.deepEqual(states, [2, 3], "readyState: CLOSING after close(), CLOSED in the handler");
    await client.waitClosed();
    assert.equal(client.endReceived, true);
  });
});

test("close: a client that never answers our Close is dropped after closeTimeout", async () => {
  const closes = new Queue<Closed>();
  await withServer({
    closeTimeout: 200,
    open(ws) {
      ws.close(4000, "done");
    },
    close(_ws, code, reason) {
      closes.push([code, reason]);
    },
  }, async ({ open }) => {
    const { client } = await open();
    assert.deepEqual(parseClose(await client.nextFrame()), { code: 4000, reason: "done" });
    const start = performance.now();
    const [code] = await closes.next("the close handler");
    const elapsed = performance.now() - start;
    assert.equal(code, 1006);
    assert.ok(elapsed >= 150, `dropped after ${elapsed.toFixed(0)} ms, before the timeout`);
    assert.ok(elapsed < 2000, `dropped after ${elapsed.toFixed(0)} ms`);
    await client.waitClosed();
  });
});

test("close: a client that drops TCP without a Close frame gives 1006", async () => {
  const closes = new Queue<Closed>();
  await withServer({
    close(_ws, code, reason) {
      closes.push([code, reason]);
    },
  }, async ({ open }) => {
    const { client } = await open();
    client.destroy();
    assert.deepEqual(await closes.next("the close handler"), [1006, ""]);
    const half = await open();
    half.client.end(); // FIN without a Close frame: just as abnormal.
    assert.deepEqual(await closes.next("the close handler"), [1006, ""]);
    await half.client.waitClosed();
    assert.equal(closes.items.length, 2);
  });
});

test("close: send and ping after close() and in the close handler send nothing and throw nothing", async () => {
  const outcomes = new Queue<unknown>();
  const attempt = (action: () => unknown) => {
    try {
      outcomes.push({ returned: action() });
    } catch (error) {
      outcomes.push(error);
    }
  };
  await withServer({
    open(ws: ServerWebSocket) {
      ws.close(1000, "now");
      attempt(() => ws.send("late"));
      attempt(() => ws.ping("late"));
      // A bad argument is still an error.
      attempt(() => ws.ping(new Uint8Array(126)));
    },
    close(ws) {
      attempt(() => ws.send(new Uint8Array([1])));
    },
  }, async ({ open }) => {
    const { client } = await open();
    assert.deepEqual(await outcomes.next("send in open"), { returned: SendStatus.Dropped });
    assert.deepEqual(await outcomes.next("ping in open"), { returned: undefined });
    const tooLong = await outcomes.next("a long ping in open");
    assert.ok(tooLong instanceof RangeError, `a 126-byte ping did not throw: ${tooLong}`);
    const frame = await client.nextFrame();
    assert.deepEqual(parseClose(frame), { code: 1000, reason: "now" });
    await client.sendClose(1000);
    assert.deepEqual(await outcomes.next("send in the close handler"), {
      returned: SendStatus.Dropped,
    });
    await client.waitClosed();
    // The late messages were never written: the Close frame was the last frame.
    await assert.rejects(client.nextFrame(), /closed/);
  });
});

test("close: a message that crosses our Close frame is delivered, and answering it is no error", async () => {
  const messages = new Queue<[string | Uint8Array, number]>();
  const errors: unknown[] = [];
  const closes = new Queue<Closed>();
  await withServer({
    open(ws: ServerWebSocket) {
      ws.close(1001, "going away");
    },
    // An echo: the peer sent this before it saw our Close frame.
    message(ws, data) {
      messages.push([data, ws.send(data)]);
    },
    error(error) {
      errors.push(error);
    },
    close(_ws, code, reason) {
      closes.push([code, reason]);
    },
  }, async ({ open }) => {
    const { client } = await open();
    assert.deepEqual(parseClose(await client.nextFrame()), { code: 1001, reason: "going away" });
    await client.sendFrame(Op.Text, "in flight");
    assert.deepEqual(await messages.next("the message handler"), ["in flight", SendStatus.Dropped]);
    await client.sendClose(1000);
    assert.deepEqual(await closes.next("the close handler"), [1000, ""]);
    await client.waitClosed();
    await assert.rejects(client.nextFrame(), /closed/, "the echo was not written");
    assert.deepEqual(errors, []);
  });
});

test("close: a handler's error gives that client 1011; another client keeps working", async () => {
  const boom = new Error("kaboom");
  const errors = new Queue<[unknown, string | undefined]>();
  const closes = new Queue<[string, number]>();
  await withServer<string>({
    upgrade(request) {
      return { data: request.searchParams.get("name") ?? "?" };
    },
    message(ws, data) {
      if (data === "boom") throw boom;
      if (data === "async boom") return Promise.reject(boom);
      ws.send(`${ws.data}:${data}`);
    },
    error(error, ws) {
      errors.push([error, ws?.data]);
    },
    close(ws, code) {
      closes.push([ws.data, code]);
    },
  }, async ({ open }) => {
    const a = (await open({ path: "/?name=a" })).client;
    const b = (await open({ path: "/?name=b" })).client;
    const c = (await open({ path: "/?name=c" })).client;
    await a.sendFrame(Op.Text, "boom");
    const frame = await a.nextFrame();
    assert.equal(frame.opcode, Op.Close);
    assert.equal(frame.payload.length, 2, "1011 carries no reason: the details are the server's");
    assert.equal(parseClose(frame).code, 1011);
    assert.deepEqual(await errors.next("the error handler"), [boom, "a"]);
    assert.deepEqual(await closes.next("the close handler"), ["a", 1011]);
    await a.waitClosed();

    await b.sendFrame(Op.Text, "still here");
    assert.equal(text((await b.nextFrame()).payload), "b:still here");

    // A handler's rejected promise counts as throwing.
    await c.sendFrame(Op.Text, "async boom");
    const asyncFrame = await c.nextFrame();
    assert.deepEqual(parseClose(asyncFrame), { code: 1011, reason: "" });
    assert.deepEqual(await errors.next("the error handler"), [boom, "c"]);
    assert.deepEqual(await closes.next("the close handler"), ["c", 1011]);

    await b.sendFrame(Op.Text, "and still");
    assert.equal(text((await b.nextFrame()).payload), "b:and still");
    assert.equal(errors.items.length, 2);
  });
});
