/**
 * End to end: one client's flood costs only that client. A burst of 100,000 pings in one write
 * leaves other clients' echoes and fresh handshakes served within a second; its pongs come
 * back in order (coalesced, RFC 6455 §5.5.3, never reordered); by default the control-frame
 * limit (`controlFrameLimit`) fails the flooder with 1008. A burst of data messages is decoded
 * in slices and delivered in order, a pause in the middle included.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { type ServeOptions, type ServerWebSocket, WebSocketError } from "../mod.ts";
import { encodeFrame, Op, parseClose, type RawClient, text } from "./_client.ts";
import { assertServeThrows, type Harness, Queue, sleep, withServer } from "./_harness.ts";

const PINGS = 100_000;
/** What "served during the flood" means: an echo or a handshake within this (ms). */
const SERVED_WITHIN = 1000;
const MASK = new Uint8Array([0x1f, 0x2e, 0x3d, 0x4c]);

/** `count` masked pings whose 4-byte payloads are the counters 0 … count − 1, back to back. */
function pingFlood(count: number): Uint8Array {
  const one = encodeFrame(Op.Ping, new Uint8Array(4), { mask: MASK });
  const all = new Uint8Array(count * one.length);
  for (let i = 0; i < count; i++) {
    const at = i * one.length;
    all.set(one.subarray(0, 6), at);
    for (let b = 0; b < 4; b++) all[at + 6 + b] = ((i >>> (24 - 8 * b)) & 0xff) ^ MASK[b];
  }
  return all;
}

const counter = (payload: Uint8Array) =>
  new DataView(payload.buffer, payload.byteOffset, payload.length).getUint32(0);

/**
 * Reads the flooder's frames until a Close frame or the pong for `last`, in place: the server
 * shares this process, and RawClient's copy of each of up to 100,000 frames would cost the
 * others more than the server does. Server frames are unmasked, and short here.
 */
function readPongs(
  client: RawClient,
  last: number,
): Promise<{ counters: number[]; close: { code: number; reason: string } | undefined }> {
  const socket = client.socket;
  socket.removeAllListeners("data");
  const counters: number[] = [];
  let carry = new Uint8Array(0);
  return new Promise((resolve, reject) => {
    const finish = (close?: { code: number; reason: string }) => {
      clearTimeout(timer);
      socket.off("data", onData);
      resolve({ counters, close });
    };
    const timer = setTimeout(() => {
      socket.off("data", onData);
      reject(new Error(`no pong for ${last} and no Close frame; ${counters.length} pongs`));
    }, 8000);
    const onData = (chunk: Uint8Array) => {
      const bytes = carry.length === 0 ? chunk : Buffer.concat([carry, chunk]);
      let at = 0;
      while (bytes.length - at >= 2) {
        const opcode = bytes[at] & 0x0f;
        const length = bytes[at + 1];
        if (length > 125) return reject(new Error(`an unexpected ${length}-byte frame`));
        if (bytes.length - at < 2 + length) break;
        const payload = bytes.subarray(at + 2, at + 2 + length);
        at += 2 + length;
        if (opcode === Op.Close) {
          return finish({ code: (payload[0] << 8) | payload[1], reason: text(payload.slice(2)) });
        }
        if (opcode !== Op.Pong || length !== 4) {
          return reject(new Error(`an unexpected frame: opcode ${opcode}, ${length} bytes`));
        }
        const value = counter(payload);
        counters.push(value);
        if (value === last) return finish();
      }
      carry = bytes.slice(at);
    };
    socket.on("data", onData);
  });
}

function assertIncreasing(counters: number[]): void {
  for (let i = 1; i < counters.length; i++) {
    if (counters[i] <= counters[i - 1]) {
      assert.fail(`pong ${counters[i]} came after pong ${counters[i - 1]}: out of order`);
    }
  }
}

/**
 * While `running()`, two clients each send a message every 100 ms and wait for its echo, and
 * a fresh client opens a WebSocket every 500 ms; returns every round trip and handshake time.
 */
