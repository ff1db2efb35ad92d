/**
 * End to end: the client's sans-I/O pieces against sluice's own server over real sockets. A
 * raw TCP connection writes `ClientHandshake.request`, feeds the server's bytes to
 * `ClientHandshake.receive`, then speaks permessage-deflate in the client role with the
 * agreement it read (`PerMessageDeflate` with local/remote parameters) and frames masked with
 * keys from `MaskKeySource`.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { HandshakeError } from "../lib/protocol/errors.ts";
import { PerMessageDeflate } from "../lib/protocol/extensions/permessage_deflate.ts";
import { zlibEngine } from "../lib/protocol/extensions/zlib_engine.ts";
import type { DeflateNegotiationOptions } from "../lib/protocol/extensions/deflate_negotiation.ts";
import { headerSize, writeHeader, writePayload } from "../lib/protocol/frame_writer.ts";
import { MaskKeySource } from "../lib/protocol/mask_keys.ts";
import { ClientHandshake, type ClientHandshakeOptions } from "../lib/protocol/upgrade.ts";
import type { PerMessageDeflateOptions } from "../mod.ts";
import { Op, parseClose, type RawClient } from "./_client.ts";
import { type Harness, withServer } from "./_harness.ts";

const RSV1 = 4;
const keys = new MaskKeySource();

/**
 * Runs the client's handshake on a fresh connection; resolves once it is over. `later` gets
 * the bytes that arrive after a failed handshake (the rest of a refusal's body).
 */
async function handshake(
  harness: Harness<undefined>,
  options?: ClientHandshakeOptions,
): Promise<{ client: RawClient; handshake: ClientHandshake; later: Uint8Array[] }> {
  const client = await harness.connect();
  const hs = new ClientHandshake(`ws://127.0.0.1:${harness.port}/echo`, options);
  const later: Uint8Array[] = [];
  const done = new Promise<void>((resolve) => {
    const onData = (chunk: Uint8Array) => {
      if (hs.error !== undefined) {
        later.push(chunk);
      } else if (hs.receive(chunk) !== 0) {
        if (hs.result !== undefined) client.socket.off("data", onData);
        resolve();
      }
    };
    client.socket.on("data", onData);
    client.socket.once("close", () => {
      if (hs.result === undefined && hs.error === undefined) hs.end();
      resolve();
    });
  });
  await client.write(hs.request);
  await done;
  return { client, handshake: hs, later };
}

/** A refusal's whole body: what came with its head, then what came after, to the close. */
async function body(
  opened: { client: RawClient; handshake: ClientHandshake; later: Uint8Array[] },
): Promise<string> {
  await opened.client.waitClosed();
  return decoder.decode(
    new Uint8Array([...opened.handshake.error!.body, ...opened.later.flatMap((c) => [...c])]),
  );
}

/** A whole masked frame, as a client writes it. */
function maskedFrame(opcode: number, payload: Uint8Array, rsv1: boolean): Uint8Array {
  const key = keys.next();
  const frame = new Uint8Array(headerSize(payload.length, true) + payload.length);
  writePayload(frame, writeHeader(frame, 0, opcode, payload.length, true, rsv1, key), payload, key);
  return frame;
}

function compress(deflate: PerMessageDeflate, data: Uint8Array): Promise<Uint8Array> {
  return new Promise((resolve, reject) =>
    deflate.compressor.compress(data, (r) => r instanceof Error ? reject(r) : resolve(r))
  );
}

