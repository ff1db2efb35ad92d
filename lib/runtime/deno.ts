/**
 * The Deno adapter: `Deno.listen` / `Deno.listenTls` connections, and those opened by
 * `Deno.connect` (then `Deno.startTls`), as {@linkcode Transport}s.
 *
 * Reads go into a per-connection buffer that is never written twice: each read takes the free
 * tail of it, so views handed to the server stay valid, and a fresh buffer is allocated once
 * the tail is small. The read size adapts: it doubles while reads fill it. A pending
 * `conn.read` pins its buffer, so an idle connection should pin little: the first read is
 * large enough for a request (or response) head, and the next one, which waits for as long as
 * a new connection stays idle, is small.
 *
 * @module
 */
import type {
  Connect,
  ConnectOptions,
  Listen,
  Listener,
  Transport,
  TransportHandler,
} from "../core/transport.ts";
import { connectError, tlsError } from "./_connect_error.ts";
import { listenError } from "./_listen_error.ts";
import { UrgentQueue } from "../core/urgent_queue.ts";

/** The first read: an opening handshake's head fits it whole, usually. */
const FIRST_READ = 1024;
/** The read after the first: it is pending for as long as a new connection stays idle. */
const IDLE_READ = 128;
/** Short reads shrink the read size down to this, not below (only IDLE_READ starts below). */
const MIN_READ = 1024;
const MAX_READ = 256 * 1024;
// `conn.write` is asynchronous: a chunk the caller reuses must be copied until its write
// completes, and so must the small chunks queued behind a write in flight (so the next write
// takes them all at once). They are copied into staging buffers from pools, and each write is
// one queued chunk: a copy per write, and no allocation per write. Under a fan-out (a write
// per subscriber per tick, 100,000 a second in bench/fanout_overload.ts) every ArrayBuffer made
// per write lived until the next full collection: staging buffers dropped by a capped pool
// and merges of queued chunks into a new buffer made 20–80 MB of them a second, `external`
// swung between 15 and 85 MiB, and the peak RSS was 118 MiB above the baseline (medians of
// runs the machine left alone); with these pools, 86 MiB above, 60 of which a bare
// `Deno.listen` server writing the same bytes also takes (V8's young generation).
/** The smallest staging buffer: what a tick usually gives a connection fits. */
const MIN_STAGE = 4 * 1024;
/** The largest: one write's worth. A staging buffer that fills up moves to one twice as big. */
const MAX_STAGE = 64 * 1024;
/**
 * Pools are trimmed at most this often (ms), checked every `TRIM_EVERY` takes and returns. Not
 * much more often: a buffer dropped from a pool is garbage V8 frees only at a full collection
 * (it lived long enough to be old), and one that is then needed again is a new allocation.
 */
const TRIM_PERIOD = 10_000;
const TRIM_EVERY = 1024;
/**
 * The most bytes one pool keeps free, whatever the trimming: enough for a fan-out to 1,000
 * subscribers at the smallest size (each with one buffer in flight and one filling), and a
 * bound on what a burst can leave behind on an idle server (5 pools × 8 MiB).
 */
const POOL_BYTES = 8 * 1024 * 1024;

/**
 * Staging buffers of one size. A cap of 1,024 buffers, below what a busy tick uses at once
 * (every subscriber of a broadcast holds one in flight and one filling), made the pool churn;
 * so the cap is in bytes (`POOL_BYTES`), and each period drops half of the buffers that stayed
 * free all period, so a pool follows what is used and empties over some periods of lighter
 * load. (The check rides on takes and returns, so an idle server keeps at most what its
 * busiest moment used, up to the cap.)
 */
class StagePool {
  readonly size: number;
  #free: Uint8Array[] = [];
  /** The fewest buffers free since the last trim: that many were not needed. */
  #low = 0;

  constructor(size: number) {
    this.size = size;
  }

