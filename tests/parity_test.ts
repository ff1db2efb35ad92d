/**
 * End to end: what used to differ between Deno and Bun, or happened without a word. Sends in
 * `open` (the 101 is corked with them), the exact bytes of plain HTTP responses and of refusals,
 * and the one report a connection gives when it first drops a message under backpressure.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { SendStatus, type ServerWebSocket, WebSocketError } from "../mod.ts";
import { Op, text } from "./_client.ts";
import { Queue, withServer } from "./_harness.ts";

test("parity: sends in open are Sent, with nothing buffered, the 101 leaving with them", async () => {
  const seen = new Queue<{ before: number; statuses: SendStatus[]; after: number }>();
  await withServer({
    heartbeat: false,
    open(ws) {
      const before = ws.bufferedAmount;
      const statuses = [ws.send("x"), ws.send(new Uint8Array([1])), ws.send("y".repeat(1000))];
      seen.push({ before, statuses, after: ws.bufferedAmount });
    },
  }, async ({ open }) => {
    const { client } = await open();
    const { before, statuses, after } = await seen.next("open");
    assert.equal(before, 0, "the 101 is not data the application queued");
    assert.deepEqual(statuses, [SendStatus.Sent, SendStatus.Sent, SendStatus.Sent]);
    assert.equal(after, 3 + 3 + 1004, "the three frames, corked");
    assert.equal(text((await client.nextFrame()).payload), "x");
    assert.deepEqual((await client.nextFrame()).payload, new Uint8Array([1]));
    assert.equal(text((await client.nextFrame()).payload), "y".repeat(1000));
  });
});

test("parity: with maxBackpressure 0 the first send in open is not dropped for the 101", async () => {
  const seen = new Queue<SendStatus>();
  await withServer({
    heartbeat: false,
    maxBackpressure: 0,
    open(ws) {
      seen.push(ws.send("first"));
    },
  }, async ({ open }) => {
    const { client } = await open();
    // Every send reports backpressure at a limit of 0; none may be dropped for the 101 alone.
    assert.equal(await seen.next("open"), SendStatus.Backpressure);
    const frame = await client.nextFrame();
    assert.equal(frame.opcode, Op.Text);
    assert.equal(text(frame.payload), "first");
  });
});
