/**
 * The fault-injection proxy of tests/_fault_proxy.ts, against a `node:net` server that records
 * what it gets, and against sluice's own server and client: forwarding, cuts at a byte count,
 * a byte sequence, a predicate and a seeded random point, stalls, refusals, held accepts,
 * cleanup, and what a WebSocket sees when its connection is cut.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import { Buffer } from "node:buffer";
import { connect, HandshakeError, type ServeOptions, WebSocketError } from "../mod.ts";
import { within } from "./_client.ts";
import { type FaultProxy, startFaultProxy } from "./_fault_proxy.ts";
import { pattern, Queue, sleep, waitFor, withServer } from "./_harness.ts";

const encoder = new TextEncoder();

/** One end of a TCP connection that records everything it sees. */
class End {
  readonly socket: net.Socket;
  readonly chunks: Uint8Array[] = [];
  received = 0;
  /** Whether a FIN arrived. */
  ended = false;
  /** The error code of a failed read (`ECONNRESET` for an RST). */
  error: string | undefined;
  isClosed = false;
  readonly closed: Promise<void>;

  constructor(socket: net.Socket) {
    this.socket = socket;
    socket.on("data", (chunk: Uint8Array) => {
      this.chunks.push(chunk);
      this.received += chunk.length;
    });
    socket.on("end", () => this.ended = true);
    socket.on("error", (error: NodeJS.ErrnoException) => this.error ??= error.code);
    this.closed = new Promise((resolve) =>
      socket.on("close", () => {
        this.isClosed = true;
        resolve();
      })
    );
  }

  /** Everything received, as one array. */
  get bytes(): Uint8Array {
    return new Uint8Array(Buffer.concat(this.chunks));
  }

  get text(): string {
    return Buffer.concat(this.chunks).toString("utf8");
  }

  /** Writes `data` and resolves once it was handed to the kernel. */
  write(data: string | Uint8Array): Promise<void> {
    return new Promise((resolve, reject) =>
      this.socket.write(data, (error) => error ? reject(error) : resolve())
    );
  }

  /** How the connection ended as this end saw it. */
  get outcome(): string {
    return this.error ?? (this.ended ? "FIN" : "open");
  }
}

/** What a test body gets from {@linkcode withProxy}. */
interface ProxyHarness {
  proxy: FaultProxy;
  /** The server side of each connection that reached the target, in order. */
  servers: Queue<End>;
  /** A client connected to the proxy (after its TCP connect). */
  dial(): Promise<End>;
  /** A client dialling the proxy, not waiting for the connect (which may fail). */
  attempt(): End;
}

/**
 * Runs `body` with a recording `node:net` server behind a fresh proxy; afterwards closes the
 * proxy, every client and the server, so nothing outlives the test.
 */
async function withProxy(body: (harness: ProxyHarness) => Promise<void>): Promise<void> {
  const servers = new Queue<End>();
  const server = net.createServer(
    { allowHalfOpen: true },
    (socket) => servers.push(new End(socket)),
  );
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as net.AddressInfo).port;
  const proxy = await startFaultProxy({ target: { host: "127.0.0.1", port } });
  const clients: End[] = [];
  const attempt = () => {
    const socket = net.connect({ host: "127.0.0.1", port: proxy.port, allowHalfOpen: true });
    const end = new End(socket);
    clients.push(end);
    return end;
  };
  const dial = async () => {
    const end = attempt();
    await new Promise<void>((resolve, reject) => {
      end.socket.once("connect", resolve);
      end.socket.once("error", reject);
    });
    return end;
  };
  try {
    await body({ proxy, servers, dial, attempt });
  } finally {
    await proxy.close();
    for (const end of [...clients, ...servers.items]) end.socket.destroy();
    await Promise.all([...clients, ...servers.items].map((end) => end.closed));
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
  assert.equal(proxy.connections.length, 0, "no connection outlives close()");
}

// ---------------------------------------------------------------------------------------------
// Forwarding

