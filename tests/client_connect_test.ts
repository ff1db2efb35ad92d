/**
 * End to end: how `connect()` reaches a server and what it refuses before trying: IPv6,
 * `localhost`, `http:` URLs, a refused port, aborts before and during the handshake, and the
 * TypeErrors and RangeErrors of bad URLs and options.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import {
  type ClientWebSocket,
  connect,
  type ConnectOptions,
  serve,
  WebSocketError,
} from "../mod.ts";
import { Queue } from "./_harness.ts";
import { rejection, withRawServer } from "./_raw_server.ts";

/** Echoes on `hostname`, runs `body` with its port, shuts it down. */
async function withEcho(
  hostname: string,
  body: (port: number, hosts: Queue<string>) => Promise<void>,
): Promise<void> {
  const hosts = new Queue<string>();
  const server = serve({
    hostname,
    port: 0,
    upgrade(request) {
      hosts.push(`${request.headers.get("host")} from ${request.remoteAddress}`);
    },
    message(ws, data) {
      ws.send(data);
    },
  });
  try {
    await body(server.port, hosts);
  } finally {
    await server.shutdown({ timeout: 1000 });
  }
}

/** Sends one message and waits for its echo, then closes. */
async function roundTrip(url: string | URL): Promise<ClientWebSocket> {
  const echoes = new Queue<string | Uint8Array>();
  const ws = await connect(url, {
    message(_ws, data) {
      echoes.push(data);
    },
  });
  ws.send("ping?");
  assert.equal(await echoes.next("the echo"), "ping?");
  ws.close(1000);
  assert.equal((await ws.closed).code, 1000);
  return ws;
}

test("client connect: IPv6 ws://[::1]:port", async () => {
  await withEcho("::1", async (port, hosts) => {
    const ws = await roundTrip(`ws://[::1]:${port}/v6`);
    assert.equal(ws.url, `ws://[::1]:${port}/v6`);
    assert.equal(ws.remoteAddress, "::1");
    assert.equal(ws.remotePort, port);
    assert.equal(await hosts.next("the upgrade"), `[::1]:${port} from ::1`);
  });
});

test("client connect: localhost, and http: taken as ws:", async () => {
  await withEcho("127.0.0.1", async (port, hosts) => {
    const ws = await roundTrip(`ws://localhost:${port}`);
    assert.equal(ws.url, `ws://localhost:${port}/`);
    assert.equal(await hosts.next("the upgrade"), `localhost:${port} from 127.0.0.1`);
    const http = await roundTrip(`http://127.0.0.1:${port}/x?y=1`);
    assert.equal(http.url, `ws://127.0.0.1:${port}/x?y=1`);
    assert.equal(await hosts.next("the upgrade"), `127.0.0.1:${port} from 127.0.0.1`);
    // A URL object works as well as a string.
    await roundTrip(new URL(`ws://127.0.0.1:${port}/`));
    await hosts.next("the upgrade");
  });
});

test("client connect: a refused port rejects with WS_ERR_CONNECT and the runtime's error", async () => {
  // A port that was just free: nothing listens on it.
  const free = net.createServer();
  await new Promise<void>((resolve) => free.listen(0, "127.0.0.1", resolve));
  const port = (free.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => free.close(() => resolve()));
  const error = await rejection(connect(`ws://127.0.0.1:${port}/`));
  assert.ok(error instanceof WebSocketError);
  assert.equal(error.name, "WebSocketError");
  assert.equal(error.code, "WS_ERR_CONNECT");
  assert.equal(error.closeCode, 1006);
  assert.equal(error.message, `Cannot connect to 127.0.0.1:${port}: the connection was refused`);
  assert.ok(error.cause instanceof Error, "the cause is the runtime's error");
});

