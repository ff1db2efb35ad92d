import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { type ExtensionOffer, parseExtensions } from "./extension_header.ts";

const PREFIX = "Invalid Sec-WebSocket-Extensions header: ";

function offers(value: string): ExtensionOffer[] {
  const result = parseExtensions(value);
  if (typeof result === "string") assert.fail(`${JSON.stringify(value)}: ${result}`);
  return result;
}

function malformed(value: string, message?: string): string {
  const result = parseExtensions(value);
  assert.equal(typeof result, "string", `${JSON.stringify(value)} should be malformed`);
  const text = result as string;
  assert.ok(text.startsWith(PREFIX), text);
  if (message !== undefined) assert.equal(text, PREFIX + message);
  return text;
}

const TCHARS = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";

describe("parseExtensions: valid values", () => {
  it("parses the examples of RFC 6455 §9.1", () => {
    assert.deepEqual(offers("deflate-stream"), [{ name: "deflate-stream", params: [] }]);
    assert.deepEqual(offers("mux; max-channels=4; flow-control, deflate-stream"), [
      { name: "mux", params: [["max-channels", "4"], ["flow-control", true]] },
      { name: "deflate-stream", params: [] },
    ]);
    assert.deepEqual(offers("private-extension"), [{ name: "private-extension", params: [] }]);
    assert.deepEqual(offers("foo, bar; baz=2"), [
      { name: "foo", params: [] },
      { name: "bar", params: [["baz", "2"]] },
    ]);
  });

  it("parses the offers of browsers", () => {
    // Chrome, Edge and Safari; Firefox; old Safari.
    assert.deepEqual(offers("permessage-deflate; client_max_window_bits"), [
      { name: "permessage-deflate", params: [["client_max_window_bits", true]] },
    ]);
    assert.deepEqual(offers("permessage-deflate"), [{ name: "permessage-deflate", params: [] }]);
    assert.deepEqual(offers("x-webkit-deflate-frame"), [
      { name: "x-webkit-deflate-frame", params: [] },
    ]);
  });

  it("parses several offers of the same extension (RFC 7692 §5), in order", () => {
    assert.deepEqual(
      offers(
        "permessage-deflate; client_max_window_bits; server_max_window_bits=10, " +
          "permessage-deflate; client_max_window_bits",
      ),
      [
        {
          name: "permessage-deflate",
          params: [["client_max_window_bits", true], ["server_max_window_bits", "10"]],
        },
        { name: "permessage-deflate", params: [["client_max_window_bits", true]] },
      ],
    );
  });

  it("lower-cases extension and parameter names, and keeps the case of values", () => {
    assert.deepEqual(offers('PerMessage-Deflate; Client_Max_Window_Bits=AbC; X="DeF"'), [
      { name: "permessage-deflate", params: [["client_max_window_bits", "AbC"], ["x", "DeF"]] },
    ]);
  });

  it("allows OWS (SP and HTAB) around ';', '=' and ','", () => {
    const expected = [
      { name: "a", params: [["b", "c"], ["d", true]] },
      { name: "e", params: [] },
    ];
    assert.deepEqual(offers("a;b=c;d,e"), expected);
    assert.deepEqual(offers("  a \t; b \t=\t c ;\td \t, \te\t "), expected);
    assert.deepEqual(offers('a ; b = "c" ; d , e'), expected);
  });

  it("skips empty list elements (RFC 7230 §7)", () => {
    const expected = [{ name: "a", params: [] }, { name: "b", params: [] }];
    assert.deepEqual(offers("a, , b"), expected);
    assert.deepEqual(offers(",a,,b,"), expected);
    assert.deepEqual(offers(" , \t,a ,\t, b , , "), expected);
    assert.deepEqual(offers("a; x=1,,b"), [{ name: "a", params: [["x", "1"]] }, expected[1]]);
  });

  it("has no offers in an empty value or one of empty elements only", () => {
    assert.deepEqual(offers(""), []);
    assert.deepEqual(offers("   "), []);
    assert.deepEqual(offers(", ,\t,"), []);
  });

  it("unquotes quoted values, with quoted-pairs", () => {
    assert.deepEqual(offers('a; b="10"'), [{ name: "a", params: [["b", "10"]] }]);
    assert.deepEqual(offers('a; b="\\1\\0"'), [{ name: "a", params: [["b", "10"]] }]);
    assert.deepEqual(offers('a; b="x\\-y"; c=z'), [
      { name: "a", params: [["b", "x-y"], ["c", "z"]] },
    ]);
    assert.deepEqual(offers('a; b="!#$%&\'*+-.^_`|~"'), [
      { name: "a", params: [["b", "!#$%&'*+-.^_`|~"]] },
    ]);
  });

  it("keeps repeated parameters and repeated extensions", () => {
    assert.deepEqual(offers("a; b=1; b; b=2, a"), [
      { name: "a", params: [["b", "1"], ["b", true], ["b", "2"]] },
      { name: "a", params: [] },
    ]);
  });

  it("accepts every tchar in names and values", () => {
    assert.deepEqual(offers(`${TCHARS}; ${TCHARS}=${TCHARS}`), [
      { name: TCHARS.toLowerCase(), params: [[TCHARS.toLowerCase(), TCHARS]] },
    ]);
  });
});