test("proxy: forwards both ways intact, 4 MiB each way at once, and counts the bytes", async () => {
  await withProxy(async ({ proxy, servers, dial }) => {
    const client = await dial();
    const server = await servers.next("the proxied connection");
    const connection = await proxy.nextConnection();
    const up = pattern(4 << 20, 1);
    const down = pattern(4 << 20, 2);
    await Promise.all([client.write(up), server.write(down)]);
    await waitFor(
      () => server.received === up.length && client.received === down.length,
      "both payloads",
    );
    assert.deepEqual(server.bytes, up);
    assert.deepEqual(client.bytes, down);
    assert.deepEqual(connection.forwarded, { up: up.length, down: down.length });
    assert.deepEqual(proxy.totals.forwarded, { up: up.length, down: down.length });
    assert.equal(proxy.totals.connections, 1);
    // A FIN is passed on in each direction, and the connection then closes.
    client.socket.end();
    await waitFor(() => server.ended, "the client's FIN at the server");
    assert.equal(client.ended, false, "a half-close stays half");
    server.socket.end();
    await within(connection.closed, "the connection to close");
    await waitFor(() => client.ended, "the server's FIN at the client");
    assert.equal(connection.cutReport, undefined);
    assert.equal(proxy.connections.length, 0);
  });
});

test("proxy: a reset by one peer reaches the other as a reset", async () => {
  await withProxy(async ({ proxy, servers, dial }) => {
    const client = await dial();
    const server = await servers.next("the proxied connection");
    const connection = await proxy.nextConnection();
    server.socket.resetAndDestroy();
    await within(connection.closed, "the connection to close");
    await within(client.closed, "the client to close");
    assert.equal(client.outcome, "ECONNRESET");
  });
});

test("proxy: a target that refuses the connection resets the client's", async () => {
  const free = net.createServer();
  await new Promise<void>((resolve) => free.listen(0, "127.0.0.1", resolve));
  const port = (free.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => free.close(() => resolve()));
  const proxy = await startFaultProxy({ target: { host: "127.0.0.1", port } });
  try {
    const client = new End(net.connect({ host: "127.0.0.1", port: proxy.port }));
    await within(client.closed, "the client to close");
    assert.equal(client.outcome, "ECONNRESET");
    const connection = await proxy.nextConnection();
    await within(connection.closed, "the connection to close");
    assert.equal(connection.cutReport, undefined, "not a cut: the target was down");
  } finally {
    await proxy.close();
  }
});

// ---------------------------------------------------------------------------------------------
// Cuts

