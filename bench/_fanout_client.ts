/**
 * The raw WebSocket clients of bench/fanout_overload.ts and bench/fanout.ts, over node:net on
 * 127.0.0.1: the opening handshake, then a parser that only counts the server's frames
 * (RFC 6455 §5.1: a server's frames are not masked), keeping the payload of text, Close and
 * Ping frames alone (a Ping is answered with a Pong, so a server's heartbeat keeps it). With `sequenced` set it also reads a sequence number from the first 4 bytes of
 * each binary message (little-endian, as {@linkcode sequencedFrames} writes it) and checks that
 * none is lost or comes out of order.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { randomBytes } from "node:crypto";
import net from "node:net";

/**
 * A frame as a client sends it: masked (RFC 6455 §5.3), FIN set, payload under 64 KiB.
 *
 * @param opcode The opcode (1 text, 2 binary).
 * @param payload The payload.
 * @returns The frame's bytes.
 */
export function maskedFrame(opcode: number, payload: Uint8Array): Buffer {
  const length = payload.length;
  if (length >= 65536) throw new RangeError("maskedFrame: payload of 64 KiB or more");
  const head = length < 126 ? 6 : 8;
  const frame = Buffer.alloc(head + length);
  frame[0] = 0x80 | opcode;
  if (length < 126) frame[1] = 0x80 | length;
  else {
    frame[1] = 0x80 | 126;
    frame.writeUInt16BE(length, 2);
  }
  const mask = randomBytes(4);
  mask.copy(frame, head - 4);
  for (let i = 0; i < length; i++) frame[head + i] = payload[i] ^ mask[i & 3];
  return frame;
}

/**
 * Masked binary frames of `size` bytes whose payloads start with the sequence numbers `first`,
 * `first + 1`, … (uint32, little-endian), the rest filled with 0x5a, as one buffer for one
 * write.
 *
 * @param first The first sequence number.
 * @param count How many frames.
 * @param size The payload size, at least 4 bytes and under 64 KiB.
 * @returns The frames' bytes.
 */
export function sequencedFrames(first: number, count: number, size: number): Buffer {
  if (size < 4) throw new RangeError("sequencedFrames: a payload under 4 bytes has no room");
  const payload = Buffer.alloc(size, 0x5a);
  const frames: Buffer[] = [];
  for (let k = 0; k < count; k++) {
    payload.writeUInt32LE((first + k) >>> 0, 0);
    frames.push(maskedFrame(0x2, payload));
  }
  return count === 1 ? frames[0] : Buffer.concat(frames);
}

/** One WebSocket connection that counts what the server sends. */
export class FanoutClient {
  /** The TCP socket. */
  readonly socket: net.Socket;
  /** Binary messages received. */
  messages = 0;
  /** The code of the server's Close frame, once one came. */
  closeCode: number | undefined;
  /** The TCP connection is gone. */
  closed = false;
  /** Called with each text message (the server's answers to commands). */
  onText: ((text: string) => void) | undefined;
  /** Read and check a sequence number at the start of each binary message (see the module). */
  sequenced = false;
  /** With `sequenced`: the last sequence number received in order (−1: none yet). */
  lastSequence = -1;
  /** With `sequenced`: messages missing, counted from the gaps in the sequence. */
  lost = 0;
  /** With `sequenced`: messages at or below one received before (duplicated or reordered). */
  reordered = 0;
  /** With `sequenced`: binary messages too short to hold a sequence number. */
  short = 0;
  /**
   * With `sequenced`: called with each binary message's sequence number that is above the last
   * (after a gap too), not with duplicated or reordered ones.
   */
  onSequence: ((sequence: number) => void) | undefined;
  // A frame header cut by a chunk boundary (at most 9 bytes).
  #rest: Buffer | undefined;
  // The frame being read: its opcode, payload bytes still to come, and (text, Close) its payload.
  #opcode = 0;
  #remaining = 0;
  #payload: Buffer[] | undefined;
  // With `sequenced`: the sequence number being read, and how many of its 4 bytes are in.
  #sequence = 0;
  #sequenceBytes = 4;

  private constructor(socket: net.Socket) {
    this.socket = socket;
  }

