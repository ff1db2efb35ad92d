/**
 * End to end: a Hono app (npm `hono`) served as `serve({ fetch: app.fetch })`, on one port
 * with WebSocket traffic: routes, JSON both ways, a 404, and server-sent events from Hono's
 * streaming helper, over persistent connections and the runtime's own `fetch`.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { Hono } from "hono";
import { streamSSE } from "hono/streaming";
import { Op, text } from "./_client.ts";
import { withServer } from "./_harness.ts";
import { HttpClient, httpRequest } from "./_http_client.ts";

function app(): Hono {
  const app = new Hono();
  app.get("/", (c) => c.text("hello from hono"));
  app.get("/users/:id", (c) => c.json({ id: c.req.param("id"), q: c.req.query("q") ?? null }));
  app.post("/echo", async (c) => c.json({ got: await c.req.json() }, 201));
  app.get("/events", (c) =>
    streamSSE(c, async (stream) => {
      for (let i = 1; i <= 3; i++) {
        await stream.writeSSE({ event: "tick", data: `n${i}`, id: String(i) });
        await stream.sleep(5);
      }
    }));
  return app;
}

test("hono: an app's routes, JSON, 404 and server-sent events beside a WebSocket on one port", async () => {
  const hono = app();
  await withServer({
    fetch: hono.fetch,
    message(ws, data) {
      ws.send(data);
    },
  }, async ({ port, open, server }) => {
    const { client: ws } = await open({ path: "/socket" });
    await ws.sendFrame(Op.Text, "first");
    assert.equal(text((await ws.nextFrame()).payload), "first");

    const base = `http://127.0.0.1:${port}`;
    const home = await fetch(`${base}/`);
    assert.equal(home.status, 200);
    assert.equal(home.headers.get("content-type"), "text/plain;charset=UTF-8");
    assert.equal(await home.text(), "hello from hono");

    const user = await fetch(`${base}/users/42?q=x`);
    assert.equal(user.headers.get("content-type"), "application/json");
    assert.deepEqual(await user.json(), { id: "42", q: "x" });

    const echo = await fetch(`${base}/echo`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ hello: ["world", 1] }),
    });
    assert.equal(echo.status, 201);
    assert.deepEqual(await echo.json(), { got: { hello: ["world", 1] } });

    const missing = await fetch(`${base}/nowhere`);
    assert.equal(missing.status, 404);
    assert.equal(await missing.text(), "404 Not Found");

    // The WebSocket went on meanwhile.
    await ws.sendFrame(Op.Text, "second");
    assert.equal(text((await ws.nextFrame()).payload), "second");

    // One persistent connection: a route, then the event stream chunk by chunk.
    const client = await HttpClient.connect(port);
    try {
      await client.write(httpRequest("GET", "/users/7"));
      assert.equal((await client.response()).body, '{"id":"7","q":null}');
      await client.write(httpRequest("GET", "/events"));
      const events = await client.head();
      assert.equal(events.status, 200);
      assert.equal(events.headers.get("content-type"), "text/event-stream");
      assert.equal(events.headers.get("transfer-encoding"), "chunked");
      let body = "";
      for (;;) {
        const chunk = await client.chunk(events);
        if (chunk === undefined) break;
        body += chunk;
      }
      assert.equal(
        body,
        "event: tick\ndata: n1\nid: 1\n\nevent: tick\ndata: n2\nid: 2\n\n" +
          "event: tick\ndata: n3\nid: 3\n\n",
      );
      await client.write(httpRequest("GET", "/"));
      assert.equal((await client.response()).body, "hello from hono");
    } finally {
      client.destroy();
      await client.closed;
    }
    const stats = server.stats();
    assert.equal(stats.connections, 1);
    assert.equal(stats.messagesIn, 2);
    assert.deepEqual(stats.httpResponses, { "200": 5, "201": 1, "404": 1 });
  });
});
