/**
 * End to end: `connect()` against servers that misbehave, made with a raw `node:net` listener
 * that writes crafted bytes (tests/_raw_server.ts): refusals and their bodies, every check of
 * RFC 6455 §4.1 on a 101, permessage-deflate answers RFC 7692 §7.1 forbids, heads that do not
 * parse or are too large, silence, a close in the middle of the head, and the request itself.
 * The failures of connect itself: a refused port, aborts and bad options are in
 * client_connect_test.ts; what follows a valid 101 in client_raw_server_test.ts.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { connect, type ConnectOptions, HandshakeError, WebSocketError } from "../mod.ts";
import { within } from "./_client.ts";
import { pattern, sleep } from "./_harness.ts";
import { type RawPeer, rejection, withRawServer } from "./_raw_server.ts";

const decoder = new TextDecoder();

/**
 * Connects to a server whose connections `respond` answers; returns what connect rejected
 * with, once the client has dropped the connection.
 */
async function failure(
  respond: (peer: RawPeer) => void,
  options: ConnectOptions = {},
): Promise<{ error: unknown; peer: RawPeer; port: number }> {
  let result: { error: unknown; peer: RawPeer; port: number } | undefined;
  await withRawServer(respond, async (server) => {
    // Under Bun's 5 s limit on a test, so that a hang fails this test and no other.
    const error = await within(
      rejection(connect(server.url(), options)),
      "connect to settle",
      3000,
    );
    const peer = await server.nextPeer();
    // The client drops the connection once the handshake has failed.
    await peer.waitGone();
    result = { error, peer, port: server.port };
  });
  return result!;
}

/** As {@linkcode failure}, checking that the error is a HandshakeError. */
async function handshakeFailure(
  respond: (peer: RawPeer) => void,
  options: ConnectOptions = {},
): Promise<{ error: HandshakeError; peer: RawPeer }> {
  const { error, peer } = await failure(respond, options);
  assert.ok(error instanceof HandshakeError, `expected a HandshakeError, got ${error}`);
  assert.ok(error instanceof WebSocketError);
  assert.equal(error.name, "HandshakeError");
  assert.equal(error.closeCode, 1006, "no Close frame is ever sent for a failed handshake");
  return { error, peer };
}

/** A 101 that accepts the peer's request, with `extra` header lines instead of the usual ones. */
function respond101(lines: (peer: RawPeer) => string[]): (peer: RawPeer) => void {
  return (peer) => void peer.write(lines(peer).join("\r\n") + "\r\n\r\n");
}

// ---------------------------------------------------------------------------------------------
// Refusals

test("client refusal: a 404 with headers and a body rejects with all of them", async () => {
  const body = "no such endpoint\n";
  const { error } = await handshakeFailure((peer) =>
    void peer.write(
      "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nX-Reason: gone\r\n" +
        `Set-Cookie: a=1\r\nSet-Cookie: b=2\r\nContent-Length: ${body.length}\r\n\r\n${body}`,
    )
  );
  assert.equal(error.code, "WS_ERR_HANDSHAKE_REFUSED");
  assert.equal(error.status, 404);
  assert.equal(error.message, "Handshake refused: the server answered 404 Not Found");
  assert.deepEqual(error.headers, [
    ["content-type", "text/plain"],
    ["x-reason", "gone"],
    ["set-cookie", "a=1"],
    ["set-cookie", "b=2"],
    ["content-length", String(body.length)],
  ]);
  assert.ok(error.body instanceof Uint8Array);
  assert.equal(decoder.decode(error.body), body);
});

test("client refusal: a body split over several packets is read whole", async () => {
  const pieces = ["first part, ", "second part, ", "third and last"];
  const length = pieces.join("").length;
  const { error } = await handshakeFailure((peer) => {
    (async () => {
      await peer.write(`HTTP/1.1 403 Forbidden\r\nContent-Length: ${length}\r\n\r\n`);
      for (const piece of pieces) {
        await sleep(20);
        await peer.write(piece);
      }
    })();
  });
  assert.equal(error.code, "WS_ERR_HANDSHAKE_REFUSED");
  assert.equal(error.status, 403);
  assert.equal(decoder.decode(error.body), pieces.join(""));
});

