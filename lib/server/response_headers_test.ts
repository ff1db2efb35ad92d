import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { readResponse, responseHeaders } from "./response_headers.ts";

const bytes = (text: string) => new TextEncoder().encode(text);

describe("responseHeaders", () => {
  it("drops the headers the server owns and sorts the rest, Set-Cookie in place", () => {
    const headers = new Headers();
    headers.append("X-B", "1");
    headers.append("Set-Cookie", "a=1");
    headers.append("set-cookie", "b=2");
    headers.append("Content-Length", "99");
    headers.append("Connection", "keep-alive");
    headers.append("Transfer-Encoding", "chunked");
    headers.append("x-a", "2");
    headers.append("Content-Type", "text/html");
    assert.deepEqual(responseHeaders(headers, "text/html", bytes("<p>")), [
      ["content-type", "text/html"],
      ["set-cookie", "a=1"],
      ["set-cookie", "b=2"],
      ["x-a", "2"],
      ["x-b", "1"],
    ]);
  });

  it("keeps a Content-Type the headers have, whatever the body's type", () => {
    const headers = new Headers({ "Content-Type": "application/octet-stream" });
    assert.deepEqual(responseHeaders(headers, "text/plain;charset=utf-8", bytes("hi")), [
      ["content-type", "application/octet-stream"],
    ]);
  });

  it("adds none when the runtime reports no type for the body (bytes, a stream, no body)", () => {
    assert.deepEqual(responseHeaders(new Headers(), "", bytes("hi")), []);
    assert.deepEqual(responseHeaders(new Headers(), "", new Uint8Array([1])), []);
  });

  it("adds a string body's type for text the runtime typed but left out of the headers", () => {
    const type = "text/plain;charset=utf-8";
    for (const text of ["hi", "tab\tLF\nCR\rFF\fESC\x1b", "héllo ✓", " ".repeat(5000)]) {
      assert.deepEqual(
        responseHeaders(new Headers([["X-A", "1"]]), type, bytes(text)),
        [["content-type", "text/plain;charset=UTF-8"], ["x-a", "1"]],
        JSON.stringify(text),
      );
    }
  });

  it("adds none for bytes that are not text: a binary data byte early on, or invalid UTF-8", () => {
    const type = "text/plain;charset=utf-8";
    for (const byte of [0x00, 0x01, 0x08, 0x0b, 0x0e, 0x1a, 0x1c, 0x1f]) {
      assert.deepEqual(responseHeaders(new Headers(), type, new Uint8Array([0x61, byte])), []);
    }
    assert.deepEqual(responseHeaders(new Headers(), type, new Uint8Array([0xc3])), []);
    assert.deepEqual(responseHeaders(new Headers(), type, new Uint8Array([0xff, 0xfe])), []);
    // Past the first 1445 bytes only validity counts (the MIME Sniffing standard reads no more).
    const late = new Uint8Array(1446).fill(0x61);
    late[1445] = 0x01;
    assert.deepEqual(responseHeaders(new Headers(), type, late), [
      ["content-type", "text/plain;charset=UTF-8"],
    ]);
    late[1444] = 0x01;
    assert.deepEqual(responseHeaders(new Headers(), type, late), []);
  });

  it("gives the same headers on every runtime for a string, bytes and no body", async () => {
    const cases: Array<[Response, Array<[string, string]>]> = [
      [new Response("hi"), [["content-type", "text/plain;charset=UTF-8"]]],
      [new Response(new Uint8Array([1])), []],
      [new Response(null, { status: 204 }), []],
      [
        new Response("no", { status: 401, headers: { "X-A": "1", "Set-Cookie": "s=1" } }),
        [["content-type", "text/plain;charset=UTF-8"], ["set-cookie", "s=1"], ["x-a", "1"]],
      ],
    ];
    for (const [response, expected] of cases) {
      const { body, type } = await readResponse(response);
      assert.deepEqual(responseHeaders(response.headers, type, body), expected);
    }
  });
});

describe("readResponse", () => {
  it("reads the body whole, a stream's too", async () => {
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(bytes("ab"));
        controller.enqueue(bytes("c"));
        controller.close();
      },
    });
    const { body, type } = await readResponse(new Response(stream));
    assert.deepEqual(body, bytes("abc"));
    assert.equal(type, "");
    assert.deepEqual((await readResponse(new Response(null))).body, new Uint8Array(0));
  });
});
