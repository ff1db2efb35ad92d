/**
 * The Deno adapter: `Deno.listen` / `Deno.listenTls` connections as {@linkcode Transport}s.
 *
 * Reads go into a per-connection buffer that is never written twice: each read takes the free
 * tail of it, so views handed to the server stay valid, and a fresh buffer is allocated once
 * the tail is small. The read size adapts: it starts small (a pending `conn.read` pins its
 * buffer, so an idle connection should pin little) and doubles while reads fill it.
 *
 * @module
 */
import type { Listen, Listener, Transport, TransportHandler } from "../server/transport.ts";

const MIN_READ = 1024;
const MAX_READ = 256 * 1024;
// Chunks queued behind a write in flight are merged up to this size into one write.
const MERGE_LIMIT = 64 * 1024;

/** Binds a Deno listener. */
export const listen: Listen = (options, accept) => {
  const listener = options.cert !== undefined && options.key !== undefined
    ? Deno.listenTls({
      hostname: options.hostname,
      port: options.port,
      cert: options.cert,
      key: options.key,
    })
    : Deno.listen({ hostname: options.hostname, port: options.port });
  let closed = false;
  (async () => {
    while (!closed) {
      let conn: Deno.Conn;
      try {
        conn = await listener.accept();
      } catch (error) {
        if (closed || error instanceof Deno.errors.BadResource) return;
        // EMFILE and the like: keep accepting once resources free up.
        await new Promise((resolve) => setTimeout(resolve, 10));
        continue;
      }
      const transport = new DenoTransport(conn);
      transport.start(accept(transport));
    }
  })();
  const addr = listener.addr as Deno.NetAddr;
  const result: Listener = {
    hostname: addr.hostname,
    port: addr.port,
    close() {
      if (closed) return;
      closed = true;
      try {
        listener.close();
      } catch {
        // Already closed.
      }
    },
  };
  return result;
};

class DenoTransport implements Transport {
  readonly remoteAddress: string;
  readonly remotePort: number;
  #conn: Deno.Conn;
  #handler!: TransportHandler;
  #buffer: Uint8Array | undefined;
  #readSize = MIN_READ;
  #queue: Uint8Array[] = [];
  /** For each queued chunk: it ends inside a frame. */
  #partial: boolean[] = [];
  /** The write in flight ends inside a frame. */
  #inFlightPartial = false;
  #buffered = 0;
  #writing = false;
  #ending = false;
  #writeClosed = false;
  #eof = false;
  #closed = false;
  #paused = false;
  #wake: (() => void) | undefined;

  constructor(conn: Deno.Conn) {
    this.#conn = conn;
    const addr = conn.remoteAddr as Deno.NetAddr;
    this.remoteAddress = addr.hostname;
    this.remotePort = addr.port;
    try {
      (conn as Deno.TcpConn).setNoDelay?.(true);
    } catch {
      // Not a TCP socket, or already closed.
    }
  }

  get bufferedAmount(): number {
    return this.#buffered;
  }

  start(handler: TransportHandler): void {
    this.#handler = handler;
    this.#read();
  }

