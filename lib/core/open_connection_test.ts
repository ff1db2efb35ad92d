import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { encodeFrame } from "../protocol/frame_writer.ts";
import { Opcode } from "../protocol/opcode.ts";
import { FrameParser } from "../protocol/frame_parser.ts";
import { concat, pattern } from "../protocol/_test_util.ts";
import {
  type ConnectionCounters,
  type ConnectionHome,
  OpenConnection,
  type OpenSettings,
} from "./open_connection.ts";
import type { Transport, TransportHandler } from "./transport.ts";
import { BaseWebSocket, SendStatus } from "./websocket.ts";

/** A transport that records what the connection does to it; the socket takes every write. */
class FakeTransport implements Transport {
  readonly remoteAddress = "192.0.2.1";
  readonly remotePort = 4000;
  /** What the test says waits in the socket (nothing drains it here). */
  bufferedAmount = 0;
  readonly writesLater = false;
  written: Uint8Array[] = [];
  urgent: Uint8Array[] = [];
  ended = 0;
  destroyed = 0;
  paused = 0;
  resumed = 0;
  handler: TransportHandler | undefined;
  write(chunk: Uint8Array): void {
    this.written.push(chunk.slice());
  }
  writeUrgent(chunk: Uint8Array): void {
    this.urgent.push(chunk.slice());
  }
  end(): void {
    this.ended++;
  }
  destroy(): void {
    this.destroyed++;
    this.handler?.onClose();
  }
  pause(): void {
    this.paused++;
  }
  resume(): void {
    this.resumed++;
  }
  watchBelow(): void {}
  setHandler(handler: TransportHandler): void {
    this.handler = handler;
  }
  /** Every byte written so far, as one array. */
  bytes(): Uint8Array {
    return concat(...this.written);
  }
}

interface Frame {
  opcode: number;
  fin: boolean;
  payload: Uint8Array;
}

/** Decodes what a connection wrote: `masked` frames as a server reads them, else as a client. */
function frames(bytes: Uint8Array, masked: boolean): Frame[] {
  const out: Frame[] = [];
  const parser = new FrameParser({
    onFrame(opcode, fin, _rsv1, payload) {
      out.push({ opcode, fin, payload: payload.slice() });
    },
    onFrameStart() {},
    onFrameData() {},
    onFrameError(error) {
      throw error;
    },
  }, { requireMask: masked });
  parser.push(bytes);
  return out;
}

/** The masking keys of the frames in `bytes` (client frames). */
function maskKeys(bytes: Uint8Array): string[] {
  const keys: string[] = [];
  let i = 0;
  while (i < bytes.length) {
    let length = bytes[i + 1] & 0x7f;
    let header = 2;
    if (length === 126) {
      length = (bytes[i + 2] << 8) | bytes[i + 3];
      header = 4;
    } else if (length === 127) {
      length = Number(new DataView(bytes.buffer, bytes.byteOffset + i + 2).getBigUint64(0));
      header = 10;
    }
    keys.push([...bytes.subarray(i + header, i + header + 4)].join(","));
    i += header + 4 + length;
  }
  return keys;
}

const flush = () => new Promise((resolve) => setTimeout(resolve, 0));

interface Events {
  messages: Array<string | Uint8Array>;
  closes: Array<[number, string]>;
  errors: unknown[];
  pings: Uint8Array[];
}

function setup(role: "server" | "client", overrides: Partial<OpenSettings<BaseWebSocket>> = {}) {
  const events: Events = { messages: [], closes: [], errors: [], pings: [] };
  const counters: ConnectionCounters = {
    backpressureEvents: 0,
    droppedMessages: 0,
    backpressureCloses: 0,
    rateLimitedMessages: 0,
    controlFloodCloses: 0,
    queuedBytes: 0,
    queuing: 0,
    latency() {},
  };
  let untracked = 0;
  const home: ConnectionHome = {
    now: 0,
    counters,
    closed() {},
    untrack() {
      untracked++;
    },
  };
  const settings: OpenSettings<BaseWebSocket> = {
    maxBackpressure: 1024 * 1024,
    backpressurePolicy: "drop",
    readHighWaterMark: Infinity,
    readLowWaterMark: 0,
    maxTotalBackpressure: Infinity,
    closeTimeout: 50,
    idleTimeout: 0,
    heartbeatInterval: 0,
    heartbeatTimeout: 0,
    controlFrameRate: 0,
    controlFrameBurst: 1,
    rateLimit: undefined,
    maxPayloadLength: 1024 * 1024,
    maxFragments: 1000,
    message(_ws, data) {
      events.messages.push(data);
    },
    close(_ws, code, reason) {
      events.closes.push([code, reason]);
    },
    error(error) {
      events.errors.push(error);
    },
    ping(_ws, data) {
      events.pings.push(data.slice());
    },
    ...overrides,
  };
  const transport = new FakeTransport();
  const connection = new OpenConnection<BaseWebSocket>(home, transport, settings, {
    role,
    deflate: undefined,
  });
  transport.setHandler(connection);
  const ws = new BaseWebSocket(connection, {
    protocol: "",
    extensions: "",
    remoteAddress: transport.remoteAddress,
    remotePort: transport.remotePort,
  });
  connection.start(ws, []);
  return { connection, transport, ws, events, untracked: () => untracked };
}