test("proxy cut: afterBytes up delivers exactly N bytes, then both peers see a reset", async () => {
  await withProxy(async ({ proxy, servers, dial }) => {
    proxy.addRule({ direction: "up", afterBytes: 1000 });
    const client = await dial();
    const server = await servers.next("the proxied connection");
    const connection = await proxy.nextConnection();
    const data = pattern(5000, 3);
    await client.write(data.subarray(0, 600));
    await waitFor(() => server.received === 600, "the first 600 bytes");
    await client.write(data.subarray(600)).catch(() => {});
    await within(Promise.all([client.closed, server.closed]), "both peers to close");
    assert.deepEqual(server.bytes, data.subarray(0, 1000));
    assert.equal(server.outcome, "ECONNRESET");
    assert.equal(client.outcome, "ECONNRESET");
    assert.equal(connection.cutReport?.cause, "rule");
    assert.equal(connection.cutReport?.direction, "up");
    assert.deepEqual(connection.cutReport?.forwarded, { up: 1000, down: 0 });
    assert.match(connection.cutReport!.description, /^connection #1 cut \(reset\) by rule on up/);
    assert.equal(proxy.totals.cut, 1);
  });
});

test("proxy cut: afterBytes down of 0 forwards nothing; how 'end' closes with a FIN", async () => {
  await withProxy(async ({ proxy, servers, dial }) => {
    // Every rule not used up applies to the next connection: the first gets both (and the
    // 0-byte one fires first), the second only the second rule.
    proxy.addRule({ direction: "down", afterBytes: 0 });
    proxy.addRule({ direction: "down", afterBytes: 7, how: "end" }, 2);
    {
      const client = await dial();
      const server = await servers.next("the first connection");
      const connection = await proxy.nextConnection();
      await server.write("hello");
      await within(Promise.all([client.closed, server.closed]), "the first connection's peers");
      assert.equal(client.received, 0);
      assert.equal(client.outcome, "ECONNRESET");
      assert.deepEqual(connection.cutReport?.rule, { direction: "down", afterBytes: 0 });
    }
    {
      const client = await dial();
      const server = await servers.next("the second connection");
      const connection = await proxy.nextConnection();
      await server.write("hello, ");
      await server.write("world").catch(() => {});
      await waitFor(() => client.ended && server.ended, "a FIN at both peers");
      await within(connection.closed, "the connection to close");
      assert.equal(client.text, "hello, ");
      assert.equal(client.outcome, "FIN", "a cut with how 'end' is a FIN, not a reset");
      assert.equal(server.outcome, "FIN");
      assert.equal(connection.cutReport?.how, "end");
    }
    // Both rules are used up: the next connection is forwarded.
    const client = await dial();
    const server = await servers.next("the third connection");
    await server.write("free");
    await waitFor(() => client.text === "free", "the fourth connection's bytes");
  });
});

test("proxy cut: a live connection's rule counts from when it is added", async () => {
  await withProxy(async ({ proxy, servers, dial }) => {
    const client = await dial();
    const server = await servers.next("the proxied connection");
    const connection = await proxy.nextConnection();
    await server.write("0123456789");
    await waitFor(() => client.received === 10, "the first 10 bytes");
    connection.addRule({ direction: "down", afterBytes: 3 });
    await server.write("abcdef");
    await within(client.closed, "the client to close");
    assert.equal(client.text, "0123456789abc");
  });
});

test("proxy cut: a match split over two chunks is found; at 'end' forwards it, 'start' not", async () => {
  for (const at of ["end", "start"] as const) {
    await withProxy(async ({ proxy, servers, dial }) => {
      proxy.addRule({ direction: "down", match: '"t":"ack"', at });
      const client = await dial();
      const server = await servers.next("the proxied connection");
      await server.write('{"t":"msg","seq":1}{"t":"a');
      await waitFor(() => client.received === 26, "the first chunk");
      await server.write('ck","seq":1}{"t":"msg","seq":2}').catch(() => {});
      await within(client.closed, "the client to close");
      // "start" cannot recall the bytes of the match that went out in the first chunk, so it
      // cuts at the start of the chunk that completed it.
      assert.equal(
        client.text,
        at === "end" ? '{"t":"msg","seq":1}{"t":"ack"' : '{"t":"msg","seq":1}{"t":"a',
      );
      assert.equal(client.outcome, "ECONNRESET");
    });
  }
});

test("proxy cut: a match within one chunk at 'start' forwards nothing of it; occurrence", async () => {
  await withProxy(async ({ proxy, servers, dial }) => {
    proxy.addRule({ direction: "down", match: encoder.encode("ack"), occurrence: 2 });
    const client = await dial();
    const server = await servers.next("the proxied connection");
    await server.write("ack 1, ack 2, ack 3");
    await within(client.closed, "the client to close");
    assert.equal(client.text, "ack 1, ");
  });
});

test("proxy cut: a predicate cuts at the shortest prefix it holds for, across chunks", async () => {
  await withProxy(async ({ proxy, servers, dial }) => {
    const asked: number[] = [];
    proxy.addRule({
      direction: "up",
      when(seen) {
        asked.push(seen.length);
        // True once 3 newlines passed: the third message is complete.
        return seen.filter((byte) => byte === 0x0a).length >= 3;
      },
    });
    const client = await dial();
    const server = await servers.next("the proxied connection");
    await client.write("one\ntw");
    await waitFor(() => server.received === 6, "the first chunk");
    await client.write("o\nthree\nfour\n").catch(() => {});
    await within(server.closed, "the server to close");
    assert.equal(server.text, "one\ntwo\nthree\n");
    assert.equal(server.outcome, "ECONNRESET");
    assert.ok(asked.every((length) => length <= 6 + 13), "only bytes that passed are shown");
  });
});

test("proxy cut: seeded random cuts are reproducible and land where they were drawn", async () => {
  const runs: number[][] = [];
  for (let run = 0; run < 2; run++) {
    await withProxy(async ({ proxy, servers, dial }) => {
      proxy.addRule({ direction: "up", random: { seed: 1234, min: 10, max: 3000 } }, 5);
      const data = pattern(4000, 5);
      const cuts: number[] = [];
      for (let i = 0; i < 5; i++) {
        const client = await dial();
        const server = await servers.next(`connection ${i}`);
        const connection = await proxy.nextConnection();
        const [draw] = connection.draws;
        assert.deepEqual(draw.seed, 1234);
        assert.equal(draw.draw, i);
        await client.write(data).catch(() => {});
        await within(server.closed, `connection ${i} to be cut`);
        assert.deepEqual(server.bytes, data.subarray(0, draw.afterBytes), `draw ${i}`);
        assert.match(
          connection.cutReport!.description,
          new RegExp(`random cut after ${draw.afterBytes} bytes up \\(seed 1234, draw ${i}\\)`),
        );
        cuts.push(draw.afterBytes);
      }
      assert.ok(cuts.every((cut) => cut >= 10 && cut <= 3000));
      assert.ok(new Set(cuts).size > 1, `different points: ${cuts}`);
      runs.push(cuts);
    });
  }
  assert.deepEqual(runs[0], runs[1]);
});

test("proxy cut: a random rule without a direction draws the direction too", async () => {
  await withProxy(async ({ proxy, servers, dial }) => {
    proxy.addRule({ random: { seed: 99, min: 1, max: 50 } }, Infinity);
    const directions = new Set<string>();
    for (let i = 0; i < 12; i++) {
      await dial();
      await servers.next(`connection ${i}`);
      const connection = await proxy.nextConnection();
      directions.add(connection.draws[0].direction);
      connection.cut();
      await within(connection.closed, "the connection to close");
    }
    assert.deepEqual([...directions].sort(), ["down", "up"]);
  });
});

test("proxy cut: cut() and cutAll() reset live connections; bad rules are RangeErrors", async () => {
  await withProxy(async ({ proxy, servers, dial }) => {
    const clients = [await dial(), await dial(), await dial()];
    const ends = [await servers.next("1"), await servers.next("2"), await servers.next("3")];
    const first = await proxy.nextConnection();
    first.cut();
    await within(Promise.all([clients[0].closed, ends[0].closed]), "the first connection's peers");
    assert.equal(first.cutReport?.cause, "cut");
    assert.equal(clients[0].outcome, "ECONNRESET");
    assert.equal(ends[0].outcome, "ECONNRESET");
    assert.equal(proxy.connections.length, 2);
    proxy.cutAll();
    await within(Promise.all([...clients, ...ends].map((end) => end.closed)), "all to close");
    assert.ok([...clients, ...ends].every((end) => end.outcome === "ECONNRESET"));
    assert.equal(proxy.totals.cut, 3);
    assert.throws(() => proxy.addRule({ direction: "up", afterBytes: -1 }), {
      name: "RangeError",
      message: "Cannot add the rule: afterBytes must be an integer >= 0, got -1",
    });
    assert.throws(() => proxy.addRule({ random: { seed: 1, min: 5, max: 4 } }), {
      name: "RangeError",
      message: "Cannot add the rule: random.max is below random.min",
    });
  });
});

// ---------------------------------------------------------------------------------------------
// Stalls

test("proxy stall: holds bytes and the FIN without closing; unstall releases them in order", async () => {
  await withProxy(async ({ proxy, servers, dial }) => {
    const client = await dial();
    const server = await servers.next("the proxied connection");
    const connection = await proxy.nextConnection();
    connection.stall("down");
    for (const part of ["a", "b", "c"]) {
      await server.write(part);
      await sleep(5);
    }
    server.socket.end();
    await client.write("up still flows");
    await waitFor(() => server.text === "up still flows", "the up direction");
    await sleep(50);
    assert.equal(client.received, 0, "nothing down while stalled");
    assert.equal(client.ended, false, "nor the FIN");
    assert.equal(connection.isOpen, true);
    connection.unstall("down");
    await waitFor(() => client.ended, "the FIN after the bytes");
    assert.equal(client.text, "abc");
    assert.deepEqual(connection.held, { up: 0, down: 0 });
  });
});

test("proxy stall: the proxy's stall covers new connections until unstall", async () => {
  await withProxy(async ({ proxy, servers, dial }) => {
    proxy.stall();
    const client = await dial();
    const server = await servers.next("the proxied connection");
    await client.write("ping");
    await server.write("pong");
    await sleep(50);
    assert.equal(server.received, 0);
    assert.equal(client.received, 0);
    proxy.unstall();
    await waitFor(() => server.text === "ping" && client.text === "pong", "both after unstall");
    // A cut while stalled drops what was held.
    const connection = await proxy.nextConnection();
    connection.stall("up");
    await client.write("never");
    await sleep(20);
    connection.cut();
    await within(server.closed, "the server to close");
    assert.equal(server.text, "ping");
  });
});

// ---------------------------------------------------------------------------------------------
// Accepting

test("proxy refuseNext: the next n connections are closed at once; then forwarded", async () => {
  await withProxy(async ({ proxy, servers, dial, attempt }) => {
    proxy.refuseNext(2);
    for (let i = 0; i < 2; i++) {
      // The reset may come before the connect is reported: the connect then fails with it.
      const client = attempt();
      await within(client.closed, "a refused connection to close");
      assert.equal(client.received, 0);
      assert.equal(client.outcome, "ECONNRESET");
    }
    proxy.refuseNext(1, "end");
    const ended = attempt();
    await waitFor(() => ended.ended, "a FIN from the proxy");
    assert.equal(ended.outcome, "FIN");
    const client = await dial();
    const server = await servers.next("the forwarded connection");
    await client.write("hi");
    await waitFor(() => server.text === "hi", "the bytes");
    assert.equal(servers.items.length, 1, "no refused connection reached the target");
    assert.equal(proxy.totals.refused, 3);
    assert.equal(proxy.totals.connections, 1);
    proxy.refuseNext(Infinity);
    const refused = attempt();
    await within(refused.closed, "a refused connection to close");
    proxy.refuseNext(0);
    await dial();
    await servers.next("a connection after refuseNext(0)");
  });
});

test("proxy pauseAccepting: new connections wait unanswered until resumeAccepting", async () => {
  await withProxy(async ({ proxy, servers, dial }) => {
    proxy.pauseAccepting();
    const client = await dial();
    await client.write("early");
    await sleep(50);
    assert.equal(servers.items.length, 0, "the target was not dialled");
    assert.equal(proxy.waiting, 1);
    proxy.resumeAccepting();
    const server = await servers.next("the connection after resume");
    await waitFor(() => server.text === "early", "the bytes sent while waiting");
    assert.equal(proxy.waiting, 0);
  });
});

test("proxy close: every connection, stalled or waiting, is closed, and the port too", async () => {
  const server = net.createServer((socket) => void new End(socket));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as net.AddressInfo).port;
  const proxy = await startFaultProxy({ target: { host: "127.0.0.1", port } });
  const dial = async () => {
    const end = new End(net.connect({ host: "127.0.0.1", port: proxy.port }));
    await new Promise((resolve) => end.socket.once("connect", resolve));
    return end;
  };
  try {
    const open = await dial();
    const stalled = await dial();
    (await proxy.nextConnection()) && (await proxy.nextConnection()).stall();
    proxy.pauseAccepting();
    const waiting = await dial();
    await waitFor(() => proxy.waiting === 1, "the held connection");
    await proxy.close();
    await within(Promise.all([open, stalled, waiting].map((end) => end.closed)), "the clients");
    assert.equal(proxy.connections.length, 0);
    await proxy.close(); // Again: resolves at once.
    const refused = new End(net.connect({ host: "127.0.0.1", port: proxy.port }));
    await refused.closed;
    assert.equal(refused.error, "ECONNREFUSED");
    await assert.rejects(proxy.nextConnection(10), {
      message: "timed out after 10 ms waiting for a proxied connection",
    });
  } finally {
    await proxy.close();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
});

// ---------------------------------------------------------------------------------------------
// sluice through the proxy

/** Runs `body` with sluice's server behind a proxy; the proxy is closed afterwards. */
async function withSluice(
  options: ServeOptions<undefined>,
  body: (proxy: FaultProxy, url: string) => Promise<void>,
): Promise<void> {
  await withServer(options, async ({ port }) => {
    const proxy = await startFaultProxy({ target: { host: "127.0.0.1", port } });
    try {
      await body(proxy, `ws://127.0.0.1:${proxy.port}/`);
    } finally {
      await proxy.close();
    }
  });
}

test("proxy + sluice: a cut in the middle of a frame closes both ends with 1006", async () => {
  const serverCloses = new Queue<number>();
  await withSluice({
    message(ws, data) {
      ws.send(data);
    },
    close(_ws, code) {
      serverCloses.push(code);
    },
  }, async (proxy, url) => {
    const messages: unknown[] = [];
    const errors: unknown[] = [];
    const ws = await connect(url, {
      message(_ws, data) {
        messages.push(data);
      },
      error(error) {
        errors.push(error);
      },
    });
    const connection = await proxy.nextConnection();
    ws.send("short");
    await waitFor(() => messages.length === 1, "the first echo");
    // The echo of 1000 bytes is a 4-byte header then the payload: cut 10 bytes into it.
    connection.addRule({ direction: "down", afterBytes: 10 });
    ws.send("x".repeat(1000));
    assert.deepEqual(await within(ws.closed, "the client to close"), { code: 1006, reason: "" });
    assert.deepEqual(messages, ["short"]);
    assert.equal(errors.length, 1);
    assert.ok(errors[0] instanceof WebSocketError);
    assert.equal(errors[0].code, "WS_ERR_CONNECTION_LOST");
    assert.equal(errors[0].closeCode, 1006);
    assert.equal(errors[0].message, "The TCP connection broke");
    assert.equal(await serverCloses.next("the server's close"), 1006);
  });
});

test("proxy + sluice: a cut in the middle of the handshake fails connect with 1006", async () => {
  const upgrades = new Queue<string>();
  await withSluice({
    upgrade(request) {
      upgrades.push(request.url);
    },
  }, async (proxy, url) => {
    // In the request (it reaches the server incomplete), and in the 101's status line
    // ("HTTP/1.1 101 Switching Protocols\r\n" is 34 bytes).
    for (
      const rule of [{ direction: "up", afterBytes: 50 }, {
        direction: "down",
        afterBytes: 20,
      }] as const
    ) {
      proxy.addRule(rule);
      const error = await connect(url).then(() => assert.fail("connect should fail"), (e) => e);
      assert.ok(error instanceof HandshakeError, `${error}`);
      assert.ok(error instanceof WebSocketError);
      assert.equal(error.code, "WS_ERR_HANDSHAKE_INCOMPLETE");
      assert.equal(error.closeCode, 1006);
      assert.equal(
        error.message,
        "Handshake failed: the connection ended before the response head was complete",
      );
      const connection = await proxy.nextConnection();
      await within(connection.closed, "the cut connection to close");
      assert.equal(connection.cutReport?.direction, rule.direction);
    }
    assert.equal(upgrades.items.length, 1, "only the whole request reached the upgrade hook");
  });
});

test("proxy + sluice: cut between a message and its ack: processed, ack never seen", async () => {
  const processed = new Queue<string>();
  await withSluice({
    message(ws, data) {
      processed.push(String(data));
      ws.send(JSON.stringify({ t: "ack", seq: 1 }));
    },
  }, async (proxy, url) => {
    proxy.addRule({ direction: "down", match: '"t":"ack"' });
    const messages: unknown[] = [];
    const ws = await connect(url, {
      message(_ws, data) {
        messages.push(data);
      },
      error() {},
    });
    ws.send('{"t":"msg","seq":1}');
    assert.equal(await processed.next("the message at the server"), '{"t":"msg","seq":1}');
    assert.equal((await within(ws.closed, "the client to close")).code, 1006);
    assert.deepEqual(messages, []);
  });
});
