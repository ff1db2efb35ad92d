/**
 * End to end: a client that breaks RFC 6455 gets a Close frame with the right code, then the
 * end of the TCP connection, and the error handler gets a WebSocketError saying why.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { type ServeOptions, WebSocketError } from "../mod.ts";
import { Op, parseClose, type RawClient } from "./_client.ts";
import { Queue, withServer } from "./_harness.ts";

/** Bytes from hex digits; spaces are ignored. */
function hex(digits: string): Uint8Array {
  const clean = digits.replaceAll(" ", "");
  return Uint8Array.from(
    { length: clean.length / 2 },
    (_, i) => parseInt(clean.slice(2 * i, 2 * i + 2), 16),
  );
}

interface Case {
  name: string;
  options?: ServeOptions;
  send(client: RawClient): Promise<void>;
  closeCode: number;
  errorCode: string;
}

const cases: Case[] = [
  {
    name: "an unmasked frame gives 1002",
    send: (client) => client.sendFrame(Op.Text, "hi", { mask: null }),
    closeCode: 1002,
    errorCode: "WS_ERR_UNMASKED_FRAME",
  },
  {
    name: "a text message that is not UTF-8 gives 1007",
    // "κόσμε" then a UTF-16 surrogate (ED A0 80), which UTF-8 forbids.
    send: (client) => client.sendFrame(Op.Text, hex("ceba e1bdb9 cf83 cebc ceb5 eda080")),
    closeCode: 1007,
    errorCode: "WS_ERR_INVALID_UTF8",
  },
  {
    name: "invalid UTF-8 in the first fragment gives 1007 before the message ends",
    send: (client) => client.sendFrame(Op.Text, new Uint8Array([0x61, 0xff]), { fin: false }),
    closeCode: 1007,
    errorCode: "WS_ERR_INVALID_UTF8",
  },
  {
    name: "a message over maxPayloadLength gives 1009",
    options: { maxPayloadLength: 1024 },
    send: (client) => client.sendFrame(Op.Binary, new Uint8Array(1025)),
    closeCode: 1009,
    errorCode: "WS_ERR_MESSAGE_TOO_BIG",
  },
  {
    name: "fragments adding up to more than maxPayloadLength give 1009",
    options: { maxPayloadLength: 1024 },
    send: async (client) => {
      await client.sendFrame(Op.Text, "a".repeat(600), { fin: false });
      await client.sendFrame(Op.Continuation, "a".repeat(600));
    },
    closeCode: 1009,
    errorCode: "WS_ERR_MESSAGE_TOO_BIG",
  },
  {
    name: "a continuation with no message to continue gives 1002",
    send: (client) => client.sendFrame(Op.Continuation, "x"),
    closeCode: 1002,
    errorCode: "WS_ERR_UNEXPECTED_CONTINUATION",
  },
  {
    name: "a reserved opcode gives 1002",
    send: (client) => client.sendFrame(0x3, "x"),
    closeCode: 1002,
    errorCode: "WS_ERR_INVALID_OPCODE",
  },
  {
    name: "RSV1 without a negotiated extension gives 1002",
    send: (client) => client.sendFrame(Op.Text, "x", { rsv: 4 }),
    closeCode: 1002,
    errorCode: "WS_ERR_RESERVED_BITS",
  },
  {
    name: "a fragmented ping gives 1002",
    send: (client) => client.sendFrame(Op.Ping, "x", { fin: false }),
    closeCode: 1002,
    errorCode: "WS_ERR_FRAGMENTED_CONTROL_FRAME",
  },
  {
    name: "a Close frame with code 1005 gives 1002",
    send: (client) => client.sendFrame(Op.Close, new Uint8Array([0x03, 0xed])),
    closeCode: 1002,
    errorCode: "WS_ERR_INVALID_CLOSE_CODE",
  },
];

for (const c of cases) {
  test(`protocol error: ${c.name}`, async () => {
    const errors = new Queue<unknown>();
    const closes = new Queue<number>();
    const messages: unknown[] = [];
    await withServer({
      ...c.options,
      message(_ws, data) {
        messages.push(data);
      },
      error(error) {
        errors.push(error);
      },
      close(_ws, code) {
        closes.push(code);
      },
    }, async ({ open }) => {
      const { client } = await open();
      await c.send(client);
      const frame = await client.nextFrame();
      const { code, reason } = parseClose(frame);
      assert.equal(code, c.closeCode);
      const error = await errors.next("the error handler");
      assert.ok(error instanceof WebSocketError, `not a WebSocketError: ${error}`);
      assert.equal(error.code, c.errorCode);
      assert.equal(error.closeCode, c.closeCode);
      assert.equal(error.name, "WebSocketError");
      // The reason describes the peer's fault (cut to fit a control frame).
      assert.equal(reason, error.message.slice(0, 123));
      assert.equal(await closes.next("the close handler"), c.closeCode);
      // Failing the connection: the Close frame, then the end of TCP (RFC 6455 §7.1.7).
      await client.waitClosed();
      assert.equal(client.endReceived, true);
      assert.deepEqual(messages, []);
      assert.equal(errors.items.length, 1);
    });
  });
}

test("protocol error: a message of exactly maxPayloadLength is accepted", async () => {
  const sizes = new Queue<number>();
  await withServer({
    maxPayloadLength: 1024,
    message(ws, data) {
      sizes.push((data as Uint8Array).length);
      ws.send("ok");
    },
  }, async ({ open }) => {
    const { client } = await open();
    await client.sendFrame(Op.Binary, new Uint8Array(1024));
    assert.equal(await sizes.next("the message"), 1024);
    assert.equal((await client.nextFrame()).opcode, Op.Text);
  });
});
