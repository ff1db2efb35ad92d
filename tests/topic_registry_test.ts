/**
 * The topic registry seam (`topicRegistry`, not yet a stable option): the server publishes and
 * subscribes through the registry it returns, and `stats()` still counts the local topics.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { connect, serve } from "../mod.ts";
import type { TopicRegistryFactory } from "../lib/server/topics.ts";
import { waitFor } from "./_harness.ts";

test("the server publishes and subscribes through the registry topicRegistry returns", async () => {
  const calls: string[] = [];
  const logging: TopicRegistryFactory = (local) => ({
    subscribe(topic, subscriber) {
      calls.push(`subscribe ${topic}`);
      return local.subscribe(topic, subscriber);
    },
    unsubscribe(topic, subscriber) {
      calls.push(`unsubscribe ${topic}`);
      return local.unsubscribe(topic, subscriber);
    },
    publish(topic, message, options) {
      calls.push(`publish ${topic}`);
      return local.publish(topic, message, options);
    },
    subscriberCount: (topic) => local.subscriberCount(topic),
  });
  const server = serve({
    port: 0,
    hostname: "127.0.0.1",
    topicRegistry: logging,
    open: (ws) => ws.subscribe("news"),
  });
  const got: unknown[] = [];
  const ws = await connect(`ws://127.0.0.1:${server.port}/`, {
    message: (_ws, data) => void got.push(data),
  });
  try {
    await waitFor(() => server.subscriberCount("news") === 1, "the subscription");
    assert.equal(server.publish("news", "hello"), 1);
    await waitFor(() => got.length === 1, "the message");
    assert.deepEqual(got, ["hello"]);
    assert.equal(server.stats().topics, 1);
    ws.close();
    await ws.closed;
    await waitFor(() => calls.length === 3, "the unsubscribe");
    assert.deepEqual(calls, ["subscribe news", "publish news", "unsubscribe news"]);
  } finally {
    await server.shutdown();
  }
});

test("a topicRegistry that is not a function, or returns no registry, is refused", () => {
  assert.throws(
    () => serve({ port: 0, topicRegistry: 5 as unknown as TopicRegistryFactory }),
    { name: "TypeError", message: "Cannot serve: topicRegistry must be a function, got 5" },
  );
  assert.throws(
    () => serve({ port: 0, topicRegistry: (() => ({})) as unknown as TopicRegistryFactory }),
    {
      name: "TypeError",
      message: "Cannot serve: topicRegistry must return a topic registry (subscribe is missing)",
    },
  );
});
