// The server's side (validateUpgradeRequest, acceptKey, the response writers) is tested in
// handshake_test.ts through the names handshake.ts has always exported; these are the client's.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { type ErrorCode, HandshakeError } from "./errors.ts";
import {
  type DeflateNegotiationOptions,
  negotiateDeflate,
} from "./extensions/deflate_negotiation.ts";
import { parseExtensions } from "./extensions/extension_header.ts";
import { type RequestHead, RequestHeadParser } from "./http1.ts";
import {
  acceptKey,
  acceptResponse,
  ClientHandshake,
  type ClientHandshakeOptions,
  handshakeRequest,
  type HandshakeRequestOptions,
  isRefusal,
  validateUpgradeRequest,
} from "./upgrade.ts";

/** A string's code units as bytes (latin1), so tests can hold any byte. */
function bytes(text: string): Uint8Array {
  return Uint8Array.from(text, (c) => c.charCodeAt(0));
}

function text(data: Uint8Array): string {
  return String.fromCharCode(...data);
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
}

/** The head of a request as the server's parser reads it. */
function parseRequest(request: Uint8Array): RequestHead {
  const parser = new RequestHeadParser();
  assert.equal(parser.push(request), 1, parser.refusal?.message ?? "");
  assert.equal(parser.rest.length, 0);
  return parser.head!;
}

/** A 101 for `key` with these header lines (each "Name: value"), or the usual ones. */
function response101(key: string, lines?: string[]): Uint8Array {
  const headers = lines ?? [
    "Upgrade: websocket",
    "Connection: Upgrade",
    `Sec-WebSocket-Accept: ${acceptKey(key)}`,
  ];
  return bytes(
    `HTTP/1.1 101 Switching Protocols\r\n${headers.map((h) => h + "\r\n").join("")}\r\n`,
  );
}

function assertHandshakeError(
  error: unknown,
  code: ErrorCode,
  message: string | RegExp,
): HandshakeError {
  assert.ok(error instanceof HandshakeError, `expected a HandshakeError, got ${error}`);
  assert.equal(error.name, "HandshakeError");
  assert.equal(error.code, code);
  assert.equal(error.closeCode, 1006);
  if (typeof message === "string") assert.equal(error.message, message);
  else assert.match(error.message, message);
  return error;
}

/** Feeds `response` to a fresh handshake whole and byte by byte; both must fail alike. */
function assertFails(
  options: ClientHandshakeOptions | undefined,
  response: (key: string) => Uint8Array,
  code: ErrorCode,
  message: string | RegExp,
): HandshakeError {
  const whole = new ClientHandshake("ws://example.com/", options);
  assert.equal(whole.receive(response(whole.key)), -1);
  assert.equal(whole.result, undefined);
  const error = assertHandshakeError(whole.error, code, message);
  const byByte = new ClientHandshake("ws://example.com/", options);
  const data = response(byByte.key);
  let state = 0;
  for (let i = 0; i < data.length && state === 0; i++) {
    state = byByte.receive(data.subarray(i, i + 1));
  }
  assert.equal(state, -1);
  assertHandshakeError(byByte.error, code, message);
  return error;
}

// A server's first frames right behind its 101: text "Hello" and a ping, unmasked.
const FRAMES = Uint8Array.of(0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x89, 0x00);

