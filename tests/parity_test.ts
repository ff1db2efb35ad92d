/**
 * End to end: what used to differ between Deno and Bun, or happened without a word. Sends in
 * `open` (the 101 is corked with them), the exact bytes of plain HTTP responses and of refusals,
 * and the one report a connection gives when it first drops a message under backpressure.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import { SendStatus, type ServerWebSocket, WebSocketError } from "../mod.ts";
import { Op, parseClose, type RawClient, text, upgradeRequest, within } from "./_client.ts";
import { Queue, withServer } from "./_harness.ts";
import { HttpClient } from "./_http_client.ts";

test("parity: sends in open are Sent, with nothing buffered, the 101 leaving with them", async () => {
  const seen = new Queue<{ before: number; statuses: SendStatus[]; after: number }>();
  await withServer({
    heartbeat: false,
    open(ws) {
      const before = ws.bufferedAmount;
      const statuses = [ws.send("x"), ws.send(new Uint8Array([1])), ws.send("y".repeat(1000))];
      seen.push({ before, statuses, after: ws.bufferedAmount });
    },
  }, async ({ open }) => {
    const { client } = await open();
    const { before, statuses, after } = await seen.next("open");
    assert.equal(before, 0, "the 101 is not data the application queued");
    assert.deepEqual(statuses, [SendStatus.Sent, SendStatus.Sent, SendStatus.Sent]);
    assert.equal(after, 3 + 3 + 1004, "the three frames, corked");
    assert.equal(text((await client.nextFrame()).payload), "x");
    assert.deepEqual((await client.nextFrame()).payload, new Uint8Array([1]));
    assert.equal(text((await client.nextFrame()).payload), "y".repeat(1000));
  });
});

test("parity: with maxBackpressure 0 the first send in open is not dropped for the 101", async () => {
  const seen = new Queue<SendStatus>();
  await withServer({
    heartbeat: false,
    maxBackpressure: 0,
    open(ws) {
      seen.push(ws.send("first"));
    },
  }, async ({ open }) => {
    const { client } = await open();
    // Every send reports backpressure at a limit of 0; none may be dropped for the 101 alone.
    assert.equal(await seen.next("open"), SendStatus.Backpressure);
    const frame = await client.nextFrame();
    assert.equal(frame.opcode, Op.Text);
    assert.equal(text(frame.payload), "first");
  });
});

const CAP = 1024 * 1024;
const CHUNK = new Uint8Array(64 * 1024);
const DROP_MESSAGE = "A message was dropped: more than maxBackpressure (1048576 bytes) is queued " +
  "for this connection. To lose none, stop sending when a send returns SendStatus.Backpressure " +
  "and go on in the drain handler or after await ws.flushed(), or raise maxBackpressure. ";

/** Sends 40 × 64 KiB in one tick, past a 1 MiB cap: the last ones are dropped. */
function burst(ws: ServerWebSocket<undefined>): SendStatus[] {
  const statuses: SendStatus[] = [];
  for (let i = 0; i < 40; i++) statuses.push(ws.send(CHUNK));
  return statuses;
}

/** Reads frames until `count` binary ones have come. */
async function readBinary(client: RawClient, count: number): Promise<void> {
  for (let seen = 0; seen < count;) {
    if ((await client.nextFrame()).opcode === Op.Binary) seen++;
  }
}

/** Runs `body` with console.warn and console.error recorded instead of printed. */
async function withConsole(
  body: (warnings: unknown[][], errors: unknown[][]) => Promise<void>,
): Promise<void> {
  const { warn, error } = console;
  const warnings: unknown[][] = [];
  const errors: unknown[][] = [];
  console.warn = (...args: unknown[]) => warnings.push(args);
  console.error = (...args: unknown[]) => errors.push(args);
  try {
    await body(warnings, errors);
  } finally {
    console.warn = warn;
    console.error = error;
  }
}

