import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { decodeUtf8, Utf8StreamDecoder } from "./utf8.ts";
import { concat, hex } from "./_test_util.ts";

const encoder = new TextEncoder();

const VALID = [
  "",
  "Hello",
  "κόσμε",
  "a€😀b",
  "\u0000\u007f\u0080\u07ff\u0800\uffff",
  "\u{10000}\u{10ffff}",
  "\ud7ff\ue000", // either side of the surrogates
  "日本語のテキスト",
  "\uFEFF starts with a BOM",
  "e\u0301 👩‍👩‍👧",
];

/**
 * Invalid sequences, with the index of the byte at which a streaming decoder must give up (the
 * first byte that no valid UTF-8 can have in that place), or `"end"` when only the end of the
 * message shows the sequence is truncated.
 */
const INVALID: [name: string, bytes: string, failsAt: number | "end"][] = [
  ["overlong NUL C0 80", "c0 80", 0],
  ["overlong C1 BF", "c1 bf", 0],
  ["overlong 3-byte E0 80 80", "e0 80 80", 1],
  ["overlong 3-byte E0 9F BF", "e0 9f bf", 1],
  ["overlong 4-byte F0 80 80 80", "f0 80 80 80", 1],
  ["overlong 4-byte F0 8F BF BF", "f0 8f bf bf", 1],
  ["high surrogate ED A0 80", "ed a0 80", 1],
  ["low surrogate ED BF BF", "ed bf bf", 1],
  ["surrogate pair in CESU-8", "ed a0 bd ed b2 a9", 1],
  ["above U+10FFFF F4 90 80 80", "f4 90 80 80", 1],
  ["F5 lead", "f5 80 80 80", 0],
  ["FF", "ff", 0],
  ["FE", "fe", 0],
  ["lone continuation 80", "80", 0],
  ["lone continuation BF after ASCII", "41 bf", 1],
  ["lead followed by ASCII", "c3 41", 1],
  ["3-byte lead cut by ASCII", "e2 82 41", 2],
  ["4-byte lead cut by a lead", "f0 9f 98 f0 9f 98 80", 3],
  ["truncated 2-byte at the end", "41 c3", "end"],
  ["truncated 3-byte at the end", "e2 82", "end"],
  ["truncated 4-byte at the end", "f0 9f 98", "end"],
  ["lone lead at the end", "f4", "end"],
];

describe("decodeUtf8", () => {
  it("decodes valid text", () => {
    for (const text of VALID) assert.equal(decodeUtf8(encoder.encode(text)), text);
  });

  it("returns undefined for invalid sequences", () => {
    for (const [name, bytes] of INVALID) {
      assert.equal(decodeUtf8(hex(bytes)), undefined, name);
      assert.equal(decodeUtf8(concat(encoder.encode("ok "), hex(bytes))), undefined, name);
    }
  });

  it("keeps a leading BOM", () => {
    assert.equal(decodeUtf8(hex("ef bb bf 41")), "\uFEFFA");
    assert.equal(decodeUtf8(hex("ef bb bf ef bb bf")), "\uFEFF\uFEFF");
  });

  it("is not disturbed by a failed call or a truncated one before it", () => {
    assert.equal(decodeUtf8(hex("e2 82")), undefined);
    assert.equal(decodeUtf8(hex("ac")), undefined, "no leftover state joins e2 82 to ac");
    assert.equal(decodeUtf8(hex("ff")), undefined);
    assert.equal(decodeUtf8(hex("ef bb bf 41")), "\uFEFFA");
  });
});

