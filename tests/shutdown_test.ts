/**
 * End to end: server.shutdown() closes every connection with 1001, after the messages already
 * sent, waits for the clients' answers, and drops those that never answer.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import type { ServerWebSocket } from "../mod.ts";
import { Op, parseClose, RawClient, text, within } from "./_client.ts";
import { Queue, withServer } from "./_harness.ts";

test("shutdown: clients get the last messages, then Close 1001; their answers end it", async () => {
  const sockets = new Queue<ServerWebSocket<string>>();
  const closes = new Queue<[string, number]>();
  await withServer<string>({
    upgrade(request) {
      return { data: request.pathname };
    },
    open(ws) {
      sockets.push(ws);
    },
    close(ws, code) {
      closes.push([ws.data, code]);
    },
  }, async ({ server, port, open }) => {
    const a = (await open({ path: "/a" })).client;
    const b = (await open({ path: "/b" })).client;
    const ws = [await sockets.next("open a"), await sockets.next("open b")];
    assert.equal(server.pendingWebSockets, 2);

    for (const socket of ws) socket.send(`last words for ${socket.data}`);
    let resolved = false;
    const done = server.shutdown().then(() => resolved = true);
    assert.equal(server.shutdown(), server.shutdown(), "a second call returns the same promise");

    for (const [client, path] of [[a, "/a"], [b, "/b"]] as const) {
      const last = await client.nextFrame();
      assert.equal(last.opcode, Op.Text, "the message sent before shutdown comes first");
      assert.equal(text(last.payload), `last words for ${path}`);
      assert.deepEqual(parseClose(await client.nextFrame()), { code: 1001, reason: "" });
    }
    // The listener is closed: nobody new gets in.
    await assert.rejects(RawClient.connect(port).then((client) => client.destroy()));
    assert.equal(resolved, false, "shutdown must wait for the closing handshakes");

    await a.sendClose(1001);
    await b.sendClose(1001);
    await within(done, "shutdown");
    assert.equal(server.pendingWebSockets, 0);
    assert.deepEqual(closes.items.toSorted(), [["/a", 1001], ["/b", 1001]]);
    await a.waitClosed();
    await b.waitClosed();
    assert.equal(a.endReceived && b.endReceived, true);
  });
});

test("shutdown: a client that never answers is dropped after the timeout", async () => {
  const closes = new Queue<number>();
  await withServer({
    close(_ws, code) {
      closes.push(code);
    },
  }, async ({ server, open }) => {
    const { client } = await open();
    const answering = (await open()).client;
    const start = performance.now();
    const done = server.shutdown({ timeout: 300 });
    assert.equal(parseClose(await client.nextFrame()).code, 1001);
    assert.equal(parseClose(await answering.nextFrame()).code, 1001);
    await answering.sendClose(1001);
    assert.equal(await closes.next("the answering client's close"), 1001);
    await within(done, "shutdown");
    const elapsed = performance.now() - start;
    assert.ok(elapsed >= 250, `shutdown resolved after ${elapsed.toFixed(0)} ms`);
    assert.ok(elapsed < 2000, `shutdown resolved after ${elapsed.toFixed(0)} ms`);
    assert.equal(await closes.next("the silent client's close"), 1006);
    await client.waitClosed();
    assert.equal(server.pendingWebSockets, 0);
  });
});
