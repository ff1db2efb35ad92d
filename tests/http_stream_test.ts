/**
 * End to end: streamed plain HTTP bodies. A `ReadableStream` response goes out as it is
 * produced (chunked, or with its own Content-Length), read only as fast as the client takes
 * it; server-sent events arrive one by one; `request.body` streams as the client sends,
 * Content-Length or chunked, within `maxRequestBodySize` (413); `Expect: 100-continue` (417
 * for any other expectation); HEAD; bodies the handler leaves unread.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import net from "node:net";
import { within } from "./_client.ts";
import { deferred, Queue, sleep, waitFor, withServer } from "./_harness.ts";
import { exchange, httpRequest, withClient } from "./_http_client.ts";

const encoder = new TextEncoder();

test("stream: server-sent events arrive one by one, before the stream ends", async () => {
  const next = new Queue<void>();
  const cancelled = deferred<unknown>();
  let sent = 0;
  await withServer({
    fetch() {
      sent = 0;
      const body = new ReadableStream<Uint8Array>({
        async pull(controller) {
          // Each event waits for the test's word: the client must have the one before.
          if (sent > 0) await next.next("the test's word", 10_000);
          sent++;
          controller.enqueue(encoder.encode(`data: event ${sent}\n\n`));
          if (sent === 3) controller.close();
        },
        cancel(reason) {
          cancelled.resolve(reason);
        },
      });
      return new Response(body, {
        headers: { "Content-Type": "text/event-stream", "Cache-Control": "no-cache" },
      });
    },
  }, async ({ port }) => {
    await withClient(port, async (client) => {
      await client.write(httpRequest("GET", "/events"));
      const message = await client.head();
      assert.equal(message.status, 200);
      assert.equal(message.headers.get("transfer-encoding"), "chunked");
      assert.equal(message.headers.get("content-type"), "text/event-stream");
      assert.equal(message.headers.get("content-length"), undefined);
      for (let i = 1; i <= 3; i++) {
        assert.equal(await client.chunk(message), `data: event ${i}\n\n`);
        assert.equal(sent, i, "the next event is not made before the client has this one");
        if (i < 3) next.push();
      }
      assert.equal(await client.chunk(message), undefined, "the last chunk");
      await sleep(20);
      assert.equal(client.isClosed, false, "the connection stays for another request");
    });
    // With the runtime's own client, reading as events come.
    const response = await fetch(`http://127.0.0.1:${port}/events`);
    const reader = response.body!.getReader();
    const decoder = new TextDecoder();
    const first = await within(reader.read(), "the first event");
    assert.equal(decoder.decode(first.value), "data: event 1\n\n");
    assert.equal(sent, 1);
    next.push();
    next.push();
    let rest = "";
    for (;;) {
      const { done, value } = await within(reader.read(), "the other events");
      if (done) break;
      rest += decoder.decode(value);
    }
    assert.equal(rest, "data: event 2\n\ndata: event 3\n\n");
    // A client that leaves mid-stream cancels it: the producer learns nobody listens.
    await withClient(port, async (client) => {
      await client.write(httpRequest("GET", "/events"));
      const message = await client.head();
      assert.equal(await client.chunk(message), "data: event 1\n\n");
    });
    await within(cancelled.promise, "the stream's cancel");
  });
});

test("stream: request.signal aborts when the client leaves mid-response, not after a whole one", async () => {
  const signals = new Queue<AbortSignal>();
  const aborted = deferred<unknown>();
  await withServer({
    fetch(request) {
      const signal = request.signal;
      signals.push(signal);
      if (new URL(request.url).pathname === "/whole") return new Response("done");
      // A producer that stops when the client goes, as server-sent events do with the signal.
      signal.addEventListener("abort", () => aborted.resolve(signal.reason));
      return new Response(
        new ReadableStream<Uint8Array>({
          start(controller) {
            controller.enqueue(encoder.encode("data: hello\n\n"));
          },
        }),
        { headers: { "Content-Type": "text/event-stream" } },
      );
    },
  }, async ({ port }) => {
    await withClient(port, async (client) => {
      await client.write(httpRequest("GET", "/whole"));
      const message = await client.head();
      assert.equal(message.status, 200);
      await client.write(httpRequest("GET", "/events"));
    });
    const whole = await signals.next("the first request's signal");
    const events = await signals.next("the stream's signal");
    assert.ok(whole instanceof AbortSignal);
    const reason = await within(aborted.promise, "the abort");
    assert.equal(events.aborted, true);
    assert.ok(reason instanceof DOMException);
    assert.equal((reason as DOMException).name, "AbortError");
    assert.equal((reason as DOMException).message, "The client closed the connection");
    assert.equal(whole.aborted, false, "a response written whole does not abort its signal");
  });
});

test("stream: a body with its own Content-Length is sent as it comes, unchunked", async () => {
  await withServer({
    fetch() {
      let n = 0;
      const body = new ReadableStream<Uint8Array>({
        async pull(controller) {
          await sleep(2);
          controller.enqueue(encoder.encode(`part${n}`));
          if (++n === 3) controller.close();
        },
      });
      return new Response(body, { headers: { "Content-Length": "15" } });
    },
  }, async ({ port }) => {
    const response = await exchange(port, httpRequest("GET", "/"));
    assert.equal(response.headers.get("content-length"), "15");
    assert.equal(response.headers.get("transfer-encoding"), undefined);
    assert.equal(response.body, "part0part1part2");
  });
});

test("stream: a body that breaks its Content-Length or errors midway drops the connection", async () => {
  const errors = new Queue<unknown>();
  await withServer({
    fetch(request) {
      const path = new URL(request.url).pathname;
      let n = 0;
      const body = new ReadableStream<Uint8Array>({
        async pull(controller) {
          await sleep(2);
          if (n++ === 0) controller.enqueue(encoder.encode("first"));
          else if (path === "/short") controller.close();
          else controller.error(new Error("the source failed"));
        },
      });
      return new Response(body, path === "/short" ? { headers: { "Content-Length": "10" } } : {});
    },
    error(error) {
      errors.push(error);
    },
  }, async ({ port }) => {
    for (const path of ["/short", "/error"]) {
      await withClient(port, async (client) => {
        await client.write(httpRequest("GET", path));
        const message = await client.head();
        assert.equal(message.status, 200);
        // The client sees the body cut short: the connection closes without its end.
        const rest = await client.rest();
        assert.ok(!rest.endsWith("0\r\n\r\n"), `no last chunk: ${JSON.stringify(rest)}`);
        assert.match(rest, /first/);
      });
    }
    const short = await errors.next("the short body");
    assert.ok(short instanceof TypeError);
    assert.equal(
      short.message,
      "The response body is shorter than its Content-Length (5 of 10 bytes)",
    );
    assert.equal((await errors.next("the stream's error") as Error).message, "the source failed");
  });
});

test("stream: a stream that fails before its first chunk gets 500, and the connection stays", async () => {
  const errors = new Queue<unknown>();
  await withServer({
    fetch() {
      return new Response(
        new ReadableStream({
          pull(controller) {
            controller.error(new Error("no data"));
          },
        }),
      );
    },
    error: (error) => errors.push(error),
  }, async ({ port }) => {
    await withClient(port, async (client) => {
      await client.write(httpRequest("GET", "/"));
      const response = await client.response();
      assert.equal(response.status, 500);
      assert.equal(response.body, "Internal Server Error");
      assert.equal((await errors.next("the error") as Error).message, "no data");
      await client.write(httpRequest("GET", "/"));
      assert.equal((await client.response()).status, 500);
    });
  });
});

test("stream: a slow client does not make the server read a large response ahead", async () => {
  const size = 64 * 1024 * 1024;
  const piece = new Uint8Array(64 * 1024).fill(0x61);
  let pulled = 0;
  await withServer({
    heartbeat: false,
    fetch() {
      const body = new ReadableStream<Uint8Array>({
        pull(controller) {
          // Made as fast as it is asked for: only the server's reads hold it back.
          controller.enqueue(piece);
          pulled += piece.length;
          if (pulled >= size) controller.close();
        },
      }, { highWaterMark: 0 });
      return new Response(body, { headers: { "Content-Length": String(size) } });
    },
  }, async ({ port }) => {
    const socket = net.connect({ port, host: "127.0.0.1" });
    let received = 0;
    const done = new Promise<void>((resolve, reject) => {
      socket.on("data", (chunk: Buffer) => {
        received += chunk.length;
        if (received > size) resolve();
      });
      socket.on("error", reject);
    });
    try {
      await new Promise<void>((resolve) => socket.once("connect", resolve));
      socket.pause();
      socket.write(httpRequest("GET", "/big"));
      // The socket buffers fill, then the server stops reading the stream.
      await waitFor(() => pulled > 0, "the first chunk");
      await sleep(500);
      const held = pulled;
      await sleep(200);
      assert.equal(pulled, held, "the stream is not read while the client does not read");
      // What the kernel's buffers and one write's worth hold, not the 64 MiB.
      assert.ok(held < 24 * 1024 * 1024, `read ${held} bytes ahead of a stalled client`);
      socket.resume();
      await within(done, "the whole body", 20_000);
      assert.equal(pulled, size);
    } finally {
      socket.destroy();
    }
  });
});

test("stream: a client that stops reading a stream is dropped after idleTimeout", async () => {
  const piece = new Uint8Array(64 * 1024).fill(0x62);
  const cancelled = deferred<void>();
  let pulled = 0;
  await withServer({
    heartbeat: false,
    idleTimeout: 300,
    fetch() {
      const body = new ReadableStream<Uint8Array>({
        pull(controller) {
          controller.enqueue(piece);
          pulled += piece.length;
        },
        cancel() {
          cancelled.resolve();
        },
      }, { highWaterMark: 0 });
      return new Response(body);
    },
  }, async ({ port, server }) => {
    const socket = net.connect({ port, host: "127.0.0.1" });
    const closed = new Promise<void>((resolve) => socket.on("close", () => resolve()));
    socket.on("error", () => {});
    try {
      await new Promise<void>((resolve) => socket.once("connect", resolve));
      socket.pause();
      socket.write(httpRequest("GET", "/endless"));
      await waitFor(() => pulled > 0, "the first chunk");
      // Nothing is read: the buffers fill, the server waits, then gives up on the client.
      await within(cancelled.promise, "the stream's cancel", 10_000);
      socket.resume();
      await within(closed, "the connection's end", 10_000);
      await waitFor(() => server.stats().httpConnections === 0, "the connection counted gone");
    } finally {
      socket.destroy();
    }
  });
});

test("stream: request.body is readable as it arrives, Content-Length or chunked", async () => {
  const got = new Queue<string>();
  await withServer({
    async fetch(request) {
      const reader = request.body!.getReader();
      let all = "";
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        const piece = new TextDecoder().decode(value);
        got.push(piece);
        all += piece;
      }
      return new Response(`got ${all}`);
    },
  }, async ({ port }) => {
    await withClient(port, async (client) => {
      await client.write(httpRequest("POST", "/", ["Content-Length: 10"], "first"));
      // The handler has the first part while the client has not sent the rest.
      assert.equal(await got.next("the first part"), "first");
      await client.write("later");
      assert.equal(await got.next("the second part"), "later");
      assert.equal((await client.response()).body, "got firstlater");
      // Chunked, with an extension and a trailer field.
      await client.write(
        httpRequest("POST", "/", ["Transfer-Encoding: chunked"], '3;note="a b"\r\none\r\n'),
      );
      assert.equal(await got.next("the first chunk"), "one");
      await client.write("3\r\ntwo\r\n0\r\nX-Checksum: 1\r\n\r\n");
      assert.equal(await got.next("the second chunk"), "two");
      assert.equal((await client.response()).body, "got onetwo");
    });
  });
});

test("stream: a chunked body split at every byte arrives whole", async () => {
  const bodies = new Queue<string>();
  await withServer({
    async fetch(request) {
      bodies.push(await request.text());
      return new Response("ok");
    },
  }, async ({ port }) => {
    const body = "5;a=1\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\nT: v\r\n\r\n";
    await withClient(port, async (client) => {
      await client.write(httpRequest("POST", "/", ["Transfer-Encoding: chunked"]));
      for (const byte of body) {
        await client.write(byte);
        await sleep(0);
      }
      assert.equal((await client.response()).status, 200);
      assert.equal(await bodies.next("the body"), "hello world");
    });
  });
});

test("stream: a handler that does not read holds the client back in TCP", async () => {
  const start = deferred<void>();
  const read = new Queue<number>();
  const size = 32 * 1024 * 1024;
  await withServer({
    maxRequestBodySize: size,
    async fetch(request) {
      await start.promise;
      read.push((await request.arrayBuffer()).byteLength);
      return new Response("ok");
    },
  }, async ({ port }) => {
    await withClient(port, async (client) => {
      const written = client.write(
        Buffer.concat([
          Buffer.from(httpRequest("POST", "/", [`Content-Length: ${size}`])),
          Buffer.alloc(size, 0x62),
        ]),
      );
      await sleep(500);
      // The kernel's buffers hold some; most of it waits in the client.
      assert.ok(
        client.socket.writableLength > 8 * 1024 * 1024,
        `the client could write ${size - client.socket.writableLength} bytes`,
      );
      start.resolve();
      assert.equal(await read.next("the whole body", 20_000), size);
      await written;
      assert.equal((await client.response()).body, "ok");
    });
  });
});

test("stream: a chunked body that grows past maxRequestBodySize gets 413 at that chunk", async () => {
  const reads = new Queue<unknown>();
  const errors = new Queue<unknown>();
  await withServer({
    maxRequestBodySize: 10,
    async fetch(request) {
      try {
        reads.push(await request.text());
      } catch (error) {
        reads.push(error);
        throw error;
      }
      return new Response("ok");
    },
    error: (error) => errors.push(error),
  }, async ({ port, server }) => {
    await withClient(port, async (client) => {
      // 8 bytes, then a chunk of 3: over, refused at its size line (its data never needed).
      await client.write(
        httpRequest("POST", "/", ["Transfer-Encoding: chunked"], "8\r\n12345678\r\n3\r\n"),
      );
      const response = await client.response();
      assert.equal(response.status, 413);
      assert.equal(response.body, "The request body is too large: more than 10 bytes");
      assert.equal(response.headers.get("connection"), "close");
      await client.waitClosed();
    });
    const error = await reads.next("the handler's read");
    assert.ok(error instanceof Error);
    assert.equal(
      error.message,
      "Cannot read the request body: The request body is too large: more than 10 bytes",
    );
    // At the limit is fine.
    const at = await exchange(
      port,
      httpRequest("POST", "/", ["Transfer-Encoding: chunked"], "a\r\n0123456789\r\n0\r\n\r\n"),
    );
    assert.equal(at.status, 200);
    assert.equal(await reads.next("the body at the limit"), "0123456789");
    assert.deepEqual(errors.items, [], "the client's doing is not an application error");
    assert.deepEqual(server.stats().httpResponses, { "200": 1, "413": 1 });
  });
});

test("stream: Expect: 100-continue gets 100 when the handler reads the body, not before", async () => {
  const gate = deferred<void>();
  await withServer({
    async fetch(request) {
      if (new URL(request.url).pathname === "/ignore") return new Response("not reading");
      await gate.promise;
      return new Response(`read ${await request.text()}`);
    },
  }, async ({ port }) => {
    await withClient(port, async (client) => {
      await client.write(httpRequest("POST", "/", ["Content-Length: 4", "Expect: 100-continue"]));
      await sleep(100);
      assert.equal(client.received, 0, "nothing before the handler reads");
      gate.resolve();
      const interim = await client.response();
      assert.equal(interim.status, 100);
      assert.equal(interim.raw, "HTTP/1.1 100 Continue\r\n\r\n");
      await client.write("data");
      const response = await client.response();
      assert.equal(response.body, "read data");
      assert.equal(response.headers.get("connection"), undefined, "the connection persists");
    });
    // A handler that answers without reading: no 100, and the connection closes after it (the
    // client may or may not send the body).
    await withClient(port, async (client) => {
      await client.write(
        httpRequest("POST", "/ignore", ["Content-Length: 4", "Expect: 100-continue"]),
      );
      const response = await client.response();
      assert.equal(response.status, 200);
      assert.equal(response.headers.get("connection"), "close");
      await client.waitClosed();
    });
  });
});

test("stream: an expectation other than 100-continue gets 417 and fetch is not called", async () => {
  const calls = new Queue<void>();
  await withServer({
    fetch() {
      calls.push();
      return new Response("ok");
    },
  }, async ({ port }) => {
    const response = await exchange(
      port,
      httpRequest("POST", "/", ["Content-Length: 4", "Expect: 200-ok"], "data"),
    );
    assert.equal(response.status, 417);
    assert.equal(response.body, "Expectation failed: only 100-continue is supported");
    assert.equal(response.headers.get("connection"), "close");
    // RFC 9110 §10.1.1: HTTP/1.0 clients' 100-continue is ignored (no interim response).
    const old = await exchange(
      port,
      "POST / HTTP/1.0\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\ndata",
    );
    assert.equal(old.status, 200);
    assert.equal(calls.items.length, 1);
  });
});

test("stream: HEAD gets a streamed response's head without its body; the connection goes on", async () => {
  const cancelled = new Queue<void>();
  await withServer({
    fetch() {
      return new Response(
        new ReadableStream({
          async pull(controller) {
            await sleep(5);
            controller.enqueue(encoder.encode("data: 1\n\n"));
          },
          cancel() {
            cancelled.push();
          },
        }),
        { headers: { "Content-Type": "text/event-stream" } },
      );
    },
  }, async ({ port }) => {
    await withClient(port, async (client) => {
      await client.write(httpRequest("HEAD", "/events"));
      const head = await client.response({ head: true });
      assert.equal(head.status, 200);
      assert.equal(head.headers.get("transfer-encoding"), "chunked");
      assert.equal(head.headers.get("content-type"), "text/event-stream");
      await cancelled.next("the stream's cancel");
      // Nothing follows the head: the next response is the next request's.
      await client.write(httpRequest("HEAD", "/events"));
      assert.equal((await client.response({ head: true })).status, 200);
    });
  });
});

test("stream: a body the handler leaves unread is read and dropped; the next request is served", async () => {
  const paths = new Queue<string>();
  await withServer({
    fetch(request) {
      paths.push(`${request.method} ${new URL(request.url).pathname}`);
      return new Response("answered without reading");
    },
  }, async ({ port }) => {
    await withClient(port, async (client) => {
      // A POST body, a GET with a body, and a chunked one, none read, then a plain GET.
      await client.write(httpRequest("POST", "/1", ["Content-Length: 5"], "abcde"));
      assert.equal((await client.response()).status, 200);
      await client.write(httpRequest("GET", "/2", ["Content-Length: 3"], "xyz"));
      assert.equal((await client.response()).status, 200);
      await client.write(
        httpRequest("PUT", "/3", ["Transfer-Encoding: chunked"], "2\r\nhi\r\n0\r\n\r\n"),
      );
      assert.equal((await client.response()).status, 200);
      await client.write(httpRequest("GET", "/4"));
      assert.equal((await client.response()).status, 200);
      assert.deepEqual(paths.items, ["POST /1", "GET /2", "PUT /3", "GET /4"]);
    });
  });
});

test("stream: a body echoed as it arrives (full duplex through new Response(request.body))", async () => {
  await withServer({
    fetch: (request) => new Response(request.body),
  }, async ({ port }) => {
    await withClient(port, async (client) => {
      await client.write(
        httpRequest("POST", "/", ["Transfer-Encoding: chunked"], "5\r\nhello\r\n"),
      );
      const message = await client.head();
      assert.equal(message.headers.get("transfer-encoding"), "chunked");
      assert.equal(await client.chunk(message), "hello");
      await client.write("6\r\n world\r\n0\r\n\r\n");
      assert.equal(await client.chunk(message), " world");
      assert.equal(await client.chunk(message), undefined);
    });
  });
});

test("stream: a response whose body was already read gets 500 and the error handler hears why", async () => {
  const errors = new Queue<unknown>();
  await withServer({
    async fetch() {
      const response = new Response("read twice");
      await response.text();
      return response;
    },
    error: (error) => errors.push(error),
  }, async ({ port }) => {
    await withClient(port, async (client) => {
      await client.write(httpRequest("GET", "/"));
      assert.equal((await client.response()).status, 500);
      assert.ok(await errors.next("the error") instanceof TypeError);
      // The connection serves on.
      await client.write(httpRequest("GET", "/"));
      assert.equal((await client.response()).status, 500);
    });
  });
});
