/**
 * End to end over TLS (wss://): a certificate made for this run (tests/_tls.ts), a client over
 * `node:tls` that verifies it, and the same traffic as the plain suites: echo, a large message
 * each way, the closing handshake, a refused upgrade, a client that does not trust the server,
 * and `serve` given half of the TLS options.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { X509Certificate } from "node:crypto";
import process from "node:process";
import { fileURLToPath } from "node:url";
import type tls from "node:tls";
import type { ServeOptions } from "../mod.ts";
import {
  encodeFrame,
  type HttpResponse,
  Op,
  openWebSocket,
  parseClose,
  RawClient,
  text,
  upgradeRequest,
} from "./_client.ts";
import { pattern, Queue, withServer } from "./_harness.ts";
import { generateCertificate, testCertificate } from "./_tls.ts";

/** What a test body gets from {@linkcode withTlsServer}. */
interface TlsHarness {
  port: number;
  /** The certificate the server serves. */
  cert: string;
  /** A TLS connection trusting `ca` (the server's own certificate by default). */
  connect(ca?: string): Promise<RawClient>;
  /** A WebSocket over TLS after a checked 101. */
  open(): Promise<RawClient>;
}

/**
 * Runs `body` against a fresh wss:// server; afterwards drops every client it opened, then
 * {@linkcode withServer} shuts the server down.
 */
async function withTlsServer<T = undefined>(
  options: ServeOptions<T>,
  body: (harness: TlsHarness) => Promise<void>,
): Promise<void> {
  const { cert, key } = testCertificate();
  const clients: RawClient[] = [];
  await withServer<T>({ ...options, cert, key }, async ({ port }) => {
    try {
      await body({
        port,
        cert,
        async connect(ca = cert) {
          const client = await RawClient.connect(port, { tls: { ca } });
          clients.push(client);
          return client;
        },
        async open() {
          const { client } = await openWebSocket(port, { tls: { ca: cert } });
          clients.push(client);
          return client;
        },
      });
    } finally {
      for (const client of clients) client.destroy();
      await Promise.all(clients.map((client) => client.closed));
    }
  });
}

/** Compares bytes without printing megabytes when they differ. */
function assertSameBytes(actual: Uint8Array, expected: Uint8Array): void {
  assert.equal(actual.length, expected.length, "length");
  for (let i = 0; i < expected.length; i++) {
    if (actual[i] !== expected[i]) {
      assert.fail(`byte ${i} differs: ${actual[i]} instead of ${expected[i]}`);
    }
  }
}

test("tls: the client verifies the served certificate, and text and binary echo", async () => {
  const received = new Queue<[string | Uint8Array, boolean]>();
  await withTlsServer({
    message(ws, data, isBinary) {
      received.push([data, isBinary]);
      ws.send(data);
    },
  }, async ({ open, cert }) => {
    const client = await open();
    const socket = client.socket as tls.TLSSocket;
    assert.equal(socket.encrypted, true, "a TLS socket");
    assert.equal(socket.authorized, true, `not verified: ${socket.authorizationError}`);
    assert.equal(
      socket.getPeerCertificate().fingerprint256,
      new X509Certificate(cert).fingerprint256,
      "the server serves the certificate it was given",
    );

    await client.sendFrame(Op.Text, "héllo over wss 😀");
    assert.deepEqual(await received.next("the text message"), ["héllo over wss 😀", false]);
    const echoed = await client.nextFrame();
    assert.equal(echoed.opcode, Op.Text);
    assert.equal(echoed.fin, true);
    assert.equal(echoed.masked, false, "server frames are never masked");
    assert.equal(text(echoed.payload), "héllo over wss 😀");

    const bytes = pattern(300, 7);
    await client.sendFrame(Op.Binary, bytes);
    const [data, isBinary] = await received.next("the binary message");
    assert.equal(isBinary, true);
    assert.ok(data instanceof Uint8Array);
    assertSameBytes(data, bytes);
    const frame = await client.nextFrame();
    assert.equal(frame.opcode, Op.Binary);
    assert.equal(frame.fin, true);
    assertSameBytes(frame.payload, bytes);
  });
});

