/**
 * The server side of the end-to-end suites: a server on 127.0.0.1 with port 0, clients that
 * are tracked and closed after each test, and queues that turn handler calls into awaitable
 * events.
 *
 * @module
 */
import assert from "node:assert/strict";
import { serve, type ServeOptions, type Server } from "../mod.ts";
import {
  type HttpResponse,
  type OpenOptions,
  openWebSocket,
  RawClient,
  WAIT_MS,
} from "./_client.ts";

/** Values pushed by server handlers, read in order by the test. */
export class Queue<T> {
  /** Everything ever pushed, in order. */
  readonly items: T[] = [];
  #read = 0;
  #wake: (() => void) | undefined;

  /** Adds a value. */
  push(value: T): void {
    this.items.push(value);
    this.#wake?.();
  }

  /** The next value not yet read; fails the test after `ms`. */
  async next(what: string, ms = WAIT_MS): Promise<T> {
    if (this.#read >= this.items.length) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      try {
        await new Promise<void>((resolve, reject) => {
          this.#wake = resolve;
          timer = setTimeout(
            () => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)),
            ms,
          );
        });
      } finally {
        this.#wake = undefined;
        clearTimeout(timer);
      }
    }
    return this.items[this.#read++];
  }
}

/** Resolves after `ms`. */
export const sleep = (ms: number): Promise<void> =>
  new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `condition` every 5 ms; fails the test after `ms`. */
export async function waitFor(condition: () => boolean, what: string, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(5);
  }
}

/** serve() must throw `expected`; a server made anyway is shut down, so nothing leaks. */
export async function assertServeThrows(
  options: ServeOptions<undefined>,
  expected: { name: string; message: string },
): Promise<void> {
  let server: Server<undefined> | undefined;
  try {
    assert.throws(() => {
      server = serve({ ...options, hostname: "127.0.0.1", port: 0 });
    }, expected);
  } finally {
    await server?.shutdown();
  }
}

/** `size` bytes of a pattern that does not repeat with any short period (xorshift32). */
export function pattern(size: number, seed = 0x9e3779b9): Uint8Array {
  const bytes = new Uint8Array(size);
  let x = seed | 1;
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    bytes[i] = x & 0xff;
  }
  return bytes;
}

/** A promise with its resolve function outside. */
export function deferred<T = void>(): { promise: Promise<T>; resolve: (value: T) => void } {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => resolve = r);
  return { promise, resolve };
}

/** What a test body gets from {@linkcode withServer}. */
export interface Harness<T> {
  server: Server<T>;
  port: number;
  /** A raw TCP connection, closed after the test. */
  connect(): Promise<RawClient>;
  /** A WebSocket after a checked 101, closed after the test. */
  open(options?: OpenOptions): Promise<{ client: RawClient; response: HttpResponse }>;
}

/**
 * Runs `body` against a fresh server; afterwards drops every client it opened and waits for
 * the server to shut down, so nothing outlives the test.
 */
export async function withServer<T = undefined>(
  options: ServeOptions<T>,
  body: (harness: Harness<T>) => Promise<void>,
): Promise<void> {
  const server = serve<T>({ ...options, hostname: "127.0.0.1", port: 0 });
  const clients: RawClient[] = [];
  try {
    await body({
      server,
      port: server.port,
      async connect() {
        const client = await RawClient.connect(server.port);
        clients.push(client);
        return client;
      },
      async open(openOptions) {
        const opened = await openWebSocket(server.port, openOptions);
        clients.push(opened.client);
        return opened;
      },
    });
  } finally {
    for (const client of clients) client.destroy();
    await Promise.all(clients.map((client) => client.closed));
    await server.shutdown({ timeout: 1000 });
  }
}
