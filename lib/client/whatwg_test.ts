/**
 * The WHATWG WebSocket facade against sluice's server (and, for what a sluice server never
 * does, a raw `node:net` one): the constructor's checks, readyState, the events and their
 * order, binaryType, bufferedAmount, send and close as the WebSockets Standard has them.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import net from "node:net";
import { Buffer } from "node:buffer";
import type { ServeOptions, ServerWebSocket } from "../../mod.ts";
import { within } from "../../tests/_client.ts";
import { Queue, waitFor, withServer } from "../../tests/_harness.ts";
import { WebSocket, type WebSocketOptions } from "../../mod.ts";

type Received = [data: string | Uint8Array, isBinary: boolean];

/** Every event a facade fires, in order. */
function record(ws: WebSocket): Queue<Event> {
  const events = new Queue<Event>();
  for (const type of ["open", "message", "error", "close"]) {
    ws.addEventListener(type, (event) => events.push(event as Event));
  }
  return events;
}

/** The next event, which must be of `type`. */
async function expectEvent<E extends Event = Event>(
  events: Queue<Event>,
  type: string,
): Promise<E> {
  const event = await events.next(`the ${type} event`);
  assert.equal(event.type, type, `expected ${type}, got ${event.type}`);
  return event as E;
}

/** Opens a facade to a fresh server; closes it (and the server) after `body`. */
async function withSocket(
  serverOptions: ServeOptions<undefined>,
  body: (ws: WebSocket, events: Queue<Event>, port: number) => Promise<void>,
  protocols?: string | string[],
  options?: WebSocketOptions,
): Promise<void> {
  await withServer(serverOptions, async ({ port }) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/`, protocols, options);
    const events = record(ws);
    try {
      await body(ws, events, port);
    } finally {
      await closeQuietly(ws);
    }
  });
}

/** Closes a facade unless it is closed, and waits for its close event. */
async function closeQuietly(ws: WebSocket): Promise<void> {
  if (ws.readyState === WebSocket.CLOSED) return;
  const closed = new Promise((resolve) => ws.addEventListener("close", resolve));
  ws.close();
  await within(closed, "the close event");
}

/** A port nothing listens on. */
async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/**
 * A server sluice's could never be: it accepts the handshake, then hands the socket to
 * `accepted` to write whatever it likes.
 */
async function withRawServer(
  accepted: (socket: net.Socket) => void,
  body: (port: number) => Promise<void>,
): Promise<void> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on("error", () => {});
    let head = "";
    socket.on("data", function onData(chunk: Buffer) {
      head += chunk.toString("latin1");
      const end = head.indexOf("\r\n\r\n");
      if (end === -1) return;
      socket.off("data", onData);
      const key = /sec-websocket-key: *(\S+)/i.exec(head)![1];
      const accept = createHash("sha1").update(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11")
        .digest("base64");
      socket.write(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
          `Sec-WebSocket-Accept: ${accept}\r\n\r\n`,
      );
      accepted(socket);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  try {
    await body((server.address() as net.AddressInfo).port);
  } finally {
    for (const socket of sockets) socket.destroy();
    await new Promise((resolve) => server.close(resolve));
  }
}

function assertDomException(fn: () => unknown, name: string, message: RegExp): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof DOMException, `a DOMException, got ${error}`);
    assert.equal(error.name, name);
    assert.match(error.message, message);
    return true;
  });
}

test("whatwg: the readyState constants are on the class and its prototype, read-only", () => {
  const names = ["CONNECTING", "OPEN", "CLOSING", "CLOSED"] as const;
  names.forEach((name, value) => {
    assert.equal(WebSocket[name], value);
    assert.equal(WebSocket.prototype[name], value);
    for (const target of [WebSocket, WebSocket.prototype]) {
      const descriptor = Object.getOwnPropertyDescriptor(target, name)!;
      assert.equal(descriptor.writable, false);
      assert.equal(descriptor.configurable, false);
    }
  });
});

test("whatwg: the constructor refuses bad URLs with a SyntaxError", () => {
  const bad: Array<[string, RegExp]> = [
    ["not a url", /is not an absolute URL/],
    ["/relative/path", /is not an absolute URL/],
    ["ftp://127.0.0.1/", /scheme must be ws: or wss:, got ftp:/],
    ["file:///tmp/x", /scheme must be ws: or wss:, got file:/],
    ["ws://127.0.0.1/#frag", /must not have a fragment/],
    ["ws://127.0.0.1/#", /must not have a fragment/],
  ];
  for (const [url, message] of bad) {
    assertDomException(() => new WebSocket(url), "SyntaxError", message);
  }
  assert.throws(() => new (WebSocket as unknown as new () => WebSocket)(), {
    name: "TypeError",
    message: "Cannot construct a WebSocket: the URL is missing",
  });
});

test("whatwg: the constructor refuses duplicate or non-token subprotocols", () => {
  const url = "ws://127.0.0.1:1/";
  assertDomException(() => new WebSocket(url, ["chat", "chat"]), "SyntaxError", /offered twice/);
  for (const protocol of ["", "a b", "chat,v2", "é", "a/b"]) {
    assertDomException(() => new WebSocket(url, protocol), "SyntaxError", /is not a token/);
    assertDomException(() => new WebSocket(url, ["ok", protocol]), "SyntaxError", /not a token/);
  }
});

test("whatwg: the constructor throws for options it cannot use, as connect rejects", () => {
  const url = "ws://127.0.0.1:1/";
  assert.throws(() => new WebSocket(url, [], { maxPayloadLength: -1 }), { name: "RangeError" });
  assert.throws(
    () => new WebSocket(url, [], { handshakeTimeout: "soon" as unknown as number }),
    { name: "TypeError" },
  );
  assert.throws(
    () => new WebSocket(url, [], { ca: 42 as unknown as string }),
    { name: "TypeError", message: /^Cannot connect: ca must be a PEM string/ },
  );
});

test("whatwg: http: and https: become ws: and wss:; close() while CONNECTING fails it", async () => {
  for (
    const [given, url] of [
      ["http://127.0.0.1:1/a?b=1", "ws://127.0.0.1:1/a?b=1"],
      ["https://127.0.0.1:1", "wss://127.0.0.1:1/"],
      ["WS://127.0.0.1:80/", "ws://127.0.0.1/"],
    ]
  ) {
    const ws = new WebSocket(given);
    const events = record(ws);
    assert.equal(ws.url, url);
    assert.equal(ws.readyState, WebSocket.CONNECTING);
    assert.equal(ws.protocol, "");
    assert.equal(ws.extensions, "");
    assertDomException(() => ws.send("x"), "InvalidStateError", /not open yet/);
    ws.close();
    assert.equal(ws.readyState, WebSocket.CLOSING, "close() while connecting: CLOSING at once");
    const error = await expectEvent(events, "error");
    assert.ok(error instanceof Event);
    const close = await expectEvent<CloseEvent>(events, "close");
    assert.equal(close.code, 1006);
    assert.equal(close.reason, "");
    assert.equal(close.wasClean, false);
    assert.equal(ws.readyState, WebSocket.CLOSED);
    assert.equal(events.items.length, 2, "no open event");
    ws.close(); // Does nothing once closed.
  }
});

test("whatwg: a refused port: error, then close 1006 not clean, never open", async () => {
  const ws = new WebSocket(`ws://127.0.0.1:${await closedPort()}/`);
  const events = record(ws);
  const error = await expectEvent<ErrorEvent>(events, "error");
  assert.equal(ws.readyState, WebSocket.CLOSED, "CLOSED before the error event");
  assert.equal((error.error as { code?: string }).code, "WS_ERR_CONNECT");
  const close = await expectEvent<CloseEvent>(events, "close");
  assert.deepEqual([close.code, close.reason, close.wasClean], [1006, "", false]);
});

