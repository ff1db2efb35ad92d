/**
 * permessage-deflate (RFC 7692): one compress + one decompress of a realistic JSON message
 * (bench/_json_fixtures.ts: a ~200 B chat message, a ~1 KiB API response, a ~16 KiB list, a
 * ~64 KiB document) through each engine's public interface, in each mode the server offers:
 *
 * - `zlib shared`: node:zlib without context takeover (both `*_no_context_takeover`), one
 *   synchronous call per direction, at level 6 (the default) and level 1;
 * - `zlib dedicated`: persistent node:zlib streams with context takeover, sync-flushed, their
 *   callbacks called later (wrapped in a Promise for mitata);
 * - `web shared`: a fresh CompressionStream / DecompressionStream per message (async).
 *
 * Each iteration takes the next of 16 different messages of the kind (seeds 1 to 16), so a
 * compressor with context takeover cannot find the whole message in its window.
 *
 * The web decompressor is fed what a browser sends (a sync-flushed payload, here made by zlib),
 * not the web compressor's own output: that output ends in a BFINAL block, and the web
 * decompressor cannot read a BFINAL block followed by the restored 00 00 FF FF (1007 in both
 * runtimes; FACTS.md). The zlib decompressors read it.
 *
 * After mitata's report: the medians, a table of µs per round trip by kind and mode, and the
 * compressed size as a share of the original by kind and mode (over the 16 messages in order,
 * through one compressor, so context takeover counts).
 *
 * Run with `deno run -A bench/deflate_bench.ts` or `bun bench/deflate_bench.ts`.
 *
 * @module
 */
import { medians, printMedians, runtime, time } from "./_report.ts";
import { bench, do_not_optimize, run, summary } from "mitata";
import { jsonMessages, type Kind, KINDS } from "./_json_fixtures.ts";
import { WebSocketError } from "../lib/protocol/errors.ts";
import type {
  DeflateEngine,
  DeflateTuning,
  MessageCompressor,
  MessageDecompressor,
} from "../lib/protocol/extensions/deflate_engine.ts";
import type { DeflateParams } from "../lib/protocol/extensions/deflate_negotiation.ts";
import { webEngine } from "../lib/protocol/extensions/web_engine.ts";
import { zlibEngine } from "../lib/protocol/extensions/zlib_engine.ts";

const VARIANTS = 16; // a power of two: the index wraps with a mask
const LIMIT = 16 * 1024 * 1024; // the server's default maxPayloadLength

const SHARED: DeflateParams = {
  localNoContextTakeover: true,
  remoteNoContextTakeover: true,
  localMaxWindowBits: 15,
  remoteMaxWindowBits: 15,
};
const DEDICATED: DeflateParams = {
  ...SHARED,
  localNoContextTakeover: false,
  remoteNoContextTakeover: false,
};

interface Mode {
  name: string;
  engine: DeflateEngine;
  params: DeflateParams;
  tuning: DeflateTuning;
  /** The web decompressor reads what a client sends, not the web compressor's output. */
  clientPayloads: boolean;
}

const MODES: Mode[] = [
  { name: "zlib shared L6", engine: zlibEngine, params: SHARED, tuning: {}, clientPayloads: false },
  {
    name: "zlib shared L1",
    engine: zlibEngine,
    params: SHARED,
    tuning: { level: 1 },
    clientPayloads: false,
  },
  {
    name: "zlib dedicated L6",
    engine: zlibEngine,
    params: DEDICATED,
    tuning: {},
    clientPayloads: false,
  },
  { name: "web shared", engine: webEngine, params: SHARED, tuning: {}, clientPayloads: true },
];

function label(kind: Kind, bytes: number): string {
  return `${kind} ${bytes >= 1024 ? `${(bytes / 1024).toFixed(1)} KiB` : `${bytes} B`}`;
}

/** Compresses, then decompresses `input` (or, if given, `clientPayload`). */
function roundTrip(
  compressor: MessageCompressor,
  decompressor: MessageDecompressor,
  input: Uint8Array,
  clientPayload?: Uint8Array,
): Promise<{ payload: Uint8Array; output: Uint8Array }> {
  return new Promise((resolve, reject) => {
    compressor.compress(input, (payload) => {
      if (payload instanceof WebSocketError) return reject(payload);
      decompressor.decompress(clientPayload ?? payload, LIMIT, (output) => {
        if (output instanceof WebSocketError) reject(output);
        else resolve({ payload, output });
      });
    });
  });
}

