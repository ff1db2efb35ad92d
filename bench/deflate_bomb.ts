/**
 * A compressed bomb against the server: one ~1 MB permessage-deflate message that inflates to
 * 1 GiB of zeros, sent to a server child (bench/deflate_memory_server.ts, default
 * maxPayloadLength of 16 MiB) in shared and in dedicated mode, on each runtime. The server must
 * stop inflating at the limit and close with 1009 (RFC 6455 §7.4.1), its memory growing by
 * about the limit at most, not by the gigabyte.
 *
 * Per run: start the server, open a connection, collect garbage, reset the server's peak
 * (VmHWM, through /proc/PID/clear_refs) and read VmRSS; send the bomb; wait for the Close
 * frame and read its code; read VmHWM (the peak since the reset) and, after a collection,
 * VmRSS again. VmRSS is also sampled every 5 ms meanwhile, in case the kernel refuses the
 * reset. Then a new connection must still get its echo: the server survived.
 *
 *     deno run -A bench/deflate_bomb.ts [--runs 3] [--runtimes deno,bun]
 *         [--modes shared,dedicated]
 *     bun bench/deflate_bomb.ts
 *
 * Prints every run and a table of medians; exits 0 when every run got 1009 and the server
 * survived. Linux only (/proc).
 *
 * @module
 */
import { constants, createDeflateRaw } from "node:zlib";
import process from "node:process";
import {
  clientFrame,
  compressMessage,
  type DeflateMode,
  memory,
  OFFER,
  RawClient,
  resetPeak,
  type Runtime,
  settledMemory,
  startServer,
} from "./deflate_memory.ts";
import { median, option, sleep } from "./_proc.ts";

const INFLATED = 1024 * 1024 * 1024; // 1 GiB of zeros
const CHUNK = 1024 * 1024;

/**
 * The bomb: 1 GiB of zeros through one persistent raw deflate stream, fed the same zero buffer
 * again and again, then sync-flushed, minus the 00 00 FF FF tail (RFC 7692 §7.2.1).
 */
async function buildBomb(): Promise<Uint8Array> {
  const deflate = createDeflateRaw({ level: 9 });
  const pieces: Uint8Array[] = [];
  deflate.on("data", (piece: Uint8Array) => pieces.push(piece));
  const zeros = new Uint8Array(CHUNK);
  for (let written = 0; written < INFLATED; written += CHUNK) {
    if (!deflate.write(zeros)) await new Promise((resolve) => deflate.once("drain", resolve));
  }
  await new Promise<void>((resolve) => deflate.flush(constants.Z_SYNC_FLUSH, () => resolve()));
  deflate.destroy();
  const length = pieces.reduce((sum, piece) => sum + piece.length, 0);
  const out = new Uint8Array(length);
  let offset = 0;
  for (const piece of pieces) {
    out.set(piece, offset);
    offset += piece.length;
  }
  const tail = out.subarray(length - 4);
  if (tail[0] !== 0 || tail[1] !== 0 || tail[2] !== 0xff || tail[3] !== 0xff) {
    throw new Error("the bomb does not end in a sync flush");
  }
  return out.subarray(0, length - 4);
}

interface Result {
  closeCode: number;
  /** ms from the first byte sent to the Close frame. */
  ms: number;
  /** KiB: VmRSS before the bomb. */
  before: number;
  /** KiB: the peak's growth over `before` (VmHWM after a reset, else the sampled VmRSS). */
  peak: number;
  /** KiB: the largest sampled VmRSS, over `before`. */
  sampled: number;
  /** KiB: VmRSS after, collected, over `before`. */
  after: number;
  /** Whether VmHWM was reset (else `peak` is the sampled one). */
  exact: boolean;
}