test("whatwg: a refused handshake: error, then close 1006", async () => {
  await withServer({
    upgrade: () => new Response("no", { status: 403 }),
  }, async ({ port }) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/`);
    const events = record(ws);
    const error = await expectEvent<ErrorEvent>(events, "error");
    assert.equal((error.error as { status?: number }).status, 403);
    const close = await expectEvent<CloseEvent>(events, "close");
    assert.deepEqual([close.code, close.wasClean], [1006, false]);
  });
});

test("whatwg: subprotocols offered and none chosen: error, close 1006, never open", async () => {
  await withServer({ protocols: ["other"] }, async ({ port }) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/`, ["chat", "superchat"]);
    const events = record(ws);
    const error = await expectEvent<ErrorEvent>(events, "error");
    assert.equal((error.error as { code?: string }).code, "WS_ERR_HANDSHAKE_SUBPROTOCOL");
    assert.equal(
      error.message,
      "Handshake failed: the server chose none of the subprotocols offered (chat, superchat)",
    );
    const close = await expectEvent<CloseEvent>(events, "close");
    assert.deepEqual([close.code, close.wasClean], [1006, false]);
    assert.equal(ws.readyState, WebSocket.CLOSED);
    assert.equal(events.items.filter((event) => event.type === "open").length, 0);
  });
});

