/**
 * End to end: `server.stats()` and `server.metrics()` after real traffic. Messages and frame
 * bytes each way (exact, from the frames on the wire), connection and handshake gauges,
 * refusals by status, topics, traffic of closed connections kept in the totals, compression,
 * backpressure counters, the heartbeat round-trip histogram, and the Prometheus text showing
 * the same numbers.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { clientDeflate, clientInflate } from "../lib/protocol/extensions/_deflate_test_util.ts";
import { SendStatus, type ServerStats, type ServerWebSocket } from "../mod.ts";
import {
  encodeFrame,
  type Frame,
  Op,
  parseClose,
  type RawClient,
  text,
  upgradeRequest,
} from "./_client.ts";
import { deferred, type Harness, Queue, waitFor, withServer } from "./_harness.ts";

/** The size on the wire of a server frame (unmasked) with this payload length. */
function serverFrameSize(payloadLength: number): number {
  return 2 + (payloadLength < 126 ? 0 : payloadLength < 65536 ? 2 : 8) + payloadLength;
}

/** Counts what one client sent and received, frame by frame, as the wire carried it. */
class Wire {
  bytesIn = 0;
  bytesOut = 0;

  constructor(readonly client: RawClient) {}

  /** Sends a frame (masked) and counts its bytes as the server's bytesIn. */
  async send(opcode: number, payload: Uint8Array | string): Promise<void> {
    const frame = encodeFrame(opcode, payload);
    this.bytesIn += frame.length;
    await this.client.write(frame);
  }

  /** Reads a frame and counts its bytes as the server's bytesOut. */
  async next(): Promise<Frame> {
    const frame = await this.client.nextFrame();
    assert.equal(frame.masked, false);
    this.bytesOut += serverFrameSize(frame.payload.length);
    return frame;
  }
}

/** The traffic fields of a snapshot. */
function traffic(stats: ServerStats) {
  const { messagesIn, messagesOut, bytesIn, bytesOut } = stats;
  return { messagesIn, messagesOut, bytesIn, bytesOut };
}

const echo = {
  heartbeat: false as const,
  message(ws: ServerWebSocket<undefined>, data: string | Uint8Array) {
    ws.send(data);
  },
};

test("stats: messages and frame bytes each way are exact after real traffic", async () => {
  await withServer(echo, async ({ open, server }) => {
    assert.deepEqual(traffic(server.stats()), {
      messagesIn: 0,
      messagesOut: 0,
      bytesIn: 0,
      bytesOut: 0,
    });
    const wire = new Wire((await open()).client);
    const N = 10;
    for (let i = 0; i < N; i++) {
      // 20-byte text payloads: 26 bytes in (6-byte masked header), 22 out (2-byte header).
      await wire.send(Op.Text, `message number ${String(i).padStart(5, "0")}`);
      assert.equal(text((await wire.next()).payload).length, 20);
    }
    assert.deepEqual(traffic(server.stats()), {
      messagesIn: N,
      messagesOut: N,
      bytesIn: N * 26,
      bytesOut: N * 22,
    });
    // 200-byte binary payloads use the 16-bit length: 8-byte header in, 4 out.
    await wire.send(Op.Binary, new Uint8Array(200).fill(7));
    assert.equal((await wire.next()).payload.length, 200);
    assert.deepEqual(traffic(server.stats()), {
      messagesIn: N + 1,
      messagesOut: N + 1,
      bytesIn: N * 26 + 208,
      bytesOut: N * 22 + 204,
    });
    // Pings and pongs are frame bytes, not messages.
    await wire.send(Op.Ping, "ping!");
    const pong = await wire.next();
    assert.equal(pong.opcode, Op.Pong);
    const stats = server.stats();
    assert.deepEqual(traffic(stats), {
      messagesIn: N + 1,
      messagesOut: N + 1,
      bytesIn: N * 26 + 208 + 11,
      bytesOut: N * 22 + 204 + 7,
    });
    assert.equal(stats.bytesIn, wire.bytesIn);
    assert.equal(stats.bytesOut, wire.bytesOut);
  });
});

