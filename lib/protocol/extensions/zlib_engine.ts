/**
 * The node:zlib engine, which both runtimes ship (FACTS.md). Without context takeover it keeps
 * no state at all: each message is one synchronous call, and a shared compressor serves every
 * connection. With context takeover it keeps a persistent zlib stream per direction,
 * sync-flushed after each message; those calls complete asynchronously.
 *
 * @module
 */
import {
  constants,
  createDeflateRaw,
  createInflateRaw,
  deflateRawSync,
  inflateRawSync,
  type ZlibOptions,
} from "node:zlib";
import { setImmediate } from "node:timers";
import type { WebSocketError } from "../errors.ts";
import {
  concatBytes,
  DEFLATE_TAIL,
  type DeflateCallback,
  type DeflateEngine,
  deflateFailed,
  type DeflateTuning,
  inflateFailed,
  type MessageCompressor,
  type MessageDecompressor,
  tooBig,
  withoutTail,
  withTail,
} from "./deflate_engine.ts";
import type { DeflateParams } from "./deflate_negotiation.ts";

const SYNC_FLUSH = constants.Z_SYNC_FLUSH;

/**
 * zlib's raw deflate has no 8-bit window; it uses 9 instead (FACTS.md). That is still what an
 * 8-bit peer can read: zlib never reaches back further than the window less 262 bytes
 * (MAX_DIST), 250 bytes for a 512-byte window, inside the 256 bytes `server_max_window_bits=8`
 * allows.
 */
function windowBits(bits: number): number {
  return Math.max(9, bits);
}

function isTooLarge(error: unknown): boolean {
  return (error as { code?: string })?.code === "ERR_BUFFER_TOO_LARGE";
}

/** One call per message, no state: the compressor for `localNoContextTakeover`. */
class StatelessCompressor implements MessageCompressor {
  readonly shareable = true;
  #options: ZlibOptions;

  constructor(options: ZlibOptions) {
    this.#options = options;
  }

  compress(data: Uint8Array, done: DeflateCallback): void {
    let out: Uint8Array;
    try {
      out = deflateRawSync(data, this.#options);
    } catch (error) {
      done(deflateFailed(error));
      return;
    }
    done(withoutTail(out));
  }

  close(): void {}
}

/** One call per message, no state: the decompressor for `remoteNoContextTakeover`. */
class StatelessDecompressor implements MessageDecompressor {
  decompress(data: Uint8Array, limit: number, done: DeflateCallback): void {
    let out: Uint8Array;
    try {
      // maxOutputLength stops zlib as soon as the output passes the limit.
      out = inflateRawSync(withTail(data), {
        finishFlush: SYNC_FLUSH,
        maxOutputLength: Math.max(limit, 1),
      });
    } catch (error) {
      done(isTooLarge(error) ? tooBig(limit) : inflateFailed(error));
      return;
    }
    if (out.length > limit) done(tooBig(limit));
    else done(out);
  }

  close(): void {}
}

/** A persistent stream, sync-flushed per message: the compressor with context takeover. */
class StreamCompressor implements MessageCompressor {
  #stream: ReturnType<typeof createDeflateRaw>;
  #chunks: Uint8Array[] = [];
  #length = 0;
  #queue: Array<{ data: Uint8Array; done: DeflateCallback }> = [];
  #error: unknown;
  #closed = false;

