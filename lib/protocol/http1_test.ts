// The request-head parser's tests are in handshake_test.ts, which imports it through the
// names handshake.ts has always exported; these are the response-head parser's and the
// writers'.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { HandshakeError } from "./errors.ts";
import {
  checkHeaderName,
  checkHeaderValue,
  ChunkedBodyParser,
  ChunkedDecoder,
  chunkSizeLine,
  encodeChunk,
  headerLines,
  type HeadLimits,
  latin1Bytes,
  requestFraming,
  type RequestHead,
  RequestHeadParser,
  type ResponseHead,
  responseHead,
  ResponseHeadParser,
} from "./http1.ts";

/** A string's code units as bytes (latin1), so tests can hold any byte. */
function bytes(text: string): Uint8Array {
  return Uint8Array.from(text, (c) => c.charCodeAt(0));
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

/** Parses `response` fed whole; returns the parser after it. */
function parse(response: string | Uint8Array, limits?: HeadLimits): ResponseHeadParser {
  const parser = new ResponseHeadParser(limits);
  parser.push(typeof response === "string" ? bytes(response) : response);
  return parser;
}

/** Feeds `data` in chunks of `size`; returns the result and how many bytes were fed. */
function feed(parser: ResponseHeadParser, data: Uint8Array, size: number) {
  for (let offset = 0; offset < data.length; offset += size) {
    const result = parser.push(data.subarray(offset, offset + size));
    if (result !== 0) return { result, fed: Math.min(offset + size, data.length) };
  }
  return { result: 0, fed: data.length };
}

function assertFailed(
  parser: ResponseHeadParser,
  code: "WS_ERR_HANDSHAKE_BAD_RESPONSE" | "WS_ERR_HANDSHAKE_TOO_LARGE",
  pattern: RegExp,
): HandshakeError {
  assert.equal(parser.head, undefined);
  const error = parser.error;
  assert.ok(error instanceof HandshakeError, "expected an error");
  assert.equal(error.name, "HandshakeError");
  assert.equal(error.code, code);
  assert.equal(error.closeCode, 1006);
  assert.equal(error.status, 0);
  assert.match(error.message, pattern);
  return error;
}

const SERVER_101 = "HTTP/1.1 101 Switching Protocols\r\n" +
  "Upgrade: websocket\r\n" +
  "Connection: Upgrade\r\n" +
  "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n" +
  "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover\r\n" +
  "Sec-WebSocket-Protocol: chat\r\n" +
  "Date: Mon, 07 Dec 2026 10:00:00 GMT\r\n" +
  "\r\n";

const SERVER_101_HEAD: ResponseHead = {
  version: "HTTP/1.1",
  status: 101,
  reason: "Switching Protocols",
  headers: [
    ["upgrade", "websocket"],
    ["connection", "Upgrade"],
    ["sec-websocket-accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="],
    ["sec-websocket-extensions", "permessage-deflate; server_no_context_takeover"],
    ["sec-websocket-protocol", "chat"],
    ["date", "Mon, 07 Dec 2026 10:00:00 GMT"],
  ],
};

// A server's first frames right behind its 101: text "Hello" and a ping, unmasked.
const FRAMES = Uint8Array.of(0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x89, 0x00);

describe("ResponseHeadParser: chunking", () => {
  it("parses a 101 fed whole", () => {
    const parser = new ResponseHeadParser();
    assert.equal(parser.push(bytes(SERVER_101)), 1);
    assert.deepEqual(parser.head, SERVER_101_HEAD);
    assert.equal(parser.error, undefined);
    assert.equal(parser.rest.length, 0);
  });

  it("parses it fed one byte at a time", () => {
    const parser = new ResponseHeadParser();
    const data = bytes(SERVER_101);
    for (let i = 0; i < data.length - 1; i++) {
      assert.equal(parser.push(data.subarray(i, i + 1)), 0, `byte ${i}`);
      assert.equal(parser.head, undefined);
    }
    assert.equal(parser.push(data.subarray(data.length - 1)), 1);
    assert.deepEqual(parser.head, SERVER_101_HEAD);
    assert.equal(parser.rest.length, 0);
  });

  it("parses it split into two chunks at every offset", () => {
    const data = bytes(SERVER_101);
    for (let i = 0; i <= data.length; i++) {
      const parser = new ResponseHeadParser();
      const first = parser.push(data.slice(0, i));
      if (i === data.length) {
        assert.equal(first, 1);
      } else {
        assert.equal(first, 0, `split at ${i}`);
        assert.equal(parser.push(data.slice(i)), 1, `split at ${i}`);
      }
      assert.deepEqual(parser.head, SERVER_101_HEAD, `split at ${i}`);
    }
  });

  it("hands back the frames after the head, whole and split at every offset", () => {
    const head = bytes(SERVER_101);
    const data = concat(head, FRAMES);
    assert.deepEqual(parse(data).rest, FRAMES);
    for (let i = 0; i <= data.length; i++) {
      const parser = new ResponseHeadParser();
      const first = data.slice(0, i);
      const second = data.slice(i);
      let completing = first;
      if (parser.push(first) === 0) {
        assert.equal(parser.push(second), 1, `split at ${i}`);
        completing = second;
      }
      assert.deepEqual(parser.head, SERVER_101_HEAD, `split at ${i}`);
      // rest is what of the frames came in the completing chunk, a view of it.
      const expected = i >= head.length ? FRAMES.subarray(0, i - head.length) : FRAMES;
      assert.deepEqual(parser.rest, expected, `split at ${i}`);
      if (parser.rest.length > 0) assert.equal(parser.rest.buffer, completing.buffer);
    }
  });

  it("ignores empty chunks", () => {
    const parser = new ResponseHeadParser();
    assert.equal(parser.push(new Uint8Array(0)), 0);
    assert.equal(parser.push(bytes("HTTP/1.1 200 OK\r\nX-")), 0);
    assert.equal(parser.push(new Uint8Array(0)), 0);
    assert.equal(parser.push(bytes("A: 1\r\n\r\n")), 1);
    assert.deepEqual(parser.head?.headers, [["x-a", "1"]]);
  });
});

describe("ResponseHeadParser: syntax", () => {
  it("reads the status and the reason phrase, which may be empty or missing", () => {
    const cases: Array<[string, number, string]> = [
      ["HTTP/1.1 101 Switching Protocols", 101, "Switching Protocols"],
      ["HTTP/1.1 404 Not Found", 404, "Not Found"],
      ["HTTP/1.1 101 ", 101, ""],
      ["HTTP/1.1 101", 101, ""],
      ["HTTP/1.1 200 \tOK, fine\t ", 200, "\tOK, fine\t "],
      ["HTTP/1.1 999 x", 999, "x"],
      ["HTTP/1.1 503 Service Unavailable (try later)", 503, "Service Unavailable (try later)"],
    ];
    for (const [line, status, reason] of cases) {
      const head = parse(`${line}\r\n\r\n`).head;
      assert.deepEqual(head, { version: "HTTP/1.1", status, reason, headers: [] }, line);
    }
  });

  it("accepts HTTP/1.0", () => {
    assert.equal(parse("HTTP/1.0 403 Forbidden\r\n\r\n").head?.version, "HTTP/1.0");
  });

  it("reads a reason phrase and values with bytes 0x80–0xFF as latin1", () => {
    const head = parse("HTTP/1.1 400 Mauvaise requ\xeate\r\nX-A: caf\xe9\r\n\r\n").head;
    assert.equal(head?.reason, "Mauvaise requ\xeate");
    assert.deepEqual(head?.headers, [["x-a", "caf\xe9"]]);
  });

  it("lower-cases names, trims OWS around values, keeps inner whitespace and order", () => {
    const head = parse("HTTP/1.1 101 x\r\nUPGRADE:websocket\r\nx-a: \t b c \t \r\nE:\r\n\r\n")
      .head;
    assert.deepEqual(head?.headers, [["upgrade", "websocket"], ["x-a", "b c"], ["e", ""]]);
  });

  it("replaces obs-fold with one space (RFC 9112 §5.2)", () => {
    const response = "HTTP/1.1 101 x\r\nX-A: one\r\n  two\r\n\tthree \r\nX-B: b\r\nX-C:\r\n c\r\n" +
      "X-D: d\r\n   \r\n\r\n";
    const expected = [["x-a", "one two three"], ["x-b", "b"], ["x-c", "c"], ["x-d", "d"]];
    assert.deepEqual(parse(response).head?.headers, expected);
    const parser = new ResponseHeadParser();
    assert.equal(feed(parser, bytes(response), 1).result, 1);
    assert.deepEqual(parser.head?.headers, expected);
    // With bytes 0x80–0xFF in the continuation.
    assert.deepEqual(parse("HTTP/1.1 101 x\r\nX: a\r\n \xe9\r\n\r\n").head?.headers, [[
      "x",
      "a \xe9",
    ]]);
  });

  for (
    const [name, response, pattern] of [
      ["garbage", "SSH-2.0-OpenSSH_9.2\r\n", /not an HTTP response/],
      ["an HTML page", "<!DOCTYPE html>\n<html>", /not an HTTP response/],
      ["a lower-case version", "http/1.1 101 x\r\n\r\n", /not an HTTP response/],
      ["an HTTP/2 version", "HTTP/2 101 x\r\n\r\n", /HTTP version HTTP\/2 is not supported/],
      ["an HTTP/1.2 version", "HTTP/1.2 101 x\r\n\r\n", /HTTP version HTTP\/1\.2/],
      ["a bad version", "HTTP/1.1x 101 x\r\n\r\n", /bad HTTP version/],
      ["a control character in the version", "HTTP/1.1\x01 101\r\n\r\n", /bad HTTP version/],
      ["no status code", "HTTP/1.1\r\n\r\n", /no status code/],
      ["a two-digit status", "HTTP/1.1 10 x\r\n\r\n", /three digits/],
      ["a four-digit status", "HTTP/1.1 1010 x\r\n\r\n", /three digits/],
      ["a status that is not digits", "HTTP/1.1 abc x\r\n\r\n", /three digits/],
      ["two spaces before the status", "HTTP/1.1  101 x\r\n\r\n", /three digits/],
      ["a control character in the reason", "HTTP/1.1 101 a\x01b\r\n\r\n", /control/],
      ["a DEL in the reason", "HTTP/1.1 101 a\x7f\r\n\r\n", /control/],
      ["an empty line first", "\r\nHTTP/1.1 101 x\r\n\r\n", /empty line before the status/],
      ["a bare LF after the status line", "HTTP/1.1 101 x\n\r\n", /LF not preceded by CR/],
      ["a bare LF after the code", "HTTP/1.1 101\n\r\n", /LF not preceded by CR/],
      ["a bare LF after a header", "HTTP/1.1 101 x\r\nX: a\n\r\n", /LF not preceded by CR/],
      ["a bare LF ending the head", "HTTP/1.1 101 x\r\nX: a\r\n\n", /LF not preceded by CR/],
      ["a bare LF as the first line", "\n", /LF not preceded by CR/],
      ["a bare CR in the status line", "HTTP/1.1 101 x\ry\r\n\r\n", /CR not followed by LF/],
      ["a bare CR in a value", "HTTP/1.1 101 x\r\nX: a\rb\r\n\r\n", /CR not followed by LF/],
      ["a bare CR as a line", "HTTP/1.1 101 x\r\n\rX\r\n", /CR not followed by LF/],
      ["whitespace before the first header", "HTTP/1.1 101 x\r\n X: a\r\n\r\n", /obs-fold/],
      ["a space before the colon", "HTTP/1.1 101 x\r\nX : a\r\n\r\n", /whitespace/],
      ["an empty field name", "HTTP/1.1 101 x\r\n: a\r\n\r\n", /field name/],
      ["a header line without a colon", "HTTP/1.1 101 x\r\nUpgrade\r\n\r\n", /token/],
      ["a NUL in a value", "HTTP/1.1 101 x\r\nX: a\x00b\r\n\r\n", /control/],
      ["a control character in a fold", "HTTP/1.1 101 x\r\nX: a\r\n b\x01\r\n\r\n", /control/],
    ] as const
  ) {
    it(`fails ${name}, whole and byte by byte`, () => {
      assertFailed(parse(response), "WS_ERR_HANDSHAKE_BAD_RESPONSE", pattern);
      const parser = new ResponseHeadParser();
      assert.equal(feed(parser, bytes(response), 1).result, -1);
      const error = assertFailed(parser, "WS_ERR_HANDSHAKE_BAD_RESPONSE", pattern);
      assert.match(error.message, /^Bad response: /);
    });
  }

  it("fails garbage at its first byte, not at a limit", () => {
    const parser = new ResponseHeadParser();
    assert.equal(parser.push(bytes("H")), 0);
    assert.equal(parser.push(bytes("TTP")), 0);
    assert.equal(parser.push(bytes("x")), -1);
    assertFailed(parser, "WS_ERR_HANDSHAKE_BAD_RESPONSE", /not an HTTP response/);
    assertFailed(parse("\x16\x03\x01"), "WS_ERR_HANDSHAKE_BAD_RESPONSE", /not an HTTP response/);
  });

  it("throws a TypeError on push after the head is complete or failed", () => {
    const done = parse(SERVER_101);
    assert.throws(() => done.push(bytes("x")), {
      name: "TypeError",
      message: "Cannot push: the response head is already parsed",
    });
    const failed = parse("nope");
    assert.ok(failed.error);
    assert.throws(() => failed.push(new Uint8Array(0)), TypeError);
  });

  it("rejects limits that are not positive integers", () => {
    assert.throws(() => new ResponseHeadParser({ maxHeadSize: 0 }), {
      name: "RangeError",
      message: "Cannot create a ResponseHeadParser: maxHeadSize must be an integer of at least 1",
    });
    assert.throws(() => new ResponseHeadParser({ maxLineLength: 1.5 }), RangeError);
    assert.throws(() => new ResponseHeadParser({ maxHeaders: -1 }), RangeError);
    assert.ok(new ResponseHeadParser({ maxHeaders: 0 }));
  });
});

describe("ResponseHeadParser: limits", () => {
  it("accepts a head of exactly maxHeadSize bytes and fails one byte more", () => {
    const base = "HTTP/1.1 101 x\r\nX: ";
    const fits = base + "y".repeat(100 - base.length - 4) + "\r\n\r\n";
    assert.equal(fits.length, 100);
    for (const size of [1, 7, 100]) {
      assert.equal(feed(new ResponseHeadParser({ maxHeadSize: 100 }), bytes(fits), size).result, 1);
      const parser = new ResponseHeadParser({ maxHeadSize: 100 });
      const { result, fed } = feed(parser, bytes(fits.replace("X: ", "X: y")), size);
      assert.equal(result, -1);
      assert.ok(fed <= 100 + size);
      assertFailed(
        parser,
        "WS_ERR_HANDSHAKE_TOO_LARGE",
        /^Response head too large: the head exceeds 100 bytes$/,
      );
    }
  });

  it("fails a head that never ends, one byte at a time, at byte maxHeadSize", () => {
    const parser = new ResponseHeadParser({ maxHeadSize: 64 });
    const { result, fed } = feed(parser, bytes("HTTP/1.1 101 x\r\n" + "X: y\r\n".repeat(20)), 1);
    assert.equal(result, -1);
    assert.equal(fed, 64);
    assertFailed(parser, "WS_ERR_HANDSHAKE_TOO_LARGE", /exceeds 64 bytes/);
  });

  it("fails 100 KiB of headers fed in 1 KiB chunks by about 9 KiB", () => {
    let text = "HTTP/1.1 101 x\r\n";
    while (text.length < 100 * 1024) text += `X-Filler-${text.length}: ${"v".repeat(180)}\r\n`;
    const parser = new ResponseHeadParser();
    const { result, fed } = feed(parser, bytes(text), 1024);
    assert.equal(result, -1);
    assert.ok(fed <= 9 * 1024, `fed ${fed}`);
    assertFailed(parser, "WS_ERR_HANDSHAKE_TOO_LARGE", /the head exceeds 8192 bytes/);
  });

  it("accepts maxHeaders header lines and fails one more as soon as it starts", () => {
    const lines = (n: number) => "HTTP/1.1 101 x\r\n" + "X: y\r\n".repeat(n);
    assert.equal(parse(lines(100) + "\r\n").head?.headers.length, 100);
    assertFailed(
      parse(lines(101) + "\r\n"),
      "WS_ERR_HANDSHAKE_TOO_LARGE",
      /^Response head too large: more than 100 header lines$/,
    );
    const parser = new ResponseHeadParser();
    const { result, fed } = feed(parser, bytes(lines(101)), 1);
    assert.equal(result, -1);
    assert.equal(fed, lines(100).length + 1);
    // A continuation line is not a header line of its own.
    const folded = parse(lines(2) + " more\r\n\r\n", { maxHeaders: 2 });
    assert.deepEqual(folded.head?.headers, [["x", "y"], ["x", "y more"]]);
    const foldedByByte = new ResponseHeadParser({ maxHeaders: 2 });
    assert.equal(feed(foldedByByte, bytes(lines(2) + " more\r\n\r\n"), 1).result, 1);
  });

  it("fails a status line or a header line over maxLineLength", () => {
    const status = (length: number) => `HTTP/1.1 200 ${"r".repeat(length - 13)}`;
    assert.equal(status(4096).length, 4096);
    assert.ok(parse(status(4096) + "\r\n\r\n").head);
    assertFailed(
      parse(status(4097) + "\r\n\r\n"),
      "WS_ERR_HANDSHAKE_TOO_LARGE",
      /^Response head too large: the status line exceeds 4096 bytes$/,
    );
    const header = (length: number) => `X: ${"v".repeat(length - 3)}`;
    assert.ok(parse(`HTTP/1.1 101 x\r\n${header(4096)}\r\n\r\n`).head);
    assertFailed(
      parse(`HTTP/1.1 101 x\r\n${header(4097)}\r\n\r\n`),
      "WS_ERR_HANDSHAKE_TOO_LARGE",
      /^Response head too large: a header line exceeds 4096 bytes$/,
    );
    for (const size of [1, 1024]) {
      const parser = new ResponseHeadParser({ maxHeadSize: 1 << 20 });
      const { result, fed } = feed(parser, bytes(`HTTP/1.1 101 x\r\n${header(50000)}`), size);
      assert.equal(result, -1);
      assert.ok(fed <= 5 * 1024, `fed ${fed}`);
      assertFailed(parser, "WS_ERR_HANDSHAKE_TOO_LARGE", /a header line exceeds 4096 bytes/);
    }
  });
});

describe("ResponseHeadParser: properties", () => {
  it("never throws on random bytes in random chunks, and returns only -1, 0 or 1", () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.uint8Array({ maxLength: 2048 }),
          // Random bytes behind a valid start, to get past the status line.
          fc.uint8Array({ maxLength: 2048 }).map((tail) => concat(bytes("HTTP/1.1 101 "), tail)),
        ),
        fc.array(fc.nat({ max: 300 }), { minLength: 1, maxLength: 20 }),
        fc.record({
          maxHeadSize: fc.integer({ min: 1, max: 3000 }),
          maxHeaders: fc.integer({ min: 0, max: 20 }),
          maxLineLength: fc.integer({ min: 1, max: 500 }),
        }),
        (data, sizes, limits) => {
          const parser = new ResponseHeadParser(limits);
          let offset = 0;
          for (let k = 0; offset < data.length; k++) {
            const size = sizes[k % sizes.length] || 1;
            const result = parser.push(data.subarray(offset, offset + size));
            offset += size;
            assert.ok(result === -1 || result === 0 || result === 1);
            if (result === 1) assert.ok(parser.head && !parser.error);
            if (result === -1) assert.ok(parser.error instanceof HandshakeError && !parser.head);
            if (result !== 0) break;
          }
        },
      ),
      { numRuns: 500 },
    );
  });

  it("parses random valid responses the same whole and in random chunks", () => {
    const tchar = fc.constantFrom(..."!#$%&'*+-.^_`|~0123456789abcXYZ");
    const vchar = fc.integer({ min: 0x21, max: 0xff }).filter((c) => c !== 0x7f).map((c) =>
      String.fromCharCode(c)
    );
    const name = fc.string({ unit: tchar, minLength: 1, maxLength: 12 });
    const value = fc.tuple(
      fc.string({ unit: vchar, maxLength: 20 }),
      fc.string({ unit: fc.constantFrom(" ", "\t", "x", "\xe9"), maxLength: 4 }),
      fc.string({ unit: vchar, maxLength: 20 }),
    ).map(([a, b, c]) => (a + b + c).trim() === a + b + c ? a + b + c : a + c);
    const response = fc.record({
      status: fc.integer({ min: 100, max: 599 }),
      reason: fc.string({ unit: fc.constantFrom("a", "Z", " ", "\t", "\xe9", "("), maxLength: 20 }),
      version: fc.constantFrom("HTTP/1.1", "HTTP/1.0"),
      headers: fc.array(fc.tuple(name, value), { maxLength: 15 }),
      ows: fc.constantFrom("", " ", "\t "),
      tail: fc.uint8Array({ maxLength: 10 }),
    });
    fc.assert(
      fc.property(response, fc.array(fc.nat({ max: 40 }), { minLength: 1 }), (r, sizes) => {
        const text = `${r.version} ${r.status} ${r.reason}\r\n` +
          r.headers.map(([n, v]) => `${n}:${r.ows}${v}${r.ows}\r\n`).join("") + "\r\n";
        const data = concat(bytes(text), r.tail);
        const expected: ResponseHead = {
          version: r.version,
          status: r.status,
          reason: r.reason,
          headers: r.headers.map(([n, v]) => [n.toLowerCase(), v]),
        };
        const whole = parse(data);
        assert.deepEqual(whole.head, expected);
        assert.deepEqual(whole.rest, r.tail);
        const parser = new ResponseHeadParser();
        let offset = 0;
        for (let k = 0;; k++) {
          const size = sizes[k % sizes.length] || 1;
          const chunk = data.slice(offset, offset + size);
          const result = parser.push(chunk);
          offset += chunk.length;
          if (result === 1) {
            assert.deepEqual(parser.rest, chunk.subarray(chunk.length - (offset - text.length)));
            break;
          }
          assert.equal(result, 0);
        }
        assert.deepEqual(parser.head, expected);
      }),
      { numRuns: 300 },
    );
  });
});

