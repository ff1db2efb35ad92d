import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  acceptKey,
  acceptResponse,
  HANDSHAKE_HEADERS,
  type HandshakeRefusal,
  headerPairs,
  httpResponse,
  isRefusal,
  refusalResponse,
  type RequestHead,
  type RequestHeadLimits,
  RequestHeadParser,
  type UpgradeRequestInfo,
  validateUpgradeRequest,
} from "./handshake.ts";

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

function latin1(data: Uint8Array): string {
  return String.fromCharCode(...data);
}

/** Parses `request` fed whole; returns the parser after it. */
function parse(request: string | Uint8Array, limits?: RequestHeadLimits): RequestHeadParser {
  const parser = new RequestHeadParser(limits);
  parser.push(typeof request === "string" ? bytes(request) : request);
  return parser;
}

function assertRefused(
  parser: RequestHeadParser,
  status: number,
  pattern?: RegExp,
): HandshakeRefusal {
  assert.equal(parser.head, undefined);
  const refusal = parser.refusal;
  assert.ok(refusal, "expected a refusal");
  assert.equal(refusal.status, status, refusal.message);
  assert.ok(refusal.message.length > 0);
  if (pattern) assert.match(refusal.message, pattern);
  return refusal;
}

const CHROME = "GET /chat?room=1 HTTP/1.1\r\n" +
  "Host: localhost:8080\r\n" +
  "Connection: Upgrade\r\n" +
  "Pragma: no-cache\r\n" +
  "Cache-Control: no-cache\r\n" +
  "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/120.0.0.0\r\n" +
  "Upgrade: websocket\r\n" +
  "Origin: http://localhost:8080\r\n" +
  "Sec-WebSocket-Version: 13\r\n" +
  "Accept-Encoding: gzip, deflate, br\r\n" +
  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" +
  "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n" +
  "\r\n";

const CHROME_HEAD: RequestHead = {
  method: "GET",
  target: "/chat?room=1",
  version: "HTTP/1.1",
  headers: [
    ["host", "localhost:8080"],
    ["connection", "Upgrade"],
    ["pragma", "no-cache"],
    ["cache-control", "no-cache"],
    ["user-agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/120.0.0.0"],
    ["upgrade", "websocket"],
    ["origin", "http://localhost:8080"],
    ["sec-websocket-version", "13"],
    ["accept-encoding", "gzip, deflate, br"],
    ["sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="],
    ["sec-websocket-extensions", "permessage-deflate; client_max_window_bits"],
  ],
};

// RFC 6455 §5.7: a masked text frame "Hello".
const FRAME = Uint8Array.of(0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58);

describe("RequestHeadParser: chunking", () => {
  it("parses a browser request fed whole", () => {
    const parser = new RequestHeadParser();
    assert.equal(parser.push(bytes(CHROME)), 1);
    assert.deepEqual(parser.head, CHROME_HEAD);
    assert.equal(parser.refusal, undefined);
    assert.equal(parser.rest.length, 0);
  });

  it("parses it fed one byte at a time", () => {
    const parser = new RequestHeadParser();
    const data = bytes(CHROME);
    for (let i = 0; i < data.length - 1; i++) {
      assert.equal(parser.push(data.subarray(i, i + 1)), 0, `byte ${i}`);
      assert.equal(parser.head, undefined);
    }
    assert.equal(parser.push(data.subarray(data.length - 1)), 1);
    assert.deepEqual(parser.head, CHROME_HEAD);
    assert.equal(parser.rest.length, 0);
  });

  it("parses it split into two chunks at every offset", () => {
    const data = bytes(CHROME);
    for (let i = 0; i <= data.length; i++) {
      const parser = new RequestHeadParser();
      const first = parser.push(data.slice(0, i));
      if (i === data.length) {
        assert.equal(first, 1);
      } else {
        assert.equal(first, 0, `split at ${i}`);
        assert.equal(parser.push(data.slice(i)), 1, `split at ${i}`);
      }
      assert.deepEqual(parser.head, CHROME_HEAD, `split at ${i}`);
      assert.equal(parser.rest.length, 0);
    }
  });

  it("keeps a pipelined frame in rest, whole and split at every offset", () => {
    const head = bytes(CHROME);
    const data = concat(head, FRAME);
    const whole = parse(data);
    assert.deepEqual(whole.head, CHROME_HEAD);
    assert.deepEqual(whole.rest, FRAME);
    for (let i = 0; i <= data.length; i++) {
      const parser = new RequestHeadParser();
      const first = data.slice(0, i);
      const second = data.slice(i);
      const r1 = parser.push(first);
      let completing = first;
      if (r1 === 0) {
        assert.ok(i < head.length, `split at ${i}`);
        assert.equal(parser.push(second), 1, `split at ${i}`);
        completing = second;
      } else {
        assert.equal(r1, 1);
        assert.ok(i >= head.length, `split at ${i}`);
      }
      assert.deepEqual(parser.head, CHROME_HEAD, `split at ${i}`);
      // rest is what of the frame came in the completing chunk; the caller still holds the rest.
      const expected = i >= head.length ? FRAME.subarray(0, i - head.length) : FRAME;
      assert.deepEqual(parser.rest, expected, `split at ${i}`);
      if (parser.rest.length > 0) assert.equal(parser.rest.buffer, completing.buffer);
    }
  });

  it("leaves rest empty when the frame comes in a later chunk", () => {
    const parser = new RequestHeadParser();
    for (const b of bytes(CHROME)) parser.push(Uint8Array.of(b));
    assert.equal(parser.rest.length, 0);
    assert.ok(parser.head);
  });

  it("ignores empty chunks", () => {
    const parser = new RequestHeadParser();
    assert.equal(parser.push(new Uint8Array(0)), 0);
    assert.equal(parser.push(bytes("GET / HTTP/1.1\r\nHo")), 0);
    assert.equal(parser.push(new Uint8Array(0)), 0);
    assert.equal(parser.push(bytes("st: a\r\n\r\n")), 1);
    assert.deepEqual(parser.head?.headers, [["host", "a"]]);
  });
});

