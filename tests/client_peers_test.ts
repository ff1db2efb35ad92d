/**
 * sluice's client (`connect`) end to end against WebSocket servers of other implementations
 * (tests/_peers.ts: Bun.serve, Deno.serve with Deno.upgradeWebSocket, npm `ws` on Node.js):
 * echo of text and binary from a few bytes to 1 MiB, the request it sends (path, query,
 * headers), subprotocol negotiation, permessage-deflate with the peers that have it (and its
 * absence with the one that has not), a refused upgrade, the closing handshake started by
 * either side with the codes and reasons both ends saw, a message sent with the 101, and
 * wss:// with a CA given.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { type ClientWebSocket, connect, HandshakeError, WebSocketError } from "../mod.ts";
import { pattern, Queue } from "./_harness.ts";
import { type Peer, PEER_KINDS, type PeerOptions, PEERS, startPeer } from "./_peers.ts";
import { generateSignedCertificate, type SignedCertificate } from "./_tls.ts";

let certificate: SignedCertificate | undefined;
/** One CA-signed certificate for the file, made on first use. */
const signed = () => certificate ??= generateSignedCertificate();

/** A message as the `message` handler got it. */
interface Received {
  data: string | Uint8Array;
  isBinary: boolean;
}

/** A client with what its handlers were called with. */
interface Opened {
  ws: ClientWebSocket;
  messages: Queue<Received>;
  closes: Queue<{ code: number; reason: string }>;
  errors: Queue<unknown>;
  /** The handlers' calls in order: "open", "message", "close", "error". */
  calls: string[];
}

type ConnectOptions = NonNullable<Parameters<typeof connect>[1]>;

/** Connects with handlers that record what they are called with. */
async function open(url: string, options: ConnectOptions = {}): Promise<Opened> {
  const messages = new Queue<Received>();
  const closes = new Queue<{ code: number; reason: string }>();
  const errors = new Queue<unknown>();
  const calls: string[] = [];
  const ws = await connect(url, {
    ...options,
    open() {
      calls.push("open");
    },
    message(_ws, data, isBinary) {
      calls.push("message");
      messages.push({ data, isBinary });
    },
    close(_ws, code, reason) {
      calls.push("close");
      closes.push({ code, reason });
    },
    error(error) {
      calls.push("error");
      errors.push(error);
    },
  });
  return { ws, messages, closes, errors, calls };
}

/** Runs `body` with a fresh peer; drops every client it opened, then stops the peer. */
async function withPeer(
  kind: (typeof PEER_KINDS)[number],
  options: PeerOptions,
  body: (peer: Peer, track: (opened: Opened) => Opened) => Promise<void>,
): Promise<void> {
  const peer = await startPeer(kind, options);
  const clients: Opened[] = [];
  try {
    await body(peer, (opened) => {
      clients.push(opened);
      return opened;
    });
  } finally {
    for (const { ws } of clients) if (ws.readyState !== 3) ws.terminate();
    await Promise.all(clients.map(({ ws }) => ws.closed));
    await peer.stop();
  }
}

/** Compares bytes without printing megabytes when they differ. */
function assertSameBytes(actual: string | Uint8Array, expected: Uint8Array): void {
  assert.ok(actual instanceof Uint8Array, "a binary message");
  assert.equal(actual.length, expected.length, "length");
  for (let i = 0; i < expected.length; i++) {
    if (actual[i] !== expected[i]) assert.fail(`byte ${i} differs`);
  }
}

/** Text of `size` characters, compressible (a repeated sentence), ASCII and beyond. */
function longText(size: number): string {
  return "Grüße, ünïcödé and ascii — ".repeat(Math.ceil(size / 27)).slice(0, size);
}

/** Echoes text and binary of each size, one after the other, and checks what comes back. */
async function echoes(client: Opened, sizes: number[]): Promise<void> {
  for (const size of sizes) {
    const text = longText(size);
    client.ws.send(text);
    const gotText = await client.messages.next(`a ${size}-character text echo`, 10_000);
    assert.equal(gotText.isBinary, false);
    assert.equal(gotText.data, text);
    const bytes = pattern(size, size + 1);
    client.ws.send(bytes);
    const gotBytes = await client.messages.next(`a ${size}-byte binary echo`, 10_000);
    assert.equal(gotBytes.isBinary, true);
    assertSameBytes(gotBytes.data, bytes);
  }
}

const SIZES = [0, 5, 125, 126, 65535, 65536, 1 << 20];