test("client refusal: a body without Content-Length is read until the server closes", async () => {
  const { error } = await handshakeFailure((peer) => {
    (async () => {
      await peer.write("HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\n\r\nbusy, ");
      await sleep(20);
      await peer.write("try later");
      peer.end();
    })();
  });
  assert.equal(error.status, 503);
  assert.equal(decoder.decode(error.body), "busy, try later");
});

test("client refusal: a body over 64 KiB is cut at 64 KiB, without waiting for the rest", async () => {
  const body = pattern(200 * 1024);
  for (const withLength of [true, false]) {
    const { error } = await handshakeFailure((peer) => {
      // The server sends only the first 100 KiB and stays open: 64 KiB must be enough.
      void peer.write(
        Buffer.concat([
          Buffer.from(
            `HTTP/1.1 400 Bad Request\r\n${
              withLength ? `Content-Length: ${body.length}\r\n` : ""
            }\r\n`,
            "latin1",
          ),
          body.subarray(0, 100 * 1024),
        ]),
      );
    });
    assert.equal(error.status, 400);
    assert.equal(error.body.length, 64 * 1024, `withLength: ${withLength}`);
    assert.deepEqual(error.body, body.subarray(0, 64 * 1024));
  }
});

test("client refusal: a 401 with an empty body and Content-Length: 0", async () => {
  const { error } = await handshakeFailure((peer) =>
    void peer.write(
      'HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer realm="x"\r\nContent-Length: 0\r\n\r\n',
    )
  );
  assert.equal(error.status, 401);
  assert.deepEqual(error.headers[0], ["www-authenticate", 'Bearer realm="x"']);
  assert.equal(error.body.length, 0);
});

test("client refusal: a body without length on a connection kept open ends at handshakeTimeout", async () => {
  // The server keeps the connection open after a refusal whose body has no Content-Length:
  // the refusal is still the answer once handshakeTimeout runs out, not a timeout.
  const { error } = await handshakeFailure(
    (peer) => void peer.write("HTTP/1.1 401 Unauthorized\r\nX-Why: token\r\n\r\nlog in first"),
    { handshakeTimeout: 200 },
  );
  assert.equal(error.code, "WS_ERR_HANDSHAKE_REFUSED");
  assert.equal(error.status, 401);
  assert.deepEqual(error.headers, [["x-why", "token"]]);
  assert.equal(decoder.decode(error.body), "log in first");
});

test("client refusal: a 204 or 304 has no body (RFC 9110 §6.4.1), nothing is waited for", async () => {
  // A 304's Content-Length is the resource's, not a body's.
  for (
    const [status, headers] of [["204 No Content", ""], [
      "304 Not Modified",
      "Content-Length: 5\r\n",
    ]]
  ) {
    // No handshakeTimeout: the rejection must not depend on one.
    const { error } = await handshakeFailure(
      (peer) => void peer.write(`HTTP/1.1 ${status}\r\nETag: "x"\r\n${headers}\r\n`),
      { handshakeTimeout: 0 },
    );
    assert.equal(error.code, "WS_ERR_HANDSHAKE_REFUSED");
    assert.equal(error.message, `Handshake refused: the server answered ${status}`);
    assert.equal(error.body.length, 0);
  }
});

test("client refusal: a chunked body on a connection kept open ends with its last chunk", async () => {
  const { error } = await handshakeFailure(
    (peer) =>
      void peer.write(
        // Transfer-Encoding wins over Content-Length (RFC 9112 §6.3); extensions and trailers
        // are not part of the body.
        "HTTP/1.1 403 Forbidden\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n" +
          "6;note=x\r\nnot yo\r\n3\r\nurs\r\n0\r\nX-Trailer: 1\r\n\r\n",
      ),
    { handshakeTimeout: 0 },
  );
  assert.equal(error.status, 403);
  assert.equal(decoder.decode(error.body), "not yours");
});