describe("RequestHeadParser: syntax", () => {
  it("accepts bare LF line ends, also mixed with CRLF", () => {
    const parser = parse("GET / HTTP/1.1\nHost: a\r\nX-A: b\n\n");
    assert.deepEqual(parser.head, {
      method: "GET",
      target: "/",
      version: "HTTP/1.1",
      headers: [["host", "a"], ["x-a", "b"]],
    });
    assert.equal(parse("GET / HTTP/1.1\r\nHost: a\n\r\n").head?.headers.length, 1);
  });

  it("ignores empty lines before the request line", () => {
    const parser = parse("\r\n\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n");
    assert.equal(parser.head?.method, "GET");
    assert.deepEqual(parser.head?.headers, [["host", "a"]]);
  });

  it("counts leading empty lines toward maxHeadSize", () => {
    const request = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    assert.ok(parse(request, { maxHeadSize: request.length }).head);
    assertRefused(parse("\r\n" + request, { maxHeadSize: request.length }), 431);
  });

  it("keeps method and target as sent, and accepts HTTP/1.0", () => {
    const head = parse("PATCH /a/b?c=%20d#e HTTP/1.0\r\n\r\n").head;
    assert.deepEqual(head, {
      method: "PATCH",
      target: "/a/b?c=%20d#e",
      version: "HTTP/1.0",
      headers: [],
    });
    assert.equal(parse("OPTIONS * HTTP/1.1\r\n\r\n").head?.target, "*");
  });

  it("lower-cases names, trims OWS around values, keeps inner whitespace and order", () => {
    const head = parse(
      "GET / HTTP/1.1\r\nX-Foo:bar\r\nx-foo: \t baz qux \t \r\nEMPTY:\r\nBlank:   \r\n\r\n",
    ).head;
    assert.deepEqual(head?.headers, [
      ["x-foo", "bar"],
      ["x-foo", "baz qux"],
      ["empty", ""],
      ["blank", ""],
    ]);
  });

  it("reads bytes 0x80–0xFF as latin1", () => {
    const head =
      parse("GET /caf\xe9 HTTP/1.1\r\nX-Name: caf\xe9 \x80\x9f\xff\r\nX-B: b\r\n\r\n").head;
    assert.equal(head?.target, "/caf\xe9");
    assert.deepEqual(head?.headers, [["x-name", "caf\xe9 \x80\x9f\xff"], ["x-b", "b"]]);
    // The same, with the non-ASCII line completing in a later chunk than the others.
    const parser = new RequestHeadParser();
    parser.push(bytes("GET / HTTP/1.1\r\nX-A: a\r\nX-Name: \xe9"));
    parser.push(bytes("\xe8\r\n\r\n"));
    assert.deepEqual(parser.head?.headers, [["x-a", "a"], ["x-name", "\xe9\xe8"]]);
  });

  for (
    const [name, request, pattern] of [
      ["an HTTP/2.0 version", "GET / HTTP/2.0\r\n", /HTTP\/2\.0/],
      ["an HTTP/1.2 version", "GET / HTTP/1.2\r\n", /HTTP\/1\.2/],
      ["a lower-case version", "GET / http/1.1\r\n", /version/],
      ["a missing version", "GET /\r\n", /target|version/],
      ["a space after the version", "GET / HTTP/1.1 \r\n", /version/],
      ["two spaces before the target", "GET  / HTTP/1.1\r\n", /target/],
      ["a space before the method", " GET / HTTP/1.1\r\n", /method/],
      ["a method that is not a token", "GE(T / HTTP/1.1\r\n", /method/],
      ["a control character in the target", "GET /a\x01b HTTP/1.1\r\n", /target/],
      ["a DEL in the target", "GET /a\x7fb HTTP/1.1\r\n", /target/],
      ["a bare CR in the request line", "GET / HTTP/1.1\rX\n", /CR/],
      ["a bare CR as a line", "GET / HTTP/1.1\r\n\rX\r\n", /CR/],
      ["a bare CR in a value", "GET / HTTP/1.1\r\nX: a\rb\r\n\r\n", /CR/],
      ["obs-fold", "GET / HTTP/1.1\r\nX: a\r\n  b\r\n\r\n", /obs-fold/],
      ["obs-fold with HTAB", "GET / HTTP/1.1\r\nX: a\r\n\tb\r\n\r\n", /obs-fold/],
      ["whitespace before the first header", "GET / HTTP/1.1\r\n Host: a\r\n\r\n", /obs-fold/],
      ["a space before the colon", "GET / HTTP/1.1\r\nHost : a\r\n\r\n", /whitespace/],
      ["a tab before the colon", "GET / HTTP/1.1\r\nHost\t: a\r\n\r\n", /whitespace/],
      ["an empty field name", "GET / HTTP/1.1\r\n: a\r\n\r\n", /field name/],
      ["a field name that is not a token", "GET / HTTP/1.1\r\nX@Y: a\r\n\r\n", /token/],
      ["a header line without a colon", "GET / HTTP/1.1\r\nHost\r\n\r\n", /token/],
      ["a NUL in a value", "GET / HTTP/1.1\r\nX: a\x00b\r\n\r\n", /control/],
      ["a DEL in a value", "GET / HTTP/1.1\r\nX: a\x7fb\r\n\r\n", /control/],
      ["a control character in a value", "GET / HTTP/1.1\r\nX: a\x1bb\r\n\r\n", /control/],
    ] as const
  ) {
    it(`refuses ${name} with 400, whole and byte by byte`, () => {
      assertRefused(parse(request), 400, pattern);
      const parser = new RequestHeadParser();
      let result = 0;
      for (const b of bytes(request)) {
        result = parser.push(Uint8Array.of(b));
        if (result !== 0) break;
      }
      assert.equal(result, -1);
      assertRefused(parser, 400, pattern);
    });
  }

  it("allows HTAB inside a value", () => {
    assert.deepEqual(parse("GET / HTTP/1.1\r\nX: a\tb\r\n\r\n").head?.headers, [["x", "a\tb"]]);
  });

  it("throws a TypeError on push after the head is complete or refused", () => {
    const done = parse(CHROME);
    assert.throws(() => done.push(bytes("x")), {
      name: "TypeError",
      message: "Cannot push: the request head is already parsed",
    });
    const refused = parse("GET / HTTP/3\r\n");
    assert.ok(refused.refusal);
    assert.throws(() => refused.push(new Uint8Array(0)), TypeError);
  });

  it("rejects limits that are not positive integers", () => {
    assert.throws(() => new RequestHeadParser({ maxHeadSize: 0 }), RangeError);
    assert.throws(() => new RequestHeadParser({ maxLineLength: 1.5 }), RangeError);
    assert.throws(() => new RequestHeadParser({ maxHeaders: -1 }), RangeError);
    assert.ok(new RequestHeadParser({ maxHeaders: 0 }));
  });
});

