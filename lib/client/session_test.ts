import { describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  SessionClient,
  type SessionClientEventMap,
  type SessionClientOptions,
  SessionError,
  type WebSocketLike,
} from "./session.ts";
import {
  type ClientFrame,
  decodeClientFrame,
  encodeFrame,
  type ServerFrame,
  SESSION_PROTOCOL,
  SessionProtocolError,
} from "../session/wire.ts";

/** A WebSocket the test drives: what the client sends is decoded into `frames`. */
class FakeSocket implements WebSocketLike {
  binaryType = "blob";
  readyState = 0;
  protocol = "";
  onopen: ((event: unknown) => unknown) | null = null;
  onmessage: ((event: { data: unknown }) => unknown) | null = null;
  onclose: ((event: { code: number; reason: string }) => unknown) | null = null;
  onerror: ((event: unknown) => unknown) | null = null;
  frames: ClientFrame[] = [];
  closeCalls: { code?: number; reason?: string }[] = [];
  net: FakeNet;
  url: string;
  protocols: string[];

  constructor(net: FakeNet, url: string, protocols: string[]) {
    this.net = net;
    this.url = url;
    this.protocols = protocols;
  }

  send(data: string | Uint8Array): void {
    if (this.readyState === 0) throw new DOMException("still connecting", "InvalidStateError");
    if (this.readyState !== 1) return;
    this.frames.push(decodeClientFrame(data));
  }

  close(code?: number, reason?: string): void {
    // As the WHATWG API does: only 1000 and 3000–4999 may be sent.
    if (
      this.net.strictClose && code !== undefined && code !== 1000 && (code < 3000 || code > 4999)
    ) {
      throw new DOMException(`code ${code}`, "InvalidAccessError");
    }
    this.closeCalls.push({ code, reason });
    if (this.readyState >= 2) return;
    this.readyState = 2;
    if (!this.net.stuck) queueMicrotask(() => this.finish(code ?? 1005, reason ?? ""));
  }

  // --- the server's side ---

  accept(protocol = SESSION_PROTOCOL): void {
    this.readyState = 1;
    this.protocol = protocol;
    this.onopen?.({});
  }

  deliver(frame: ServerFrame): void {
    const wire = encodeFrame(frame);
    this.raw(typeof wire === "string" ? wire : wire.slice().buffer);
  }

  raw(data: unknown): void {
    this.onmessage?.({ data });
  }

  finish(code = 1006, reason = ""): void {
    if (this.readyState === 3) return;
    this.readyState = 3;
    this.net.live--;
    this.onclose?.({ code, reason });
  }

  /** Removes and returns what the client sent so far. */
  take(): ClientFrame[] {
    return this.frames.splice(0);
  }
}

/** The factory and what it opened; `maxLive` is the most sockets alive at once. */
class FakeNet {
  sockets: FakeSocket[] = [];
  live = 0;
  maxLive = 0;
  stuck = false;
  strictClose = true;
  #claimed = 0;
  #waiters: { index: number; resolve: (socket: FakeSocket) => void }[] = [];

  factory = (url: string, protocols: string[]): WebSocketLike => {
    const socket = new FakeSocket(this, url, protocols);
    this.live++;
    this.maxLive = Math.max(this.maxLive, this.live);
    this.sockets.push(socket);
    this.#waiters = this.#waiters.filter((waiter) => {
      if (waiter.index >= this.sockets.length) return true;
      waiter.resolve(this.sockets[waiter.index]);
      return false;
    });
    return socket;
  };

  /** The next socket the client opens. */
  next(): Promise<FakeSocket> {
    const index = this.#claimed++;
    if (index < this.sockets.length) return Promise.resolve(this.sockets[index]);
    return new Promise((resolve) => this.#waiters.push({ index, resolve }));
  }
}

const URL_ = "ws://session.test/";
const WINDOW = 120_000;

function welcome(fields: Partial<ServerFrame & { t: "welcome" }> = {}): ServerFrame {
  return {
    t: "welcome",
    v: 1,
    session: "S1",
    token: "T1",
    resumed: false,
    ack: 0,
    window: WINDOW,
    ...fields,
  } as ServerFrame;
}

function setup(options: SessionClientOptions = {}) {
  const net = new FakeNet();
  const client = new SessionClient(URL_, {
    webSocket: net.factory,
    random: () => 0,
    ...options,
  });
  const log: [keyof SessionClientEventMap, unknown][] = [];
  const types: (keyof SessionClientEventMap)[] = [
    "connecting",
    "open",
    "topic",
    "reset",
    "reconnecting",
    "closed",
    "message",
    "publication",
    "error",
  ];
  for (const type of types) client.on(type, (event) => log.push([type, event]));
  const events = (type: keyof SessionClientEventMap) =>
    log.filter(([t]) => t === type).map(([, e]) => e);
  return { net, client, log, events };
}

/** Accepts the next socket, checks the hello and welcomes it; returns the socket and hello. */
async function connect(net: FakeNet, fields: Partial<ServerFrame & { t: "welcome" }> = {}) {
  const socket = await net.next();
  socket.accept();
  const [hello, ...rest] = socket.take();
  assert.equal(hello.t, "hello");
  assert.deepEqual(rest, []);
  socket.deliver(welcome(fields));
  return { socket, hello: hello as ClientFrame & { t: "hello" } };
}

