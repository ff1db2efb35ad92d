/**
 * End to end: inbound flow follows outbound backpressure. A client that sends without reading
 * the answers is no longer read once its queue passes `readPause.highWaterMark` (TCP holds it
 * back), and is read again once it reads; the server-wide `maxTotalBackpressure` applies the
 * backpressure policy to the connections holding the most; and the options are checked.
 *
 * Loopback's kernel buffers take several MiB of a connection that does not read before the
 * server's own queue grows, so the floods here are a few MiB.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { SendStatus, type Server, type ServerWebSocket } from "../mod.ts";
import { encodeFrame, Op, parseClose, type RawClient, within } from "./_client.ts";
import {
  assertServeThrows,
  deferred,
  pattern,
  Queue,
  sleep,
  waitFor,
  withServer,
} from "./_harness.ts";

const SIZE = 64 * 1024;
const COUNT = 128; // 8 MiB
const HIGH = 256 * 1024;

/** COUNT messages of SIZE bytes, cut from one pattern: message i is bytes [i·SIZE, (i+1)·SIZE). */
const DATA = pattern(SIZE * COUNT);
const message = (i: number) => DATA.subarray(i * SIZE, (i + 1) * SIZE);

/** Writes every message as masked binary frames, without waiting for the socket to take them. */
function flood(client: RawClient): void {
  const frames = Array.from({ length: COUNT }, (_, i) => encodeFrame(Op.Binary, message(i)));
  client.socket.write(Buffer.concat(frames));
}

/** Reads `count` binary echoes and checks each against the message sent, in order. */
async function readEchoes(client: RawClient, count = COUNT): Promise<void> {
  for (let i = 0; i < count;) {
    const frame = await client.nextFrame(10_000);
    if (frame.opcode === Op.Ping) continue; // a heartbeat
    assert.equal(frame.opcode, Op.Binary, `frame ${i}: opcode ${frame.opcode}`);
    assert.ok(Buffer.from(frame.payload).equals(message(i)), `echo ${i} is not message ${i}`);
    i++;
  }
}

/** An echo handler that stops echoing once the connection is closing. */
function echo(ws: ServerWebSocket<undefined>, data: string | Uint8Array): void {
  if (ws.readyState === 1) ws.send(data);
}

/** Waits until the server has read nothing more for 300 ms; returns what it had read. */
async function stalled(server: Server<undefined>): Promise<number> {
  let last = -1;
  for (;;) {
    const now = server.stats().bytesIn;
    if (now === last) return now;
    last = now;
    await sleep(300);
  }
}

test("flow: a client that does not read is not read above the high-water mark; then every echo comes, in order", async () => {
  await withServer({ readPause: { highWaterMark: HIGH }, message: echo }, async (h) => {
    const { client } = await h.open();
    client.socket.pause();
    flood(client);
    await waitFor(() => h.server.stats().readPaused === 1, "reading to pause");
    const read = await stalled(h.server);
    const stats = h.server.stats();
    assert.ok(read < COUNT * (SIZE + 14), `the server read ${read} bytes: all of them`);
    assert.equal(stats.readPaused, 1);
    // Paused above the mark by at most what one read of the socket brought; the kernel may
    // have taken some since, but not all (reading would have resumed).
    assert.ok(stats.queuedBytes > 0, `${stats.queuedBytes} bytes queued`);
    assert.ok(stats.queuedBytes <= HIGH + 512 * 1024, `${stats.queuedBytes} bytes queued`);
    assert.match(h.server.metrics(), /^sluice_read_paused_connections 1$/m);
    assert.match(h.server.metrics(), new RegExp(`^sluice_queued_bytes ${stats.queuedBytes}$`, "m"));
    client.socket.resume();
    await readEchoes(client);
    const after = h.server.stats();
    assert.equal(after.messagesIn, COUNT);
    assert.equal(after.droppedMessages, 0);
    await waitFor(() => h.server.stats().readPaused === 0, "reading to resume");
    assert.equal(h.server.stats().queuedBytes, 0);
  });
});

test("flow: with a low-water mark, reading resumes before the queue is empty", async () => {
  await withServer({
    readPause: { highWaterMark: HIGH, lowWaterMark: HIGH / 2 },
    message: echo,
  }, async (h) => {
    const { client } = await h.open();
    client.socket.pause();
    flood(client);
    await waitFor(() => h.server.stats().readPaused === 1, "reading to pause");
    await stalled(h.server);
    client.socket.resume();
    await readEchoes(client);
    assert.equal(h.server.stats().droppedMessages, 0);
  });
});

