/**
 * End to end: `connect()` against sluice's own server (`serve`): messages of every length
 * encoding both ways, fragments and streams, subprotocols, the request's extra headers and the
 * server's refusals, permessage-deflate in each negotiation, the size limit, closing from
 * either side, `ws.closed`, `terminate()`, pings, the heartbeat, backpressure, pause and
 * resume.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  type ClientWebSocket,
  connect,
  type ConnectOptions,
  HandshakeError,
  SendStatus,
  type ServeOptions,
  type Server,
  type ServerWebSocket,
  WebSocketError,
} from "../mod.ts";
import { within } from "./_client.ts";
import { pattern, Queue, sleep, waitFor, withServer } from "./_harness.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

type Message = [data: string | Uint8Array, isBinary: boolean];
type Closed = [code: number, reason: string];

/** What a test body gets from {@linkcode withClients}. */
interface ClientHarness<T> {
  port: number;
  server: Server<T>;
  /** Connects to the server (`path` on it); the connection is dropped after the test. */
  connect(options?: ConnectOptions, path?: string): Promise<ClientWebSocket>;
}

/**
 * Runs `body` against a fresh server; afterwards drops every client connection it opened that
 * is still open, waits until each is closed, and shuts the server down.
 */
async function withClients<T = undefined>(
  options: ServeOptions<T>,
  body: (harness: ClientHarness<T>) => Promise<void>,
): Promise<void> {
  const clients: ClientWebSocket[] = [];
  await withServer<T>(options, async ({ server, port }) => {
    try {
      await body({
        port,
        server,
        async connect(connectOptions, path = "/") {
          const ws = await connect(`ws://127.0.0.1:${port}${path}`, connectOptions);
          clients.push(ws);
          return ws;
        },
      });
    } finally {
      for (const ws of clients) if (ws.readyState !== 3) ws.terminate();
      await within(Promise.all(clients.map((ws) => ws.closed)), "the clients to close");
    }
  });
}

/** A client whose messages go into a queue. */
function collecting(options: ConnectOptions = {}): [ConnectOptions, Queue<Message>] {
  const messages = new Queue<Message>();
  return [{
    ...options,
    message(_ws, data, isBinary) {
      messages.push([data, isBinary]);
    },
  }, messages];
}

const echo: ServeOptions<undefined> = {
  message(ws, data) {
    ws.send(data);
  },
};

// ---------------------------------------------------------------------------------------------
// Messages

test("client echo: text and binary of 0, 125, 126, 65535, 65536 bytes and 1 MiB", async () => {
  await withClients(echo, async ({ connect }) => {
    const [options, messages] = collecting();
    const ws = await connect(options);
    for (const size of [0, 125, 126, 65535, 65536, 1024 * 1024]) {
      const bytes = pattern(size, size + 1);
      // ASCII text from the same bytes, so its length in bytes is `size` too.
      const text = String.fromCharCode(...bytes.subarray(0, 1024).map((b) => 0x20 + (b % 95)))
        .repeat(Math.ceil(size / 1024)).slice(0, size);
      assert.notEqual(ws.send(text), SendStatus.Dropped);
      assert.notEqual(ws.send(bytes), SendStatus.Dropped);
      const [gotText, textIsBinary] = await messages.next(`${size} bytes of text`);
      assert.equal(textIsBinary, false);
      assert.equal(gotText, text, `text of ${size} bytes`);
      const [gotBytes, bytesIsBinary] = await messages.next(`${size} bytes of binary`);
      assert.equal(bytesIsBinary, true);
      assert.ok(gotBytes instanceof Uint8Array);
      assert.deepEqual(gotBytes, bytes, `binary of ${size} bytes`);
    }
  });
});

test("client: text with multi-byte characters, and sendText/sendBinary", async () => {
  await withClients(echo, async ({ connect }) => {
    const [options, messages] = collecting();
    const ws = await connect(options);
    const text = "héllo wörld — 你好 🌍".repeat(500);
    ws.sendText(text);
    ws.sendBinary(encoder.encode("as bytes"));
    ws.send(new Uint16Array([1, 2]).buffer); // An ArrayBuffer is binary.
    assert.deepEqual(await messages.next("text"), [text, false]);
    assert.deepEqual(await messages.next("binary"), [encoder.encode("as bytes"), true]);
    assert.deepEqual(await messages.next("an ArrayBuffer"), [new Uint8Array([1, 0, 2, 0]), true]);
  });
});

