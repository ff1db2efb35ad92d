/**
 * A first-in first-out list over an array with a moving head: `push` and `shift` are O(1)
 * (amortised), so a cumulative acknowledgement pops its entries from the front without
 * re-indexing the rest. Pure; the session client keeps its unsent and in-flight messages in it.
 *
 * @module
 */

/** Slots at the front of the array left behind by `shift` before they are reclaimed. */
const COMPACT_AT = 1024;

/**
 * A FIFO of items.
 *
 * @example
 * ```ts
 * import { Fifo } from "./_session_fifo.ts";
 * const fifo = new Fifo<number>();
 * fifo.push(1);
 * fifo.push(2);
 * console.log(fifo.shift(), fifo.length); // 1 1
 * ```
 */
export class Fifo<T> {
  #items: (T | undefined)[] = [];
  #head = 0;

  /** How many items it holds. */
  get length(): number {
    return this.#items.length - this.#head;
  }

  /**
   * Adds an item at the back.
   *
   * @param item The item.
   */
  push(item: T): void {
    this.#items.push(item);
  }

  /**
   * The item at a position from the front (0 is the first), or `undefined` past the end.
   *
   * @param index The position.
   * @returns The item.
   */
  at(index: number): T | undefined {
    return this.#items[this.#head + index];
  }

  /**
   * Removes and returns the first item.
   *
   * @returns The first item, or `undefined` when empty.
   */
  shift(): T | undefined {
    if (this.#head === this.#items.length) return undefined;
    const item = this.#items[this.#head];
    this.#items[this.#head++] = undefined;
    if (this.#head === this.#items.length) {
      this.#items.length = 0;
      this.#head = 0;
    } else if (this.#head >= COMPACT_AT && this.#head * 2 >= this.#items.length) {
      this.#items.splice(0, this.#head);
      this.#head = 0;
    }
    return item;
  }

  /**
   * Removes one item wherever it is: O(n), for the rare cancellation of an item in the middle.
   *
   * @param item The item to remove.
   * @returns Whether it was there.
   */
  remove(item: T): boolean {
    const index = this.#items.indexOf(item, this.#head);
    if (index === -1) return false;
    if (index === this.#head) this.shift();
    else this.#items.splice(index, 1);
    return true;
  }

  /**
   * Removes every item and returns them in order.
   *
   * @returns The items that were there.
   */
  drain(): T[] {
    const items = this.#items.slice(this.#head) as T[];
    this.#items = [];
    this.#head = 0;
    return items;
  }
}