test("stats: a closed connection's traffic stays in the totals, its Close frames included", async () => {
  const closes = new Queue<number>();
  await withServer({
    ...echo,
    close(_ws, code) {
      closes.push(code);
    },
  }, async ({ open, server }) => {
    const a = new Wire((await open()).client);
    const b = new Wire((await open()).client);
    for (let i = 0; i < 3; i++) {
      await a.send(Op.Text, `a${i}`);
      await a.next();
    }
    await b.send(Op.Text, "b0");
    await b.next();
    const before = server.stats();
    assert.equal(before.messagesIn, 4);
    assert.equal(before.connections, 2);
    // a closes with a handshake: its Close frame in, the server's answer out.
    await a.send(Op.Close, new Uint8Array([0x03, 0xe8, ...new TextEncoder().encode("bye")]));
    const close = await a.next();
    assert.equal(parseClose(close).code, 1000);
    await a.client.waitClosed();
    assert.equal(await closes.next("close"), 1000);
    await waitFor(() => server.stats().connections === 1, "one connection left");
    const after = server.stats();
    assert.deepEqual(traffic(after), {
      messagesIn: 4,
      messagesOut: 4,
      bytesIn: a.bytesIn + b.bytesIn,
      bytesOut: a.bytesOut + b.bytesOut,
    });
    assert.equal(after.bytesIn, before.bytesIn + 6 + 5, "a's Close frame: 5-byte payload");
    assert.equal(after.accepted, 2);
    // b closes by dropping the TCP connection: nothing more on the wire, and nothing lost.
    b.client.destroy();
    await closes.next("close");
    await waitFor(() => {
      const stats = server.stats();
      return stats.connections === 0 && stats.handshaking === 0;
    }, "no connections left");
    assert.deepEqual(traffic(server.stats()), traffic(after));
  });
});

test("stats: accepted, connections and handshaking follow connections as they come and go", async () => {
  await withServer(echo, async ({ open, connect, server }) => {
    const first = (await open()).client;
    await open();
    let stats = server.stats();
    assert.equal(stats.accepted, 2);
    assert.equal(stats.connections, 2);
    assert.equal(stats.handshaking, 0);
    // A client half-way through its request head is handshaking.
    const slow = await connect();
    const request = upgradeRequest();
    await slow.write(request.slice(0, 30));
    await waitFor(() => server.stats().handshaking === 1, "a connection in its handshake");
    stats = server.stats();
    assert.equal(stats.connections, 2);
    assert.equal(stats.accepted, 2);
    // One closes.
    await first.sendClose(1000);
    await first.nextFrame();
    await first.waitClosed();
    await waitFor(() => server.stats().connections === 1, "one connection closed");
    assert.equal(server.stats().accepted, 2, "accepted counts handshakes ever completed");
    // The slow one finishes its handshake.
    await slow.write(request.slice(30));
    const response = await slow.response();
    assert.equal(response.status, 101);
    await waitFor(() => server.stats().connections === 2, "the slow client open");
    stats = server.stats();
    assert.equal(stats.accepted, 3);
    assert.equal(stats.handshaking, 0);
    assert.equal(server.pendingWebSockets, 2);
  });
});

/** Sends a request and waits for the response and the server's close. */
async function refused<T>(harness: Harness<T>, request: string): Promise<number> {
  const client = await harness.connect();
  await client.write(request);
  const response = await client.response();
  await client.waitClosed();
  return response.status;
}