test("client: a message's bytes are never reused by sluice, across many reads", async () => {
  await withClients(echo, async ({ connect }) => {
    const [options, messages] = collecting();
    const ws = await connect(options);
    const kept: Uint8Array[] = [];
    // One message per read, small ones and large ones, all kept until the end.
    for (let i = 0; i < 40; i++) {
      ws.send(new Uint8Array(i % 2 === 0 ? 100 : 20_000).fill(i));
      kept.push((await messages.next(`message ${i}`))[0] as Uint8Array);
    }
    for (let i = 0; i < 40; i++) {
      assert.equal(kept[i].length, i % 2 === 0 ? 100 : 20_000);
      assert.ok(kept[i].every((byte) => byte === i), `message ${i} is intact`);
    }
  });
});

test("client fragment: a streamed message arrives piece by piece, fin on the last", async () => {
  const euro = encoder.encode("€"); // 3 bytes: split across fragments below.
  await withClients({
    async open(ws) {
      async function* text() {
        yield* [encoder.encode("abc"), euro.subarray(0, 1), euro.subarray(1)];
      }
      await ws.sendStream(text(), { binary: false });
      async function* chunks() {
        for (let i = 0; i < 3; i++) yield new Uint8Array(1000).fill(i);
      }
      await ws.sendStream(chunks());
    },
  }, async ({ connect }) => {
    const pieces = new Queue<[string | Uint8Array, boolean, boolean]>();
    await connect({
      message() {
        assert.fail("with a fragment handler, message is not called");
      },
      fragment(_ws, data, isBinary, fin) {
        // Copy views: they are of the socket's chunk.
        pieces.push([typeof data === "string" ? data : data.slice(), isBinary, fin]);
      },
    });
    let text = "";
    for (;;) {
      const [data, isBinary, fin] = await pieces.next("a text fragment");
      assert.equal(isBinary, false);
      assert.equal(typeof data, "string");
      text += data;
      if (fin) break;
    }
    assert.equal(text, "abc€", "a character split across fragments is decoded whole");
    const binary: Uint8Array[] = [];
    for (;;) {
      const [data, isBinary, fin] = await pieces.next("a binary fragment");
      assert.equal(isBinary, true);
      binary.push(data as Uint8Array);
      if (fin) break;
    }
    assert.ok(binary.length >= 2, `a streamed message in pieces, got ${binary.length}`);
    const whole = new Uint8Array(binary.reduce((n, piece) => n + piece.length, 0));
    let offset = 0;
    for (const piece of binary) {
      whole.set(piece, offset);
      offset += piece.length;
    }
    assert.equal(whole.length, 3000);
    for (let i = 0; i < 3; i++) {
      assert.ok(whole.subarray(i * 1000, (i + 1) * 1000).every((b) => b === i));
    }
  });
});

test("client sendStream: one message in fragments, other sends queued behind it", async () => {
  const fragments = new Queue<[number, boolean, boolean]>();
  await withClients({
    fragment(_ws, data, isBinary, fin) {
      const length = typeof data === "string" ? encoder.encode(data).length : data.length;
      fragments.push([length, isBinary, fin]);
    },
  }, async ({ connect }) => {
    const ws = await connect();
    let release!: () => void;
    const gate = new Promise<void>((resolve) => release = resolve);
    async function* source() {
      yield new Uint8Array(10);
      await gate;
      yield new Uint8Array(20);
      yield "thirty bytes of text, as utf8";
    }
    const streaming = ws.sendStream(source());
    ws.send("after"); // Waits behind the stream (RFC 6455 §5.4: no interleaving).
    await sleep(20);
    release();
    await streaming;
    const got: Array<[number, boolean, boolean]> = [];
    for (let i = 0; i < 4; i++) got.push(await fragments.next(`fragment ${i}`));
    const expected = [[10, true, false], [20, true, false], [29, true, true], [5, false, true]];
    assert.deepEqual(got, expected, "the stream's three fragments, then the other message");
  });
});