describe("RequestHeadParser: limits", () => {
  /** Feeds `data` in chunks of `size`; returns the result and how many bytes were fed. */
  function feed(parser: RequestHeadParser, data: Uint8Array, size: number) {
    for (let offset = 0; offset < data.length; offset += size) {
      const result = parser.push(data.subarray(offset, offset + size));
      if (result !== 0) return { result, fed: Math.min(offset + size, data.length) };
    }
    return { result: 0, fed: data.length };
  }

  it("accepts a head of exactly maxHeadSize bytes and refuses one byte more", () => {
    const base = "GET / HTTP/1.1\r\nHost: a\r\nX: ";
    const fits = base + "y".repeat(100 - base.length - 4) + "\r\n\r\n";
    assert.equal(fits.length, 100);
    for (const size of [1, 7, 100]) {
      assert.equal(feed(new RequestHeadParser({ maxHeadSize: 100 }), bytes(fits), size).result, 1);
      const over = bytes(fits.replace("X: ", "X: y"));
      const parser = new RequestHeadParser({ maxHeadSize: 100 });
      const { result, fed } = feed(parser, over, size);
      assert.equal(result, -1);
      assert.ok(fed <= 100 + size);
      assertRefused(parser, 431, /the head exceeds 100 bytes/);
    }
  });

  it("refuses 100 KiB of headers fed in 1 KiB chunks by about 9 KiB", () => {
    let text = "GET / HTTP/1.1\r\nHost: a\r\n";
    while (text.length < 100 * 1024) text += `X-Filler-${text.length}: ${"v".repeat(180)}\r\n`;
    const parser = new RequestHeadParser();
    const { result, fed } = feed(parser, bytes(text), 1024);
    assert.equal(result, -1);
    assert.ok(fed <= 9 * 1024, `fed ${fed}`);
    assertRefused(parser, 431, /Request header fields too large: the head exceeds 8192 bytes/);
  });

  it("refuses a head that never ends, one byte at a time, at byte maxHeadSize", () => {
    const parser = new RequestHeadParser({ maxHeadSize: 64 });
    const data = bytes("GET / HTTP/1.1\r\n" + "X: y\r\n".repeat(20));
    const { result, fed } = feed(parser, data, 1);
    assert.equal(result, -1);
    // The 64th byte is not the end of the head (that needs an empty line), so it is refused.
    assert.equal(fed, 64);
    assertRefused(parser, 431, /exceeds 64 bytes/);
  });

  it("accepts maxHeaders header lines and refuses one more as soon as it starts", () => {
    const lines = (n: number) => "GET / HTTP/1.1\r\n" + "X: y\r\n".repeat(n);
    const ok = parse(lines(100) + "\r\n");
    assert.equal(ok.head?.headers.length, 100);
    assertRefused(parse(lines(101) + "\r\n"), 431, /more than 100 header lines/);
    // Byte by byte: refused at the first byte of the 101st line.
    const parser = new RequestHeadParser();
    const { result, fed } = feed(parser, bytes(lines(101)), 1);
    assert.equal(result, -1);
    assert.equal(fed, lines(100).length + 1);
    assertRefused(parse(lines(3) + "\r\n", { maxHeaders: 2 }), 431, /more than 2 header lines/);
    assert.deepEqual(parse("GET / HTTP/1.1\r\n\r\n", { maxHeaders: 0 }).head?.headers, []);
  });

  it("refuses a request line over maxLineLength with 414, at its boundary", () => {
    const line = (targetLength: number) => `GET /${"a".repeat(targetLength - 1)} HTTP/1.1`;
    const max = 4096;
    const exact = line(max - 13);
    assert.equal(exact.length, max);
    for (const end of ["\r\n", "\n"]) {
      assert.ok(parse(exact + end + "\r\n").head);
      assertRefused(parse(line(max - 12) + end + "\r\n"), 414, /request line exceeds 4096/);
    }
    // Byte by byte: refused by the byte that makes the line certainly too long.
    for (const size of [1, 5]) {
      const parser = new RequestHeadParser({ maxLineLength: 20 });
      const { result, fed } = feed(parser, bytes(line(100) + "\r\n\r\n"), size);
      assert.equal(result, -1);
      assert.ok(fed >= 21 && fed <= 21 + size - 1 + 1, `fed ${fed}`);
      assertRefused(parser, 414, /URI too long: the request line exceeds 20 bytes/);
    }
    // A CR right at the limit may still be the line end.
    const twenty = "GET /aaaaaa HTTP/1.1";
    assert.equal(twenty.length, 20);
    const parser = new RequestHeadParser({ maxLineLength: 20 });
    assert.equal(feed(parser, bytes(twenty + "\r\n\r\n"), 1).result, 1);
  });

  it("refuses a long request line fed in 1 KiB chunks before it ends", () => {
    const parser = new RequestHeadParser();
    const data = bytes(`GET /${"a".repeat(100 * 1024)} HTTP/1.1\r\n\r\n`);
    const { result, fed } = feed(parser, data, 1024);
    assert.equal(result, -1);
    assert.ok(fed <= 5 * 1024, `fed ${fed}`);
    assertRefused(parser, 414);
  });

  it("refuses a header line over maxLineLength with 431", () => {
    const header = (length: number) => `X: ${"v".repeat(length - 3)}`;
    assert.equal(header(4096).length, 4096);
    assert.ok(parse(`GET / HTTP/1.1\r\n${header(4096)}\r\n\r\n`).head);
    assertRefused(
      parse(`GET / HTTP/1.1\r\n${header(4097)}\r\n\r\n`),
      431,
      /Request header fields too large: a header line exceeds 4096 bytes/,
    );
    const parser = new RequestHeadParser({ maxHeadSize: 1 << 20 });
    const { result, fed } = feed(parser, bytes(`GET / HTTP/1.1\r\n${header(50000)}`), 1024);
    assert.equal(result, -1);
    assert.ok(fed <= 5 * 1024, `fed ${fed}`);
    assertRefused(parser, 431, /header line exceeds/);
  });
});