  /**
   * Connects and completes the opening handshake; rejects unless the answer is 101.
   *
   * @param port The server's port on 127.0.0.1.
   * @param path The request target, such as `/` or `/pub`.
   * @returns The open client.
   */
  static connect(port: number, path: string): Promise<FanoutClient> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host: "127.0.0.1", port });
      socket.setNoDelay(true);
      const client = new FanoutClient(socket);
      let head: Buffer = Buffer.alloc(0);
      const onData = (chunk: Buffer) => {
        head = head.length === 0 ? chunk : Buffer.concat([head, chunk]);
        const end = head.indexOf("\r\n\r\n");
        if (end === -1) return;
        socket.off("data", onData);
        socket.off("error", reject);
        const status = head.subarray(0, head.indexOf("\r\n")).toString("latin1");
        if (!status.startsWith("HTTP/1.1 101")) {
          socket.destroy();
          reject(new Error(`handshake: ${status}`));
          return;
        }
        socket.on("data", (data: Buffer) => client.#receive(data));
        // After the handshake an error (a reset when the server goes) only ends the client.
        socket.on("error", () => {});
        socket.on("close", () => client.closed = true);
        client.#receive(head.subarray(end + 4));
        resolve(client);
      };
      socket.on("data", onData);
      socket.on("error", reject);
      socket.once("connect", () => {
        socket.write(
          `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n` +
            "Connection: Upgrade\r\n" +
            `Sec-WebSocket-Key: ${randomBytes(16).toString("base64")}\r\n` +
            "Sec-WebSocket-Version: 13\r\n\r\n",
        );
      });
    });
  }

  /**
   * Sends a text message.
   *
   * @param text The message (under 64 KiB).
   */
  sendText(text: string): void {
    this.socket.write(maskedFrame(0x1, Buffer.from(text)));
  }

  /** Drops the connection. */
  destroy(): void {
    this.socket.destroy();
  }

  #receive(chunk: Buffer): void {
    let b: Buffer = chunk;
    if (this.#rest !== undefined) {
      b = Buffer.concat([this.#rest, chunk]);
      this.#rest = undefined;
    }
    const n = b.length;
    let i = 0;
    while (i < n) {
      if (this.#remaining > 0) {
        const take = Math.min(this.#remaining, n - i);
        this.#payload?.push(b.subarray(i, i + take));
        // A sequence number cut by a chunk boundary: gather it a byte at a time.
        for (let k = 0; this.#sequenceBytes < 4 && k < take; k++) {
          this.#sequence += b[i + k] * 2 ** (8 * this.#sequenceBytes++);
        }
        this.#remaining -= take;
        i += take;
        if (this.#remaining === 0) this.#frameEnd();
        continue;
      }
      if (n - i < 2) break;
      let length = b[i + 1] & 0x7f;
      let head = 2;
      if (length === 126) {
        if (n - i < 4) break;
        length = b.readUInt16BE(i + 2);
        head = 4;
      } else if (length === 127) {
        if (n - i < 10) break;
        length = Number(b.readBigUInt64BE(i + 2));
        head = 10;
      }
      this.#opcode = b[i] & 0x0f;
      this.#payload = this.#opcode === 0x1 || this.#opcode >= 0x8 ? [] : undefined;
      this.#remaining = length;
      i += head;
      if (this.sequenced && this.#opcode === 0x2) {
        if (length >= 4 && n - i >= 4) this.#sequence = b.readUInt32LE(i);
        else this.#sequence = this.#sequenceBytes = 0;
      }
      if (length === 0) this.#frameEnd();
    }
    // Only a cut header is left over: payload bytes are consumed as they come.
    if (i < n) this.#rest = Buffer.from(b.subarray(i));
  }

  #frameEnd(): void {
    const opcode = this.#opcode;
    if (opcode === 0x2) {
      this.messages++;
      if (this.sequenced) this.#sequenceEnd();
    } else if (opcode === 0x1) {
      this.onText?.(Buffer.concat(this.#payload!).toString("utf8"));
    } else if (opcode === 0x8) {
      const payload = Buffer.concat(this.#payload!);
      this.closeCode = payload.length >= 2 ? payload.readUInt16BE(0) : 1005;
      // RFC 6455 §5.5.1: answer with a Close frame, echoing the status code.
      if (!this.socket.destroyed) this.socket.write(maskedFrame(0x8, payload.subarray(0, 2)));
    } else if (opcode === 0x9 && !this.socket.destroyed) {
      // RFC 6455 §5.5.2: a Pong with the Ping's payload.
      this.socket.write(maskedFrame(0xa, Buffer.concat(this.#payload!)));
    }
    this.#payload = undefined;
  }

  #sequenceEnd(): void {
    if (this.#sequenceBytes < 4) {
      this.short++;
      this.#sequenceBytes = 4;
      return;
    }
    const sequence = this.#sequence;
    const expected = this.lastSequence + 1;
    if (sequence < expected) {
      this.reordered++;
      return;
    }
    this.lost += sequence - expected;
    this.lastSequence = sequence;
    this.onSequence?.(sequence);
  }
}