// ---------------------------------------------------------------------------------------------
// The handshake against sluice's server

test("client subprotocols: the server's choice is ws.protocol on both ends", async () => {
  const chosen = new Queue<string>();
  await withClients({
    protocols: ["chat", "superchat"],
    open(ws) {
      chosen.push(ws.protocol);
    },
  }, async ({ connect }) => {
    const ws = await connect({ protocols: ["superchat", "chat"] });
    assert.equal(ws.protocol, "superchat");
    assert.equal(await chosen.next("the server's open"), "superchat");
    const none = await connect({ protocols: ["mqtt"] });
    assert.equal(none.protocol, "");
    assert.equal(await chosen.next("the server's open"), "");
  });
});

test("client headers: the upgrade hook sees Authorization, Origin, Cookie, the path and query", async () => {
  const seen = new Queue<Record<string, string | null>>();
  await withClients({
    upgrade(request) {
      seen.push({
        authorization: request.headers.get("authorization"),
        origin: request.origin ?? null,
        cookie: request.headers.get("cookie"),
        custom: request.headers.get("x-custom"),
        host: request.headers.get("host"),
        target: request.target,
        room: request.searchParams.get("room"),
      });
      return { protocol: request.protocols.includes("b") ? "b" : undefined };
    },
  }, async ({ connect, port }) => {
    for (
      const headers of [
        {
          Authorization: "Bearer abc",
          Origin: "https://app.example",
          Cookie: "s=1; t=2",
          "X-Custom": "1",
        },
        new Headers({
          Authorization: "Bearer abc",
          Origin: "https://app.example",
          Cookie: "s=1; t=2",
          "X-Custom": "1",
        }),
        [
          ["Authorization", "Bearer abc"],
          ["Origin", "https://app.example"],
          ["Cookie", "s=1; t=2"],
          ["X-Custom", "1"],
        ] as Array<[string, string]>,
      ]
    ) {
      const ws = await connect({ headers, protocols: ["a", "b"] }, "/rooms?room=42");
      assert.equal(ws.protocol, "b");
      assert.deepEqual(await seen.next("the upgrade hook"), {
        authorization: "Bearer abc",
        origin: "https://app.example",
        cookie: "s=1; t=2",
        custom: "1",
        host: `127.0.0.1:${port}`,
        target: "/rooms?room=42",
        room: "42",
      });
      ws.close();
    }
  });
});

test("client refusal: the upgrade hook's Response reaches connect as a HandshakeError", async () => {
  await withClients({
    upgrade(request) {
      if (request.headers.get("authorization") === null) {
        return new Response("who are you?", { status: 401, headers: { "X-Why": "no token" } });
      }
      return new Response(JSON.stringify({ error: "banned" }), {
        status: 403,
        headers: { "Content-Type": "application/json" },
      });
    },
  }, async ({ connect }) => {
    for (
      const [headers, status, body, header] of [
        [undefined, 401, "who are you?", ["x-why", "no token"]],
        [{ Authorization: "x" }, 403, '{"error":"banned"}', ["content-type", "application/json"]],
      ] as const
    ) {
      const error = await connect({ headers }).then(
        () => assert.fail("connect should be refused"),
        (error) => error,
      );
      assert.ok(error instanceof HandshakeError);
      assert.equal(error.code, "WS_ERR_HANDSHAKE_REFUSED");
      assert.equal(error.closeCode, 1006);
      assert.equal(error.status, status);
      assert.match(error.message, new RegExp(`^Handshake refused: the server answered ${status} `));
      assert.equal(decoder.decode(error.body), body);
      assert.ok(
        error.headers.some(([name, value]) => name === header[0] && value === header[1]),
        `${header[0]} in ${JSON.stringify(error.headers)}`,
      );
      const length = error.headers.find(([name]) => name === "content-length")?.[1];
      assert.equal(length, String(encoder.encode(body).length));
    }
  });
});

// ---------------------------------------------------------------------------------------------
// permessage-deflate