test("tls: 1 MiB each way, the upload written in pieces that end at odd offsets", async () => {
  const size = 1024 * 1024;
  const upload = pattern(size, 0x9e3779b9);
  const download = pattern(size, 0x7f4a7c15);
  const received = new Queue<Uint8Array>();
  await withTlsServer({
    message(ws, data) {
      assert.ok(data instanceof Uint8Array);
      received.push(data);
      ws.send(download);
    },
  }, async ({ open }) => {
    const client = await open();
    // Each write becomes its own TLS records, so the frame reaches the server split at these
    // odd offsets: one byte of header first, then pieces of a prime length.
    const frame = encodeFrame(Op.Binary, upload);
    await client.write(frame.subarray(0, 1));
    for (let offset = 1; offset < frame.length; offset += 8191) {
      await client.write(frame.subarray(offset, offset + 8191));
    }
    assertSameBytes(await received.next("the 1 MiB message"), upload);
    const reply = await client.nextFrame();
    assert.equal(reply.opcode, Op.Binary);
    assert.equal(reply.fin, true);
    assertSameBytes(reply.payload, download);
  });
});

test("tls: the closing handshake carries code and reason both ways, then TCP closes", async () => {
  const closes = new Queue<[number, string]>();
  await withTlsServer({
    message(ws) {
      ws.close(4000, "server done");
    },
    close(_ws, code, reason) {
      closes.push([code, reason]);
    },
  }, async ({ open }) => {
    const client = await open();
    await client.sendFrame(Op.Text, "close me");
    assert.deepEqual(parseClose(await client.nextFrame()), { code: 4000, reason: "server done" });
    assert.equal(closes.items.length, 0, "the handler waits for the client's answer");
    await client.sendClose(4001, "client ok");
    assert.deepEqual(await closes.next("the close handler"), [4001, "client ok"]);
    // RFC 6455 §7.1.1: the server closes the connection first.
    await client.waitClosed();
    assert.equal(client.endReceived, true, "the server should close, not reset");
    assert.equal(closes.items.length, 1);
  });
});

test("tls: the client's Close reaches the handler and is answered", async () => {
  const closes = new Queue<[number, string]>();
  await withTlsServer({
    close(_ws, code, reason) {
      closes.push([code, reason]);
    },
  }, async ({ open }) => {
    const client = await open();
    await client.sendClose(1000, "bye over tls");
    assert.deepEqual(await closes.next("the close handler"), [1000, "bye over tls"]);
    assert.deepEqual(parseClose(await client.nextFrame()), { code: 1000, reason: "" });
    await client.waitClosed();
    assert.equal(client.endReceived, true, "the server should close, not reset");
  });
});

test("tls: a refused upgrade is an HTTP 401 over TLS", async () => {
  let opened = 0;
  await withTlsServer({
    upgrade() {
      return new Response("no", { status: 401 });
    },
    open() {
      opened++;
    },
  }, async ({ connect }) => {
    const client = await connect();
    await client.write(upgradeRequest());
    const response: HttpResponse = await client.response();
    assert.equal(response.status, 401);
    assert.match(response.statusLine, /^HTTP\/1\.1 401 /);
    assert.equal(response.headers.get("content-length"), "2");
    assert.equal(text(response.body), "no");
    assert.equal(response.headers.has("sec-websocket-accept"), false);
    await client.waitClosed();
    assert.equal(opened, 0);
  });
});

test("tls: a client that trusts another certificate refuses the server's", async () => {
  const other = generateCertificate();
  await withTlsServer({}, async ({ connect, cert }) => {
    assert.notEqual(
      new X509Certificate(other.cert).fingerprint256,
      new X509Certificate(cert).fingerprint256,
    );
    await assert.rejects(connect(other.cert), (error: Error & { code?: string }) => {
      // Node's code for a self-signed leaf that is not among the trusted roots.
      assert.equal(error.code, "DEPTH_ZERO_SELF_SIGNED_CERT", error.message);
      return true;
    });
    // The server is still fine: a client that trusts it gets in.
    const client = await connect();
    assert.equal((client.socket as tls.TLSSocket).authorized, true);
  });
});

test("tls: the certificate names localhost, so a client asking for another name refuses it", async () => {
  await withTlsServer({}, async ({ port, cert }) => {
    await assert.rejects(
      RawClient.connect(port, { tls: { ca: cert, servername: "example.com" } }),
      (error: Error & { code?: string }) => {
        assert.equal(error.code, "ERR_TLS_CERT_ALTNAME_INVALID", error.message);
        return true;
      },
    );
  });
});

