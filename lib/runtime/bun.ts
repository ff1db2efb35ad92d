/**
 * The Bun adapter: `Bun.listen` and `Bun.connect` sockets as {@linkcode Transport}s.
 *
 * Bun hands `data` a fresh buffer every time and never reuses it, so chunks go to the server
 * as they are: no copy, and no read buffer at all while a connection is idle. `socket.write`
 * writes what the kernel takes and queues nothing, so the rest waits here for `drain`.
 *
 * @module
 */
import type { Connect, Listen, Transport, TransportHandler } from "../core/transport.ts";
import { connectError, tlsError, type TlsFailure } from "./_connect_error.ts";
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

/** The events of a socket, as `Bun.listen` and `Bun.connect` take them. */
interface BunSocketHandler {
  binaryType: "uint8array";
  open(socket: BunSocket): void;
  data(socket: BunSocket, chunk: Uint8Array): void;
  drain(socket: BunSocket): void;
  end(socket: BunSocket): void;
  close(socket: BunSocket, error?: Error): void;
  error(socket: BunSocket, error: Error): void;
  /** TLS: the handshake is over (with it, `open` comes at the TCP connect, before). */
  handshake?(socket: BunSocket, success: boolean, authorizationError: Error | null): void;
  /** The connect failed (the promise rejects too). */
  connectError?(socket: BunSocket, error: Error): void;
}

interface BunApi {
  listen(options: {
    hostname: string;
    port: number;
    tls?: { cert: string; key: string };
    allowHalfOpen?: boolean;
    socket: BunSocketHandler;
  }): BunListener;
  connect(options: {
    hostname: string;
    port: number;
    tls?: { ca?: string[]; serverName?: string; rejectUnauthorized: boolean };
    allowHalfOpen?: boolean;
    socket: BunSocketHandler;
  }): Promise<BunSocket>;
}

/**
 * What a socket does once its transport exists, accepted or connected: the events go to the
 * transport in `socket.data`.
 */
const socketEvents = {
  binaryType: "uint8array",
  data(socket: BunSocket, chunk: Uint8Array) {
    socket.data.received(chunk);
  },
  drain(socket: BunSocket) {
    socket.data.drain();
  },
  // A TLS socket that fails its handshake (a client refuses the certificate and resets) ends
  // or closes without having opened: it has no transport.
  end(socket: BunSocket) {
    socket.data?.ended();
  },
  close(socket: BunSocket, error?: Error) {
    socket.data?.closed(error);
  },
  error(socket: BunSocket, error: Error) {
    // Our handlers do not throw; if one does, the connection is dropped, not the server.
    console.error("sluice: unexpected error in a socket handler", error);
    socket.data?.destroy();
  },
} as const satisfies Omit<BunSocketHandler, "open">;

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
      ...socketEvents,
      open(socket) {
        socket.setNoDelay(true);
        const transport = new BunTransport(socket);
        socket.data = transport;
        transport.handler = accept(transport);
      },
    },
  });
}

/** Where a connected transport's events go until the connect resolves. */
interface PendingHandler extends TransportHandler {
  settled: boolean;
}

/**
 * Opens a Bun connection. `Bun.connect` takes no signal: an abort rejects at once, and a socket
 * that opens afterwards is closed as it opens. With TLS, the connect resolves at the end of
 * the handshake (`handshake`), not at the TCP connect (`open`).
 */