test("flow: readPause false reads everything and queues every echo, as before", async () => {
  const received = new Queue<number>();
  await withServer({
    readPause: false,
    message(ws, data) {
      echo(ws, data);
      received.push(received.items.length);
    },
  }, async (h) => {
    const { client } = await h.open();
    client.socket.pause();
    flood(client);
    await waitFor(() => received.items.length === COUNT, "every message to be read", 10_000);
    const stats = h.server.stats();
    assert.equal(stats.readPaused, 0);
    // What the kernel did not take waits in the server: far above the mark the default uses.
    assert.ok(stats.queuedBytes > 2 * 1024 * 1024, `${stats.queuedBytes} bytes queued`);
    client.socket.resume();
    await readEchoes(client);
  });
});

test("flow: a held connection's heartbeat waits: it is not dropped for not answering", async () => {
  const closes = new Queue<number>();
  await withServer({
    readPause: { highWaterMark: HIGH },
    heartbeat: { interval: 50, timeout: 100 },
    idleTimeout: 0,
    message: echo,
    close: (_ws, code) => closes.push(code),
  }, async (h) => {
    const { client } = await h.open();
    client.socket.pause();
    flood(client);
    await waitFor(() => h.server.stats().readPaused === 1, "reading to pause");
    await sleep(600); // several heartbeat intervals and timeouts
    assert.equal(h.server.stats().readPaused, 1);
    assert.deepEqual(closes.items, []);
    client.socket.resume();
    await readEchoes(client);
    assert.deepEqual(closes.items, []);
  });
});

test("flow: a held connection's Close frame is answered once it reads", async () => {
  const closes = new Queue<number>();
  await withServer({
    readPause: { highWaterMark: HIGH },
    message: echo,
    close: (_ws, code) => closes.push(code),
  }, async (h) => {
    const { client } = await h.open();
    client.socket.pause();
    flood(client);
    client.socket.write(encodeFrame(Op.Close, new Uint8Array([0x03, 0xe8])));
    await waitFor(() => h.server.stats().readPaused === 1, "reading to pause");
    client.socket.resume();
    await readEchoes(client);
    assert.deepEqual(parseClose(await client.nextFrame()), { code: 1000, reason: "" });
    assert.equal(await closes.next("the close handler"), 1000);
  });
});

test("flow: shutdown closes a held connection: its echoes, then Close 1001", async () => {
  await withServer({ readPause: { highWaterMark: HIGH }, message: echo }, async (h) => {
    const { client } = await h.open();
    client.socket.pause();
    flood(client);
    await waitFor(() => h.server.stats().readPaused === 1, "reading to pause");
    const read = h.server.stats().messagesIn;
    const done = h.server.shutdown({ timeout: 5000 });
    client.socket.resume();
    // The echoes queued before the Close frame come first; what was read after it is not
    // echoed (the connection is closing).
    await readEchoes(client, read);
    assert.deepEqual(parseClose(await client.nextFrame()), { code: 1001, reason: "" });
    await client.sendClose(1001);
    await within(done, "shutdown");
  });
});

test("flow: over maxTotalBackpressure the policy drops for the heaviest connection, not a light one", async () => {
  const BUDGET = 1024 * 1024;
  const heavyDone = deferred<{ dropped: boolean; buffered: number; sent: number }>();
  const lightDone = deferred<number[]>();
  let heavySocket: ServerWebSocket<string> | undefined;
  await withServer<string>({
    maxTotalBackpressure: BUDGET,
    maxBackpressure: 64 * 1024 * 1024,
    upgrade: (request) => ({ data: request.pathname }),
    async message(ws) {
      if (ws.data === "/heavy") {
        heavySocket = ws;
        // Sends until one is dropped (or 8 MiB, what loopback may buffer and more).
        for (let i = 0; i < COUNT; i++) {
          const status = ws.send(message(i));
          if (status === SendStatus.Dropped) {
            heavyDone.resolve({ dropped: true, buffered: ws.bufferedAmount, sent: i });
            return;
          }
          await sleep(0);
        }
        heavyDone.resolve({ dropped: false, buffered: ws.bufferedAmount, sent: COUNT });
      } else {
        // A light connection sends a little while the total is over the budget.
        const statuses: number[] = [];
        for (let i = 0; i < 16; i++) statuses.push(ws.send(message(i).subarray(0, 1024)));
        lightDone.resolve(statuses);
      }
    },
  }, async (h) => {
    const heavy = (await h.open({ path: "/heavy" })).client;
    const light = (await h.open({ path: "/light" })).client;
    heavy.socket.pause();
    light.socket.pause();
    await heavy.sendFrame(Op.Text, "go");
    const result = await heavyDone.promise;
    assert.ok(result.dropped, `no send was dropped after ${result.sent} messages`);
    assert.ok(result.buffered <= 64 * 1024 * 1024, "dropped below maxBackpressure: the budget");
    assert.ok(result.buffered > BUDGET / 2, `${result.buffered} bytes queued for the heaviest`);
    assert.ok(h.server.stats().queuedBytes > BUDGET);
    await light.sendFrame(Op.Text, "go");
    const statuses = await lightDone.promise;
    assert.ok(!statuses.includes(SendStatus.Dropped), `light: ${statuses}`);
    assert.equal(heavySocket!.droppedMessages, 1);
    assert.equal(h.server.stats().droppedMessages, 1);
    // Everything accepted arrives: the heavy connection's messages, in order, then the light's.
    heavy.socket.resume();
    light.socket.resume();
    await readEchoes(heavy, result.sent);
    for (let i = 0; i < 16; i++) {
      const frame = await light.nextFrame();
      assert.ok(Buffer.from(frame.payload).equals(message(i).subarray(0, 1024)));
    }
  });
});