function inflate(deflate: PerMessageDeflate, data: Uint8Array): Promise<Uint8Array> {
  return new Promise((resolve, reject) =>
    deflate.decompressor.decompress(
      data,
      1 << 20,
      (r) => r instanceof Error ? reject(r) : resolve(r),
    )
  );
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

for (
  const [name, server, offer, expected] of [
    [
      "shared mode, default client",
      { mode: "shared", threshold: 0 },
      {},
      "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
    ],
    [
      "dedicated mode, default client",
      { mode: "dedicated", threshold: 0 },
      {},
      "permessage-deflate",
    ],
    [
      "dedicated mode, a client that limits both windows",
      { mode: "dedicated", threshold: 0, clientMaxWindowBits: 11 },
      { localMaxWindowBits: 12, remoteMaxWindowBits: 10 },
      "permessage-deflate; server_max_window_bits=10; client_max_window_bits=11",
    ],
    [
      "dedicated mode, a client without context takeover",
      { mode: "dedicated", threshold: 0 },
      { localNoContextTakeover: true },
      "permessage-deflate; client_no_context_takeover",
    ],
    [
      "the web engine",
      { engine: "web", threshold: 0 },
      {},
      "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
    ],
  ] as Array<[string, PerMessageDeflateOptions, DeflateNegotiationOptions, string]>
) {
  test(`client handshake: permessage-deflate against the server, ${name}`, async () => {
    await withServer({
      perMessageDeflate: server,
      protocols: ["echo.v1"],
      message(ws, data) {
        ws.send(data);
      },
    }, async (harness) => {
      const { client, handshake: hs } = await handshake(harness, {
        protocols: ["echo.v2", "echo.v1"],
        perMessageDeflate: offer,
      });
      assert.equal(hs.error, undefined, hs.error?.message ?? "");
      const result = hs.result!;
      assert.equal(result.protocol, "echo.v1");
      assert.equal(result.extensions, expected);
      assert.ok(result.deflate);
      assert.equal(result.deflate.response, expected);
      assert.equal(result.rest.length, 0);
      // The client's side of the agreement runs PerMessageDeflate as the server's does.
      const deflate = new PerMessageDeflate(zlibEngine, result.deflate.params, 0, {});
      try {
        // Similar messages, so that context takeover (where agreed) has something to reuse.
        for (let i = 0; i < 5; i++) {
          const message = encoder.encode(JSON.stringify({ i, text: "hello ".repeat(20 + i) }));
          const payload = await compress(deflate, message);
          await client.write(maskedFrame(Op.Text, payload, true));
          const echo = await client.nextFrame();
          assert.equal(echo.opcode, Op.Text);
          assert.equal(echo.masked, false);
          assert.equal(echo.rsv, RSV1);
          assert.equal(
            decoder.decode(await inflate(deflate, echo.payload)),
            decoder.decode(message),
          );
        }
        // An uncompressed message is allowed too (RFC 7692 §6); the echo comes back compressed.
        await client.write(maskedFrame(Op.Binary, Uint8Array.of(1, 2, 3), false));
        const echo = await client.nextFrame();
        assert.deepEqual([...await inflate(deflate, echo.payload)], [1, 2, 3]);
        await client.write(maskedFrame(Op.Close, Uint8Array.of(0x03, 0xe8), false));
        assert.equal(parseClose(await client.nextFrame()).code, 1000);
        await client.waitClosed();
      } finally {
        deflate.close();
      }
    });
  });
}

test("client handshake: no permessage-deflate from a server without it", async () => {
  await withServer({}, async (harness) => {
    const { handshake: hs } = await handshake(harness, { perMessageDeflate: true });
    assert.equal(hs.result?.deflate, undefined);
    assert.equal(hs.result?.extensions, "");
    assert.equal(hs.result?.protocol, "");
  });
});

test("client handshake: a refusal from the upgrade hook carries status, headers and body", async () => {
  await withServer({
    upgrade: () =>
      new Response("no entry", { status: 403, headers: { "X-Reason": "closed for lunch" } }),
  }, async (harness) => {
    const refused = await handshake(harness);
    const error = refused.handshake.error;
    assert.ok(error instanceof HandshakeError);
    assert.equal(error.code, "WS_ERR_HANDSHAKE_REFUSED");
    assert.equal(error.status, 403);
    assert.equal(error.message, "Handshake refused: the server answered 403 Forbidden");
    assert.equal(error.closeCode, 1006);
    assert.ok(error.headers.some(([n, v]) => n === "x-reason" && v === "closed for lunch"));
    assert.equal(await body(refused), "no entry");
  });
});

test("client handshake: extra headers reach the server, whose own refusal comes back", async () => {
  await withServer({ origins: ["https://good.example"] }, async (harness) => {
    const refused = await handshake(harness, { headers: { Origin: "https://evil.example" } });
    const error = refused.handshake.error;
    assert.ok(error instanceof HandshakeError);
    assert.equal(error.code, "WS_ERR_HANDSHAKE_REFUSED");
    assert.equal(error.status, 403);
    assert.equal(await body(refused), "Forbidden: this Origin is not allowed");
    const accepted = await handshake(harness, { headers: { Origin: "https://good.example" } });
    assert.equal(accepted.handshake.error, undefined);
    assert.equal(accepted.handshake.result?.head.status, 101);
  });
});