function bystanders(harness: Harness<undefined>, running: () => boolean) {
  const echoes: number[] = [];
  const handshakes: number[] = [];
  const errors: unknown[] = [];
  const echo = async (name: string) => {
    const { client } = await harness.open();
    for (let i = 0; running(); i++) {
      const started = performance.now();
      await client.sendFrame(Op.Text, `${name}${i}`);
      const frame = await client.nextFrame(SERVED_WITHIN + 1000);
      echoes.push(performance.now() - started);
      assert.equal(text(frame.payload), `${name}${i}`);
      await sleep(Math.max(0, 100 - (performance.now() - started)));
    }
  };
  const fresh = async () => {
    while (running()) {
      const started = performance.now();
      const { client } = await harness.open();
      handshakes.push(performance.now() - started);
      client.destroy();
      await sleep(Math.max(0, 500 - (performance.now() - started)));
    }
  };
  const done = Promise.all(
    [echo("a"), echo("b"), fresh()].map((loop) => loop.catch((error) => errors.push(error))),
  );
  return { echoes, handshakes, errors, done };
}

test("fairness: a burst of 100,000 pings leaves other clients served within 1 s; its pongs come in order, the last one included", async () => {
  await withServer({
    controlFrameLimit: false,
    heartbeat: false,
    message(ws, data) {
      ws.send(data);
    },
  }, async (harness) => {
    const flooder = (await harness.open()).client;
    const flood = pingFlood(PINGS);
    let running = true;
    const started = performance.now();
    const others = bystanders(harness, () => running);
    const pongs = readPongs(flooder, PINGS - 1);
    flooder.write(flood).catch(() => {});
    const { counters, close } = await pongs;
    assert.equal(close, undefined, "the flooder is not closed with the limit off");
    assert.equal(counters.at(-1), PINGS - 1, "the last ping got its pong");
    assertIncreasing(counters);
    // Keep the others going for a while after the flood too.
    await sleep(Math.max(0, 1500 - (performance.now() - started)));
    running = false;
    await others.done;
    assert.deepEqual(others.errors, []);
    assert.ok(others.echoes.length >= 10, `${others.echoes.length} echoes`);
    assert.ok(others.handshakes.length >= 2, `${others.handshakes.length} handshakes`);
    const slowEcho = Math.max(...others.echoes);
    const slowHandshake = Math.max(...others.handshakes);
    assert.ok(slowEcho <= SERVED_WITHIN, `an echo took ${slowEcho.toFixed(0)} ms`);
    assert.ok(slowHandshake <= SERVED_WITHIN, `a handshake took ${slowHandshake.toFixed(0)} ms`);
  });
});

test("fairness: by default a burst of 100,000 pings fails the flooder with 1008 after 1,000", async () => {
  const errors = new Queue<unknown>();
  const closes = new Queue<number>();
  await withServer({
    heartbeat: false,
    message(ws, data) {
      ws.send(data);
    },
    error(error) {
      errors.push(error);
    },
    close(_ws, code) {
      closes.push(code);
    },
  }, async ({ open, server }) => {
    const flooder = (await open()).client;
    flooder.write(pingFlood(PINGS)).catch(() => {});
    const { counters, close } = await readPongs(flooder, PINGS - 1);
    assert.ok(close !== undefined, "a Close frame came");
    const message = "Too many pings and pongs: more than 1000 per second";
    assert.deepEqual(close, { code: 1008, reason: message });
    assert.ok(counters.length >= 1, "pongs before the Close");
    // The bucket refills while the flood is read (1 per ms): far from the 100,000, though.
    assert.ok(counters.at(-1)! < 2000, `a pong for ping ${counters.at(-1)}`);
    assertIncreasing(counters);
    await flooder.waitClosed();
    const error = await errors.next("the error");
    assert.ok(error instanceof WebSocketError);
    assert.equal(error.code, "WS_ERR_CONTROL_FLOOD");
    assert.equal(error.closeCode, 1008);
    assert.equal(error.message, message);
    assert.equal(await closes.next("the close"), 1008);
    assert.equal(server.stats().controlFloodCloses, 1);
    assert.match(server.metrics(), /^sluice_control_flood_closes_total 1$/m);
    // The server is fine.
    const { client } = await open();
    await client.sendFrame(Op.Text, "still here");
    assert.equal(text((await client.nextFrame()).payload), "still here");
  });
});