test("client refusal: a chunked body split anywhere decodes the same", async () => {
  const body = "HTTP/1.1 401 Unauthorized\r\nTransfer-Encoding: chunked\r\n\r\n" +
    "5\r\nhello\r\n1\r\n \r\nA\r\n0123456789\r\n0\r\n\r\n";
  const { error } = await handshakeFailure(
    async (peer) => {
      for (const char of body) {
        peer.write(char);
        await new Promise((resolve) => setTimeout(resolve, 1));
      }
    },
    { handshakeTimeout: 0 },
  );
  assert.equal(error.status, 401);
  assert.equal(decoder.decode(error.body), "hello 0123456789");
});

// ---------------------------------------------------------------------------------------------
// A 101 that breaks RFC 6455 §4.1

test("client handshake: a wrong Sec-WebSocket-Accept fails it", async () => {
  const { error } = await handshakeFailure(respond101(() => [
    "HTTP/1.1 101 Switching Protocols",
    "Upgrade: websocket",
    "Connection: Upgrade",
    "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=",
  ]));
  assert.equal(error.code, "WS_ERR_HANDSHAKE_ACCEPT");
  assert.equal(error.status, 101);
  assert.equal(
    error.message,
    "Handshake failed: Sec-WebSocket-Accept is not the accept key of the Sec-WebSocket-Key sent",
  );
});

test("client handshake: a missing Sec-WebSocket-Accept fails it", async () => {
  const { error } = await handshakeFailure(respond101(() => [
    "HTTP/1.1 101 Switching Protocols",
    "Upgrade: websocket",
    "Connection: Upgrade",
  ]));
  assert.equal(error.code, "WS_ERR_HANDSHAKE_ACCEPT");
  assert.equal(error.message, "Handshake failed: the Sec-WebSocket-Accept header is missing");
});

test("client handshake: a missing Upgrade or Connection header fails it", async () => {
  const cases: Array<[string[], string]> = [
    [["Connection: Upgrade"], "the Upgrade header is missing"],
    [["Upgrade: h2c", "Connection: Upgrade"], 'the Upgrade header does not include "websocket"'],
    [["Upgrade: websocket"], 'the Connection header does not include "upgrade"'],
    [
      ["Upgrade: websocket", "Connection: keep-alive"],
      'the Connection header does not include "upgrade"',
    ],
  ];
  for (const [lines, reason] of cases) {
    const { error } = await handshakeFailure(respond101((peer) => [
      "HTTP/1.1 101 Switching Protocols",
      ...lines,
      peer.acceptHead().split("\r\n")[3],
    ]));
    assert.equal(error.code, "WS_ERR_HANDSHAKE_UPGRADE", lines.join(", "));
    assert.equal(error.message, `Handshake failed: ${reason}`);
  }
});

test("client handshake: Upgrade and Connection are compared without case, as lists", async () => {
  await withRawServer(
    respond101((peer) => [
      "HTTP/1.1 101 Switching Protocols",
      "upgrade: WebSocket",
      "connection: keep-alive, UPGRADE",
      peer.acceptHead().split("\r\n")[3],
    ]),
    async (server) => {
      const ws = await connect(server.url());
      assert.equal(ws.readyState, 1);
      ws.terminate();
      assert.deepEqual(await ws.closed, { code: 1006, reason: "" });
    },
  );
});

test("client handshake: a 103 Early Hints before the 101 is skipped (RFC 9110 §15.2)", async () => {
  await withRawServer(
    async (peer) => {
      await peer.write("HTTP/1.1 103 Early Hints\r\nLink: </app.js>; rel=preload\r\n\r\n");
      await sleep(20); // In a packet of its own.
      await peer.accept();
    },
    async (server) => {
      const ws = await connect(server.url());
      assert.equal(ws.readyState, 1);
      ws.terminate();
      assert.deepEqual(await ws.closed, { code: 1006, reason: "" });
    },
  );
});

