/**
 * End to end: plain HTTP on the WebSocket port. Requests without an Upgrade header go to the
 * `fetch` handler (404 when it answers nothing, 500 when it throws, 413 over
 * `maxRequestBodySize`, HEAD without a body) or to `metricsPath`. Without either, a plain GET
 * still gets 426. Persistent connections, streaming and request smuggling have suites of their
 * own (http_keepalive_test.ts, http_stream_test.ts, http_smuggling_test.ts).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import type { HttpRequestInfo, ServeOptions } from "../mod.ts";
import { Op, text } from "./_client.ts";
import { exchange, httpRequest } from "./_http_client.ts";
import { type Harness, Queue, withServer } from "./_harness.ts";

const echo: Pick<ServeOptions<undefined>, "message"> = {
  message(ws, data) {
    ws.send(data);
  },
};

test("http: GET /health is answered by fetch beside a working WebSocket on the same port", async () => {
  await withServer({
    ...echo,
    fetch(request) {
      if (new URL(request.url).pathname === "/health") return new Response("ok");
    },
  }, async ({ open, port, server }) => {
    const { client } = await open();
    await client.sendFrame(Op.Text, "before");
    assert.equal(text((await client.nextFrame()).payload), "before");
    // The runtime's own HTTP client.
    const response = await fetch(`http://127.0.0.1:${port}/health`);
    assert.equal(response.status, 200);
    assert.equal(await response.text(), "ok");
    // A raw one, to see the wire.
    const raw = await exchange(port, httpRequest("GET", "/health"));
    assert.equal(raw.status, 200);
    assert.equal(raw.body, "ok");
    assert.equal(raw.headers.get("content-length"), "2");
    // HTTP/1.1: the connection persists, so no Connection header is needed.
    assert.equal(raw.headers.get("connection"), undefined);
    // The WebSocket did not notice.
    await client.sendFrame(Op.Text, "after");
    assert.equal(text((await client.nextFrame()).payload), "after");
    const stats = server.stats();
    assert.equal(stats.httpRequests, 2);
    assert.equal(stats.accepted, 1);
    assert.equal(stats.connections, 1);
  });
});

test("http: fetch returning nothing answers 404", async () => {
  const seen = new Queue<string>();
  await withServer({
    fetch(request) {
      seen.push(`${request.method} ${new URL(request.url).pathname}`);
    },
  }, async ({ port }) => {
    const raw = await exchange(port, httpRequest("GET", "/nothing-here"));
    assert.equal(raw.status, 404);
    assert.equal(raw.body, "Not found");
    assert.equal(raw.headers.get("content-type"), "text/plain; charset=utf-8");
    assert.deepEqual(seen.items, ["GET /nothing-here"]);
  });
});

test("http: fetch throwing answers 500 and calls the error handler with the error", async () => {
  const errors = new Queue<{ error: unknown; ws: unknown }>();
  const thrown = new Error("the database is down");
  await withServer({
    fetch(request) {
      if (new URL(request.url).pathname === "/async") return Promise.reject(thrown);
      throw thrown;
    },
    error(error, ws) {
      errors.push({ error, ws });
    },
  }, async ({ port }) => {
    for (const path of ["/sync", "/async"]) {
      const raw = await exchange(port, httpRequest("GET", path));
      assert.equal(raw.status, 500, path);
      assert.equal(raw.body, "Internal Server Error");
      assert.doesNotMatch(raw.body, /database/, "no details leak to the client");
      const reported = await errors.next("the error handler");
      assert.equal(reported.error, thrown);
      assert.equal(reported.ws, undefined);
    }
  });
});

test("http: a POST body with a Content-Length reaches request.text(), whole or in pieces", async () => {
  const bodies = new Queue<{ method: string; url: string; type: string | null; body: string }>();
  await withServer({
    async fetch(request) {
      const body = await request.text();
      bodies.push({
        method: request.method,
        url: request.url,
        type: request.headers.get("content-type"),
        body,
      });
      return new Response(`got ${body.length}`, { status: 201 });
    },
  }, async ({ port }) => {
    const body = "name=ann&note=" + "x".repeat(3000);
    const head = httpRequest("POST", "/submit?v=1", [
      "Content-Type: application/x-www-form-urlencoded",
      `Content-Length: ${body.length}`,
    ]);
    // In one write.
    const whole = await exchange(port, head + body);
    assert.equal(whole.status, 201);
    assert.equal(whole.body, `got ${body.length}`);
    const first = await bodies.next("the request");
    assert.deepEqual(first, {
      method: "POST",
      url: "http://127.0.0.1/submit?v=1",
      type: "application/x-www-form-urlencoded",
      body,
    });
    // Head alone, then the body in three pieces.
    const pieces = [head, body.slice(0, 10), body.slice(10, 2000), body.slice(2000)];
    const split = await exchange(port, pieces);
    assert.equal(split.status, 201);
    assert.equal((await bodies.next("the split request")).body, body);
    // The runtime's own client.
    const response = await fetch(`http://127.0.0.1:${port}/submit`, {
      method: "POST",
      body: "hello",
    });
    assert.equal(response.status, 201);
    assert.equal(await response.text(), "got 5");
    assert.equal((await bodies.next("fetch's request")).body, "hello");
  });
});

test("http: a body over maxRequestBodySize gets 413 and fetch is not called; one at it is fine", async () => {
  const calls = new Queue<string>();
  await withServer({
    maxRequestBodySize: 10,
    async fetch(request) {
      calls.push(await request.text());
      return new Response("ok");
    },
  }, async ({ port, server }) => {
    const over = await exchange(
      port,
      httpRequest("POST", "/", ["Content-Length: 11"], "0123456789A"),
    );
    assert.equal(over.status, 413);
    assert.equal(over.headers.get("connection"), "close");
    assert.equal(calls.items.length, 0);
    const at = await exchange(port, httpRequest("POST", "/", ["Content-Length: 10"], "0123456789"));
    assert.equal(at.status, 200);
    assert.equal(await calls.next("fetch"), "0123456789");
    // Plain HTTP responses are counted apart from refused upgrade requests.
    assert.deepEqual(server.stats().httpResponses, { "200": 1, "413": 1 });
    assert.deepEqual(server.stats().refused, {});
  });
});

test("http: a chunked request body reaches request.text(); another coding before chunked gets 501", async () => {
  const calls = new Queue<string>();
  await withServer({
    async fetch(request) {
      calls.push(await request.text());
      return new Response("ok");
    },
  }, async ({ port }) => {
    const raw = await exchange(
      port,
      httpRequest("POST", "/", ["Transfer-Encoding: chunked"], "5\r\nhello\r\n0\r\n\r\n"),
    );
    assert.equal(raw.status, 200);
    assert.deepEqual(calls.items, ["hello"]);
    // RFC 9112 §6.1: a transfer coding the server does not understand gets 501.
    const gzip = await exchange(
      port,
      httpRequest("POST", "/", ["Transfer-Encoding: gzip, chunked"], "5\r\nhello\r\n0\r\n\r\n"),
    );
    assert.equal(gzip.status, 501);
    assert.equal(gzip.body, 'Not implemented: the transfer coding "gzip" is not supported');
    assert.equal(gzip.headers.get("connection"), "close");
    assert.equal(calls.items.length, 1);
  });
});

test("http: HEAD gets the GET response's headers, Content-Length included, and no body", async () => {
  const methods = new Queue<string>();
  await withServer({
    fetch(request) {
      methods.push(request.method);
      return new Response("twelve bytes", { headers: { "X-Kind": "greeting" } });
    },
  }, async ({ port }) => {
    const get = await exchange(port, httpRequest("GET", "/"));
    assert.equal(get.body, "twelve bytes");
    const head = await exchange(port, httpRequest("HEAD", "/"), { head: true });
    assert.equal(head.status, 200);
    assert.equal(head.headers.get("content-length"), "12");
    assert.equal(head.headers.get("x-kind"), "greeting");
    assert.equal(head.body, "", "a response to HEAD has no body");
    assert.deepEqual(methods.items, ["GET", "HEAD"]);
  });
});

test("http: a HEAD that fetch answers with nothing gets a 404 without a body", async () => {
  await withServer({ fetch() {} }, async ({ port }) => {
    const head = await exchange(port, httpRequest("HEAD", "/missing"), { head: true });
    assert.equal(head.status, 404);
    // RFC 9110 §9.3.2: the server MUST NOT send content in the response to HEAD.
    assert.equal(head.body, "", "a response to HEAD has no body");
  });
});

test("http: the user's status, headers and body are passed; the framing and Connection are ours", async () => {
  await withServer({
    fetch() {
      const headers = new Headers({
        "Content-Type": "application/json",
        "X-Custom": "yes",
        "Cache-Control": "no-store",
        "Connection": "keep-alive",
      });
      headers.append("Set-Cookie", "a=1; Path=/");
      headers.append("Set-Cookie", "b=2; Path=/");
      return new Response('{"ok":true}', { status: 202, headers });
    },
  }, async ({ port }) => {
    const raw = await exchange(port, httpRequest("GET", "/api"));
    assert.equal(raw.status, 202);
    assert.equal(raw.body, '{"ok":true}');
    assert.equal(raw.headers.get("content-type"), "application/json");
    assert.equal(raw.headers.get("x-custom"), "yes");
    assert.equal(raw.headers.get("cache-control"), "no-store");
    // Its Connection: keep-alive is not passed on (hop-by-hop, and the server's to decide).
    assert.equal(raw.headers.get("connection"), undefined);
    assert.equal(raw.headers.get("content-length"), "11");
    assert.match(raw.headers.get("date") ?? "", /^\w{3}, \d{2} \w{3} \d{4} \d{2}:\d{2}:\d{2} GMT$/);
    // Each cookie on a line of its own (RFC 6265 §3: they must not be folded into one).
    assert.deepEqual(
      raw.lines.filter(([name]) => name === "set-cookie").map(([, value]) => value),
      ["a=1; Path=/", "b=2; Path=/"],
    );
  });
});

test("http: info.remoteAddress is the forwarded client with trustProxy, the peer without", async () => {
  for (const trustProxy of [["loopback"], undefined]) {
    const infos = new Queue<HttpRequestInfo>();
    await withServer({
      trustProxy,
      fetch(_request, info) {
        infos.push({ ...info });
        return new Response("ok");
      },
    }, async ({ port }) => {
      await exchange(port, httpRequest("GET", "/", ["X-Forwarded-For: 203.0.113.7"]));
      assert.deepEqual(await infos.next("fetch"), {
        remoteAddress: trustProxy === undefined ? "127.0.0.1" : "203.0.113.7",
        peerAddress: "127.0.0.1",
      });
    });
  }
});

/** The value of the sample line `name` (with its labels) in a Prometheus text. */
function sample(metrics: string, name: string): number {
  const line = metrics.split("\n").find((each) => each.startsWith(`${name} `));
  assert.ok(line !== undefined, `no sample ${name} in:\n${metrics}`);
  return Number(line.slice(name.length + 1));
}