describe("request and response parsers side by side", () => {
  it("keep their own state when interleaved chunk by chunk", () => {
    const request = bytes("GET /a HTTP/1.1\r\nHost: h\r\nX-R: 1\r\n\r\n");
    const response = bytes(SERVER_101);
    const requests = new RequestHeadParser();
    const responses = new ResponseHeadParser();
    for (let i = 0; i < Math.max(request.length, response.length); i++) {
      if (i < request.length) requests.push(request.subarray(i, i + 1));
      if (i < response.length) responses.push(response.subarray(i, i + 1));
    }
    assert.deepEqual(requests.head?.headers, [["host", "h"], ["x-r", "1"]]);
    assert.deepEqual(responses.head, SERVER_101_HEAD);
  });
});

describe("writing heads", () => {
  it("checks header names and values, naming what is written", () => {
    checkHeaderName("X-Ok", "the request");
    checkHeaderValue("X-Ok", "caf\xe9 \t value", "the request");
    assert.throws(() => checkHeaderName("", "the request"), {
      name: "TypeError",
      message: 'Cannot write the request: header name "" is not a token',
    });
    assert.throws(() => checkHeaderName("A:B", "the response"), {
      name: "TypeError",
      message: 'Cannot write the response: header name "A:B" is not a token',
    });
    for (const bad of ["a\r\nX: y", "a\nb", "a\0"]) {
      assert.throws(() => checkHeaderValue("X", bad, "the request"), {
        name: "TypeError",
        message: 'Cannot write the request: the value of header "X" holds CR, LF or NUL',
      });
    }
    assert.throws(() => checkHeaderValue("X", "\u0100", "the request"), {
      name: "TypeError",
      message: 'Cannot write the request: the value of header "X" holds a character above U+00FF',
    });
  });

  it("writes header lines from pairs or a record, and latin1 bytes", () => {
    assert.equal(headerLines([["A", "1"], ["A", "2"]], "the request"), "A: 1\r\nA: 2\r\n");
    assert.equal(headerLines({ B: "x y" }, "the request"), "B: x y\r\n");
    assert.deepEqual(latin1Bytes("a\xff", 2), Uint8Array.of(0x61, 0xff, 0, 0));
  });
});