test("client abort: a signal aborted before connect rejects with its reason, no connection", async () => {
  await withRawServer(undefined, async (server) => {
    const controller = new AbortController();
    const reason = new Error("not now");
    controller.abort(reason);
    assert.equal(await rejection(connect(server.url(), { signal: controller.signal })), reason);
    // Default reason: the DOMException AbortError.
    const error = await rejection(connect(server.url(), { signal: AbortSignal.abort() }));
    assert.ok(error instanceof DOMException);
    assert.equal(error.name, "AbortError");
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(server.accepted, 0, "no TCP connection was made");
  });
});

test("client abort: aborting during the handshake rejects with the reason and closes the socket", async () => {
  await withRawServer(undefined, async (server) => {
    const controller = new AbortController();
    const connecting = rejection(connect(server.url(), { signal: controller.signal }));
    const peer = await server.nextPeer(); // The request arrived; no answer is coming.
    const reason = new Error("changed my mind");
    controller.abort(reason);
    assert.equal(await connecting, reason);
    await peer.waitGone();
  });
});

test("client abort: aborting after the handshake does nothing", async () => {
  await withRawServer((peer) => void peer.accept(), async (server) => {
    const controller = new AbortController();
    const ws = await connect(server.url(), { signal: controller.signal });
    controller.abort();
    await new Promise((resolve) => setTimeout(resolve, 20));
    assert.equal(ws.readyState, 1);
    ws.terminate();
    await ws.closed;
  });
});