test("http: GET on metricsPath answers the Prometheus text, reflecting real traffic", async () => {
  const fetched = new Queue<string>();
  await withServer({
    ...echo,
    heartbeat: false,
    metricsPath: "/metrics",
    fetch(request) {
      fetched.push(new URL(request.url).pathname);
      return new Response("app");
    },
  }, async ({ open, port }) => {
    const { client } = await open();
    for (let i = 0; i < 3; i++) {
      await client.sendFrame(Op.Text, `m${i}`);
      await client.nextFrame();
    }
    const raw = await exchange(port, httpRequest("GET", "/metrics"));
    assert.equal(raw.status, 200);
    assert.equal(raw.headers.get("content-type"), "text/plain; version=0.0.4; charset=utf-8");
    assert.equal(Number(raw.headers.get("content-length")), Buffer.byteLength(raw.body));
    assert.match(raw.body, /^# TYPE sluice_connections gauge$/m);
    assert.equal(sample(raw.body, "sluice_connections"), 1);
    assert.equal(sample(raw.body, "sluice_accepted_total"), 1);
    assert.equal(sample(raw.body, 'sluice_messages_total{direction="in"}'), 3);
    assert.equal(sample(raw.body, 'sluice_messages_total{direction="out"}'), 3);
    // 2-byte payloads: 8 bytes a frame in (masked), 4 out.
    assert.equal(sample(raw.body, 'sluice_bytes_total{direction="in"}'), 3 * 8);
    assert.equal(sample(raw.body, 'sluice_bytes_total{direction="out"}'), 3 * 4);
    // The request being answered is plain HTTP, not a WebSocket handshake.
    assert.equal(sample(raw.body, "sluice_handshaking"), 0);
    // Plain requests are counted as they arrive: this scrape counts itself.
    assert.equal(sample(raw.body, "sluice_http_requests_total"), 1);
    // A second scrape counts both; a query string does not hide the path.
    const again = await exchange(port, httpRequest("GET", "/metrics?scrape=2"));
    assert.equal(again.status, 200);
    assert.equal(sample(again.body, "sluice_http_requests_total"), 2);
    assert.equal(fetched.items.length, 0, "the metrics path is answered before fetch");
    // Other paths still go to fetch.
    assert.equal((await exchange(port, httpRequest("GET", "/other"))).body, "app");
    assert.deepEqual(fetched.items, ["/other"]);
  });
});

test("http: metricsPath works without a fetch handler, beside a WebSocket", async () => {
  await withServer({ ...echo, metricsPath: "/metrics" }, async ({ open, port }) => {
    const { client } = await open();
    const response = await fetch(`http://127.0.0.1:${port}/metrics`);
    assert.equal(response.status, 200);
    const body = await response.text();
    assert.equal(sample(body, "sluice_connections"), 1);
    await client.sendFrame(Op.Text, "still here");
    assert.equal(text((await client.nextFrame()).payload), "still here");
  });
});

test("http: a method other than GET or HEAD on metricsPath gets 405 with Allow", async () => {
  await withServer({ metricsPath: "/metrics", fetch: () => new Response("app") }, async (
    { port },
  ) => {
    for (const method of ["POST", "DELETE"]) {
      const raw = await exchange(port, httpRequest(method, "/metrics", ["Content-Length: 0"]));
      assert.equal(raw.status, 405, method);
      assert.equal(raw.headers.get("allow"), "GET, HEAD");
      assert.doesNotMatch(raw.body, /sluice_/);
    }
    const head = await exchange(port, httpRequest("HEAD", "/metrics"), { head: true });
    assert.equal(head.status, 200);
    assert.ok(Number(head.headers.get("content-length")) > 100);
    assert.equal(head.body, "");
  });
});

test("http: without fetch or metricsPath a plain GET still gets 426", async () => {
  await withServer({}, async ({ port, server }) => {
    const raw = await exchange(port, httpRequest("GET", "/health"));
    assert.equal(raw.status, 426);
    assert.equal(raw.headers.get("upgrade"), "websocket");
    assert.equal(raw.headers.get("sec-websocket-version"), "13");
    assert.equal(server.stats().httpRequests, 0);
    assert.deepEqual(server.stats().refused, { "426": 1 });
  });
});

test("http: a request that has an Upgrade header is a WebSocket handshake, not a fetch", async () => {
  const fetched = new Queue<void>();
  await withServer({
    ...echo,
    fetch() {
      fetched.push();
      return new Response("app");
    },
  }, async (harness: Harness<undefined>) => {
    const { client } = await harness.open({ path: "/health" });
    await client.sendFrame(Op.Text, "ws");
    assert.equal(text((await client.nextFrame()).payload), "ws");
    // A broken upgrade request is refused as one, not handed to fetch.
    const raw = await exchange(
      harness.port,
      httpRequest("GET", "/", ["Upgrade: websocket", "Connection: Upgrade"]),
    );
    assert.equal(raw.status, 426);
    assert.equal(fetched.items.length, 0);
  });
});

test("http: a body that stops arriving gets 408 after handshakeTimeout; the handler's read fails", async () => {
  const reads = new Queue<unknown>();
  const errors = new Queue<unknown>();
  await withServer({
    handshakeTimeout: 200,
    async fetch(request) {
      try {
        await request.text();
        reads.push("read");
      } catch (error) {
        reads.push(error);
        throw error;
      }
      return new Response("ok");
    },
    error(error) {
      errors.push(error);
    },
  }, async ({ port, server }) => {
    // Slowloris on the body: the head is complete, the body never is.
    const raw = await exchange(
      port,
      httpRequest("POST", "/", ["Content-Length: 100"], "only a little"),
    );
    // Generous: the timeout is 200 ms.
    assert.equal(raw.status, 408);
    assert.equal(raw.body, "Request timeout: the request body stopped arriving");
    assert.equal(raw.headers.get("connection"), "close");
    const error = await reads.next("the handler's read");
    assert.ok(error instanceof Error);
    assert.equal(
      error.message,
      "Cannot read the request body: Request timeout: the request body stopped arriving",
    );
    assert.deepEqual(errors.items, [], "the client's doing is not an application error");
    assert.deepEqual(server.stats().httpResponses, { "408": 1 });
  });
});

test("http: conflicting Content-Length headers get 400 and fetch is not called", async () => {
  const calls = new Queue<string>();
  await withServer({
    async fetch(request) {
      calls.push(await request.text());
      return new Response("ok");
    },
  }, async ({ port }) => {
    // RFC 9112 §6.3: differing Content-Length values make the framing invalid; a proxy in front
    // that read the other value would see a different request boundary (request smuggling).
    const statuses: Record<string, number> = {};
    for (const [first, second] of [["5", "6"], ["0", "5"], ["5", "0"]]) {
      const raw = await exchange(
        port,
        httpRequest(
          "POST",
          "/",
          [`Content-Length: ${first}`, `Content-Length: ${second}`],
          "hello",
        ),
      );
      statuses[`${first} then ${second}`] = raw.status;
    }
    assert.deepEqual(statuses, { "5 then 6": 400, "0 then 5": 400, "5 then 0": 400 });
    assert.deepEqual(calls.items, []);
    // One value is fine.
    const one = await exchange(port, httpRequest("POST", "/", ["Content-Length: 5"], "hello"));
    assert.equal(one.status, 200);
    assert.deepEqual(calls.items, ["hello"]);
  });
});

test("http: a bad, missing or repeated Host gets 400; fetch and the error handler are not called", async () => {
  const calls = new Queue<string>();
  const errors = new Queue<unknown>();
  await withServer({
    fetch(request) {
      calls.push(request.url);
      return new Response("ok");
    },
    error(error) {
      errors.push(error);
    },
  }, async ({ port }) => {
    // RFC 9112 §3.2: 400 for an HTTP/1.1 request without Host, with two, or with an invalid
    // one (the upgrade path already refuses the first two).
    const requests: Array<[string, string]> = [
      ["an invalid Host", "GET / HTTP/1.1\r\nHost: bad host\r\n\r\n"],
      ["no Host", "GET / HTTP/1.1\r\nAccept: */*\r\n\r\n"],
      ["two Hosts", "GET / HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\n\r\n"],
    ];
    const statuses: Record<string, number> = {};
    for (const [what, request] of requests) statuses[what] = (await exchange(port, request)).status;
    assert.deepEqual(statuses, { "an invalid Host": 400, "no Host": 400, "two Hosts": 400 });
    assert.deepEqual(calls.items, []);
    assert.deepEqual(errors.items, [], "a client's bad request is not an application error");
  });
});
