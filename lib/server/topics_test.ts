import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { PreparedMessage } from "../protocol/prepared_message.ts";
import { LocalTopics, type Subscriber } from "./topics.ts";

/** A subscriber that records what it was given and answers with `accept`. */
class Fake implements Subscriber {
  readonly name: string;
  accept = true;
  received: Array<{ message: PreparedMessage; compress: boolean | undefined }> = [];
  /** Runs inside deliver(), before recording (to change subscriptions mid-publish). */
  during?: () => void;

  constructor(name: string) {
    this.name = name;
  }

  deliver(message: PreparedMessage, compress: boolean | undefined): boolean {
    this.during?.();
    this.received.push({ message, compress });
    return this.accept;
  }
}

function fakes(count: number): Fake[] {
  return Array.from({ length: count }, (_, i) => new Fake(`s${i}`));
}

describe("LocalTopics: subscribe and unsubscribe", () => {
  it("subscribe returns true only for a topic's first subscriber", () => {
    const topics = new LocalTopics<Fake>();
    const [a, b, c] = fakes(3);
    assert.equal(topics.subscribe("news", a), true);
    assert.equal(topics.subscribe("news", b), false);
    assert.equal(topics.subscribe("news", c), false);
    assert.equal(topics.subscribe("sport", b), true, "first of another topic");
    assert.equal(topics.subscriberCount("news"), 3);
    assert.equal(topics.subscriberCount("sport"), 1);
    assert.equal(topics.subscriberCount("weather"), 0);
    assert.equal(topics.size, 2);
    assert.equal(topics.subscriptions, 4);
  });

  it("a duplicate subscribe is a no-op", () => {
    const topics = new LocalTopics<Fake>();
    const [a, b] = fakes(2);
    assert.equal(topics.subscribe("news", a), true);
    assert.equal(topics.subscribe("news", a), false);
    assert.equal(topics.subscriberCount("news"), 1);
    assert.equal(topics.subscriptions, 1);
    topics.subscribe("news", b);
    assert.equal(topics.subscribe("news", b), false);
    assert.equal(topics.subscriptions, 2);
    // Delivered once, not twice.
    assert.equal(topics.publish("news", new PreparedMessage("x")), 2);
    assert.equal(a.received.length, 1);
    assert.equal(b.received.length, 1);
    // One unsubscribe undoes it.
    assert.equal(topics.unsubscribe("news", a), false);
    assert.equal(topics.subscriberCount("news"), 1);
    assert.equal(topics.unsubscribe("news", b), true);
    assert.equal(topics.size, 0);
  });

  it("unsubscribe returns true only for the last subscriber, and the empty topic is removed", () => {
    const topics = new LocalTopics<Fake>();
    const [a, b, c] = fakes(3);
    for (const s of [a, b, c]) topics.subscribe("news", s);
    topics.subscribe("sport", a);
    assert.equal(topics.size, 2);
    assert.equal(topics.unsubscribe("news", b), false);
    assert.equal(topics.unsubscribe("news", a), false);
    assert.equal(topics.size, 2);
    assert.equal(topics.subscriberCount("news"), 1);
    assert.equal(topics.unsubscribe("news", c), true);
    assert.equal(topics.subscriberCount("news"), 0);
    assert.equal(topics.size, 1, "the empty topic is gone");
    assert.equal(topics.subscriptions, 1);
    assert.equal(topics.unsubscribe("sport", a), true);
    assert.equal(topics.size, 0);
    assert.equal(topics.subscriptions, 0);
    // And it starts over: the next subscriber is a first again.
    assert.equal(topics.subscribe("news", b), true);
    assert.equal(topics.size, 1);
  });

  it("unsubscribing what is not subscribed changes nothing", () => {
    const topics = new LocalTopics<Fake>();
    const [a, b] = fakes(2);
    assert.equal(topics.unsubscribe("news", a), false, "unknown topic");
    topics.subscribe("news", a);
    assert.equal(topics.unsubscribe("news", b), false, "not a subscriber");
    assert.equal(topics.unsubscribe("sport", a), false, "subscribed elsewhere");
    assert.equal(topics.subscriberCount("news"), 1);
    assert.equal(topics.subscriptions, 1);
    assert.equal(topics.size, 1);
    assert.equal(topics.unsubscribe("news", a), true);
    assert.equal(topics.unsubscribe("news", a), false, "twice");
    assert.equal(topics.subscriptions, 0);
  });

  it("subscriptions counts subscriptions summed over topics", () => {
    const topics = new LocalTopics<Fake>();
    const subs = fakes(10);
    for (let i = 0; i < subs.length; i++) {
      for (let t = 0; t <= i % 3; t++) topics.subscribe(`t${t}`, subs[i]);
    }
    // i % 3 = 0: 4 subscribers × 1, = 1: 3 × 2, = 2: 3 × 3.
    assert.equal(topics.subscriptions, 4 + 6 + 9);
    assert.equal(topics.size, 3);
    assert.deepEqual(
      [0, 1, 2].map((t) => topics.subscriberCount(`t${t}`)),
      [10, 6, 3],
    );
    for (const s of subs) topics.unsubscribe("t0", s);
    assert.equal(topics.subscriptions, 9);
    assert.equal(topics.size, 2);
  });

  it("topic names are compared as strings, exactly", () => {
    const topics = new LocalTopics<Fake>();
    const [a, b] = fakes(2);
    topics.subscribe("News", a);
    topics.subscribe("news", b);
    topics.subscribe("", a);
    assert.equal(topics.size, 3);
    assert.equal(topics.publish("news", new PreparedMessage("x")), 1);
    assert.deepEqual([a.received.length, b.received.length], [0, 1]);
    assert.equal(topics.publish("", new PreparedMessage("y")), 1);
    assert.deepEqual([a.received.length, b.received.length], [1, 1]);
  });
});