describe("parseExtensions: malformed values", () => {
  it("says where the error is", () => {
    malformed("a;", "expected a parameter name at the end");
    malformed("a; ", "expected a parameter name at the end");
    malformed("a;;b", 'expected a parameter name at index 2, found ";"');
    malformed("a; b=", "expected a parameter value at the end");
    malformed("a; b= ", "expected a parameter value at the end");
    malformed("a; b=,c", 'expected a parameter value at index 5, found ","');
    malformed("a b", 'expected ";" or "," at index 2, found "b"');
    malformed("a=1", 'expected ";" or "," at index 1, found "="');
    malformed(";a", 'expected an extension name at index 0, found ";"');
    malformed("a; =1", 'expected a parameter name at index 3, found "="');
    malformed('a; b="1', "a quoted-string from index 5 is not terminated");
    malformed('a; b="1\\', "a quoted-string from index 5 is not terminated");
    malformed('a; b=""', "an empty quoted parameter value at index 5");
    malformed('a; b="1 0"', 'a quoted parameter value that is not a token, " " at index 7');
  });

  it("rejects a trailing ';' before a ','", () => {
    malformed("a;, b");
    malformed("a; b;, c");
    malformed("a; b=1;");
  });

  it("rejects characters that are not tchars in names and values", () => {
    for (const c of ' "(),/:;<=>?@[\\]{}\x00\x7f\x80é€\u{1f600}') {
      if (c === " " || c === ",") continue; // OWS and the list separator
      malformed(`a${c}`);
      malformed(`${c}a`);
      malformed(`a; b${c}`);
      malformed(`a; b=c${c}`);
      malformed(`a; b=${c}`);
    }
  });

  it("rejects a quoted value that is not a token once unquoted (RFC 6455 §9.1)", () => {
    malformed('a; b="\\""');
    malformed('a; b="\\\\"');
    malformed('a; b="x,y"');
    malformed('a; b="x;y"');
    malformed('a; b="x=y"');
    malformed('a; b="\t"');
    malformed('a; b="é"');
  });

  it("rejects a quoted name", () => {
    malformed('"a"');
    malformed('a; "b"');
    malformed('a; "b"=c');
  });

  it("rejects text after a quoted value", () => {
    malformed('a; b="c"d');
    malformed('a; b="c""d"');
  });
});

// ---------------------------------------------------------------------------------------------
// Properties

const token = fc.string({ unit: fc.constantFrom(...TCHARS), minLength: 1, maxLength: 12 });
const ows = fc.string({ unit: fc.constantFrom(" ", "\t"), maxLength: 2 });

/** A param value: none, or a token. */
const paramValue: fc.Arbitrary<string | true> = fc.oneof(fc.constant(true as const), token);

const offerArb: fc.Arbitrary<ExtensionOffer> = fc.record({
  name: token,
  params: fc.array(fc.tuple(token, paramValue), { maxLength: 5 }),
});

/** One way of writing a value: plain, quoted, or quoted with some characters escaped. */
function writeValue(value: string, style: number, seed: number): string {
  if (style === 0) return value;
  let text = '"';
  for (let i = 0; i < value.length; i++) {
    text += style === 2 && ((seed >> (i % 30)) & 1) === 1 ? `\\${value[i]}` : value[i];
  }
  return `${text}"`;
}