/** A message that compresses well, different for each `seed`. */
function compressible(size: number, seed: number): string {
  const words = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta"];
  let text = "";
  let x = seed | 1;
  while (text.length < size) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    text += words[x & 7] + " ";
  }
  return text.slice(0, size);
}

const NO_TAKEOVER = "server_no_context_takeover; client_no_context_takeover";
const dedicated = { mode: "dedicated" } as const;

test("client deflate: negotiated in each mode, with the window limits, messages intact", async () => {
  const cases: Array<
    [ConnectOptions["perMessageDeflate"], ServeOptions["perMessageDeflate"], string]
  > = [
    // The server's default mode, "shared", asks for no context takeover both ways.
    [true, true, `permessage-deflate; ${NO_TAKEOVER}`],
    [true, dedicated, "permessage-deflate"],
    [{ mode: "shared" }, dedicated, `permessage-deflate; ${NO_TAKEOVER}`],
    [{ clientMaxWindowBits: 9 }, dedicated, "permessage-deflate; client_max_window_bits=9"],
    [{ serverMaxWindowBits: 10 }, dedicated, "permessage-deflate; server_max_window_bits=10"],
    [
      { serverMaxWindowBits: 10 },
      true,
      `permessage-deflate; ${NO_TAKEOVER}; server_max_window_bits=10`,
    ],
    // Limits the server sets (within what the client offered): accepted, messages intact.
    [
      true,
      { ...dedicated, clientMaxWindowBits: 10 },
      "permessage-deflate; client_max_window_bits=10",
    ],
    [
      true,
      { ...dedicated, serverMaxWindowBits: 9 },
      "permessage-deflate; server_max_window_bits=9",
    ],
    [true, false, ""],
    [false, true, ""],
  ];
  for (const [client, server, extensions] of cases) {
    const what = `client ${JSON.stringify(client)}, server ${JSON.stringify(server)}`;
    const serverExtensions = new Queue<string>();
    await withClients({
      ...echo,
      perMessageDeflate: server,
      open(ws) {
        serverExtensions.push(ws.extensions);
      },
    }, async ({ connect, server: sluice }) => {
      const [options, messages] = collecting({ perMessageDeflate: client });
      const ws = await connect(options);
      assert.equal(ws.extensions, extensions, what);
      assert.equal(await serverExtensions.next("open"), extensions, what);
      for (let i = 0; i < 3; i++) {
        const text = compressible(64 * 1024, i + 1);
        ws.send(text);
        assert.deepEqual(await messages.next("the echo"), [text, false], what);
      }
      const stats = sluice.stats();
      if (extensions === "") {
        assert.equal(stats.compressedIn, 0, what);
      } else {
        assert.equal(stats.rawIn, 3 * 64 * 1024, what);
        assert.ok(
          stats.compressedIn < stats.rawIn / 2,
          `${what}: compressed ${stats.compressedIn}`,
        );
      }
    });
  }
});

test("client deflate: context takeover shrinks a repeated message; shared mode does not", async () => {
  // 4 KiB of base64-like text: hardly compressible alone, but all of it a match for a copy.
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  const text = [...pattern(4096, 7)].map((b) => alphabet[b & 63]).join("");
  const sizes: Record<string, number[]> = {};
  for (const mode of ["dedicated", "shared"] as const) {
    await withClients({ perMessageDeflate: dedicated }, async ({ connect, server }) => {
      const ws = await connect({ perMessageDeflate: { mode } });
      sizes[mode] = [];
      for (let i = 0; i < 2; i++) {
        const before = server.stats().compressedIn;
        ws.send(text);
        await waitFor(() => server.stats().messagesIn === i + 1, "the message");
        sizes[mode].push(server.stats().compressedIn - before);
      }
    });
  }
  const [first, second] = sizes.dedicated;
  assert.ok(first > 2048, `the first message compresses little: ${first} bytes`);
  assert.ok(second < first / 10, `with context takeover: ${first} then ${second} bytes`);
  const [firstShared, secondShared] = sizes.shared;
  assert.equal(secondShared, firstShared, "without context takeover each message stands alone");
});

// ---------------------------------------------------------------------------------------------
// Limits and closing