/** Closes the client and waits for its `closed` event. */
async function shut(client: SessionClient): Promise<void> {
  if (client.state === "closed") return;
  const closed = new Promise((resolve) => client.on("closed", resolve));
  client.close();
  await closed;
}

const turn = () => new Promise((resolve) => setTimeout(resolve, 0));
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Whether a promise is settled (after the pending microtasks ran). */
async function settled(promise: Promise<unknown>): Promise<boolean> {
  let done = false;
  promise.then(() => (done = true), () => (done = true));
  await turn();
  return done;
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  assert.fail("expected a rejection");
}

function assertSessionError(error: unknown, code: string, message?: string | RegExp) {
  assert.ok(error instanceof SessionError, `not a SessionError: ${error}`);
  assert.equal(error.code, code);
  if (typeof message === "string") assert.equal(error.message, message);
  else if (message !== undefined) assert.match(error.message, message);
}

describe("SessionClient: connecting", () => {
  test("offers sluice.v1, sends hello without a token, opens on welcome", async () => {
    const { net, client, log } = setup();
    assert.equal(client.state, "connecting");
    const { socket, hello } = await connect(net);
    assert.equal(socket.url, URL_);
    assert.deepEqual(socket.protocols, [SESSION_PROTOCOL]);
    assert.equal(socket.binaryType, "arraybuffer");
    assert.deepEqual(hello, { t: "hello", v: 1 });
    assert.equal(client.state, "open");
    assert.equal(client.sessionId, "S1");
    assert.deepEqual(log, [
      ["connecting", { attempt: 0 }],
      ["open", { session: "S1", resumed: false, lost: 0, resent: 0 }],
    ]);
    await shut(client);
    assert.deepEqual(socket.closeCalls, [{ code: 1000, reason: "" }]);
    assert.deepEqual(log.at(-1), ["closed", { code: 1000, reason: "" }]);
    assert.equal(net.maxLive, 1);
  });

  test("close() right after construction opens no socket", async () => {
    const { net, client, events } = setup();
    client.close(4000, "changed my mind");
    assert.equal(client.state, "closed");
    await turn();
    assert.equal(net.sockets.length, 0);
    assert.deepEqual(events("closed"), [{ code: 4000, reason: "changed my mind" }]);
  });

  test("close() while connecting closes the pending socket and opens no other", async () => {
    const { net, client, events } = setup();
    const socket = await net.next();
    const pending = rejection(client.send("queued"));
    client.close();
    assert.equal(socket.closeCalls.length, 1);
    assert.deepEqual(events("closed"), []); // not until the socket's close event
    await turn();
    assert.deepEqual(events("closed"), [{ code: 1000, reason: "" }]);
    assertSessionError(
      await pending,
      "SESSION_ERR_CLOSED",
      "Cannot send: the session client is closed",
    );
    await sleep(5);
    assert.equal(net.sockets.length, 1);
    assert.equal(net.maxLive, 1);
  });

  test("close() while backing off clears the timer and opens no other socket", async () => {
    const { net, client, events } = setup({ random: () => 0.99, backoff: { base: 40 } });
    const first = await net.next();
    first.finish(1006);
    assert.equal(client.state, "reconnecting");
    assert.deepEqual(events("reconnecting"), [{ attempt: 1, delay: 39, code: 1006, reason: "" }]);
    client.close();
    assert.deepEqual(events("closed"), [{ code: 1000, reason: "" }]);
    await sleep(60);
    assert.equal(net.sockets.length, 1);
  });

  test("a listener of connecting may close the client: no socket is opened", async () => {
    const { net, client, events } = setup();
    client.on("connecting", () => client.close());
    await turn();
    assert.equal(net.sockets.length, 0);
    assert.deepEqual(events("closed"), [{ code: 1000, reason: "" }]);
  });

  test("no welcome within welcomeTimeout: the socket is dropped and another dialled", async () => {
    const { net, client, events } = setup({ welcomeTimeout: 20 });
    const first = await net.next();
    first.accept();
    assert.equal(first.take()[0].t, "hello");
    const second = await net.next();
    assert.equal(first.readyState, 3);
    assert.equal(first.closeCalls.length, 1);
    assert.deepEqual(events("reconnecting"), [
      { attempt: 1, delay: 0, code: 1006, reason: "no welcome within 20 ms" },
    ]);
    assert.equal(net.maxLive, 1);
    second.accept();
    second.deliver(welcome());
    assert.equal(client.state, "open");
    await shut(client);
  });

  test("a socket whose close never comes is abandoned after closeTimeout", async () => {
    const { net, client, events } = setup({ welcomeTimeout: 10, closeTimeout: 20 });
    net.stuck = true;
    const first = await net.next();
    first.accept();
    const started = performance.now();
    const second = await net.next();
    assert.ok(performance.now() - started >= 25, "waited for the close timer");
    assert.equal(first.closeCalls.length, 1);
    assert.equal(first.onclose, null, "the abandoned socket's events are ignored");
    assert.deepEqual(events("reconnecting").length, 1);
    net.stuck = false;
    second.accept();
    second.deliver(welcome());
    await shut(client);
  });

  test("a server that does not select sluice.v1 is a protocol violation", async () => {
    const { net, client, events } = setup();
    const socket = await net.next();
    socket.accept("");
    await turn();
    const [{ error }] = events("error") as { error: SessionProtocolError }[];
    assert.ok(error instanceof SessionProtocolError);
    assert.equal(error.message, "the server did not select the subprotocol sluice.v1");
    assert.equal(client.state, "closed");
    assert.equal(net.sockets.length, 1);
  });

  test("a factory that throws ends the client with an error event", async () => {
    const client = new SessionClient(URL_, {
      webSocket: () => {
        throw new SyntaxError("bad URL");
      },
    });
    const errors: unknown[] = [];
    const closed: unknown[] = [];
    client.on("error", ({ error }) => errors.push(error));
    client.on("closed", (event) => closed.push(event));
    await turn();
    assert.equal(client.state, "closed");
    assert.ok(errors[0] instanceof SyntaxError);
    assert.deepEqual(closed, [{ code: 1006, reason: "the WebSocket factory threw" }]);
  });
});