test("tls: a plain-TCP upgrade request to a wss:// server gets no HTTP response", async () => {
  await withTlsServer({}, async ({ port }) => {
    const client = await RawClient.connect(port);
    try {
      await client.write(upgradeRequest());
      await assert.rejects(client.response(), /closed before a whole HTTP response/);
    } finally {
      client.destroy();
      await client.closed;
    }
  });
});

/** How long a child process may run: under the 5 s that `bun test` gives a test. */
const CHILD_MS = 3000;

/** What {@linkcode serveInChild} saw. */
interface ChildServe {
  /** The error `serve` threw, or `undefined` if it returned. */
  error: { isTypeError: boolean; message: string } | undefined;
  /** The process exited by itself within {@linkcode CHILD_MS}, with status 0. */
  exited: boolean;
  /** Its stderr, for failure messages. */
  stderr: string;
}

/**
 * Calls `serve(options)` in a new process of the runtime running this test (`deno eval`,
 * `bun -e`) and reports what it threw and whether the process then exited by itself: a serve
 * that throws must leave no timer or listener behind, and only an exit shows that on both
 * runtimes.
 */
function serveInChild(options: ServeOptions): Promise<ChildServe> {
  const mod = new URL("../mod.ts", import.meta.url).href;
  const source = `
    const { serve } = await import(${JSON.stringify(mod)});
    let error;
    try {
      await serve(${JSON.stringify(options)}).shutdown({ timeout: 0 });
    } catch (thrown) {
      error = { isTypeError: thrown instanceof TypeError, message: String(thrown?.message) };
    }
    console.log(JSON.stringify({ error: error ?? null }));
  `;
  const args = "Bun" in globalThis ? ["-e", source] : ["eval", source];
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, {
      cwd: fileURLToPath(new URL("..", import.meta.url)),
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => stdout += chunk);
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => stderr += chunk);
    let killed = false;
    const timer = setTimeout(() => {
      killed = true;
      child.kill("SIGKILL");
    }, CHILD_MS);
    child.on("error", (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.on("close", (status) => {
      clearTimeout(timer);
      const line = stdout.trim().split("\n").at(-1) ?? "";
      if (!line.startsWith("{")) {
        reject(new Error(`the child process printed no result; stderr: ${stderr}`));
        return;
      }
      const error = JSON.parse(line).error ?? undefined;
      resolve({ error, exited: !killed && status === 0, stderr });
    });
  });
}

const LEFT_RUNNING = `the process did not exit by itself within ${CHILD_MS} ms after serve ` +
  "threw: a timer or a listener outlived the failed serve";

for (const [name, half] of [["cert", "key"], ["key", "cert"]] as const) {
  test(`tls: serve with ${name} but no ${half} throws a TypeError and leaves nothing running`, async () => {
    const result = await serveInChild({
      hostname: "127.0.0.1",
      port: 0,
      [name]: testCertificate()[name],
    });
    assert.deepEqual(result.error, {
      isTypeError: true,
      message: "Cannot serve: TLS needs both cert and key",
    });
    assert.ok(result.exited, `${LEFT_RUNNING}; stderr: ${result.stderr}`);
  });
}

test("tls: serve with a cert that is not PEM throws and leaves nothing running", async () => {
  const result = await serveInChild({
    hostname: "127.0.0.1",
    port: 0,
    cert: "not a certificate",
    key: testCertificate().key,
  });
  assert.deepEqual(result.error, {
    isTypeError: true,
    message: 'Cannot serve: cert must be PEM text ("-----BEGIN ..."), got "not a certificate"',
  });
  assert.ok(result.exited, `${LEFT_RUNNING}; stderr: ${result.stderr}`);
});

test("tls: serve with a key that does not match the certificate throws and leaves nothing running", async () => {
  const result = await serveInChild({
    hostname: "127.0.0.1",
    port: 0,
    cert: testCertificate().cert,
    key: generateCertificate().key,
  });
  // The runtime's TLS library refuses the pair; the error names the address and wraps it.
  assert.equal(result.error?.isTypeError, false);
  assert.match(
    result.error?.message ?? "",
    /^Cannot serve on 127\.0\.0\.1:0: the TLS certificate or key was refused \(.+\)$/,
  );
  assert.ok(result.exited, `${LEFT_RUNNING}; stderr: ${result.stderr}`);
});
