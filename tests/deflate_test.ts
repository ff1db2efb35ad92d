/**
 * End to end: permessage-deflate (RFC 7692) over real sockets. The negotiation as the response
 * header and `ws.extensions` show it, compressed messages both ways in the shared and dedicated
 * modes and with the web engine (the client compresses and inflates with node:zlib, as ws
 * does), and a 1 GiB inflate bomb that must cost the server one connection, nothing more.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { createDeflateRaw } from "node:zlib";
import {
  assertSameBytes,
  clientDeflate,
  clientInflate,
  ClientStream,
  encoder,
  MiB,
  random,
  SYNC_FLUSH,
} from "../lib/protocol/extensions/_deflate_test_util.ts";
import { type PerMessageDeflateOptions, type ServerWebSocket, WebSocketError } from "../mod.ts";
import { type Frame, Op, parseClose, type RawClient, text } from "./_client.ts";
import { type Harness, Queue, withServer } from "./_harness.ts";

/** RSV1 as `Frame.rsv` shows it (the three RSV bits, RSV1 the highest). */
const RSV1 = 4;

const OFFER = "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits";
const SHARED_RESPONSE =
  "permessage-deflate; server_no_context_takeover; client_no_context_takeover";

// What a client does (RFC 7692 §7.2.1, §7.2.2), with node:zlib

/** Compresses and inflates one connection's messages, with or without context takeover. */
class ClientDeflate {
  #takeover: boolean;
  #deflate: ClientStream | undefined;
  #inflate: ClientStream | undefined;

  /** @param takeover Keep one zlib stream per direction across messages. */
  constructor(takeover: boolean) {
    this.#takeover = takeover;
  }

