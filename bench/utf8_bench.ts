/**
 * Text messages: `decodeUtf8` (a shared fatal TextDecoder) on ASCII and on mixed multi-byte
 * text of 32 B, 1 KiB and 64 KiB, and `Utf8StreamDecoder` over 64 KiB in 4 KiB pieces (the
 * pieces cut through characters in the mixed text). The baseline is a non-fatal TextDecoder
 * made once, as `new TextDecoder().decode` is used when nothing needs validating.
 *
 * A third line per input times an alternative that decodeUtf8 could use: a non-fatal decode,
 * then the fatal one only if the string holds U+FFFD (a replaced error, or a real U+FFFD).
 *
 * Run with `deno run -A bench/utf8_bench.ts` or `bun bench/utf8_bench.ts`.
 *
 * @module
 */
import { printMedians } from "./_report.ts";
import { bench, do_not_optimize, run, summary } from "mitata";
import { decodeUtf8, Utf8StreamDecoder } from "../lib/protocol/utf8.ts";

const SIZES = [32, 1024, 64 * 1024];
const PIECE = 4 * 1024;

const encoder = new TextEncoder();
// 1-, 2-, 3- and 4-byte characters: half of the bytes are in multi-byte sequences.
const MIXED = "price: 12 € — naïve café, κόσμε, 世界 ok 🙂; ";
const ASCII = '{"type":"tick","seq":12345,"data":"abcdefghij"},';

/** `length` bytes of `pattern` repeated, cut at a character boundary and padded with spaces. */
function text(pattern: string, length: number): Uint8Array {
  const bytes = encoder.encode(pattern.repeat(Math.ceil(length / pattern.length)));
  let end = length;
  while ((bytes[end] & 0xc0) === 0x80) end--; // back to the start of the cut character
  const out = new Uint8Array(length).fill(0x20);
  out.set(bytes.subarray(0, end));
  return out;
}

const baseline = new TextDecoder();
const lenient = new TextDecoder("utf-8", { ignoreBOM: true });
const strict = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** The alternative: the same results as decodeUtf8, with the fatal decoder only on U+FFFD. */
function decodeChecked(bytes: Uint8Array): string | undefined {
  const text = lenient.decode(bytes);
  if (!text.includes("\uFFFD")) return text;
  try {
    return strict.decode(bytes);
  } catch {
    return undefined;
  }
}
const stream = new Utf8StreamDecoder();
const inputs = [["ASCII", ASCII], ["mixed", MIXED]] as const;

function label(length: number): string {
  return length >= 1024 ? `${length / 1024} KiB` : `${length} B`;
}

for (const [kind, pattern] of inputs) {
  for (const size of SIZES) {
    const bytes = text(pattern, size);
    const expected = baseline.decode(bytes);
    if (decodeUtf8(bytes) !== expected || decodeChecked(bytes) !== expected) {
      throw new Error(`${kind} ${size}`);
    }
    summary(() => {
      bench(`decodeUtf8 ${kind} ${label(size)}`, () => do_not_optimize(decodeUtf8(bytes)));
      bench(
        `TextDecoder (non-fatal) ${kind} ${label(size)}`,
        () => do_not_optimize(baseline.decode(bytes)),
      );
      bench(
        `non-fatal + U+FFFD check ${kind} ${label(size)}`,
        () => do_not_optimize(decodeChecked(bytes)),
      );
    });
  }
}

const STREAM_OPTIONS = { stream: true };
for (const [kind, pattern] of inputs) {
  const bytes = text(pattern, 64 * 1024);
  const pieces: Uint8Array[] = [];
  for (let at = 0; at < bytes.length; at += PIECE) pieces.push(bytes.subarray(at, at + PIECE));
  const last = pieces.length - 1;
  // Each decoder builds the message as the Protocol does: the string so far plus each piece.
  const viaStream = () => {
    let message = "";
    for (let i = 0; i < last; i++) message += stream.push(pieces[i])!;
    return message + stream.end(pieces[last])!;
  };
  const viaBaseline = () => {
    let message = "";
    for (let i = 0; i < last; i++) message += baseline.decode(pieces[i], STREAM_OPTIONS);
    return message + baseline.decode(pieces[last]);
  };
  if (viaStream() !== baseline.decode(bytes) || viaBaseline() !== baseline.decode(bytes)) {
    throw new Error(`stream ${kind}`);
  }
  summary(() => {
    bench(`Utf8StreamDecoder ${kind} 64 KiB in 4 KiB pieces`, () => do_not_optimize(viaStream()));
    bench(
      `TextDecoder (non-fatal, stream) ${kind} 64 KiB in 4 KiB pieces`,
      () => do_not_optimize(viaBaseline()),
    );
  });
}

// The alternative must reject what decodeUtf8 rejects and keep a real U+FFFD and a leading BOM.
for (const hex of ["c0", "ed a0 80", "f4 90 80 80", "e2 82", "ef bf bd", "ef bb bf 61"]) {
  const bytes = new Uint8Array(hex.split(" ").map((byte) => parseInt(byte, 16)));
  if (decodeChecked(bytes) !== decodeUtf8(bytes)) throw new Error(`decodeChecked ${hex}`);
}

printMedians(await run(), 60);