describe("SessionClient: send and request", () => {
  test("send resolves at the server's cumulative ack", async () => {
    const { net, client } = setup();
    const { socket } = await connect(net);
    const a = client.send("a");
    const b = client.send(new Uint8Array([1, 2, 3]));
    const c = client.send("c");
    const [fa, fb, fc] = socket.take();
    assert.deepEqual(fa, { t: "msg", seq: 1, d: "a" });
    assert.deepEqual(fb, { t: "msg", seq: 2, d: new Uint8Array([1, 2, 3]) });
    assert.deepEqual(fc, { t: "msg", seq: 3, d: "c" });
    socket.deliver({ t: "ack", seq: 2 });
    assert.equal(await a, undefined);
    assert.equal(await b, undefined);
    assert.equal(await settled(c), false);
    socket.deliver({ t: "ack", seq: 3 });
    assert.equal(await c, undefined);
    await shut(client);
  });

  test("request resolves with the reply; an error reply rejects with its message", async () => {
    const { net, client } = setup();
    const { socket } = await connect(net);
    const one = client.request("balance?");
    const two = client.request(new Uint8Array([7]));
    const three = client.request("boom");
    assert.deepEqual(socket.take().map((f) => [f.t, (f as { seq: number }).seq]), [
      ["req", 1],
      ["req", 2],
      ["req", 3],
    ]);
    socket.deliver({ t: "ack", seq: 3 }); // an ack alone settles no request
    assert.equal(await settled(one), false);
    socket.deliver({ t: "reply", seq: 1, re: 2, d: new Uint8Array([8, 9]) });
    socket.deliver({ t: "reply", seq: 2, re: 1, d: "10" });
    socket.deliver({ t: "reply", seq: 3, re: 3, error: { message: "no such account" } });
    assert.equal(await one, "10");
    assert.deepEqual(await two, new Uint8Array([8, 9]));
    assertSessionError(await rejection(three), "SESSION_ERR_REPLY", "no such account");
    await Promise.resolve();
    assert.deepEqual(socket.take(), [{ t: "ack", seq: 3 }], "one coalesced ack");
    await shut(client);
  });

  test("a request times out; its late reply is acknowledged and dropped", async () => {
    const { net, client, events } = setup();
    const { socket } = await connect(net);
    const reply = client.request("slow", { timeout: 15 });
    assertSessionError(
      await rejection(reply),
      "SESSION_ERR_TIMEOUT",
      "The request got no reply before its timeout",
    );
    socket.take();
    socket.deliver({ t: "reply", seq: 1, re: 1, d: "late" });
    await Promise.resolve();
    assert.deepEqual(socket.take(), [{ t: "ack", seq: 1 }]);
    assert.deepEqual(events("error"), []);
    assert.equal(client.state, "open");
    await shut(client);
  });

  test("a request timed out while queued is never sent", async () => {
    const { net, client } = setup();
    const reply = client.request("x", { timeout: 5 });
    assertSessionError(await rejection(reply), "SESSION_ERR_TIMEOUT");
    const { socket } = await connect(net);
    assert.deepEqual(socket.take(), []);
    assert.equal(await settled(client.send("y")), false);
    assert.deepEqual(socket.take(), [{ t: "msg", seq: 1, d: "y" }]);
    await shut(client).catch(() => {});
  });

  test("volatile messages are sent without seq when open, rejected when not", async () => {
    const { net, client } = setup();
    assertSessionError(
      await rejection(client.send("v", { volatile: true })),
      "SESSION_ERR_NOT_OPEN",
      "Cannot send a volatile message: the session is not open",
    );
    const { socket } = await connect(net);
    assert.equal(await client.send("typing", { volatile: true }), undefined);
    assert.deepEqual(socket.take(), [{ t: "msg", d: "typing" }]);
    socket.finish(1006);
    assertSessionError(
      await rejection(client.send("v", { volatile: true })),
      "SESSION_ERR_NOT_OPEN",
    );
    const second = await net.next();
    second.accept();
    assert.deepEqual(second.take(), [{ t: "hello", v: 1, token: "T1", ack: 0 }], "nothing queued");
    await shut(client);
  });

  test("close() rejects pending sends and requests; dispose closes", async () => {
    const { net, client } = setup();
    const { socket } = await connect(net);
    const sent = client.send("a");
    const asked = client.request("b");
    client[Symbol.dispose]();
    assert.equal(client.state, "closed");
    assertSessionError(await rejection(sent), "SESSION_ERR_CLOSED");
    assertSessionError(await rejection(asked), "SESSION_ERR_CLOSED");
    assertSessionError(await rejection(client.send("c")), "SESSION_ERR_CLOSED");
    assert.deepEqual(socket.closeCalls, [{ code: 1000, reason: "" }]);
    client.close(); // a second close does nothing
    assert.equal(socket.closeCalls.length, 1);
  });

  test("misuse throws TypeError/RangeError", () => {
    const net = new FakeNet();
    assert.throws(
      () => new SessionClient(URL_, { webSocket: net.factory, backoff: { base: 0 } }),
      {
        name: "RangeError",
        message: "Cannot connect: backoff.base must be an integer from 1 to 2147483647, got 0",
      },
    );
    assert.throws(
      () =>
        new SessionClient(URL_, {
          webSocket: net.factory,
          queue: { overflow: "newest" as "reject" },
        }),
      TypeError,
    );
    const client = new SessionClient(URL_, { webSocket: net.factory });
    assert.throws(() => client.send(42 as unknown as string), {
      name: "TypeError",
      message: "Cannot send: data must be a string or a Uint8Array",
    });
    assert.throws(() => client.request("x", { timeout: -1 }), RangeError);
    assert.throws(() => client.close(1008), {
      name: "RangeError",
      message: "Cannot close: the code must be 1000 or from 3000 to 4999, got 1008",
    });
    assert.throws(() => client.on("nope" as "open", () => {}), TypeError);
    client.close();
    assert.throws(() => client.subscribe("t"), {
      name: "TypeError",
      message: "Cannot subscribe: the session client is closed",
    });
  });
});