test("control-frame limit: pongs count too; the frame over rate × burst fails the connection", async () => {
  const errors = new Queue<unknown>();
  await withServer({
    heartbeat: false,
    controlFrameLimit: { rate: 5, burst: 2 },
    error(error) {
      errors.push(error);
    },
  }, async ({ open }) => {
    const { client } = await open();
    const frames = Array.from({ length: 10 }, () => encodeFrame(Op.Pong, "unsolicited"));
    await client.write(Buffer.concat([...frames, encodeFrame(Op.Ping, "eleventh")]));
    // The eleventh is answered (the pong goes before the count), then the Close.
    const pong = await client.nextFrame();
    assert.equal(pong.opcode, Op.Pong);
    assert.equal(text(pong.payload), "eleventh");
    assert.deepEqual(parseClose(await client.nextFrame()), {
      code: 1008,
      reason: "Too many pings and pongs: more than 5 per second",
    });
    const error = await errors.next("the error");
    assert.ok(error instanceof WebSocketError);
    assert.equal(error.code, "WS_ERR_CONTROL_FLOOD");
    await client.waitClosed();
  });
});

test("control-frame limit: a client within the rate is never closed; the bucket refills", async () => {
  const sockets = new Queue<ServerWebSocket<undefined>>();
  await withServer({
    heartbeat: false,
    controlFrameLimit: { rate: 20, burst: 0.5 },
    open(ws) {
      sockets.push(ws);
    },
  }, async ({ open }) => {
    const { client } = await open();
    const ws = await sockets.next("open");
    const pings = (n: number, tag: string) =>
      Buffer.concat(Array.from({ length: n }, (_, i) => encodeFrame(Op.Ping, `${tag}${i}`)));
    const expectPongs = async (n: number, tag: string) => {
      for (let i = 0; i < n; i++) {
        const frame = await client.nextFrame();
        assert.equal(frame.opcode, Op.Pong);
        assert.equal(text(frame.payload), `${tag}${i}`);
      }
    };
    // A bucket of 20 × 0.5 = 10.
    await client.write(pings(10, "a"));
    await expectPongs(10, "a");
    // 300 ms refill 6.
    await sleep(300);
    await client.write(pings(5, "b"));
    await expectPongs(5, "b");
    assert.equal(ws.readyState, 1);
    await client.write(pings(20, "c"));
    let frame = await client.nextFrame();
    while (frame.opcode === Op.Pong) frame = await client.nextFrame();
    assert.equal(parseClose(frame).code, 1008);
  });
});

test("control-frame limit: invalid options throw RangeError from serve()", async () => {
  const cases: Array<[unknown, string]> = [
    [{ rate: 0 }, "Cannot serve: controlFrameLimit.rate must be a positive number, got 0"],
    [{ rate: -1 }, "Cannot serve: controlFrameLimit.rate must be a positive number, got -1"],
    [{ rate: NaN }, "Cannot serve: controlFrameLimit.rate must be a positive number, got NaN"],
    [{ burst: 0 }, "Cannot serve: controlFrameLimit.burst must be a positive number, got 0"],
    [
      { rate: 1, burst: 0.5 },
      "Cannot serve: controlFrameLimit.rate × controlFrameLimit.burst must be at least 1 frame",
    ],
    [true, "Cannot serve: controlFrameLimit must be false or { rate, burst }, got true"],
    [1000, "Cannot serve: controlFrameLimit must be false or { rate, burst }, got 1000"],
  ];
  for (const [controlFrameLimit, message] of cases) {
    await assertServeThrows(
      { controlFrameLimit: controlFrameLimit as ServeOptions["controlFrameLimit"] },
      { name: "RangeError", message },
    );
  }
});

test("fairness: a burst of 20,000 messages is decoded in slices, in order, a pause in the middle included", async () => {
  const COUNT = 20_000;
  await withServer({
    heartbeat: false,
    message(ws, data) {
      ws.send(data);
      if (data === "f5000") {
        // Application flow control in the middle of a slice: nothing is lost or reordered.
        ws.pause();
        setTimeout(() => ws.resume(), 50);
      }
    },
  }, async ({ open }) => {
    const flooder = (await open()).client;
    const other = (await open()).client;
    flooder.write(
      Buffer.concat(Array.from({ length: COUNT }, (_, i) => encodeFrame(Op.Text, `f${i}`))),
    ).catch(() => {});
    const started = performance.now();
    await other.sendFrame(Op.Text, "other");
    assert.equal(text((await other.nextFrame()).payload), "other");
    const took = performance.now() - started;
    assert.ok(took <= SERVED_WITHIN, `the other client's echo took ${took.toFixed(0)} ms`);
    for (let i = 0; i < COUNT; i++) {
      const frame = await flooder.nextFrame();
      if (text(frame.payload) !== `f${i}`) {
        assert.fail(`echo ${i} was ${text(frame.payload)}`);
      }
    }
  });
});
