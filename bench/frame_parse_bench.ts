/**
 * The receive path: `FrameParser` (masked client frames, as a server reads them) with a no-op
 * sink, then the same input through `Protocol` with a no-op host, as binary and as text.
 *
 * Fresh input every iteration. The parser unmasks payloads in place, so pushing the same bytes
 * twice would hand it a re-masked payload the second time (harmless for binary, invalid UTF-8
 * for text, and not what a socket delivers). Each iteration therefore first copies the frame(s)
 * from a template into a buffer allocated once, then pushes that buffer. The copy is part of
 * every parse line, and the "copy only" lines time it alone: subtract them to get the parse.
 *
 * Run with `deno run -A bench/frame_parse_bench.ts` or `bun bench/frame_parse_bench.ts`.
 *
 * @module
 */
import { medians, runtime, time } from "./_report.ts";
import { bench, do_not_optimize, run, summary } from "mitata";
import type { WebSocketError } from "../lib/protocol/errors.ts";
import { FrameParser, type FrameSink } from "../lib/protocol/frame_parser.ts";
import { encodeFrame } from "../lib/protocol/frame_writer.ts";
import { Opcode } from "../lib/protocol/opcode.ts";
import { Protocol, type ProtocolHost } from "../lib/protocol/protocol.ts";

const MASK = new Uint8Array([0x37, 0xfa, 0x21, 0x3d]);

/** ASCII text of `length` bytes (JSON-like), so text and binary carry the same bytes. */
function text(length: number): Uint8Array {
  const bytes = new TextEncoder().encode('{"type":"tick","seq":12345,"data":"abcdefghij"},'.repeat(
    Math.ceil(length / 48),
  ));
  return bytes.slice(0, length);
}

/** The bytes of `count` masked frames of `length` bytes each, back to back. */
function frames(opcode: number, length: number, count = 1): Uint8Array {
  const one = encodeFrame(opcode, text(length), { mask: MASK });
  const all = new Uint8Array(one.length * count);
  for (let i = 0; i < count; i++) all.set(one, i * one.length);
  return all;
}

/** One input: a template, the buffer each iteration copies it into, and how it is pushed. */
interface Input {
  name: string;
  /** The name of the input whose "copy only" line times this one's copy. */
  copy: string;
  frames: number;
  template: Uint8Array;
  buffer: Uint8Array;
  /** The pieces pushed, in order: views of `buffer`, made once. */
  pieces: Uint8Array[];
}

function input(name: string, template: Uint8Array, frameCount: number, bytewise = false): Input {
  const buffer = new Uint8Array(template.length);
  const pieces = bytewise
    ? Array.from({ length: buffer.length }, (_, i) => buffer.subarray(i, i + 1))
    : [buffer];
  const copy = bytewise ? name.slice(0, name.indexOf(",")) : name;
  return { name, copy, frames: frameCount, template, buffer, pieces };
}

function inputs(opcode: number): Input[] {
  const f125 = frames(opcode, 125);
  return [
    input("125 B frame", f125, 1),
    input("64 KiB frame", frames(opcode, 64 * 1024), 1),
    input("1 MiB frame", frames(opcode, 1024 * 1024), 1),
    input("100 x 32 B frames", frames(opcode, 32, 100), 100),
    input("125 B frame, 1 byte per push", f125, 1, true),
  ];
}

/** Counts what arrives; every error is a bug in this benchmark, so it throws. */
class CountingSink implements FrameSink {
  frames = 0;
  bytes = 0;
  onFrame(_opcode: number, _fin: boolean, _rsv1: boolean, payload: Uint8Array): void {
    this.frames++;
    this.bytes += payload.length;
  }
  onFrameStart(): void {}
  onFrameData(piece: Uint8Array, last: boolean): void {
    this.bytes += piece.length;
    if (last) this.frames++;
  }
  onFrameError(error: WebSocketError): void {
    throw error;
  }
}

// The no-op sink and host. An error must not go unnoticed: a stopped parser ignores all later
// input, and the benchmark would time nothing.
const noopSink: FrameSink = {
  onFrame() {},
  onFrameStart() {},
  onFrameData() {},
  onFrameError(error) {
    throw error;
  },
};

class CountingHost implements ProtocolHost {
  messages = 0;
  onMessage(data: string | Uint8Array): void {
    this.messages++;
    do_not_optimize(data);
  }
  onPing(): void {}
  onPong(): void {}
  onClosed(code: number, reason: string): void {
    throw new Error(`closed ${code}: ${reason}`);
  }
  writeFrame(): void {}
}

const noopHost: ProtocolHost = {
  onMessage() {},
  onPing() {},
  onPong() {},
  onClosed(code, reason) {
    throw new Error(`closed ${code}: ${reason}`);
  },
  writeFrame() {},
};

function feed(push: (chunk: Uint8Array) => void, input: Input): void {
  input.buffer.set(input.template);
  const pieces = input.pieces;
  for (let i = 0; i < pieces.length; i++) push(pieces[i]);
}

// Check each input once, through both layers, before timing it: the right number of frames
// and messages, and the parser still running afterwards.
const binary = inputs(Opcode.Binary);
const texts = inputs(Opcode.Text);
for (const item of binary) {
  const sink = new CountingSink();
  const parser = new FrameParser(sink);
  feed((chunk) => parser.push(chunk), item);
  feed((chunk) => parser.push(chunk), item);
  if (sink.frames !== 2 * item.frames || parser.stopped) throw new Error(`parser: ${item.name}`);
}
for (const item of [...binary, ...texts]) {
  const host = new CountingHost();
  const protocol = new Protocol(host);
  feed((chunk) => protocol.receive(chunk), item);
  feed((chunk) => protocol.receive(chunk), item);
  if (host.messages !== 2 * item.frames) throw new Error(`protocol: ${item.name}`);
}

// The copy alone, per distinct template (the byte-per-push input copies the 125 B one).
summary(() => {
  for (const item of binary.slice(0, 4)) {
    bench(`copy only: ${item.name}`, () => {
      item.buffer.set(item.template);
      do_not_optimize(item.buffer);
    });
  }
});

summary(() => {
  for (const item of binary) {
    const parser = new FrameParser(noopSink);
    const { buffer, template, pieces } = item;
    // The loop is written out in each benchmark so that no call site is shared between them.
    bench(`FrameParser: ${item.name}`, () => {
      buffer.set(template);
      for (let i = 0; i < pieces.length; i++) parser.push(pieces[i]);
    });
  }
});

for (const [kind, list] of [["binary", binary], ["text", texts]] as const) {
  summary(() => {
    for (const item of list) {
      const protocol = new Protocol(noopHost);
      const { buffer, template, pieces } = item;
      bench(`Protocol ${kind}: ${item.name}`, () => {
        buffer.set(template);
        for (let i = 0; i < pieces.length; i++) protocol.receive(pieces[i]);
      });
    }
  });
}

// Medians, and for the parse lines the median minus the median of their copy.
const byName = medians(await run());
console.log(`\n${runtime}: medians (and minus the copy's median)`);
for (const [name, p50] of byName) {
  const item = binary.find((each) => name.endsWith(`: ${each.name}`))!;
  const copy = byName.get(`copy only: ${item.copy}`)!;
  const net = name.startsWith("copy only") ? "" : `  (${time(p50 - copy)} without the copy)`;
  console.log(`${name.padEnd(46)} ${time(p50).padStart(10)}${net}`);
}
