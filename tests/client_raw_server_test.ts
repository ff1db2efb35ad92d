/**
 * End to end: `connect()` against a raw `node:net` server (tests/_raw_server.ts) after a valid
 * 101: frames in the same packet as the response, frames RFC 6455 forbids (a masked one, bad
 * RSV bits, opcodes, control frames, UTF-8, Close payloads), the closing handshake's TCP close
 * (the server closes first), a reset, the heartbeat and idle timeouts, and which messages
 * permessage-deflate compresses.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { constants, deflateRawSync, inflateRawSync } from "node:zlib";
import { connect, SendStatus, WebSocketError } from "../mod.ts";
import { encodeFrame, Op, parseClose } from "./_client.ts";
import { Queue, sleep } from "./_harness.ts";
import { type RawPeer, serverFrame, withRawServer } from "./_raw_server.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

test("client: frames in the same packet as the 101 arrive after open, before connect resolves", async () => {
  const events: string[] = [];
  await withRawServer((peer) => {
    void peer.accept(
      [],
      Buffer.concat([
        serverFrame(Op.Text, "first"),
        serverFrame(Op.Binary, new Uint8Array([1, 2, 3])),
        // A fragmented message, and a ping between its fragments.
        serverFrame(Op.Text, "thi", false),
        serverFrame(Op.Ping, "p"),
        serverFrame(Op.Continuation, "rd"),
      ]),
    );
  }, async (server) => {
    const ws = await connect(server.url(), {
      open(ws) {
        events.push(`open ${ws.readyState}`);
      },
      message(_ws, data, isBinary) {
        events.push(isBinary ? `binary ${[...(data as Uint8Array)]}` : `text ${data}`);
      },
      ping(_ws, data) {
        events.push(`ping ${decoder.decode(data)}`);
      },
    });
    events.push("connected");
    assert.deepEqual(events, [
      "open 1",
      "text first",
      "binary 1,2,3",
      "ping p",
      "text third",
      "connected",
    ]);
    const peer = await server.nextPeer();
    // The automatic pong, masked as every client frame.
    const pong = await peer.nextFrame();
    assert.equal(pong.opcode, Op.Pong);
    assert.equal(pong.masked, true);
    assert.equal(decoder.decode(pong.payload), "p");
    ws.terminate();
    await ws.closed;
  });
});

test("client deflate: compressed frames in the same packet as the 101 arrive before connect resolves", async () => {
  const events: string[] = [];
  /** A message compressed as RFC 7692 §7.2.1 says: the flush's trailing 4 bytes removed. */
  const compressed = (text: string) => {
    const bytes = deflateRawSync(encoder.encode(text), { finishFlush: constants.Z_SYNC_FLUSH });
    return bytes.subarray(0, bytes.length - 4);
  };
  await withRawServer((peer) => {
    void peer.accept(
      ["Sec-WebSocket-Extensions: permessage-deflate"],
      Buffer.concat([
        encodeFrame(Op.Text, compressed("one, compressed"), { mask: null, rsv: 4 }),
        serverFrame(Op.Text, "two, plain"),
        encodeFrame(Op.Text, compressed("three, compressed"), { mask: null, rsv: 4 }),
      ]),
    );
  }, async (server) => {
    const ws = await connect(server.url(), {
      perMessageDeflate: true,
      message(_ws, data) {
        events.push(String(data));
      },
    });
    events.push("connected");
    assert.deepEqual(events, ["one, compressed", "two, plain", "three, compressed", "connected"]);
    ws.terminate();
    await ws.closed;
  });
});

test("client: a masked frame from the server fails the connection with 1002", async () => {
  const errors: unknown[] = [];
  const closes = new Queue<[number, string]>();
  await withRawServer((peer) => {
    void peer.accept([], encodeFrame(Op.Text, "masked", { mask: new Uint8Array([1, 2, 3, 4]) }));
  }, async (server) => {
    const ws = await connect(server.url(), {
      message() {
        assert.fail("a masked frame must not be delivered");
      },
      error(error) {
        errors.push(error);
      },
      close(_ws, code, reason) {
        closes.push([code, reason]);
      },
    });
    const peer = await server.nextPeer();
    const [code, reason] = await closes.next("the close handler");
    assert.equal(code, 1002);
    assert.equal(errors.length, 1);
    const error = errors[0];
    assert.ok(error instanceof WebSocketError);
    assert.equal(error.code, "WS_ERR_MASKED_FRAME");
    assert.equal(error.closeCode, 1002);
    assert.equal(reason, error.message);
    // The Close frame says so.
    const frame = await peer.nextFrame();
    assert.equal(frame.masked, true);
    assert.deepEqual(parseClose(frame), { code: 1002, reason: error.message });
    assert.equal(ws.readyState, 3);
    // RFC 6455 §7.1.1: the client waits for the server to close the TCP connection.
    await sleep(50);
    assert.equal(peer.endReceived, false, "the client must not close TCP first");
    peer.end();
    await peer.waitGone();
    assert.deepEqual(await ws.closed, { code: 1002, reason: error.message });
    assert.equal(closes.items.length, 1, "close is reported once");
  });
});

