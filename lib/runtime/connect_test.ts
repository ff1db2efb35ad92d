/**
 * The connect of the runtime running the test (Deno's or Bun's) against a listener of the same
 * adapter on loopback: bytes and FIN both ways, IPv4, IPv6 and `localhost`, TLS verified
 * against a CA made for the run (tests/_tls.ts), a server name other than the address, the
 * errors of a refused port, an unknown host and a refused certificate, and aborts.
 */
import { before, describe, it } from "node:test";
import assert from "node:assert/strict";
import type { ConnectOptions, Listener, Transport, TransportHandler } from "../core/transport.ts";
import { runtimeConnect, runtimeListen } from "./runtime.ts";
import { generateSignedCertificate, type SignedCertificate } from "../../tests/_tls.ts";

const connect = runtimeConnect();
const listen = runtimeListen();
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** One side of a connection: what its transport reported. */
class Peer implements TransportHandler {
  transport: Transport | undefined;
  received = "";
  /** Every event, in order: "data", "end", "close". */
  events: string[] = [];
  closeError: unknown;
  readonly ended: Promise<void>;
  readonly closed: Promise<void>;
  /** The peer's side is gone: it ended (FIN) or the connection closed (RST). */
  readonly gone: Promise<void>;
  #ended!: () => void;
  #closed!: () => void;
  #waiting: { text: string; resolve: () => void } | undefined;
  #onData: (() => void) | undefined;