describe("ChunkedDecoder", () => {
  const text = (pieces: Uint8Array[]) =>
    pieces.map((piece) => new TextDecoder().decode(piece)).join("");
  const wire = "5;ext=1\r\nhello\r\n1\r\n \r\nA\r\n0123456789\r\n0\r\nTrailer: x\r\n\r\nNEXT";

  it("decodes a body split at every position, dropping extensions and trailers", () => {
    const bytes = new TextEncoder().encode(wire);
    for (let cut = 0; cut <= bytes.length; cut++) {
      const decoder = new ChunkedDecoder();
      const body = text([
        ...decoder.push(bytes.subarray(0, cut)),
        ...decoder.push(bytes.subarray(cut)),
      ]);
      assert.equal(body, "hello 0123456789", `cut at ${cut}`);
      assert.equal(decoder.done, true);
      assert.equal(decoder.failed, false);
    }
  });

  it("is not done before the last chunk's empty line", () => {
    const decoder = new ChunkedDecoder();
    assert.equal(text(decoder.push(new TextEncoder().encode("3\r\nabc\r\n0\r\n"))), "abc");
    assert.equal(decoder.done, false);
    decoder.push(new TextEncoder().encode("\r\n"));
    assert.equal(decoder.done, true);
  });

  it("fails on a bad size, data not followed by CRLF, or a line over 4 KiB", () => {
    for (const bad of ["zz\r\n", "-1\r\n", "\r\n", "3\r\nabcX\r\n", `${"1".repeat(5000)}\r\n`]) {
      const decoder = new ChunkedDecoder();
      decoder.push(new TextEncoder().encode(bad));
      assert.equal(decoder.failed, true, JSON.stringify(bad.slice(0, 20)));
      assert.equal(decoder.done, false);
    }
  });
});

