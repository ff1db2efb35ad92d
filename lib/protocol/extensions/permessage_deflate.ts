/**
 * One connection's permessage-deflate (RFC 7692): the agreed parameters and the engine's
 * compressor and decompressor, made on first use so an idle connection holds none, and freed
 * with the connection.
 *
 * @module
 */
import type {
  DeflateEngine,
  DeflateTuning,
  MessageCompressor,
  MessageDecompressor,
} from "./deflate_engine.ts";
import type { DeflateParams } from "./deflate_negotiation.ts";

/** The negotiated extension of one connection. */
export class PerMessageDeflate {
  /** The agreed parameters. */
  readonly params: DeflateParams;
  /** Messages shorter than this are sent uncompressed unless the sender asks otherwise. */
  readonly threshold: number;
  /**
   * Whether our messages may be compressed at all: not when the peer asked for a smaller
   * window (`localMaxWindowBits`) than the engine can keep to. Then every message goes out
   * uncompressed, which RFC 7692 allows for any message, and the promise holds trivially.
   */
  readonly compresses: boolean;
  #engine: DeflateEngine;
  #tuning: DeflateTuning;
  #compressor: MessageCompressor | undefined;
  #decompressor: MessageDecompressor | undefined;

  /**
   * Sets up the extension after a successful negotiation.
   *
   * @param engine The engine that compresses.
   * @param params The agreed parameters.
   * @param threshold The size from which messages are compressed by default.
   * @param tuning Level and memory level.
   */
  constructor(
    engine: DeflateEngine,
    params: DeflateParams,
    threshold: number,
    tuning: DeflateTuning,
  ) {
    this.#engine = engine;
    this.params = params;
    this.threshold = threshold;
    this.#tuning = tuning;
    this.compresses = params.localMaxWindowBits >= engine.minWindowBits;
  }

  /** The compressor for our messages, made on first use. */
  get compressor(): MessageCompressor {
    return this.#compressor ??= this.#engine.compressor(this.params, this.#tuning);
  }

  /** The decompressor for the peer's messages, made on first use. */
  get decompressor(): MessageDecompressor {
    return this.#decompressor ??= this.#engine.decompressor(this.params);
  }

  /** Frees the engine's state. */
  close(): void {
    this.#compressor?.close();
    this.#decompressor?.close();
    this.#compressor = this.#decompressor = undefined;
  }
}