async function attack(runtime: Runtime, mode: DeflateMode, frame: Uint8Array): Promise<Result> {
  const server = await startServer(runtime, mode);
  let client: RawClient | undefined;
  let probe: RawClient | undefined;
  try {
    client = await RawClient.connect(server.port, OFFER);
    if (!client.extensions.startsWith("permessage-deflate")) {
      throw new Error(`${runtime} ${mode}: no permessage-deflate (${client.extensions})`);
    }
    const before = (await settledMemory(server)).rss;
    const exact = resetPeak(server.pid);
    let sampled = memory(server.pid).rss;
    const sampler = setInterval(() => {
      sampled = Math.max(sampled, memory(server.pid).rss);
    }, 5);
    const start = performance.now();
    client.write(frame);
    let closeCode = -1;
    try {
      for (;;) {
        const reply = await client.nextFrame(60_000);
        if (reply.opcode === 0x8) {
          closeCode = reply.payload.length >= 2 ? (reply.payload[0] << 8) | reply.payload[1] : 1005;
          break;
        }
      }
    } finally {
      clearInterval(sampler);
    }
    const ms = performance.now() - start;
    sampled = Math.max(sampled, memory(server.pid).rss);
    const peak = exact ? memory(server.pid).hwm : sampled;
    client.write(clientFrame(0x8, new Uint8Array([closeCode >> 8, closeCode & 0xff])));
    client.destroy();
    await sleep(100);
    const after = (await settledMemory(server)).rss;

    // The server still serves.
    probe = await RawClient.connect(server.port, OFFER);
    const message = new TextEncoder().encode('{"still":"alive"}');
    probe.write(clientFrame(0x1, compressMessage(message), true));
    const echo = await probe.nextFrame();
    if (echo.opcode !== 0x1) throw new Error(`${runtime} ${mode}: no echo after the bomb`);
    return {
      closeCode,
      ms,
      before,
      peak: peak - before,
      sampled: sampled - before,
      after: after - before,
      exact,
    };
  } finally {
    client?.destroy();
    probe?.destroy();
    await server.stop();
  }
}

const runs = Number(option("runs", "3"));
const runtimes = option("runtimes", "deno,bun").split(",") as Runtime[];
const modes = option("modes", "shared,dedicated").split(",") as DeflateMode[];

const buildStart = performance.now();
const bomb = await buildBomb();
const frame = clientFrame(0x2, bomb, true);
console.log(
  `bomb: ${bomb.length} bytes inflating to ${INFLATED} (1 GiB), built in ` +
    `${((performance.now() - buildStart) / 1000).toFixed(1)} s; server maxPayloadLength 16 MiB`,
);

const MiB = (kib: number) => (kib / 1024).toFixed(1);
const rows: string[] = [];
let failed = false;
for (const runtime of runtimes) {
  for (const mode of modes) {
    const results: Result[] = [];
    for (let run = 0; run < runs; run++) {
      const r = await attack(runtime, mode, frame);
      results.push(r);
      if (r.closeCode !== 1009) failed = true;
      console.log(
        `  ${runtime} ${mode} run ${run + 1}: close ${r.closeCode} after ${r.ms.toFixed(0)} ms, ` +
          `RSS before ${MiB(r.before)} MiB, peak +${MiB(r.peak)} MiB` +
          `${r.exact ? "" : " (sampled)"}, sampled +${MiB(r.sampled)} MiB, ` +
          `after +${MiB(r.after)} MiB`,
      );
    }
    const med = (key: "ms" | "before" | "peak" | "sampled" | "after") =>
      median(results.map((r) => r[key]));
    rows.push(
      `${runtime.padEnd(8)}${mode.padEnd(11)}` +
        `${results.map((r) => r.closeCode).join(",").padEnd(16)}` +
        `${med("ms").toFixed(0).padStart(8)}` +
        `${MiB(med("before")).padStart(12)}` +
        `${MiB(med("peak")).padStart(12)}` +
        `${MiB(med("sampled")).padStart(12)}` +
        `${MiB(med("after")).padStart(12)}`,
    );
  }
}

console.log(`\nserver memory under a 1 GiB bomb (MiB; growth over RSS before; medians of ${runs})`);
console.log(
  `${"runtime".padEnd(8)}${"mode".padEnd(11)}${"close codes".padEnd(16)}${"ms".padStart(8)}` +
    `${"RSS before".padStart(12)}${"peak +".padStart(12)}${"sampled +".padStart(12)}` +
    `${"after +".padStart(12)}`,
);
for (const row of rows) console.log(row);
if (failed) {
  console.log("FAILED: a run did not get Close 1009");
  process.exit(1);
}
process.exit(0);
