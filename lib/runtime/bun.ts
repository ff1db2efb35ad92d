/**
 * The Bun adapter: `Bun.listen` sockets as {@linkcode Transport}s.
 *
 * Bun hands `data` a fresh buffer every time and never reuses it, so chunks go to the server
 * as they are: no copy, and no read buffer at all while a connection is idle. `socket.write`
 * writes what the kernel takes and queues nothing, so the rest waits here for `drain`.
 *
 * @module
 */
import type { Listen, Transport, TransportHandler } from "../core/transport.ts";
import { listenError } from "./_listen_error.ts";
import { UrgentQueue } from "../core/urgent_queue.ts";

// The few parts of Bun's API this adapter uses, typed here so the package type-checks under
// Deno without Bun's global types.
interface BunSocket {
  data: BunTransport;
  readonly remoteAddress: string;
  readonly remotePort?: number;
  write(data: Uint8Array): number;
  end(): void;
  terminate(): void;
  pause(): void;
  resume(): void;
  setNoDelay(noDelay?: boolean): boolean;
}

interface BunListener {
  readonly hostname: string;
  readonly port: number;
  stop(closeActiveConnections?: boolean): void;
}

interface BunApi {
  listen(options: {
    hostname: string;
    port: number;
    tls?: { cert: string; key: string };
    allowHalfOpen?: boolean;
    socket: {
      binaryType: "uint8array";
      open(socket: BunSocket): void;
      data(socket: BunSocket, chunk: Uint8Array): void;
      drain(socket: BunSocket): void;
      end(socket: BunSocket): void;
      close(socket: BunSocket, error?: Error): void;
      error(socket: BunSocket, error: Error): void;
    };
  }): BunListener;
}

/** Binds a Bun listener. */
export const listen: Listen = (options, accept) => {
  const bun = (globalThis as unknown as { Bun: BunApi }).Bun;
  const tls = options.cert !== undefined && options.key !== undefined
    ? { cert: options.cert, key: options.key }
    : undefined;
  let listener: BunListener;
  try {
    listener = bunListen(bun, options.hostname, options.port, tls, accept);
  } catch (error) {
    // Errors of Bun's TLS library carry ERR_OSSL_… codes (NO_START_LINE, KEY_VALUES_MISMATCH).
    const code = (error as { code?: unknown } | null)?.code;
    throw listenError(
      options,
      error,
      tls !== undefined && typeof code === "string" && code.startsWith("ERR_OSSL")
        ? `the TLS certificate or key was refused (${(error as Error).message})`
        : undefined,
    );
  }
  return {
    hostname: listener.hostname,
    port: listener.port,
    close() {
      listener.stop(false);
    },
  };
};

function bunListen(
  bun: BunApi,
  hostname: string,
  port: number,
  tls: { cert: string; key: string } | undefined,
  accept: Parameters<Listen>[1],
): BunListener {
  return bun.listen({
    hostname,
    port,
    tls,
    // We decide when to close after the peer's FIN: a Close frame may still have to go out.
    allowHalfOpen: true,
    socket: {
      binaryType: "uint8array",
      open(socket) {
        socket.setNoDelay(true);
        const transport = new BunTransport(socket);
        socket.data = transport;
        transport.handler = accept(transport);
      },
      data(socket, chunk) {
        socket.data.received(chunk);
      },
      drain(socket) {
        socket.data.drain();
      },
      end(socket) {
        socket.data.ended();
      },
      close(socket, error) {
        socket.data.closed(error);
      },
      error(socket, error) {
        // Our handlers do not throw; if one does, the connection is dropped, not the server.
        console.error("sluice: unexpected error in a socket handler", error);
        socket.data?.destroy();
      },
    },
  });
}

class BunTransport implements Transport {
  readonly remoteAddress: string;
  readonly remotePort: number;
  // bench/echo_server.ts, 100 connections x 16 echoes of 32 B in flight: +8 % messages per
  // CPU-second with small payloads copied (on Deno, copies cost 30 %).
  readonly copyBelow = 65;
  handler!: TransportHandler;
  #socket: BunSocket;
  // Made at the first short write: an idle connection holds no arrays.
  #queue: Uint8Array[] | undefined;
  /** For each queued chunk: it ends inside a frame. */
  #partial: boolean[] | undefined;
  /** Pings and pongs waiting for a frame boundary (made at the first). */
  #urgent: UrgentQueue | undefined;
  /** What the socket has taken ends inside a frame: urgent frames must wait for its end. */
  #midFrame = false;
  /** The socket took less than it was given: nothing more until `drain`. */
  #blocked = false;
  #buffered = 0;
  /** The mark asked for with watchBelow (−1: none). */
  #below = -1;
  #ending = false;
  #writeClosed = false;
  #closed = false;

