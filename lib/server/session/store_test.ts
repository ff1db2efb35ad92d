import { test } from "node:test";
import assert from "node:assert/strict";
import { MemorySessionStore } from "./store.ts";

test("keep, peek, take; an expired session is released as expired", async () => {
  const released: string[] = [];
  const store = new MemorySessionStore<{ id: string }>(
    10,
    (s, why) => released.push(`${s.id}:${why}`),
  );
  const a = { id: "a" };
  store.keep(a, 20);
  store.keep({ id: "b" }, 10_000);
  assert.equal(store.size, 2);
  assert.equal(store.peek("a"), a);
  assert.equal(store.take("a"), a);
  assert.equal(store.take("a"), undefined);
  store.keep(a, 20);
  await new Promise((resolve) => setTimeout(resolve, 60));
  assert.deepEqual(released, ["a:expired"]);
  assert.deepEqual([...store.values()].map((s) => s.id), ["b"]);
  store.delete("b");
  assert.equal(store.size, 0);
});

test("past maxSessions the session kept longest is evicted", () => {
  const released: string[] = [];
  const store = new MemorySessionStore<{ id: string }>(
    2,
    (s, why) => released.push(`${s.id}:${why}`),
  );
  for (const id of ["a", "b", "c"]) store.keep({ id }, 10_000);
  assert.deepEqual(released, ["a:evicted"]);
  assert.deepEqual([...store.values()].map((s) => s.id), ["b", "c"]);
  for (const s of store.values()) store.delete(s.id);
  assert.match(store.incarnation, /^[A-Za-z0-9_-]{22}$/);
});