// The synchronous path (zlib shared): both callbacks run before compress/decompress return,
// so no promise or closure is made per iteration.
let result: Uint8Array | WebSocketError | undefined;
const store = (r: Uint8Array | WebSocketError) => {
  result = r;
};
function roundTripSync(
  compressor: MessageCompressor,
  decompressor: MessageDecompressor,
  input: Uint8Array,
): Uint8Array {
  result = undefined;
  compressor.compress(input, store);
  // A cast: TypeScript cannot see that the callback assigned `result`.
  const payload = result as Uint8Array | WebSocketError | undefined;
  if (!(payload instanceof Uint8Array)) throw new Error(`compress: ${payload}`);
  result = undefined;
  decompressor.decompress(payload, LIMIT, store);
  const output = result as Uint8Array | WebSocketError | undefined;
  if (!(output instanceof Uint8Array)) throw new Error(`decompress: ${output}`);
  return output;
}

function equal(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

const kinds = Object.keys(KINDS) as Kind[];
const messages = new Map(kinds.map((kind) => [kind, jsonMessages(kind, VARIANTS)]));
// What a client sends without context takeover: sync-flushed, tail removed (as zlib shared makes).
const clientPayloads = new Map<Kind, Uint8Array[]>();
for (const kind of kinds) {
  const compressor = zlibEngine.compressor(SHARED, {});
  clientPayloads.set(
    kind,
    messages.get(kind)!.map((m) => {
      compressor.compress(m, store);
      return result as Uint8Array;
    }),
  );
}

/** Compressed bytes over original bytes, by mode name and kind, over the 16 messages in order. */
const ratios = new Map<string, number>();
const sizes = new Map<Kind, number>(); // mean original size
const names = new Map<string, string>(); // bench name by `${mode} ${kind}`

for (const kind of kinds) {
  const inputs = messages.get(kind)!;
  const clients = clientPayloads.get(kind)!;
  const original = inputs.reduce((sum, m) => sum + m.length, 0);
  sizes.set(kind, original / VARIANTS);
  const name = (mode: Mode) => `${mode.name} ${label(kind, Math.round(original / VARIANTS))}`;

  // Check every mode round-trips every message, and measure its ratio, before timing it.
  for (const mode of MODES) {
    const compressor = mode.engine.compressor(mode.params, mode.tuning);
    const decompressor = mode.engine.decompressor(mode.params);
    let compressed = 0;
    for (let i = 0; i < VARIANTS; i++) {
      const { payload, output } = await roundTrip(
        compressor,
        decompressor,
        inputs[i],
        mode.clientPayloads ? clients[i] : undefined,
      );
      if (!equal(output, inputs[i])) throw new Error(`${name(mode)}: round trip ${i} differs`);
      compressed += payload.length;
    }
    compressor.close();
    decompressor.close();
    ratios.set(`${mode.name} ${kind}`, compressed / original);
    names.set(`${mode.name} ${kind}`, name(mode));
  }

  summary(() => {
    for (const mode of MODES) {
      const compressor = mode.engine.compressor(mode.params, mode.tuning);
      const decompressor = mode.engine.decompressor(mode.params);
      let i = 0;
      if (mode.engine === zlibEngine && mode.params.localNoContextTakeover) {
        bench(name(mode), () => {
          i = (i + 1) & (VARIANTS - 1);
          return do_not_optimize(roundTripSync(compressor, decompressor, inputs[i]));
        });
      } else {
        bench(name(mode), async () => {
          i = (i + 1) & (VARIANTS - 1);
          const client = mode.clientPayloads ? clients[i] : undefined;
          return do_not_optimize(await roundTrip(compressor, decompressor, inputs[i], client));
        });
      }
    }
  });
}

const trials = await run();
printMedians(trials, 40);
const byName = medians(trials);

const column = 19;
console.log(`\n${runtime}: median µs per compress + decompress (16 messages of each kind)`);
console.log("kind, mean size".padEnd(18) + MODES.map((m) => m.name.padStart(column)).join(""));
for (const kind of kinds) {
  const cells = MODES.map((mode) => {
    const ns = byName.get(names.get(`${mode.name} ${kind}`)!)!;
    return time(ns).padStart(column);
  });
  console.log(label(kind, Math.round(sizes.get(kind)!)).padEnd(18) + cells.join(""));
}

console.log(
  `\n${runtime}: compressed size, % of the original (16 messages through one compressor; ` +
    `web: its own output, a BFINAL block and one 0x00 per message)`,
);
console.log("kind, mean size".padEnd(18) + MODES.map((m) => m.name.padStart(column)).join(""));
for (const kind of kinds) {
  const cells = MODES.map((mode) =>
    `${(ratios.get(`${mode.name} ${kind}`)! * 100).toFixed(1)} %`.padStart(column)
  );
  console.log(label(kind, Math.round(sizes.get(kind)!)).padEnd(18) + cells.join(""));
}
