/**
 * An open connection on the server: the role-neutral {@linkcode OpenConnection} with what only
 * a server has, its topics.
 *
 * @module
 */
import { OpenConnection } from "../core/open_connection.ts";
import type { Transport } from "../core/transport.ts";
import type { PreparedMessage } from "../protocol/prepared_message.ts";
import type { ServerCore } from "./server_core.ts";
import type { Subscriber } from "./topics.ts";
import type { ServerWebSocket, ServerWebSocketDriver } from "./websocket.ts";
import type { PerMessageDeflate } from "../protocol/extensions/permessage_deflate.ts";

/** One open WebSocket connection on the server. */
export class ServerConnection<T> extends OpenConnection<ServerWebSocket<T>>
  implements ServerWebSocketDriver, Subscriber {
  #server: ServerCore<T>;
  /**
   * The topics this connection is subscribed to: none, one (most connections subscribe to one
   * at most, and a Set costs hundreds of bytes), or a Set of them (made at the second); `null`
   * once it has left them for good.
   */
  #topics: string | Set<string> | undefined | null;

  /**
   * Takes over a transport whose upgrade was accepted.
   *
   * @param server The server.
   * @param transport The socket.
   * @param deflate permessage-deflate, if it was agreed.
   */
  constructor(server: ServerCore<T>, transport: Transport, deflate: PerMessageDeflate | undefined) {
    super(server, transport, server.options, { role: "server", deflate });
    this.#server = server;
  }

  /** @internal */
  subscribe(topic: string): void {
    // Once the close is reported the connection has left its topics for good.
    const topics = this.#topics;
    if (topics === null) return;
    if (topics === undefined) {
      this.#topics = topic;
    } else if (typeof topics === "string") {
      if (topics === topic) return;
      this.#topics = new Set([topics, topic]);
    } else {
      if (topics.has(topic)) return;
      topics.add(topic);
    }
    this.#server.topics.subscribe(topic, this);
  }

  /** @internal */
  unsubscribe(topic: string): void {
    const topics = this.#topics;
    if (topics === topic) this.#topics = undefined;
    else if (!(topics instanceof Set) || !topics.delete(topic)) return;
    this.#server.topics.unsubscribe(topic, this);
  }

  /** @internal */
  isSubscribed(topic: string): boolean {
    const topics = this.#topics;
    return topics === topic || (topics instanceof Set && topics.has(topic));
  }

  /** @internal */
  get topics(): string[] {
    const topics = this.#topics;
    return topics == null ? [] : typeof topics === "string" ? [topics] : [...topics];
  }

  /** @internal */
  publish(
    topic: string,
    message: PreparedMessage,
    compress?: boolean,
    includeSelf = false,
  ): number {
    return this.#server.topics.publish(topic, message, {
      compress,
      except: includeSelf ? undefined : this,
    });
  }

  /** Leaves every topic, for good (the close is being reported): O(1) per topic. */
  leaveTopics(): void {
    const topics = this.#topics;
    this.#topics = null;
    if (topics == null) return;
    const registry = this.#server.topics;
    if (typeof topics === "string") registry.unsubscribe(topics, this);
    else for (const topic of topics) registry.unsubscribe(topic, this);
  }
}