test("client close: the client waits for the server's TCP close, then drops after closeTimeout", async () => {
  const closes = new Queue<[number, string]>();
  await withRawServer(
    (peer) => void peer.accept(),
    async (server) => {
      const ws = await connect(server.url(), {
        closeTimeout: 300,
        close(_ws, code, reason) {
          closes.push([code, reason]);
        },
      });
      const peer = await server.nextPeer();
      ws.close(4000, "bye");
      assert.equal(ws.readyState, 2);
      const frame = await peer.nextFrame();
      assert.equal(frame.masked, true);
      assert.deepEqual(parseClose(frame), { code: 4000, reason: "bye" });
      await peer.write(serverFrame(Op.Close, new Uint8Array([0x0f, 0xa0])));
      assert.deepEqual(await closes.next("the close handler"), [4000, ""]);
      assert.deepEqual(await ws.closed, { code: 4000, reason: "" });
      const closedAt = Date.now();
      // The server keeps TCP open: the client waits, then drops it after closeTimeout.
      await sleep(100);
      assert.equal(peer.endReceived || peer.isClosed, false, "the client must not close TCP first");
      await peer.waitGone(3000);
      assert.ok(Date.now() - closedAt >= 250, "not before closeTimeout");
      // Nothing more was sent after the Close frame.
      assert.equal(peer.frames.items.length, 1);
    },
  );
});

test("client close: when the server closes TCP after the handshake, so does the client", async () => {
  await withRawServer((peer) => void peer.accept(), async (server) => {
    const ws = await connect(server.url(), { closeTimeout: 3000 });
    const peer = await server.nextPeer();
    ws.close(1000);
    const frame = await peer.nextFrame();
    assert.deepEqual(parseClose(frame), { code: 1000, reason: "" });
    await peer.write(serverFrame(Op.Close, new Uint8Array([0x03, 0xe8])));
    peer.end();
    await peer.waitGone(1000);
    assert.equal(peer.endReceived, true, "the client answers the server's FIN with its own");
    assert.deepEqual(await ws.closed, { code: 1000, reason: "" });
  });
});

test("client close: a server that closes TCP without a Close frame is 1006", async () => {
  const errors: unknown[] = [];
  await withRawServer((peer) => {
    void peer.accept([], serverFrame(Op.Text, "hi")).then(() => peer.end());
  }, async (server) => {
    const messages: unknown[] = [];
    const ws = await connect(server.url(), {
      message(_ws, data) {
        messages.push(data);
      },
      error(error) {
        errors.push(error);
      },
    });
    assert.deepEqual(await ws.closed, { code: 1006, reason: "" });
    assert.deepEqual(messages, ["hi"]);
    assert.equal(ws.readyState, 3);
    assert.equal(ws.send("late"), SendStatus.Dropped);
  });
  assert.deepEqual(errors, [], "a FIN is no error");
});

test("client idleTimeout: counted from the open, however long since the last connection", async () => {
  await withRawServer((peer) => void peer.accept(), async (server) => {
    // An earlier connection, then a pause longer than the next one's idleTimeout.
    const first = await connect(server.url());
    first.terminate();
    await first.closed;
    await server.nextPeer();
    await sleep(400);
    const ws = await connect(server.url(), { idleTimeout: 300 });
    const opened = Date.now();
    const peer = await server.nextPeer();
    const frame = await peer.nextFrame(2000);
    const elapsed = Date.now() - opened;
    assert.deepEqual(parseClose(frame), { code: 1001, reason: "Idle timeout" });
    assert.ok(elapsed >= 250, `closed for idleness after ${elapsed} ms of a 300 ms timeout`);
    ws.terminate();
    await ws.closed;
  });
});

test("client heartbeat: a server that never answers pings is dropped", async () => {
  const errors: unknown[] = [];
  await withRawServer((peer) => void peer.accept(), async (server) => {
    const ws = await connect(server.url(), {
      heartbeat: { interval: 100, timeout: 200 },
      error(error) {
        errors.push(error);
      },
    });
    const peer = await server.nextPeer();
    const ping = await peer.nextFrame();
    assert.equal(ping.opcode, Op.Ping);
    assert.equal(ping.masked, true);
    assert.equal(ping.payload.length, 0);
    assert.deepEqual(await ws.closed, { code: 1006, reason: "" });
    await peer.waitGone();
    assert.equal(ws.latency, undefined, "no round trip was measured");
  });
  assert.equal(errors.length, 1);
  const error = errors[0];
  assert.ok(error instanceof WebSocketError);
  assert.equal(error.code, "WS_ERR_HEARTBEAT_TIMEOUT");
  assert.equal(error.message, "No answer to a ping within 200 ms");
});

