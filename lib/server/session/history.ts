/**
 * Topic history: each topic's recent messages, numbered by offset within an epoch, so that a
 * session that comes back gets what its topics published while it was away
 * (lib/session/PROTOCOL.md, "Numbers and positions").
 *
 * The session server talks to it through {@linkcode TopicHistory}. {@linkcode MemoryTopicHistory}
 * keeps it in this process: a restart starts every topic in a new epoch, which resuming clients
 * learn as a `reset` with reason `"epoch"`. A store that outlives the process (Redis, in a later
 * issue) implements the same interface over a local mirror: each process receives every
 * publication of the topics it has subscribers for, so it can answer `since` from memory and
 * load what it lacks in `prepare` before a resume reads it.
 *
 * @module
 */
import {
  encodeFrame,
  type Position,
  type ResetReason,
  type SessionData,
} from "../../session/wire.ts";
import { randomId } from "./token.ts";

/**
 * How much history each topic keeps.
 *
 * @example
 * ```ts
 * import { serveSessions } from "@sluice/ws";
 * // Keep each topic's last 500 messages or 1 MiB, for 10 minutes, in at most 1,000 topics.
 * const server = serveSessions({
 *   port: 0,
 *   secret: "a secret of at least 16 characters",
 *   history: { maxMessages: 500, maxBytes: 1_048_576, maxAge: 600_000, maxTopics: 1_000 },
 * });
 * server.publish("news", "first");
 * console.log(server.stats().sessions.history.messages); // 1
 * await server.shutdown();
 * ```
 */
export interface HistoryOptions {
  /** Messages kept per topic. @default {1000} */
  maxMessages?: number;
  /** Bytes of frames kept per topic. @default {1048576} */
  maxBytes?: number;
  /** Milliseconds a message is kept, from its publication. @default {twice the resume window} */
  maxAge?: number;
  /** Topics that keep history at once; past it, the history of the topic that published least
   * recently is dropped (its subscribers' positions then get a `reset`). @default {10000} */
  maxTopics?: number;
  /** Bytes of history kept for all topics together; past it, histories are dropped as past
   * `maxTopics`. @default {67108864} */
  maxTotalBytes?: number;
}

/**
 * The frames after a position, or the reason there are none and where the topic stands.
 *
 * @example
 * ```ts
 * import type { Since } from "@sluice/ws";
 * function describe(since: Since): string {
 *   return "frames" in since
 *     ? `${since.frames.length} to replay`
 *     : `reset (${since.reason}): continue at ${since.head.offset}`;
 * }
 * console.log(describe({ frames: [] })); // 0 to replay
 * console.log(describe({ reason: "trimmed", head: { epoch: "e", offset: 9 } }));
 * // reset (trimmed): continue at 9
 * ```
 */
export type Since =
  | { frames: Array<string | Uint8Array> }
  | { reason: ResetReason; head: Position };

/**
 * Where topic history lives.
 *
 * @example
 * ```ts
 * import { serveSessions, type TopicHistory } from "@sluice/ws";
 * // The seam a shared store plugs into (the `topicHistory` option); here, the default one.
 * const server = serveSessions({ port: 0, secret: "a secret of at least 16 characters" });
 * server.publish("news", "hello");
 * function headOf(history: Pick<TopicHistory, "head">, topic: string): number {
 *   return history.head(topic).offset;
 * }
 * console.log(headOf({ head: () => ({ epoch: "e", offset: 1 }) }, "news")); // 1
 * await server.shutdown();
 * ```
 */
export interface TopicHistory {
  /**
   * Numbers a message and keeps it.
   *
   * @returns Its position and the `pub` frame to deliver, encoded once for every subscriber.
   */
  append(topic: string, data: SessionData): { position: Position; frame: string | Uint8Array };
  /** The position of the topic's last message (offset 0 before the first). */
  head(topic: string): Position;
  /** The `pub` frames after a position, in order, or why they cannot be had. */
  since(topic: string, from: Position): Since;
  /** Loads what `since` will need for these topics (a store that is not local). */
  prepare?(topics: string[]): Promise<void>;
  /** A session subscribes: the topic's epoch must outlive an empty history. */
  retain(topic: string): void;
  /** A session's subscription ended. */
  release(topic: string): void;
  /** Messages and bytes held, and messages dropped by the caps. */
  stats(): { topics: number; messages: number; bytes: number; trimmed: number };
}

interface Entry {
  offset: number;
  frame: string | Uint8Array;
  bytes: number;
  time: number;
}

class TopicLog {
  epoch = randomId();
  offset = 0;
  subscribers = 0;
  entries: Entry[] = [];
  /** Index of the oldest kept entry in `entries` (shifting an array per message is O(n)). */
  first = 0;
  bytes = 0;
}

/** Topic history in this process's memory, bounded by {@linkcode HistoryOptions}. */
export class MemoryTopicHistory implements TopicHistory {
  #logs = new Map<string, TopicLog>();
  #maxMessages: number;
  #maxBytes: number;
  #maxAge: number;
  #maxTopics: number;
  #maxTotalBytes: number;
  #now: () => number;
  #messages = 0;
  #bytes = 0;
  #trimmed = 0;