test("client handshake: a subprotocol that was not offered fails it", async () => {
  for (const protocols of [[], ["chat"]]) {
    const { error } = await handshakeFailure(
      (peer) => void peer.accept(["Sec-WebSocket-Protocol: superchat"]),
      { protocols },
    );
    assert.equal(error.code, "WS_ERR_HANDSHAKE_SUBPROTOCOL");
    assert.equal(
      error.message,
      `Handshake failed: the server chose the subprotocol "superchat", ${
        protocols.length === 0 ? "but none was offered" : "which was not offered"
      }`,
    );
  }
});

test("client handshake: an extension that was not offered fails it", async () => {
  for (const perMessageDeflate of [false, true]) {
    const { error } = await handshakeFailure(
      (peer) => void peer.accept(["Sec-WebSocket-Extensions: x-webkit-deflate-frame"]),
      { perMessageDeflate },
    );
    assert.equal(error.code, "WS_ERR_HANDSHAKE_EXTENSION");
    assert.equal(
      error.message,
      'Handshake failed: the server accepted the extension "x-webkit-deflate-frame", which was ' +
        "not offered",
    );
  }
  // permessage-deflate itself, when the client did not offer it.
  const { error } = await handshakeFailure(
    (peer) => void peer.accept(["Sec-WebSocket-Extensions: permessage-deflate"]),
  );
  assert.equal(error.code, "WS_ERR_HANDSHAKE_EXTENSION");
  assert.match(error.message, /"permessage-deflate", which was not offered/);
});

test("client handshake: permessage-deflate answers RFC 7692 §7.1 forbids fail it", async () => {
  const cases: Array<[ConnectOptions["perMessageDeflate"], string, RegExp]> = [
    [true, "permessage-deflate; foo=1", /an unknown parameter "foo"/],
    [true, "permessage-deflate; server_max_window_bits=7", /server_max_window_bits needs a value/],
    [true, "permessage-deflate; server_no_context_takeover=1", /takes no value/],
    [
      true,
      "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
      /server_no_context_takeover is repeated/,
    ],
    [
      { clientMaxWindowBits: 10 },
      "permessage-deflate; client_max_window_bits=12",
      /client_max_window_bits=12 is above the 10 offered/,
    ],
    [
      { serverMaxWindowBits: 10 },
      "permessage-deflate",
      /server_max_window_bits was asked for and not answered/,
    ],
    [
      { mode: "shared" },
      "permessage-deflate; client_no_context_takeover",
      /server_no_context_takeover was asked for and not answered/,
    ],
    [
      true,
      "permessage-deflate, permessage-deflate",
      /accepted the extension "permessage-deflate" twice/,
    ],
  ];
  for (const [perMessageDeflate, answer, message] of cases) {
    const { error } = await handshakeFailure(
      (peer) => void peer.accept([`Sec-WebSocket-Extensions: ${answer}`]),
      { perMessageDeflate },
    );
    assert.equal(error.code, "WS_ERR_HANDSHAKE_EXTENSION", answer);
    assert.match(error.message, message);
  }
});

test("client handshake: a 101 in HTTP/1.0 fails it", async () => {
  const { error } = await handshakeFailure(
    (peer) => void peer.write(peer.acceptHead().replace("HTTP/1.1", "HTTP/1.0")),
  );
  assert.equal(error.code, "WS_ERR_HANDSHAKE_BAD_RESPONSE");
  assert.equal(error.message, "Handshake failed: a 101 response in HTTP/1.0");
  assert.equal(error.status, 101);
});

test("client handshake: garbage instead of a response fails it at once", async () => {
  for (
    const garbage of ["SSH-2.0-OpenSSH_9.2\r\n", "\x00\x01\x02\x03", "HTTP/1.1 1O1 Bad\r\n\r\n"]
  ) {
    const { error } = await handshakeFailure((peer) => void peer.write(garbage));
    assert.equal(error.code, "WS_ERR_HANDSHAKE_BAD_RESPONSE", JSON.stringify(garbage));
    assert.match(error.message, /^Bad response: /);
    assert.equal(error.status, 0);
    assert.deepEqual(error.headers, []);
  }
});