test("client maxPayloadLength: a larger message fails the connection with 1009", async () => {
  const serverCloses = new Queue<Closed>();
  await withClients({
    message(ws, data) {
      ws.send(new Uint8Array(Number(data)));
    },
    close(_ws, code, reason) {
      serverCloses.push([code, reason]);
    },
  }, async ({ connect }) => {
    const errors: unknown[] = [];
    const closes = new Queue<Closed>();
    const [options, messages] = collecting({
      maxPayloadLength: 1000,
      error(error) {
        errors.push(error);
      },
      close(_ws, code, reason) {
        closes.push([code, reason]);
      },
    });
    const ws = await connect(options);
    ws.send("1000");
    assert.equal(((await messages.next("1000 bytes"))[0] as Uint8Array).length, 1000);
    ws.send("1001");
    const [code, reason] = await closes.next("the client's close handler");
    assert.equal(code, 1009);
    assert.equal(errors.length, 1);
    const error = errors[0];
    assert.ok(error instanceof WebSocketError);
    assert.equal(error.code, "WS_ERR_MESSAGE_TOO_BIG");
    assert.equal(error.closeCode, 1009);
    assert.equal(reason, error.message);
    // The server got the client's Close frame with the code and the reason.
    assert.deepEqual(await serverCloses.next("the server's close handler"), [1009, error.message]);
    assert.deepEqual(await ws.closed, { code: 1009, reason: error.message });
    assert.equal(messages.items.length, 1, "the message over the limit is not delivered");
  });
});

test("client close: code and reason reach the server; the server's answer reaches ws.closed", async () => {
  const serverCloses = new Queue<Closed>();
  await withClients({
    close(_ws, code, reason) {
      serverCloses.push([code, reason]);
    },
  }, async ({ connect }) => {
    const closes = new Queue<Closed>();
    const states: number[] = [];
    const ws = await connect({
      close(ws, code, reason) {
        states.push(ws.readyState);
        closes.push([code, reason]);
      },
    });
    ws.close(4001, "client leaves");
    assert.equal(ws.readyState, 2);
    ws.close(4002, "again"); // Closing already: nothing more is sent.
    assert.deepEqual(await serverCloses.next("the server's close handler"), [
      4001,
      "client leaves",
    ]);
    // RFC 6455 §5.5.1: the server echoes the code.
    assert.deepEqual(await closes.next("the client's close handler"), [4001, ""]);
    assert.deepEqual(await ws.closed, { code: 4001, reason: "" });
    assert.deepEqual(states, [3]);
    assert.equal(closes.items.length, 1);
    // Closed: nothing goes out, and that is no error.
    assert.equal(ws.send("x"), SendStatus.Dropped);
    assert.equal(ws.ping(), undefined);
  });
});

test("client close: an empty close, and codes and reasons that may not be sent", async () => {
  const serverCloses = new Queue<Closed>();
  await withClients({
    close(_ws, code, reason) {
      serverCloses.push([code, reason]);
    },
  }, async ({ connect }) => {
    const ws = await connect();
    assert.throws(() => ws.close(1005), { name: "RangeError" });
    assert.throws(() => ws.close(1006), { name: "RangeError" });
    assert.throws(() => ws.close(999), { name: "RangeError" });
    assert.throws(() => ws.close(1000, "x".repeat(124)), { name: "RangeError" });
    assert.equal(ws.readyState, 1, "a refused close() leaves the connection open");
    ws.close();
    assert.deepEqual(await serverCloses.next("the server's close handler"), [1005, ""]);
    assert.deepEqual(await ws.closed, { code: 1005, reason: "" });
  });
});

test("client close: the server's close reaches the client's handler and ws.closed", async () => {
  await withClients({
    message(ws, data) {
      ws.close(4002, `server says ${data}`);
    },
  }, async ({ connect }) => {
    const closes = new Queue<Closed>();
    const ws = await connect({
      close(_ws, code, reason) {
        closes.push([code, reason]);
      },
    });
    const closed = ws.closed; // Asked for before the close.
    ws.send("bye");
    assert.deepEqual(await closes.next("the close handler"), [4002, "server says bye"]);
    assert.deepEqual(await closed, { code: 4002, reason: "server says bye" });
    assert.deepEqual(await ws.closed, { code: 4002, reason: "server says bye" });
    assert.equal(ws.readyState, 3);
  });
});