describe("SessionClient: resume", () => {
  test("re-sends unacknowledged messages with their seqs after a resume, in order", async () => {
    const { net, client, events } = setup();
    const { socket } = await connect(net);
    const sent = [client.send("a"), client.send("b"), client.request("c"), client.send("d")];
    socket.deliver({ t: "ack", seq: 1 });
    socket.deliver({ t: "msg", seq: 1, d: "hi" });
    await Promise.resolve();
    socket.finish(1001, "going away");
    assert.deepEqual(events("reconnecting"), [
      { attempt: 1, delay: 0, code: 1001, reason: "going away" },
    ]);
    const later = client.send("e"); // queued while reconnecting
    const { socket: second, hello } = await connect(net, {
      resumed: true,
      token: "T2",
      ack: 2,
    });
    assert.deepEqual(hello, { t: "hello", v: 1, token: "T1", ack: 1 });
    assert.deepEqual(second.take(), [
      { t: "req", seq: 3, d: "c" },
      { t: "msg", seq: 4, d: "d" },
      { t: "msg", seq: 5, d: "e" },
    ]);
    assert.equal(await sent[0], undefined);
    assert.equal(await sent[1], undefined);
    assert.deepEqual(events("open").at(-1), { session: "S1", resumed: true, lost: 0, resent: 2 });
    second.deliver({ t: "reply", seq: 2, re: 3, d: "C" });
    second.deliver({ t: "ack", seq: 5 });
    assert.equal(await sent[2], "C");
    assert.equal(await sent[3], undefined);
    assert.equal(await later, undefined);
    assert.deepEqual(events("reset"), []);
    // The next resume carries the new token.
    second.finish(1006);
    const third = await net.next();
    third.accept();
    assert.deepEqual(third.take(), [{ t: "hello", v: 1, token: "T2", ack: 2 }]);
    assert.equal(net.maxLive, 1);
    await shut(client);
  });

  test("a reply lost with the connection comes on resume; nothing is re-sent for it", async () => {
    const { net, client } = setup();
    const { socket } = await connect(net);
    const reply = client.request("q");
    socket.deliver({ t: "ack", seq: 1 });
    socket.finish(1006);
    const { socket: second } = await connect(net, { resumed: true, token: "T2", ack: 1 });
    assert.deepEqual(second.take(), []);
    second.deliver({ t: "reply", seq: 1, re: 1, d: "A" });
    assert.equal(await reply, "A");
    await shut(client);
  });

  test("a new session renumbers what was unacknowledged and reports a reset", async () => {
    const { net, client, events } = setup();
    const { socket } = await connect(net);
    client.send("a");
    const processed = client.request("b"); // acked, reply lost with the old session
    const aborted = new AbortController();
    const cancelled = client.send("x", { signal: aborted.signal });
    const pending = client.send("c");
    socket.deliver({ t: "ack", seq: 2 });
    socket.deliver({ t: "msg", seq: 1, d: "old" });
    aborted.abort(new Error("never mind"));
    assert.equal((await rejection(cancelled) as Error).message, "never mind");
    socket.finish(1012);
    const { socket: second, hello } = await connect(net, {
      session: "S2",
      token: "U1",
      reason: "restarted",
    });
    assert.deepEqual(hello, { t: "hello", v: 1, token: "T1", ack: 1 });
    // x was cancelled and the new session never saw it: only c, as seq 1.
    assert.deepEqual(second.take(), [{ t: "msg", seq: 1, d: "c" }]);
    assertSessionError(
      await rejection(processed),
      "SESSION_ERR_LOST",
      "The session was lost before the reply came",
    );
    assert.equal(client.sessionId, "S2");
    assert.deepEqual(events("open").at(-1), {
      session: "S2",
      resumed: false,
      reason: "restarted",
      lost: 0,
      resent: 1,
    });
    assert.deepEqual(events("reset"), [
      { scope: "session", reason: "restarted", resent: 1, rejected: 1 },
    ]);
    // The server's numbering restarted too: its seq 1 is new, not a duplicate.
    second.deliver({ t: "msg", seq: 1, d: "new" });
    second.deliver({ t: "ack", seq: 1 });
    assert.equal(await pending, undefined);
    assert.deepEqual(events("message"), [{ data: "old" }, { data: "new" }]);
    await shut(client);
  });

  test("a first connection that never got a welcome starts a session without a reset", async () => {
    const { net, client, events } = setup();
    const first = await net.next();
    first.finish(1006);
    await connect(net);
    assert.deepEqual(events("reset"), []);
    assert.deepEqual(events("open"), [{ session: "S1", resumed: false, lost: 0, resent: 0 }]);
    await shut(client);
  });

  test("replayed session messages already delivered are dropped; lost ones reported", async () => {
    const { net, client, events } = setup();
    const { socket } = await connect(net);
    socket.deliver({ t: "msg", seq: 1, d: "one" });
    socket.deliver({ t: "msg", seq: 2, d: "two" });
    await Promise.resolve();
    assert.deepEqual(socket.take(), [{ t: "ack", seq: 2 }]);
    socket.finish(1006);
    const { socket: second, hello } = await connect(net, { resumed: true, ack: 0, lost: 1 });
    assert.equal(hello.ack, 2);
    assert.deepEqual(events("open").at(-1), { session: "S1", resumed: true, lost: 1, resent: 0 });
    // Seq 3 was dropped by the server's replay buffer (lost: 1): 4 follows 2.
    second.deliver({ t: "msg", seq: 2, d: "two" });
    second.deliver({ t: "msg", seq: 4, d: "four" });
    second.deliver({ t: "msg", seq: 4, d: "four" });
    await Promise.resolve();
    assert.deepEqual(events("message"), [{ data: "one" }, { data: "two" }, { data: "four" }]);
    assert.deepEqual(second.take(), [{ t: "ack", seq: 4 }]);
    await shut(client);
  });

  test("acks of server messages are coalesced: one per turn", async () => {
    const { net, client } = setup();
    const { socket } = await connect(net);
    for (let seq = 1; seq <= 50; seq++) socket.deliver({ t: "msg", seq, d: `m${seq}` });
    assert.deepEqual(socket.take(), []);
    await Promise.resolve();
    assert.deepEqual(socket.take(), [{ t: "ack", seq: 50 }]);
    await shut(client);
  });
});