describe("LocalTopics: publish", () => {
  it("delivers the same message object to every subscriber, with compress passed on", () => {
    const topics = new LocalTopics<Fake>();
    const subs = fakes(4);
    for (const s of subs) topics.subscribe("news", s);
    const other = new Fake("other");
    topics.subscribe("sport", other);
    const message = new PreparedMessage("hello");
    assert.equal(topics.publish("news", message, { compress: false }), 4);
    for (const s of subs) {
      assert.equal(s.received.length, 1, s.name);
      assert.equal(s.received[0].message, message, `${s.name}: the same object`);
      assert.equal(s.received[0].compress, false);
    }
    assert.equal(other.received.length, 0, "another topic's subscriber");
    topics.publish("news", message, { compress: true });
    assert.equal(subs[0].received[1].compress, true);
    topics.publish("news", message);
    assert.equal(subs[0].received[2].compress, undefined);
  });

  it("a topic with no subscribers gets 0 and calls nobody", () => {
    const topics = new LocalTopics<Fake>();
    const a = new Fake("a");
    topics.subscribe("news", a);
    assert.equal(topics.publish("sport", new PreparedMessage("x")), 0);
    topics.unsubscribe("news", a);
    assert.equal(topics.publish("news", new PreparedMessage("x")), 0);
    assert.equal(a.received.length, 0);
  });

  it("counts only subscribers whose deliver() returned true", () => {
    const topics = new LocalTopics<Fake>();
    const subs = fakes(5);
    for (const s of subs) topics.subscribe("news", s);
    subs[1].accept = false;
    subs[3].accept = false;
    assert.equal(topics.publish("news", new PreparedMessage("x")), 3);
    // Every one was still asked.
    for (const s of subs) assert.equal(s.received.length, 1, s.name);
    subs[1].accept = true;
    assert.equal(topics.publish("news", new PreparedMessage("y")), 4);
  });

  it("skips `except`, and only it", () => {
    const topics = new LocalTopics<Fake>();
    const subs = fakes(3);
    for (const s of subs) topics.subscribe("news", s);
    assert.equal(topics.publish("news", new PreparedMessage("x"), { except: subs[1] }), 2);
    assert.deepEqual(subs.map((s) => s.received.length), [1, 0, 1]);
    // An `except` that is not subscribed skips nobody.
    assert.equal(topics.publish("news", new PreparedMessage("y"), { except: new Fake("x") }), 3);
    assert.deepEqual(subs.map((s) => s.received.length), [2, 1, 2]);
  });

  it("a subscriber that unsubscribes itself during publish: everyone is still visited once", () => {
    const topics = new LocalTopics<Fake>();
    const subs = fakes(5);
    for (const s of subs) topics.subscribe("news", s);
    subs[0].during = () => topics.unsubscribe("news", subs[0]);
    subs[2].during = () => topics.unsubscribe("news", subs[2]);
    assert.equal(topics.publish("news", new PreparedMessage("x")), 5);
    assert.deepEqual(subs.map((s) => s.received.length), [1, 1, 1, 1, 1]);
    assert.equal(topics.subscriberCount("news"), 3);
    assert.equal(topics.subscriptions, 3);
    assert.equal(topics.publish("news", new PreparedMessage("y")), 3);
    assert.deepEqual(subs.map((s) => s.received.length), [1, 2, 1, 2, 2]);
  });

  it("a subscriber that unsubscribes another during publish: the rest are still visited", () => {
    const topics = new LocalTopics<Fake>();
    const subs = fakes(5);
    for (const s of subs) topics.subscribe("news", s);
    // s1 removes s0 (already visited) and s3 (not yet visited).
    subs[1].during = () => {
      topics.unsubscribe("news", subs[0]);
      topics.unsubscribe("news", subs[3]);
    };
    const reached = topics.publish("news", new PreparedMessage("x"));
    assert.deepEqual(subs.map((s) => s.received.length), [1, 1, 1, 0, 1]);
    assert.equal(reached, 4);
    assert.equal(topics.subscriberCount("news"), 3);
  });

  it("the last subscribers leaving during publish remove the topic without breaking it", () => {
    const topics = new LocalTopics<Fake>();
    const subs = fakes(3);
    for (const s of subs) topics.subscribe("news", s);
    for (const s of subs) s.during = () => topics.unsubscribe("news", s);
    assert.equal(topics.publish("news", new PreparedMessage("x")), 3);
    assert.deepEqual(subs.map((s) => s.received.length), [1, 1, 1]);
    assert.equal(topics.size, 0);
    assert.equal(topics.subscriptions, 0);
    assert.equal(topics.publish("news", new PreparedMessage("y")), 0);
  });

  it("a subscriber that leaves every topic during a publish to one of them", () => {
    const topics = new LocalTopics<Fake>();
    const [a, b] = fakes(2);
    for (const t of ["x", "y", "z"]) {
      topics.subscribe(t, a);
      topics.subscribe(t, b);
    }
    a.during = () => {
      for (const t of ["x", "y", "z"]) topics.unsubscribe(t, a);
    };
    assert.equal(topics.publish("y", new PreparedMessage("m")), 2);
    assert.equal(b.received.length, 1);
    assert.equal(topics.subscriptions, 3);
    assert.deepEqual(["x", "y", "z"].map((t) => topics.subscriberCount(t)), [1, 1, 1]);
  });
});