export const connect: Connect = async (options, handler) => {
  const bun = (globalThis as unknown as { Bun: BunApi }).Bun;
  const { hostname, port, tls, signal } = options;
  signal?.throwIfAborted();
  const bunTls = tls === undefined ? undefined : {
    // Bun's `ca` replaces the default trust store; the contract adds to it, as Deno's does.
    ca: tls.ca === undefined ? undefined : [...await defaultCertificates(), ...tls.ca],
    serverName: tls.serverName,
    // Always verify: also makes the object truthy (Bun takes `tls: {}` for plain TCP).
    rejectUnauthorized: true,
  };
  signal?.throwIfAborted();
  const { promise, resolve, reject } = Promise.withResolvers<Transport>();
  let transport: BunTransport | undefined;
  // Until the connect settles: a close fails it (its error, if any, reached `handshake`).
  const pending: PendingHandler = {
    settled: false,
    onData() {},
    onDrain() {},
    onBelow() {},
    onEnd() {},
    onClose(error) {
      settle(tlsError(options, error, "closed"));
    },
  };
  const abort = () => settle(signal!.reason);
  /** Resolves, or rejects with `error` and closes the socket unless Bun is closing it. */
  const settle = (error?: unknown, closing = false) => {
    if (pending.settled) return;
    pending.settled = true;
    signal?.removeEventListener("abort", abort);
    if (error === undefined) {
      transport!.handler = handler;
      resolve(transport!);
    } else {
      if (!closing) transport?.destroy();
      reject(error);
    }
  };
  signal?.addEventListener("abort", abort, { once: true });
  try {
    bun.connect({
      hostname,
      port,
      tls: bunTls,
      allowHalfOpen: true,
      socket: {
        ...socketEvents,
        open(socket) {
          socket.setNoDelay(true);
          transport = new BunTransport(socket);
          socket.data = transport;
          transport.handler = pending;
          if (pending.settled) transport.destroy(); // Aborted while connecting.
          else if (tls === undefined) settle();
        },
        handshake(_socket, success, authorizationError) {
          if (success) settle();
          // Bun closes the socket itself after a failed handshake (with an alert, not a reset).
          else settle(tlsError(options, authorizationError, tlsFailure(authorizationError)), true);
        },
        connectError(_socket, error) {
          settle(connectError(options, error));
        },
        error(socket, error) {
          if (pending.settled) socketEvents.error(socket, error);
          else settle(tlsError(options, error, "handshake"), true); // The socket closes.
        },
      },
    }).catch((error) => {
      // Reported to `connectError` first, as a rule.
      settle(connectError(options, error));
    });
  } catch (error) {
    // Thrown at once: options Bun refuses (a port out of range, a CA that is not PEM).
    settle(connectError(options, error));
  }
  return await promise;
};

/** The trust store Bun verifies against when not given `ca` (its own and the extra ones). */
async function defaultCertificates(): Promise<string[]> {
  const tls = await import("node:tls");
  return tls.getCACertificates?.("default") ?? [...tls.rootCertificates];
}

/**
 * Sorts a failed handshake: Bun reports a refused certificate with OpenSSL's verification code
 * (`UNABLE_TO_VERIFY_LEAF_SIGNATURE`, `CERT_HAS_EXPIRED`, …) or `ERR_TLS_CERT_ALTNAME_INVALID`,
 * a server that went away with `ECONNRESET`, anything else with `EPROTO` and OpenSSL's message.
 */
function tlsFailure(error: Error | null): TlsFailure {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code !== "string" || code === "ECONNRESET") return "closed";
  return /CERT|SIGNATURE|ISSUER|ALTNAME|HOSTNAME|CHAIN|INVALID_CA|PURPOSE/.test(code)
    ? "certificate"
    : "handshake";
}

// A Bun transport's state, a bit each.
/** What the socket has taken ends inside a frame: urgent frames must wait for its end. */
const MID_FRAME = 1;
/** The socket took less than it was given: nothing more until `drain`. */
const BLOCKED = 2;
/** end() was called: our FIN follows what is queued. */
const ENDING = 4;
/** Our FIN is out: what the peer sends is discarded. */
const WRITE_CLOSED = 8;
const CLOSED = 16;

class BunTransport implements Transport {
  readonly remoteAddress: string;
  readonly remotePort: number;
  handler!: TransportHandler;
  #socket: BunSocket;
  // Made at the first short write: an idle connection holds no arrays.
  #queue: Uint8Array[] | undefined;
  /** For each queued chunk: it ends inside a frame. */
  #partial: boolean[] | undefined;
  /** Pings and pongs waiting for a frame boundary (made at the first). */
  #urgent: UrgentQueue | undefined;
  #buffered = 0;
  /** The mark asked for with watchBelow (−1: none). */
  #below = -1;
  /** The transport's state: the bits below. */
  #state = 0;