describe("handshakeRequest", () => {
  it("writes the RFC 6455 §4.1 request, which the server's side accepts", () => {
    const { bytes: request, key } = handshakeRequest("ws://example.com/chat?room=1", {
      protocols: ["chat.v2", "chat.v1"],
      extensions: "permessage-deflate; client_max_window_bits",
      headers: [["Origin", "http://example.com"], ["Authorization", "Bearer abc"]],
    });
    const head = parseRequest(request);
    assert.deepEqual(head, {
      method: "GET",
      target: "/chat?room=1",
      version: "HTTP/1.1",
      headers: [
        ["host", "example.com"],
        ["upgrade", "websocket"],
        ["connection", "Upgrade"],
        ["sec-websocket-key", key],
        ["sec-websocket-version", "13"],
        ["sec-websocket-protocol", "chat.v2, chat.v1"],
        ["sec-websocket-extensions", "permessage-deflate; client_max_window_bits"],
        ["origin", "http://example.com"],
        ["authorization", "Bearer abc"],
      ],
    });
    const info = validateUpgradeRequest(head);
    assert.ok(!isRefusal(info), isRefusal(info) ? info.message : "");
    assert.equal(info.key, key);
    assert.deepEqual(info.protocols, ["chat.v2", "chat.v1"]);
    assert.equal(info.origin, "http://example.com");
  });

  it("writes a minimal request with no options, and takes a URL object", () => {
    const { bytes: request, key } = handshakeRequest(new URL("ws://example.com"));
    assert.equal(
      text(request),
      `GET / HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
    );
  });

  it("writes Host with the port only when it is not the scheme's default, IPv6 in brackets", () => {
    const cases: Array<[string, string, string]> = [
      ["ws://example.com/", "example.com", "/"],
      ["ws://example.com:80/", "example.com", "/"],
      ["ws://example.com:8080", "example.com:8080", "/"],
      ["wss://example.com:443/a/b", "example.com", "/a/b"],
      ["wss://example.com:80/", "example.com:80", "/"],
      ["ws://127.0.0.1:9001/?x=1", "127.0.0.1:9001", "/?x=1"],
      ["ws://[::1]:9001/x", "[::1]:9001", "/x"],
      ["wss://[2001:db8::1]/", "[2001:db8::1]", "/"],
      ["http://example.com:81/p", "example.com:81", "/p"],
      ["https://example.com/p", "example.com", "/p"],
      ["ws://EXAMPLE.com/Path", "example.com", "/Path"],
      ["ws://user:secret@example.com/", "example.com", "/"],
      ["ws://example.com/a b?c d", "example.com", "/a%20b?c%20d"],
    ];
    for (const [url, host, target] of cases) {
      const request = handshakeRequest(url).bytes;
      const head = parseRequest(request);
      assert.equal(head.target, target, url);
      assert.deepEqual(head.headers[0], ["host", host], url);
      assert.ok(!text(request).includes("secret"), url);
    }
  });

  it("sends a fresh key of 16 random bytes in base64 each time", () => {
    const keys = new Set<string>();
    for (let i = 0; i < 1000; i++) {
      const { key } = handshakeRequest("ws://a/");
      assert.match(key, /^[A-Za-z0-9+/]{22}==$/);
      assert.equal(atob(key).length, 16);
      keys.add(key);
    }
    assert.equal(keys.size, 1000);
  });

  for (
    const [name, url, options, message] of [
      ["an invalid URL", "not a url", undefined, undefined],
      [
        "another scheme",
        "ftp://example.com/",
        undefined,
        "Cannot write the request: the URL's scheme must be ws: or wss:, not ftp:",
      ],
      [
        "a fragment",
        "ws://example.com/#x",
        undefined,
        "Cannot write the request: a WebSocket URL has no fragment",
      ],
      [
        "an empty subprotocol",
        "ws://a/",
        { protocols: [""] },
        'Cannot write the request: the subprotocol "" is not a token',
      ],
      [
        "a subprotocol with a space",
        "ws://a/",
        { protocols: ["a b"] },
        'Cannot write the request: the subprotocol "a b" is not a token',
      ],
      [
        "a subprotocol with a comma",
        "ws://a/",
        { protocols: ["a,b"] },
        'Cannot write the request: the subprotocol "a,b" is not a token',
      ],
      [
        "a subprotocol beyond ASCII",
        "ws://a/",
        { protocols: ["caf\xe9"] },
        'Cannot write the request: the subprotocol "caf\xe9" is not a token',
      ],
      [
        "a subprotocol offered twice",
        "ws://a/",
        { protocols: ["a", "b", "a"] },
        'Cannot write the request: the subprotocol "a" is offered twice',
      ],
      [
        "extensions that do not parse",
        "ws://a/",
        { extensions: "permessage-deflate;" },
        "Cannot write the request: Invalid Sec-WebSocket-Extensions header: " +
        "expected a parameter name at the end",
      ],
      [
        "a header name that is not a token",
        "ws://a/",
        { headers: { "X Y": "1" } },
        'Cannot write the request: header name "X Y" is not a token',
      ],
      [
        "a header value with CR LF",
        "ws://a/",
        { headers: [["X-A", "1\r\nX-B: 2"]] },
        'Cannot write the request: the value of header "X-A" holds CR, LF or NUL',
      ],
      [
        "a header value with NUL",
        "ws://a/",
        { headers: { "X-A": "\0" } },
        'Cannot write the request: the value of header "X-A" holds CR, LF or NUL',
      ],
    ] as Array<[string, string, HandshakeRequestOptions | undefined, string | undefined]>
  ) {
    it(`throws a TypeError for ${name}`, () => {
      assert.throws(
        () => handshakeRequest(url, options),
        message === undefined ? TypeError : { name: "TypeError", message },
      );
    });
  }

  it("refuses the headers the handshake writes, in any case", () => {
    for (
      const name of [
        "Host",
        "upgrade",
        "CONNECTION",
        "Sec-WebSocket-Key",
        "sec-websocket-version",
        "Sec-WebSocket-Protocol",
        "Sec-WebSocket-Extensions",
      ]
    ) {
      assert.throws(() => handshakeRequest("ws://a/", { headers: { [name]: "x" } }), {
        name: "TypeError",
        message: `Cannot write the request: the header "${name}" is written by the handshake`,
      });
    }
  });

  it("writes random requests that the server's parser reads back exactly (encode → parse)", () => {
    const tchar = fc.constantFrom(..."!#$%&'*+-.^_`|~0123456789abcXYZ");
    const token = fc.string({ unit: tchar, minLength: 1, maxLength: 10 });
    const vchar = fc.integer({ min: 0x21, max: 0xff }).filter((c) => c !== 0x7f).map((c) =>
      String.fromCharCode(c)
    );
    const value = fc.tuple(
      fc.string({ unit: vchar, maxLength: 15 }),
      fc.string({ unit: fc.constantFrom(" ", "\t", "x"), maxLength: 3 }),
      fc.string({ unit: vchar, maxLength: 15 }),
    ).map(([a, b, c]) => (a + b + c).trim() === a + b + c ? a + b + c : a + c);
    const segment = fc.string({
      unit: fc.constantFrom(..."abcXYZ019-._~!$&'()*+,;=:@%20"),
      maxLength: 8,
    });
    const input = fc.record({
      host: fc.constantFrom("example.com", "127.0.0.1", "[::1]", "a-b.example"),
      port: fc.option(fc.integer({ min: 1, max: 65535 }), { nil: undefined }),
      secure: fc.boolean(),
      path: fc.array(segment, { maxLength: 4 }),
      query: fc.option(segment, { nil: undefined }),
      protocols: fc.uniqueArray(token, { maxLength: 4 }),
      headers: fc.array(
        fc.tuple(
          token.filter((n) => !/^(host|upgrade|connection|sec-websocket-.*)$/i.test(n)),
          value,
        ),
        { maxLength: 6 },
      ),
    });
    fc.assert(
      fc.property(input, (r) => {
        const url = new URL(
          `${r.secure ? "wss" : "ws"}://${r.host}${r.port === undefined ? "" : `:${r.port}`}/` +
            r.path.join("/") + (r.query === undefined ? "" : `?${r.query}`),
        );
        const { bytes: request, key } = handshakeRequest(url, {
          protocols: r.protocols,
          headers: r.headers,
        });
        const expected: Array<[string, string]> = [
          ["host", url.host],
          ["upgrade", "websocket"],
          ["connection", "Upgrade"],
          ["sec-websocket-key", key],
          ["sec-websocket-version", "13"],
        ];
        if (r.protocols.length > 0) {
          expected.push(["sec-websocket-protocol", r.protocols.join(", ")]);
        }
        for (const [n, v] of r.headers) expected.push([n.toLowerCase(), v]);
        const head = parseRequest(request);
        assert.deepEqual(head, {
          method: "GET",
          target: url.pathname + url.search,
          version: "HTTP/1.1",
          headers: expected,
        });
        const info = validateUpgradeRequest(head);
        assert.ok(!isRefusal(info), isRefusal(info) ? info.message : "");
        assert.equal(info.key, key);
        assert.deepEqual(info.protocols, r.protocols);
      }),
      { numRuns: 300 },
    );
  });
});

describe("ClientHandshake: accepted", () => {
  it("accepts the server's 101 and hands back what it chose", () => {
    const handshake = new ClientHandshake("ws://example.com/", { protocols: ["a", "chat"] });
    const response = acceptResponse(handshake.key, { protocol: "chat", headers: { "X-Id": "7" } });
    assert.equal(handshake.receive(response), 1);
    assert.equal(handshake.error, undefined);
    const result = handshake.result!;
    assert.equal(result.head.status, 101);
    assert.equal(result.head.reason, "Switching Protocols");
    assert.deepEqual(result.head.headers.at(-1), ["x-id", "7"]);
    assert.equal(result.protocol, "chat");
    assert.equal(result.extensions, "");
    assert.equal(result.deflate, undefined);
    assert.equal(result.rest.length, 0);
    assert.equal(text(handshake.request).split("\r\n")[0], "GET / HTTP/1.1");
  });

  it("reads the upgrade tokens case-insensitively, in lists and repeated headers", () => {
    for (
      const [upgrade, connection] of [
        ["WebSocket", "UPGRADE"],
        ["websocket, h2c", "keep-alive, Upgrade"],
        ["h2c, WEBSOCKET", "Keep-Alive,upgrade"],
      ]
    ) {
      const handshake = new ClientHandshake("ws://a/");
      const response = response101(handshake.key, [
        `Upgrade: ${upgrade}`,
        "Connection: close",
        `Connection: ${connection}`,
        `Sec-WebSocket-Accept: ${acceptKey(handshake.key)}`,
      ]);
      assert.equal(handshake.receive(response), 1, `${upgrade} / ${connection}`);
    }
  });

  it("accepts a 101 without a subprotocol when some were offered", () => {
    const handshake = new ClientHandshake("ws://a/", { protocols: ["chat"] });
    assert.equal(handshake.receive(acceptResponse(handshake.key)), 1);
    assert.equal(handshake.result?.protocol, "");
  });

  it("is the same fed whole, one byte at a time, and split at every offset", () => {
    const options = { protocols: ["chat"], perMessageDeflate: true };
    const answer = "permessage-deflate; server_no_context_takeover; client_max_window_bits=10";
    const reference = new ClientHandshake("ws://a/", options);
    const whole = acceptResponse(reference.key, { protocol: "chat", extensions: answer });
    assert.equal(reference.receive(whole), 1);
    const expected = reference.result!;
    assert.deepEqual(expected.deflate?.params, {
      localNoContextTakeover: false,
      remoteNoContextTakeover: true,
      localMaxWindowBits: 10,
      remoteMaxWindowBits: 15,
    });
    const make = () => {
      const handshake = new ClientHandshake("ws://a/", options);
      return {
        handshake,
        data: acceptResponse(handshake.key, { protocol: "chat", extensions: answer }),
      };
    };
    {
      const { handshake, data } = make();
      for (let i = 0; i < data.length - 1; i++) {
        assert.equal(handshake.receive(data.subarray(i, i + 1)), 0, `byte ${i}`);
      }
      assert.equal(handshake.receive(data.subarray(data.length - 1)), 1);
      assert.deepEqual({ ...handshake.result, head: undefined }, { ...expected, head: undefined });
    }
    for (let i = 1; i < whole.length; i++) {
      const { handshake, data } = make();
      assert.equal(handshake.receive(data.slice(0, i)), 0, `split at ${i}`);
      assert.equal(handshake.receive(data.slice(i)), 1, `split at ${i}`);
      assert.equal(handshake.result?.protocol, "chat");
      assert.deepEqual(handshake.result?.deflate, expected.deflate);
    }
  });

  it("hands back the server's first frames, whole and split at every offset", () => {
    const probe = new ClientHandshake("ws://a/");
    const headLength = acceptResponse(probe.key).length;
    for (let i = 0; i <= headLength + FRAMES.length; i++) {
      const handshake = new ClientHandshake("ws://a/");
      const data = concat(acceptResponse(handshake.key), FRAMES);
      const first = data.slice(0, i);
      const second = data.slice(i);
      let completing = first;
      if (handshake.receive(first) === 0) {
        assert.equal(handshake.receive(second), 1, `split at ${i}`);
        completing = second;
      }
      // What of the frames came in the completing chunk, as a view of it; the rest of them
      // are the caller's next chunk.
      const expected = i >= headLength ? FRAMES.subarray(0, i - headLength) : FRAMES;
      assert.deepEqual(handshake.result?.rest, expected, `split at ${i}`);
      if (expected.length > 0) assert.equal(handshake.result?.rest.buffer, completing.buffer);
    }
  });

  it("throws a TypeError on receive after the handshake is over, and on end after success", () => {
    const handshake = new ClientHandshake("ws://a/");
    handshake.receive(acceptResponse(handshake.key));
    assert.throws(() => handshake.receive(FRAMES), {
      name: "TypeError",
      message: "Cannot receive: the handshake is already over",
    });
    assert.throws(() => handshake.end(), {
      name: "TypeError",
      message: "Cannot end the handshake: it has succeeded",
    });
    const failed = new ClientHandshake("ws://a/");
    failed.receive(bytes("nope"));
    assert.throws(() => failed.receive(FRAMES), TypeError);
    assert.equal(failed.end(), failed.error);
  });
});

describe("ClientHandshake: interim responses", () => {
  it("skips 1xx heads before the 101 (RFC 9110 §15.2), whole or byte by byte", () => {
    for (const split of [false, true]) {
      const handshake = new ClientHandshake("ws://a/");
      const response = concat(
        bytes("HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"),
        bytes("HTTP/1.1 100 Continue\r\n\r\n"),
        response101(handshake.key),
        FRAMES,
      );
      let state: number = 0;
      if (split) {
        for (let i = 0; i < response.length && state === 0; i++) {
          state = handshake.receive(response.subarray(i, i + 1));
        }
      } else {
        state = handshake.receive(response);
      }
      assert.equal(state, 1, handshake.error?.message ?? "");
      assert.equal(handshake.result!.head.status, 101);
      // Byte by byte, the head completes on its own last byte: the frames come after.
      assert.deepEqual([...handshake.result!.rest], split ? [] : [...FRAMES]);
    }
  });

  it("a refusal after an interim response is still a refusal", () => {
    const handshake = new ClientHandshake("ws://a/");
    const state = handshake.receive(
      bytes("HTTP/1.1 103 Early Hints\r\n\r\nHTTP/1.1 403 Forbidden\r\n\r\nno"),
    );
    assert.equal(state, -1);
    assertHandshakeError(handshake.error, "WS_ERR_HANDSHAKE_REFUSED", /answered 403 Forbidden/);
    assert.equal(text(handshake.error!.body), "no");
  });

  it("fails after 16 of them, and a bad head among them fails as any bad head", () => {
    const flood = new ClientHandshake("ws://a/");
    const interim = bytes("HTTP/1.1 103 Early Hints\r\n\r\n");
    let state: number = 0;
    for (let i = 0; i < 17 && state === 0; i++) state = flood.receive(interim);
    assert.equal(state, -1);
    assertHandshakeError(
      flood.error,
      "WS_ERR_HANDSHAKE_BAD_RESPONSE",
      "Handshake failed: more than 16 interim (1xx) responses",
    );
    const garbled = new ClientHandshake("ws://a/");
    assert.equal(garbled.receive(bytes("HTTP/1.1 100 Continue\r\n\r\nnonsense\r\n\r\n")), -1);
    assert.equal(garbled.error!.code, "WS_ERR_HANDSHAKE_BAD_RESPONSE");
  });
});

describe("ClientHandshake: refused", () => {
  it("a status other than 101 is a refusal with the status, headers and body", () => {
    const response = "HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\n" +
      "Content-Length: 7\r\n\r\ngo away";
    const error = assertFails(
      undefined,
      () => bytes(response),
      "WS_ERR_HANDSHAKE_REFUSED",
      "Handshake refused: the server answered 403 Forbidden",
    );
    assert.equal(error.status, 403);
    assert.deepEqual(error.headers, [["content-type", "text/plain"], ["content-length", "7"]]);
    assert.equal(new TextDecoder().decode(error.body), "go away");
  });

  it("keeps a copy of the body bytes, not a view of the caller's chunk", () => {
    const handshake = new ClientHandshake("ws://a/");
    const chunk = bytes("HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer\r\n\r\nabc");
    assert.equal(handshake.receive(chunk), -1);
    chunk.fill(0);
    assert.equal(text(handshake.error!.body), "abc");
  });

  it("reports the server's own refusals: 400, 404, 426 with the version, 302, 200", () => {
    for (
      const [response, status, message] of [
        ["HTTP/1.1 400 Bad Request\r\n\r\n", 400, "400 Bad Request"],
        ["HTTP/1.1 404 \r\n\r\n", 404, "404"],
        [
          "HTTP/1.1 426 Upgrade Required\r\nSec-WebSocket-Version: 13\r\n\r\n",
          426,
          "426 Upgrade Required",
        ],
        ["HTTP/1.1 302 Found\r\nLocation: ws://b/\r\n\r\n", 302, "302 Found"],
        ["HTTP/1.0 200 OK\r\n\r\n<html>", 200, "200 OK"],
      ] as const
    ) {
      const error = assertFails(
        undefined,
        () => bytes(response),
        "WS_ERR_HANDSHAKE_REFUSED",
        `Handshake refused: the server answered ${message}`,
      );
      assert.equal(error.status, status);
    }
  });
});

describe("ClientHandshake: bad responses", () => {
  it("fails garbage, and a response that is not HTTP/1.x", () => {
    assertFails(
      undefined,
      () => bytes("SSH-2.0-OpenSSH_9.2\r\n"),
      "WS_ERR_HANDSHAKE_BAD_RESPONSE",
      "Bad response: not an HTTP response (the status line does not start with HTTP/)",
    );
    assertFails(
      undefined,
      () => bytes("HTTP/2 101\r\n\r\n"),
      "WS_ERR_HANDSHAKE_BAD_RESPONSE",
      "Bad response: HTTP version HTTP/2 is not supported here (HTTP/1.1 or HTTP/1.0 only)",
    );
  });

  it("fails a bare LF or CR where CRLF is required", () => {
    assertFails(
      undefined,
      (key) =>
        bytes(text(response101(key)).replace("Upgrade: websocket\r\n", "Upgrade: websocket\n")),
      "WS_ERR_HANDSHAKE_BAD_RESPONSE",
      "Bad response: an LF not preceded by CR",
    );
    assertFails(
      undefined,
      (key) => bytes(text(response101(key)).replace("\r\n", "\r")),
      "WS_ERR_HANDSHAKE_BAD_RESPONSE",
      "Bad response: a CR not followed by LF",
    );
  });

  it("fails a 101 in HTTP/1.0", () => {
    const error = assertFails(
      undefined,
      (key) => bytes(text(response101(key)).replace("HTTP/1.1", "HTTP/1.0")),
      "WS_ERR_HANDSHAKE_BAD_RESPONSE",
      "Handshake failed: a 101 response in HTTP/1.0",
    );
    assert.equal(error.status, 101);
    assert.equal(error.headers.length, 3);
  });

  it("fails a head over the limits", () => {
    const big = (key: string) =>
      response101(key, [
        "Upgrade: websocket",
        "Connection: Upgrade",
        `Sec-WebSocket-Accept: ${acceptKey(key)}`,
        `X-Big: ${"x".repeat(300)}`,
      ]);
    assertFails(
      { maxHeadSize: 256 },
      big,
      "WS_ERR_HANDSHAKE_TOO_LARGE",
      "Response head too large: the head exceeds 256 bytes",
    );
    assertFails(
      { maxLineLength: 200 },
      big,
      "WS_ERR_HANDSHAKE_TOO_LARGE",
      "Response head too large: a header line exceeds 200 bytes",
    );
    assertFails(
      { maxHeaders: 3 },
      big,
      "WS_ERR_HANDSHAKE_TOO_LARGE",
      "Response head too large: more than 3 header lines",
    );
    assert.throws(() => new ClientHandshake("ws://a/", { maxHeadSize: 0 }), RangeError);
  });

  it("fails a response that ends early, at every offset", () => {
    const probe = new ClientHandshake("ws://a/");
    const length = acceptResponse(probe.key).length;
    for (let i = 0; i < length; i++) {
      const handshake = new ClientHandshake("ws://a/");
      assert.equal(handshake.receive(acceptResponse(handshake.key).subarray(0, i)), 0);
      const error = handshake.end();
      assertHandshakeError(
        error,
        "WS_ERR_HANDSHAKE_INCOMPLETE",
        "Handshake failed: the connection ended before the response head was complete",
      );
      assert.equal(handshake.error, error);
      assert.equal(handshake.end(), error);
      assert.throws(() => handshake.receive(new Uint8Array(1)), TypeError);
    }
  });

  it("fails a 101 without the upgrade headers", () => {
    const accept = (key: string) => `Sec-WebSocket-Accept: ${acceptKey(key)}`;
    for (
      const [lines, message] of [
        [["Connection: Upgrade"], "the Upgrade header is missing"],
        [
          ["Upgrade: h2c", "Connection: Upgrade"],
          'the Upgrade header does not include "websocket"',
        ],
        [["Upgrade: websockets", "Connection: Upgrade"], 'does not include "websocket"'],
        [["Upgrade: websocket"], 'the Connection header does not include "upgrade"'],
        [["Upgrade: websocket", "Connection: keep-alive"], 'does not include "upgrade"'],
      ] as const
    ) {
      const error = assertFails(
        undefined,
        (key) => response101(key, [...lines, accept(key)]),
        "WS_ERR_HANDSHAKE_UPGRADE",
        new RegExp(`^Handshake failed: .*${message.replace(/[.*"]/g, (c) => `\\${c}`)}$`),
      );
      assert.equal(error.status, 101);
    }
  });

  it("fails a missing, repeated or wrong Sec-WebSocket-Accept", () => {
    const upgrade = ["Upgrade: websocket", "Connection: Upgrade"];
    assertFails(
      undefined,
      (key) => response101(key, upgrade),
      "WS_ERR_HANDSHAKE_ACCEPT",
      "Handshake failed: the Sec-WebSocket-Accept header is missing",
    );
    assertFails(
      undefined,
      (key) =>
        response101(key, [
          ...upgrade,
          `Sec-WebSocket-Accept: ${acceptKey(key)}`,
          `Sec-WebSocket-Accept: ${acceptKey(key)}`,
        ]),
      "WS_ERR_HANDSHAKE_ACCEPT",
      "Handshake failed: more than one Sec-WebSocket-Accept header",
    );
    for (
      const wrong of [
        () => acceptKey("dGhlIHNhbXBsZSBub25jZQ=="),
        (key: string) => key,
        (key: string) => acceptKey(key).toLowerCase(),
        (key: string) => acceptKey(key).slice(0, -1),
        () => "",
      ]
    ) {
      assertFails(
        undefined,
        (key) => response101(key, [...upgrade, `Sec-WebSocket-Accept: ${wrong(key)}`]),
        "WS_ERR_HANDSHAKE_ACCEPT",
        "Handshake failed: Sec-WebSocket-Accept is not the accept key of the Sec-WebSocket-Key sent",
      );
    }
  });

  it("fails a subprotocol that was not offered", () => {
    const chosen = (protocols: string[]) => (key: string) =>
      response101(key, [
        "Upgrade: websocket",
        "Connection: Upgrade",
        `Sec-WebSocket-Accept: ${acceptKey(key)}`,
        ...protocols.map((p) => `Sec-WebSocket-Protocol: ${p}`),
      ]);
    assertFails(
      undefined,
      chosen(["chat"]),
      "WS_ERR_HANDSHAKE_SUBPROTOCOL",
      'Handshake failed: the server chose the subprotocol "chat", but none was offered',
    );
    assertFails(
      { protocols: ["a", "b"] },
      chosen(["c"]),
      "WS_ERR_HANDSHAKE_SUBPROTOCOL",
      'Handshake failed: the server chose the subprotocol "c", which was not offered',
    );
    assertFails(
      { protocols: ["a", "b"] },
      chosen(["a, b"]),
      "WS_ERR_HANDSHAKE_SUBPROTOCOL",
      'Handshake failed: the server chose the subprotocol "a, b", which was not offered',
    );
    assertFails(
      { protocols: ["a", "b"] },
      chosen(["A"]),
      "WS_ERR_HANDSHAKE_SUBPROTOCOL",
      /"A", which was not offered/,
    );
    assertFails(
      { protocols: ["a", "b"] },
      chosen(["a", "a"]),
      "WS_ERR_HANDSHAKE_SUBPROTOCOL",
      "Handshake failed: more than one Sec-WebSocket-Protocol header",
    );
    assertFails(
      { protocols: ["a"] },
      chosen([""]),
      "WS_ERR_HANDSHAKE_SUBPROTOCOL",
      'Handshake failed: the server chose the subprotocol "", which was not offered',
    );
  });

  it("fails an extension that was not offered, repeated, or that does not parse", () => {
    const answered = (extensions: string[]) => (key: string) =>
      response101(key, [
        "Upgrade: websocket",
        "Connection: Upgrade",
        `Sec-WebSocket-Accept: ${acceptKey(key)}`,
        ...extensions.map((e) => `Sec-WebSocket-Extensions: ${e}`),
      ]);
    assertFails(
      undefined,
      answered(["permessage-deflate"]),
      "WS_ERR_HANDSHAKE_EXTENSION",
      'Handshake failed: the server accepted the extension "permessage-deflate", which was not ' +
        "offered",
    );
    assertFails(
      { perMessageDeflate: true },
      answered(["permessage-deflate", "x-foo"]),
      "WS_ERR_HANDSHAKE_EXTENSION",
      'Handshake failed: the server accepted the extension "x-foo", which was not offered',
    );
    assertFails(
      { perMessageDeflate: true },
      answered(["permessage-deflate, permessage-deflate"]),
      "WS_ERR_HANDSHAKE_EXTENSION",
      'Handshake failed: the server accepted the extension "permessage-deflate" twice',
    );
    assertFails(
      { extensions: "x-foo" },
      answered(["x-foo", "x-foo"]),
      "WS_ERR_HANDSHAKE_EXTENSION",
      'Handshake failed: the server accepted the extension "x-foo" twice',
    );
    assertFails(
      { perMessageDeflate: true },
      answered(["permessage-deflate;"]),
      "WS_ERR_HANDSHAKE_EXTENSION",
      "Handshake failed: Invalid Sec-WebSocket-Extensions header: expected a parameter name at " +
        "the end",
    );
  });

  it("fails a permessage-deflate answer RFC 7692 §7.1 does not allow", () => {
    const answered = (answer: string) => (key: string) =>
      acceptResponse(key, { extensions: answer });
    for (
      const [options, answer, reason] of [
        [true, "permessage-deflate; x=1", 'an unknown parameter "x"'],
        [true, "permessage-deflate; server_no_context_takeover=1", "takes no value"],
        [
          true,
          "permessage-deflate; client_max_window_bits",
          "client_max_window_bits needs a value from 8 to 15",
        ],
        [
          { localMaxWindowBits: 10 },
          "permessage-deflate; client_max_window_bits=12",
          "client_max_window_bits=12 is above the 10 offered",
        ],
        [
          { remoteMaxWindowBits: 10 },
          "permessage-deflate",
          "server_max_window_bits was asked for and not answered",
        ],
        [
          { remoteNoContextTakeover: true },
          "permessage-deflate",
          "server_no_context_takeover was asked for and not answered",
        ],
      ] as Array<[true | DeflateNegotiationOptions, string, string]>
    ) {
      assertFails(
        { perMessageDeflate: options },
        answered(answer),
        "WS_ERR_HANDSHAKE_EXTENSION",
        new RegExp(
          `^Handshake failed: Invalid permessage-deflate response: .*${
            reason.replace(/[.*"]/g, (c) => `\\${c}`)
          }`,
        ),
      );
    }
  });

  it("never throws on random bytes, and returns only -1, 0 or 1", () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.uint8Array({ maxLength: 1024 }),
          fc.uint8Array({ maxLength: 1024 }).map((tail) =>
            concat(bytes("HTTP/1.1 101 Switching Protocols\r\n"), tail)
          ),
        ),
        fc.array(fc.nat({ max: 200 }), { minLength: 1, maxLength: 10 }),
        (data, sizes) => {
          const handshake = new ClientHandshake("ws://a/", {
            protocols: ["chat"],
            perMessageDeflate: true,
          });
          let offset = 0;
          let state = 0;
          for (let k = 0; offset < data.length && state === 0; k++) {
            const size = sizes[k % sizes.length] || 1;
            state = handshake.receive(data.subarray(offset, offset + size));
            offset += size;
          }
          if (state === -1) assert.ok(handshake.error instanceof HandshakeError);
          if (state === 0) assert.equal(handshake.end().code, "WS_ERR_HANDSHAKE_INCOMPLETE");
          assert.notEqual(state, 1);
        },
      ),
      { numRuns: 500 },
    );
  });
});