test("stats: refusals are counted by status", async () => {
  await withServer({
    heartbeat: false,
    origins: ["https://app.example.com"],
    upgrade(request) {
      if (request.pathname === "/private") return new Response("no", { status: 401 });
    },
  }, async (harness) => {
    const { server } = harness;
    assert.equal(
      await refused(harness, upgradeRequest({ extra: ["Origin: https://x.test"] })),
      403,
    );
    assert.equal(
      await refused(harness, upgradeRequest({ extra: ["Origin: https://y.test"] })),
      403,
    );
    assert.equal(await refused(harness, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"), 426);
    assert.equal(await refused(harness, upgradeRequest().replace("GET", "POST")), 405);
    assert.equal(await refused(harness, upgradeRequest({ key: "short" })), 400);
    assert.equal(await refused(harness, upgradeRequest({ path: "/private" })), 401);
    await harness.open({ extra: ["Origin: https://app.example.com"] });
    const stats = server.stats();
    assert.deepEqual(stats.refused, { "400": 1, "401": 1, "403": 2, "405": 1, "426": 1 });
    assert.equal(stats.accepted, 1);
    await waitFor(() => server.stats().handshaking === 0, "refused connections gone");
    // The snapshot is a copy: changing it changes nothing.
    stats.refused["403"] = 99;
    assert.equal(server.stats().refused["403"], 2);
  });
});

test("stats: plain HTTP responses are counted by status apart from refused upgrade requests", async () => {
  const errors = new Queue<unknown>();
  await withServer({
    heartbeat: false,
    metricsPath: "/metrics",
    upgrade(request) {
      if (request.pathname === "/private") return new Response("no", { status: 401 });
    },
    fetch(request) {
      const path = new URL(request.url).pathname;
      if (path === "/ok") return new Response("ok");
      if (path === "/boom") throw new Error("boom");
    },
    error: (error) => errors.push(error),
  }, async (harness) => {
    const { server } = harness;
    // Each asks to close after its response, so that `refused` sees the close.
    const get = (path: string) => `GET ${path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`;
    assert.equal(await refused(harness, get("/ok")), 200);
    assert.equal(await refused(harness, get("/ok")), 200);
    assert.equal(await refused(harness, get("/missing")), 404);
    assert.equal(await refused(harness, get("/boom")), 500);
    assert.equal((await errors.next("the fetch error") as Error).message, "boom");
    assert.equal(
      await refused(
        harness,
        "POST /ok HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
      ),
      501,
    );
    assert.equal(await refused(harness, upgradeRequest({ path: "/private" })), 401);
    assert.equal(await refused(harness, upgradeRequest({ key: "short" })), 400);
    const stats = server.stats();
    assert.deepEqual(stats.httpResponses, { "200": 2, "404": 1, "500": 1, "501": 1 });
    assert.deepEqual(stats.refused, { "400": 1, "401": 1 });
    assert.equal(stats.httpRequests, 5);
    // The metrics request is plain HTTP: counted once answered, and not handshaking meanwhile.
    const client = await harness.connect();
    await client.write(get("/metrics"));
    const response = await client.response();
    assert.equal(response.status, 200);
    const metrics = new TextDecoder().decode(response.body);
    assert.match(metrics, /^sluice_handshaking 0$/m);
    assert.match(metrics, /^sluice_http_responses_total\{status="404"\} 1$/m);
    assert.match(metrics, /^sluice_http_responses_total\{status="200"\} 2$/m);
    assert.match(metrics, /^sluice_refused_total\{status="401"\} 1$/m);
    assert.doesNotMatch(metrics, /sluice_refused_total\{status="(404|500|501|200)"\}/);
    await client.waitClosed();
    assert.deepEqual(server.stats().httpResponses, { "200": 3, "404": 1, "500": 1, "501": 1 });
    // A snapshot is a copy.
    server.stats().httpResponses["200"] = 99;
    assert.equal(server.stats().httpResponses["200"], 3);
  });
});

test("stats: handshaking counts heads being read and upgrades awaiting the hook, not plain requests", async () => {
  const hook = deferred<void>();
  const answer = deferred<void>();
  const hookCalled = deferred<void>();
  const fetchCalled = deferred<void>();
  await withServer({
    heartbeat: false,
    async upgrade() {
      hookCalled.resolve();
      await hook.promise;
    },
    async fetch() {
      fetchCalled.resolve();
      await answer.promise;
      return new Response("late");
    },
  }, async ({ connect, server }) => {
    // A plain request whose answer is pending is not a handshake.
    const plain = await connect();
    await plain.write("GET /slow HTTP/1.1\r\nHost: x\r\n\r\n");
    await fetchCalled.promise;
    assert.equal(server.stats().handshaking, 0);
    // A head not yet complete is (it cannot be told from an upgrade yet).
    const partial = await connect();
    await partial.write("GET / HTTP/1.1\r\nHost: x\r\n");
    await waitFor(() => server.stats().handshaking === 1, "the partial head counted");
    // An upgrade request waiting for the hook is.
    const upgrading = await connect();
    await upgrading.write(upgradeRequest());
    await hookCalled.promise;
    assert.equal(server.stats().handshaking, 2);
    answer.resolve();
    assert.equal((await plain.response()).status, 200);
    hook.resolve();
    assert.equal((await upgrading.response()).status, 101);
    assert.equal(server.stats().handshaking, 1, "only the partial head is left");
    partial.destroy();
    await waitFor(() => server.stats().handshaking === 0, "the partial head gone");
  });
});

test("stats: a connection over maxConnections is refused with 503 and counted", async () => {
  await withServer({ ...echo, maxConnections: 1 }, async (harness) => {
    await harness.open();
    assert.equal(await refused(harness, upgradeRequest()), 503);
    assert.deepEqual(harness.server.stats().refused, { "503": 1 });
    assert.equal(harness.server.stats().connections, 1);
  });
});

test("stats: topics and subscriptions follow subscribe, unsubscribe and close", async () => {
  await withServer({
    heartbeat: false,
    message(ws, data) {
      const [verb, topic] = (data as string).split(" ");
      if (verb === "sub") ws.subscribe(topic);
      else ws.unsubscribe(topic);
      ws.send("done");
    },
  }, async ({ open, server }) => {
    const command = async (client: RawClient, line: string) => {
      await client.sendFrame(Op.Text, line);
      assert.equal(text((await client.nextFrame()).payload), "done");
    };
    const a = (await open()).client;
    const b = (await open()).client;
    await open(); // subscribes to nothing
    assert.deepEqual([server.stats().topics, server.stats().subscriptions], [0, 0]);
    await command(a, "sub news");
    await command(a, "sub sport");
    await command(b, "sub news");
    await command(b, "sub news"); // twice is once
    assert.deepEqual([server.stats().topics, server.stats().subscriptions], [2, 3]);
    await command(b, "unsub news");
    assert.deepEqual([server.stats().topics, server.stats().subscriptions], [2, 2]);
    await command(b, "sub weather");
    assert.deepEqual([server.stats().topics, server.stats().subscriptions], [3, 3]);
    // a leaves: its two topics go with it (news had only a left).
    a.destroy();
    await waitFor(() => server.stats().subscriptions === 1, "a's subscriptions gone");
    assert.deepEqual([server.stats().topics, server.stats().subscriptions], [1, 1]);
    assert.match(server.metrics(), /^sluice_topics 1$/m);
    assert.match(server.metrics(), /^sluice_subscriptions 1$/m);
  });
});

test("stats: permessage-deflate counts raw and compressed bytes each way; ratio below 1", async () => {
  const received = new Queue<string>();
  const message = "the quick brown fox jumps over the lazy dog; ".repeat(40);
  await withServer({
    heartbeat: false,
    perMessageDeflate: { threshold: 0 },
    message(ws, data) {
      received.push(data as string);
      ws.send(message);
    },
  }, async ({ open, server }) => {
    const { client, response } = await open({
      extra: ["Sec-WebSocket-Extensions: permessage-deflate"],
    });
    assert.match(response.headers.get("sec-websocket-extensions") ?? "", /^permessage-deflate/);
    assert.equal(server.stats().compressionRatio, 0, "nothing compressed yet");
    const compressed = clientDeflate(message);
    await client.sendFrame(Op.Text, compressed, { rsv: 4 });
    assert.equal(await received.next("the message"), message);
    const frame = await client.nextFrame();
    assert.equal(frame.rsv, 4, "the server compressed its message (RSV1)");
    assert.equal(new TextDecoder().decode(clientInflate(frame.payload)), message);
    const stats = server.stats();
    assert.equal(stats.rawIn, message.length);
    assert.equal(stats.compressedIn, compressed.length);
    assert.equal(stats.rawOut, message.length);
    assert.equal(stats.compressedOut, frame.payload.length);
    assert.ok(
      stats.compressionRatio > 0 && stats.compressionRatio < 1,
      `${stats.compressionRatio}`,
    );
    assert.equal(stats.compressionRatio, frame.payload.length / message.length);
    // The frame bytes are what went over the wire: compressed.
    assert.equal(stats.bytesOut, serverFrameSize(frame.payload.length));
    assert.equal(stats.bytesIn, encodeFrame(Op.Text, compressed).length);
    const metrics = server.metrics();
    assert.match(
      metrics,
      new RegExp(
        `^sluice_compression_raw_bytes_total\\{direction="out"\\} ${message.length}$`,
        "m",
      ),
    );
    assert.match(
      metrics,
      new RegExp(
        `^sluice_compression_compressed_bytes_total\\{direction="out"\\} ${frame.payload.length}$`,
        "m",
      ),
    );
  });
});

const SIZE = 64 * 1024;
const CAP = 1024 * 1024;
const tick = () => new Promise((resolve) => setTimeout(resolve, 0));

/** Sends 64 KiB messages, one per tick, to a client that does not read, until one is dropped. */
async function flood(ws: ServerWebSocket<undefined>): Promise<number[]> {
  const statuses: number[] = [];
  for (let i = 0; i < 2000 && ws.readyState === 1; i++) {
    const status = ws.send(new Uint8Array(SIZE));
    statuses.push(status);
    if (status === SendStatus.Dropped) break;
    await tick();
  }
  return statuses;
}

test("stats: backpressure events and drops against a client that stops reading", async () => {
  const flooded = deferred<{ statuses: number[]; ws: ServerWebSocket<undefined> }>();
  await withServer({
    heartbeat: false,
    maxBackpressure: CAP,
    message(ws) {
      flood(ws).then((statuses) => flooded.resolve({ statuses, ws }));
    },
  }, async ({ open, server }) => {
    const { client } = await open();
    client.socket.pause();
    await client.sendFrame(Op.Text, "go");
    const { statuses, ws } = await flooded.promise;
    assert.equal(statuses.at(-1), SendStatus.Dropped);
    const events = statuses.filter((status) => status === SendStatus.Backpressure).length;
    assert.ok(events > 0);
    const stats = server.stats();
    assert.equal(stats.backpressureEvents, events);
    assert.equal(stats.droppedMessages, 1);
    assert.equal(stats.droppedMessages, ws.droppedMessages);
    assert.equal(stats.backpressureCloses, 0);
    assert.equal(stats.messagesOut, statuses.length - 1, "a dropped message is not sent");
    assert.match(server.metrics(), new RegExp(`^sluice_backpressure_events_total ${events}$`, "m"));
    assert.match(server.metrics(), /^sluice_dropped_messages_total 1$/m);
    client.socket.resume();
  });
});

test('stats: the backpressure policy "close" is counted in backpressureCloses', async () => {
  const flooded = deferred<number[]>();
  await withServer({
    heartbeat: false,
    maxBackpressure: CAP,
    backpressurePolicy: "close",
    message(ws) {
      flood(ws).then(flooded.resolve);
    },
  }, async ({ open, server }) => {
    const { client } = await open();
    client.socket.pause();
    await client.sendFrame(Op.Text, "go");
    const statuses = await flooded.promise;
    assert.equal(statuses.at(-1), SendStatus.Dropped);
    const stats = server.stats();
    assert.equal(stats.backpressureCloses, 1);
    assert.equal(stats.droppedMessages, 1);
    assert.match(server.metrics(), /^sluice_backpressure_closes_total 1$/m);
    client.socket.resume();
  });
});

test("stats: a heartbeat ping answered by the client lands in the round-trip histogram", async () => {
  const sockets = new Queue<ServerWebSocket<undefined>>();
  await withServer({
    heartbeat: { interval: 50, timeout: 1000 },
    open(ws) {
      sockets.push(ws);
    },
  }, async ({ open, server }) => {
    const { client } = await open();
    const ws = await sockets.next("open");
    assert.equal(server.stats().latency.count, 0);
    assert.equal(ws.latency, undefined);
    // RawClient answers nothing by itself: the pong is ours to send.
    const ping = await client.nextFrame();
    assert.equal(ping.opcode, Op.Ping);
    await client.sendFrame(Op.Pong, ping.payload);
    await waitFor(() => server.stats().latency.count >= 1, "a round trip in the histogram");
    const { latency } = server.stats();
    assert.equal(latency.count, 1);
    assert.ok(latency.sum >= 0 && latency.sum < 1000, `sum ${latency.sum}`);
    assert.ok(typeof ws.latency === "number" && ws.latency >= 0);
    assert.equal(latency.sum, ws.latency, "one round trip: the sum is it");
    assert.deepEqual(latency.buckets.map((bucket) => bucket.le), [
      1,
      2,
      5,
      10,
      25,
      50,
      100,
      250,
      500,
      1000,
      2500,
    ]);
    // Cumulative: 0 below the round trip's bucket, 1 from it on.
    for (const { le, count } of latency.buckets) {
      assert.equal(count, ws.latency <= le ? 1 : 0, `bucket le=${le}`);
    }
    const metrics = server.metrics();
    assert.match(metrics, /^sluice_heartbeat_rtt_ms_count 1$/m);
    assert.match(metrics, /^sluice_heartbeat_rtt_ms_bucket\{le="\+Inf"\} 1$/m);
    assert.match(metrics, /^sluice_heartbeat_rtt_ms_bucket\{le="2500"\} 1$/m);
  });
});

/** The sample `name` (labels included) of a Prometheus text, as a number. */
function sample(metrics: string, name: string): number {
  const line = metrics.split("\n").find((each) => each.startsWith(`${name} `));
  assert.ok(line !== undefined, `no sample ${name}`);
  return Number(line.slice(name.length + 1));
}

test("stats: metrics() shows the numbers stats() has, and takes a prefix", async () => {
  await withServer({ ...echo, origins: ["https://app.example.com"] }, async (harness) => {
    const { server } = harness;
    const { client } = await harness.open();
    for (let i = 0; i < 5; i++) {
      await client.sendFrame(Op.Text, "x".repeat(i * 50));
      await client.nextFrame();
    }
    assert.equal(
      await refused(harness, upgradeRequest({ extra: ["Origin: https://x.test"] })),
      403,
    );
    await waitFor(() => server.stats().handshaking === 0, "the refused connection gone");
    const stats = server.stats();
    const metrics = server.metrics();
    assert.equal(sample(metrics, "sluice_connections"), stats.connections);
    assert.equal(sample(metrics, "sluice_handshaking"), stats.handshaking);
    assert.equal(sample(metrics, "sluice_accepted_total"), stats.accepted);
    assert.equal(sample(metrics, 'sluice_refused_total{status="403"}'), 1);
    assert.equal(sample(metrics, 'sluice_messages_total{direction="in"}'), stats.messagesIn);
    assert.equal(sample(metrics, 'sluice_messages_total{direction="out"}'), stats.messagesOut);
    assert.equal(sample(metrics, 'sluice_bytes_total{direction="in"}'), stats.bytesIn);
    assert.equal(sample(metrics, 'sluice_bytes_total{direction="out"}'), stats.bytesOut);
    assert.equal(sample(metrics, "sluice_http_requests_total"), stats.httpRequests);
    assert.equal(sample(metrics, "sluice_rate_limited_messages_total"), 0);
    assert.equal(sample(metrics, "sluice_control_flood_closes_total"), 0);
    assert.equal(stats.messagesIn, 5);
    // 0, 50, 100, 150, 200 bytes: headers 6, 6, 6, 8, 8 in and 2, 2, 2, 4, 4 out.
    assert.equal(stats.bytesIn, 500 + 34);
    assert.equal(stats.bytesOut, 500 + 14);
    const custom = server.metrics("myapp");
    assert.equal(sample(custom, "myapp_connections"), 1);
    assert.doesNotMatch(custom, /sluice_/);
  });
});
