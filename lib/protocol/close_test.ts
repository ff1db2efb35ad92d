import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  encodeClosePayload,
  isValidCloseCode,
  MAX_CLOSE_REASON_BYTES,
  parseClosePayload,
} from "./close.ts";
import { CloseCode, ErrorCodes, WebSocketError } from "./errors.ts";
import { concat, hex, toHex } from "./_test_util.ts";

const utf8 = (s: string) => new TextEncoder().encode(s);

/**
 * RFC 6455 §7.4.1 and the IANA registry: the codes an endpoint may put in a Close frame. 1004
 * is reserved, 1005/1006/1015 are local only, 1016–2999 are reserved; 3000–4999 are for
 * libraries, frameworks and applications (§7.4.2).
 */
const SENDABLE = new Set([1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014]);
const isSendable = (code: number) => SENDABLE.has(code) || (code >= 3000 && code <= 4999);

function assertCloseError(
  result: unknown,
  code: string,
  closeCode: number,
  message: string,
): void {
  assert.ok(result instanceof WebSocketError, `expected a WebSocketError, got ${result}`);
  assert.equal(result.name, "WebSocketError");
  assert.equal(result.code, code);
  assert.equal(result.closeCode, closeCode);
  assert.equal(result.message, message);
}

describe("isValidCloseCode", () => {
  it("matches RFC 6455's list over 0..5999", () => {
    const wrong: number[] = [];
    for (let code = 0; code < 6000; code++) {
      if (isValidCloseCode(code) !== isSendable(code)) wrong.push(code);
    }
    assert.deepEqual(wrong, []);
  });

  it("agrees with the CloseCode table: only 1005, 1006 and 1015 are never sent", () => {
    const local = Object.entries(CloseCode).filter(([, code]) => !isValidCloseCode(code));
    assert.deepEqual(local.map(([name]) => name).sort(), [
      "AbnormalClosure",
      "NoStatusReceived",
      "TlsHandshake",
    ]);
  });

  it("rejects codes that cannot be 16-bit integers on the wire", () => {
    for (const code of [-1, 65535, 65536, NaN, Infinity, -Infinity, 1000.5, 3999.9]) {
      assert.equal(isValidCloseCode(code), false, `${code}`);
    }
  });
});

describe("parseClosePayload", () => {
  it("reads an empty payload as 1005 with no reason", () => {
    assert.deepEqual(parseClosePayload(new Uint8Array(0)), { code: 1005, reason: "" });
  });

  it("reads a code alone and a code with a reason", () => {
    assert.deepEqual(parseClosePayload(hex("03 e8")), { code: 1000, reason: "" });
    assert.deepEqual(parseClosePayload(hex("03 e8 68 69")), { code: 1000, reason: "hi" });
    assert.deepEqual(parseClosePayload(hex("13 87")), { code: 4999, reason: "" });
    assert.deepEqual(parseClosePayload(concat(hex("0b b8"), utf8("ça va ✓ 😀"))), {
      code: 3000,
      reason: "ça va ✓ 😀",
    });
  });

  it("keeps a BOM at the start of the reason", () => {
    assert.deepEqual(parseClosePayload(hex("03 e8 ef bb bf 41")), {
      code: 1000,
      reason: "\uFEFFA",
    });
  });

  it("reads a reason of the full 123 bytes", () => {
    const reason = "r".repeat(MAX_CLOSE_REASON_BYTES);
    assert.deepEqual(parseClosePayload(concat(hex("03 e9"), utf8(reason))), {
      code: 1001,
      reason,
    });
  });

  it("rejects a 1-byte payload with 1002", () => {
    for (const payload of [hex("03"), hex("00"), hex("ff")]) {
      assertCloseError(
        parseClosePayload(payload),
        "WS_ERR_INVALID_CLOSE_CODE",
        1002,
        "Invalid close frame: a 1-byte payload has no room for a close code",
      );
    }
  });

  it("rejects every code that may not be sent with 1002, with or without a reason", () => {
    for (let code = 0; code <= 0xffff; code++) {
      if (isSendable(code)) continue;
      for (
        const payload of [
          Uint8Array.of(code >> 8, code & 0xff),
          Uint8Array.of(code >> 8, code & 0xff, 0x41),
        ]
      ) {
        assertCloseError(
          parseClosePayload(payload),
          "WS_ERR_INVALID_CLOSE_CODE",
          1002,
          `Invalid close frame: close code ${code} may not be sent`,
        );
      }
    }
  });

  it("accepts every code that may be sent", () => {
    for (let code = 0; code < 6000; code++) {
      if (!isSendable(code)) continue;
      assert.deepEqual(parseClosePayload(Uint8Array.of(code >> 8, code & 0xff, 0x78)), {
        code,
        reason: "x",
      });
    }
  });

  it("rejects a reason that is not UTF-8 with 1007", () => {
    for (const bad of ["ff", "c0 80", "ed a0 80", "f4 90 80 80", "e2 82", "80", "61 e2 82"]) {
      const result = parseClosePayload(concat(hex("03 e8"), hex(bad)));
      assertCloseError(
        result,
        "WS_ERR_INVALID_UTF8",
        1007,
        "Invalid close frame: the reason is not UTF-8",
      );
      assert.equal(ErrorCodes.WS_ERR_INVALID_UTF8, 1007);
    }
  });

  it("checks the code before the reason", () => {
    assertCloseError(
      parseClosePayload(hex("03 ed ff")),
      "WS_ERR_INVALID_CLOSE_CODE",
      1002,
      "Invalid close frame: close code 1005 may not be sent",
    );
  });
});

