/**
 * The web-standard engine: `CompressionStream` / `DecompressionStream("deflate-raw")`, a fresh
 * stream per message. FACTS.md shows why it serves no context takeover: a persistent
 * CompressionStream cannot sync-flush in Bun, and a reused DecompressionStream gives no
 * portable signal that a message's output is complete. Each call is asynchronous.
 *
 * One limit: a client message that ends in a BFINAL block (RFC 7692 §7.2.3.3 permits it; no
 * browser does it) leaves bytes after the end of the stream, which DecompressionStream refuses
 * in both runtimes, so it fails the connection with 1007. The zlib engine reads such messages.
 *
 * @module
 */
import { WebSocketError } from "../errors.ts";
import {
  concatBytes,
  DEFLATE_TAIL,
  type DeflateCallback,
  type DeflateEngine,
  deflateFailed,
  inflateFailed,
  type MessageCompressor,
  type MessageDecompressor,
  tooBig,
} from "./deflate_engine.ts";

// A final, empty fixed-Huffman block (BFINAL=1, BTYPE=01, end-of-block): appended after the
// restored 00 00 FF FF so that a fresh DecompressionStream sees a complete stream and closes.
const FINAL_BLOCK = new Uint8Array([0x03, 0x00]);

async function readAll(
  readable: ReadableStream<Uint8Array>,
  limit: number,
): Promise<Uint8Array | WebSocketError> {
  const reader = readable.getReader();
  const chunks: Uint8Array[] = [];
  let length = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return concatBytes(chunks, length);
    length += value.length;
    if (length > limit) {
      reader.cancel().catch(() => {});
      return tooBig(limit);
    }
    chunks.push(value);
  }
}

/**
 * Input goes in slices: Deno's DecompressionStream hands out all that one write inflates to as
 * one chunk, and DEFLATE expands at most about 1032 times, so a 512-byte slice can make no more
 * than about 512 KiB before readAll() sees it and checks the limit.
 */
const SLICE = 512;

async function feed(
  writer: WritableStreamDefaultWriter<BufferSource>,
  input: Uint8Array<ArrayBuffer>,
) {
  try {
    for (let at = 0; at < input.length; at += SLICE) {
      await writer.write(input.subarray(at, at + SLICE));
    }
    await writer.close();
  } catch {
    // The reader gave up (over the limit) or the data is bad: readAll() reports it.
  }
}

/** Message after message, in order, each in its own CompressionStream. */
class WebCompressor implements MessageCompressor {
  #tail: Promise<void> = Promise.resolve();

  compress(data: Uint8Array, done: DeflateCallback): void {
    const copy = data.slice();
    this.#tail = this.#tail.then(async () => {
      try {
        const stream = new CompressionStream("deflate-raw");
        const writer = stream.writable.getWriter();
        writer.write(copy).catch(() => {});
        writer.close().catch(() => {});
        const out = await readAll(stream.readable, Number.MAX_SAFE_INTEGER);
        if (out instanceof WebSocketError) throw out;
        // The output ends in a BFINAL block. RFC 7692 §7.2.3.3: append an empty stored block
        // (00 00 00 FF FF) and strip its last 4 bytes, which leaves one 0x00.
        const payload = new Uint8Array(out.length + 1);
        payload.set(out);
        done(payload);
      } catch (error) {
        done(deflateFailed(error));
      }
    });
  }

  close(): void {}
}

/** Message after message, each in its own DecompressionStream. */
class WebDecompressor implements MessageDecompressor {
  decompress(data: Uint8Array, limit: number, done: DeflateCallback): void {
    const input = new Uint8Array(data.length + DEFLATE_TAIL.length + FINAL_BLOCK.length);
    input.set(data);
    input.set(DEFLATE_TAIL, data.length);
    input.set(FINAL_BLOCK, data.length + DEFLATE_TAIL.length);
    const stream = new DecompressionStream("deflate-raw");
    const writer = stream.writable.getWriter();
    feed(writer, input);
    readAll(stream.readable, limit).then(
      (out) => done(out),
      (error) => done(inflateFailed(error)),
    );
  }

  close(): void {}
}

const decompressor = new WebDecompressor();

/**
 * The CompressionStream engine: for `localNoContextTakeover` and `remoteNoContextTakeover`
 * only (the server asks for both when it uses this engine).
 *
 * @example
 * ```ts
 * import { webEngine } from "./web_engine.ts";
 * const params = {
 *   localNoContextTakeover: true,
 *   remoteNoContextTakeover: true,
 *   localMaxWindowBits: 15,
 *   remoteMaxWindowBits: 15,
 * };
 * webEngine.compressor(params, {}).compress(new TextEncoder().encode("hello"), (payload) => {
 *   console.log(payload);
 * });
 * ```
 */
export const webEngine: DeflateEngine = {
  name: "web",
  // CompressionStream has no window setting: it always uses 15 bits.
  minWindowBits: 15,
  compressor(): MessageCompressor {
    // Ordering is per connection, so each connection gets its own (stateless) queue.
    return new WebCompressor();
  },
  decompressor(): MessageDecompressor {
    return decompressor;
  },
};