for (const kind of PEER_KINDS) {
  describe(`connect() against ${kind}`, () => {
    test("echoes text and binary from 0 bytes to 1 MiB; sends the path, query and headers", async () => {
      await withPeer(kind, {}, async (peer, track) => {
        const client = track(
          await open(`${peer.url}room/7?user=ann`, { headers: { Authorization: "Bearer t0k" } }),
        );
        assert.equal(client.ws.readyState, 1);
        assert.equal(client.ws.protocol, "");
        assert.equal(client.ws.extensions, "");
        assert.equal(client.ws.url, `${peer.url}room/7?user=ann`);
        const seen = await peer.event("open");
        assert.equal(seen.path, "/room/7?user=ann");
        assert.equal(seen.headers["authorization"], "Bearer t0k");
        assert.equal(seen.headers["sec-websocket-version"], "13");
        await echoes(client, SIZES);
        client.ws.close(1000, "done");
        assert.deepEqual(await client.ws.closed, { code: 1000, reason: "done" });
        assert.deepEqual(await peer.event("close"), { type: "close", code: 1000, reason: "done" });
        assert.deepEqual(client.calls.slice(0, 1), ["open"]);
        assert.equal(client.calls.at(-1), "close");
        assert.equal(client.errors.items.length, 0);
      });
    });

    test("negotiates a subprotocol, and goes on without one when none is accepted", async () => {
      await withPeer(kind, { protocols: ["chat.v2", "chat.v1"] }, async (peer, track) => {
        const chosen = track(await open(peer.url, { protocols: ["x", "chat.v1", "chat.v2"] }));
        assert.equal(chosen.ws.protocol, "chat.v1");
        assert.equal((await peer.event("open")).protocol, "chat.v1");
        await echoes(chosen, [5]);
        const none = track(await open(peer.url, { protocols: ["mqtt"] }));
        assert.equal(none.ws.protocol, "");
        assert.equal((await peer.event("open")).protocol, "");
        await echoes(none, [5]);
      });
    });

    if (PEERS[kind].deflate) {
      test("speaks permessage-deflate: compressible and random messages up to 1 MiB", async () => {
        await withPeer(kind, { deflate: true }, async (peer, track) => {
          const client = track(await open(peer.url, { perMessageDeflate: true }));
          assert.match(client.ws.extensions, /^permessage-deflate/);
          const seen = await peer.event("open");
          assert.match(seen.headers["sec-websocket-extensions"], /permessage-deflate/);
          await echoes(client, SIZES);
          // Many small messages in a row: context takeover across messages, both ways.
          for (let i = 0; i < 50; i++) client.ws.send(`message ${i} ${"abc".repeat(i)}`);
          for (let i = 0; i < 50; i++) {
            const got = await client.messages.next(`compressed echo ${i}`);
            assert.equal(got.data, `message ${i} ${"abc".repeat(i)}`);
          }
          client.ws.close(1000);
          assert.deepEqual(await client.ws.closed, { code: 1000, reason: "" });
        });
      });
    } else {
      test("offers permessage-deflate, and goes on uncompressed when it is declined", async () => {
        await withPeer(kind, {}, async (peer, track) => {
          const client = track(await open(peer.url, { perMessageDeflate: true }));
          assert.equal(client.ws.extensions, "");
          const seen = await peer.event("open");
          assert.match(seen.headers["sec-websocket-extensions"], /permessage-deflate/);
          await echoes(client, [5, 65536]);
        });
      });
    }

    test("rejects a refused upgrade with a HandshakeError: status, headers, body", async () => {
      const refuse = {
        status: 401,
        body: "no token, no entry",
        headers: { "WWW-Authenticate": 'Bearer realm="peers"', "X-Reason": "test" },
      };
      await withPeer(kind, { refuse }, async (peer) => {
        const error = await connect(`${peer.url}private`).then(
          () => assert.fail("connect() resolved"),
          (error: unknown) => error,
        );
        assert.ok(error instanceof HandshakeError, `a HandshakeError, not ${error}`);
        assert.equal(error.code, "WS_ERR_HANDSHAKE_REFUSED");
        assert.equal(error.closeCode, 1006);
        assert.equal(error.status, 401);
        assert.equal(error.message, "Handshake refused: the server answered 401 Unauthorized");
        const headers = new Headers(error.headers);
        assert.equal(headers.get("www-authenticate"), 'Bearer realm="peers"');
        assert.equal(headers.get("x-reason"), "test");
        assert.equal(new TextDecoder().decode(error.body), "no token, no entry");
        assert.deepEqual(await peer.event("refused"), {
          type: "refused",
          path: "/private",
          status: 401,
        });
      });
    });

    test("closes from the client's side: both ends see its code and reason", async () => {
      await withPeer(kind, {}, async (peer, track) => {
        const client = track(await open(peer.url));
        client.ws.close(4001, "client says bye");
        assert.equal(client.ws.readyState, 2);
        assert.deepEqual(await client.ws.closed, { code: 4001, reason: "client says bye" });
        assert.deepEqual(await client.closes.next("close handler"), {
          code: 4001,
          reason: "client says bye",
        });
        assert.equal(client.ws.readyState, 3);
        assert.deepEqual(await peer.event("close"), {
          type: "close",
          code: 4001,
          reason: "client says bye",
        });
        const bare = track(await open(peer.url));
        bare.ws.close();
        assert.deepEqual(await bare.ws.closed, { code: 1005, reason: "" });
        assert.deepEqual(await peer.event("close"), { type: "close", code: 1005, reason: "" });
      });
    });

    test("closes from the server's side: both ends see its code and reason", async () => {
      await withPeer(kind, {}, async (peer, track) => {
        const client = track(await open(peer.url));
        client.ws.send("!close 4002 server says bye");
        assert.deepEqual(await client.closes.next("close handler"), {
          code: 4002,
          reason: "server says bye",
        });
        assert.deepEqual(await client.ws.closed, { code: 4002, reason: "server says bye" });
        assert.equal(client.ws.readyState, 3);
        // The client's answer echoes the code (RFC 6455 §5.5.1) and no reason; what a peer
        // reports as the reason then depends on it (the one it sent, or the empty one it got).
        assert.equal((await peer.event("close")).code, 4002);
        const bare = track(await open(peer.url));
        bare.ws.send("!close");
        assert.deepEqual(await bare.ws.closed, { code: 1005, reason: "" });
        assert.deepEqual(await peer.event("close"), { type: "close", code: 1005, reason: "" });
        assert.equal(client.errors.items.length + bare.errors.items.length, 0);
      });
    });

    test("pings, and gets the peer's pong with the same payload", async () => {
      await withPeer(kind, {}, async (peer, track) => {
        const pongs = new Queue<Uint8Array>();
        const client = track(await open(peer.url, { pong: (_ws, data) => pongs.push(data) }));
        client.ws.ping("are you there?");
        assert.equal(new TextDecoder().decode(await pongs.next("a pong")), "are you there?");
        client.ws.ping();
        assert.equal((await pongs.next("an empty pong")).length, 0);
        await echoes(client, [5]);
      });
    });

    test("fails with 1009 when the peer sends a message over maxPayloadLength", async () => {
      await withPeer(kind, {}, async (peer, track) => {
        const client = track(await open(peer.url, { maxPayloadLength: 1000 }));
        client.ws.send(new Uint8Array(1000));
        assert.equal((await client.messages.next("an echo at the limit")).data.length, 1000);
        client.ws.send(new Uint8Array(1001));
        const error = await client.errors.next("the error");
        assert.ok(error instanceof WebSocketError, `a WebSocketError, not ${error}`);
        assert.equal(error.code, "WS_ERR_MESSAGE_TOO_BIG");
        assert.equal(error.closeCode, 1009);
        assert.equal(error.message, "Message too big: more than 1000 bytes");
        assert.equal((await client.ws.closed).code, 1009);
        assert.equal((await peer.event("close")).code, 1009);
        assert.equal(client.messages.items.length, 1);
      });
    });

    test("delivers a message the server sends at once, after open", async () => {
      await withPeer(kind, { greet: "welcome" }, async (peer, track) => {
        const client = track(await open(peer.url));
        assert.deepEqual(await client.messages.next("the greeting"), {
          data: "welcome",
          isBinary: false,
        });
        assert.deepEqual(client.calls.slice(0, 2), ["open", "message"]);
        await echoes(client, [5]);
      });
    });

    test("speaks wss:// to a server whose certificate a CA given in `ca` signed", async () => {
      const { ca, cert, key } = signed();
      await withPeer(kind, { tls: { cert, key } }, async (peer, track) => {
        const client = track(await open(peer.url, { ca }));
        await echoes(client, [5, 65536, 1 << 20]);
        client.ws.close(4000, "tls bye");
        assert.deepEqual(await client.ws.closed, { code: 4000, reason: "tls bye" });
        assert.deepEqual(await peer.event("close"), {
          type: "close",
          code: 4000,
          reason: "tls bye",
        });
      });
    });
  });
}
