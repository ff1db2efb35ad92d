/**
 * End to end: sending a message as a stream of fragments, and receiving messages piece by
 * piece with the `fragment` handler.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { Op, text } from "./_client.ts";
import { deferred, Queue, withServer } from "./_harness.ts";

function pattern(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = (i * 31 + seed) & 0xff;
  return out;
}

test("sendStream: an async iterable goes out as fragments; a send made meanwhile follows", async () => {
  const chunks = [pattern(100_000, 1), pattern(70_000, 2), pattern(5, 3)];
  await withServer({
    async open(ws) {
      async function* source() {
        for (const chunk of chunks) {
          yield chunk;
          await new Promise((resolve) => setTimeout(resolve, 10));
          if (chunk === chunks[0]) ws.send("after the stream");
        }
      }
      await ws.sendStream(source());
    },
  }, async ({ open }) => {
    const { client } = await open();
    const frames = [];
    for (let i = 0; i < 4; i++) frames.push(await client.nextFrame());
    assert.deepEqual(
      frames.map((frame) => [frame.opcode, frame.fin]),
      [[Op.Binary, false], [Op.Continuation, false], [Op.Continuation, true], [Op.Text, true]],
    );
    for (let i = 0; i < 3; i++) assert.deepEqual(frames[i].payload, chunks[i]);
    assert.equal(text(frames[3].payload), "after the stream");
  });
});

test("sendStream: a ReadableStream of strings goes out as one text message", async () => {
  await withServer({
    async open(ws) {
      const stream = new ReadableStream<string>({
        start(controller) {
          for (const part of ["κα", "λη", "μέρα"]) controller.enqueue(part);
          controller.close();
        },
      });
      await ws.sendStream(stream, { binary: false });
    },
  }, async ({ open }) => {
    const { client } = await open();
    let message = "";
    for (;;) {
      const frame = await client.nextFrame();
      message += text(frame.payload);
      if (frame.fin) break;
    }
    assert.equal(message, "καλημέρα");
  });
});

test("sendStream: a source that fails closes the connection with 1011 and rejects", async () => {
  const failed = deferred<unknown>();
  await withServer({
    open(ws) {
      async function* source() {
        yield new Uint8Array([1, 2, 3]);
        throw new Error("disk on fire");
      }
      ws.sendStream(source()).then(() => failed.resolve(undefined), failed.resolve);
    },
  }, async ({ open }) => {
    const { client } = await open();
    const error = await failed.promise;
    assert.ok(error instanceof Error && error.message === "disk on fire");
    let frame = await client.nextFrame();
    while (frame.opcode !== Op.Close) frame = await client.nextFrame();
    assert.equal(new DataView(frame.payload.buffer, frame.payload.byteOffset).getUint16(0), 1011);
  });
});

test("fragment handler: pieces arrive as they come, fin on the last; no message handler", async () => {
  const pieces = new Queue<[string | Uint8Array, boolean, boolean]>();
  let messages = 0;
  await withServer({
    fragment(_ws, data, isBinary, fin) {
      pieces.push([data, isBinary, fin]);
    },
    message() {
      messages++;
    },
  }, async ({ open }) => {
    const { client } = await open();
    await client.sendFrame(Op.Binary, pattern(10, 1), { fin: false });
    const first = await pieces.next("the first piece");
    assert.deepEqual(first, [pattern(10, 1), true, false], "delivered before the message ends");
    await client.sendFrame(Op.Continuation, pattern(20, 2), { fin: false });
    await client.sendFrame(Op.Continuation, pattern(30, 3), { fin: true });
    assert.deepEqual(await pieces.next("the second piece"), [pattern(20, 2), true, false]);
    assert.deepEqual(await pieces.next("the third piece"), [pattern(30, 3), true, true]);
    await client.sendFrame(Op.Text, "whole");
    assert.deepEqual(await pieces.next("a one-frame message"), ["whole", false, true]);
    assert.equal(messages, 0);
  });
});

test("fragment handler: a 32 MiB upload in 1 MiB fragments is received without assembly", async () => {
  let received = 0;
  let pieces = 0;
  const done = deferred<void>();
  await withServer({
    maxPayloadLength: 64 * 1024 * 1024,
    fragment(_ws, data, _isBinary, fin) {
      received += (data as Uint8Array).length;
      pieces++;
      if (fin) done.resolve();
    },
  }, async ({ open }) => {
    const { client } = await open();
    const MiB = 1024 * 1024;
    const chunk = pattern(MiB, 7);
    for (let i = 0; i < 32; i++) {
      await client.sendFrame(i === 0 ? Op.Binary : Op.Continuation, chunk, { fin: i === 31 });
    }
    await done.promise;
    assert.equal(received, 32 * MiB);
    assert.ok(pieces >= 32, `${pieces} pieces`);
  });
});
