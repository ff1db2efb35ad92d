/**
 * End to end: the upgrade hook (accept with data, refuse with a Response, throw, a client that
 * leaves while the hook runs) and subprotocol negotiation.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { serve, type ServerWebSocket, type UpgradeRequest } from "../mod.ts";
import { encodeFrame, Op, text, upgradeRequest } from "./_client.ts";
import { deferred, Queue, withServer } from "./_harness.ts";

interface User {
  user: string;
}

test("upgrade: a sync hook accepts with data seen in open and message", async () => {
  const opened = new Queue<User>();
  await withServer<User>({
    upgrade(request) {
      return { data: { user: request.searchParams.get("user") ?? "?" } };
    },
    open(ws) {
      opened.push(ws.data);
    },
    message(ws, data) {
      ws.send(`${ws.data.user}:${data}`);
    },
  }, async ({ open }) => {
    const { client } = await open({ path: "/?user=ann" });
    assert.deepEqual(await opened.next("open"), { user: "ann" });
    await client.sendFrame(Op.Text, "hi");
    assert.equal(text((await client.nextFrame()).payload), "ann:hi");
  });
});

test("upgrade: an async hook accepts with data; bytes pipelined meanwhile are kept", async () => {
  const opened = new Queue<User>();
  await withServer<User>({
    async upgrade(request) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      return { data: { user: request.headers.get("x-user") ?? "?" } };
    },
    open(ws) {
      opened.push(ws.data);
    },
    message(ws, data) {
      ws.send(`${ws.data.user}:${data}`);
    },
  }, async ({ open }) => {
    const { client } = await open({
      extra: ["X-User: bob"],
      pipelined: encodeFrame(Op.Text, "early"),
    });
    assert.deepEqual(await opened.next("open"), { user: "bob" });
    assert.equal(text((await client.nextFrame()).payload), "bob:early");
    await client.sendFrame(Op.Text, "late");
    assert.equal(text((await client.nextFrame()).payload), "bob:late");
  });
});

test("upgrade: the hook's request is a standard Request, the type fetch gets", async () => {
  const seen = new Queue<Request>();
  await withServer({
    upgrade(request) {
      seen.push(request);
    },
    fetch(request) {
      seen.push(request);
      return new Response("ok");
    },
  }, async ({ open, connect }) => {
    await open({ path: "/chat?room=1", extra: ["X-User: ann"] });
    const hooked = await seen.next("the hook's request") as UpgradeRequest;
    const plain = await connect();
    await plain.write("GET /page?room=1 HTTP/1.1\r\nHost: 127.0.0.1\r\nX-User: ann\r\n\r\n");
    assert.equal((await plain.response()).status, 200);
    const fetched = await seen.next("fetch's request");
    for (const request of [hooked, fetched]) {
      assert.ok(request instanceof Request);
      assert.equal(request.method, "GET");
      assert.equal(typeof request.url, "string");
      assert.equal(request.headers.get("x-user"), "ann");
      assert.equal(request.headers.get("host"), "127.0.0.1");
    }
    assert.equal(hooked.url, "http://127.0.0.1/chat?room=1");
    assert.equal(fetched.url, "http://127.0.0.1/page?room=1");
    // What an upgrade adds to the Request.
    assert.equal(hooked.pathname, "/chat");
    assert.equal(hooked.searchParams.get("room"), "1");
    assert.equal(hooked.target, "/chat?room=1");
    assert.equal(hooked.headers.get("upgrade"), "websocket");
    assert.equal(hooked.remoteAddress, "127.0.0.1");
  });
});

test("upgrade: a Host that makes no URL gets 400, and the hook is not called", async () => {
  let hooked = 0;
  await withServer({
    upgrade() {
      hooked++;
    },
  }, async ({ connect }) => {
    const client = await connect();
    await client.write(upgradeRequest().replace("Host: 127.0.0.1", "Host: a b"));
    const response = await client.response();
    assert.equal(response.status, 400);
    assert.equal(text(response.body), "Bad request: invalid Host or target");
    await client.waitClosed();
    assert.equal(hooked, 0);
  });
});

test("upgrade: a Response refuses with exactly its status, headers and body", async () => {
  let opened = 0;
  await withServer({
    upgrade() {
      return new Response("nope", { status: 401, headers: { "WWW-Authenticate": "Bearer" } });
    },
    open() {
      opened++;
    },
  }, async ({ connect }) => {
    const client = await connect();
    await client.write(upgradeRequest());
    const response = await client.response();
    assert.equal(response.status, 401);
    assert.match(response.statusLine, /^HTTP\/1\.1 401 /);
    assert.equal(response.headers.get("www-authenticate"), "Bearer");
    assert.equal(response.headers.get("content-length"), "4");
    assert.equal(text(response.body), "nope");
    assert.equal(response.headers.has("sec-websocket-accept"), false);
    await client.waitClosed();
    assert.equal(client.endReceived, true);
    assert.equal(opened, 0);
  });
});

test("upgrade: a hook that throws gives 500 and calls the error handler", async () => {
  const boom = new Error("hook failed");
  const errors = new Queue<[unknown, ServerWebSocket<undefined> | undefined]>();
  let opened = 0;
  await withServer({
    upgrade() {
      throw boom;
    },
    open() {
      opened++;
    },
    error(error, ws) {
      errors.push([error, ws]);
    },
  }, async ({ connect }) => {
    const client = await connect();
    await client.write(upgradeRequest());
    const response = await client.response();
    assert.equal(response.status, 500);
    // The error's details are the server's: they must not leak into the response.
    assert.doesNotMatch(text(response.body), /hook failed/);
    const [error, ws] = await errors.next("the error handler");
    assert.equal(error, boom);
    assert.equal(ws, undefined);
    await client.waitClosed();
    assert.equal(opened, 0);
    assert.equal(errors.items.length, 1);
  });
});

test("upgrade: an async hook that rejects gives 500 and calls the error handler", async () => {
  const boom = new Error("async hook failed");
  const errors = new Queue<unknown>();
  await withServer({
    async upgrade() {
      await Promise.resolve();
      throw boom;
    },
    error(error) {
      errors.push(error);
    },
  }, async ({ connect }) => {
    const client = await connect();
    await client.write(upgradeRequest());
    assert.equal((await client.response()).status, 500);
    assert.equal(await errors.next("the error handler"), boom);
    await client.waitClosed();
  });
});

test("upgrade: a client that leaves while an async hook runs: no open, no error", async () => {
  const hookCalled = deferred<void>();
  const decide = deferred<void>();
  let opened = 0;
  let closed = 0;
  const errors: unknown[] = [];
  await withServer({
    async upgrade() {
      hookCalled.resolve();
      await decide.promise;
      return { data: undefined };
    },
    open() {
      opened++;
    },
    close() {
      closed++;
    },
    error(error) {
      errors.push(error);
    },
  }, async ({ server, connect }) => {
    const client = await connect();
    await client.write(upgradeRequest());
    await hookCalled.promise;
    client.destroy();
    await client.waitClosed();
    // What is tested is that nothing happens, so give the server time to see the client go
    // before the hook decides, and time to (wrongly) open after it decides.
    await new Promise((resolve) => setTimeout(resolve, 50));
    decide.resolve();
    await new Promise((resolve) => setTimeout(resolve, 50));
    await server.shutdown({ timeout: 1000 });
    assert.equal(opened, 0, "open was called for a client that had left");
    assert.equal(closed, 0, "close was called for a connection that never opened");
    assert.deepEqual(errors, []);
  });
});

test("subprotocols: the first one the client offers that the server speaks is chosen", async () => {
  const chosen = new Queue<string>();
  await withServer({
    protocols: ["b", "a"],
    open(ws) {
      chosen.push(ws.protocol);
    },
  }, async ({ open }) => {
    const { response } = await open({ protocols: "a, b" });
    assert.equal(response.headers.get("sec-websocket-protocol"), "a");
    assert.equal(await chosen.next("open"), "a");
  });
});

test("subprotocols: the hook's choice wins when the client offered it", async () => {
  const seen = new Queue<string[]>();
  await withServer({
    protocols: ["a"],
    upgrade(request: UpgradeRequest) {
      seen.push(request.protocols);
      return { protocol: "c" };
    },
  }, async ({ open }) => {
    const { response } = await open({ protocols: "a, c" });
    assert.deepEqual(await seen.next("the hook"), ["a", "c"]);
    assert.equal(response.headers.get("sec-websocket-protocol"), "c");
  });
});

test("subprotocols: a hook choosing one the client did not offer gives 500", async () => {
  const errors = new Queue<unknown>();
  let opened = 0;
  await withServer({
    upgrade() {
      return { protocol: "c" };
    },
    open() {
      opened++;
    },
    error(error) {
      errors.push(error);
    },
  }, async ({ connect }) => {
    const client = await connect();
    await client.write(upgradeRequest({ protocols: "a, b" }));
    const response = await client.response();
    assert.equal(response.status, 500);
    assert.equal(response.headers.has("sec-websocket-protocol"), false);
    const error = await errors.next("the error handler");
    assert.ok(error instanceof TypeError);
    assert.match(error.message, /"c"/);
    await client.waitClosed();
    assert.equal(opened, 0);
  });
});

test("subprotocols: no common one gives 101 without Sec-WebSocket-Protocol", async () => {
  const chosen = new Queue<string>();
  await withServer({
    protocols: ["x", "y"],
    open(ws) {
      chosen.push(ws.protocol);
    },
  }, async ({ open }) => {
    const { response } = await open({ protocols: "a, b" });
    assert.equal(response.headers.has("sec-websocket-protocol"), false);
    assert.equal(await chosen.next("open"), "");
  });
});

test("options: bad permessage-deflate settings throw RangeError from serve(), not later", () => {
  for (
    const perMessageDeflate of [
      { serverMaxWindowBits: 16 },
      { clientMaxWindowBits: 7 },
      { level: 10 },
      { memLevel: 0 },
      { engine: "web" as const, mode: "dedicated" as const },
    ]
  ) {
    assert.throws(
      () => {
        // Should throw; if it does not, close what it opened before the assertion fails.
        serve({ port: 0, hostname: "127.0.0.1", perMessageDeflate }).shutdown();
      },
      RangeError,
      JSON.stringify(perMessageDeflate),
    );
  }
});