describe("parseExtensions: properties", () => {
  it("never throws on arbitrary strings, and returns offers or a message", () => {
    const check = (value: string) => {
      const result = parseExtensions(value);
      if (typeof result === "string") {
        assert.ok(result.startsWith(PREFIX));
      } else {
        assert.ok(Array.isArray(result));
      }
    };
    fc.assert(fc.property(fc.string({ unit: "binary", maxLength: 60 }), check), {
      numRuns: 2000,
    });
    // Mostly the grammar's own characters, to reach deeper into it.
    const near = fc.string({
      unit: fc.constantFrom("a", "B", "9", "-", " ", "\t", ",", ";", "=", '"', "\\", "é", "("),
      maxLength: 40,
    });
    fc.assert(fc.property(near, check), { numRuns: 5000 });
  });

  it("round-trips generated offers, whatever the case, OWS, quoting and empty elements", () => {
    const written = fc.record({
      offers: fc.array(offerArb, { minLength: 1, maxLength: 4 }),
      // Per written piece: OWS, quoting style, escape pattern, upper-casing, empty elements.
      ows: fc.array(ows, { minLength: 64, maxLength: 64 }),
      styles: fc.array(fc.integer({ min: 0, max: 2 }), { minLength: 32, maxLength: 32 }),
      seed: fc.integer({ min: 0, max: 0x3fffffff }),
      upper: fc.array(fc.boolean(), { minLength: 32, maxLength: 32 }),
      empties: fc.array(fc.integer({ min: 0, max: 2 }), { minLength: 8, maxLength: 8 }),
    });
    fc.assert(
      fc.property(written, ({ offers: list, ows, styles, seed, upper, empties }) => {
        let w = 0;
        let s = 0;
        const sp = () => ows[w++ % ows.length];
        const name = (n: string) => (upper[s++ % upper.length] ? n.toUpperCase() : n);
        let text = "";
        list.forEach((offer, k) => {
          if (k > 0) text += `${sp()},${sp()}`;
          for (let e = 0; e < empties[k]; e++) text += `,${sp()}`;
          text += name(offer.name);
          for (const [p, v] of offer.params) {
            text += `${sp()};${sp()}${name(p)}`;
            if (v !== true) text += `${sp()}=${sp()}${writeValue(v, styles[s++ % 32], seed)}`;
          }
        });
        const expected = list.map((o) => ({
          name: o.name.toLowerCase(),
          params: o.params.map(([p, v]) => [p.toLowerCase(), v]),
        }));
        assert.deepEqual(parseExtensions(text), expected, text);
      }),
      { numRuns: 2000 },
    );
  });

  it("parses its own output again to the same offers", () => {
    const write = (list: ExtensionOffer[]) =>
      list.map((o) => [o.name, ...o.params.map(([p, v]) => v === true ? p : `${p}=${v}`)])
        .map((parts) => parts.join("; ")).join(", ");
    // Tokens and separators, so that many values are valid.
    const pieces = fc.array(
      fc.oneof(
        { arbitrary: token, weight: 3 },
        { arbitrary: fc.constantFrom("; ", ", ", "=", ' "', '" ', "\\", " ", ",", ";"), weight: 2 },
      ),
      { maxLength: 12 },
    );
    fc.assert(
      fc.property(pieces, (list) => {
        const value = list.join("");
        const result = parseExtensions(value);
        if (typeof result !== "string") assert.deepEqual(parseExtensions(write(result)), result);
      }),
      { numRuns: 5000 },
    );
  });

  it("reads a long value in linear time", () => {
    // One left-to-right pass: 20 000 offers of 3 parameters each parse in well under a second.
    const value = Array(20_000).fill('permessage-deflate; a; b=10; c="1\\1"').join(", ");
    const start = performance.now();
    const result = parseExtensions(value);
    const elapsed = performance.now() - start;
    assert.ok(Array.isArray(result) && result.length === 20_000);
    assert.deepEqual(result[19_999].params, [["a", true], ["b", "10"], ["c", "11"]]);
    assert.ok(elapsed < 1000, `${elapsed} ms`);
  });
});
