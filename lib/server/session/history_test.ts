import { test } from "node:test";
import assert from "node:assert/strict";
import { MemoryTopicHistory } from "./history.ts";
import { decodeServerFrame } from "../../session/wire.ts";

function history(
  caps: { maxMessages?: number; maxBytes?: number; maxAge?: number; maxTopics?: number } = {},
  clock = { now: 0 },
): MemoryTopicHistory {
  return new MemoryTopicHistory(
    { maxMessages: 100, maxBytes: 1 << 20, maxAge: 1000, maxTopics: 100, ...caps },
    () => clock.now,
  );
}

const offsets = (frames: Array<string | Uint8Array>) =>
  frames.map((frame) => (decodeServerFrame(frame) as { offset: number }).offset);

test("append numbers messages from 1 in one epoch and encodes each pub frame once", () => {
  const h = history();
  const head = h.head("t");
  assert.equal(head.offset, 0);
  const first = h.append("t", "a");
  assert.deepEqual(first.position, { epoch: head.epoch, offset: 1 });
  assert.deepEqual(decodeServerFrame(first.frame), {
    t: "pub",
    topic: "t",
    epoch: head.epoch,
    offset: 1,
    d: "a",
  });
  const bytes = h.append("t", Uint8Array.of(1, 2));
  assert.ok(bytes.frame instanceof Uint8Array);
  assert.deepEqual(h.head("t"), { epoch: head.epoch, offset: 2 });
  assert.notEqual(h.head("other").epoch, head.epoch);
});

test("since: the frames after a position, or why not", () => {
  const h = history({ maxMessages: 3 });
  for (let i = 1; i <= 5; i++) h.append("t", `m${i}`);
  const { epoch } = h.head("t");
  assert.deepEqual(h.since("t", { epoch, offset: 5 }), { frames: [] });
  const since = h.since("t", { epoch, offset: 2 });
  assert.ok("frames" in since);
  assert.deepEqual(offsets(since.frames), [3, 4, 5]);
  assert.deepEqual(h.since("t", { epoch, offset: 1 }), {
    reason: "trimmed",
    head: { epoch, offset: 5 },
  });
  assert.deepEqual(h.since("t", { epoch, offset: 6 }), {
    reason: "ahead",
    head: { epoch, offset: 5 },
  });
  assert.deepEqual(h.since("t", { epoch: "x", offset: 2 }), {
    reason: "epoch",
    head: { epoch, offset: 5 },
  });
});

test("the byte cap and the age cap trim the oldest messages", () => {
  const clock = { now: 0 };
  const h = history({ maxBytes: 200 }, clock);
  for (let i = 1; i <= 10; i++) h.append("t", "x".repeat(10));
  const { epoch } = h.head("t");
  const kept = h.stats();
  assert.ok(kept.bytes <= 200);
  assert.ok(kept.messages < 10 && kept.messages > 0);
  assert.equal(kept.trimmed, 10 - kept.messages);
  clock.now = 2000; // past maxAge
  assert.equal((h.since("t", { epoch, offset: 9 }) as { reason: string }).reason, "trimmed");
  assert.equal(h.stats().messages, 0);
  // A message larger than the byte cap is numbered, not kept.
  const big = history({ maxBytes: 10 });
  big.append("t", "y".repeat(100));
  assert.equal(big.stats().messages, 0);
  assert.equal(big.head("t").offset, 1);
});

test("maxTopics drops the history of the topic that published least recently", () => {
  const h = history({ maxTopics: 2 });
  h.append("a", "1");
  h.append("b", "1");
  h.retain("a");
  const a = h.head("a");
  h.append("a", "2"); // a is now the most recent
  h.append("c", "1"); // three topics: b's history goes
  assert.equal(h.stats().topics, 2);
  assert.deepEqual(h.head("a"), { epoch: a.epoch, offset: 2 });
  // b was dropped whole (nobody subscribed): it starts again in a new epoch.
  assert.equal(h.head("b").offset, 0);
});

test("a topic nobody subscribes to and with no history is forgotten; retain keeps its epoch", () => {
  const h = history({ maxAge: 10 });
  const clock = { now: 0 };
  const kept = new MemoryTopicHistory(
    { maxMessages: 100, maxBytes: 1 << 20, maxAge: 10, maxTopics: 100 },
    () => clock.now,
  );
  kept.retain("t");
  const epoch = kept.head("t").epoch;
  kept.append("t", "a");
  clock.now = 100;
  kept.since("t", { epoch, offset: 0 }); // trims by age
  assert.equal(kept.head("t").epoch, epoch);
  kept.release("t");
  assert.notEqual(kept.head("t").epoch, epoch);
  assert.equal(h.stats().topics, 0);
});