  constructor(socket: BunSocket) {
    this.#socket = socket;
    this.remoteAddress = socket.remoteAddress;
    this.remotePort = socket.remotePort ?? 0;
  }

  /**
   * bench/echo_server.ts, 100 connections x 16 echoes of 32 B in flight: +8 % messages per
   * CPU-second with small payloads copied (on Deno, copies cost 30 %). A getter, not a field:
   * one less per connection.
   */
  get copyBelow(): number {
    return 65;
  }

  setHandler(handler: TransportHandler): void {
    this.handler = handler;
  }

  get bufferedAmount(): number {
    return this.#buffered;
  }

  received(chunk: Uint8Array): void {
    if ((this.#state & (WRITE_CLOSED | CLOSED)) !== 0) return; // We said goodbye: discard.
    this.handler.onData(chunk);
  }

  write(chunk: Uint8Array, reusable: boolean, partial = false): void {
    if ((this.#state & (CLOSED | ENDING)) !== 0 || chunk.length === 0) return;
    if ((this.#state & BLOCKED) === 0 && (this.#queue === undefined || this.#queue.length === 0)) {
      // Nothing waits, or only urgent frames that wait for this chunk (the rest of a frame).
      const written = this.#socket.write(chunk);
      if (written === chunk.length) {
        this.#state = partial ? this.#state | MID_FRAME : this.#state & ~MID_FRAME;
        if (!partial && this.#urgent !== undefined && this.#urgent.length !== 0) this.#pump();
        return;
      }
      if (written < 0) return; // Closing: the close handler follows.
      this.#state |= BLOCKED;
      if (written > 0) this.#state |= MID_FRAME;
      chunk = chunk.subarray(written);
    }
    (this.#queue ??= []).push(reusable ? chunk.slice() : chunk);
    (this.#partial ??= []).push(partial);
    this.#buffered += chunk.length;
  }

  writeUrgent(chunk: Uint8Array): void {
    if ((this.#state & (CLOSED | ENDING)) !== 0 || chunk.length === 0) return;
    this.#buffered += (this.#urgent ??= new UrgentQueue()).push(chunk);
    if ((this.#state & BLOCKED) === 0) this.#pump();
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
      if (
        urgent !== undefined && urgent.length !== 0 &&
        (urgent.started || (this.#state & MID_FRAME) === 0)
      ) {
        const written = socket.write(urgent.peek()!);
        if (written < 0) return;
        this.#buffered -= written;
        if (!urgent.consume(written)) {
          this.#state |= BLOCKED;
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
          this.#state |= MID_FRAME;
        }
        this.#state |= BLOCKED;
        if (this.#buffered <= this.#below) {
          this.#below = -1;
          this.handler.onBelow();
        }
        return;
      }
      queue.shift();
      this.#state = this.#partial!.shift()! ? this.#state | MID_FRAME : this.#state & ~MID_FRAME;
    }
  }

  drain(): void {
    this.#state &= ~BLOCKED;
    this.#pump();
    if ((this.#state & BLOCKED) !== 0 || this.#buffered !== 0) return;
    if ((this.#state & ENDING) !== 0) this.#halfClose();
    else this.handler.onDrain();
  }

  ended(): void {
    // Both sides said goodbye: Bun closes the socket itself. (terminate() would send RST and
    // could drop our last frames still in the kernel's send buffer.)
    if ((this.#state & WRITE_CLOSED) !== 0) return;
    this.handler.onEnd();
  }

  end(): void {
    if ((this.#state & (CLOSED | ENDING)) !== 0) return;
    this.#state |= ENDING;
    if (this.#buffered === 0) this.#halfClose();
  }

  #halfClose(): void {
    if ((this.#state & WRITE_CLOSED) !== 0) return;
    this.#state |= WRITE_CLOSED;
    this.#socket.end();
  }

  destroy(): void {
    if ((this.#state & CLOSED) !== 0) return;
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
    if ((this.#state & CLOSED) !== 0) return;
    this.#state |= CLOSED;
    this.#queue = this.#partial = this.#urgent = undefined;
    this.#buffered = 0;
    this.handler.onClose(error);
  }
}
