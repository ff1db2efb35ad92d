import { test } from "node:test";
import assert from "node:assert/strict";
import { randomId, TokenSigner } from "./token.ts";

test("a token checks out for its id until its expiry", () => {
  const signer = new TokenSigner("0123456789abcdef");
  const token = signer.issue("abc", 1000, "inc");
  assert.deepEqual(signer.check(token, "inc", 999), { id: "abc" });
  assert.deepEqual(signer.check(token, "inc", 1000), { id: "abc" });
  assert.deepEqual(signer.check(token, "inc", 1001), { refusal: "expired" });
  assert.deepEqual(signer.check(token, "other", 0), { refusal: "restarted" });
});

test("a token with any part changed, or under another secret, is invalid", () => {
  const signer = new TokenSigner("0123456789abcdef");
  const token = signer.issue("abc", 1000, "inc");
  const parts = token.split(".");
  for (let i = 1; i < parts.length; i++) {
    const changed = [...parts];
    changed[i] = changed[i].slice(0, -1) + (changed[i].endsWith("a") ? "b" : "a");
    assert.deepEqual(
      signer.check(changed.join("."), "inc", 0),
      { refusal: "invalid" },
      `part ${i}`,
    );
  }
  const other = new TokenSigner(new TextEncoder().encode("another secret!!"));
  assert.deepEqual(other.check(token, "inc", 0), { refusal: "invalid" });
  const accented = `${parts.slice(0, 4).join(".")}.${"é".repeat(parts[4].length)}`;
  for (const bad of ["", "v1", "v2.a.b.c.d", "v1.a.b.c.***", "v1.a.b.c.d.e", accented]) {
    assert.deepEqual(signer.check(bad, "inc", 0), { refusal: "invalid" }, bad);
  }
});

test("random ids are base64url, 22 characters, and differ", () => {
  const ids = new Set(Array.from({ length: 100 }, randomId));
  assert.equal(ids.size, 100);
  for (const id of ids) assert.match(id, /^[A-Za-z0-9_-]{22}$/);
});