describe("SessionClient: topics", () => {
  test("subscriptions resume from their positions; duplicates are dropped", async () => {
    const { net, client, events } = setup();
    client.subscribe("news");
    const { socket, hello } = await connect(net);
    assert.equal(hello.topics, undefined);
    assert.deepEqual(socket.take(), [{ t: "sub", topic: "news" }]);
    socket.deliver({ t: "pub", topic: "news", epoch: "E", offset: 40, d: "early" }); // ignored
    socket.deliver({ t: "subscribed", topic: "news", epoch: "E", offset: 40, recovered: false });
    socket.deliver({ t: "pub", topic: "news", epoch: "E", offset: 41, d: "a" });
    socket.deliver({ t: "pub", topic: "news", epoch: "E", offset: 42, d: new Uint8Array([1]) });
    socket.deliver({ t: "pub", topic: "news", epoch: "E", offset: 42, d: "dup" });
    assert.deepEqual(client.positions, new Map([["news", { epoch: "E", offset: 42 }]]));
    socket.finish(1006);
    const { socket: second, hello: again } = await connect(net, { resumed: true });
    assert.deepEqual(again.topics, { news: { epoch: "E", offset: 42 } });
    assert.deepEqual(second.take(), [], "no sub: the hello carried it");
    second.deliver({ t: "subscribed", topic: "news", epoch: "E", offset: 42, recovered: true });
    second.deliver({ t: "pub", topic: "news", epoch: "E", offset: 42, d: "dup" });
    second.deliver({ t: "pub", topic: "news", epoch: "E", offset: 43, d: "c" });
    assert.deepEqual(events("publication"), [
      { topic: "news", data: "a", epoch: "E", offset: 41 },
      { topic: "news", data: new Uint8Array([1]), epoch: "E", offset: 42 },
      { topic: "news", data: "c", epoch: "E", offset: 43 },
    ]);
    assert.deepEqual(events("topic"), [
      { topic: "news", recovered: false, epoch: "E", offset: 40 },
      { topic: "news", recovered: true, epoch: "E", offset: 42 },
    ]);
    await shut(client);
  });

  test("a reset moves the position and is reported as topic and reset events", async () => {
    const { net, client, events } = setup();
    client.subscribe("news", { epoch: "E", offset: 7 });
    const { socket, hello } = await connect(net);
    assert.deepEqual(hello.topics, { news: { epoch: "E", offset: 7 } });
    socket.deliver({ t: "reset", topic: "news", epoch: "F", offset: 3, reason: "epoch" });
    socket.deliver({ t: "pub", topic: "news", epoch: "F", offset: 4, d: "x" });
    assert.deepEqual(events("topic"), [
      { topic: "news", recovered: false, reason: "epoch", epoch: "F", offset: 3 },
    ]);
    assert.deepEqual(events("reset"), [
      { scope: "topic", topic: "news", reason: "epoch", epoch: "F", offset: 3 },
    ]);
    assert.deepEqual(events("publication"), [
      { topic: "news", data: "x", epoch: "F", offset: 4 },
    ]);
    await shut(client);
  });

  test("a gap in a topic is filled with a sub from the position", async () => {
    const { net, client, events } = setup();
    const { socket } = await connect(net);
    client.subscribe("news");
    socket.take();
    socket.deliver({ t: "subscribed", topic: "news", epoch: "E", offset: 1, recovered: false });
    socket.deliver({ t: "pub", topic: "news", epoch: "E", offset: 3, d: "skipped 2" });
    assert.deepEqual(socket.take(), [
      { t: "sub", topic: "news", from: { epoch: "E", offset: 1 } },
    ]);
    socket.deliver({ t: "pub", topic: "news", epoch: "E", offset: 4, d: "ignored" });
    socket.deliver({ t: "subscribed", topic: "news", epoch: "E", offset: 1, recovered: true });
    socket.deliver({ t: "pub", topic: "news", epoch: "E", offset: 2, d: "two" });
    assert.deepEqual(events("publication").map((e) => (e as { offset: number }).offset), [2]);
    await shut(client);
  });

  test("unsubscribe stops publications, also when done offline", async () => {
    const { net, client, events } = setup();
    client.subscribe("a", { epoch: "E", offset: 0 });
    client.subscribe("b", { epoch: "E", offset: 0 });
    const { socket } = await connect(net);
    socket.deliver({ t: "subscribed", topic: "a", epoch: "E", offset: 0, recovered: true });
    client.unsubscribe("a");
    assert.deepEqual(socket.take(), [{ t: "unsub", topic: "a" }]);
    socket.deliver({ t: "pub", topic: "a", epoch: "E", offset: 1, d: "late" });
    socket.finish(1006);
    const second = await net.next();
    second.accept();
    client.unsubscribe("b"); // after the hello named it
    second.deliver(welcome({ resumed: true }));
    assert.deepEqual(second.take(), [
      { t: "hello", v: 1, token: "T1", ack: 0, topics: { b: { epoch: "E", offset: 0 } } },
      { t: "unsub", topic: "b" },
    ]);
    second.deliver({ t: "subscribed", topic: "b", epoch: "E", offset: 0, recovered: true });
    second.deliver({ t: "pub", topic: "b", epoch: "E", offset: 1, d: "late" });
    assert.deepEqual(events("publication"), []);
    assert.equal(client.positions.size, 0);
    await shut(client);
  });
});