const text = (value: string) => new TextEncoder().encode(value);
const maskKey = () => new Uint8Array([0x11, 0x22, 0x33, 0x44]);

describe("OpenConnection as a client", () => {
  it("masks every frame it sends, each with a key of its own", async () => {
    const { transport, ws } = setup("client");
    assert.equal(ws.send("hi"), SendStatus.Sent);
    ws.send(pattern(300));
    ws.send(pattern(70_000, 3));
    ws.ping("p");
    await flush();
    const bytes = transport.bytes();
    const out = frames(bytes, true); // throws if a frame is unmasked
    assert.deepEqual(out.map((frame) => frame.opcode), [
      Opcode.Text,
      Opcode.Binary,
      Opcode.Binary,
      Opcode.Ping,
    ]);
    assert.equal(new TextDecoder().decode(out[0].payload), "hi");
    assert.deepEqual(out[1].payload, pattern(300));
    assert.deepEqual(out[2].payload, pattern(70_000, 3));
    assert.equal(new TextDecoder().decode(out[3].payload), "p");
    const keys = maskKeys(bytes);
    assert.equal(keys.length, 4);
    assert.equal(new Set(keys).size, 4, `keys repeat: ${keys}`);
    // The caller's bytes are not masked in place.
    const mine = pattern(20_000, 9);
    ws.send(mine);
    await flush();
    assert.deepEqual(mine, pattern(20_000, 9));
  });

  it("reads the server's unmasked frames, and answers a ping with a masked pong", async () => {
    const { connection, transport, events } = setup("client");
    connection.onData(concat(
      encodeFrame(Opcode.Text, text("hello")),
      encodeFrame(Opcode.Ping, text("are you there")),
    ));
    assert.deepEqual(events.messages, ["hello"]);
    assert.equal(new TextDecoder().decode(events.pings[0]), "are you there");
    await flush();
    const out = frames(transport.bytes(), true);
    assert.equal(out.length, 1);
    assert.equal(out[0].opcode, Opcode.Pong);
    assert.equal(new TextDecoder().decode(out[0].payload), "are you there");
  });

  it("fails with 1002 on a masked frame from the server, and waits for the server's close", async () => {
    const { connection, transport, events } = setup("client");
    connection.onData(encodeFrame(Opcode.Text, text("x"), { mask: maskKey() }));
    assert.equal(events.closes.length, 1);
    assert.equal(events.closes[0][0], 1002);
    assert.equal(events.messages.length, 0);
    const error = events.errors[0] as { code: string; closeCode: number };
    assert.equal(error.closeCode, 1002);
    await flush();
    const out = frames(transport.bytes(), true);
    assert.equal(out.at(-1)!.opcode, Opcode.Close);
    assert.equal((out.at(-1)!.payload[0] << 8) | out.at(-1)!.payload[1], 1002);
    // RFC 6455 §7.1.1: the server closes TCP first; the client does not end its side yet.
    assert.equal(transport.ended, 0);
    connection.onEnd();
    assert.equal(transport.ended, 1);
  });

  it("runs the client's closing handshake: waits for the server's TCP close", async () => {
    const { connection, transport, ws, events } = setup("client");
    ws.close(1000, "bye");
    assert.equal(ws.readyState, 2);
    await flush();
    const sent = frames(transport.bytes(), true);
    assert.equal(sent.length, 1);
    assert.equal(sent[0].opcode, Opcode.Close);
    assert.equal(new TextDecoder().decode(sent[0].payload.subarray(2)), "bye");
    connection.onData(encodeFrame(Opcode.Close, new Uint8Array([0x03, 0xe8])));
    assert.deepEqual(events.closes, [[1000, ""]]);
    assert.equal(ws.readyState, 3);
    assert.deepEqual(await ws.closed, { code: 1000, reason: "" });
    assert.equal(transport.ended, 0, "the client must leave the TCP close to the server");
    connection.onEnd();
    assert.equal(transport.ended, 1);
    connection.onClose();
    assert.equal(transport.destroyed, 0);
  });

  it("drops the connection when the server does not close TCP within closeTimeout", async () => {
    const { connection, transport, ws } = setup("client", { closeTimeout: 30 });
    ws.close(1000);
    connection.onData(encodeFrame(Opcode.Close, new Uint8Array([0x03, 0xe8])));
    assert.equal(transport.destroyed, 0);
    await new Promise((resolve) => setTimeout(resolve, 80));
    assert.equal(transport.destroyed, 1);
  });

  it("reports WS_ERR_CLOSE_TIMEOUT and drops the connection when our Close goes unanswered", async () => {
    const { transport, ws, events } = setup("client", { closeTimeout: 30 });
    ws.close(1000);
    await new Promise((resolve) => setTimeout(resolve, 80));
    assert.equal(transport.destroyed, 1);
    const error = events.errors[0] as { code: string; closeCode: number; message: string };
    assert.equal(error.code, "WS_ERR_CLOSE_TIMEOUT");
    assert.equal(error.closeCode, 1006);
    assert.equal(error.message, "No Close frame from the peer within 30 ms of ours");
    assert.deepEqual(events.closes, [[1006, ""]]);
  });

  it("echoes the server's Close frame, masked, and reports the server's code", async () => {
    const { connection, transport, events } = setup("client");
    connection.onData(
      encodeFrame(Opcode.Close, concat(new Uint8Array([0x0f, 0xa0]), text("deploy"))),
    );
    assert.deepEqual(events.closes, [[4000, "deploy"]]);
    await flush();
    const out = frames(transport.bytes(), true);
    assert.equal(out.length, 1);
    assert.equal(out[0].opcode, Opcode.Close);
    assert.deepEqual([...out[0].payload], [0x0f, 0xa0]);
    assert.equal(transport.ended, 0);
  });
});