  constructor(options: ZlibOptions) {
    this.#stream = createDeflateRaw(options);
    this.#stream.on("data", (chunk: Uint8Array) => {
      this.#chunks.push(chunk);
      this.#length += chunk.length;
    });
    this.#stream.on("error", (error: unknown) => {
      this.#error = error;
      const queue = this.#queue.splice(0);
      for (const { done } of queue) {
        done(deflateFailed(error));
      }
    });
  }

  compress(data: Uint8Array, done: DeflateCallback): void {
    if (this.#error !== undefined) {
      done(deflateFailed(this.#error));
      return;
    }
    // The stream reads the bytes later, and the caller may reuse them: copy.
    this.#queue.push({ data: data.slice(), done });
    if (this.#queue.length === 1) this.#next();
  }

  #next(): void {
    const { data } = this.#queue[0];
    this.#stream.write(data);
    this.#stream.flush(SYNC_FLUSH, () => {
      // Closed meanwhile (the connection went away mid-compression): nobody waits for the
      // result. zlib may still call back, on Deno even twice.
      if (this.#error !== undefined || this.#closed || this.#queue.length === 0) return;
      const out = concatBytes(this.#chunks, this.#length);
      this.#chunks = [];
      this.#length = 0;
      const { done } = this.#queue.shift()!;
      done(withoutTail(out));
      if (this.#queue.length !== 0) this.#next();
    });
  }

  close(): void {
    this.#closed = true;
    this.#queue.length = 0;
    this.#stream.destroy();
  }
}

/** A persistent stream: the decompressor with context takeover. One message at a time. */
class StreamDecompressor implements MessageDecompressor {
  #stream: ReturnType<typeof createInflateRaw> | undefined;
  #chunks: Uint8Array[] = [];
  #length = 0;
  #limit = 0;
  #done: DeflateCallback | undefined;
  #dead: WebSocketError | undefined;

  decompress(data: Uint8Array, limit: number, done: DeflateCallback): void {
    if (this.#dead !== undefined) {
      done(this.#dead);
      return;
    }
    this.#done = done;
    this.#limit = limit;
    // A message that ended in a BFINAL block (RFC 7692 §7.2.3.3) ended the stream: the next
    // one starts a new stream, which is right, since nothing can refer back across that end.
    const stream = this.#stream ??= this.#open();
    stream.write(data.slice());
    stream.write(DEFLATE_TAIL);
    stream.flush(SYNC_FLUSH, () => {
      // Deno's node:zlib calls this before it emits 'error' for bad input: give the error its
      // turn before taking what came out as the message.
      setImmediate(() => {
        if (this.#stream === stream) this.#complete();
      });
    });
  }

  #open(): ReturnType<typeof createInflateRaw> {
    // A 15-bit window reads data made with any smaller one.
    const stream = createInflateRaw({ windowBits: 15 });
    stream.on("data", (chunk: Uint8Array) => {
      if (this.#done === undefined || this.#stream !== stream) return;
      this.#length += chunk.length;
      if (this.#length > this.#limit) {
        // Refuse while inflating: the rest of a bomb is never produced or kept.
        this.#fail(tooBig(this.#limit));
        return;
      }
      this.#chunks.push(chunk);
    });
    stream.on("end", () => {
      if (this.#stream !== stream) return;
      this.#stream = undefined;
      this.#complete();
    });
    // FACTS.md: after an inflate error the flush callback never fires; this is the only signal.
    stream.on("error", (error: unknown) => {
      if (this.#stream === stream) this.#fail(inflateFailed(error));
    });
    return stream;
  }

  /** The message in progress is complete: hand it over. */
  #complete(): void {
    const done = this.#done;
    if (done === undefined) return;
    const out = concatBytes(this.#chunks, this.#length);
    this.#done = undefined;
    this.#chunks = [];
    this.#length = 0;
    done(out);
  }

  /** Ends the message in progress with `error`; the stream cannot be trusted after it. */
  #fail(error: WebSocketError): void {
    this.#dead = error;
    const done = this.#done;
    this.#done = undefined;
    this.#chunks = [];
    this.#length = 0;
    this.#stream?.destroy();
    this.#stream = undefined;
    done?.(error);
  }

  close(): void {
    this.#done = undefined;
    this.#stream?.destroy();
    this.#stream = undefined;
  }
}

const shared = new Map<string, StatelessCompressor>();
const statelessDecompressor = new StatelessDecompressor();

/**
 * The node:zlib engine.
 *
 * @example
 * ```ts
 * import { zlibEngine } from "./zlib_engine.ts";
 * const params = {
 *   localNoContextTakeover: true,
 *   remoteNoContextTakeover: true,
 *   localMaxWindowBits: 15,
 *   remoteMaxWindowBits: 15,
 * };
 * zlibEngine.compressor(params, {}).compress(new TextEncoder().encode("hello"), (payload) => {
 *   console.log(payload); // the compressed bytes, without 00 00 FF FF
 * });
 * ```
 */
export const zlibEngine: DeflateEngine = {
  name: "zlib",
  // 8 is kept to with a 9-bit window: see windowBits().
  minWindowBits: 8,
  compressor(params: DeflateParams, tuning: DeflateTuning): MessageCompressor {
    const options: ZlibOptions = {
      finishFlush: SYNC_FLUSH,
      windowBits: windowBits(params.localMaxWindowBits),
      level: tuning.level ?? 1,
      memLevel: tuning.memLevel ?? 8,
    };
    if (!params.localNoContextTakeover) return new StreamCompressor(options);
    // Stateless compressors are shared by every connection with the same settings.
    const key = `${options.windowBits}/${options.level}/${options.memLevel}`;
    let compressor = shared.get(key);
    if (compressor === undefined) shared.set(key, compressor = new StatelessCompressor(options));
    return compressor;
  },
  decompressor(params: DeflateParams): MessageDecompressor {
    return params.remoteNoContextTakeover ? statelessDecompressor : new StreamDecompressor();
  },
};