test("client terminate: both ends see 1006, the close handler runs once", async () => {
  const serverCloses = new Queue<Closed>();
  await withClients({
    close(_ws, code, reason) {
      serverCloses.push([code, reason]);
    },
  }, async ({ connect }) => {
    const closes: Closed[] = [];
    const ws = await connect({
      close(_ws, code, reason) {
        closes.push([code, reason]);
      },
    });
    ws.send("queued, then dropped");
    ws.terminate();
    assert.deepEqual(await ws.closed, { code: 1006, reason: "" });
    assert.deepEqual(await serverCloses.next("the server's close handler"), [1006, ""]);
    ws.terminate(); // Again: nothing happens.
    ws.close(); // Closed already: nothing happens.
    await sleep(20);
    assert.deepEqual(closes, [[1006, ""]]);
  });
});

test("client close: a server shutdown closes the client with 1001", async () => {
  const closes = new Queue<Closed>();
  await withClients({}, async ({ connect, server }) => {
    const ws = await connect({
      close(_ws, code, reason) {
        closes.push([code, reason]);
      },
    });
    await server.shutdown({ timeout: 1000 });
    const [code] = await closes.next("the close handler");
    assert.equal(code, 1001);
    assert.equal((await ws.closed).code, 1001);
  });
});

// ---------------------------------------------------------------------------------------------
// Pings, heartbeat, flow control

test("client ping/pong: both directions, with payloads", async () => {
  const serverPings = new Queue<string>();
  const serverPongs = new Queue<string>();
  await withClients({
    message(ws, data) {
      ws.ping(String(data));
    },
    ping(_ws, data) {
      serverPings.push(decoder.decode(data));
    },
    pong(_ws, data) {
      serverPongs.push(decoder.decode(data));
    },
  }, async ({ connect }) => {
    const pings = new Queue<string>();
    const pongs = new Queue<string>();
    const ws = await connect({
      ping(_ws, data) {
        pings.push(decoder.decode(data));
      },
      pong(_ws, data) {
        pongs.push(decoder.decode(data));
      },
    });
    ws.ping("from the client");
    assert.equal(await serverPings.next("the server's ping handler"), "from the client");
    assert.equal(await pongs.next("the client's pong handler"), "from the client");
    ws.send("from the server");
    assert.equal(await pings.next("the client's ping handler"), "from the server");
    assert.equal(await serverPongs.next("the server's pong handler"), "from the server");
    ws.pong("unsolicited");
    assert.equal(await serverPongs.next("the server's pong handler"), "unsolicited");
    assert.throws(() => ws.ping(new Uint8Array(126)), { name: "RangeError" });
  });
});

test("client heartbeat: pings after the interval, ws.latency set from the pong", async () => {
  const serverPings = new Queue<number>();
  await withClients({
    ping(_ws, data) {
      serverPings.push(data.length);
    },
  }, async ({ connect }) => {
    const ws = await connect({ heartbeat: { interval: 50, timeout: 2000 } });
    assert.equal(ws.latency, undefined);
    assert.equal(await serverPings.next("a heartbeat ping"), 0);
    await waitFor(() => ws.latency !== undefined, "ws.latency");
    assert.equal(typeof ws.latency, "number");
    assert.ok(ws.latency! >= 0 && ws.latency! < 2000, `latency ${ws.latency}`);
    assert.equal(ws.readyState, 1);
    // Still going: another ping after another interval of silence.
    assert.equal(await serverPings.next("a second heartbeat ping"), 0);
  });
});