describe("OpenConnection as a server", () => {
  it("requires masked frames, sends unmasked ones, and closes TCP first", async () => {
    const { connection, transport, ws, events } = setup("server");
    connection.onData(encodeFrame(Opcode.Text, text("hey"), { mask: maskKey() }));
    assert.deepEqual(events.messages, ["hey"]);
    ws.send("back");
    await flush();
    const out = frames(transport.bytes(), false); // throws if a frame is masked
    assert.equal(new TextDecoder().decode(out[0].payload), "back");
    connection.onData(encodeFrame(Opcode.Close, new Uint8Array([0x03, 0xe8]), { mask: maskKey() }));
    assert.deepEqual(events.closes, [[1000, ""]]);
    // RFC 6455 §7.1.1: the server closes the TCP connection first.
    assert.equal(transport.ended, 1);
  });

  it("answers each ping of a burst in order behind a write in flight; only a backlog makes a pong urgent", async () => {
    const { transport, connection } = setup("server");
    const ping = (i: number) => encodeFrame(Opcode.Ping, text(`payload-${i}`), { mask: maskKey() });
    // A write in flight (Deno's are asynchronous): pongs go in order, none is replaced.
    transport.bufferedAmount = 100;
    for (let i = 0; i < 10; i++) connection.onData(ping(i));
    await flush();
    assert.equal(transport.urgent.length, 0);
    const pongs = frames(transport.bytes(), false);
    assert.deepEqual(
      pongs.map((frame) => [frame.opcode, new TextDecoder().decode(frame.payload)]),
      Array.from({ length: 10 }, (_, i) => [Opcode.Pong, `payload-${i}`]),
    );
    // A reader falling behind (more than a write's worth waits): the pong goes ahead of it.
    transport.bufferedAmount = 1024 * 1024;
    connection.onData(ping(10));
    await flush();
    assert.equal(transport.urgent.length, 1);
    assert.equal(
      new TextDecoder().decode(frames(transport.urgent[0], false)[0].payload),
      "payload-10",
    );
  });

  it("fails with 1002 on an unmasked frame", () => {
    const { connection, events, transport } = setup("server");
    connection.onData(encodeFrame(Opcode.Text, text("x")));
    assert.equal(events.closes[0][0], 1002);
    assert.equal(transport.ended, 1);
  });

  it("reports a lost connection once, as 1006, and untracks itself", async () => {
    const { connection, events, ws, untracked } = setup("server");
    connection.onClose(new Error("reset"));
    connection.onClose();
    assert.deepEqual(events.closes, [[1006, ""]]);
    assert.equal((events.errors[0] as { code: string }).code, "WS_ERR_CONNECTION_LOST");
    assert.equal(untracked(), 1);
    assert.deepEqual(await ws.closed, { code: 1006, reason: "" });
    assert.equal(ws.send("late"), SendStatus.Dropped);
  });
});