test("whatwg: open, text and binary messages by binaryType, then a clean close", async () => {
  const closes = new Queue<[number, string]>();
  await withSocket({
    protocols: ["chat"],
    message(ws, data) {
      ws.send(data);
    },
    close(_ws, code, reason) {
      closes.push([code, reason]);
    },
  }, async (ws, events, port) => {
    assert.equal(ws.binaryType, "blob", "blob by default, as browsers");
    await expectEvent(events, "open");
    assert.equal(ws.readyState, WebSocket.OPEN);
    assert.equal(ws.protocol, "chat");
    assert.equal(ws.extensions, "");

    ws.send("héllo");
    const text = await expectEvent<MessageEvent>(events, "message");
    assert.equal(text.data, "héllo");
    assert.equal(text.origin, `ws://127.0.0.1:${port}`);

    ws.send(new Uint8Array([1, 2, 3]));
    const blob = await expectEvent<MessageEvent>(events, "message");
    assert.ok(blob.data instanceof Blob, "a Blob by default");
    assert.deepEqual(new Uint8Array(await blob.data.arrayBuffer()), new Uint8Array([1, 2, 3]));

    ws.binaryType = "arraybuffer";
    ws.binaryType = "nonsense" as "blob"; // Ignored, as WebIDL has it for enums.
    assert.equal(ws.binaryType, "arraybuffer");
    ws.send(new Uint16Array([0x0201, 0x0403]).subarray(1));
    const buffer = await expectEvent<MessageEvent>(events, "message");
    assert.ok(buffer.data instanceof ArrayBuffer);
    assert.deepEqual(new Uint8Array(buffer.data), new Uint8Array([3, 4]));

    ws.close(3001, "done");
    assert.equal(ws.readyState, WebSocket.CLOSING);
    const close = await expectEvent<CloseEvent>(events, "close");
    // The close event reports the server's Close frame, which echoes the code only.
    assert.deepEqual([close.code, close.reason, close.wasClean], [3001, "", true]);
    assert.equal(ws.readyState, WebSocket.CLOSED);
    assert.deepEqual(await closes.next("the server's close"), [3001, "done"]);
    assert.equal(events.items.filter((event) => event.type === "error").length, 0);
  }, ["superchat", "chat"]);
});