describe("SessionClient: reconnecting", () => {
  test("backoff: full jitter, doubling to the cap; the count resets after minUptime", async () => {
    const { net, client, events } = setup({
      random: () => 0.5,
      backoff: { base: 4, cap: 10, minUptime: 30 },
    });
    for (let i = 0; i < 4; i++) (await net.next()).finish(1006);
    assert.deepEqual(
      events("reconnecting").map((
        e,
      ) => [(e as { attempt: number }).attempt, (e as { delay: number }).delay]),
      [[1, 2], [2, 4], [3, 5], [4, 5]],
    );
    // The fifth dial waits for its delay.
    assert.deepEqual(events("connecting").map((e) => (e as { attempt: number }).attempt), [
      0,
      1,
      2,
      3,
    ]);
    // Open for less than minUptime: the count goes on.
    const { socket } = await connect(net);
    socket.finish(1006);
    assert.deepEqual(events("reconnecting").at(-1), {
      attempt: 5,
      delay: 5,
      code: 1006,
      reason: "",
    });
    // Open for longer: it starts again.
    const { socket: stable } = await connect(net, { resumed: true });
    await sleep(40);
    stable.finish(1006);
    assert.deepEqual(events("reconnecting").at(-1), {
      attempt: 1,
      delay: 2,
      code: 1006,
      reason: "",
    });
    assert.equal(net.maxLive, 1);
    await shut(client);
  });

  test("a bye's retry range replaces the backoff for the next attempt", async () => {
    const { net, client, events } = setup({ random: () => 0.5, backoff: { base: 4 } });
    const { socket } = await connect(net);
    socket.deliver({ t: "bye", retry: [100, 200], reason: "deploy" });
    socket.finish(1012, "restart");
    assert.deepEqual(events("reconnecting"), [
      { attempt: 1, delay: 150, code: 1012, reason: "restart" },
    ]);
    await shut(client);
    assert.equal(net.sockets.length, 1);
  });

  for (const code of [1002, 1003, 1007, 1008, 1009, 1010, 4400, 4401, 4499]) {
    test(`no retry after a close with ${code}`, async () => {
      const { net, client, events } = setup();
      const { socket } = await connect(net);
      const pending = client.send("x");
      socket.finish(code, "go away");
      assert.equal(client.state, "closed");
      assert.deepEqual(events("closed"), [{ code, reason: "go away" }]);
      assert.deepEqual(events("reconnecting"), []);
      assertSessionError(
        await rejection(pending),
        "SESSION_ERR_CLOSED",
        `Cannot send: the session client closed (code ${code})`,
      );
      await turn();
      assert.equal(net.sockets.length, 1);
    });
  }

  for (const code of [1000, 1001, 1006, 1011, 1012, 4000, 4500]) {
    test(`a retry after a close with ${code}`, async () => {
      const { net, client, events } = setup();
      const { socket } = await connect(net);
      socket.finish(code);
      assert.equal(client.state, "reconnecting");
      assert.equal(events("reconnecting").length, 1);
      await net.next();
      await shut(client);
    });
  }
});

