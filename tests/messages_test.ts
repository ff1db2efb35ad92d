/**
 * End to end: messages both ways (sizes around every length encoding, up to 16 MiB),
 * fragmentation, pings and pongs, and many messages sent in one tick.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import type { ServerWebSocket } from "../mod.ts";
import { encodeFrame, Op, text } from "./_client.ts";
import { pattern, Queue, withServer } from "./_harness.ts";

const encoder = new TextEncoder();

/** Compares bytes without printing megabytes when they differ. */
function assertSameBytes(actual: Uint8Array, expected: Uint8Array): void {
  assert.equal(actual.length, expected.length, "length");
  for (let i = 0; i < expected.length; i++) {
    if (actual[i] !== expected[i]) {
      assert.fail(`byte ${i} differs: ${actual[i]} instead of ${expected[i]}`);
    }
  }
}

/** A string of exactly `size` bytes of UTF-8, with 2-, 3- and 4-byte characters in it. */
function utf8Text(size: number): string {
  const pieces = ["a", "é", "€", "😀", "ß", "中"];
  let result = "";
  let bytes = 0;
  for (let i = 0; bytes < size; i++) {
    const piece = pieces[i % pieces.length];
    const length = encoder.encode(piece).length;
    const next = bytes + length <= size ? piece : "a";
    result += next;
    bytes += next === piece ? length : 1;
  }
  return result;
}

const echo = {
  maxPayloadLength: 17 * 1024 * 1024,
  message(ws: ServerWebSocket, data: string | Uint8Array) {
    ws.send(data);
  },
};

for (const size of [0, 125, 126, 65535, 65536]) {
  test(`echo: text of ${size} bytes of UTF-8`, async () => {
    const message = utf8Text(size);
    const bytes = encoder.encode(message);
    assert.equal(bytes.length, size);
    const received = new Queue<[string | Uint8Array, boolean]>();
    await withServer({
      message(ws, data, isBinary) {
        received.push([data, isBinary]);
        ws.send(data);
      },
    }, async ({ open }) => {
      const { client } = await open();
      await client.sendFrame(Op.Text, bytes);
      const [data, isBinary] = await received.next("the message");
      assert.equal(isBinary, false);
      assert.equal(data, message);
      const frame = await client.nextFrame();
      assert.equal(frame.opcode, Op.Text);
      assert.equal(frame.fin, true);
      assert.equal(frame.masked, false, "server frames are never masked");
      assertSameBytes(frame.payload, bytes);
    });
  });
}

for (const size of [0, 125, 126, 65535, 65536, 16 * 1024 * 1024]) {
  test(`echo: binary of ${size} bytes`, async () => {
    const bytes = pattern(size);
    const received = new Queue<boolean>();
    await withServer({
      ...echo,
      message(ws, data, isBinary) {
        received.push(isBinary);
        ws.send(data);
      },
    }, async ({ open }) => {
      const { client } = await open();
      await client.sendFrame(Op.Binary, bytes);
      assert.equal(await received.next("the message"), true);
      const frame = await client.nextFrame();
      assert.equal(frame.opcode, Op.Binary);
      assert.equal(frame.fin, true);
      assert.equal(frame.masked, false);
      assertSameBytes(frame.payload, bytes);
    });
  });
}

test("fragments: a text message in 3 fragments with a ping between arrives whole", async () => {
  const messages = new Queue<string | Uint8Array>();
  const pings = new Queue<string>();
  await withServer({
    message(ws, data) {
      messages.push(data);
      ws.send(data);
    },
    ping(_ws, data) {
      pings.push(text(data));
    },
  }, async ({ open }) => {
    const { client } = await open();
    // "Grüße, 世界": the fragments cut through the middle of "ü" and of "世".
    const whole = encoder.encode("Grüße, 世界");
    const cuts = [3, 10];
    await client.sendFrame(Op.Text, whole.subarray(0, cuts[0]), { fin: false });
    await client.sendFrame(Op.Ping, "p1");
    await client.sendFrame(Op.Continuation, whole.subarray(cuts[0], cuts[1]), { fin: false });
    await client.sendFrame(Op.Continuation, whole.subarray(cuts[1]));
    const pong = await client.nextFrame();
    assert.equal(pong.opcode, Op.Pong);
    assert.equal(text(pong.payload), "p1");
    assert.equal(await pings.next("the ping handler"), "p1");
    assert.equal(await messages.next("the message"), "Grüße, 世界");
    const echoed = await client.nextFrame();
    assert.equal(echoed.opcode, Op.Text);
    assert.equal(echoed.fin, true);
    assert.equal(text(echoed.payload), "Grüße, 世界");
    assert.equal(messages.items.length, 1);
  });
});

