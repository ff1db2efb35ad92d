/**
 * Topics: named groups of connections that a message is published to. A publish frames its
 * message once ({@linkcode PreparedMessage}) and every subscriber writes the same bytes.
 *
 * The server talks to its topics through {@linkcode TopicRegistry}. {@linkcode LocalTopics}
 * serves one process. A registry that spans processes (Redis pub/sub) wraps it: it
 * subscribes to a channel when a topic's first local subscriber joins
 * ({@linkcode LocalTopics.subscribe} returns `true` then) and unsubscribes when the last one
 * leaves; it forwards each publish to the channel and hands what arrives from the channel to
 * the local registry's `publish`, so a message published in any process reaches subscribers
 * in every process, framed once per process.
 *
 * @module
 */
import type { PreparedMessage } from "../protocol/prepared_message.ts";

/** A connection as topics see it. */
export interface Subscriber {
  /**
   * Sends a published message under the connection's backpressure policy.
   *
   * @param message The message, framed once for every subscriber.
   * @param compress As for `ws.send`.
   * @returns `true` if it was sent or queued; `false` if it was dropped or the connection is
   * closing.
   */
  deliver(message: PreparedMessage, compress: boolean | undefined): boolean;
}

/** How a message is published. */
export interface PublishOptions<S> {
  /** As for `ws.send`: compress, or not; by default from the threshold on. */
  compress?: boolean;
  /** A subscriber that does not get the message (the sender, for `ws.publish`). */
  except?: S;
}

/** What the server needs from its topics, whether they live in one process or span many. */
export interface TopicRegistry<S extends Subscriber> {
  /**
   * Adds a subscriber to a topic.
   *
   * @returns `true` if the topic had no subscriber here before.
   */
  subscribe(topic: string, subscriber: S): boolean;
  /**
   * Removes a subscriber from a topic (nothing if it was not subscribed).
   *
   * @returns `true` if that was the topic's last subscriber here.
   */
  unsubscribe(topic: string, subscriber: S): boolean;
  /**
   * Sends a message to every subscriber of a topic.
   *
   * @returns How many connections it reached here (sent or queued, not dropped).
   */
  publish(topic: string, message: PreparedMessage, options?: PublishOptions<S>): number;
  /** The number of subscribers of a topic here. */
  subscriberCount(topic: string): number;
}

/**
 * Makes the registry a server publishes and subscribes through, from the one that serves this
 * process (the `topicRegistry` option of `serve`): a registry that spans processes wraps
 * `local` as this module's documentation describes. The server's topic figures in `stats()`
 * stay the local ones.
 *
 * @example
 * ```ts
 * import type { TopicRegistryFactory } from "./topics.ts";
 * // Counts the publishes, and leaves everything else to the local registry.
 * let published = 0;
 * const counting: TopicRegistryFactory = (local) => ({
 *   subscribe: (topic, subscriber) => local.subscribe(topic, subscriber),
 *   unsubscribe: (topic, subscriber) => local.unsubscribe(topic, subscriber),
 *   publish(topic, message, options) {
 *     published++;
 *     return local.publish(topic, message, options);
 *   },
 *   subscriberCount: (topic) => local.subscriberCount(topic),
 * });
 * console.log(typeof counting, published); // function 0
 * ```
 */
export type TopicRegistryFactory = <S extends Subscriber>(
  local: LocalTopics<S>,
) => TopicRegistry<S>;

/**
 * The topics of one process: a set of subscribers per topic, so subscribing, unsubscribing
 * and a connection's departure cost O(1) per topic.
 *
 * @example
 * ```ts
 * import { LocalTopics } from "./topics.ts";
 * import { PreparedMessage } from "../protocol/prepared_message.ts";
 * const seen: string[] = [];
 * const topics = new LocalTopics();
 * topics.subscribe("news", { deliver: () => (seen.push("a"), true) });
 * console.log(topics.publish("news", new PreparedMessage("hello")), seen); // 1 [ "a" ]
 * ```
 */
export class LocalTopics<S extends Subscriber = Subscriber> implements TopicRegistry<S> {
  #topics = new Map<string, Set<S>>();
  #subscriptions = 0;

  /** Topics with at least one subscriber. */
  get size(): number {
    return this.#topics.size;
  }

  /** Subscriptions summed over topics. */
  get subscriptions(): number {
    return this.#subscriptions;
  }

  subscribe(topic: string, subscriber: S): boolean {
    let subscribers = this.#topics.get(topic);
    const first = subscribers === undefined;
    if (subscribers === undefined) this.#topics.set(topic, subscribers = new Set());
    else if (subscribers.has(subscriber)) return false;
    subscribers.add(subscriber);
    this.#subscriptions++;
    return first;
  }

  unsubscribe(topic: string, subscriber: S): boolean {
    const subscribers = this.#topics.get(topic);
    if (subscribers === undefined || !subscribers.delete(subscriber)) return false;
    this.#subscriptions--;
    if (subscribers.size !== 0) return false;
    // An empty topic costs nothing: a server with many short-lived topics must not grow.
    this.#topics.delete(topic);
    return true;
  }

  publish(topic: string, message: PreparedMessage, options: PublishOptions<S> = {}): number {
    const subscribers = this.#topics.get(topic);
    if (subscribers === undefined) return 0;
    const { compress, except } = options;
    let reached = 0;
    // A delivery may close a subscriber (backpressure policy "close"), which unsubscribes it:
    // deleting from a Set while iterating it is safe, and it is not visited again.
    for (const subscriber of subscribers) {
      if (subscriber !== except && subscriber.deliver(message, compress)) reached++;
    }
    return reached;
  }

  subscriberCount(topic: string): number {
    return this.#topics.get(topic)?.size ?? 0;
  }
}
