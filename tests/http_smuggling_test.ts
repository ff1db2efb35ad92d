/**
 * End to end: request smuggling. Each classic way to make two HTTP implementations disagree on
 * where a request ends gets 400 (501 for a coding the server does not know), the connection
 * closes after it, and the request hidden behind it never reaches `fetch`.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { Queue, withServer } from "./_harness.ts";
import { HttpClient } from "./_http_client.ts";

/** What a request smuggled behind the attack would ask for. */
const HIDDEN = "GET /admin HTTP/1.1\r\nHost: x\r\n\r\n";

/** Heads whose framing is refused before `fetch` runs: [what, request, status, message]. */
const HEAD_ATTACKS: Array<[string, string, number, string]> = [
  [
    "Content-Length and Transfer-Encoding (CL.TE / TE.CL)",
    "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    400,
    "Bad request: both Content-Length and Transfer-Encoding",
  ],
  [
    "conflicting Content-Length",
    "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nContent-Length: 34\r\n\r\n",
    400,
    "Bad request: more than one Content-Length",
  ],
  [
    "repeated equal Content-Length",
    "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nContent-Length: 0\r\n\r\n",
    400,
    "Bad request: more than one Content-Length",
  ],
  [
    "a Content-Length list",
    "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0, 0\r\n\r\n",
    400,
    "Bad request: invalid Content-Length",
  ],
  [
    "a signed Content-Length",
    "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +0\r\n\r\n",
    400,
    "Bad request: invalid Content-Length",
  ],
  [
    "a hex Content-Length",
    "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0x0\r\n\r\n",
    400,
    "Bad request: invalid Content-Length",
  ],
  [
    "Transfer-Encoding: chunked, identity",
    "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
    400,
    "Bad request: the last transfer coding is not chunked",
  ],
  [
    "Transfer-Encoding: xchunked",
    "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n",
    400,
    "Bad request: the last transfer coding is not chunked",
  ],
  [
    "chunked not last, over two lines",
    "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n",
    400,
    "Bad request: the last transfer coding is not chunked",
  ],
  [
    "chunked twice",
    "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n",
    400,
    "Bad request: chunked is applied more than once",
  ],
  [
    "a coding before chunked",
    "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
    501,
    'Not implemented: the transfer coding "gzip" is not supported',
  ],
  [
    "Transfer-Encoding in HTTP/1.0",
    "POST / HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    400,
    "Bad request: Transfer-Encoding in an HTTP/1.0 request",
  ],
  [
    "obsolete line folding",
    "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n",
    400,
    "Bad request: obsolete line folding (obs-fold) in a header",
  ],
  [
    "whitespace before the colon",
    "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n",
    400,
    "Bad request: whitespace between a header field name and its colon",
  ],
  [
    "a bare LF in the head",
    "POST / HTTP/1.1\r\nHost: x\r\nX: a\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    400,
    "Bad request: an LF not preceded by CR",
  ],
  [
    "a bare CR in the head",
    "POST / HTTP/1.1\r\nHost: x\r\nX: a\rTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    400,
    "Bad request: a CR not followed by LF",
  ],
];

/** Chunked bodies whose framing breaks after `fetch` got the request: [what, body, message]. */
const BODY_ATTACKS: Array<[string, string, string]> = [
  ["a non-hex chunk size", "g\r\n", "Bad request: a chunk-size that is not hex digits"],
  ["a 0x prefix", "0x5\r\nhello\r\n0\r\n\r\n", "Bad request: a chunk-size that is not hex digits"],
  ["a negative chunk size", "-5\r\n", "Bad request: a chunk-size that is not hex digits"],
  [
    "a space before the size",
    " 5\r\nhello\r\n",
    "Bad request: a chunk-size that is not hex digits",
  ],
  [
    "a space after the size",
    "5 \r\nhello\r\n",
    "Bad request: whitespace after a chunk-size or extension",
  ],
  ["an overflowing size", "fffffffffffffffff\r\n", "Bad request: a chunk-size too large"],
  ["an empty size line", "\r\n", "Bad request: a chunk-size that is not hex digits"],
  ["a bare LF after the size", "5\nhello\r\n", "Bad request: an LF not preceded by CR"],
  ["a bare CR after the size", "5\rhello\r\n", "Bad request: a CR not followed by LF"],
  ["data longer than its size", "5\r\nhello!\r\n", "Bad request: chunk data not followed by CRLF"],
  [
    "a bare LF after the data",
    "5\r\nhello\n0\r\n\r\n",
    "Bad request: chunk data not followed by CRLF",
  ],
  [
    "a malformed extension",
    '5;a="b\r\nhello\r\n',
    "Bad request: a control character in a chunk extension",
  ],
  [
    "obs-fold in a trailer",
    "0\r\nX: 1\r\n folded\r\n\r\n",
    "Bad request: obsolete line folding (obs-fold) in a trailer field",
  ],
  [
    "whitespace before a trailer's colon",
    "0\r\nX : 1\r\n\r\n",
    "Bad request: whitespace between a trailer field name and its colon",
  ],
  ["a bare LF ending the body", "0\r\n\n", "Bad request: an LF not preceded by CR"],
];

test("smuggling: each attack in the head gets its refusal, the connection closes, the hidden request is never served", async () => {
  const seen = new Queue<string>();
  await withServer({
    fetch(request) {
      seen.push(new URL(request.url).pathname);
      return new Response("ok");
    },
  }, async ({ port, server }) => {
    for (const [what, attack, status, message] of HEAD_ATTACKS) {
      const client = await HttpClient.connect(port);
      try {
        await client.write(attack + HIDDEN);
        const response = await client.response();
        assert.deepEqual(
          [response.status, response.body, response.headers.get("connection")],
          [status, message, "close"],
          what,
        );
        // Nothing more: the hidden request is not answered.
        assert.equal(await client.rest(), "", what);
      } finally {
        client.destroy();
        await client.closed;
      }
    }
    assert.deepEqual(seen.items, [], "fetch saw none of them");
    // A head that does not parse cannot be told from a broken upgrade request: counted there.
    const stats = server.stats();
    assert.equal(stats.httpRequests, HEAD_ATTACKS.length - 3);
    assert.deepEqual(stats.refused, { "400": 3 });
  });
});

test("smuggling: each broken chunked body gets 400, the handler's read fails, the hidden request is never served", async () => {
  const seen = new Queue<string>();
  const failures = new Queue<string>();
  const errors = new Queue<unknown>();
  await withServer({
    async fetch(request) {
      seen.push(new URL(request.url).pathname);
      try {
        await request.text();
      } catch (error) {
        failures.push((error as Error).message);
        throw error;
      }
      return new Response("ok");
    },
    error: (error) => errors.push(error),
  }, async ({ port }) => {
    for (const [what, body, message] of BODY_ATTACKS) {
      const client = await HttpClient.connect(port);
      try {
        await client.write(
          "POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + body + HIDDEN,
        );
        const response = await client.response();
        assert.deepEqual(
          [response.status, response.body, response.headers.get("connection")],
          [400, message, "close"],
          what,
        );
        assert.equal(await client.rest(), "", what);
        assert.equal(
          await failures.next(`the handler's read (${what})`),
          `Cannot read the request body: ${message}`,
        );
      } finally {
        client.destroy();
        await client.closed;
      }
    }
    assert.deepEqual(
      seen.items,
      BODY_ATTACKS.map(() => "/upload"),
      "never /admin",
    );
    assert.deepEqual(errors.items, [], "the client's doing is not an application error");
  });
});