  /**
   * @param options The caps (checked by the caller).
   * @param now The clock (tests replace it).
   */
  constructor(options: Required<HistoryOptions>, now: () => number = Date.now) {
    this.#maxMessages = options.maxMessages;
    this.#maxBytes = options.maxBytes;
    this.#maxAge = options.maxAge;
    this.#maxTopics = options.maxTopics;
    this.#maxTotalBytes = options.maxTotalBytes;
    this.#now = now;
  }

  #log(topic: string): TopicLog {
    let log = this.#logs.get(topic);
    if (log === undefined) this.#logs.set(topic, log = new TopicLog());
    return log;
  }

  append(topic: string, data: SessionData): { position: Position; frame: string | Uint8Array } {
    const log = this.#log(topic);
    // Most recently published last: the Map's order is the eviction order.
    this.#logs.delete(topic);
    this.#logs.set(topic, log);
    const offset = ++log.offset;
    const frame = encodeFrame({ t: "pub", topic, epoch: log.epoch, offset, d: data });
    const bytes = typeof frame === "string" ? frame.length * 2 : frame.length;
    if (this.#maxMessages > 0 && bytes <= this.#maxBytes) {
      log.entries.push({ offset, frame, bytes, time: this.#now() });
      log.bytes += bytes;
      this.#messages++;
      this.#bytes += bytes;
      this.#trim(log);
    } else this.#drop(log, log.entries.length - log.first);
    if (this.#logs.size > this.#maxTopics) this.#evict();
    while (this.#bytes > this.#maxTotalBytes && this.#evict());
    return { position: { epoch: log.epoch, offset }, frame };
  }

  head(topic: string): Position {
    const log = this.#log(topic);
    return { epoch: log.epoch, offset: log.offset };
  }

  since(topic: string, from: Position): Since {
    const log = this.#log(topic);
    const head = { epoch: log.epoch, offset: log.offset };
    if (from.epoch !== log.epoch) return { reason: "epoch", head };
    if (from.offset > log.offset) return { reason: "ahead", head };
    if (from.offset === log.offset) return { frames: [] };
    this.#trimAge(log);
    const entries = log.entries;
    const oldest = log.first < entries.length ? entries[log.first].offset : log.offset + 1;
    if (from.offset + 1 < oldest) return { reason: "trimmed", head };
    const frames: Array<string | Uint8Array> = [];
    for (let i = log.first + (from.offset + 1 - oldest); i < entries.length; i++) {
      frames.push(entries[i].frame);
    }
    return { frames };
  }

  retain(topic: string): void {
    this.#log(topic).subscribers++;
  }

  release(topic: string): void {
    const log = this.#logs.get(topic);
    if (log === undefined) return;
    log.subscribers--;
    this.#forget(topic, log);
  }

  stats(): { topics: number; messages: number; bytes: number; trimmed: number } {
    return {
      topics: this.#logs.size,
      messages: this.#messages,
      bytes: this.#bytes,
      trimmed: this.#trimmed,
    };
  }

  /** Drops a topic nobody subscribes to and that holds no history: its next use starts a new
   * epoch, which is right, since nobody holds a position in this one worth keeping. */
  #forget(topic: string, log: TopicLog): void {
    if (log.subscribers <= 0 && log.first === log.entries.length) this.#logs.delete(topic);
  }

  #trim(log: TopicLog): void {
    let excess = 0;
    let bytes = log.bytes;
    const kept = log.entries.length - log.first;
    while (
      kept - excess > this.#maxMessages || bytes > this.#maxBytes
    ) bytes -= log.entries[log.first + excess++].bytes;
    if (excess > 0) this.#drop(log, excess);
    this.#trimAge(log);
  }

  #trimAge(log: TopicLog): void {
    const oldest = this.#now() - this.#maxAge;
    let excess = 0;
    const entries = log.entries;
    while (log.first + excess < entries.length && entries[log.first + excess].time < oldest) {
      excess++;
    }
    if (excess > 0) this.#drop(log, excess);
  }

  /** Drops the `count` oldest entries of a log. */
  #drop(log: TopicLog, count: number): void {
    if (count <= 0) return;
    const entries = log.entries;
    for (let i = log.first; i < log.first + count; i++) {
      log.bytes -= entries[i].bytes;
      this.#bytes -= entries[i].bytes;
    }
    this.#messages -= count;
    this.#trimmed += count;
    log.first += count;
    if (log.first === entries.length) {
      log.entries = [];
      log.first = 0;
    } else if (log.first > 1024 && log.first * 2 > entries.length) {
      log.entries = entries.slice(log.first);
      log.first = 0;
    }
  }

  /** Drops the history of the topic that published least recently (keeping its epoch and
   * offset while it has subscribers, so their positions still get the right `reset`). */
  #evict(): boolean {
    for (const [topic, log] of this.#logs) {
      if (log.first === log.entries.length) {
        if (log.subscribers <= 0) this.#logs.delete(topic);
        continue;
      }
      this.#drop(log, log.entries.length - log.first);
      this.#forget(topic, log);
      return true;
    }
    return false;
  }
}