describe("ChunkedBodyParser", () => {
  const latin1 = (pieces: Uint8Array[]) =>
    pieces.map((piece) => String.fromCharCode(...piece)).join("");
  const wire =
    '5;ext=1\r\nhello\r\n1 ; a = "q\\"s" ;b\r\n \r\nA\r\n0123456789\r\n0\r\nTrailer: x\r\n\r\nNEXT';

  it("decodes a body fed whole, one byte at a time, and split at every offset", () => {
    const all = bytes(wire);
    const feeds: Uint8Array[][] = [[all], [...all].map((b) => Uint8Array.of(b))];
    for (let cut = 0; cut <= all.length; cut++) {
      feeds.push([all.subarray(0, cut), all.subarray(cut)]);
    }
    for (const feed of feeds) {
      const parser = new ChunkedBodyParser();
      const out: Uint8Array[] = [];
      let status = 0;
      let rest = "";
      for (const piece of feed) {
        if (status === 1) {
          rest += latin1([piece]);
          continue;
        }
        status = parser.push(piece, out);
        if (status === 1) rest += latin1([parser.rest]);
      }
      assert.equal(status, 1, `fed in ${feed.length} pieces`);
      assert.equal(latin1(out), "hello 0123456789");
      assert.equal(rest, "NEXT");
      assert.equal(parser.received, 16);
    }
  });

  it("gives the data as views of the bytes it was given, without copies", () => {
    const input = bytes("3\r\nabc\r\n");
    const out: Uint8Array[] = [];
    new ChunkedBodyParser().push(input, out);
    assert.equal(out[0].buffer, input.buffer);
  });

  it("refuses every malformed framing with 400 and a reason", () => {
    const cases: Array<[string, string]> = [
      ["zz\r\n", "a chunk-size that is not hex digits"],
      ["-1\r\n", "a chunk-size that is not hex digits"],
      ["+1\r\n", "a chunk-size that is not hex digits"],
      [" 1\r\n", "a chunk-size that is not hex digits"],
      ["1 \r\n", "whitespace after a chunk-size or extension"],
      ["1\n", "an LF not preceded by CR"],
      ["1\rx", "a CR not followed by LF"],
      ["\r\n", "a chunk-size that is not hex digits"],
      ["20000000000000\r\n", "a chunk-size too large"],
      ["3\r\nabcX", "chunk data not followed by CRLF"],
      ["3\r\nabc\rX", "chunk data not followed by CRLF"],
      ["3;\r\n", "a malformed chunk extension"],
      ["3;a=\r\n", "a malformed chunk extension"],
      ["3;a b\r\n", "a malformed chunk extension"],
      ['3;a="\x01"\r\n', "a control character in a chunk extension"],
      ['3;a="x"y\r\n', "a malformed chunk extension"],
      ["0\r\n x: 1\r\n\r\n", "obsolete line folding (obs-fold) in a trailer field"],
      ["0\r\nx : 1\r\n\r\n", "whitespace between a trailer field name and its colon"],
      ["0\r\nx: \x01\r\n\r\n", "a control character in a trailer field value"],
      ["0\r\nx: 1\n\r\n", "an LF not preceded by CR"],
      ["0\r\n\rx", "a CR not followed by LF"],
      [`${"0".repeat(5000)}\r\n`, "a chunk-size line over 4096 bytes"],
    ];
    for (const [input, why] of cases) {
      for (const split of [false, true]) {
        const parser = new ChunkedBodyParser();
        const all = bytes(input);
        let status = 0;
        for (const piece of split ? [...all].map((b) => Uint8Array.of(b)) : [all]) {
          status = parser.push(piece, []);
          if (status !== 0) break;
        }
        assert.equal(status, -1, JSON.stringify(input.slice(0, 30)));
        assert.deepEqual(parser.refusal, {
          status: 400,
          message: `Bad request: ${why}`,
          headers: [],
        });
        assert.throws(() => parser.push(bytes("0"), []), {
          name: "TypeError",
          message: "Cannot push: the chunked body is already decoded",
        });
      }
    }
  });

  it("refuses a body over maxBodySize at the chunk-size that passes it (413)", () => {
    const parser = new ChunkedBodyParser({ maxBodySize: 10 });
    const out: Uint8Array[] = [];
    assert.equal(parser.push(bytes("a\r\n0123456789\r\n"), out), 0);
    assert.equal(parser.push(bytes("1\r\n"), out), -1);
    assert.deepEqual(parser.refusal, {
      status: 413,
      message: "The request body is too large: more than 10 bytes",
      headers: [],
    });
  });

  it("refuses a trailer section over its limits (431)", () => {
    const big = new ChunkedBodyParser({ maxTrailerSize: 10 });
    assert.equal(big.push(bytes("0\r\nX-Long: 12345\r\n\r\n"), []), -1);
    assert.equal(big.refusal?.status, 431);
    const many = new ChunkedBodyParser({ maxTrailers: 1 });
    assert.equal(many.push(bytes("0\r\na: 1\r\nb: 2\r\n\r\n"), []), -1);
    assert.deepEqual(many.refusal, {
      status: 431,
      message: "Request header fields too large: more than 1 trailer fields",
      headers: [],
    });
  });

  it("never throws on random bytes in random chunks, and returns only -1, 0 or 1", () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 40 }), { maxLength: 8 }), (chunks) => {
        const parser = new ChunkedBodyParser();
        for (const chunk of chunks) {
          const status = parser.push(chunk, []);
          assert.ok(status === -1 || status === 0 || status === 1);
          if (status !== 0) break;
        }
      }),
    );
  });

  it("decodes what encodeChunk and chunkSizeLine write", () => {
    fc.assert(fc.property(fc.array(fc.uint8Array({ minLength: 1, maxLength: 300 })), (pieces) => {
      const wire = concat(
        ...pieces.map((piece, i) =>
          i % 2 === 0
            ? encodeChunk(piece)
            : concat(chunkSizeLine(piece.length), piece, bytes("\r\n"))
        ),
        bytes("0\r\n\r\n"),
      );
      const out: Uint8Array[] = [];
      assert.equal(new ChunkedBodyParser().push(wire, out), 1);
      assert.deepEqual(concat(...out), concat(...pieces));
    }));
  });
});