  constructor(socket: BunSocket) {
    this.#socket = socket;
    this.remoteAddress = socket.remoteAddress;
    this.remotePort = socket.remotePort ?? 0;
  }

  setHandler(handler: TransportHandler): void {
    this.handler = handler;
  }

  get bufferedAmount(): number {
    return this.#buffered;
  }

  received(chunk: Uint8Array): void {
    if (this.#writeClosed || this.#closed) return; // We said goodbye: discard.
    this.handler.onData(chunk);
  }

  write(chunk: Uint8Array, reusable: boolean, partial = false): void {
    if (this.#closed || this.#ending || chunk.length === 0) return;
    if (!this.#blocked && (this.#queue === undefined || this.#queue.length === 0)) {
      // Nothing waits, or only urgent frames that wait for this chunk (the rest of a frame).
      const written = this.#socket.write(chunk);
      if (written === chunk.length) {
        this.#midFrame = partial;
        if (!partial && this.#urgent !== undefined && this.#urgent.length !== 0) this.#pump();
        return;
      }
      if (written < 0) return; // Closing: the close handler follows.
      this.#blocked = true;
      if (written > 0) this.#midFrame = true;
      chunk = chunk.subarray(written);
    }
    (this.#queue ??= []).push(reusable ? chunk.slice() : chunk);
    (this.#partial ??= []).push(partial);
    this.#buffered += chunk.length;
  }

  writeUrgent(chunk: Uint8Array): void {
    if (this.#closed || this.#ending || chunk.length === 0) return;
    this.#buffered += (this.#urgent ??= new UrgentQueue()).push(chunk);
    if (!this.#blocked) this.#pump();
  }

  /**
   * Writes what waits until the socket is full: urgent frames at each frame boundary, in their
   * order, else queued chunks.
   */
  #pump(): void {
    const socket = this.#socket;
    const urgent = this.#urgent;
    for (;;) {
      const queue = this.#queue;
      if (urgent !== undefined && urgent.length !== 0 && (urgent.started || !this.#midFrame)) {
        const written = socket.write(urgent.peek()!);
        if (written < 0) return;
        this.#buffered -= written;
        if (!urgent.consume(written)) {
          this.#blocked = true;
          return;
        }
        continue;
      }
      if (queue === undefined || queue.length === 0) return;
      const chunk = queue[0];
      const written = socket.write(chunk);
      if (written < 0) return;
      this.#buffered -= written;
      if (written < chunk.length) {
        if (written > 0) {
          queue[0] = chunk.subarray(written);
          this.#midFrame = true;
        }
        this.#blocked = true;
        if (this.#buffered <= this.#below) {
          this.#below = -1;
          this.handler.onBelow();
        }
        return;
      }
      queue.shift();
      this.#midFrame = this.#partial!.shift()!;
    }
  }

  drain(): void {
    this.#blocked = false;
    this.#pump();
    if (this.#blocked || this.#buffered !== 0) return;
    if (this.#ending) this.#halfClose();
    else this.handler.onDrain();
  }

  ended(): void {
    // Both sides said goodbye: Bun closes the socket itself. (terminate() would send RST and
    // could drop our last frames still in the kernel's send buffer.)
    if (this.#writeClosed) return;
    this.handler.onEnd();
  }

  end(): void {
    if (this.#closed || this.#ending) return;
    this.#ending = true;
    if (this.#buffered === 0) this.#halfClose();
  }

  #halfClose(): void {
    if (this.#writeClosed) return;
    this.#writeClosed = true;
    this.#socket.end();
  }

  destroy(): void {
    if (this.#closed) return;
    this.#queue = this.#partial = this.#urgent = undefined;
    this.#buffered = 0;
    this.#socket.terminate();
  }

  pause(): void {
    this.#socket.pause();
  }

  resume(): void {
    this.#socket.resume();
  }

  watchBelow(bytes: number): void {
    this.#below = bytes;
  }

  closed(error?: Error): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#queue = this.#partial = this.#urgent = undefined;
    this.#buffered = 0;
    this.handler.onClose(error);
  }
}