describe("SessionClient: offline queue", () => {
  test("overflow reject: the newest is rejected at maxMessages", async () => {
    const { net, client } = setup({ queue: { maxMessages: 2 } });
    const a = client.send("a");
    const b = client.request("b");
    assertSessionError(
      await rejection(client.send("c")),
      "SESSION_ERR_QUEUE_FULL",
      "Cannot send: the queue of unacknowledged messages is full",
    );
    const { socket } = await connect(net);
    assert.deepEqual(socket.take(), [{ t: "msg", seq: 1, d: "a" }, { t: "req", seq: 2, d: "b" }]);
    // Sent but not acknowledged still counts.
    assertSessionError(await rejection(client.send("d")), "SESSION_ERR_QUEUE_FULL");
    socket.deliver({ t: "ack", seq: 2 });
    await a;
    assert.equal(await settled(client.send("e")), false);
    assert.deepEqual(socket.take(), [{ t: "msg", seq: 3, d: "e" }]);
    assert.equal(await settled(b), false);
    await shut(client).catch(() => {});
    await rejection(b);
  });

  test("overflow drop-oldest: the oldest unsent is rejected to make room", async () => {
    const { net, client } = setup({ queue: { maxMessages: 2, overflow: "drop-oldest" } });
    const a = client.send("a");
    const b = client.send("b");
    const c = client.send("c");
    assertSessionError(
      await rejection(a),
      "SESSION_ERR_DROPPED",
      "The message was dropped from a full queue",
    );
    const { socket } = await connect(net);
    assert.deepEqual(socket.take(), [{ t: "msg", seq: 1, d: "b" }, { t: "msg", seq: 2, d: "c" }]);
    // Messages in flight are never dropped: the new one is rejected instead.
    assertSessionError(await rejection(client.send("d")), "SESSION_ERR_QUEUE_FULL");
    socket.deliver({ t: "ack", seq: 2 });
    await b;
    await c;
    await shut(client);
  });

  test("maxBytes bounds the queued data", async () => {
    const { net, client } = setup({ queue: { maxBytes: 10 } });
    const a = client.send("12345");
    const b = client.send(new Uint8Array(5));
    assertSessionError(await rejection(client.send("x")), "SESSION_ERR_QUEUE_FULL");
    assertSessionError(
      await rejection(client.send("x".repeat(11))),
      "SESSION_ERR_QUEUE_FULL",
      "Cannot send: the message is larger than queue.maxBytes (10)",
    );
    const { socket } = await connect(net);
    assert.equal(socket.take().length, 2);
    socket.deliver({ t: "ack", seq: 2 });
    await a;
    await b;
    assert.equal(await settled(client.send("0123456789")), false);
    await shut(client).catch(() => {});
  });

  test("maxAge rejects messages that waited too long to be sent", async () => {
    const { net, client } = setup({ queue: { maxAge: 20 } });
    const old = client.send("old");
    await sleep(10);
    const young = client.send("young");
    assertSessionError(
      await rejection(old),
      "SESSION_ERR_EXPIRED",
      "The message waited more than queue.maxAge (20 ms) to be sent",
    );
    assert.equal(await settled(young), false);
    const { socket } = await connect(net);
    assert.deepEqual(socket.take(), [{ t: "msg", seq: 1, d: "young" }]);
    socket.deliver({ t: "ack", seq: 1 });
    await young;
    await shut(client);
  });

  test("a queued message is cancelled by its signal and never sent", async () => {
    const { net, client } = setup();
    const controller = new AbortController();
    const cancelled = client.send("a", { signal: controller.signal });
    const kept = client.send("b");
    controller.abort(new Error("cancelled"));
    assert.equal((await rejection(cancelled) as Error).message, "cancelled");
    const early = new AbortController();
    early.abort(new Error("already"));
    assert.equal(
      (await rejection(client.request("c", { signal: early.signal })) as Error).message,
      "already",
    );
    const { socket } = await connect(net);
    assert.deepEqual(socket.take(), [{ t: "msg", seq: 1, d: "b" }]);
    socket.deliver({ t: "ack", seq: 1 });
    await kept;
    await shut(client);
  });

  test("a message aborted after it was sent keeps its seq on resume", async () => {
    const { net, client } = setup();
    const { socket } = await connect(net);
    const controller = new AbortController();
    const cancelled = client.send("a", { signal: controller.signal });
    const after = client.send("b");
    controller.abort(new Error("stop"));
    await rejection(cancelled);
    socket.finish(1006);
    const { socket: second } = await connect(net, { resumed: true });
    assert.deepEqual(second.take(), [{ t: "msg", seq: 1, d: "a" }, { t: "msg", seq: 2, d: "b" }]);
    second.deliver({ t: "ack", seq: 2 });
    await after;
    await shut(client);
  });
});