test("whatwg: the server closes: close event with its code and reason, clean", async () => {
  await withSocket({
    open(ws) {
      ws.close(4001, "bye");
    },
  }, async (ws, events) => {
    let stateInHandler = -1;
    ws.onclose = () => stateInHandler = ws.readyState;
    await expectEvent(events, "open");
    const close = await expectEvent<CloseEvent>(events, "close");
    assert.deepEqual([close.code, close.reason, close.wasClean], [4001, "bye", true]);
    assert.equal(stateInHandler, WebSocket.CLOSED);
  });
});

test("whatwg: close() without a code sends an empty Close frame (1005); a reason alone 1000", async () => {
  const closes = new Queue<[number, string]>();
  const serverOptions: ServeOptions<undefined> = {
    close(_ws, code, reason) {
      closes.push([code, reason]);
    },
  };
  await withSocket(serverOptions, async (ws, events) => {
    await expectEvent(events, "open");
    ws.close();
    const close = await expectEvent<CloseEvent>(events, "close");
    assert.deepEqual([close.code, close.wasClean], [1005, true]);
    assert.deepEqual(await closes.next("the server's close"), [1005, ""]);
  });
  await withSocket(serverOptions, async (ws, events) => {
    await expectEvent(events, "open");
    ws.close(undefined, "why");
    const close = await expectEvent<CloseEvent>(events, "close");
    assert.deepEqual([close.code, close.reason], [1000, ""]);
    assert.deepEqual(await closes.next("the server's close"), [1000, "why"]);
  });
});

test("whatwg: close() checks the code (InvalidAccessError) and the reason (SyntaxError)", async () => {
  const closes = new Queue<[number, string]>();
  await withSocket({
    close(_ws, code, reason) {
      closes.push([code, reason]);
    },
  }, async (ws, events) => {
    await expectEvent(events, "open");
    for (const code of [0, 999, 1001, 1005, 1006, 2999, 5000, 65535, NaN, 4999.5]) {
      assertDomException(() => ws.close(code), "InvalidAccessError", /1000 or from 3000 to 4999/);
    }
    assertDomException(
      () => ws.close(1000, "é".repeat(62)),
      "SyntaxError",
      /at most 123 bytes of UTF-8, got 124/,
    );
    // The code is checked before the reason.
    assertDomException(() => ws.close(1001, "é".repeat(62)), "InvalidAccessError", /got 1001/);
    assert.equal(ws.readyState, WebSocket.OPEN, "a refused close() changes nothing");
    const reason = "x".repeat(121) + "é"; // 123 bytes
    ws.close(3000.4, reason); // [Clamp]: 3000
    const close = await expectEvent<CloseEvent>(events, "close");
    assert.deepEqual([close.code, close.reason, close.wasClean], [3000, "", true]);
    assert.deepEqual(await closes.next("the server's close"), [3000, reason]);
  });
});

test("whatwg: bufferedAmount counts UTF-8 and binary bytes sent, until they are written", async () => {
  const received = new Queue<Received>();
  await withSocket({
    message(_ws, data, isBinary) {
      received.push([data, isBinary]);
    },
  }, async (ws, events) => {
    assert.equal(ws.bufferedAmount, 0);
    await expectEvent(events, "open");
    ws.send("héllo"); // 6 bytes
    ws.send("\u{1F600}\uD800"); // 4 + 3 (a lone surrogate goes as U+FFFD)
    ws.send(new ArrayBuffer(10));
    ws.send(new DataView(new ArrayBuffer(8), 2, 4));
    assert.equal(ws.bufferedAmount, 6 + 7 + 10 + 4);
    for (let i = 0; i < 20; i++) await Promise.resolve();
    assert.equal(ws.bufferedAmount, 27, "bufferedAmount changes between tasks only");
    await waitFor(() => ws.bufferedAmount === 0, "bufferedAmount to fall to 0");
    assert.deepEqual(await received.next("text"), ["héllo", false]);
    assert.deepEqual(await received.next("text"), ["\u{1F600}\uFFFD", false]);
    assert.deepEqual(await received.next("binary"), [new Uint8Array(10), true]);
    assert.deepEqual(await received.next("binary"), [new Uint8Array(4), true]);
  });
});

