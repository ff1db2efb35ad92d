/**
 * The contract between the runtime-neutral code and a runtime adapter (lib/runtime/): a
 * listener that accepts TCP connections and a byte stream per connection. The adapters are the
 * only code that names `Deno` or `Bun`.
 *
 * @module
 */

/** One TCP (or TLS) connection, accepted by a listener or opened by a connect. */
export interface Transport {
  /** The peer's IP address. */
  readonly remoteAddress: string;
  /** The peer's port. */
  readonly remotePort: number;
  /** Bytes accepted by {@linkcode Transport.write} and not yet handed to the operating system. */
  readonly bufferedAmount: number;
  /**
   * Writes reach the operating system later, not within `write()` (Deno's `conn.write` is
   * asynchronous), so a reusable chunk is always copied: a caller that can give a chunk up
   * should. `false` (Bun) when a write usually completes within the call, so copying only what
   * the socket does not take beats allocating.
   */
  readonly writesLater?: boolean;
  /**
   * Payloads shorter than this are best copied out of the chunks given to `onData` rather
   * than viewed (Bun: JavaScriptCore makes a small copy faster than a view; V8 the other way).
   */
  readonly copyBelow?: number;
  /**
   * Sends bytes, in order after everything written before. Never writes less than asked:
   * what the socket cannot take now is kept and written when it drains.
   *
   * @param chunk The bytes.
   * @param reusable `true` if the caller reuses `chunk`'s memory after this call returns, so
   * whatever the transport keeps it must copy; `false` if the transport may keep a reference.
   * @param partial `true` if `chunk` ends inside a frame (the next chunk continues it), so
   * nothing may be put between the two by {@linkcode Transport.writeUrgent}.
   */
  write(chunk: Uint8Array, reusable: boolean, partial?: boolean): void;
  /**
   * Sends a whole control frame (a ping, a pong) ahead of what is queued, at the first frame
   * boundary, so a heartbeat is not stuck behind megabytes of data for a slow reader. Urgent
   * frames leave in the order they were given; a pong not yet handed to the socket may be
   * replaced by a later one (RFC 6455 §5.5.3). Both adapters keep them in an `UrgentQueue`
   * (urgent_queue.ts).
   *
   * @param chunk One whole frame; the transport may keep a reference.
   */
  writeUrgent(chunk: Uint8Array): void;
  /** Writes what is queued, then closes the connection (FIN). Reading stops. */
  end(): void;
  /** Closes the connection now, dropping what is queued. */
  destroy(): void;
  /** Stops reading from the socket (the peer's writes back up in TCP). */
  pause(): void;
  /** Starts reading again after {@linkcode Transport.pause}. */
  resume(): void;
  /**
   * Asks for one {@linkcode TransportHandler.onBelow} call, the first time a write to the
   * socket leaves {@linkcode Transport.bufferedAmount} at or below `bytes` (a later call
   * replaces the request). Costs a comparison per write to the socket, and nothing more unless
   * asked: an open connection asks only while it holds reading for outbound backpressure.
   *
   * @param bytes The mark, above 0 (an empty queue is reported by `onDrain` anyway).
   */
  watchBelow(bytes: number): void;
  /**
   * Sends the connection's events to `handler` from now on: a connection changes hands when
   * its opening handshake is over (to the open connection) or turns out to be a plain HTTP
   * request (to the HTTP responder).
   *
   * @param handler Who receives the events.
   */
  setHandler(handler: TransportHandler): void;
}

/** What a transport tells the code that drives its connection. */
export interface TransportHandler {
  /**
   * Bytes from the peer. The transport never writes to `chunk`'s memory again: the receiver may
   * keep views of it and hand them to application code.
   */
  onData(chunk: Uint8Array): void;
  /** Everything queued by `write` reached the operating system. */
  onDrain(): void;
  /** The queue fell to the mark asked for with {@linkcode Transport.watchBelow}. */
  onBelow(): void;
  /** The peer closed its side (FIN): no more data will come. */
  onEnd(): void;
  /** The connection is gone: closed by either side, reset, or failed (`error`). Called once. */
  onClose(error?: unknown): void;
}

/** Where and how to listen. */
export interface ListenOptions {
  /** The address to bind. */
  hostname: string;
  /** The port; 0 picks a free one. */
  port: number;
  /** PEM certificate chain: with `key`, the listener speaks TLS. */
  cert?: string;
  /** PEM private key. */
  key?: string;
}

/** A bound listener. */
export interface Listener {
  /** The bound address. */
  readonly hostname: string;
  /** The bound port (the real one when 0 was asked for). */
  readonly port: number;
  /** Stops accepting; connections already accepted stay open. */
  close(): void;
}

/**
 * Binds a listener. `accept` is called for each new connection and returns the handler that
 * receives its events.
 */
export type Listen = (
  options: ListenOptions,
  accept: (transport: Transport) => TransportHandler,
) => Listener;

/** How to speak TLS on a connection opened by {@linkcode Connect}. */
export interface ConnectTlsOptions {
  /**
   * PEM certificates trusted in addition to the runtime's default trust store (each string may
   * hold several): a private CA, a self-signed server certificate. (Bun's own `ca` replaces its
   * store, so its adapter passes the store's certificates too.)
   *
   * @default {undefined} (only the default trust store)
   */
  ca?: string[];
  /**
   * The name sent in SNI and that the server's certificate must be valid for: a host name or
   * an IP address (an IPv6 one without brackets). It may differ from
   * {@linkcode ConnectOptions.hostname}, e.g. to connect to 127.0.0.1 and verify `localhost`.
   *
   * @default {ConnectOptions.hostname}
   */
  serverName?: string;
}

/** Where and how to connect. */
export interface ConnectOptions {
  /** A host name, an IPv4 address or an IPv6 address without brackets (`"::1"`). */
  hostname: string;
  /** The port. */
  port: number;
  /**
   * Present: the connection speaks TLS, and opens once the handshake is over and the server's
   * certificate verified. Verification is always on (short of a runtime-wide switch such as
   * Deno's `--unsafely-ignore-certificate-errors`).
   *
   * @default {undefined} (plain TCP)
   */
  tls?: ConnectTlsOptions;
  /**
   * Aborts the connect: the pending promise rejects with `signal.reason` at once, and a socket
   * that opened meanwhile is closed. An already-aborted signal rejects at once. Once the connect
   * has resolved, the signal is no longer watched. (Timeouts are the caller's: a signal from
   * `AbortSignal.timeout()`.) Deno cannot close a TLS socket in the middle of its handshake: it
   * finishes the handshake first, so a socket aborted then closes when the server answers (or
   * gives up); Bun closes it at once.
   *
   * @default {undefined} (the connect runs until it opens or fails)
   */
  signal?: AbortSignal;
}

/**
 * Opens a TCP (or TLS) connection. Once it is open, the transport sends its events to
 * `handler` (the caller may hand them on with {@linkcode Transport.setHandler}); they may begin
 * before the promise's reactions run. {@linkcode Transport.remoteAddress} is the address
 * connected to.
 *
 * Rejects with `signal.reason` when aborted, else with an `Error` that says what failed and
 * where, the runtime's error as its `cause`: `Cannot connect to 127.0.0.1:1: the connection
 * was refused`, `Cannot connect to nowhere.invalid:80: the host name could not be resolved`,
 * `Cannot connect to localhost:4433: the server's TLS certificate was refused (…)`.
 */
export type Connect = (options: ConnectOptions, handler: TransportHandler) => Promise<Transport>;
