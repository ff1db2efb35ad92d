/**
 * The peers of tests/_peers.ts, checked with the running runtime's own WebSocket client
 * (`globalThis.WebSocket`) and, where that client cannot see the wire (a refusal's body, the
 * extensions a peer answers with), with the raw client of tests/_client.ts: echo of text and
 * binary, the subprotocol choice, the closing handshake from either side, a greeting, a
 * refused upgrade, permessage-deflate, and wss://.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { openWebSocket, RawClient, upgradeRequest } from "./_client.ts";
import { pattern, Queue } from "./_harness.ts";
import { PEER_KINDS, PEERS, startPeer } from "./_peers.ts";
import { generateSignedCertificate, type SignedCertificate } from "./_tls.ts";

let certificate: SignedCertificate | undefined;
/** One CA-signed certificate for the file, made on first use. */
const signed = () => certificate ??= generateSignedCertificate();

/** The running runtime's WebSocket constructor, with its non-standard options. */
const NativeWebSocket = globalThis.WebSocket as unknown as new (
  url: string,
  options?: { protocols?: string[]; client?: unknown; tls?: { ca: string } },
) => WebSocket;

interface DenoHttp {
  createHttpClient(options: { caCerts: string[] }): { close(): void };
}
const deno = (globalThis as { Deno?: DenoHttp }).Deno;
const isBun = "Bun" in globalThis;

/** A built-in client, with what it received queued. */
interface Native {
  ws: WebSocket;
  messages: Queue<string | Uint8Array>;
  /** Resolves with the close event. */
  closed: Promise<CloseEvent>;
  /** Whether an error event fired. */
  errored: () => boolean;
}

/**
 * Opens the runtime's own WebSocket and waits for `open` (or, with `expectFailure`, for
 * `close`). `ca` trusts a certificate: Deno through an HttpClient, Bun through `tls.ca`.
 */
async function openNative(
  url: string,
  options: { protocols?: string[]; ca?: string; expectFailure?: boolean } = {},
): Promise<Native> {
  let client: { close(): void } | undefined;
  const init: { protocols?: string[]; client?: unknown; tls?: { ca: string } } = {
    protocols: options.protocols,
  };
  if (options.ca !== undefined) {
    if (deno !== undefined && !isBun) {
      init.client = client = deno.createHttpClient({ caCerts: [options.ca] });
    } else init.tls = { ca: options.ca };
  }
  const ws = new NativeWebSocket(url, init);
  ws.binaryType = "arraybuffer";
  const messages = new Queue<string | Uint8Array>();
  let errored = false;
  ws.onmessage = (event) => {
    const data = event.data as string | ArrayBuffer;
    messages.push(typeof data === "string" ? data : new Uint8Array(data));
  };
  ws.onerror = () => errored = true;
  const closed = new Promise<CloseEvent>((resolve) => ws.onclose = resolve).finally(() =>
    client?.close()
  );
  const opened = new Promise<void>((resolve) => ws.onopen = () => resolve());
  await Promise.race([
    opened,
    closed.then((event) => {
      if (!options.expectFailure) {
        throw new Error(`closed (${event.code}) before it opened`);
      }
    }),
  ]);
  return { ws, messages, closed, errored: () => errored };
}

/** Compares bytes without printing megabytes when they differ. */
function assertSameBytes(actual: string | Uint8Array, expected: Uint8Array): void {
  assert.ok(actual instanceof Uint8Array, "a binary message");
  assert.equal(actual.length, expected.length, "length");
  for (let i = 0; i < expected.length; i++) {
    if (actual[i] !== expected[i]) assert.fail(`byte ${i} differs`);
  }
}