describe("ClientHandshake: permessage-deflate against the server's negotiation", () => {
  /** The client's offer through the server's side and back. */
  function roundTrip(client: DeflateNegotiationOptions, server: DeflateNegotiationOptions) {
    const handshake = new ClientHandshake("ws://a/", { perMessageDeflate: client });
    const info = validateUpgradeRequest(parseRequest(handshake.request));
    assert.ok(!isRefusal(info));
    const offers = parseExtensions(info.extensions);
    assert.ok(typeof offers !== "string");
    const agreement = negotiateDeflate(offers, server);
    assert.ok(agreement, "the server accepts every offer the client makes");
    assert.equal(
      handshake.receive(acceptResponse(info.key, { extensions: agreement.response })),
      1,
      handshake.error?.message ?? "",
    );
    return { client: handshake.result!.deflate!, server: agreement };
  }

  it("offers permessage-deflate first, before other extensions", () => {
    const handshake = new ClientHandshake("ws://a/", {
      perMessageDeflate: true,
      extensions: "x-foo; a=1",
    });
    const head = parseRequest(handshake.request);
    assert.deepEqual(head.headers.find(([name]) => name === "sec-websocket-extensions"), [
      "sec-websocket-extensions",
      "permessage-deflate; client_max_window_bits, x-foo; a=1",
    ]);
    assert.throws(
      () =>
        new ClientHandshake("ws://a/", {
          perMessageDeflate: true,
          extensions: "permessage-deflate",
        }),
      {
        name: "TypeError",
        message: "Cannot write the request: permessage-deflate is offered by both " +
          "perMessageDeflate and extensions",
      },
    );
  });

  it("goes on without it when the server does not answer it", () => {
    const handshake = new ClientHandshake("ws://a/", { perMessageDeflate: true });
    assert.equal(handshake.receive(acceptResponse(handshake.key)), 1);
    assert.equal(handshake.result?.deflate, undefined);
    assert.equal(handshake.result?.extensions, "");
  });

  it("agrees with the server, each side's local the other's remote", () => {
    const { client, server } = roundTrip(
      { localNoContextTakeover: true, remoteMaxWindowBits: 10 },
      { localNoContextTakeover: true, remoteMaxWindowBits: 12 },
    );
    // The client offers client_max_window_bits, so the server may limit it to 12.
    assert.deepEqual(server.params, {
      localNoContextTakeover: true,
      remoteNoContextTakeover: true,
      localMaxWindowBits: 10,
      remoteMaxWindowBits: 12,
    });
    assert.deepEqual(client.params, {
      localNoContextTakeover: true,
      remoteNoContextTakeover: true,
      localMaxWindowBits: 12,
      remoteMaxWindowBits: 10,
    });
    assert.equal(client.response, server.response);
  });
});