test("whatwg: send() once closing discards the message and still counts it", async () => {
  const received = new Queue<Received>();
  await withSocket({
    message(_ws, data, isBinary) {
      received.push([data, isBinary]);
    },
  }, async (ws, events) => {
    await expectEvent(events, "open");
    ws.send("first");
    await waitFor(() => ws.bufferedAmount === 0, "the first message to go");
    ws.close(1000);
    ws.send("abcd");
    assert.equal(ws.bufferedAmount, 4);
    await expectEvent(events, "close");
    ws.send(new Uint8Array(3));
    assert.equal(ws.bufferedAmount, 7, "after the close, each send adds its size");
    assert.deepEqual(await received.next("the first message"), ["first", false]);
    assert.equal(received.items.length, 1, "nothing sent after close() reaches the server");
  });
});

test("whatwg: messages that arrive after close() are not delivered", async () => {
  await withSocket({
    message(ws) {
      // Answers before it reads the client's Close frame, which follows the message.
      ws.send("late");
      ws.send(new Uint8Array(1));
    },
  }, async (ws, events) => {
    await expectEvent(events, "open");
    ws.send("go");
    ws.close(1000);
    const close = await expectEvent<CloseEvent>(events, "close");
    assert.deepEqual([close.code, close.wasClean], [1000, true]);
    assert.equal(events.items.filter((event) => event.type === "message").length, 0);
  });
});

test("whatwg: Blobs are sent in order with the messages around them, before a close()", async () => {
  const received = new Queue<Received>();
  const closes = new Queue<number>();
  await withSocket({
    message(_ws, data, isBinary) {
      received.push([data, isBinary]);
    },
    close(_ws, code) {
      closes.push(code);
    },
  }, async (ws, events) => {
    await expectEvent(events, "open");
    ws.send(new Blob(["blob one"]));
    ws.send("text");
    const bytes = new Uint8Array([7, 8, 9]);
    ws.send(bytes);
    bytes.fill(0); // Sent as it was when send() was called.
    ws.send(new Blob([new Uint8Array([1]), "2"]));
    assert.equal(ws.bufferedAmount, 8 + 4 + 3 + 2);
    ws.close(1000);
    assert.deepEqual(await received.next("blob one"), [new TextEncoder().encode("blob one"), true]);
    assert.deepEqual(await received.next("text"), ["text", false]);
    assert.deepEqual(await received.next("bytes"), [new Uint8Array([7, 8, 9]), true]);
    assert.deepEqual(await received.next("blob two"), [new Uint8Array([1, 0x32]), true]);
    assert.equal(await closes.next("the close"), 1000);
    await expectEvent(events, "close");
  });
});

test("whatwg: a large send is taken as it was at the call", async () => {
  const received = new Queue<Received>();
  await withSocket({
    message(_ws, data, isBinary) {
      received.push([data, isBinary]);
    },
  }, async (ws, events) => {
    await expectEvent(events, "open");
    const bytes = new Uint8Array(100_000).fill(5);
    ws.send(bytes.buffer);
    bytes.fill(6);
    const [data] = await received.next("the message");
    assert.equal((data as Uint8Array).length, 100_000);
    assert.ok((data as Uint8Array).every((byte) => byte === 5));
  });
});

test("whatwg: the server drops the connection: error, then close 1006 not clean", async () => {
  await withSocket({
    message(ws) {
      ws.terminate();
    },
  }, async (ws, events) => {
    await expectEvent(events, "open");
    ws.send("drop me");
    await expectEvent(events, "error");
    const close = await expectEvent<CloseEvent>(events, "close");
    assert.deepEqual([close.code, close.reason, close.wasClean], [1006, "", false]);
    assert.equal(ws.readyState, WebSocket.CLOSED);
  });
});