describe("Utf8StreamDecoder", () => {
  it("decodes valid text split in two at every byte offset", () => {
    const decoder = new Utf8StreamDecoder();
    for (const text of VALID) {
      const bytes = encoder.encode(text);
      for (let cut = 0; cut <= bytes.length; cut++) {
        const head = decoder.push(bytes.subarray(0, cut));
        const tail = decoder.end(bytes.subarray(cut));
        assert.notEqual(head, undefined);
        assert.equal(head! + tail!, text, `${JSON.stringify(text)} cut at ${cut}`);
      }
    }
  });

  it("decodes valid text pushed one byte at a time, then end() with nothing", () => {
    const decoder = new Utf8StreamDecoder();
    for (const text of VALID) {
      const bytes = encoder.encode(text);
      let out = "";
      for (let i = 0; i < bytes.length; i++) out += decoder.push(bytes.subarray(i, i + 1))!;
      out += decoder.end()!;
      assert.equal(out, text);
    }
  });

  it("returns only completed characters from push()", () => {
    const decoder = new Utf8StreamDecoder();
    assert.equal(decoder.push(hex("61 e2")), "a");
    assert.equal(decoder.push(hex("82")), "");
    assert.equal(decoder.push(hex("ac f0 9f")), "€");
    assert.equal(decoder.end(hex("98 80")), "😀");
  });

  it("rejects at the first impossible byte: F4 alone is fine, then 90 fails", () => {
    const decoder = new Utf8StreamDecoder();
    assert.equal(decoder.push(hex("f4")), "");
    assert.equal(decoder.push(hex("90")), undefined);
  });

  for (const [name, bytes, failsAt] of INVALID) {
    it(`rejects ${name} ${failsAt === "end" ? "at end()" : `at byte ${failsAt}`}`, () => {
      const input = hex(bytes);
      // Byte by byte: every push before the bad byte succeeds; the bad one fails.
      const decoder = new Utf8StreamDecoder();
      const last = failsAt === "end" ? input.length : failsAt;
      for (let i = 0; i < last; i++) {
        assert.notEqual(decoder.push(input.subarray(i, i + 1)), undefined, `byte ${i}`);
      }
      if (failsAt === "end") {
        assert.equal(decoder.end(), undefined);
      } else {
        assert.equal(decoder.push(input.subarray(failsAt, failsAt + 1)), undefined);
      }
      // Whole, in one push (or one end()).
      const whole = new Utf8StreamDecoder();
      if (failsAt === "end") {
        assert.notEqual(whole.push(input), undefined);
        assert.equal(whole.end(), undefined);
      } else {
        assert.equal(whole.push(input), undefined);
      }
      assert.equal(new Utf8StreamDecoder().end(input), undefined);
    });
  }

  it("keeps a BOM, also one split across pushes, and in the next message", () => {
    const decoder = new Utf8StreamDecoder();
    assert.equal(decoder.push(hex("ef")), "");
    assert.equal(decoder.push(hex("bb")), "");
    assert.equal(decoder.end(hex("bf 41")), "\uFEFFA");
    assert.equal(decoder.end(hex("ef bb bf 42")), "\uFEFFB");
    assert.equal(decoder.push(hex("ef bb bf")), "\uFEFF");
    assert.equal(decoder.end(hex("ef bb bf")), "\uFEFF");
  });

  it("starts the next message clean after end()", () => {
    const decoder = new Utf8StreamDecoder();
    assert.equal(decoder.end(hex("41 e2 82 ac")), "A€");
    assert.equal(decoder.push(hex("e2 82")), "");
    assert.equal(decoder.end(), undefined, "a message ending inside a character");
    assert.equal(decoder.end(hex("ac")), undefined, "ac must not complete the old e2 82");
    assert.equal(decoder.end(hex("42")), "B");
  });

  it("starts clean after a failed push", () => {
    const decoder = new Utf8StreamDecoder();
    assert.equal(decoder.push(hex("e2")), "");
    assert.equal(decoder.push(hex("41")), undefined);
    assert.equal(decoder.push(hex("82 ac")), undefined, "no leftover e2 to complete");
    assert.equal(decoder.push(hex("e2 82")), "");
    assert.equal(decoder.end(hex("ac")), "€");
  });

  it("forgets a message in progress on reset()", () => {
    const decoder = new Utf8StreamDecoder();
    assert.equal(decoder.push(hex("41 e2 82")), "A");
    decoder.reset();
    assert.equal(decoder.end(hex("42")), "B");
    assert.equal(decoder.push(hex("f0 9f")), "");
    decoder.reset();
    assert.equal(decoder.end(hex("98 80")), undefined, "continuation bytes after reset()");
    decoder.reset();
    decoder.reset();
    assert.equal(decoder.end(hex("ef bb bf 43")), "\uFEFFC");
  });

  it("agrees with decodeUtf8 on random bytes pushed in random pieces", () => {
    const decoder = new Utf8StreamDecoder();
    fc.assert(
      fc.property(
        fc.oneof(
          fc.uint8Array({ maxLength: 40 }),
          fc.string({ unit: "binary", maxLength: 20 }).map((s) => encoder.encode(s)),
          fc.array(fc.constantFrom(0x41, 0x80, 0xbf, 0xc2, 0xe2, 0xed, 0xf0, 0xf4, 0x9f, 0x90), {
            maxLength: 12,
          }).map((b) => Uint8Array.from(b)),
        ),
        fc.array(fc.nat(), { maxLength: 6 }),
        (bytes, rawCuts) => {
          const cuts = rawCuts.map((n) => n % (bytes.length + 1)).sort((a, b) => a - b);
          let out: string | undefined = "";
          let start = 0;
          for (const cut of cuts) {
            const piece = decoder.push(bytes.subarray(start, cut));
            start = cut;
            if (piece === undefined) {
              out = undefined;
              break;
            }
            out += piece;
          }
          if (out !== undefined) {
            const tail = decoder.end(bytes.subarray(start));
            out = tail === undefined ? undefined : out + tail;
          }
          assert.equal(out, decodeUtf8(bytes));
        },
      ),
      { numRuns: 2000 },
    );
  });

  it("decodes random text split at random offsets", () => {
    fc.assert(
      fc.property(
        fc.string({ unit: "binary", maxLength: 50 }),
        fc.array(fc.nat(), { maxLength: 6 }),
        (text, rawCuts) => {
          const bytes = encoder.encode(text);
          const cuts = rawCuts.map((n) => n % (bytes.length + 1)).sort((a, b) => a - b);
          const decoder = new Utf8StreamDecoder();
          let out = "";
          let start = 0;
          for (const cut of cuts) {
            out += decoder.push(bytes.subarray(start, cut))!;
            start = cut;
          }
          out += decoder.end(bytes.subarray(start))!;
          assert.equal(out, text);
        },
      ),
      { numRuns: 1000 },
    );
  });
});
