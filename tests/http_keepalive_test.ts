/**
 * End to end: persistent plain HTTP connections (RFC 9112 §9.3). HTTP/1.1 keeps the
 * connection, HTTP/1.0 only with `Connection: keep-alive`; `keepAliveTimeout` closes an idle
 * one and `maxRequestsPerConnection` caps its requests; pipelined requests are answered in
 * order; an upgrade request on a connection that served plain requests opens a WebSocket; the
 * plain HTTP figures are apart from the WebSocket ones.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import type { UpgradeRequest } from "../mod.ts";
import { Op, RawClient, text, upgradeRequest } from "./_client.ts";
import { assertServeThrows, deferred, Queue, sleep, waitFor, withServer } from "./_harness.ts";
import { HttpClient, httpRequest, withClient } from "./_http_client.ts";

test("keep-alive: HTTP/1.1 requests share one connection until the client closes it", async () => {
  const paths = new Queue<string>();
  await withServer({
    fetch(request) {
      paths.push(new URL(request.url).pathname);
      return new Response(`you asked for ${new URL(request.url).pathname}`);
    },
  }, async ({ port, server }) => {
    await withClient(port, async (client) => {
      for (const path of ["/a", "/b", "/c"]) {
        await client.write(httpRequest("GET", path));
        const response = await client.response();
        assert.equal(response.status, 200);
        assert.equal(response.body, `you asked for ${path}`);
        assert.equal(response.headers.get("connection"), undefined);
      }
      assert.deepEqual(paths.items, ["/a", "/b", "/c"]);
      // Idle between requests: one connection, kept alive.
      await waitFor(() => server.stats().httpKeepAlive === 1, "the connection idle");
      const stats = server.stats();
      assert.equal(stats.httpConnections, 1);
      assert.equal(stats.httpRequests, 3);
      assert.equal(stats.connections, 0, "no WebSocket");
      assert.equal(client.isClosed, false);
    });
    await waitFor(() => server.stats().httpConnections === 0, "the connection gone");
    assert.equal(server.stats().httpKeepAlive, 0);
  });
});

test("keep-alive: Connection: close from the client closes after the response", async () => {
  await withServer({ fetch: () => new Response("bye") }, async ({ port }) => {
    await withClient(port, async (client) => {
      await client.write(httpRequest("GET", "/", ["Connection: close"]));
      const response = await client.response();
      assert.equal(response.body, "bye");
      assert.equal(response.headers.get("connection"), "close");
      await client.waitClosed();
      assert.equal(client.ended, true, "the server sent FIN");
    });
  });
});

test("keep-alive: HTTP/1.0 closes unless it asks for keep-alive, then gets Connection: keep-alive", async () => {
  await withServer({ fetch: () => new Response("old") }, async ({ port }) => {
    await withClient(port, async (client) => {
      await client.write("GET / HTTP/1.0\r\nHost: x\r\n\r\n");
      const response = await client.response();
      assert.equal(response.body, "old");
      assert.equal(response.headers.get("connection"), "close");
      await client.waitClosed();
    });
    await withClient(port, async (client) => {
      for (let i = 0; i < 2; i++) {
        await client.write("GET / HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\n\r\n");
        const response = await client.response();
        assert.equal(response.body, "old");
        assert.equal(response.headers.get("connection"), "keep-alive");
      }
      assert.equal(client.isClosed, false);
    });
  });
});

test("keep-alive: an idle connection is closed after keepAliveTimeout, a busy one is not", async () => {
  await withServer({
    keepAliveTimeout: 300,
    async fetch(request) {
      // Slower than the idle timeout: time spent answering is not idle time.
      if (new URL(request.url).pathname === "/slow") await sleep(500);
      return new Response("ok");
    },
  }, async ({ port, server }) => {
    await withClient(port, async (client) => {
      await client.write(httpRequest("GET", "/slow"));
      assert.equal((await client.response()).body, "ok");
      const idleSince = Date.now();
      // Generous: the timeout is 300 ms, checked by a sweep every 75 ms.
      await client.waitClosed(3000);
      assert.ok(Date.now() - idleSince >= 250, "not before the timeout");
      assert.equal(client.ended, true, "closed with FIN, not reset");
    });
    assert.deepEqual(server.stats().httpResponses, { "200": 1 });
  });
});

test("keep-alive: maxRequestsPerConnection closes after the last allowed response", async () => {
  await withServer({ maxRequestsPerConnection: 3, fetch: () => new Response("ok") }, async (
    { port },
  ) => {
    await withClient(port, async (client) => {
      const connection: Array<string | undefined> = [];
      for (let i = 0; i < 3; i++) {
        await client.write(httpRequest("GET", "/"));
        connection.push((await client.response()).headers.get("connection"));
      }
      assert.deepEqual(connection, [undefined, undefined, "close"]);
      await client.waitClosed();
    });
  });
  // 1 turns keep-alive off.
  await withServer({ maxRequestsPerConnection: 1, fetch: () => new Response("ok") }, async (
    { port },
  ) => {
    await withClient(port, async (client) => {
      await client.write(httpRequest("GET", "/"));
      assert.equal((await client.response()).headers.get("connection"), "close");
      await client.waitClosed();
    });
  });
});

test("keep-alive: the new options are checked", async () => {
  await assertServeThrows({ keepAliveTimeout: 0 }, {
    name: "RangeError",
    message: "Cannot serve: keepAliveTimeout must be a positive number, got 0",
  });
  await assertServeThrows({ keepAliveTimeout: "5s" as unknown as number }, {
    name: "TypeError",
    message: 'Cannot serve: keepAliveTimeout must be a positive number, got "5s"',
  });
  for (const value of [0, 1.5, -1]) {
    await assertServeThrows({ maxRequestsPerConnection: value }, {
      name: "RangeError",
      message:
        `Cannot serve: maxRequestsPerConnection must be an integer from 1 to 9007199254740991, got ${value}`,
    });
  }
  await withServer({ maxRequestsPerConnection: Infinity, fetch: () => new Response("ok") }, async (
    { port },
  ) => {
    await withClient(port, async (client) => {
      await client.write(httpRequest("GET", "/"));
      assert.equal((await client.response()).headers.get("connection"), undefined);
    });
  });
});

test("keep-alive: pipelined requests are answered in order, one at a time", async () => {
  const log: string[] = [];
  await withServer({
    async fetch(request) {
      const path = new URL(request.url).pathname;
      log.push(`start ${path}`);
      const body = await request.text();
      // The first is the slowest: answered concurrently, it would come last.
      await sleep(path === "/1" ? 100 : path === "/2" ? 30 : 0);
      log.push(`end ${path}`);
      return new Response(`${path}:${body}`);
    },
  }, async ({ port }) => {
    await withClient(port, async (client) => {
      // Three requests, the middle one with a body, in one write.
      await client.write(
        httpRequest("GET", "/1") +
          httpRequest("POST", "/2", ["Content-Length: 5"], "hello") +
          httpRequest("POST", "/3", ["Transfer-Encoding: chunked"], "3\r\nabc\r\n0\r\n\r\n"),
      );
      const bodies = [];
      for (let i = 0; i < 3; i++) bodies.push((await client.response()).body);
      assert.deepEqual(bodies, ["/1:", "/2:hello", "/3:abc"]);
      assert.deepEqual(log, ["start /1", "end /1", "start /2", "end /2", "start /3", "end /3"]);
    });
  });
});

test("keep-alive: an upgrade request on a connection that served plain requests opens a WebSocket", async () => {
  const upgrades = new Queue<string>();
  await withServer({
    fetch: (request) => new Response(`plain ${new URL(request.url).pathname}`),
    upgrade(request) {
      upgrades.push(request.pathname);
    },
    message(ws, data) {
      ws.send(data);
    },
  }, async ({ port, server }) => {
    // One request, then the upgrade after its response.
    const client = await RawClient.connect(port);
    try {
      await client.write(httpRequest("GET", "/page"));
      const first = await client.response();
      assert.equal(first.status, 200);
      assert.equal(new TextDecoder().decode(first.body), "plain /page");
      client.expectResponse();
      await client.write(upgradeRequest({ path: "/socket" }));
      assert.equal((await client.response()).status, 101);
      assert.equal(await upgrades.next("the upgrade hook"), "/socket");
      await client.sendFrame(Op.Text, "over the same TCP connection");
      assert.equal(text((await client.nextFrame()).payload), "over the same TCP connection");
      await waitFor(() => server.stats().connections === 1, "the WebSocket counted");
      const stats = server.stats();
      assert.equal(stats.httpConnections, 0, "no longer a plain HTTP connection");
      assert.equal(stats.httpKeepAlive, 0);
      assert.equal(stats.accepted, 1);
    } finally {
      client.destroy();
      await client.closed;
    }
    // Pipelined: a plain request, then an upgrade request with a frame behind it, in one write.
    const piped = await RawClient.connect(port);
    try {
      const frame = Buffer.from(
        [0x81, 0x82, 1, 2, 3, 4, "h".charCodeAt(0) ^ 1, "i".charCodeAt(0) ^ 2],
      );
      await piped.write(
        Buffer.concat([
          Buffer.from(httpRequest("GET", "/first") + upgradeRequest({ path: "/then" }), "latin1"),
          frame,
        ]),
      );
      const first = await piped.response();
      assert.equal(new TextDecoder().decode(first.body), "plain /first");
      piped.expectResponse();
      assert.equal((await piped.response()).status, 101);
      assert.equal(text((await piped.nextFrame()).payload), "hi");
    } finally {
      piped.destroy();
      await piped.closed;
    }
  });
});

test("keep-alive: fetch and the upgrade hook both see request.url as a string, headers as Headers", async () => {
  const seen = new Queue<{ url: unknown; headers: boolean; method: string }>();
  await withServer({
    fetch(request) {
      seen.push({
        url: request.url,
        headers: request.headers instanceof Headers,
        method: request.method,
      });
      return new Response("ok");
    },
    upgrade(request: UpgradeRequest) {
      seen.push({
        url: request.url,
        headers: request.headers instanceof Headers,
        method: request.method,
      });
    },
  }, async ({ port, open }) => {
    await withClient(port, async (client) => {
      await client.write(httpRequest("GET", "/plain?x=1"));
      await client.response();
    });
    await open({ path: "/ws?y=2" });
    assert.deepEqual(seen.items, [
      { url: `http://127.0.0.1/plain?x=1`, headers: true, method: "GET" },
      { url: "http://127.0.0.1/ws?y=2", headers: true, method: "GET" },
    ]);
  });
});

test("keep-alive: plain HTTP figures in stats and metrics, apart from WebSocket figures", async () => {
  const hold = deferred<void>();
  await withServer({
    metricsPath: "/metrics",
    async fetch(request) {
      if (new URL(request.url).pathname === "/wait") await hold.promise;
      return new Response("twelve bytes");
    },
    message(ws, data) {
      ws.send(data);
    },
  }, async ({ port, server, open }) => {
    const { client: ws } = await open();
    await ws.sendFrame(Op.Text, "ws");
    await ws.nextFrame();
    const wsBefore = server.stats();
    const a = await HttpClient.connect(port);
    const b = await HttpClient.connect(port);
    try {
      const request = httpRequest("GET", "/");
      await a.write(request);
      await a.response();
      await b.write(httpRequest("GET", "/wait"));
      await waitFor(() => server.stats().httpRequests === 2, "both requests read");
      let stats = server.stats();
      assert.equal(stats.httpConnections, 2);
      assert.equal(stats.httpKeepAlive, 1, "a is idle, b is being answered");
      hold.resolve();
      await b.response();
      await waitFor(() => server.stats().httpKeepAlive === 2, "both idle");
      stats = server.stats();
      const sent = request.length + httpRequest("GET", "/wait").length;
      assert.equal(stats.httpBytesIn, sent);
      assert.equal(stats.httpBytesOut, a.received + b.received);
      // The WebSocket's figures did not move.
      assert.equal(stats.bytesIn, wsBefore.bytesIn);
      assert.equal(stats.bytesOut, wsBefore.bytesOut);
      assert.equal(stats.messagesIn, 1);
      await a.write(httpRequest("GET", "/metrics"));
      const metrics = (await a.response()).body;
      assert.match(metrics, /^sluice_http_connections 2$/m);
      assert.match(metrics, /^sluice_http_keepalive_connections 1$/m);
      assert.match(
        metrics,
        new RegExp(
          `^sluice_http_bytes_total\\{direction="in"\\} ${
            sent + httpRequest("GET", "/metrics").length
          }$`,
          "m",
        ),
      );
      assert.match(metrics, /^sluice_http_responses_total\{status="200"\} 2$/m);
      assert.match(metrics, /^sluice_connections 1$/m);
    } finally {
      a.destroy();
      b.destroy();
      await Promise.all([a.closed, b.closed]);
    }
    await waitFor(() => server.stats().httpConnections === 0, "plain connections gone");
    assert.equal(server.stats().httpKeepAlive, 0);
  });
});