  /** @param onData Called after each chunk. */
  constructor(onData?: () => void) {
    this.ended = new Promise((resolve) => this.#ended = resolve);
    this.closed = new Promise((resolve) => this.#closed = resolve);
    this.gone = Promise.race([this.ended, this.closed]);
    this.#onData = onData;
  }

  /** Resolves once everything received so far ends with `text`. */
  receive(text: string): Promise<void> {
    if (this.received.endsWith(text)) return Promise.resolve();
    return new Promise((resolve) => this.#waiting = { text, resolve });
  }

  onData(chunk: Uint8Array): void {
    this.events.push("data");
    this.received += decoder.decode(chunk);
    if (this.#waiting !== undefined && this.received.endsWith(this.#waiting.text)) {
      this.#waiting.resolve();
      this.#waiting = undefined;
    }
    this.#onData?.();
  }
  onDrain(): void {}
  onBelow(): void {}
  onEnd(): void {
    this.events.push("end");
    this.#ended();
  }
  onClose(error?: unknown): void {
    this.events.push("close");
    this.closeError = error;
    this.#closed();
  }
}

/** A listener of this runtime's adapter whose accepted connections are kept, in order. */
class Server {
  readonly listener: Listener;
  readonly peers: Peer[] = [];
  #waiting: (() => void) | undefined;

  constructor(hostname: string, tls?: { cert: string; key: string }) {
    this.listener = listen({ hostname, port: 0, ...tls }, (transport) => {
      const peer = new Peer(() => this.#changed());
      peer.transport = transport;
      this.peers.push(peer);
      this.#changed();
      return peer;
    });
  }

  get port(): number {
    return this.listener.port;
  }

  /** The `n`-th connection accepted (0-based), once it is. */
  accepted(n: number): Promise<Peer> {
    return this.#until(() => this.peers[n]);
  }

  /** The first connection accepted that received `text`, once there is one. */
  receivedBy(text: string): Promise<Peer> {
    return this.#until(() => this.peers.find((peer) => peer.received === text));
  }

  async #until(find: () => Peer | undefined): Promise<Peer> {
    for (;;) {
      const peer = find();
      if (peer !== undefined) return peer;
      await new Promise<void>((resolve) => this.#waiting = resolve);
    }
  }

  #changed(): void {
    const waiting = this.#waiting;
    this.#waiting = undefined;
    waiting?.();
  }

  /** Stops listening and drops every accepted connection. */
  async close(): Promise<void> {
    this.listener.close();
    for (const peer of this.peers) peer.transport!.destroy();
    await Promise.all(this.peers.map((peer) => peer.closed));
  }
}

/** Runs `body` with a server on `hostname`, then closes it and every connection it accepted. */
async function withServer(
  hostname: string,
  body: (server: Server) => Promise<void>,
  tls?: { cert: string; key: string },
): Promise<void> {
  const server = new Server(hostname, tls);
  try {
    await body(server);
  } finally {
    await server.close();
  }
}

/** Sends "ping" from the client and "pong" back from the server, then checks both arrived. */
async function exchange(client: Peer, server: Peer): Promise<void> {
  client.transport!.write(encoder.encode("ping"), false);
  await server.receive("ping");
  server.transport!.write(encoder.encode("pong"), false);
  await client.receive("pong");
  assert.equal(server.received, "ping");
  assert.equal(client.received, "pong");
}

/** Connects a new client peer. */
async function connectPeer(options: ConnectOptions): Promise<Peer> {
  const peer = new Peer();
  peer.transport = await connect(options, peer);
  return peer;
}

/** Asserts that `promise` rejects with exactly `reason`. */
async function rejectsWith(promise: Promise<unknown>, reason: unknown): Promise<void> {
  await assert.rejects(promise, (error) => {
    assert.equal(error, reason);
    return true;
  });
}

/** Asserts that `promise` rejects with an `Error` whose message starts with `message`. */
async function rejectsWithMessage(
  promise: Promise<unknown>,
  message: string,
): Promise<Error> {
  let caught: unknown;
  await assert.rejects(promise, (error) => {
    caught = error;
    return true;
  });
  assert.ok(caught instanceof Error, "an Error");
  assert.equal(caught.constructor, Error);
  assert.ok(
    caught.message.startsWith(message),
    `message ${JSON.stringify(caught.message)} starts with ${JSON.stringify(message)}`,
  );
  assert.ok(caught.cause instanceof Error, "the runtime's error as cause");
  return caught;
}

describe("connect on this runtime's adapter", () => {
  it("exchanges bytes both ways, then the client ends first and both close", async () => {
    await withServer("127.0.0.1", async (server) => {
      const client = await connectPeer({ hostname: "127.0.0.1", port: server.port });
      const accepted = await server.accepted(0);
      assert.equal(client.transport!.remoteAddress, "127.0.0.1");
      assert.equal(client.transport!.remotePort, server.port);
      await exchange(client, accepted);
      // Larger than a socket buffer, so the write queue and drain are in play.
      const large = "x".repeat(8 * 1024 * 1024);
      client.transport!.write(encoder.encode(large), false);
      await accepted.receive("ping" + large);
      client.transport!.end();
      await accepted.ended;
      accepted.transport!.end();
      await Promise.all([client.closed, accepted.closed]);
      assert.deepEqual(client.events, ["data", "close"]);
      assert.equal(client.closeError, undefined);
      assert.equal(accepted.events.at(-2), "end");
      assert.equal(accepted.events.at(-1), "close");
      assert.equal(accepted.closeError, undefined);
    });
  });

  it("the server ends first: the client sees the end, then ends, and both close", async () => {
    await withServer("127.0.0.1", async (server) => {
      const client = await connectPeer({ hostname: "127.0.0.1", port: server.port });
      const accepted = await server.accepted(0);
      accepted.transport!.write(encoder.encode("bye"), false);
      accepted.transport!.end();
      await client.ended;
      assert.equal(client.received, "bye");
      client.transport!.end();
      await Promise.all([client.closed, accepted.closed]);
      assert.deepEqual(client.events, ["data", "end", "close"]);
      assert.equal(client.closeError, undefined);
      assert.deepEqual(accepted.events, ["close"]);
      assert.equal(accepted.closeError, undefined);
    });
  });

  it("connects to localhost", async () => {
    await withServer("127.0.0.1", async (server) => {
      const client = await connectPeer({ hostname: "localhost", port: server.port });
      await exchange(client, await server.accepted(0));
      client.transport!.destroy();
      await client.closed;
    });
  });

  it("connects to the IPv6 loopback ::1", async () => {
    await withServer("::1", async (server) => {
      const client = await connectPeer({ hostname: "::1", port: server.port });
      assert.equal(client.transport!.remoteAddress, "::1");
      await exchange(client, await server.accepted(0));
      client.transport!.destroy();
      await client.closed;
    });
  });

  it("rejects a refused port with the address, the reason and the runtime's error", async () => {
    const port = 1; // tcpmux: nothing listens on it.
    const error = await rejectsWithMessage(
      connect({ hostname: "127.0.0.1", port }, new Peer()),
      `Cannot connect to 127.0.0.1:${port}: the connection was refused`,
    );
    assert.equal(error.message, `Cannot connect to 127.0.0.1:${port}: the connection was refused`);
    assert.equal((error.cause as { code?: string }).code, "ECONNREFUSED");
    await rejectsWithMessage(
      connect({ hostname: "::1", port }, new Peer()),
      `Cannot connect to [::1]:${port}: the connection was refused`,
    );
  });

  it("rejects a host name that does not resolve", async () => {
    // RFC 6761 §6.4: .invalid names never resolve.
    await rejectsWithMessage(
      connect({ hostname: "nowhere.invalid", port: 80 }, new Peer()),
      "Cannot connect to nowhere.invalid:80: the host name could not be resolved",
    );
  });

  it("an already-aborted signal rejects with its reason, and nothing connects", async () => {
    await withServer("127.0.0.1", async (server) => {
      const reason = new Error("not now");
      const handler = new Peer();
      await rejectsWith(
        connect({
          hostname: "127.0.0.1",
          port: server.port,
          signal: AbortSignal.abort(reason),
        }, handler),
        reason,
      );
      // Connections are accepted in order: had the first one connected, it would be first.
      const client = await connectPeer({ hostname: "127.0.0.1", port: server.port });
      client.transport!.write(encoder.encode("ping"), false);
      assert.equal(await server.receivedBy("ping"), server.peers[0]);
      assert.equal(server.peers.length, 1);
      assert.deepEqual(handler.events, []);
      client.transport!.destroy();
      await client.closed;
    });
  });

  it("an abort while connecting rejects with its reason and closes the socket", async () => {
    await withServer("127.0.0.1", async (server) => {
      const controller = new AbortController();
      const handler = new Peer();
      const pending = connect({
        hostname: "127.0.0.1",
        port: server.port,
        signal: controller.signal,
      }, handler);
      controller.abort();
      await rejectsWith(pending, controller.signal.reason);
      const client = await connectPeer({ hostname: "127.0.0.1", port: server.port });
      client.transport!.write(encoder.encode("ping"), false);
      const last = await server.receivedBy("ping");
      // The aborted connection, if it reached the server, was accepted first and is gone.
      assert.ok(server.peers.length <= 2);
      await Promise.all(server.peers.filter((peer) => peer !== last).map((peer) => peer.gone));
      assert.deepEqual(handler.events, []);
      client.transport!.destroy();
      await client.closed;
    });
  });
});

describe("connect over TLS on this runtime's adapter", () => {
  let certificate: SignedCertificate;
  before(() => {
    certificate = generateSignedCertificate();
  });

  const tlsServer = (hostname: string, body: (server: Server) => Promise<void>) =>
    withServer(hostname, body, { cert: certificate.cert, key: certificate.key });

  for (const hostname of ["127.0.0.1", "localhost", "::1"]) {
    it(`verifies the server's certificate against the CA given, connecting to ${hostname}`, async () => {
      await tlsServer(hostname === "::1" ? "::1" : "127.0.0.1", async (server) => {
        const client = await connectPeer({
          hostname,
          port: server.port,
          tls: { ca: [certificate.ca] },
        });
        await exchange(client, await server.accepted(0));
        client.transport!.end();
        await server.peers[0].ended;
        server.peers[0].transport!.end();
        await Promise.all([client.closed, server.peers[0].closed]);
        assert.equal(client.closeError, undefined);
      });
    });
  }

  it("refuses a certificate whose CA is not trusted, with a clear message", async () => {
    await tlsServer("127.0.0.1", async (server) => {
      const handler = new Peer();
      await rejectsWithMessage(
        connect({ hostname: "localhost", port: server.port, tls: {} }, handler),
        `Cannot connect to localhost:${server.port}: the server's TLS certificate was refused (`,
      );
      assert.deepEqual(handler.events, []);
    });
  });

  it("verifies serverName rather than the address connected to", async () => {
    await tlsServer("127.0.0.1", async (server) => {
      const client = await connectPeer({
        hostname: "127.0.0.1",
        port: server.port,
        tls: { ca: [certificate.ca], serverName: "localhost" },
      });
      await exchange(client, await server.accepted(0));
      client.transport!.destroy();
      await client.closed;
      await rejectsWithMessage(
        connect({
          hostname: "127.0.0.1",
          port: server.port,
          tls: { ca: [certificate.ca], serverName: "wrong.example" },
        }, new Peer()),
        `Cannot connect to 127.0.0.1:${server.port}: the server's TLS certificate was refused ` +
          `for the name "wrong.example" (`,
      );
    });
  });

  it("a server that closes during the handshake", async () => {
    await withServer("127.0.0.1", async (server) => {
      const pending = connect({
        hostname: "127.0.0.1",
        port: server.port,
        tls: { ca: [certificate.ca] },
      }, new Peer());
      (await server.accepted(0)).transport!.end();
      const error = await rejectsWithMessage(
        pending,
        `Cannot connect to 127.0.0.1:${server.port}: the connection was closed during the TLS ` +
          "handshake",
      );
      assert.equal(
        error.message,
        `Cannot connect to 127.0.0.1:${server.port}: the connection was closed during the TLS ` +
          "handshake",
      );
    });
  });

  it("a server that does not speak TLS", async () => {
    await withServer("127.0.0.1", async (server) => {
      const pending = connect({
        hostname: "127.0.0.1",
        port: server.port,
        tls: { ca: [certificate.ca] },
      }, new Peer());
      const accepted = await server.accepted(0);
      accepted.transport!.write(encoder.encode("HTTP/1.1 400 Bad Request\r\n\r\n"), false);
      await rejectsWithMessage(
        pending,
        `Cannot connect to 127.0.0.1:${server.port}: the TLS handshake failed (`,
      );
    });
  });

  it("an abort during the handshake rejects with its reason; the socket closes", async () => {
    // The server accepts and does not answer the ClientHello until the abort.
    await withServer("127.0.0.1", async (server) => {
      const controller = new AbortController();
      const handler = new Peer();
      const pending = connect({
        hostname: "127.0.0.1",
        port: server.port,
        tls: { ca: [certificate.ca] },
        signal: controller.signal,
      }, handler);
      const accepted = await server.accepted(0);
      const reason = new Error("changed my mind");
      controller.abort(reason);
      await rejectsWith(pending, reason);
      // Bun closed the socket at the abort; Deno closes it once the handshake is over (here:
      // failed), as it finishes a handshake before it closes.
      accepted.transport!.write(encoder.encode("HTTP/1.1 400 Bad Request\r\n\r\n"), false);
      await accepted.gone;
      assert.deepEqual(handler.events, []);
    });
  });
});
