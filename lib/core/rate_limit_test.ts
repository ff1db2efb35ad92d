import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { checkRateLimit, RateLimiter, type RateLimitOptions } from "./rate_limit.ts";

/** How many messages the limiter admits at `now`, asking until one is refused (at most 1000). */
function drain(limiter: RateLimiter, now: number): number {
  let taken = 0;
  while (taken < 1000 && limiter.takeMessage(now)) taken++;
  return taken;
}

describe("RateLimiter: messages", () => {
  it("starts with a full bucket: `messages` at once, then none", () => {
    const limiter = new RateLimiter({ messages: 3 }, 1000);
    assert.equal(drain(limiter, 1000), 3);
    assert.equal(limiter.takeMessage(1000), false);
  });

  it("refills continuously at the rate", () => {
    const limiter = new RateLimiter({ messages: 2 }, 0);
    assert.equal(drain(limiter, 0), 2);
    // 2 per second: one token every 500 ms.
    assert.equal(limiter.takeMessage(499), false);
    assert.equal(limiter.takeMessage(500), true);
    assert.equal(limiter.takeMessage(500), false);
    assert.equal(drain(limiter, 1500), 2);
  });

  it("keeps fractions of a token across refused asks", () => {
    const limiter = new RateLimiter({ messages: 4 }, 0);
    assert.equal(drain(limiter, 0), 4);
    // 4 per second: 0.5 of a token at 125 ms, refused without taking anything, 1 at 250 ms.
    assert.equal(limiter.takeMessage(125), false);
    assert.equal(limiter.takeMessage(250), true);
    assert.equal(limiter.takeMessage(250), false);
  });

  it("never holds more than messages × burst, however long it idles", () => {
    const limiter = new RateLimiter({ messages: 2, burst: 3 }, 0);
    assert.equal(drain(limiter, 0), 6);
    assert.equal(drain(limiter, 60_000), 6);
    assert.equal(drain(limiter, 3_600_000), 6);
  });

  it("burst: with messages 10 and burst 2, 20 at once, then 10 per second", () => {
    const limiter = new RateLimiter({ messages: 10, burst: 2 }, 0);
    assert.equal(drain(limiter, 0), 20);
    assert.equal(drain(limiter, 1000), 10);
    assert.equal(drain(limiter, 1100), 1);
  });

  it("a fractional burst caps the bucket below the rate", () => {
    const limiter = new RateLimiter({ messages: 10, burst: 0.5 }, 0);
    assert.equal(drain(limiter, 0), 5);
    assert.equal(drain(limiter, 10_000), 5);
  });

  it("a clock that goes back refills nothing, and the next refill counts from the latest time", () => {
    const limiter = new RateLimiter({ messages: 2 }, 1000);
    assert.equal(drain(limiter, 1000), 2);
    assert.equal(limiter.takeMessage(0), false);
    // 500 ms after 1000, not 1500 ms after 0: one token, not a full bucket.
    assert.equal(drain(limiter, 1500), 1);
  });

  it("without a message rate, messages are not limited", () => {
    const limiter = new RateLimiter({ bytes: 100 }, 0);
    assert.equal(drain(limiter, 0), 1000);
  });
});

describe("RateLimiter: bytes", () => {
  it("counts bytes up to bytes × burst, then reports the client over", () => {
    const limiter = new RateLimiter({ bytes: 100, burst: 2 }, 0);
    assert.equal(limiter.takeBytes(150, 0), true);
    assert.equal(limiter.takeBytes(50, 0), true); // exactly 200: still within
    assert.equal(limiter.takeBytes(1, 0), false);
  });

  it("goes below zero: bytes already in are counted, and messages are refused until it refills", () => {
    const limiter = new RateLimiter({ bytes: 100, messages: 100 }, 0);
    assert.equal(limiter.takeBytes(160, 0), false); // 100 - 160 = -60
    assert.equal(limiter.takeMessage(0), false);
    // 100 bytes per second, 0.1 per ms: at 300 ms -60 + 30 = -30, still refused.
    assert.equal(limiter.takeMessage(300), false);
    assert.equal(limiter.takeBytes(0, 500), false, "at 500 ms: -60 + 50 = -10");
    assert.equal(limiter.takeMessage(700), true, "at 700 ms: -60 + 70 = 10");
  });

  it("a refused message for bytes takes no message token", () => {
    const limiter = new RateLimiter({ bytes: 100, messages: 2 }, 0);
    limiter.takeBytes(200, 0); // -100
    for (let i = 0; i < 10; i++) assert.equal(limiter.takeMessage(0), false);
    // At 2000 ms the bytes are back; the message bucket is still full: both tokens.
    assert.equal(drain(limiter, 2000), 2);
  });

  it("the byte bucket refills to its cap, not beyond", () => {
    const limiter = new RateLimiter({ bytes: 100 }, 0);
    assert.equal(limiter.takeBytes(100, 0), true);
    assert.equal(limiter.takeBytes(100, 60_000), true);
    assert.equal(limiter.takeBytes(1, 60_000), false);
  });

  it("without a byte rate, bytes are not limited", () => {
    const limiter = new RateLimiter({ messages: 1 }, 0);
    assert.equal(limiter.takeBytes(Number.MAX_SAFE_INTEGER, 0), true);
    assert.equal(limiter.takeMessage(0), true);
  });
});

describe("checkRateLimit", () => {
  it("returns valid options as they are", () => {
    const options: RateLimitOptions = { messages: 10, bytes: 1e6, burst: 0.5, policy: "drop" };
    assert.equal(checkRateLimit(options), options);
    assert.deepEqual(checkRateLimit({}), {});
    assert.deepEqual(checkRateLimit({ policy: "close" }), { policy: "close" });
  });

  for (const name of ["messages", "bytes", "burst"] as const) {
    for (const value of [0, -1, NaN]) {
      it(`refuses ${name}: ${value} with a RangeError`, () => {
        assert.throws(() => checkRateLimit({ [name]: value }), {
          name: "RangeError",
          message: `Cannot serve: rateLimit.${name} must be a positive number, got ${value}`,
        });
      });
    }
  }

  it("refuses an unknown policy with a RangeError", () => {
    assert.throws(() => checkRateLimit({ policy: "block" as "drop" }), {
      name: "RangeError",
      message: 'Cannot serve: rateLimit.policy must be "close" or "drop", got block',
    });
  });
});