describe("RequestHeadParser: properties", () => {
  it("never throws on random bytes in random chunks, and returns only -1, 0 or 1", () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 2048 }),
        fc.array(fc.nat({ max: 300 }), { minLength: 1, maxLength: 20 }),
        fc.record({
          maxHeadSize: fc.integer({ min: 1, max: 3000 }),
          maxHeaders: fc.integer({ min: 0, max: 20 }),
          maxLineLength: fc.integer({ min: 1, max: 500 }),
        }),
        (data, sizes, limits) => {
          const parser = new RequestHeadParser(limits);
          let offset = 0;
          for (let k = 0; offset < data.length; k++) {
            const size = sizes[k % sizes.length] || 1;
            const result = parser.push(data.subarray(offset, offset + size));
            offset += size;
            assert.ok(result === -1 || result === 0 || result === 1);
            if (result === 1) assert.ok(parser.head && !parser.refusal);
            if (result === -1) assert.ok(parser.refusal && !parser.head);
            if (result !== 0) break;
          }
        },
      ),
      { numRuns: 500 },
    );
  });

  it("parses random valid requests the same whole and in random chunks", () => {
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
    const request = fc.record({
      headers: fc.array(fc.tuple(name, value), { maxLength: 15 }),
      eol: fc.constantFrom("\r\n", "\n"),
      ows: fc.constantFrom("", " ", "\t "),
      tail: fc.uint8Array({ maxLength: 10 }),
    });
    fc.assert(
      fc.property(request, fc.array(fc.nat({ max: 40 }), { minLength: 1 }), (r, sizes) => {
        const text = `GET /x HTTP/1.1${r.eol}` +
          r.headers.map(([n, v]) => `${n}:${r.ows}${v}${r.ows}${r.eol}`).join("") + r.eol;
        const data = concat(bytes(text), r.tail);
        const expected: RequestHead = {
          method: "GET",
          target: "/x",
          version: "HTTP/1.1",
          headers: r.headers.map(([n, v]) => [n.toLowerCase(), v]),
        };
        const whole = parse(data);
        assert.deepEqual(whole.head, expected);
        assert.deepEqual(whole.rest, r.tail);
        const parser = new RequestHeadParser();
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

describe("validateUpgradeRequest", () => {
  const HEADERS: Array<[string, string]> = [
    ["Host", "example.com"],
    ["Upgrade", "websocket"],
    ["Connection", "Upgrade"],
    ["Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="],
    ["Sec-WebSocket-Version", "13"],
  ];

  /** Parses a request with `HEADERS` changed: `null` drops a header, extra ones are added. */
  function request(
    changes: Record<string, string | string[] | null> = {},
    line = "GET /chat HTTP/1.1",
  ): UpgradeRequestInfo | HandshakeRefusal {
    let text = `${line}\r\n`;
    for (const [name, value] of HEADERS) {
      if (!(name in changes)) text += `${name}: ${value}\r\n`;
    }
    for (const [name, value] of Object.entries(changes)) {
      if (value === null) continue;
      for (const v of Array.isArray(value) ? value : [value]) text += `${name}: ${v}\r\n`;
    }
    const head = parse(text + "\r\n").head;
    assert.ok(head);
    return validateUpgradeRequest(head);
  }

  function refused(
    result: UpgradeRequestInfo | HandshakeRefusal,
    status: number,
    headers: Array<[string, string]> = [],
    pattern?: RegExp,
  ): void {
    assert.ok(isRefusal(result), "expected a refusal");
    assert.equal(result.status, status, result.message);
    assert.deepEqual(result.headers, headers);
    assert.ok(result.message.length > 0);
    if (pattern) assert.match(result.message, pattern);
  }

  it("accepts a browser request", () => {
    const result = validateUpgradeRequest(parse(CHROME).head!);
    assert.ok(!isRefusal(result));
    assert.deepEqual(result, {
      key: "dGhlIHNhbXBsZSBub25jZQ==",
      host: "localhost:8080",
      origin: "http://localhost:8080",
      protocols: [],
      extensions: "permessage-deflate; client_max_window_bits",
    });
  });

  it("reads lists, case and several headers as RFC 9110 §5.6.1 and §5.3 allow", () => {
    const result = request({
      Upgrade: ["h2c", " WebSocket , foo/1"],
      Connection: ["keep-alive", "foo,  UPGRADE\t"],
      "Sec-WebSocket-Protocol": ["chat, superchat", "v2.json"],
      "Sec-WebSocket-Extensions": ["permessage-deflate", "x-foo; a=1"],
    });
    assert.ok(!isRefusal(result), isRefusal(result) ? result.message : "");
    assert.deepEqual(result.protocols, ["chat", "superchat", "v2.json"]);
    assert.equal(result.extensions, "permessage-deflate, x-foo; a=1");
    assert.equal(result.origin, undefined);
  });

  it("refuses a method other than GET with 405 and Allow: GET", () => {
    refused(request({}, "POST /chat HTTP/1.1"), 405, [["Allow", "GET"]]);
    refused(request({}, "get /chat HTTP/1.1"), 405, [["Allow", "GET"]]);
  });

  it("refuses HTTP/1.0 with 400", () => {
    refused(request({}, "GET /chat HTTP/1.0"), 400, [], /HTTP\/1\.1 or later is required/);
  });

  it("refuses a missing or repeated Host with 400", () => {
    refused(request({ Host: null }), 400, [], /Host/);
    refused(request({ Host: ["a", "b"] }), 400, [], /Host/);
  });

  it("refuses a plain HTTP request with 426 and the upgrade headers", () => {
    refused(request({ Upgrade: null, Connection: null }), 426, [
      ["Upgrade", "websocket"],
      ["Sec-WebSocket-Version", "13"],
    ], /This service requires a WebSocket upgrade/);
  });

  it("refuses an Upgrade without websocket with 400", () => {
    refused(request({ Upgrade: "h2c" }), 400, [], /Upgrade/);
    refused(request({ Upgrade: "websocket2, web socket" }), 400, [], /Upgrade/);
    refused(request({ Upgrade: "" }), 400, [], /Upgrade/);
  });

  it("refuses a Connection without upgrade with 400", () => {
    refused(request({ Connection: null }), 400, [], /Connection/);
    refused(request({ Connection: "keep-alive" }), 400, [], /Connection/);
    refused(request({ Connection: "upgraded, keep-alive" }), 400, [], /Connection/);
  });

  it("refuses a missing or other Sec-WebSocket-Version with 426", () => {
    const headers: Array<[string, string]> = [["Sec-WebSocket-Version", "13"]];
    refused(request({ "Sec-WebSocket-Version": null }), 426, headers, /missing/);
    for (const version of ["8", "14", "13, 8", "013", ""]) {
      refused(request({ "Sec-WebSocket-Version": version }), 426, headers, /13/);
    }
    refused(request({ "Sec-WebSocket-Version": ["13", "13"] }), 426, headers);
  });

  it("refuses a missing, repeated or malformed Sec-WebSocket-Key with 400", () => {
    refused(request({ "Sec-WebSocket-Key": null }), 400, [], /missing/);
    refused(
      request({ "Sec-WebSocket-Key": ["dGhlIHNhbXBsZSBub25jZQ==", "dGhlIHNhbXBsZSBub25jZQ=="] }),
      400,
      [],
      /more than one/,
    );
    for (
      const key of [
        "dGhlIHNhbXBsZSBub25jZQ=", // 23 characters
        "dGhlIHNhbXBsZSBub25jZQ", // no padding
        "dGhlIHNhbXBsZSBub25jZSE=", // 17 bytes
        "dGhlIHNhbXBsZSBub25j====", // 15 bytes
        "dGhlIHNhbXBsZSBub25jZ!==", // not base64
        "dGhlIHNhbXBsZSBub25jZQ==dGhl",
        "",
      ]
    ) {
      refused(request({ "Sec-WebSocket-Key": key }), 400, [], /Sec-WebSocket-Key/);
    }
    assert.ok(!isRefusal(request({ "Sec-WebSocket-Key": "AAAAAAAAAAAAAAAAAAAA+/==" })));
  });

  it("refuses an empty, non-token or repeated subprotocol with 400", () => {
    for (
      const protocols of [
        "",
        "chat,",
        "chat, , x",
        "a b",
        "chat\xe9",
        "a/b",
        "chat, chat",
        ["chat", "x, chat"],
      ]
    ) {
      refused(request({ "Sec-WebSocket-Protocol": protocols }), 400, [], /Sec-WebSocket-Protocol/);
    }
    const distinct = request({ "Sec-WebSocket-Protocol": "chat, Chat" });
    assert.ok(!isRefusal(distinct));
    assert.deepEqual(distinct.protocols, ["chat", "Chat"]);
  });

  it("passes Origin through, and refuses more than one", () => {
    const result = request({ Origin: "https://example.com" });
    assert.ok(!isRefusal(result));
    assert.equal(result.origin, "https://example.com");
    refused(request({ Origin: ["https://a", "https://b"] }), 400, [], /Origin/);
  });

  it("tells results apart with isRefusal", () => {
    assert.equal(isRefusal({ status: 400, message: "x", headers: [] }), true);
    assert.equal(
      isRefusal({ key: "k", host: "h", origin: undefined, protocols: [], extensions: "" }),
      false,
    );
  });
});

describe("responses", () => {
  it("computes the RFC 6455 §1.3 sample accept key", () => {
    assert.equal(acceptKey("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
  });

  it("writes the 101 response", () => {
    assert.equal(
      latin1(acceptResponse("dGhlIHNhbXBsZSBub25jZQ==")),
      "HTTP/1.1 101 Switching Protocols\r\n" +
        "Upgrade: websocket\r\n" +
        "Connection: Upgrade\r\n" +
        "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n" +
        "\r\n",
    );
  });

  it("writes the 101 response with a subprotocol, extensions and extra headers", () => {
    const expected = "HTTP/1.1 101 Switching Protocols\r\n" +
      "Upgrade: websocket\r\n" +
      "Connection: Upgrade\r\n" +
      "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n" +
      "Sec-WebSocket-Protocol: chat\r\n" +
      "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover\r\n" +
      "X-Id: 1\r\n" +
      "Set-Cookie: a=caf\xe9\r\n" +
      "\r\n";
    const options = {
      protocol: "chat",
      extensions: "permessage-deflate; server_no_context_takeover",
    };
    const asArray = acceptResponse("dGhlIHNhbXBsZSBub25jZQ==", {
      ...options,
      headers: [["X-Id", "1"], ["Set-Cookie", "a=caf\xe9"]],
    });
    assert.equal(latin1(asArray), expected);
    assert.equal(asArray.length, expected.length);
    const asRecord = acceptResponse("dGhlIHNhbXBsZSBub25jZQ==", {
      ...options,
      headers: { "X-Id": "1", "Set-Cookie": "a=caf\xe9" },
    });
    assert.deepEqual(asRecord, asArray);
  });

  it("throws a TypeError for a bad extra header", () => {
    const key = "dGhlIHNhbXBsZSBub25jZQ==";
    for (
      const headers of [
        [["X-A", "a\r\nX-Evil: 1"]],
        [["X-A", "a\nb"]],
        [["X-A", "a\rb"]],
        [["X-A", "a\0b"]],
        [["X-A", "\u0100"]],
        [["X A", "a"]],
        [["X:A", "a"]],
        [["", "a"]],
        [["X-\xe9", "a"]],
      ] as Array<Array<[string, string]>>
    ) {
      assert.throws(() => acceptResponse(key, { headers }), TypeError, JSON.stringify(headers));
      assert.throws(
        () => refusalResponse({ status: 400, message: "m", headers }),
        TypeError,
        JSON.stringify(headers),
      );
    }
    assert.throws(() => acceptResponse(key, { protocol: "a\r\nb" }), TypeError);
    assert.throws(() => acceptResponse(key, { extensions: "a\nb" }), TypeError);
    assert.throws(() => acceptResponse(key, { headers: { "X\r\n": "a" } }), TypeError);
  });

  it("takes extra headers as a Headers too (lower-cased, sorted, as Headers keeps them)", () => {
    const key = "dGhlIHNhbXBsZSBub25jZQ==";
    const text = latin1(acceptResponse(key, { headers: new Headers({ "X-B": "2", "X-A": "1" }) }));
    assert.ok(
      text.endsWith(
        "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nx-a: 1\r\nx-b: 2\r\n\r\n",
      ),
    );
  });

  it("refuses extra headers that set what the handshake sets, in any case and any form", () => {
    const key = "dGhlIHNhbXBsZSBub25jZQ==";
    const names = [
      "Upgrade",
      "Connection",
      "Sec-WebSocket-Accept",
      "SEC-WEBSOCKET-PROTOCOL",
      "sec-websocket-extensions",
      "Content-Length",
      "Transfer-Encoding",
    ];
    assert.deepEqual([...HANDSHAKE_HEADERS].sort(), names.map((name) => name.toLowerCase()).sort());
    for (const name of names) {
      const hint = name.toLowerCase() === "sec-websocket-protocol"
        ? " (to choose a subprotocol, accept with { protocol })"
        : "";
      for (
        const headers of [{ [name]: "x" }, [["X-Ok", "1"], [name, "x"]] as Array<[string, string]>]
      ) {
        assert.throws(() => acceptResponse(key, { headers }), {
          name: "TypeError",
          message: `Cannot write the response: the handshake sets ${name} itself${hint}`,
        });
      }
      assert.throws(() => acceptResponse(key, { headers: new Headers({ [name]: "x" }) }), {
        name: "TypeError",
        message:
          `Cannot write the response: the handshake sets ${name.toLowerCase()} itself${hint}`,
      });
    }
  });

  it("headerPairs: pairs from each form of headers; a TypeError for anything else", () => {
    assert.deepEqual(headerPairs([["X-A", "1"], ["X-A", "2"]]), [["X-A", "1"], ["X-A", "2"]]);
    assert.deepEqual(headerPairs({ "X-A": "1", "X-B": "2" }), [["X-A", "1"], ["X-B", "2"]]);
    assert.deepEqual(headerPairs(Object.assign(Object.create(null), { "X-A": "1" })), [[
      "X-A",
      "1",
    ]]);
    assert.deepEqual(headerPairs(new Headers([["X-B", "2"], ["X-A", "1"]])), [["x-a", "1"], [
      "x-b",
      "2",
    ]]);
    const expected =
      "Cannot write the response: headers must be a Headers, an array of [name, value] " +
      "pairs or a record of strings";
    for (
      const [init, why] of [
        ["X-A: 1", ', got the string "X-A: 1"'],
        [42, ", got 42"],
        [null, ", got null"],
        [new Map(), ", got a Map"],
        [[["X-A"]], "; item 0 is not a pair of strings"],
        [[["X-A", "1", "2"]], "; item 0 is not a pair of strings"],
        [["X-A", "1"], "; item 0 is not a pair of strings"],
        [[["X-A", 1]], "; item 0 is not a pair of strings"],
        [{ "X-A": 1 }, '; the value of "X-A" is a number'],
      ] as Array<[unknown, string]>
    ) {
      assert.throws(() => headerPairs(init as Record<string, string>), {
        name: "TypeError",
        message: expected + why,
      });
    }
  });

  it("writes a refusal with headers and a UTF-8 body", () => {
    const message = "Upgrade nötig ✓";
    const body = new TextEncoder().encode(message);
    assert.equal(body.length, 18);
    const out = refusalResponse({
      status: 426,
      message,
      headers: [["Sec-WebSocket-Version", "13"]],
    });
    const head = "HTTP/1.1 426 Upgrade Required\r\n" +
      "Connection: close\r\n" +
      "Content-Length: 18\r\n" +
      "Content-Type: text/plain; charset=utf-8\r\n" +
      "Sec-WebSocket-Version: 13\r\n" +
      "\r\n";
    assert.deepEqual(out, concat(bytes(head), body));
  });

  it("writes every refusal the parser and validator make", () => {
    const refusals: HandshakeRefusal[] = [
      parse("GET / HTTP/2.0\r\n").refusal!,
      parse(`GET /${"a".repeat(5000)} HTTP/1.1\r\n`).refusal!,
      parse(`GET / HTTP/1.1\r\n${"X: y\r\n".repeat(101)}`).refusal!,
      validateUpgradeRequest({ method: "PUT", target: "/", version: "HTTP/1.1", headers: [] }),
    ] as HandshakeRefusal[];
    const lines = [
      "HTTP/1.1 400 Bad Request",
      "HTTP/1.1 414 URI Too Long",
      "HTTP/1.1 431 Request Header Fields Too Large",
      "HTTP/1.1 405 Method Not Allowed",
    ];
    refusals.forEach((refusal, i) => {
      const text = new TextDecoder().decode(refusalResponse(refusal));
      const [head, body] = text.split("\r\n\r\n");
      assert.equal(head.split("\r\n")[0], lines[i]);
      assert.equal(body, refusal.message);
      assert.match(
        head,
        new RegExp(`\r\nContent-Length: ${new TextEncoder().encode(body).length}`),
      );
    });
  });

  it("writes any response with httpResponse: no Content-Type unless given", () => {
    const out = httpResponse(401, [["WWW-Authenticate", "Bearer"]], bytes("no"));
    assert.equal(
      latin1(out),
      "HTTP/1.1 401 Unauthorized\r\nConnection: close\r\nContent-Length: 2\r\n" +
        "WWW-Authenticate: Bearer\r\n\r\nno",
    );
    assert.throws(() => httpResponse(600, [], new Uint8Array(0)), RangeError);
    assert.throws(() => httpResponse(400, [["Bad Name", "x"]], new Uint8Array(0)), TypeError);
  });

  it("writes no Content-Length and no body for 1xx, 204 and 304 (RFC 9110 §8.6)", () => {
    assert.equal(
      latin1(httpResponse(204, [["X-A", "1"]], new Uint8Array(0))),
      "HTTP/1.1 204 No Content\r\nConnection: close\r\nX-A: 1\r\n\r\n",
    );
    assert.equal(
      latin1(httpResponse(103, [], new Uint8Array(0))),
      "HTTP/1.1 103 \r\nConnection: close\r\n\r\n",
    );
    assert.throws(() => httpResponse(204, [], bytes("x")), {
      name: "TypeError",
      message: "Cannot write the response: a 204 response has no body",
    });
    assert.equal(
      latin1(httpResponse(304, [["ETag", '"x"']], new Uint8Array(0))),
      'HTTP/1.1 304 Not Modified\r\nConnection: close\r\nETag: "x"\r\n\r\n',
    );
    // 205 keeps it: a zero length says there is no content.
    assert.match(latin1(httpResponse(205, [], new Uint8Array(0))), /\r\nContent-Length: 0\r\n/);
  });

  it("writes an empty reason phrase for an unknown status, and refuses a non-status", () => {
    const text = latin1(refusalResponse({ status: 499, message: "", headers: [] }));
    assert.ok(text.startsWith("HTTP/1.1 499 \r\n"));
    assert.ok(
      text.endsWith("Content-Length: 0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"),
    );
    assert.throws(() => refusalResponse({ status: 99, message: "", headers: [] }), RangeError);
    assert.throws(() => refusalResponse({ status: 400.5, message: "", headers: [] }), RangeError);
  });
});