test("flow: under the close policy the budget closes the heaviest connection with 1008", async () => {
  const closes = new Queue<number>();
  const dropped = deferred();
  await withServer({
    maxTotalBackpressure: 1024 * 1024,
    backpressurePolicy: "close",
    async message(ws) {
      for (let i = 0; i < COUNT && ws.readyState === 1; i++) {
        if (ws.send(message(i)) === SendStatus.Dropped) break;
        await sleep(0);
      }
      dropped.resolve();
    },
    close: (_ws, code) => closes.push(code),
  }, async (h) => {
    const heavy = (await h.open()).client;
    heavy.socket.pause();
    await heavy.sendFrame(Op.Text, "go");
    await dropped.promise;
    heavy.socket.resume();
    let frame = await heavy.nextFrame(10_000);
    while (frame.opcode === Op.Binary) frame = await heavy.nextFrame(10_000);
    assert.deepEqual(parseClose(frame), { code: 1008, reason: "Backpressure limit" });
    await heavy.sendClose(1008);
    assert.equal(await closes.next("the close handler"), 1008);
    assert.equal(h.server.stats().backpressureCloses, 1);
  });
});

test("flow: readPause and maxTotalBackpressure are checked", async () => {
  const cases: Array<[Record<string, unknown>, string, string]> = [
    [
      { readPause: { highWaterMark: 1024, lowWaterMark: 2048 } },
      "RangeError",
      "Cannot serve: readPause.lowWaterMark must not be above readPause.highWaterMark, got 2048 > 1024",
    ],
    [
      { readPause: { lowWaterMark: 512 * 1024 } },
      "RangeError",
      "Cannot serve: readPause.lowWaterMark must not be above readPause.highWaterMark, got 524288 > 262144",
    ],
    [
      { readPause: { highWaterMark: 0 } },
      "RangeError",
      "Cannot serve: readPause.highWaterMark must be a positive number, got 0",
    ],
    [
      { readPause: { lowWaterMark: -1 } },
      "RangeError",
      "Cannot serve: readPause.lowWaterMark must be 0 or a positive number, got -1",
    ],
    [
      { readPause: true },
      "TypeError",
      "Cannot serve: readPause must be an object or false, got true",
    ],
    [
      { maxTotalBackpressure: 0 },
      "RangeError",
      "Cannot serve: maxTotalBackpressure must be a positive number, got 0",
    ],
    [
      { maxTotalBackpressure: Number.NaN },
      "RangeError",
      "Cannot serve: maxTotalBackpressure must be a positive number, got NaN",
    ],
  ];
  for (const [options, name, message] of cases) {
    await assertServeThrows(options, { name, message });
  }
});

test("flow: ws.pause() in open holds reading even when the client sent ahead while the hook ran", async () => {
  const hook = deferred();
  const paused = deferred<ServerWebSocket<undefined>>();
  let delivered = 0;
  await withServer({
    async upgrade() {
      await hook.promise;
    },
    open(ws) {
      ws.pause();
      paused.resolve(ws);
    },
    message() {
      delivered++;
    },
  }, async (h) => {
    // Past the bytes a client may send ahead of the hook's answer, so reading was paused then.
    const ahead = Buffer.concat([
      encodeFrame(Op.Binary, message(0)),
      encodeFrame(Op.Binary, message(1)),
    ]);
    const client = await h.connect();
    await client.write(Buffer.from(
      "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
      "latin1",
    ));
    await client.write(ahead);
    await sleep(100);
    hook.resolve();
    const ws = await within(paused.promise, "open");
    flood(client);
    const read = await stalled(h.server);
    // Paused by the application: what it sent stays in TCP, not in the server.
    assert.ok(read < (COUNT * SIZE) / 2, `${read} bytes read while paused`);
    assert.equal(delivered, 0);
    ws.resume();
    await waitFor(() => delivered === COUNT + 2, "every message after resume", 10_000);
  });
});