test("client backpressure: Backpressure while the server does not read, drain and flushed() after", async () => {
  let serverWs: ServerWebSocket<undefined> | undefined;
  let received = 0;
  await withClients({
    readPause: false,
    open(ws) {
      serverWs = ws;
      ws.pause();
    },
    message() {
      received++;
    },
  }, async ({ connect }) => {
    const drains: number[] = [];
    const ws = await connect({
      drain(ws) {
        drains.push(ws.bufferedAmount);
      },
    });
    await waitFor(() => serverWs !== undefined, "the server's open");
    const chunk = pattern(256 * 1024);
    let sent = 0;
    // Fill the TCP buffers until the client's own queue holds bytes.
    while (ws.bufferedAmount === 0) {
      assert.ok(sent < 512, "the queue should fill before 128 MiB");
      assert.notEqual(ws.send(chunk), SendStatus.Dropped);
      sent++;
      await sleep(2);
    }
    assert.equal(ws.send(chunk), SendStatus.Backpressure);
    sent++;
    let flushed = false;
    const flushing = ws.flushed().then(() => flushed = true);
    await sleep(50);
    assert.equal(flushed, false, "flushed() waits while the server does not read");
    assert.ok(ws.bufferedAmount > 0);
    // Sends that met backpressure while the TCP buffers filled got their drain; this one not yet.
    const drainsBefore = drains.length;
    serverWs!.resume();
    await within(flushing, "flushed()");
    assert.equal(ws.bufferedAmount, 0);
    await waitFor(() => drains.length > drainsBefore, "the drain handler");
    assert.deepEqual(drains.slice(drainsBefore), [0], "one drain, with an empty queue");
    await waitFor(() => received === sent, `${sent} messages at the server`, 10_000);
    assert.equal(ws.droppedMessages, 0);
  });
});

test("client backpressure: over maxBackpressure a send is Dropped, reported once", async () => {
  let serverWs: ServerWebSocket<undefined> | undefined;
  await withClients({
    readPause: false,
    open(ws) {
      serverWs = ws;
      ws.pause();
    },
  }, async ({ connect }) => {
    const errors: unknown[] = [];
    const ws = await connect({
      maxBackpressure: 1024 * 1024,
      error(error) {
        errors.push(error);
      },
    });
    await waitFor(() => serverWs !== undefined, "the server's open");
    const chunk = pattern(256 * 1024);
    const statuses: number[] = [];
    for (let i = 0; i < 512 && !statuses.includes(SendStatus.Dropped); i++) {
      statuses.push(ws.send(chunk));
      await sleep(2);
    }
    assert.equal(statuses.at(-1), SendStatus.Dropped);
    assert.equal(ws.send(chunk), SendStatus.Dropped);
    assert.equal(ws.droppedMessages, 2);
    await waitFor(() => errors.length === 1, "the error handler");
    assert.ok(errors[0] instanceof WebSocketError);
    assert.equal((errors[0] as WebSocketError).code, "WS_ERR_BACKPRESSURE_DROP");
    assert.equal(ws.readyState, 1, 'the policy "drop" keeps the connection open');
    serverWs!.resume();
  });
});

test("client pause/resume: nothing is delivered while paused, everything after", async () => {
  await withClients({
    message(ws) {
      for (const text of ["a", "b", "c"]) ws.send(text);
    },
  }, async ({ connect }) => {
    const [options, messages] = collecting();
    const ws = await connect(options);
    ws.pause();
    assert.equal(ws.isPaused, true);
    ws.send("go"); // Sending goes on while paused.
    await sleep(100);
    assert.equal(messages.items.length, 0, "no message while paused");
    ws.resume();
    assert.equal(ws.isPaused, false);
    for (const text of ["a", "b", "c"]) assert.deepEqual(await messages.next(text), [text, false]);
  });
});

test("client: handlers that throw fail the connection with 1011", async () => {
  const serverCloses = new Queue<Closed>();
  await withClients({
    open(ws) {
      ws.send("boom");
    },
    close(_ws, code, reason) {
      serverCloses.push([code, reason]);
    },
  }, async ({ connect }) => {
    const errors: unknown[] = [];
    const thrown = new Error("handler failure");
    const ws = await connect({
      message() {
        throw thrown;
      },
      error(error) {
        errors.push(error);
      },
    });
    assert.deepEqual(await serverCloses.next("the server's close handler"), [1011, ""]);
    assert.equal((await ws.closed).code, 1011);
    assert.equal(errors[0], thrown);
  });
});