describe("requestFraming", () => {
  const head = (lines: string[], version = "HTTP/1.1"): RequestHead => {
    const parser = new RequestHeadParser();
    assert.equal(
      parser.push(bytes(`POST / ${version}\r\n${lines.map((l) => l + "\r\n").join("")}\r\n`)),
      1,
    );
    return parser.head!;
  };

  it("reads the body's length, keep-alive and 100-continue", () => {
    assert.deepEqual(requestFraming(head([])), {
      length: 0,
      keepAlive: true,
      expectContinue: false,
    });
    assert.deepEqual(requestFraming(head(["Content-Length: 012"])), {
      length: 12,
      keepAlive: true,
      expectContinue: false,
    });
    assert.deepEqual(requestFraming(head(["Transfer-Encoding: Chunked", "Expect: 100-Continue"])), {
      length: -1,
      keepAlive: true,
      expectContinue: true,
    });
    assert.deepEqual(requestFraming(head(["Connection: foo, Close"])), {
      length: 0,
      keepAlive: false,
      expectContinue: false,
    });
    assert.equal((requestFraming(head([], "HTTP/1.0")) as { keepAlive: boolean }).keepAlive, false);
    assert.deepEqual(
      requestFraming(head(["Connection: keep-alive", "Expect: 100-continue"], "HTTP/1.0")),
      {
        length: 0,
        keepAlive: true,
        expectContinue: false,
      },
    );
    assert.equal(
      (requestFraming(head(["Content-Length: 1234567890123456"])) as { length: number }).length,
      Infinity,
    );
  });

  it("refuses framings two parsers could read differently", () => {
    const refused: Array<[string[], number, string, string?]> = [
      [
        ["Content-Length: 1", "Transfer-Encoding: chunked"],
        400,
        "both Content-Length and Transfer-Encoding",
      ],
      [["Content-Length: 1", "Content-Length: 1"], 400, "more than one Content-Length"],
      [["Content-Length: 1, 1"], 400, "invalid Content-Length"],
      [["Content-Length: -1"], 400, "invalid Content-Length"],
      [["Content-Length: 1 2"], 400, "invalid Content-Length"],
      [["Transfer-Encoding: chunked, identity"], 400, "the last transfer coding is not chunked"],
      [["Transfer-Encoding: chunked;q=1"], 400, "the last transfer coding is not chunked"],
      [["Transfer-Encoding: xchunked"], 400, "the last transfer coding is not chunked"],
      [
        ["Transfer-Encoding: chunked", "Transfer-Encoding: chunked"],
        400,
        "chunked is applied more than once",
      ],
      [["Transfer-Encoding: ,"], 400, "an empty Transfer-Encoding"],
      [
        ["Transfer-Encoding: gzip, chunked"],
        501,
        'Not implemented: the transfer coding "gzip" is not supported',
      ],
      [["Expect: 200-ok"], 417, "Expectation failed: only 100-continue is supported"],
      [["Expect: 100-continue, x"], 417, "Expectation failed: only 100-continue is supported"],
    ];
    for (const [lines, status, message] of refused) {
      assert.deepEqual(
        requestFraming(head(lines)),
        { status, message: status === 400 ? `Bad request: ${message}` : message, headers: [] },
        lines.join(" | "),
      );
    }
    assert.deepEqual(requestFraming(head(["Transfer-Encoding: chunked"], "HTTP/1.0")), {
      status: 400,
      message: "Bad request: Transfer-Encoding in an HTTP/1.0 request",
      headers: [],
    });
  });
});

