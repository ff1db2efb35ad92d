/**
 * The send path: `writeHeader` into a caller's buffer, and `Outbox.writeFrame` + `flush` into a
 * transport whose `write` does nothing.
 *
 * The outbox normally flushes on a microtask; the benchmarks call `flush()` themselves, as
 * mitata's loop for a synchronous function never yields to the microtask queue. One artifact of
 * that: the first `writeFrame` after each `flush()` queues the outbox again on outbox.ts's
 * module-level dirty list, which only the (never running) microtask empties, so that list grows
 * by one entry per flush during a measurement. In a server the microtask empties it every tick.
 *
 * Run with `deno run -A bench/frame_write_bench.ts` or `bun bench/frame_write_bench.ts`.
 *
 * @module
 */
import { printMedians } from "./_report.ts";
import { bench, do_not_optimize, run, summary } from "mitata";
import { MAX_HEADER_SIZE, writeHeader } from "../lib/protocol/frame_writer.ts";
import { Opcode } from "../lib/protocol/opcode.ts";
import { Outbox } from "../lib/core/outbox.ts";
import type { Transport } from "../lib/core/transport.ts";

/** A transport that drops what it is given, counting it so the setup can be checked. */
class NullTransport implements Transport {
  readonly remoteAddress = "127.0.0.1";
  readonly remotePort = 0;
  readonly bufferedAmount = 0;
  writesLater: boolean;
  writes = 0;
  bytes = 0;
  constructor(writesLater = false) {
    this.writesLater = writesLater;
  }
  write(chunk: Uint8Array): void {
    this.writes++;
    this.bytes += chunk.length;
  }
  writeUrgent(chunk: Uint8Array): void {
    this.write(chunk);
  }
  end(): void {}
  destroy(): void {}
  pause(): void {}
  resume(): void {}
  watchBelow(): void {}
  setHandler(): void {}
}

/** A transport that drops what it is given, as Bun's (writes complete in the call) or Deno's. */
const noopTransport = (writesLater: boolean): Transport => ({
  remoteAddress: "127.0.0.1",
  remotePort: 0,
  bufferedAmount: 0,
  writesLater,
  write() {},
  writeUrgent() {},
  end() {},
  destroy() {},
  pause() {},
  resume() {},
  watchBelow() {},
  setHandler() {},
});

const header = new Uint8Array(MAX_HEADER_SIZE);
const small = new Uint8Array(32).fill(0x61);
const large = new Uint8Array(64 * 1024).fill(0x62);
const kib = new Uint8Array(1024).fill(0x64);
// 64 KiB − 4: with its 4-byte header it fits the pooled 64 KiB buffer.
const fits = new Uint8Array(64 * 1024 - 4).fill(0x63);

interface Case {
  name: string;
  /** Makes the benchmark: a function of its own per case, so no call site is shared. */
  make: (outbox: Outbox) => () => void;
  /** Transport writes and bytes per flush, to check the case does what its name says. */
  writes: number;
  /** The transport writes later, as Deno's does. @default {false} */
  writesLater?: boolean;
  bytes: number;
}

const cases: Case[] = [
  {
    name: "1 x 32 B",
    make: (outbox) => () => {
      outbox.writeFrame(Opcode.Binary, true, false, small, false);
      outbox.flush();
    },
    writes: 1,
    bytes: 34,
  },
  {
    name: "16 x 32 B",
    make: (outbox) => () => {
      for (let i = 0; i < 16; i++) outbox.writeFrame(Opcode.Binary, true, false, small, false);
      outbox.flush();
    },
    writes: 1,
    bytes: 16 * 34,
  },
  {
    name: "8 x 1 KiB (outgrows the small buffer: moved up, one write)",
    make: (outbox) => () => {
      for (let i = 0; i < 8; i++) outbox.writeFrame(Opcode.Binary, true, false, kib, false);
      outbox.flush();
    },
    writes: 1,
    bytes: 8 * (4 + 1024),
  },
  {
    name: "64 KiB owned, writes later (Deno): by reference",
    make: (outbox) => () => {
      outbox.writeFrame(Opcode.Binary, true, false, large, true);
      outbox.flush();
    },
    writes: 2,
    bytes: 10 + 64 * 1024,
    writesLater: true,
  },
  {
    name: "64 KiB owned, writes in the call (Bun): copied, one write",
    make: (outbox) => () => {
      outbox.writeFrame(Opcode.Binary, true, false, large, true);
      outbox.flush();
    },
    writes: 1,
    bytes: 10 + 64 * 1024,
  },
  {
    name: "64 KiB not owned (copied)",
    make: (outbox) => () => {
      outbox.writeFrame(Opcode.Binary, true, false, large, false);
      outbox.flush();
    },
    writes: 1,
    bytes: 10 + 64 * 1024,
  },
  {
    name: "64 KiB - 4 not owned (copied, pooled buffer)",
    make: (outbox) => () => {
      outbox.writeFrame(Opcode.Binary, true, false, fits, false);
      outbox.flush();
    },
    writes: 1,
    bytes: 64 * 1024,
  },
];

for (const each of cases) {
  const transport = new NullTransport(each.writesLater);
  each.make(new Outbox(transport))();
  if (transport.writes !== each.writes || transport.bytes !== each.bytes) {
    throw new Error(`${each.name}: ${transport.writes} writes, ${transport.bytes} bytes`);
  }
}
if (writeHeader(header, 0, Opcode.Binary, 125, true, false) !== 2) throw new Error("125 B");
if (writeHeader(header, 0, Opcode.Binary, 65536, true, false) !== 10) throw new Error("64 KiB");

// The offset moves through 0–7 so that the compiler cannot hoist constant stores out of the loop
// (Bun reported 0.3 ns with a fixed offset).
const target = new Uint8Array(8 + MAX_HEADER_SIZE);
let at = 0;
summary(() => {
  bench("writeHeader 125 B", () => {
    at = (at + 1) & 7;
    do_not_optimize(writeHeader(target, at, Opcode.Binary, 125, true, false));
  });
  bench("writeHeader 64 KiB", () => {
    at = (at + 1) & 7;
    do_not_optimize(writeHeader(target, at, Opcode.Binary, 65536, true, false));
  });
});

// What the copied cases pay for the copy alone. The outbox copies a payload right behind its
// header, so the copy's destination is 2, 4 or 10 bytes past a buffer's start.
const pooled = new Uint8Array(64 * 1024);
summary(() => {
  bench("copy only: 64 KiB - 4 to offset 0", () => {
    pooled.set(fits, 0);
    do_not_optimize(pooled);
  });
  bench("copy only: 64 KiB - 4 to offset 4", () => {
    pooled.set(fits, 4);
    do_not_optimize(pooled);
  });
});

summary(() => {
  for (const each of cases) {
    bench(
      `Outbox writeFrame + flush: ${each.name}`,
      each.make(new Outbox(noopTransport(each.writesLater ?? false))),
    );
  }
});

printMedians(await run(), 72);
