/**
 * The runtime's floor for bench/fanout_overload.ts: the least memory a server on this runtime
 * needs to move the same bytes to the same sockets. A bare `Deno.listen` or `Bun.listen`
 * server, no sluice: it answers the handshake, reads the publisher's frames, and writes each
 * read's broadcast frames, framed once into one buffer, to every subscriber that has no write
 * in flight (the others miss them: no queue at all). What it gains in RSS under the load is
 * what the runtime itself takes for that traffic (on Deno, V8's young generation grows with
 * the `conn.write` calls); bench/fanout_overload.ts states sluice's bound above it.
 *
 *     deno run -A --v8-flags=--expose-gc bench/fanout_overload_floor.ts --port 0 [--stdin-lifeline]
 *     bun bench/fanout_overload_floor.ts --port 0 [--stdin-lifeline]
 *
 * Speaks the part of bench/fanout_overload_server.ts's protocol the benchmark uses: `/pub` is
 * the publisher, `?slow` marks a subscriber counted apart, the text commands `stats` (a JSON
 * {@linkcode Stats}) and `gc`, `ready PORT PID` when listening and `stats {…}` when stopped.
 * Other options (`--policy`, `--max-backpressure`, `--broadcast`) are accepted and ignored.
 *
 * @module
 */
import { createHash } from "node:crypto";
import process from "node:process";
import { option, stopOnSignal } from "./_server_cli.ts";
import { collect, emptyStats, memoryNow, type Stats } from "./_overload_stats.ts";

const GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** One subscriber's socket, as the runtime gives it: write whole buffers, one at a time. */
interface Peer {
  slow: boolean;
  /** A write is in flight: broadcasts skip this subscriber until it completes. */
  busy: boolean;
  /** Writes `bytes`; the peer stays busy until they are all written. */
  write(bytes: Uint8Array): void;
}

const subscribers = new Set<Peer>();
const stats = emptyStats();

function snapshot(): Stats {
  stats.subscribers = subscribers.size;
  stats.memory = memoryNow();
  return stats;
}

/** An unmasked server frame (FIN set) around `payload`. */
function frame(opcode: number, payload: Uint8Array): Uint8Array {
  const head = payload.length < 126 ? 2 : payload.length < 65536 ? 4 : 10;
  const bytes = new Uint8Array(head + payload.length);
  bytes[0] = 0x80 | opcode;
  if (head === 2) bytes[1] = payload.length;
  else if (head === 4) {
    bytes[1] = 126;
    bytes[2] = payload.length >> 8;
    bytes[3] = payload.length & 0xff;
  } else {
    bytes[1] = 127;
    new DataView(bytes.buffer).setUint32(6, payload.length);
  }
  bytes.set(payload, head);
  return bytes;
}

/**
 * One connection's input: the request head, then (the publisher's) masked frames, which may
 * be cut anywhere by the reads.
 */
class Input {
  #pending = new Uint8Array(0);
  #upgraded = false;
  #publisher = false;
  #peer: Peer;

  constructor(peer: Peer) {
    this.#peer = peer;
  }

  /** Handles a read. */
  push(chunk: Uint8Array): void {
    let bytes = chunk;
    if (this.#pending.length !== 0) {
      bytes = new Uint8Array(this.#pending.length + chunk.length);
      bytes.set(this.#pending);
      bytes.set(chunk, this.#pending.length);
    }
    const used = this.#upgraded ? this.#frames(bytes) : this.#head(bytes);
    this.#pending = bytes.slice(used);
  }

  /** The request head: answers 101 once it is whole; returns the bytes used. */
  #head(bytes: Uint8Array): number {
    const text = decoder.decode(bytes);
    const end = text.indexOf("\r\n\r\n");
    if (end === -1) return 0;
    const key = /^sec-websocket-key:\s*(\S+)/im.exec(text)?.[1] ?? "";
    const target = text.slice(text.indexOf(" ") + 1, text.indexOf(" HTTP/"));
    const accept = createHash("sha1").update(key + GUID).digest("base64");
    this.#peer.write(
      encoder.encode(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
          `Sec-WebSocket-Accept: ${accept}\r\n\r\n`,
      ),
    );
    this.#upgraded = true;
    this.#publisher = target === "/pub";
    if (!this.#publisher) {
      this.#peer.slow = target.includes("slow");
      subscribers.add(this.#peer);
    }
    return end + 4 + this.#frames(bytes.subarray(end + 4));
  }

  /** Whole frames: the publisher's binary ones are broadcast together. */
  #frames(bytes: Uint8Array): number {
    let at = 0;
    const broadcast: Uint8Array[] = [];
    while (bytes.length - at >= 6) {
      let length = bytes[at + 1] & 0x7f;
      let head = 6;
      if (length === 126) {
        if (bytes.length - at < 8) break;
        length = (bytes[at + 2] << 8) | bytes[at + 3];
        head = 8;
      } else if (length === 127) {
        throw new RangeError("fanout_overload_floor: frames of 64 KiB or more are not read");
      }
      if (bytes.length - at < head + length) break;
      const payload = bytes.slice(at + head, at + head + length);
      for (let i = 0; i < length; i++) payload[i] ^= bytes[at + head - 4 + (i & 3)];
      const opcode = bytes[at] & 0x0f;
      at += head + length;
      if (!this.#publisher) continue; // Subscribers send nothing but a Close.
      if (opcode === 0x2) broadcast.push(frame(0x2, payload));
      else if (opcode === 0x1) this.#command(decoder.decode(payload));
    }
    if (broadcast.length !== 0) this.#broadcast(broadcast);
    return at;
  }

  #command(text: string): void {
    if (text === "gc") {
      collect();
      collect();
    }
    const answer = text === "stats" ? JSON.stringify(snapshot()) : text;
    this.#peer.write(frame(0x1, encoder.encode(answer)));
  }

  #broadcast(frames: Uint8Array[]): void {
    stats.published += frames.length;
    let bytes = frames[0];
    if (frames.length > 1) {
      bytes = new Uint8Array(frames.reduce((sum, f) => sum + f.length, 0));
      let at = 0;
      for (const f of frames) {
        bytes.set(f, at);
        at += f.length;
      }
    }
    for (const peer of subscribers) {
      const counts = peer.slow ? stats.slow : undefined;
      if (peer.busy) {
        stats.dropped += frames.length;
        if (counts) counts.dropped += frames.length;
        continue;
      }
      stats.sent += frames.length;
      if (counts) counts.sent += frames.length;
      peer.write(bytes);
    }
  }
}

