/**
 * End to end: the opening handshake over real loopback sockets, valid and refused.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import type { ServeOptions } from "../mod.ts";
import {
  acceptFor,
  encodeFrame,
  type HttpResponse,
  newKey,
  Op,
  text,
  upgradeRequest,
} from "./_client.ts";
import { withServer } from "./_harness.ts";

const echo = {
  message(ws: { send(data: string | Uint8Array): number }, data: string | Uint8Array) {
    ws.send(data);
  },
};

test("handshake: a valid request gets 101 with the right Sec-WebSocket-Accept", async () => {
  await withServer(echo, async ({ open }) => {
    // The sample key of RFC 6455 §1.3, whose answer the RFC spells out.
    const { response } = await open({ key: "dGhlIHNhbXBsZSBub25jZQ==" });
    assert.equal(response.statusLine, "HTTP/1.1 101 Switching Protocols");
    assert.equal(response.headers.get("sec-websocket-accept"), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    assert.equal(response.headers.has("sec-websocket-protocol"), false);
    assert.equal(response.headers.has("sec-websocket-extensions"), false);
    // And a random key (openWebSocket checks the accept value against our own SHA-1).
    const key = newKey();
    const second = await open({ key });
    assert.equal(second.response.headers.get("sec-websocket-accept"), acceptFor(key));
  });
});

test("handshake: a request written one byte at a time still upgrades", async () => {
  await withServer(echo, async ({ connect }) => {
    const client = await connect();
    const key = newKey();
    const request = Buffer.from(upgradeRequest({ key }), "latin1");
    for (let i = 0; i < request.length; i++) {
      await client.write(request.subarray(i, i + 1));
      // A real pause between bytes, so that each one arrives in its own read.
      if (i % 8 === 0) await new Promise((resolve) => setTimeout(resolve, 1));
    }
    const response = await client.response();
    assert.equal(response.status, 101);
    assert.equal(response.headers.get("sec-websocket-accept"), acceptFor(key));
    await client.sendFrame(Op.Text, "after a slow handshake");
    const frame = await client.nextFrame();
    assert.equal(frame.opcode, Op.Text);
    assert.equal(text(frame.payload), "after a slow handshake");
  });
});

test("handshake: a frame pipelined in the same write as the request is not lost", async () => {
  await withServer(echo, async ({ open }) => {
    const pipelined = Buffer.concat([
      encodeFrame(Op.Text, "first"),
      encodeFrame(Op.Binary, new Uint8Array([1, 2, 3])),
    ]);
    const { client } = await open({ pipelined });
    const first = await client.nextFrame();
    assert.equal(first.opcode, Op.Text);
    assert.equal(text(first.payload), "first");
    const second = await client.nextFrame();
    assert.equal(second.opcode, Op.Binary);
    assert.deepEqual([...second.payload], [1, 2, 3]);
  });
});

/** Sends `request` raw, checks the response, then that the server closed TCP. */
async function refused(
  request: string,
  options: ServeOptions,
  check: (response: HttpResponse) => void,
): Promise<void> {
  let opened = 0;
  await withServer({ ...options, open: () => void opened++ }, async ({ connect }) => {
    const client = await connect();
    await client.write(request);
    const response = await client.response();
    check(response);
    // "Connection: close" (a 426 may add "Upgrade" to the list, RFC 9110 §7.8).
    const connection = (response.headers.get("connection") ?? "").toLowerCase().split(/\s*,\s*/);
    assert.ok(connection.includes("close"), `Connection: ${connection}`);
    assert.equal(response.headers.get("content-length"), String(response.body.length));
    // A refusal is an HTTP response and then the end of the TCP connection.
    await client.waitClosed();
    assert.equal(client.endReceived, true, "the server should close with FIN, not a reset");
    assert.equal(opened, 0);
  });
}

test("handshake: POST gets 405 with Allow: GET, then TCP close", async () => {
  await refused(
    upgradeRequest().replace(/^GET /, "POST "),
    {},
    (response) => {
      assert.equal(response.status, 405);
      assert.equal(response.headers.get("allow"), "GET");
    },
  );
});

test("handshake: Sec-WebSocket-Version 8 gets 426 with Sec-WebSocket-Version: 13", async () => {
  await refused(
    upgradeRequest().replace("Sec-WebSocket-Version: 13", "Sec-WebSocket-Version: 8"),
    {},
    (response) => {
      assert.equal(response.status, 426);
      assert.equal(response.headers.get("sec-websocket-version"), "13");
    },
  );
});

test("handshake: a missing Sec-WebSocket-Key gets 400 with a reason in the body", async () => {
  await refused(
    upgradeRequest().replace(/Sec-WebSocket-Key: [^\r]*\r\n/, ""),
    {},
    (response) => {
      assert.equal(response.status, 400);
      assert.match(text(response.body), /Sec-WebSocket-Key/);
    },
  );
});

test("handshake: a head over maxHeadSize gets 431", async () => {
  await refused(
    upgradeRequest({ extra: [`X-Padding: ${"a".repeat(1200)}`] }),
    { maxHeadSize: 1024 },
    (response) => {
      assert.equal(response.status, 431);
      assert.match(text(response.body), /1024/);
    },
  );
});

test("handshake: a plain GET without Upgrade gets 426", async () => {
  await refused("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", {}, (response) => {
    assert.equal(response.status, 426);
    assert.equal(response.headers.get("upgrade")?.toLowerCase(), "websocket");
    assert.equal(response.headers.get("sec-websocket-version"), "13");
  });
});