  /** A message's compressed payload, the 00 00 FF FF tail removed. */
  async compress(data: string | Uint8Array): Promise<Uint8Array> {
    if (!this.#takeover) return clientDeflate(data);
    return await (this.#deflate ??= new ClientStream("deflate")).message(data);
  }

  /** A compressed payload's message, the tail restored. */
  async inflate(payload: Uint8Array): Promise<Uint8Array> {
    if (!this.#takeover) return clientInflate(payload);
    return await (this.#inflate ??= new ClientStream("inflate")).message(payload);
  }

  close(): void {
    this.#deflate?.close();
    this.#inflate?.close();
  }
}

/** The next frame, which must be a data frame (a Close is reported with its code). */
async function nextData(client: RawClient): Promise<Frame> {
  const frame = await client.nextFrame();
  if (frame.opcode === Op.Close) {
    const { code, reason } = parseClose(frame);
    assert.fail(`expected a data frame, got Close ${code} ${JSON.stringify(reason)}`);
  }
  return frame;
}

/**
 * 1 GiB of zeros as one compressed message (about 1 MB), from a persistent deflate stream fed
 * one reused 1 MiB zero buffer; made once, on first use.
 */
let bombCache: { payload: Uint8Array; ms: number } | undefined;
async function bomb(): Promise<{ payload: Uint8Array; ms: number }> {
  if (bombCache !== undefined) return bombCache;
  const started = performance.now();
  const stream = createDeflateRaw();
  const chunks: Uint8Array[] = [];
  stream.on("data", (chunk: Uint8Array) => chunks.push(chunk));
  const zeros = new Uint8Array(MiB);
  for (let i = 0; i < 1024; i++) stream.write(zeros);
  await new Promise<void>((resolve) => stream.flush(SYNC_FLUSH, () => resolve()));
  stream.destroy();
  const out = Buffer.concat(chunks);
  assert.equal(Buffer.from(out.subarray(out.length - 4)).toString("hex"), "0000ffff");
  bombCache = {
    payload: new Uint8Array(out.subarray(0, out.length - 4)),
    ms: performance.now() - started,
  };
  return bombCache;
}

interface Mode {
  name: string;
  options: PerMessageDeflateOptions;
  response: string;
  takeover: boolean;
}

const MODES: Mode[] = [
  { name: "shared", options: { mode: "shared" }, response: SHARED_RESPONSE, takeover: false },
  {
    name: "dedicated",
    options: { mode: "dedicated" },
    response: "permessage-deflate",
    takeover: true,
  },
  { name: "web engine", options: { engine: "web" }, response: SHARED_RESPONSE, takeover: false },
];

/** Opens a connection that offers permessage-deflate and checks the agreement. */
async function openDeflate(
  harness: Harness<undefined>,
  expected: string,
): Promise<RawClient> {
  const { client, response } = await harness.open({ extra: [OFFER] });
  assert.equal(response.headers.get("sec-websocket-extensions"), expected);
  return client;
}

/**
 * Asserts that the server let go of every connection: with no client left, shutdown has
 * nothing to wait for. A connection the server still holds makes it wait for its timeout.
 */
async function assertReleased(harness: Harness<undefined>): Promise<void> {
  const started = performance.now();
  await harness.server.shutdown({ timeout: 1500 });
  const ms = performance.now() - started;
  assert.ok(ms < 1000, `shutdown waited ${ms.toFixed(0)} ms for a connection the client closed`);
}

// Negotiation

test("deflate: shared mode answers with both no_context_takeover parameters", async () => {
  const extensions = new Queue<string>();
  await withServer({
    perMessageDeflate: true,
    open(ws) {
      extensions.push(ws.extensions);
    },
  }, async ({ open }) => {
    const { response } = await open({ extra: [OFFER] });
    assert.equal(response.headers.get("sec-websocket-extensions"), SHARED_RESPONSE);
    assert.equal(await extensions.next("open"), SHARED_RESPONSE);
  });
});

test("deflate: dedicated mode answers plainly; a smaller client window is announced", async () => {
  const extensions = new Queue<string>();
  await withServer({
    perMessageDeflate: { mode: "dedicated", clientMaxWindowBits: 10 },
    open(ws) {
      extensions.push(ws.extensions);
    },
  }, async ({ open }) => {
    const { response } = await open({ extra: [OFFER] });
    const expected = "permessage-deflate; client_max_window_bits=10";
    assert.equal(response.headers.get("sec-websocket-extensions"), expected);
    assert.equal(await extensions.next("open"), expected);
  });
});

test("deflate: without perMessageDeflate there is no header, and RSV1 is a 1002", async () => {
  const extensions = new Queue<string>();
  await withServer({
    open(ws) {
      extensions.push(ws.extensions);
    },
  }, async ({ open }) => {
    const { client, response } = await open({ extra: [OFFER] });
    assert.equal(response.headers.has("sec-websocket-extensions"), false);
    assert.equal(await extensions.next("open"), "");
    const compressed = await new ClientDeflate(false).compress("Hello");
    await client.sendFrame(Op.Text, compressed, { rsv: RSV1 });
    assert.equal(parseClose(await client.nextFrame()).code, 1002);
    await client.waitClosed();
  });
});

test("deflate: a client that offers something else gets no header", async () => {
  await withServer({ perMessageDeflate: true }, async ({ open }) => {
    const { response } = await open({
      extra: ["Sec-WebSocket-Extensions: x-webkit-deflate-frame, permessage-deflate; foo=1"],
    });
    assert.equal(response.headers.has("sec-websocket-extensions"), false);
  });
});

test("deflate: a malformed Sec-WebSocket-Extensions header gets 400", async () => {
  await withServer({ perMessageDeflate: true }, async ({ open }) => {
    await assert.rejects(
      open({ extra: ["Sec-WebSocket-Extensions: permessage-deflate;"] }),
      /expected 101, got HTTP\/1\.1 400/,
    );
  });
  // The same, read in full.
  await withServer({ perMessageDeflate: true }, async ({ connect }) => {
    const client = await connect();
    await client.write(
      [
        "GET / HTTP/1.1",
        "Host: 127.0.0.1",
        "Upgrade: websocket",
        "Connection: Upgrade",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version: 13",
        "Sec-WebSocket-Extensions: permessage-deflate; =1",
        "",
        "",
      ].join("\r\n"),
    );
    const response = await client.response();
    assert.equal(response.status, 400);
    assert.match(text(response.body), /^Invalid Sec-WebSocket-Extensions header: /);
    await client.waitClosed();
  });
});

// Messages

for (const mode of MODES) {
  test(`deflate, ${mode.name}: compressed text and binary echo, compressed back`, async () => {
    const received = new Queue<[string | Uint8Array, boolean]>();
    await withServer({
      perMessageDeflate: mode.options,
      message(ws, data, isBinary) {
        received.push([data, isBinary]);
        ws.send(data);
      },
    }, async (harness) => {
      const client = await openDeflate(harness, mode.response);
      const zlib = new ClientDeflate(mode.takeover);
      try {
        const json = JSON.stringify({
          users: Array.from({ length: 40 }, (_, i) => ({ id: i, name: `user ${i}` })),
        });
        const binary = random(100_000, 3);
        const small = "hi, below the threshold";
        const messages: Array<[number, string | Uint8Array]> = [
          [Op.Text, json],
          [Op.Binary, binary],
          [Op.Text, json], // again: under context takeover it refers to the first
          [Op.Text, small],
        ];
        for (const [opcode, data] of messages) {
          await client.sendFrame(opcode, await zlib.compress(data), { rsv: RSV1 });
        }
        // A plain message in between compressed ones stays plain.
        await client.sendFrame(Op.Text, "plain");
        for (const [opcode, data] of [...messages, [Op.Text, "plain"] as const]) {
          const [got, isBinary] = await received.next("the message");
          assert.equal(isBinary, opcode === Op.Binary);
          if (typeof data === "string") assert.equal(got, data);
          else assertSameBytes(got as Uint8Array, data, "binary, at the server");
          const frame = await nextData(client);
          assert.equal(frame.opcode, opcode);
          assert.equal(frame.fin, true);
          const bytes = typeof data === "string" ? encoder.encode(data) : data;
          // The default threshold is 1024 bytes.
          assert.equal(frame.rsv, bytes.length >= 1024 ? RSV1 : 0, `rsv of ${bytes.length} bytes`);
          const payload = frame.rsv === RSV1 ? await zlib.inflate(frame.payload) : frame.payload;
          assertSameBytes(payload, bytes, `echo of ${bytes.length} bytes`);
        }
      } finally {
        zlib.close();
      }
    });
  });

  test(`deflate, ${mode.name}: send(data, compress) overrides the threshold`, async () => {
    const long = "x".repeat(5000);
    await withServer({
      perMessageDeflate: mode.options,
      open(ws: ServerWebSocket) {
        ws.send("tiny", true);
        ws.send(long, false);
        ws.sendBinary(new Uint8Array(2000).fill(1));
      },
    }, async (harness) => {
      const client = await openDeflate(harness, mode.response);
      const zlib = new ClientDeflate(mode.takeover);
      try {
        const tiny = await nextData(client);
        assert.equal(tiny.rsv, RSV1);
        assert.equal(text(await zlib.inflate(tiny.payload)), "tiny");
        const plain = await nextData(client);
        assert.equal(plain.rsv, 0);
        assert.equal(text(plain.payload), long);
        const binary = await nextData(client);
        assert.deepEqual([binary.opcode, binary.rsv], [Op.Binary, RSV1]);
        assert.ok(binary.payload.length < 100, `${binary.payload.length} bytes`);
        assertSameBytes(await zlib.inflate(binary.payload), new Uint8Array(2000).fill(1), "bin");
      } finally {
        zlib.close();
      }
    });
  });

  test(`deflate, ${mode.name}: a payload that does not inflate gets 1007`, async () => {
    const errors = new Queue<unknown>();
    const messages: unknown[] = [];
    await withServer({
      perMessageDeflate: mode.options,
      message(ws, data) {
        messages.push(data);
        ws.send(data);
      },
      error(error) {
        errors.push(error);
      },
    }, async (harness) => {
      const client = await openDeflate(harness, mode.response);
      await client.sendFrame(Op.Text, new Uint8Array([0xff, 0xff, 0xff, 0xff]), { rsv: RSV1 });
      const frame = await client.nextFrame();
      assert.deepEqual(
        frame.opcode === Op.Close ? parseClose(frame).code : `opcode ${frame.opcode}`,
        1007,
        `messages at the server: ${JSON.stringify(messages)}`,
      );
      const error = await errors.next("the error handler");
      assert.ok(error instanceof WebSocketError);
      assert.equal(error.code, "WS_ERR_INFLATE");
      await client.waitClosed();
      assert.deepEqual(messages, []);
      await assertReleased(harness);
    });
  });
}

// The bomb

for (const mode of MODES.filter((m) => m.options.engine !== "web")) {
  test(`deflate, ${mode.name}: a 1 GiB bomb gets 1009; another client goes on`, async () => {
    const { payload, ms } = await bomb();
    assert.ok(payload.length < 2 * MiB, `the bomb is ${payload.length} bytes`);
    console.log(
      `  1 GiB bomb: ${payload.length} bytes, built in ${ms.toFixed(0)} ms (once per file)`,
    );
    const errors = new Queue<unknown>();
    const closes = new Queue<number>();
    await withServer({
      perMessageDeflate: mode.options,
      message(ws, data) {
        ws.send(data);
      },
      error(error) {
        errors.push(error);
      },
      close(_ws, code) {
        closes.push(code);
      },
    }, async (harness) => {
      const bystander = await openDeflate(harness, mode.response);
      const attacker = await openDeflate(harness, mode.response);
      const started = performance.now();
      await attacker.sendFrame(Op.Binary, payload, { rsv: RSV1 });
      const close = parseClose(await attacker.nextFrame());
      const elapsed = performance.now() - started;
      assert.equal(close.code, 1009);
      assert.equal(close.reason, `Message too big: it inflates to more than ${16 * MiB} bytes`);
      await attacker.waitClosed();
      assert.equal(attacker.endReceived, true);
      const error = await errors.next("the error handler");
      assert.ok(error instanceof WebSocketError);
      assert.equal(error.code, "WS_ERR_MESSAGE_TOO_BIG");
      assert.equal(await closes.next("the close handler"), 1009);
      console.log(`  refused in ${elapsed.toFixed(0)} ms (send to Close)`);
      // The server is fine: the other connection still echoes, compressed.
      const zlib = new ClientDeflate(mode.takeover);
      try {
        const message = "still here ".repeat(200);
        await bystander.sendFrame(Op.Text, await zlib.compress(message), { rsv: RSV1 });
        const frame = await nextData(bystander);
        assert.equal(frame.rsv, RSV1);
        assert.equal(text(await zlib.inflate(frame.payload)), message);
        await bystander.sendClose(1000);
        assert.equal(parseClose(await bystander.nextFrame()).code, 1000);
        await bystander.waitClosed();
      } finally {
        zlib.close();
      }
      await assertReleased(harness);
    });
  });
}