for (const kind of PEER_KINDS) {
  describe(kind, () => {
    test("echoes text and binary, small and 1 MiB, and reports the connection", async () => {
      const peer = await startPeer(kind);
      try {
        const { ws, messages, closed } = await openNative(`${peer.url}echo?x=1`);
        const open = await peer.event("open");
        assert.equal(open.path, "/echo?x=1");
        assert.equal(open.protocol, "");
        assert.equal(open.headers["sec-websocket-version"], "13");
        ws.send("hello, 世界");
        assert.equal(await messages.next("text echo"), "hello, 世界");
        const small = pattern(32);
        ws.send(small);
        assertSameBytes(await messages.next("binary echo"), small);
        const big = pattern(1 << 20, 7);
        ws.send(big);
        assertSameBytes(await messages.next("1 MiB echo", 10_000), big);
        ws.close(1000, "done");
        const event = await closed;
        assert.equal(event.code, 1000);
        assert.equal(event.reason, "done");
        assert.deepEqual(await peer.event("close"), { type: "close", code: 1000, reason: "done" });
      } finally {
        await peer.stop();
      }
    });

    test("answers with the first offered subprotocol it accepts, and none when none", async () => {
      const peer = await startPeer(kind, { protocols: ["b", "a"] });
      try {
        const chosen = await openNative(peer.url, { protocols: ["x", "a", "b"] });
        assert.equal(chosen.ws.protocol, "a");
        assert.equal((await peer.event("open")).protocol, "a");
        chosen.ws.close();
        await chosen.closed;
        // A WHATWG client fails when none of its protocols is chosen (Bun's does): check the
        // answer on the wire.
        const declined = await openWebSocket(peer.port, { protocols: "mqtt, x" });
        declined.client.destroy();
        await declined.client.closed;
        assert.equal(declined.response.headers.get("sec-websocket-protocol"), undefined);
        assert.equal((await peer.event("open")).protocol, "");
        const none = await openNative(peer.url);
        assert.equal(none.ws.protocol, "");
        assert.equal((await peer.event("open")).protocol, "");
        none.ws.close();
        await none.closed;
      } finally {
        await peer.stop();
      }
    });

    test("closes when told to, with the code and reason asked; a greeting comes first", async () => {
      const peer = await startPeer(kind, { greet: "welcome" });
      try {
        const { ws, messages, closed } = await openNative(peer.url);
        assert.equal(await messages.next("greeting"), "welcome");
        ws.send("!close 4002 see you");
        const event = await closed;
        assert.equal(event.code, 4002);
        assert.equal(event.reason, "see you");
        assert.equal(event.wasClean, true);
        assert.deepEqual(await peer.event("close"), {
          type: "close",
          code: 4002,
          reason: "see you",
        });
        const bare = await openNative(peer.url);
        bare.ws.send("!close");
        assert.equal((await bare.closed).code, 1005);
        assert.deepEqual(await peer.event("close"), { type: "close", code: 1005, reason: "" });
      } finally {
        await peer.stop();
      }
    });

    test("refuses the upgrade with the status, headers and body asked", async () => {
      const refuse = { status: 401, body: "no token", headers: { "WWW-Authenticate": "Bearer" } };
      const peer = await startPeer(kind, { refuse });
      try {
        const native = await openNative(peer.url, { expectFailure: true });
        const event = await native.closed;
        // WHATWG: a failed connection closes with 1006. Deno's WebSocket reports 0 instead.
        assert.equal(event.code, isBun ? 1006 : 0);
        assert.equal(event.wasClean, false);
        assert.equal(native.errored(), true);
        assert.equal((await peer.event("refused")).status, 401);
        // The built-in clients hide the response: read it raw.
        const client = await RawClient.connect(peer.port);
        try {
          await client.write(upgradeRequest({ path: "/secret" }));
          const response = await client.response();
          assert.equal(response.status, 401);
          assert.equal(response.headers.get("www-authenticate"), "Bearer");
          assert.equal(new TextDecoder().decode(response.body), "no token");
          assert.deepEqual(await peer.event("refused"), {
            type: "refused",
            path: "/secret",
            status: 401,
          });
        } finally {
          client.destroy();
          await client.closed;
        }
      } finally {
        await peer.stop();
      }
    });

    if (PEERS[kind].deflate) {
      test("negotiates permessage-deflate when asked, and not otherwise", async () => {
        const peer = await startPeer(kind, { deflate: true });
        try {
          const { client, response } = await openWebSocket(peer.port, {
            extra: ["Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits"],
          });
          client.destroy();
          await client.closed;
          assert.match(
            response.headers.get("sec-websocket-extensions") ?? "",
            /permessage-deflate/,
          );
          if (isBun) {
            // Bun's own client offers permessage-deflate.
            const { ws, messages, closed } = await openNative(peer.url);
            assert.match(ws.extensions, /permessage-deflate/);
            const text = "compress me ".repeat(100);
            ws.send(text);
            assert.equal(await messages.next("compressed echo"), text);
            ws.close();
            await closed;
          }
        } finally {
          await peer.stop();
        }
        const plain = await startPeer(kind);
        try {
          const { client, response } = await openWebSocket(plain.port, {
            extra: ["Sec-WebSocket-Extensions: permessage-deflate"],
          });
          client.destroy();
          await client.closed;
          assert.equal(response.headers.get("sec-websocket-extensions"), undefined);
        } finally {
          await plain.stop();
        }
      });
    } else {
      test("cannot be asked for permessage-deflate", async () => {
        await assert.rejects(startPeer(kind, { deflate: true }), {
          name: "RangeError",
          message: `Cannot start ${kind} with deflate: it has no permessage-deflate`,
        });
      });
    }

    test("serves wss:// with the certificate given (signed by a CA the client trusts)", async () => {
      const { ca, cert, key } = signed();
      const peer = await startPeer(kind, { tls: { cert, key } });
      try {
        assert.match(peer.url, /^wss:\/\/127\.0\.0\.1:\d+\/$/);
        const { ws, messages, closed } = await openNative(peer.url, { ca });
        ws.send("secret");
        assert.equal(await messages.next("echo over TLS"), "secret");
        const bytes = pattern(100_000, 3);
        ws.send(bytes);
        assertSameBytes(await messages.next("binary echo over TLS"), bytes);
        ws.close(4000, "bye");
        assert.equal((await closed).code, 4000);
        assert.deepEqual(await peer.event("close"), { type: "close", code: 4000, reason: "bye" });
      } finally {
        await peer.stop();
      }
    });
  });
}