test("client handshake: a response head over the limits fails it", async () => {
  const filler = "X-Filler: " + "a".repeat(90);
  const cases: Array<[string, RegExp]> = [
    // 100 lines of 100 bytes: over 8 KiB before the head ends (and it never ends).
    [`HTTP/1.1 101 Switching Protocols\r\n${`${filler}\r\n`.repeat(100)}`, /exceeds 8192 bytes/],
    [
      `HTTP/1.1 101 Switching Protocols\r\nX-Long: ${"b".repeat(5000)}`,
      /a header line exceeds 4096/,
    ],
    [`HTTP/1.1 101 Switching Protocols\r\n${"A: b\r\n".repeat(101)}\r\n`, /more than 100 header/],
  ];
  for (const [head, message] of cases) {
    const { error } = await handshakeFailure((peer) => void peer.write(head));
    assert.equal(error.code, "WS_ERR_HANDSHAKE_TOO_LARGE");
    assert.match(error.message, message);
  }
});

test("client handshake: a server that never answers times out, and the socket is closed", async () => {
  const started = Date.now();
  // failure() waits for the client to close the connection.
  const { error, port } = await failure(() => {}, { handshakeTimeout: 150 });
  assert.ok(error instanceof WebSocketError);
  assert.equal(error.name, "WebSocketError");
  assert.equal(error.code, "WS_ERR_HANDSHAKE_TIMEOUT");
  assert.equal(error.closeCode, 1006);
  assert.equal(
    error.message,
    `Cannot connect to 127.0.0.1:${port}: no accepted handshake within 150 ms`,
  );
  assert.ok(Date.now() - started >= 140, "not before the timeout");
});

test("client handshake: a server that closes in the middle of the head", async () => {
  for (const partial of ["", "HTTP/1.1 101 Switching Protocols\r\nUpgrade: webs"]) {
    const { error } = await handshakeFailure((peer) => {
      void peer.write(partial).then(() => peer.end());
    });
    assert.equal(error.code, "WS_ERR_HANDSHAKE_INCOMPLETE");
    assert.equal(
      error.message,
      "Handshake failed: the connection ended before the response head was complete",
    );
  }
});

test("client handshake: the request is RFC 6455 §4.1's, with the extra headers after", async () => {
  await withRawServer(undefined, async (server) => {
    const connecting = rejection(
      connect(server.url("/chat/room?id=7&x=%20y"), {
        protocols: ["v2.chat", "v1.chat"],
        perMessageDeflate: true,
        headers: [["Authorization", "Bearer t0ken"], ["Origin", "https://example.com"]],
        handshakeTimeout: 2000,
      }),
    );
    const peer = await server.nextPeer();
    peer.destroy();
    await connecting;
    const lines = peer.head.split("\r\n");
    assert.equal(lines[0], "GET /chat/room?id=7&x=%20y HTTP/1.1");
    assert.equal(peer.headers.get("host"), `127.0.0.1:${server.port}`);
    assert.equal(peer.headers.get("upgrade"), "websocket");
    assert.equal(peer.headers.get("connection"), "Upgrade");
    assert.equal(peer.headers.get("sec-websocket-version"), "13");
    assert.equal(Buffer.from(peer.key, "base64").length, 16, "16 random bytes in base64");
    assert.equal(peer.headers.get("sec-websocket-protocol"), "v2.chat, v1.chat");
    assert.equal(
      peer.headers.get("sec-websocket-extensions"),
      "permessage-deflate; client_max_window_bits",
    );
    assert.equal(peer.headers.get("authorization"), "Bearer t0ken");
    assert.equal(peer.headers.get("origin"), "https://example.com");
    // A fresh key for every connection.
    const again = rejection(connect(server.url(), { handshakeTimeout: 2000 }));
    const second = await server.nextPeer();
    second.destroy();
    await again;
    assert.notEqual(second.key, peer.key);
  });
});