describe("SessionClient: protocol violations", () => {
  async function violated(
    setupFrames: (socket: FakeSocket) => void,
    message: string,
    { strict = true, beforeWelcome = false } = {},
  ) {
    const { net, client, events } = setup();
    net.strictClose = strict;
    let socket: FakeSocket;
    if (beforeWelcome) {
      socket = await net.next();
      socket.accept();
    } else socket = (await connect(net)).socket;
    const pending = client.send("x");
    setupFrames(socket);
    const reason = `sluice.v1: ${message}`;
    const [{ error }] = events("error") as { error: SessionProtocolError }[];
    assert.ok(error instanceof SessionProtocolError);
    assert.equal(error.message, message);
    assert.equal(error.closeReason, reason);
    assert.equal(client.state, "closed");
    assert.deepEqual(
      socket.closeCalls,
      strict ? [{ code: 1000, reason }] : [{ code: 1008, reason }],
    );
    const cause = (await rejection(pending)) as SessionError;
    assertSessionError(
      cause,
      "SESSION_ERR_CLOSED",
      "Cannot send: the session client closed (code 1008)",
    );
    assert.equal(cause.cause, error);
    await turn();
    assert.deepEqual(events("closed"), [{ code: 1008, reason }]);
    assert.deepEqual(events("reconnecting"), []);
    assert.equal(net.sockets.length, 1);
  }

  test("a frame that is not JSON: 1008 (1000 where the API forbids 1008)", async () => {
    await violated((socket) => socket.raw("{"), "frame is not JSON");
    await violated((socket) => socket.raw("{"), "frame is not JSON", { strict: false });
  });

  test("a frame before welcome", async () => {
    await violated(
      (socket) => socket.deliver({ t: "ack", seq: 0 }),
      "ack frame before welcome",
      { beforeWelcome: true },
    );
  });

  test("a gap in the server's seq", async () => {
    await violated(
      (socket) => socket.deliver({ t: "msg", seq: 2, d: "x" }),
      "msg frame: seq 2 skips 1",
    );
  });

  test("an ack above anything sent", async () => {
    await violated(
      (socket) => socket.deliver({ t: "ack", seq: 9 }),
      "ack frame: seq 9 is above the last sent",
    );
  });

  test("a second welcome", async () => {
    await violated((socket) => socket.deliver(welcome()), "a second welcome frame");
  });

  test("a binary message that is not an ArrayBuffer", async () => {
    await violated(
      (socket) => socket.raw(new Blob(["x"])),
      "a binary message that is not an ArrayBuffer",
    );
  });

  test("a resume refused without a reason", async () => {
    const { net, client, events } = setup();
    const { socket } = await connect(net);
    socket.finish(1006);
    const second = await net.next();
    second.accept();
    second.deliver(welcome({ session: "S2" }));
    const [{ error }] = events("error") as { error: Error }[];
    assert.equal(error.message, "welcome frame: a refused resume needs a reason");
    assert.equal(client.state, "closed");
  });
});

describe("SessionClient: listeners", () => {
  test("a throwing listener is reported as an error event; on() returns a remover", async () => {
    const { net, client, events } = setup();
    const boom = new Error("listener bug");
    const off = client.on("message", () => {
      throw boom;
    });
    const { socket } = await connect(net);
    socket.deliver({ t: "msg", seq: 1, d: "a" });
    off();
    socket.deliver({ t: "msg", seq: 2, d: "b" });
    assert.deepEqual(events("error"), [{ error: boom }]);
    assert.deepEqual(events("message"), [{ data: "a" }, { data: "b" }]);
    assert.equal(client.state, "open");
    await shut(client);
  });
});