test("whatwg: a protocol error from the server fails the connection: error, close 1006", async () => {
  const closeFrames: Buffer[] = [];
  await withRawServer((socket) => {
    socket.on("data", (chunk: Buffer) => closeFrames.push(chunk));
    socket.write(Buffer.from([0x83, 0x00])); // Opcode 0x3 is reserved (RFC 6455 §5.2).
  }, async (port) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/`);
    const events = record(ws);
    await expectEvent(events, "open");
    const error = await expectEvent<ErrorEvent>(events, "error");
    assert.ok(error.error instanceof Error);
    const close = await expectEvent<CloseEvent>(events, "close");
    assert.deepEqual([close.code, close.wasClean], [1006, false]);
    // The client's own Close frame said 1002 (masked: byte 1 has the mask bit).
    await waitFor(() => closeFrames.length > 0, "the client's Close frame");
    const frame = closeFrames[0];
    assert.equal(frame[0], 0x88);
    const code = ((frame[6] ^ frame[2]) << 8) | (frame[7] ^ frame[3]);
    assert.equal(code, 1002);
  });
});

test("whatwg: a send past maxBackpressure closes the connection, flagged full", async () => {
  await withSocket(
    {},
    async (ws, events) => {
      await expectEvent(events, "open");
      ws.send(new Uint8Array(64 * 1024));
      ws.send(new Uint8Array(64 * 1024)); // Over the limit: dropped, and the connection with it.
      await expectEvent(events, "error");
      const close = await expectEvent<CloseEvent>(events, "close");
      assert.deepEqual([close.code, close.wasClean], [1006, false]);
      assert.ok(ws.bufferedAmount >= 64 * 1024, "the dropped message stays counted");
    },
    undefined,
    { maxBackpressure: 1024 },
  );
});

test("whatwg: the on… attributes: one listener each, in place when replaced, gone on null", async () => {
  await withSocket({
    message(ws, data) {
      ws.send(data);
    },
  }, async (ws, events) => {
    const calls: string[] = [];
    ws.addEventListener("message", () => calls.push("first listener"));
    ws.onmessage = () => calls.push("handler a");
    ws.addEventListener("message", () => calls.push("second listener"));
    ws.onmessage = function (this: WebSocket, event) {
      assert.equal(this, ws);
      calls.push(`handler b: ${event.data}`);
    };
    assert.equal(typeof ws.onmessage, "function");
    let opened = 0;
    ws.onopen = () => opened++;
    await expectEvent(events, "open");
    assert.equal(opened, 1);

    ws.send("one");
    await expectEvent(events, "message");
    assert.deepEqual(calls, ["first listener", "handler b: one", "second listener"]);

    calls.length = 0;
    ws.onmessage = null;
    assert.equal(ws.onmessage, null);
    ws.send("two");
    await expectEvent(events, "message");
    assert.deepEqual(calls, ["first listener", "second listener"]);

    calls.length = 0;
    ws.onmessage = () => calls.push("handler c");
    ws.send("three");
    await expectEvent(events, "message");
    assert.deepEqual(calls, ["first listener", "second listener", "handler c"], "added last");
  });
});

test("whatwg: the third argument takes sluice's options: headers, permessage-deflate", async () => {
  const headers = new Queue<string | null>();
  await withSocket(
    {
      perMessageDeflate: true,
      upgrade(request) {
        headers.push(request.headers.get("x-token"));
        return {};
      },
      message(ws: ServerWebSocket, data) {
        ws.send(data);
      },
    },
    async (ws, events) => {
      await expectEvent(events, "open");
      assert.equal(await headers.next("the request's header"), "abc");
      assert.match(ws.extensions, /^permessage-deflate/);
      const long = "compress me ".repeat(500);
      ws.send(long);
      const message = await expectEvent<MessageEvent>(events, "message");
      assert.equal(message.data, long);
    },
    [],
    { headers: { "X-Token": "abc" }, perMessageDeflate: true },
  );
});
