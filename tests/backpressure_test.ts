/**
 * End to end: outbound backpressure against a client that stops reading: send statuses, the
 * drop and close policies, memory held to the cap, pings and pongs ahead of backed-up data,
 * drain and flushed().
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { SendStatus, type ServerWebSocket } from "../mod.ts";
import { Op, parseClose, type RawClient } from "./_client.ts";
import { deferred, Queue, withServer } from "./_harness.ts";

const SIZE = 64 * 1024;
const CAP = 1024 * 1024;

/** A 64 KiB message whose first 4 bytes carry its sequence number. */
function message(seq: number): Uint8Array {
  const data = new Uint8Array(SIZE);
  new DataView(data.buffer).setUint32(0, seq);
  return data;
}

function seqOf(payload: Uint8Array): number {
  return new DataView(payload.buffer, payload.byteOffset).getUint32(0);
}

const tick = () => new Promise((resolve) => setTimeout(resolve, 0));

/** Sends one message per tick until one is dropped (or 2,000 were sent). */
async function flood(ws: ServerWebSocket<undefined>) {
  const statuses: number[] = [];
  let maxBuffered = 0;
  for (let seq = 0; seq < 2000; seq++) {
    if (ws.readyState !== 1) break;
    const status = ws.send(message(seq));
    statuses.push(status);
    maxBuffered = Math.max(maxBuffered, ws.bufferedAmount);
    if (status === SendStatus.Dropped) break;
    await tick();
  }
  return { statuses, maxBuffered };
}

async function readData(client: RawClient, count: number): Promise<number[]> {
  const seqs: number[] = [];
  while (seqs.length < count) {
    const frame = await client.nextFrame(10_000);
    if (frame.opcode === Op.Binary) seqs.push(seqOf(frame.payload));
  }
  return seqs;
}

test("backpressure: a client that stops reading gets Backpressure, then Dropped, memory capped", async () => {
  const flooded = deferred<Awaited<ReturnType<typeof flood>>>();
  const drains = new Queue<void>();
  await withServer({
    maxBackpressure: CAP,
    message(ws, data) {
      if (data === "go") flood(ws).then(flooded.resolve);
      else ws.send(data);
    },
    drain() {
      drains.push();
    },
  }, async ({ open }) => {
    const { client } = await open();
    const other = (await open()).client;
    client.socket.pause();
    await client.sendFrame(Op.Text, "go");
    // Another client is not slowed down by the one that stopped reading.
    for (let i = 0; i < 20; i++) {
      await other.sendFrame(Op.Text, `echo ${i}`);
      const frame = await other.nextFrame(2000);
      assert.equal(new TextDecoder().decode(frame.payload), `echo ${i}`);
    }
    const { statuses, maxBuffered } = await flooded.promise;
    assert.equal(statuses.at(-1), SendStatus.Dropped, "the flood should end in a drop");
    assert.ok(statuses.includes(SendStatus.Backpressure), "backpressure before the drop");
    // The cap holds: at most one message over it is ever queued.
    assert.ok(maxBuffered <= CAP + 2 * SIZE, `${maxBuffered} bytes queued, cap ${CAP}`);
    client.socket.resume();
    const accepted = statuses.length - 1;
    assert.deepEqual(await readData(client, accepted), [...Array(accepted).keys()]);
    await drains.next("the drain handler");
  });
});

test("backpressure: the close policy closes the slow reader with 1008 after its data", async () => {
  const flooded = deferred<Awaited<ReturnType<typeof flood>>>();
  await withServer({
    maxBackpressure: CAP,
    backpressurePolicy: "close",
    message(ws) {
      flood(ws).then(flooded.resolve);
    },
  }, async ({ open }) => {
    const { client } = await open();
    client.socket.pause();
    await client.sendFrame(Op.Text, "go");
    const { statuses } = await flooded.promise;
    assert.equal(statuses.at(-1), SendStatus.Dropped);
    client.socket.resume();
    const accepted = statuses.length - 1;
    assert.deepEqual(await readData(client, accepted), [...Array(accepted).keys()]);
    const close = await client.nextFrame(10_000);
    assert.equal(close.opcode, Op.Close);
    assert.deepEqual(parseClose(close), { code: 1008, reason: "Backpressure limit" });
  });
});

test("backpressure: a pong overtakes data backed up behind a slow reader", async () => {
  const backedUp = deferred<number>();
  await withServer({
    maxBackpressure: 64 * CAP,
    // Reading goes on above the backlog, so the ping is read while the data is backed up.
    readPause: false,
    async message(ws) {
      // Send until well backed up (several chunks queued in the transport), then stop.
      let seq = 0;
      while (ws.bufferedAmount < 2 * CAP && seq < 4000) {
        ws.send(message(seq++));
        await tick();
      }
      backedUp.resolve(seq);
    },
  }, async ({ open }) => {
    const { client } = await open();
    client.socket.pause();
    await client.sendFrame(Op.Text, "go");
    const sent = await backedUp.promise;
    await client.sendFrame(Op.Ping, "are you there");
    await new Promise((resolve) => setTimeout(resolve, 100)); // let the server read the ping
    client.socket.resume();
    let data = 0;
    let pongAt = -1;
    while (data < sent) {
      const frame = await client.nextFrame(10_000);
      if (frame.opcode === Op.Pong) pongAt = data;
      else if (frame.opcode === Op.Binary) data++;
    }
    assert.ok(pongAt >= 0, "the pong must arrive");
    assert.ok(
      pongAt < sent - 8,
      `the pong came after ${pongAt} of ${sent} data messages: it should overtake the backlog`,
    );
  });
});

test("backpressure: a producer that awaits flushed() loses nothing", async () => {
  const done = deferred<number[]>();
  const COUNT = 300;
  await withServer({
    maxBackpressure: CAP,
    async open(ws) {
      const statuses: number[] = [];
      for (let seq = 0; seq < COUNT; seq++) {
        const status = ws.send(message(seq));
        statuses.push(status);
        if (status !== SendStatus.Sent) await ws.flushed();
      }
      done.resolve(statuses);
    },
  }, async ({ open }) => {
    const { client } = await open();
    assert.deepEqual(await readData(client, COUNT), [...Array(COUNT).keys()]);
    const statuses = await done.promise;
    assert.ok(!statuses.includes(SendStatus.Dropped), "nothing dropped");
  });
});

test("flow control: pause() holds messages back until resume(), in order", async () => {
  const messages = new Queue<string>();
  const paused = deferred<ServerWebSocket<undefined>>();
  await withServer({
    message(ws, data) {
      messages.push(String(data));
      if (data === "first") {
        ws.pause();
        paused.resolve(ws);
      }
    },
  }, async ({ open }) => {
    const { client } = await open();
    await client.sendFrame(Op.Text, "first");
    const ws = await paused.promise;
    assert.equal(ws.isPaused, true);
    for (const word of ["second", "third"]) await client.sendFrame(Op.Text, word);
    assert.equal(await messages.next("the first message"), "first");
    await new Promise((resolve) => setTimeout(resolve, 150));
    assert.deepEqual(messages.items, ["first"], "nothing more is delivered while paused");
    ws.resume();
    assert.equal(ws.isPaused, false);
    assert.equal(await messages.next("the second message"), "second");
    assert.equal(await messages.next("the third message"), "third");
  });
});