describe("request heads: size and bare line feeds", () => {
  it("reports the head's size and whether a bare LF ended a line", () => {
    for (
      const [text, bare] of [
        ["GET / HTTP/1.1\r\nHost: a\r\n\r\n", false],
        ["GET / HTTP/1.1\nHost: a\r\n\r\n", true],
        ["GET / HTTP/1.1\r\nHost: a\n\r\n", true],
        ["GET / HTTP/1.1\r\nHost: a\r\n\n", true],
      ] as const
    ) {
      const parser = new RequestHeadParser();
      assert.equal(parser.push(bytes(text + "rest")), 1);
      assert.equal(parser.size, text.length);
      assert.equal(parser.bareLineFeed, bare, JSON.stringify(text));
    }
  });
});

describe("responseHead", () => {
  it("writes the status line, Connection, the framing, Date, then the headers in order", () => {
    const date = "Thu, 01 Jan 1970 00:00:00 GMT";
    const text = (head: Uint8Array) => String.fromCharCode(...head);
    assert.equal(
      text(responseHead(200, [["x-b", "1"], ["x-a", "2"]], { date, framing: 5 })),
      `HTTP/1.1 200 OK\r\nContent-Length: 5\r\nDate: ${date}\r\nx-b: 1\r\nx-a: 2\r\n\r\n`,
    );
    assert.equal(
      text(responseHead(404, [], { date, framing: "chunked", connection: "close" })),
      `HTTP/1.1 404 Not Found\r\nConnection: close\r\nTransfer-Encoding: chunked\r\nDate: ${date}\r\n\r\n`,
    );
    assert.equal(
      text(responseHead(204, [], { date, framing: "none", connection: "keep-alive" })),
      `HTTP/1.1 204 No Content\r\nConnection: keep-alive\r\nDate: ${date}\r\n\r\n`,
    );
    assert.throws(() => responseHead(99, [], { date, framing: 0 }), {
      name: "RangeError",
      message: "Cannot write the response: 99 is not an HTTP status code",
    });
    assert.throws(() => responseHead(200, [["bad name", "1"]], { date, framing: 0 }), {
      name: "TypeError",
      message: 'Cannot write the response: header name "bad name" is not a token',
    });
  });

  it("frames a chunk with its size in hex", () => {
    assert.equal(
      String.fromCharCode(...encodeChunk(bytes("0123456789abcdefg"))),
      "11\r\n0123456789abcdefg\r\n",
    );
    assert.equal(String.fromCharCode(...chunkSizeLine(255)), "ff\r\n");
  });
});