test("fragments: a binary message in fragments, all in one TCP write, arrives whole", async () => {
  const messages = new Queue<string | Uint8Array>();
  await withServer({
    message(ws, data) {
      messages.push(data);
      ws.send(data);
    },
  }, async ({ open }) => {
    const { client } = await open();
    await client.write(Buffer.concat([
      encodeFrame(Op.Binary, new Uint8Array([1, 2]), { fin: false }),
      encodeFrame(Op.Continuation, new Uint8Array(0), { fin: false }),
      encodeFrame(Op.Ping, ""),
      encodeFrame(Op.Continuation, new Uint8Array([3])),
    ]));
    const pong = await client.nextFrame();
    assert.equal(pong.opcode, Op.Pong);
    assert.equal(pong.payload.length, 0);
    const echoed = await client.nextFrame();
    assert.equal(echoed.opcode, Op.Binary);
    assert.deepEqual([...echoed.payload], [1, 2, 3]);
    assert.deepEqual([...(await messages.next("the message") as Uint8Array)], [1, 2, 3]);
  });
});

test("ping/pong: the handlers see the payloads; a pong answers each ping", async () => {
  const pings = new Queue<string>();
  const pongs = new Queue<string>();
  await withServer({
    ping(_ws, data) {
      pings.push(text(data));
    },
    pong(_ws, data) {
      pongs.push(text(data));
    },
  }, async ({ open }) => {
    const { client } = await open();
    await client.sendFrame(Op.Ping, "hello");
    const pong = await client.nextFrame();
    assert.equal(pong.opcode, Op.Pong);
    assert.equal(text(pong.payload), "hello");
    assert.equal(await pings.next("the ping handler"), "hello");
    // An unsolicited pong is a heartbeat: the handler sees it, nothing is answered.
    await client.sendFrame(Op.Pong, "abc");
    assert.equal(await pongs.next("the pong handler"), "abc");
    // A maximal control payload (125 bytes) is answered in full.
    const big = "x".repeat(125);
    await client.sendFrame(Op.Ping, big);
    const bigPong = await client.nextFrame();
    assert.equal(bigPong.opcode, Op.Pong);
    assert.equal(text(bigPong.payload), big);
  });
});

test("ping/pong: ws.ping() reaches the client and its pong reaches the handler", async () => {
  const pongs = new Queue<string>();
  await withServer({
    open(ws) {
      ws.ping("x");
    },
    pong(_ws, data) {
      pongs.push(text(data));
    },
  }, async ({ open }) => {
    const { client } = await open();
    const ping = await client.nextFrame();
    assert.equal(ping.opcode, Op.Ping);
    assert.equal(ping.fin, true);
    assert.equal(text(ping.payload), "x");
    await client.sendFrame(Op.Pong, ping.payload);
    assert.equal(await pongs.next("the pong handler"), "x");
  });
});

test("burst: 1,000 messages sent in one loop in open arrive all, in order", async () => {
  const count = 1000;
  await withServer({
    open(ws) {
      for (let i = 0; i < count; i++) ws.send(`m${i}`);
    },
  }, async ({ open }) => {
    const { client } = await open();
    for (let i = 0; i < count; i++) {
      const frame = await client.nextFrame();
      assert.equal(frame.opcode, Op.Text);
      assert.equal(frame.fin, true);
      assert.equal(text(frame.payload), `m${i}`);
    }
    // Nothing more than the 1,000 messages: a ping round trip comes back next.
    await client.sendFrame(Op.Ping, "end");
    const pong = await client.nextFrame();
    assert.equal(pong.opcode, Op.Pong);
    assert.equal(text(pong.payload), "end");
  });
});