  take(): Uint8Array {
    const free = this.#free;
    const stage = free.pop();
    if (free.length < this.#low) this.#low = free.length;
    return stage ?? new Uint8Array(this.size);
  }

  give(stage: Uint8Array): void {
    if ((this.#free.length + 1) * this.size <= POOL_BYTES) this.#free.push(stage);
  }

  trim(): void {
    // The least recently used are at the bottom of the stack.
    if (this.#low > 1) this.#free.splice(0, this.#low >> 1);
    this.#low = this.#free.length;
  }
}

/** Pools of 4, 8, 16, 32 and 64 KiB staging buffers. */
const pools: StagePool[] = [];
for (let size = MIN_STAGE; size <= MAX_STAGE; size *= 2) pools.push(new StagePool(size));
let poolOps = 0;
let trimmed = 0;

/** The pool of the smallest staging buffers that hold `bytes` (at most `MAX_STAGE`). */
function poolFor(bytes: number): StagePool {
  let i = 0;
  while (pools[i].size < bytes) i++;
  return pools[i];
}

function takeStage(bytes: number): Uint8Array {
  if ((++poolOps & (TRIM_EVERY - 1)) === 0) trimPools();
  return poolFor(bytes).take();
}

function giveStage(stage: Uint8Array): void {
  if ((++poolOps & (TRIM_EVERY - 1)) === 0) trimPools();
  poolFor(stage.length).give(stage);
}

function trimPools(): void {
  const now = performance.now();
  if (now - trimmed < TRIM_PERIOD) return;
  trimmed = now;
  for (const pool of pools) pool.trim();
}

/** Binds a Deno listener. */
export const listen: Listen = (options, accept) => {
  const { cert, key } = options;
  const tls = cert !== undefined && key !== undefined;
  let listener: Deno.Listener;
  try {
    listener = tls
      ? Deno.listenTls({ hostname: options.hostname, port: options.port, cert, key })
      : Deno.listen({ hostname: options.hostname, port: options.port });
  } catch (error) {
    throw listenError(options, error, denoReason(error, tls));
  }
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

/** What was wrong, for the errors of `Deno.listen` that carry no socket error code. */
function denoReason(error: unknown, tls: boolean): string | undefined {
  // Deno's TLS errors: "No certificates found in certificate data", "keys may not be consistent: …",
  // "invalid peer certificate: …".
  const message = error instanceof Error ? error.message : String(error);
  if (tls && (error instanceof Deno.errors.InvalidData || /certificate|key/i.test(message))) {
    return `the TLS certificate or key was refused (${message})`;
  }
  return denoNetReason(error);
}

/** What was wrong, for the errors of `Deno.listen` and `Deno.connect` without a socket code. */
function denoNetReason(error: unknown): string | undefined {
  if (error instanceof Deno.errors.NotCapable) {
    return "network access is not allowed (run Deno with --allow-net)";
  }
  const message = error instanceof Error ? error.message : String(error);
  if (/failed to lookup address/i.test(message)) return "the host name could not be resolved";
  return undefined;
}

/**
 * Opens a Deno connection. TLS is `Deno.connect` then `Deno.startTls` rather than
 * `Deno.connectTls`: the latter verifies the name it connects to and takes no signal, the
 * former pair lets `serverName` differ from the address and aborts the TCP connect itself.
 * An abort during the TLS handshake closes the connection, but Deno finishes (or fails) a
 * handshake before it lets the socket go: a server that never answers keeps it until it gives
 * up.
 */
export const connect: Connect = async (options, handler) => {
  const { hostname, port, tls, signal } = options;
  signal?.throwIfAborted();
  let conn: Deno.TcpConn | Deno.TlsConn;
  try {
    conn = await Deno.connect({ hostname, port, signal });
  } catch (error) {
    if (signal?.aborted) throw signal.reason;
    throw connectError(options, error, denoNetReason(error));
  }
  try {
    // On the TCP socket: a TLS connection has no setNoDelay of its own, and the option stays.
    conn.setNoDelay(true);
  } catch {
    // Already closed: the first read says so.
  }
  if (tls !== undefined) conn = await startTls(conn, options);
  if (signal?.aborted) {
    closeQuietly(conn);
    throw signal.reason;
  }
  const transport = new DenoTransport(conn);
  transport.start(handler);
  return transport;
};

/** Runs the TLS handshake on `tcp` (which it consumes); `options.signal` closes it. */
async function startTls(tcp: Deno.TcpConn, options: ConnectOptions): Promise<Deno.TlsConn> {
  const { hostname, tls, signal } = options;
  // Closing the connection cancels the handshake; `startTls` itself resolves before it starts,
  // and takes `tcp` away at once (closing `tcp` then fails), so the check follows it.
  let conn: Deno.TlsConn | undefined;
  const abort = () => {
    if (conn !== undefined) closeQuietly(conn);
  };
  signal?.addEventListener("abort", abort, { once: true });
  try {
    conn = await Deno.startTls(tcp, { hostname: tls?.serverName ?? hostname, caCerts: tls?.ca });
    signal?.throwIfAborted();
    await conn.handshake();
    return conn;
  } catch (error) {
    closeQuietly(conn ?? tcp);
    if (signal?.aborted) throw signal.reason;
    // rustls' messages: "invalid peer certificate: UnknownIssuer", "… certificate not valid for
    // name …"; "unexpected end of file" when the server closes; "received fatal alert: …".
    const message = error instanceof Error ? error.message : String(error);
    throw tlsError(
      options,
      error,
      /peer certificate/i.test(message)
        ? "certificate"
        : error instanceof Deno.errors.UnexpectedEof || isQuiet(error)
        ? "closed"
        : "handshake",
    );
  } finally {
    signal?.removeEventListener("abort", abort);
  }
}

/** Closes `conn` if it is still open. */
function closeQuietly(conn: Deno.Conn): void {
  try {
    conn.close();
  } catch {
    // Already closed (by an abort, a failed handshake, or the peer).
  }
}

// A Deno transport's state, a bit each.
/** A read is pending, or its data is being handed on. */
const READING = 1;
/** A write is in flight. */
const WRITING = 2;
/** The write in flight ends inside a frame: urgent frames wait for its end. */
const IN_FLIGHT_PARTIAL = 4;
/** end() was called: our FIN follows what is queued. */
const ENDING = 8;
/** Our FIN is out: what the peer sends is discarded until its EOF. */
const WRITE_CLOSED = 16;
/** The peer's EOF came. */
const EOF = 32;
const CLOSED = 64;
/** pause() was called: no reads until resume(). */
const PAUSED = 128;

class DenoTransport implements Transport {
  readonly remoteAddress: string;
  readonly remotePort: number;
  #conn: Deno.Conn;
  #handler!: TransportHandler;
  /** The buffer the pending read fills, or the free tail of the last one. */
  #buffer: Uint8Array | undefined;
  /** The size of the next read; 0 before the first (which is `FIRST_READ`). */
  #readSize = 0;
  /** Where the pending read's promise goes, resolved or rejected (one per connection). */
  #onRead: ((result: number | null | Error) => void) | undefined;
  // Chunks to write behind the write in flight, in order, one per write (made at the first).
  #queue: Uint8Array[] | undefined;
  /** For each queued chunk: it ends inside a frame. */
  #partial: boolean[] | undefined;
  /** For each queued chunk: the staging buffer it views, if it is staged. */
  #owner: (Uint8Array | undefined)[] | undefined;
  /** The staging buffer that the last queued chunk views, while more may go behind it. */
  #stage: Uint8Array | undefined;
  #stageEnd = 0;
  /** The write in flight (what is left of it). */
  #inFlight: Uint8Array | undefined;
  /**
   * Where each write's promise goes, resolved or rejected: made when writing starts, and let go
   * when nothing is left to write, so an idle connection holds none.
   */
  #onWritten: ((result: number | Error) => void) | undefined;
  /** The staging buffer of the write in flight, returned to its pool when the write is done. */
  #inFlightStage: Uint8Array | undefined;
  /** Pings and pongs waiting for a frame boundary (made at the first). */
  #urgent: UrgentQueue | undefined;
  #buffered = 0;
  /** The mark asked for with watchBelow (−1: none). */
  #below = -1;
  /** The transport's state: the bits below. */
  #state = 0;

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

  /** Writes complete later: a chunk the caller reuses is copied (see the Transport contract). */
  get writesLater(): boolean {
    return true;
  }

  get bufferedAmount(): number {
    return this.#buffered;
  }

  start(handler: TransportHandler): void {
    this.#handler = handler;
    this.#read();
  }

  setHandler(handler: TransportHandler): void {
    this.#handler = handler;
  }

  /**
   * Starts the next read, unless one is pending or reading is paused or over. Its promise goes
   * to one function of this connection, made once: no async function per connection waits
   * with its frame, and no closures are made per read.
   */
  #read(): void {
    if ((this.#state & (READING | PAUSED | CLOSED)) !== 0) return;
    const size = this.#readSize || FIRST_READ;
    let buffer = this.#buffer;
    if (buffer === undefined || buffer.length < size >> 2) {
      buffer = this.#buffer = new Uint8Array(size);
    }
    this.#state |= READING;
    const done = this.#onRead ??= (result) => this.#readDone(result);
    this.#conn.read(buffer).then(done, done);
  }

  /** A read is over: `n` bytes in `#buffer`, `null` at EOF, or the error. */
  #readDone(n: number | null | Error): void {
    if (typeof n !== "number") {
      this.#state &= ~READING;
      if (n !== null) {
        this.#close(n);
        return;
      }
      this.#buffer = undefined;
      this.#state |= EOF;
      if ((this.#state & WRITE_CLOSED) !== 0) this.#close();
      else if ((this.#state & CLOSED) === 0) this.#handler.onEnd();
      return;
    }
    const buffer = this.#buffer!;
    const size = this.#readSize;
    if (n === buffer.length) {
      this.#readSize = Math.min((size || FIRST_READ) * 2, MAX_READ);
      this.#buffer = undefined;
    } else if (size === 0) {
      // The first read (the handshake's head) did not fill: the connection may stay idle now.
      this.#readSize = IDLE_READ;
      this.#buffer = undefined;
    } else {
      if (n < size >> 3 && size > MIN_READ) this.#readSize = Math.max(size >> 1, MIN_READ);
      this.#buffer = buffer.subarray(n);
    }
    // We said goodbye: discard, and wait for the peer's EOF.
    if ((this.#state & (WRITE_CLOSED | CLOSED)) === 0) {
      try {
        this.#handler.onData(buffer.subarray(0, n));
      } catch (error) {
        this.#state &= ~READING;
        this.#close(error);
        return;
      }
    }
    this.#state &= ~READING;
    this.#read();
  }

  write(chunk: Uint8Array, reusable: boolean, partial = false): void {
    if ((this.#state & (CLOSED | ENDING)) !== 0 || chunk.length === 0) return;
    const length = chunk.length;
    this.#buffered += length;
    if ((this.#state & WRITING) === 0) {
      // Nothing waits: the chunk is the next write, with no queue.
      if (reusable) {
        if (length <= MAX_STAGE) {
          const stage = this.#inFlightStage = takeStage(length);
          stage.set(chunk);
          chunk = stage.subarray(0, length);
        } else {
          chunk = chunk.slice();
        }
      }
      this.#state = partial ? this.#state | IN_FLIGHT_PARTIAL : this.#state & ~IN_FLIGHT_PARTIAL;
      this.#flush(chunk);
      return;
    }
    if (this.#queue === undefined) {
      this.#queue = [];
      this.#partial = [];
      this.#owner = [];
    }
    if (reusable ? length <= MAX_STAGE : length <= MIN_STAGE) {
      // Behind a write in flight a small chunk is staged even if it could be kept, so that
      // the next write takes it with the others.
      this.#stageChunk(chunk, partial);
    } else {
      this.#stage = undefined;
      this.#queue.push(reusable ? chunk.slice() : chunk);
      this.#partial!.push(partial);
      this.#owner!.push(undefined);
    }
  }

  /** Copies `chunk` behind the last queued chunk if that is staged and has room, else anew. */
  #stageChunk(chunk: Uint8Array, partial: boolean): void {
    const length = chunk.length;
    const queue = this.#queue!;
    const owner = this.#owner!;
    const partials = this.#partial!;
    let stage = this.#stage;
    let end = this.#stageEnd;
    if (stage === undefined || end + length > stage.length) {
      if (stage !== undefined && end + length <= MAX_STAGE) {
        // It filled up behind a write in flight: what it holds moves to a bigger one, which
        // goes on filling. The smaller one is not in flight, so it goes back now.
        const bigger = takeStage(Math.max(end + length, stage.length * 2));
        bigger.set(stage.subarray(0, end));
        giveStage(stage);
        stage = bigger;
        owner[queue.length - 1] = bigger;
      } else {
        stage = takeStage(length);
        end = 0;
        queue.push(stage);
        partials.push(false);
        owner.push(stage);
      }
      this.#stage = stage;
    }
    stage.set(chunk, end);
    this.#stageEnd = end += length;
    queue[queue.length - 1] = stage.subarray(0, end);
    partials[queue.length - 1] = partial;
  }

  writeUrgent(chunk: Uint8Array): void {
    if ((this.#state & (CLOSED | ENDING)) !== 0 || chunk.length === 0) return;
    this.#buffered += (this.#urgent ??= new UrgentQueue()).push(chunk);
    if ((this.#state & WRITING) === 0) this.#flush(undefined);
  }

  /**
   * Writes `first` (set up in flight by the caller), then what waits, until nothing does. The
   * writes chain on one function, made here: no async function, and no closure per write.
   */
  #flush(first: Uint8Array | undefined): void {
    this.#state |= WRITING;
    this.#onWritten = (result) => this.#writeDone(result);
    const data = first ?? this.#take();
    if (data === undefined) this.#flushed();
    else this.#send(data);
  }

  /** Hands `data` to the socket; `#writeDone` follows. */
  #send(data: Uint8Array): void {
    this.#inFlight = data;
    const done = this.#onWritten!;
    let written: Promise<number>;
    try {
      written = this.#conn.write(data);
    } catch (error) {
      this.#writeDone(error as Error);
      return;
    }
    written.then(done, done);
  }

  /** A write is over: `n` bytes of `#inFlight` went to the socket, or it failed. */
  #writeDone(n: number | Error): void {
    if (typeof n !== "number") {
      this.#writeFailed(n);
      return;
    }
    const data = this.#inFlight!;
    this.#buffered -= n;
    if (this.#buffered <= this.#below) {
      this.#below = -1;
      try {
        this.#handler.onBelow();
      } catch (error) {
        this.#writeFailed(error);
        return;
      }
    }
    if (n < data.length && (this.#state & CLOSED) === 0) {
      this.#send(data.subarray(n));
      return;
    }
    const stage = this.#inFlightStage;
    if (stage !== undefined && n === data.length) {
      this.#inFlightStage = undefined;
      giveStage(stage);
    }
    this.#inFlight = undefined;
    const next = (this.#state & CLOSED) !== 0 ? undefined : this.#take();
    if (next === undefined) this.#flushed();
    else this.#send(next);
  }

  #writeFailed(error: unknown): void {
    // The staging buffer in flight, if any, is dropped: it is not known to be free.
    this.#inFlight = this.#onWritten = undefined;
    this.#state &= ~WRITING;
    this.#close(error);
  }

  /** Nothing is left to write. */
  #flushed(): void {
    this.#state &= ~WRITING;
    this.#onWritten = undefined;
    if ((this.#state & CLOSED) !== 0) return;
    if ((this.#state & ENDING) !== 0) this.#halfClose();
    else this.#handler.onDrain();
  }

  /**
   * The next write: at a frame boundary the first urgent frame, else the queue's head. Small
   * chunks are already together in one staging buffer of up to one write's worth; chunks kept
   * by reference are large enough to go alone.
   */
  #take(): Uint8Array | undefined {
    const urgent = this.#urgent;
    if ((this.#state & IN_FLIGHT_PARTIAL) === 0 && urgent !== undefined && urgent.length !== 0) {
      const frame = urgent.peek()!;
      urgent.consume(frame.length);
      return frame;
    }
    const queue = this.#queue;
    if (queue === undefined || queue.length === 0) return undefined;
    const stage = this.#owner!.shift();
    if (stage !== undefined) {
      if (stage === this.#stage) this.#stage = undefined; // No more behind it.
      this.#inFlightStage = stage;
    }
    this.#state = this.#partial!.shift()!
      ? this.#state | IN_FLIGHT_PARTIAL
      : this.#state & ~IN_FLIGHT_PARTIAL;
    return queue.shift()!;
  }

  end(): void {
    if ((this.#state & (CLOSED | ENDING)) !== 0) return;
    this.#state |= ENDING;
    if ((this.#state & WRITING) === 0) this.#halfClose();
  }

  /** Sends FIN, then keeps reading (and discarding) until the peer's EOF. */
  #halfClose(): void {
    if ((this.#state & WRITE_CLOSED) !== 0) return;
    this.#state |= WRITE_CLOSED;
    if ((this.#state & EOF) !== 0) {
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
    this.#state |= PAUSED;
  }

  watchBelow(bytes: number): void {
    this.#below = bytes;
  }

  resume(): void {
    if ((this.#state & PAUSED) === 0) return;
    this.#state &= ~PAUSED;
    this.#read();
  }

  #close(error?: unknown): void {
    if ((this.#state & CLOSED) !== 0) return;
    this.#state |= CLOSED;
    // Queued staging buffers are not in flight: they go back.
    const owner = this.#owner;
    if (owner !== undefined) {
      for (const stage of owner) if (stage !== undefined) giveStage(stage);
      this.#queue = this.#partial = this.#owner = undefined;
    }
    this.#urgent?.clear();
    this.#stage = undefined;
    this.#buffered = 0;
    try {
      this.#conn.close();
    } catch {
      // Already closed.
    }
    this.#handler.onClose(isQuiet(error) ? undefined : error);
  }
}

/**
 * Errors that only say the socket was closed here. A reset by the peer is not one: the
 * connection broke, and the server and the client report it as Bun's adapter does.
 */
function isQuiet(error: unknown): boolean {
  return error === undefined || error instanceof Deno.errors.BadResource ||
    error instanceof Deno.errors.Interrupted;
}