interface DenoConn {
  read(buffer: Uint8Array): Promise<number | null>;
  write(bytes: Uint8Array): Promise<number>;
  close(): void;
  setNoDelay?(noDelay: boolean): void;
}

interface BunSocket {
  data: { peer: Peer; input: Input; rest: Uint8Array | undefined };
  write(bytes: Uint8Array): number;
  setNoDelay(noDelay: boolean): void;
}

type BunListen = (options: {
  hostname: string;
  port: number;
  socket: {
    binaryType: "uint8array";
    open(socket: BunSocket): void;
    data(socket: BunSocket, chunk: Uint8Array): void;
    drain(socket: BunSocket): void;
    close(socket: BunSocket): void;
  };
}) => { port: number; stop(force: boolean): void };

const hostname = option("hostname", "127.0.0.1");
const port = Number(option("port", "0"));
const bun = (globalThis as { Bun?: { listen: BunListen } }).Bun;
let stop: () => void;
let bound: number;

if (bun !== undefined) {
  const listener = bun.listen({
    hostname,
    port,
    socket: {
      binaryType: "uint8array",
      open(socket) {
        socket.setNoDelay(true);
        const peer: Peer = {
          slow: false,
          busy: false,
          write(bytes) {
            const written = socket.write(bytes);
            if (written >= 0 && written < bytes.length) {
              peer.busy = true;
              socket.data.rest = bytes.subarray(written);
            }
          },
        };
        socket.data = { peer, input: new Input(peer), rest: undefined };
      },
      data(socket, chunk) {
        socket.data.input.push(chunk);
      },
      drain(socket) {
        const { peer, rest } = socket.data;
        if (rest === undefined) return;
        const written = socket.write(rest);
        if (written < 0) return;
        if (written < rest.length) socket.data.rest = rest.subarray(written);
        else {
          socket.data.rest = undefined;
          peer.busy = false;
        }
      },
      close(socket) {
        subscribers.delete(socket.data.peer);
      },
    },
  });
  bound = listener.port;
  stop = () => listener.stop(true);
} else {
  const deno = (globalThis as unknown as {
    Deno: {
      listen(options: { hostname: string; port: number }): AsyncIterable<DenoConn> & {
        addr: { port: number };
        close(): void;
      };
    };
  }).Deno;
  const listener = deno.listen({ hostname, port });
  bound = listener.addr.port;
  stop = () => listener.close();
  (async () => {
    for await (const conn of listener) {
      conn.setNoDelay?.(true);
      const peer: Peer = {
        slow: false,
        busy: false,
        async write(bytes) {
          peer.busy = true;
          try {
            for (let at = 0; at < bytes.length;) at += await conn.write(bytes.subarray(at));
          } catch {
            subscribers.delete(peer);
            return;
          }
          peer.busy = false;
        },
      };
      const input = new Input(peer);
      (async () => {
        const buffer = new Uint8Array(16 * 1024);
        try {
          for (;;) {
            const n = await conn.read(buffer);
            if (n === null) break;
            input.push(buffer.subarray(0, n));
          }
        } catch {
          // Reset by the benchmark at the end.
        }
        subscribers.delete(peer);
        try {
          conn.close();
        } catch {
          // Closed already.
        }
      })();
    }
  })().catch(() => {});
}

stopOnSignal(() => {
  console.log(`stats ${JSON.stringify(snapshot())}`);
  stop();
});

console.log(`ready ${bound} ${process.pid}`);