test("client deflate: messages under the threshold go uncompressed, the others with RSV1", async () => {
  await withRawServer(
    (peer) => void peer.accept(["Sec-WebSocket-Extensions: permessage-deflate"]),
    async (server) => {
      const ws = await connect(server.url(), { perMessageDeflate: { threshold: 100 } });
      assert.equal(ws.extensions, "permessage-deflate");
      const peer = await server.nextPeer();
      const small = "s".repeat(50);
      const large = "l".repeat(200);
      ws.send(small);
      ws.send(large);
      ws.send(small, true); // Told to compress.
      ws.send(encoder.encode(large), false); // Told not to.
      const inflate = (payload: Uint8Array) =>
        decoder.decode(
          inflateRawSync(Buffer.concat([payload, new Uint8Array([0, 0, 0xff, 0xff])]), {
            finishFlush: constants.Z_SYNC_FLUSH,
          }),
        );
      const frames = [
        await peer.nextFrame(),
        await peer.nextFrame(),
        await peer.nextFrame(),
        await peer.nextFrame(),
      ];
      assert.deepEqual(frames.map((frame) => frame.rsv), [0, 4, 4, 0], "RSV1 on compressed");
      assert.equal(decoder.decode(frames[0].payload), small);
      assert.equal(inflate(frames[1].payload), large);
      assert.ok(frames[1].payload.length < large.length);
      assert.equal(inflate(frames[2].payload), small);
      assert.equal(decoder.decode(frames[3].payload), large);
      ws.terminate();
      await ws.closed;
    },
  );
});

test("client: frames RFC 6455 forbids fail the connection with their close code", async () => {
  const cases: Array<[string, Uint8Array, string, number]> = [
    [
      "RSV1 without an extension",
      encodeFrame(Op.Text, "x", { mask: null, rsv: 4 }),
      "WS_ERR_RESERVED_BITS",
      1002,
    ],
    ["a reserved opcode", serverFrame(0x3, "x"), "WS_ERR_INVALID_OPCODE", 1002],
    [
      "a ping of 126 bytes",
      serverFrame(Op.Ping, new Uint8Array(126)),
      "WS_ERR_CONTROL_FRAME_TOO_LONG",
      1002,
    ],
    [
      "a fragmented ping",
      serverFrame(Op.Ping, "x", false),
      "WS_ERR_FRAGMENTED_CONTROL_FRAME",
      1002,
    ],
    [
      "a continuation of nothing",
      serverFrame(Op.Continuation, "x"),
      "WS_ERR_UNEXPECTED_CONTINUATION",
      1002,
    ],
    [
      "a new message inside a fragmented one",
      Buffer.concat([serverFrame(Op.Text, "a", false), serverFrame(Op.Text, "b")]),
      "WS_ERR_EXPECTED_CONTINUATION",
      1002,
    ],
    [
      "invalid UTF-8 in a text message",
      serverFrame(Op.Text, new Uint8Array([0xc3, 0x28])),
      "WS_ERR_INVALID_UTF8",
      1007,
    ],
    [
      "a Close frame with 1005",
      serverFrame(Op.Close, new Uint8Array([0x03, 0xed])),
      "WS_ERR_INVALID_CLOSE_CODE",
      1002,
    ],
    [
      "a Close frame of one byte",
      serverFrame(Op.Close, new Uint8Array([0x03])),
      "WS_ERR_INVALID_CLOSE_CODE",
      1002,
    ],
  ];
  for (const [what, frame, code, closeCode] of cases) {
    const errors: unknown[] = [];
    await withRawServer((peer) => void peer.accept([], frame), async (server) => {
      const ws = await connect(server.url(), {
        error(error) {
          errors.push(error);
        },
      });
      const peer = await server.nextPeer();
      const close = await peer.nextFrame();
      assert.equal(close.masked, true);
      assert.equal(parseClose(close).code, closeCode, what);
      peer.end();
      assert.equal((await ws.closed).code, closeCode, what);
    });
    assert.equal(errors.length, 1, what);
    const error = errors[0];
    assert.ok(error instanceof WebSocketError, what);
    assert.equal(error.code, code, what);
    assert.equal(error.closeCode, closeCode, what);
  }
});

/** Resets the connection (RST), as `node:net` does in both runtimes. */
function reset(peer: RawPeer): void {
  (peer.socket as unknown as { resetAndDestroy(): void }).resetAndDestroy();
}

test("client: a connection reset after the 101 closes with 1006", async () => {
  await withRawServer(
    (peer) => void peer.accept([], serverFrame(Op.Text, "hi")),
    async (server) => {
      const messages: unknown[] = [];
      const ws = await connect(server.url(), {
        message(_ws, data) {
          messages.push(data);
        },
        error() {},
      });
      reset(await server.nextPeer());
      assert.deepEqual(await ws.closed, { code: 1006, reason: "" });
      assert.deepEqual(messages, ["hi"]);
    },
  );
});

test("client: a connection reset after the 101 is reported as WS_ERR_CONNECTION_LOST", async () => {
  const errors: unknown[] = [];
  await withRawServer((peer) => void peer.accept(), async (server) => {
    const ws = await connect(server.url(), {
      error(error) {
        errors.push(error);
      },
    });
    reset(await server.nextPeer());
    await ws.closed;
  });
  assert.equal(errors.length, 1);
  assert.ok(errors[0] instanceof WebSocketError);
  assert.equal(errors[0].code, "WS_ERR_CONNECTION_LOST");
  assert.equal(errors[0].closeCode, 1006);
});