test("backpressure: the first drop of each connection reaches the error handler, once", async () => {
  const reports = new Queue<{ error: unknown; ws: ServerWebSocket<undefined> | undefined }>();
  const bursts = new Queue<{ ws: ServerWebSocket<undefined>; statuses: SendStatus[] }>();
  await withConsole(async (warnings, errors) => {
    await withServer({
      heartbeat: false,
      maxBackpressure: CAP,
      message(ws) {
        bursts.push({ ws, statuses: burst(ws) });
      },
      error: (error, ws) => reports.push({ error, ws }),
    }, async ({ open }) => {
      const a = (await open()).client;
      const b = (await open()).client;
      for (const [client, round] of [[a, 1], [a, 2], [b, 1]] as const) {
        await client.sendFrame(Op.Text, "go");
        const { ws, statuses } = await bursts.next("a burst");
        const sent = statuses.filter((status) => status !== SendStatus.Dropped).length;
        assert.ok(sent < 40, `round ${round}: some messages were dropped`);
        assert.ok(ws.droppedMessages >= 40 - sent);
        await readBinary(client, sent);
      }
      // One report per connection that dropped, however many it dropped.
      const first = await reports.next("a's report");
      const second = await reports.next("b's report");
      assert.notEqual(first.ws, second.ws);
      for (const { error, ws } of [first, second]) {
        assert.ok(error instanceof WebSocketError);
        assert.equal(error.code, "WS_ERR_BACKPRESSURE_DROP");
        assert.equal(error.closeCode, 1008);
        assert.equal(
          error.message,
          DROP_MESSAGE +
            "Further drops on this connection are counted in ws.droppedMessages, not reported.",
        );
        assert.equal(ws?.readyState, 1, 'still open under "drop"');
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
      assert.equal(reports.items.length, 2);
      assert.deepEqual([warnings, errors], [[], []]);
    });
  });
});

test("backpressure: without an error handler the first drop is one console.warn per connection", async () => {
  await withConsole(async (warnings, errors) => {
    await withServer({
      heartbeat: false,
      maxBackpressure: CAP,
      open(ws) {
        ws.subscribe("all");
      },
    }, async ({ open, server }) => {
      const { client } = await open();
      // Publishes queue behind the cap like sends; two bursts, in two ticks.
      let reached = 0;
      for (let round = 0; round < 2; round++) {
        for (let i = 0; i < 40; i++) reached += server.publish("all", CHUNK);
        await new Promise((resolve) => setTimeout(resolve, 0));
      }
      assert.ok(reached < 80, "some were dropped");
      await readBinary(client, reached);
      assert.equal(warnings.length, 1);
      const [line] = warnings[0];
      assert.equal(
        line,
        "sluice: 127.0.0.1: " + DROP_MESSAGE +
          "Further drops on this connection are counted in ws.droppedMessages, not reported.",
      );
      assert.deepEqual(errors, []);
    });
  });
});

test('backpressure: under "close" the first drop is reported, and says the connection closes', async () => {
  const reports = new Queue<unknown>();
  const closes = new Queue<number>();
  await withServer({
    heartbeat: false,
    maxBackpressure: CAP,
    backpressurePolicy: "close",
    message(ws) {
      // A send after the drop would throw: the connection is closing.
      while (ws.send(CHUNK) !== SendStatus.Dropped);
    },
    error: (error) => reports.push(error),
    close: (_ws, code) => closes.push(code),
  }, async ({ open }) => {
    const { client } = await open();
    await client.sendFrame(Op.Text, "go");
    const error = await reports.next("the report");
    assert.ok(error instanceof WebSocketError);
    assert.equal(error.code, "WS_ERR_BACKPRESSURE_DROP");
    assert.equal(error.closeCode, 1008);
    assert.equal(
      error.message,
      DROP_MESSAGE + 'The connection is closed with 1008 (backpressurePolicy "close").',
    );
    let frame = await client.nextFrame();
    while (frame.opcode === Op.Binary) frame = await client.nextFrame();
    assert.deepEqual(parseClose(frame), { code: 1008, reason: "Backpressure limit" });
    await client.sendClose(1008);
    assert.equal(await closes.next("the close handler"), 1008);
    assert.equal(reports.items.length, 1);
  });
});

/** Writes a request and reads every byte the server sends until it closes, as latin1. */
function exchange(port: number, request: string): Promise<string> {
  return within(
    new Promise((resolve, reject) => {
      const chunks: Uint8Array[] = [];
      const socket = net.connect({ port, host: "127.0.0.1" }, () => socket.write(request));
      socket.on("data", (chunk: Uint8Array) => chunks.push(chunk));
      socket.on("error", reject);
      socket.on("close", () => {
        let text = "";
        for (const chunk of chunks) for (const byte of chunk) text += String.fromCharCode(byte);
        resolve(text);
      });
    }),
    "the whole response",
  );
}

test("parity: responses from fetch are the same bytes on every runtime, on one connection", async () => {
  const encoder = new TextEncoder();
  const responses: Record<string, () => Response> = {
    "/string": () => new Response("hi"),
    "/bytes": () => new Response(new Uint8Array([1])),
    "/empty": () => new Response(null, { status: 204 }),
    "/null": () => new Response(null),
    "/headers": () => {
      const headers = new Headers([["X-B", "1"], ["Set-Cookie", "a=1"], ["x-a", "2"]]);
      headers.append("Set-Cookie", "b=2");
      return new Response("<p>", { status: 201, headers });
    },
    "/typed": () =>
      new Response(new Uint8Array([0x89, 0x50]), { headers: { "Content-Type": "image/png" } }),
    "/json": () => Response.json({ ok: true }, { headers: { "Content-Type": "application/json" } }),
    // A stream that has it all queued: read whole, so it gets a Content-Length (and, being
    // text without a type, the type of a string).
    "/queued": () =>
      new Response(
        new ReadableStream({
          start(controller) {
            controller.enqueue(encoder.encode("ab"));
            controller.enqueue(encoder.encode("c"));
            controller.close();
          },
        }),
      ),
    // A stream whose producer is slower: chunked, chunk by chunk.
    "/stream": () =>
      new Response(
        new ReadableStream({
          async pull(controller) {
            await new Promise((resolve) => setTimeout(resolve, 5));
            controller.enqueue(encoder.encode("tick"));
            controller.close();
          },
        }),
        { headers: { "Content-Type": "text/event-stream" } },
      ),
  };
  await withServer({
    heartbeat: false,
    fetch(request) {
      return responses[new URL(request.url).pathname]?.();
    },
  }, async ({ port }) => {
    const client = await HttpClient.connect(port);
    try {
      /** The next response's bytes, its Date's value replaced (it is checked apart). */
      const next = async (path: string, method = "GET"): Promise<string> => {
        await client.write(`${method} ${path} HTTP/1.1\r\nHost: x\r\n\r\n`);
        const { raw } = await client.response({ head: method === "HEAD" });
        const date = /\r\nDate: ([^\r]*)\r\n/.exec(raw);
        assert.ok(date !== null, `a Date header in ${JSON.stringify(raw)}`);
        assert.ok(Math.abs(Date.parse(date[1]) - Date.now()) < 5000, date[1]);
        return raw.replace(date[1], "<date>");
      };
      const ok = "HTTP/1.1 200 OK\r\n";
      const date = "Date: <date>\r\n";
      assert.equal(
        await next("/string"),
        ok + "Content-Length: 2\r\n" + date + "content-type: text/plain;charset=UTF-8\r\n\r\nhi",
      );
      assert.equal(await next("/bytes"), ok + "Content-Length: 1\r\n" + date + "\r\n\x01");
      // RFC 9110 §8.6: a 204 has no Content-Length.
      assert.equal(await next("/empty"), "HTTP/1.1 204 No Content\r\n" + date + "\r\n");
      assert.equal(await next("/null"), ok + "Content-Length: 0\r\n" + date + "\r\n");
      // Headers sorted by name, Set-Cookie in place.
      assert.equal(
        await next("/headers"),
        "HTTP/1.1 201 Created\r\nContent-Length: 3\r\n" + date +
          "content-type: text/plain;charset=UTF-8\r\nset-cookie: a=1\r\nset-cookie: b=2\r\n" +
          "x-a: 2\r\nx-b: 1\r\n\r\n<p>",
      );
      assert.equal(
        await next("/typed"),
        ok + "Content-Length: 2\r\n" + date + "content-type: image/png\r\n\r\n\x89\x50",
      );
      assert.equal(
        await next("/json"),
        ok + "Content-Length: 11\r\n" + date + 'content-type: application/json\r\n\r\n{"ok":true}',
      );
      // Read whole and text: typed as a string body would be, on every runtime.
      assert.equal(
        await next("/queued"),
        ok + "Content-Length: 3\r\n" + date + "content-type: text/plain;charset=UTF-8\r\n\r\nabc",
      );
      assert.equal(
        await next("/stream"),
        ok + "Transfer-Encoding: chunked\r\n" + date +
          "content-type: text/event-stream\r\n\r\n4\r\ntick\r\n0\r\n\r\n",
      );
      // HEAD: the GET response's head, Content-Type included, and no body.
      assert.equal(
        await next("/string", "HEAD"),
        ok + "Content-Length: 2\r\n" + date + "content-type: text/plain;charset=UTF-8\r\n\r\n",
      );
      // The server's own answers.
      assert.equal(
        await next("/nothing"),
        "HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n" + date +
          "content-type: text/plain; charset=utf-8\r\n\r\nNot found",
      );
      assert.equal(
        await next("/string HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\nX: 1", "POST"),
        "HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 41\r\n" + date +
          "content-type: text/plain; charset=utf-8\r\n\r\nBad request: more than one Content-Length",
      );
    } finally {
      client.destroy();
      await client.closed;
    }
  });
});

test("parity: a refusal from the upgrade hook is the same bytes on every runtime", async () => {
  await withServer({
    heartbeat: false,
    upgrade(request) {
      if (request.pathname === "/text") {
        return new Response("Who are you?", {
          status: 401,
          headers: { "WWW-Authenticate": "Bearer", "Set-Cookie": "s=1" },
        });
      }
      return new Response(new Uint8Array([0xff]), { status: 403 });
    },
  }, async ({ port }) => {
    assert.equal(
      await exchange(port, upgradeRequest({ path: "/text" })),
      "HTTP/1.1 401 Unauthorized\r\nConnection: close\r\nContent-Length: 12\r\n" +
        "content-type: text/plain;charset=UTF-8\r\nset-cookie: s=1\r\n" +
        "www-authenticate: Bearer\r\n\r\nWho are you?",
    );
    assert.equal(
      await exchange(port, upgradeRequest({ path: "/bytes" })),
      "HTTP/1.1 403 Forbidden\r\nConnection: close\r\nContent-Length: 1\r\n\r\n\xff",
    );
  });
});