describe("encodeClosePayload", () => {
  it("encodes nothing for no code", () => {
    assert.equal(encodeClosePayload().length, 0);
    assert.equal(encodeClosePayload(undefined, "").length, 0);
  });

  it("encodes the code big-endian, then the reason's UTF-8", () => {
    assert.equal(toHex(encodeClosePayload(1000)), "03 e8");
    assert.equal(toHex(encodeClosePayload(1000, "bye")), "03 e8 62 79 65");
    assert.equal(toHex(encodeClosePayload(4999, "é")), "13 87 c3 a9");
    assert.equal(toHex(encodeClosePayload(3000, "😀")), "0b b8 f0 9f 98 80");
    assert.equal(toHex(encodeClosePayload(1014)), "03 f6");
  });

  it("accepts a reason of exactly 123 bytes, counted in UTF-8", () => {
    assert.equal(encodeClosePayload(1000, "a".repeat(123)).length, 125);
    assert.equal(encodeClosePayload(1000, "a" + "é".repeat(61)).length, 125);
    assert.equal(encodeClosePayload(1000, "abc" + "😀".repeat(30)).length, 125);
  });

  it("throws RangeError for a reason over 123 bytes", () => {
    for (
      const [reason, bytes] of [["a".repeat(124), 124], ["é".repeat(62), 124], [
        "😀".repeat(31),
        124,
      ], ["x".repeat(1000), 1000]] as const
    ) {
      assert.throws(() => encodeClosePayload(1000, reason), {
        name: "RangeError",
        message: `Cannot close: the reason takes ${bytes} bytes of UTF-8, more than 123`,
      });
    }
  });

  it("throws RangeError for a code that may not be sent", () => {
    for (const code of [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535, -1, 1000.5, NaN]) {
      assert.throws(() => encodeClosePayload(code), {
        name: "RangeError",
        message:
          `Cannot close: close code ${code} may not be sent (use 1000-1003, 1007-1014 or 3000-4999)`,
      }, `${code}`);
    }
  });

  it("throws TypeError for a reason without a code", () => {
    assert.throws(() => encodeClosePayload(undefined, "why"), {
      name: "TypeError",
      message: "Cannot close: a reason needs a close code",
    });
  });

  it("round-trips through parseClosePayload", () => {
    const codeArb = fc.oneof(
      fc.constantFrom(...SENDABLE),
      fc.integer({ min: 3000, max: 4999 }),
    );
    fc.assert(
      fc.property(codeArb, fc.string({ unit: "grapheme", maxLength: 40 }), (code, text) => {
        // Trim to whole characters within 123 bytes.
        let reason = text;
        while (utf8(reason).length > MAX_CLOSE_REASON_BYTES) {
          reason = [...reason].slice(0, -1).join("");
        }
        assert.deepEqual(parseClosePayload(encodeClosePayload(code, reason)), { code, reason });
      }),
      { numRuns: 500 },
    );
  });
});
