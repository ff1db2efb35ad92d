/**
 * Where the session server keeps sessions that no connection carries, within their resume
 * window. {@linkcode MemorySessionStore} keeps them in this process: a restart loses them, and
 * its new incarnation makes every earlier token a `"restarted"` refusal. A store that outlives
 * the process (Redis, in a later issue) keeps its incarnation, serialises what it keeps, and
 * may answer `take` asynchronously.
 *
 * @module
 */
import { randomId } from "./token.ts";

/** What a store keeps: anything with an id. */
export interface Keepable {
  readonly id: string;
}

/** Where detached sessions wait for their client. */
export interface SessionStore<S extends Keepable> {
  /** The store's incarnation: tokens issued under another one are refused as `"restarted"`. */
  readonly incarnation: string;
  /** How many sessions it keeps. */
  readonly size: number;
  /** Keeps a session that lost its connection for `window` milliseconds. */
  keep(session: S, window: number): void;
  /** Takes a kept session back (the store no longer keeps it), or `undefined` when it is gone. */
  take(id: string): S | undefined | Promise<S | undefined>;
  /** A kept session, without taking it (local stores only; others answer `undefined`). */
  peek(id: string): S | undefined;
  /** Forgets a kept session. */
  delete(id: string): void;
  /** Every session kept here. */
  values(): Iterable<S>;
}

/** Why a store let a session go. */
export type Release = "expired" | "evicted";

/**
 * Detached sessions in this process's memory: each expires after its window; past
 * `maxSessions`, the one kept longest is evicted.
 */
export class MemorySessionStore<S extends Keepable> implements SessionStore<S> {
  readonly incarnation: string = randomId();
  // Insertion order is detach order: the first entry is the one kept longest.
  #kept = new Map<string, { session: S; timer: ReturnType<typeof setTimeout> }>();
  #maxSessions: number;
  #release: (session: S, why: Release) => void;

  /**
   * @param maxSessions How many sessions it keeps at most.
   * @param release Called when a session expires or is evicted (no longer kept).
   */
  constructor(maxSessions: number, release: (session: S, why: Release) => void) {
    this.#maxSessions = maxSessions;
    this.#release = release;
  }

  get size(): number {
    return this.#kept.size;
  }

  keep(session: S, window: number): void {
    this.delete(session.id);
    const timer = setTimeout(() => {
      this.#kept.delete(session.id);
      this.#release(session, "expired");
    }, window);
    this.#kept.set(session.id, { session, timer });
    while (this.#kept.size > this.#maxSessions) {
      const [id, oldest] = this.#kept.entries().next().value!;
      clearTimeout(oldest.timer);
      this.#kept.delete(id);
      this.#release(oldest.session, "evicted");
    }
  }

  take(id: string): S | undefined {
    const entry = this.#kept.get(id);
    if (entry === undefined) return undefined;
    this.delete(id);
    return entry.session;
  }

  peek(id: string): S | undefined {
    return this.#kept.get(id)?.session;
  }

  delete(id: string): void {
    const entry = this.#kept.get(id);
    if (entry === undefined) return;
    clearTimeout(entry.timer);
    this.#kept.delete(id);
  }

  values(): Iterable<S> {
    return [...this.#kept.values()].map((entry) => entry.session);
  }
}