  async #read(): Promise<void> {
    const conn = this.#conn;
    try {
      while (!this.#closed) {
        if (this.#paused) {
          await new Promise<void>((resolve) => this.#wake = resolve);
          continue;
        }
        let buffer = this.#buffer;
        if (buffer === undefined || buffer.length < this.#readSize >> 2) {
          buffer = new Uint8Array(this.#readSize);
        }
        const n = await conn.read(buffer);
        if (n === null) break;
        if (n === buffer.length) {
          this.#readSize = Math.min(this.#readSize * 2, MAX_READ);
          this.#buffer = undefined;
        } else {
          if (n < this.#readSize >> 3) this.#readSize = Math.max(this.#readSize >> 1, MIN_READ);
          this.#buffer = buffer.subarray(n);
        }
        if (this.#writeClosed) continue; // We said goodbye: wait for the peer's EOF.
        this.#handler.onData(buffer.subarray(0, n));
      }
    } catch (error) {
      this.#close(error);
      return;
    }
    this.#buffer = undefined;
    this.#eof = true;
    if (this.#writeClosed) this.#close();
    else if (!this.#closed) this.#handler.onEnd();
  }

  write(chunk: Uint8Array, reusable: boolean, partial = false): void {
    if (this.#closed || this.#ending || chunk.length === 0) return;
    this.#queue.push(reusable ? chunk.slice() : chunk);
    this.#partial.push(partial);
    this.#buffered += chunk.length;
    if (!this.#writing) this.#flush();
  }

  writeUrgent(chunk: Uint8Array): void {
    if (this.#closed || this.#ending || chunk.length === 0) return;
    let at = 0;
    if (this.#inFlightPartial) {
      // The frame being written goes on in the queue: insert after its last chunk.
      at = this.#partial.indexOf(false) + 1;
      if (at === 0) at = this.#queue.length;
    }
    this.#queue.splice(at, 0, chunk);
    this.#partial.splice(at, 0, false);
    this.#buffered += chunk.length;
    if (!this.#writing) this.#flush();
  }

  async #flush(): Promise<void> {
    this.#writing = true;
    const queue = this.#queue;
    try {
      while (queue.length !== 0 && !this.#closed) {
        let data = this.#take();
        while (data.length !== 0) {
          const n = await this.#conn.write(data);
          this.#buffered -= n;
          data = data.subarray(n);
        }
      }
    } catch (error) {
      this.#writing = false;
      this.#close(error);
      return;
    }
    this.#writing = false;
    if (this.#closed) return;
    if (this.#ending) this.#halfClose();
    else this.#handler.onDrain();
  }

  /** The next write: the queue's head, merged with the small chunks behind it. */
  #take(): Uint8Array {
    const queue = this.#queue;
    const first = queue[0];
    let count = 1;
    let size = first.length;
    while (count < queue.length && size + queue[count].length <= MERGE_LIMIT) {
      size += queue[count].length;
      count++;
    }
    this.#inFlightPartial = this.#partial[count - 1];
    this.#partial.splice(0, count);
    if (count === 1) {
      queue.shift();
      return first;
    }
    const merged = new Uint8Array(size);
    let offset = 0;
    for (let i = 0; i < count; i++) {
      merged.set(queue[i], offset);
      offset += queue[i].length;
    }
    queue.splice(0, count);
    return merged;
  }

  end(): void {
    if (this.#closed || this.#ending) return;
    this.#ending = true;
    if (!this.#writing) this.#halfClose();
  }

  /** Sends FIN, then keeps reading (and discarding) until the peer's EOF. */
  #halfClose(): void {
    if (this.#writeClosed) return;
    this.#writeClosed = true;
    if (this.#eof) {
      this.#close();
      return;
    }
    try {
      this.#conn.closeWrite().catch(() => this.#close());
    } catch {
      this.#close();
    }
  }

  destroy(): void {
    this.#close();
  }

  pause(): void {
    this.#paused = true;
  }

  resume(): void {
    if (!this.#paused) return;
    this.#paused = false;
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  #close(error?: unknown): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#queue.length = 0;
    this.#partial.length = 0;
    this.#buffered = 0;
    try {
      this.#conn.close();
    } catch {
      // Already closed.
    }
    this.#wake?.();
    this.#handler.onClose(isQuiet(error) ? undefined : error);
  }
}

/** Errors that only say the peer went away. */
function isQuiet(error: unknown): boolean {
  return error === undefined || error instanceof Deno.errors.BadResource ||
    error instanceof Deno.errors.Interrupted || error instanceof Deno.errors.ConnectionReset ||
    error instanceof Deno.errors.BrokenPipe || error instanceof Deno.errors.ConnectionAborted;
}