describe("RequestHeadParser: reset", () => {
  it("reads the next head as a new parser would, after a complete, a failed or a partial one", () => {
    const parser = new RequestHeadParser({ maxHeaders: 2 });
    assert.equal(parser.push(bytes("POST /a HTTP/1.0\r\nHost: a\r\nX: 1\r\n\r\nrest")), 1);
    const first = parser.head!;
    parser.reset();
    assert.equal(parser.push(bytes("GET /b HTTP/1.1\r\nHo")), 0);
    assert.equal(parser.push(bytes("st: b\r\n\r\n")), 1);
    // The first head is let go unchanged; the second is read whole from its two chunks.
    assert.deepEqual(first, {
      method: "POST",
      target: "/a",
      version: "HTTP/1.0",
      headers: [["host", "a"], ["x", "1"]],
    });
    assert.deepEqual(parser.head, {
      method: "GET",
      target: "/b",
      version: "HTTP/1.1",
      headers: [["host", "b"]],
    });
    assert.equal(parser.rest.length, 0);
    assert.equal(parser.size, 28);
    // A failure (over maxHeaders), then a reset: the limits hold, the failure is gone.
    parser.reset();
    assert.equal(parser.push(bytes("GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n")), -1);
    assert.equal(parser.refusal?.status, 431);
    parser.reset();
    assert.equal(parser.refusal, undefined);
    assert.equal(parser.push(bytes("GET /c HTTP/1.1\nHost: c\r\n\r\n")), 1);
    assert.equal(parser.bareLineFeed, true);
    parser.reset();
    // A line left half-read is dropped, and bareLineFeed starts over.
    assert.equal(parser.push(bytes("GET /half")), 0);
    parser.reset();
    assert.equal(parser.push(bytes("GET /d HTTP/1.1\r\nHost: d\r\n\r\n")), 1);
    assert.equal(parser.head?.target, "/d");
    assert.equal(parser.bareLineFeed, false);
  });
});
