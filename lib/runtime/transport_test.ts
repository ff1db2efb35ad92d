/**
 * The adapter of the runtime running the test (Deno's or Bun's), over a real loopback socket
 * whose reader holds off until everything is written: urgent frames leave at the first frame
 * boundary, in the order they were given, with a pong not yet handed to the socket replaced by
 * a later one.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import net from "node:net";
import { encodeFrame, headerSize, writeHeader } from "../protocol/frame_writer.ts";
import { Opcode } from "../protocol/opcode.ts";
import type { Transport } from "../core/transport.ts";
import { runtimeListen } from "./runtime.ts";

/** More than loopback's socket buffers hold (a few MiB each way): writes back up behind it. */
const LARGE = 32 * 1024 * 1024;

/** A frame's opcode and, for short payloads, the payload's bytes; for long ones its length. */
interface Seen {
  opcode: number;
  payload: number[] | number;
}

function seen(opcode: number, payload: Uint8Array): Seen {
  return { opcode, payload: payload.length > 125 ? payload.length : [...payload] };
}

/** Splits unmasked server frames. */
function frames(bytes: Uint8Array): Seen[] {
  const out: Seen[] = [];
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  let at = 0;
  while (at < bytes.length) {
    let length = bytes[at + 1] & 0x7f;
    let start = at + 2;
    if (length === 126) {
      length = view.getUint16(at + 2);
      start = at + 4;
    } else if (length === 127) {
      length = view.getUint32(at + 2) * 2 ** 32 + view.getUint32(at + 6);
      start = at + 10;
    }
    out.push(seen(bytes[at] & 0x0f, bytes.subarray(start, start + length)));
    at = start + length;
  }
  return out;
}

/** The header of an unmasked binary frame of `length` bytes. */
function binaryHeader(length: number): Uint8Array {
  const header = new Uint8Array(headerSize(length, false));
  writeHeader(header, 0, Opcode.Binary, length, true, false);
  return header;
}

/**
 * Accepts one connection from a client that does not read; `body` writes to its transport.
 * Then the client reads everything: resolves with the frames it got.
 */
async function backedUp(body: (transport: Transport) => void, total: number): Promise<Seen[]> {
  let accepted!: (transport: Transport) => void;
  const transportReady = new Promise<Transport>((resolve) => accepted = resolve);
  const listener = runtimeListen()({ hostname: "127.0.0.1", port: 0 }, (transport) => {
    accepted(transport);
    return { onData() {}, onDrain() {}, onBelow() {}, onEnd() {}, onClose() {} };
  });
  const client = net.connect({ host: "127.0.0.1", port: listener.port });
  client.pause();
  const chunks: Buffer[] = [];
  let received = 0;
  let done!: () => void;
  const all = new Promise<void>((resolve) => done = resolve);
  client.on("data", (chunk: Buffer) => {
    chunks.push(chunk);
    received += chunk.length;
    if (received >= total) done();
  });
  const closed = new Promise<void>((resolve) => client.on("close", () => resolve()));
  const transport = await transportReady;
  try {
    body(transport);
    assert.ok(transport.bufferedAmount > 0, "the writes backed up");
    client.resume();
    await all;
    assert.equal(received, total);
    return frames(Buffer.concat(chunks));
  } finally {
    transport.destroy();
    client.destroy();
    listener.close();
    await closed;
  }
}

const ping = (n: number) => encodeFrame(Opcode.Ping, new Uint8Array([n >> 8, n & 0xff]));
const pong = (n: number) => encodeFrame(Opcode.Pong, new Uint8Array([n]));

describe("Transport.writeUrgent on this runtime's adapter", () => {
  it("urgent frames go at the first frame boundary, in order, ahead of queued data", async () => {
    const first = new Uint8Array(LARGE);
    const second = new Uint8Array(LARGE);
    const last = encodeFrame(Opcode.Text, new TextEncoder().encode("last"));
    const pings = Array.from({ length: 5000 }, (_, i) => ping(i));
    const total = 2 * (binaryHeader(LARGE).length + LARGE) + pings.length * 4 + 3 + last.length;
    const got = await backedUp((transport) => {
      transport.write(binaryHeader(LARGE), false, true);
      transport.write(first, false);
      transport.write(binaryHeader(LARGE), false, true);
      transport.write(second, false);
      transport.writeUrgent(pong(1));
      for (const frame of pings) transport.writeUrgent(frame);
      // Not yet handed to the socket: replaced.
      transport.writeUrgent(pong(2));
      transport.write(last, false);
    }, total);
    assert.deepEqual(got, [
      { opcode: Opcode.Binary, payload: LARGE },
      { opcode: Opcode.Pong, payload: [2] },
      ...pings.map((_, i) => ({ opcode: Opcode.Ping, payload: [i >> 8, i & 0xff] })),
      { opcode: Opcode.Binary, payload: LARGE },
      { opcode: Opcode.Text, payload: [...new TextEncoder().encode("last")] },
    ]);
  });

  it("urgent frames wait for the end of a frame whose header is written and payload not", async () => {
    const payload = new Uint8Array(LARGE);
    const small = encodeFrame(Opcode.Binary, new Uint8Array([7]));
    const total = binaryHeader(LARGE).length + LARGE + 4 + 4 + 3 + small.length;
    const got = await backedUp((transport) => {
      transport.write(binaryHeader(LARGE), false, true);
      // Given while the frame's payload is not even queued yet: it must not split the frame.
      transport.writeUrgent(ping(1));
      transport.write(payload, false);
      transport.writeUrgent(ping(2));
      transport.writeUrgent(pong(3));
      transport.write(small, false);
    }, total);
    assert.deepEqual(got, [
      { opcode: Opcode.Binary, payload: LARGE },
      { opcode: Opcode.Ping, payload: [0, 1] },
      { opcode: Opcode.Ping, payload: [0, 2] },
      { opcode: Opcode.Pong, payload: [3] },
      { opcode: Opcode.Binary, payload: [7] },
    ]);
  });
});