test("client URL: a fragment, a bad scheme or no URL at all is a TypeError", async () => {
  const cases: Array<[unknown, RegExp]> = [
    ["ws://127.0.0.1:1/#frag", /^Cannot connect: a WebSocket URL has no fragment$/],
    ["ftp://127.0.0.1:1/", /^Cannot connect: the URL.s scheme must be ws: or wss:, not ftp:$/],
    ["file:///tmp/x", /the URL's scheme must be ws: or wss:, not file:$/],
    ["not a url", /^Cannot connect: "not a url" is not a URL$/],
    ["", /^Cannot connect: "" is not a URL$/],
    [42, /^Cannot connect: the URL must be a string or a URL, got 42$/],
  ];
  for (const [url, message] of cases) {
    const error = await rejection(connect(url as string, { handshakeTimeout: 1000 }));
    assert.ok(error instanceof TypeError, `${String(url)}: ${error}`);
    assert.match(error.message, message);
  }
});

test("client options: bad values are TypeErrors and RangeErrors that name the option", async () => {
  const cases: Array<[unknown, "TypeError" | "RangeError", RegExp]> = [
    [null, "TypeError", /^Cannot connect: the options must be an object, got null$/],
    [
      { maxPayloadLength: 0 },
      "RangeError",
      /^Cannot connect: maxPayloadLength must be an integer above 0, got 0$/,
    ],
    [
      { maxPayloadLength: 1.5 },
      "RangeError",
      /maxPayloadLength must be an integer above 0, got 1\.5/,
    ],
    [
      { maxPayloadLength: "1" },
      "TypeError",
      /maxPayloadLength must be an integer above 0, got "1"/,
    ],
    [
      { handshakeTimeout: -1 },
      "RangeError",
      /handshakeTimeout must be an integer of 0 or more, got -1/,
    ],
    [{ closeTimeout: 0 }, "RangeError", /closeTimeout must be an integer above 0, got 0/],
    [{ idleTimeout: NaN }, "RangeError", /idleTimeout must be an integer of 0 or more, got NaN/],
    [{ maxBackpressure: -1 }, "RangeError", /maxBackpressure must be an integer of 0 or more/],
    [
      { heartbeat: true },
      "TypeError",
      /heartbeat must be false or \{ interval, timeout \}, got true/,
    ],
    [
      { heartbeat: { interval: 0 } },
      "RangeError",
      /heartbeat\.interval must be an integer above 0/,
    ],
    [
      { backpressurePolicy: "block" },
      "TypeError",
      /backpressurePolicy must be "drop" or "close", got "block"/,
    ],
    [
      { perMessageDeflate: "yes" },
      "TypeError",
      /perMessageDeflate must be true, false or options, got "yes"/,
    ],
    [
      { perMessageDeflate: { mode: "both" } },
      "RangeError",
      /perMessageDeflate\.mode must be "shared" or "dedicated"/,
    ],
    [
      { perMessageDeflate: { clientMaxWindowBits: 7 } },
      "RangeError",
      /clientMaxWindowBits must be an integer from 8 to 15, got 7/,
    ],
    [
      { perMessageDeflate: { serverMaxWindowBits: 16 } },
      "RangeError",
      /serverMaxWindowBits must be an integer from 8 to 15, got 16/,
    ],
    [
      { perMessageDeflate: { level: 10 } },
      "RangeError",
      /level must be an integer from 0 to 9, got 10/,
    ],
    [{ perMessageDeflate: { threshold: -1 } }, "RangeError", /threshold must be an integer from 0/],
    [
      { perMessageDeflate: { level: "1" } },
      "TypeError",
      /^Cannot connect: perMessageDeflate\.level must be an integer from 0 to 9, got "1"$/,
    ],
    [{ protocols: ["a b"] }, "TypeError", /the subprotocol "a b" is not a token/],
    [{ protocols: ["chat", "chat"] }, "TypeError", /the subprotocol "chat" is offered twice/],
    [{ headers: { Host: "evil" } }, "TypeError", /the header "Host" is written by the handshake/],
    [{ headers: { "Sec-WebSocket-Key": "x" } }, "TypeError", /is written by the handshake/],
    [{ headers: { "X-A": "line\r\nInjected: 1" } }, "TypeError", /X-A/],
    [{ headers: { "bad name": "x" } }, "TypeError", /bad name/],
    [
      { ca: 5 },
      "TypeError",
      /^Cannot connect: ca must be a PEM string or an array of them, got 5$/,
    ],
    [{ serverName: 5 }, "TypeError", /^Cannot connect: serverName must be a string, got 5$/],
    [{ signal: {} }, "TypeError", /^Cannot connect: signal must be an AbortSignal/],
    [{ message: "hi" }, "TypeError", /^Cannot connect: message must be a function, got "hi"$/],
  ];
  for (const [options, name, message] of cases) {
    const error = await rejection(
      connect("ws://127.0.0.1:1/", options as ConnectOptions),
    );
    assert.ok(error instanceof Error, `${JSON.stringify(options)}: ${error}`);
    assert.equal(error.name, name, `${JSON.stringify(options)}: ${error.message}`);
    assert.match(error.message, message, JSON.stringify(options));
  }
});

test("client options: an unknown option is warned about, and ignored", async () => {
  const warnings: string[] = [];
  const warn = console.warn;
  console.warn = (...args: unknown[]) => void warnings.push(args.join(" "));
  try {
    await withRawServer((peer) => void peer.accept(), async (server) => {
      const ws = await connect(server.url(), { protocol: "chat" } as ConnectOptions);
      ws.terminate();
      await ws.closed;
    });
  } finally {
    console.warn = warn;
  }
  assert.deepEqual(warnings, ['sluice: connect ignores the unknown option "protocol"']);
});

test("client connect: 100 connections at once, each with its own messages", async () => {
  await withEcho("127.0.0.1", async (port) => {
    const got = new Map<number, string[]>();
    const all = await Promise.all(
      Array.from({ length: 100 }, (_, i) =>
        connect(`ws://127.0.0.1:${port}/${i}`, {
          open(ws) {
            ws.send(`hello from open ${i}`); // The WebSocket works inside open.
          },
          message(_ws, data) {
            got.set(i, [...(got.get(i) ?? []), data as string]);
          },
        })),
    );
    all.forEach((ws, i) => ws.send(`second ${i}`));
    const deadline = Date.now() + 5000;
    while ([...got.values()].flat().length < 200 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    for (let i = 0; i < 100; i++) {
      assert.deepEqual(got.get(i), [`hello from open ${i}`, `second ${i}`]);
    }
    for (const ws of all) ws.close();
    await Promise.all(all.map((ws) => ws.closed));
  });
});
