import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  checkDeflateResponse,
  type DeflateAgreement,
  type DeflateNegotiationOptions,
  deflateOffer,
  type DeflateParams,
  negotiateDeflate,
} from "./deflate_negotiation.ts";
import { type ExtensionOffer, parseExtensions } from "./extension_header.ts";

function parse(header: string): ExtensionOffer[] {
  const offers = parseExtensions(header);
  if (typeof offers === "string") assert.fail(offers);
  return offers;
}

/** Negotiates the offers of a Sec-WebSocket-Extensions value. */
function negotiate(
  header: string,
  options?: DeflateNegotiationOptions,
): DeflateAgreement | undefined {
  return negotiateDeflate(parse(header), options);
}

function params(
  localNoContextTakeover: boolean,
  remoteNoContextTakeover: boolean,
  localMaxWindowBits: number,
  remoteMaxWindowBits: number,
): DeflateParams {
  return {
    localNoContextTakeover,
    remoteNoContextTakeover,
    localMaxWindowBits,
    remoteMaxWindowBits,
  };
}

/** Asserts the response and the agreed parameters. */
function agreed(
  header: string,
  options: DeflateNegotiationOptions | undefined,
  response: string,
  expected: DeflateParams,
): void {
  assert.deepEqual(negotiate(header, options), { params: expected, response }, header);
}

const DEFAULT = params(false, false, 15, 15);

describe("negotiateDeflate: RFC 7692 examples", () => {
  it("accepts an offer without parameters (§7.1.3)", () => {
    agreed("permessage-deflate", undefined, "permessage-deflate", DEFAULT);
  });

  it("accepts server_max_window_bits=10 by answering it (§7.1.2.1)", () => {
    agreed(
      "permessage-deflate; server_max_window_bits=10",
      undefined,
      "permessage-deflate; server_max_window_bits=10",
      params(false, false, 10, 15),
    );
  });

  it("takes the first of two offers when it is acceptable (§7.1.3)", () => {
    const header = "permessage-deflate; client_max_window_bits; server_max_window_bits=10, " +
      "permessage-deflate; client_max_window_bits";
    agreed(header, undefined, "permessage-deflate; server_max_window_bits=10", {
      ...DEFAULT,
      localMaxWindowBits: 10,
    });
    agreed(
      header,
      { remoteMaxWindowBits: 12 },
      "permessage-deflate; server_max_window_bits=10; client_max_window_bits=12",
      params(false, false, 10, 12),
    );
  });

  it("accepts both no_context_takeover parameters", () => {
    agreed(
      "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
      undefined,
      "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
      params(true, true, 15, 15),
    );
  });

  it("ignores other extensions and their offers (§5)", () => {
    agreed("permessage-foo; use_y, permessage-deflate", undefined, "permessage-deflate", DEFAULT);
    agreed(
      "x-webkit-deflate-frame, permessage-deflate; client_max_window_bits, foo; bar=1",
      undefined,
      "permessage-deflate",
      DEFAULT,
    );
    agreed("permessage-deflate, x-webkit-deflate-frame", undefined, "permessage-deflate", DEFAULT);
    assert.equal(negotiate("x-webkit-deflate-frame, deflate-stream; a=1, mux"), undefined);
    assert.equal(negotiate(""), undefined);
    assert.equal(negotiateDeflate([]), undefined);
  });
});

describe("negotiateDeflate: browsers", () => {
  it("answers Chrome's offer", () => {
    const chrome = "permessage-deflate; client_max_window_bits";
    agreed(chrome, undefined, "permessage-deflate", DEFAULT);
    agreed(
      chrome,
      { remoteMaxWindowBits: 11, localNoContextTakeover: true },
      "permessage-deflate; server_no_context_takeover; client_max_window_bits=11",
      params(true, false, 15, 11),
    );
  });

  it("answers Firefox's offer, where client_max_window_bits cannot be sent", () => {
    agreed("permessage-deflate", undefined, "permessage-deflate", DEFAULT);
    agreed(
      "permessage-deflate",
      { remoteMaxWindowBits: 9, localMaxWindowBits: 12 },
      "permessage-deflate; server_max_window_bits=12",
      params(false, false, 12, 15),
    );
  });
});

describe("negotiateDeflate: declined offers", () => {
  const declined = (first: string) => {
    // Alone it is declined; followed by a plain offer, that one is taken.
    assert.equal(negotiate(first), undefined, first);
    assert.deepEqual(negotiate(`${first}, permessage-deflate`), {
      params: DEFAULT,
      response: "permessage-deflate",
    }, first);
  };

  it("declines an unknown parameter", () => {
    declined("permessage-deflate; x");
    declined("permessage-deflate; x=1");
    declined("permessage-deflate; server_no_context_takeover; mux");
    declined("permessage-deflate; max_window_bits=10");
  });

  it("declines a repeated parameter", () => {
    declined("permessage-deflate; server_no_context_takeover; server_no_context_takeover");
    declined("permessage-deflate; client_no_context_takeover; client_no_context_takeover");
    declined("permessage-deflate; server_max_window_bits=10; server_max_window_bits=10");
    declined("permessage-deflate; client_max_window_bits; client_max_window_bits=10");
    declined("permessage-deflate; client_max_window_bits; Client_Max_Window_Bits");
  });

  it("declines a value on the no_context_takeover parameters", () => {
    declined("permessage-deflate; server_no_context_takeover=1");
    declined("permessage-deflate; client_no_context_takeover=true");
    declined('permessage-deflate; client_no_context_takeover="x"');
  });

  it("declines server_max_window_bits without a value or outside 8–15 in plain decimal", () => {
    for (const value of ["7", "16", "0", "1", "010", "08", "+9", "-9", "9.0", "1e1", "a", "99"]) {
      declined(`permessage-deflate; server_max_window_bits=${value}`);
    }
    declined("permessage-deflate; server_max_window_bits");
    declined('permessage-deflate; server_max_window_bits="010"');
    declined('permessage-deflate; server_max_window_bits="7"');
  });

  it("declines client_max_window_bits outside 8–15 in plain decimal", () => {
    for (const value of ["7", "16", "0", "010", "08", "+15", "0x8", "100000000000000000009"]) {
      declined(`permessage-deflate; client_max_window_bits=${value}`);
    }
  });

  it("accepts every value from 8 to 15, quoted or not", () => {
    for (let bits = 8; bits <= 15; bits++) {
      for (const written of [`${bits}`, `"${bits}"`]) {
        agreed(
          `permessage-deflate; server_max_window_bits=${written}; client_max_window_bits=${written}`,
          undefined,
          `permessage-deflate; server_max_window_bits=${bits}; client_max_window_bits=${bits}`,
          params(false, false, bits, bits),
        );
      }
    }
    agreed(
      'permessage-deflate; server_max_window_bits="9"',
      undefined,
      "permessage-deflate; server_max_window_bits=9",
      params(false, false, 9, 15),
    );
  });

  it("tries offers in order until one is acceptable", () => {
    agreed(
      "permessage-deflate; server_max_window_bits=7, x-foo, " +
        "permessage-deflate; bogus, permessage-deflate; client_no_context_takeover, " +
        "permessage-deflate",
      undefined,
      "permessage-deflate; client_no_context_takeover",
      params(false, true, 15, 15),
    );
  });

  it("matches names case-insensitively, as parseExtensions lower-cases them", () => {
    agreed(
      "PerMessage-Deflate; Server_No_Context_Takeover; SERVER_MAX_WINDOW_BITS=9",
      undefined,
      "permessage-deflate; server_no_context_takeover; server_max_window_bits=9",
      params(true, false, 9, 15),
    );
  });
});

describe("negotiateDeflate: response rules", () => {
  it("server_no_context_takeover: answered when offered, and sent when the options ask", () => {
    agreed(
      "permessage-deflate; server_no_context_takeover",
      undefined,
      "permessage-deflate; server_no_context_takeover",
      params(true, false, 15, 15),
    );
    agreed(
      "permessage-deflate",
      { localNoContextTakeover: true },
      "permessage-deflate; server_no_context_takeover",
      params(true, false, 15, 15),
    );
    agreed(
      "permessage-deflate; server_no_context_takeover",
      { localNoContextTakeover: false },
      "permessage-deflate; server_no_context_takeover",
      params(true, false, 15, 15),
    );
  });

  it("client_no_context_takeover: sent when the options ask, and repeated when offered", () => {
    agreed(
      "permessage-deflate",
      { remoteNoContextTakeover: true },
      "permessage-deflate; client_no_context_takeover",
      params(false, true, 15, 15),
    );
    agreed(
      "permessage-deflate; client_no_context_takeover",
      undefined,
      "permessage-deflate; client_no_context_takeover",
      params(false, true, 15, 15),
    );
    agreed(
      "permessage-deflate; client_no_context_takeover",
      { remoteNoContextTakeover: true },
      "permessage-deflate; client_no_context_takeover",
      params(false, true, 15, 15),
    );
  });

  it("server_max_window_bits=N: answered with min(N, option)", () => {
    const offer = (n: number) => `permessage-deflate; server_max_window_bits=${n}`;
    agreed(offer(12), { localMaxWindowBits: 10 }, offer(10), params(false, false, 10, 15));
    agreed(offer(9), { localMaxWindowBits: 10 }, offer(9), params(false, false, 9, 15));
    agreed(offer(15), undefined, offer(15), params(false, false, 15, 15));
    agreed(offer(8), undefined, offer(8), params(false, false, 8, 15));
  });

  it("server_max_window_bits not offered: sent only when the option is below 15", () => {
    agreed("permessage-deflate", { localMaxWindowBits: 15 }, "permessage-deflate", DEFAULT);
    agreed(
      "permessage-deflate",
      { localMaxWindowBits: 8 },
      "permessage-deflate; server_max_window_bits=8",
      params(false, false, 8, 15),
    );
  });

  it("client_max_window_bits=N: answered with min(N, option)", () => {
    const offer = (n: number) => `permessage-deflate; client_max_window_bits=${n}`;
    agreed(offer(12), { remoteMaxWindowBits: 10 }, offer(10), params(false, false, 15, 10));
    agreed(offer(9), { remoteMaxWindowBits: 10 }, offer(9), params(false, false, 15, 9));
    agreed(offer(15), undefined, offer(15), params(false, false, 15, 15));
  });

  it("client_max_window_bits without a value: answered only when the option is below 15", () => {
    const offer = "permessage-deflate; client_max_window_bits";
    agreed(offer, undefined, "permessage-deflate", DEFAULT);
    agreed(offer, { remoteMaxWindowBits: 15 }, "permessage-deflate", DEFAULT);
    agreed(
      offer,
      { remoteMaxWindowBits: 8 },
      "permessage-deflate; client_max_window_bits=8",
      params(false, false, 15, 8),
    );
  });

  it("client_max_window_bits not offered: never sent, and the client may use 15", () => {
    for (let bits = 8; bits <= 15; bits++) {
      agreed("permessage-deflate", { remoteMaxWindowBits: bits }, "permessage-deflate", DEFAULT);
    }
  });

  it("writes the parameters in a fixed order, whatever the offer's order", () => {
    agreed(
      "permessage-deflate; client_max_window_bits=10; server_max_window_bits=11; " +
        "client_no_context_takeover; server_no_context_takeover",
      undefined,
      "permessage-deflate; server_no_context_takeover; client_no_context_takeover; " +
        "server_max_window_bits=11; client_max_window_bits=10",
      params(true, true, 11, 10),
    );
    agreed(
      "permessage-deflate; client_max_window_bits",
      {
        remoteMaxWindowBits: 9,
        localMaxWindowBits: 10,
        remoteNoContextTakeover: true,
        localNoContextTakeover: true,
      },
      "permessage-deflate; server_no_context_takeover; client_no_context_takeover; " +
        "server_max_window_bits=10; client_max_window_bits=9",
      params(true, true, 10, 9),
    );
  });

  it("does not change the offers it is given", () => {
    const offers = parse("permessage-deflate; server_max_window_bits=12; x, permessage-deflate");
    const copy = structuredClone(offers);
    negotiateDeflate(offers, { localMaxWindowBits: 9, remoteNoContextTakeover: true });
    assert.deepEqual(offers, copy);
  });
});

describe("negotiateDeflate: options", () => {
  it("throws a RangeError for window bits that are not integers from 8 to 15", () => {
    for (const name of ["localMaxWindowBits", "remoteMaxWindowBits"] as const) {
      for (const bits of [7, 16, 0, -8, 10.5, NaN, Infinity, "10" as unknown as number]) {
        assert.throws(() => negotiate("permessage-deflate", { [name]: bits }), {
          name: "RangeError",
          message: `Cannot negotiate permessage-deflate: ${name} must be an integer from 8 to 15`,
        });
        // Even when nothing is offered: a bad configuration shows on the first handshake.
        assert.throws(() => negotiateDeflate([], { [name]: bits }), RangeError);
      }
    }
  });

  it("accepts every integer from 8 to 15", () => {
    for (let bits = 8; bits <= 15; bits++) {
      assert.ok(negotiate("permessage-deflate", {
        localMaxWindowBits: bits,
        remoteMaxWindowBits: bits,
      }));
    }
  });
});

// Autobahn|Testsuite 13.x: the client's PerMessageDeflateOffer(acceptNoContextTakeover = True,
// acceptMaxWindowBits = True, requestNoContextTakeover, requestMaxWindowBits) always carries
// "client_no_context_takeover; client_max_window_bits", then what it requests of the server.
describe("negotiateDeflate: Autobahn|Testsuite 13.x offers", () => {
  const BASE = "permessage-deflate; client_no_context_takeover; client_max_window_bits";
  const cases: Array<[string, string, DeflateParams]> = [
    ["13.1", BASE, params(false, true, 15, 15)],
    ["13.2", `${BASE}; server_no_context_takeover`, params(true, true, 15, 15)],
    ["13.3", `${BASE}; server_max_window_bits=8`, params(false, true, 8, 15)],
    ["13.4", `${BASE}; server_max_window_bits=15`, params(false, true, 15, 15)],
    [
      "13.5",
      `${BASE}; server_no_context_takeover; server_max_window_bits=8`,
      params(true, true, 8, 15),
    ],
    [
      "13.6",
      `${BASE}; server_no_context_takeover; server_max_window_bits=15`,
      params(true, true, 15, 15),
    ],
    [
      "13.7",
      `${BASE}; server_no_context_takeover; server_max_window_bits=8, ` +
      `${BASE}; server_no_context_takeover, ${BASE}`,
      params(true, true, 8, 15),
    ],
  ];

  it("answers each with what it asked for", () => {
    for (const [name, header, expected] of cases) {
      const agreement = negotiate(header);
      assert.ok(agreement, name);
      assert.deepEqual(agreement.params, expected, name);
      let response = "permessage-deflate";
      if (expected.localNoContextTakeover) response += "; server_no_context_takeover";
      response += "; client_no_context_takeover";
      if (/server_max_window_bits/.test(header.split(",")[0])) {
        response += `; server_max_window_bits=${expected.localMaxWindowBits}`;
      }
      assert.equal(agreement.response, response, name);
    }
  });

  it("answers the shapes without the client's own parameters too", () => {
    const shapes: Array<[string, string]> = [
      ["permessage-deflate", "permessage-deflate"],
      [
        "permessage-deflate; client_no_context_takeover",
        "permessage-deflate; client_no_context_takeover",
      ],
      [
        "permessage-deflate; server_no_context_takeover",
        "permessage-deflate; server_no_context_takeover",
      ],
      [
        "permessage-deflate; server_max_window_bits=8",
        "permessage-deflate; server_max_window_bits=8",
      ],
      [
        "permessage-deflate; server_max_window_bits=15",
        "permessage-deflate; server_max_window_bits=15",
      ],
      [
        "permessage-deflate; server_no_context_takeover; server_max_window_bits=8",
        "permessage-deflate; server_no_context_takeover; server_max_window_bits=8",
      ],
      [
        "permessage-deflate; server_no_context_takeover; server_max_window_bits=15",
        "permessage-deflate; server_no_context_takeover; server_max_window_bits=15",
      ],
      [
        "permessage-deflate; server_no_context_takeover; server_max_window_bits=8, " +
        "permessage-deflate; server_no_context_takeover, permessage-deflate",
        "permessage-deflate; server_no_context_takeover; server_max_window_bits=8",
      ],
    ];
    for (const [header, response] of shapes) {
      assert.equal(negotiate(header)?.response, response, header);
    }
  });

  it("with a server that limits itself, keeps to the smaller of the two windows", () => {
    const agreement = negotiate(cases[6][1], { localMaxWindowBits: 12 });
    assert.deepEqual(agreement?.params, params(true, true, 8, 15));
    const four = negotiate(cases[3][1], { localMaxWindowBits: 12, remoteMaxWindowBits: 10 });
    assert.equal(
      four?.response,
      "permessage-deflate; client_no_context_takeover; server_max_window_bits=12; " +
        "client_max_window_bits=10",
    );
  });
});

// ---------------------------------------------------------------------------------------------
// Properties

const NAMES = [
  "server_no_context_takeover",
  "client_no_context_takeover",
  "server_max_window_bits",
  "client_max_window_bits",
] as const;

/** The server's parameters (local: the server's) as a client reads them from the response to
 * its offer (RFC 7692 §7.1). */
function clientView(offer: ExtensionOffer, response: ExtensionOffer): DeflateParams {
  const has = (o: ExtensionOffer, name: string) => o.params.some(([n]) => n === name);
  const bits = (o: ExtensionOffer, name: string) => {
    const value = o.params.find(([n]) => n === name)?.[1];
    return typeof value === "string" ? Number(value) : 15;
  };
  return {
    localNoContextTakeover: has(response, NAMES[0]),
    remoteNoContextTakeover: has(response, NAMES[1]) || has(offer, NAMES[1]),
    localMaxWindowBits: bits(response, NAMES[2]),
    remoteMaxWindowBits: bits(response, NAMES[3]),
  };
}

describe("negotiateDeflate: properties", () => {
  const bitsValue = fc.integer({ min: 8, max: 15 }).map(String);
  const offerArb: fc.Arbitrary<ExtensionOffer> = fc.record({
    snct: fc.boolean(),
    cnct: fc.boolean(),
    smwb: fc.option(bitsValue),
    cmwb: fc.option(fc.oneof(fc.constant(true as const), bitsValue)),
    order: fc.array(fc.nat(), { minLength: 4, maxLength: 4 }),
  }).map(({ snct, cnct, smwb, cmwb, order }) => {
    const list: Array<[string, string | true]> = [];
    if (snct) list.push([NAMES[0], true]);
    if (cnct) list.push([NAMES[1], true]);
    if (smwb !== null) list.push([NAMES[2], smwb]);
    if (cmwb !== null) list.push([NAMES[3], cmwb]);
    // Any order: the RFC fixes none for an offer.
    const shuffled = list.map((p, i) => ({ p, k: order[i] })).sort((a, b) => a.k - b.k);
    return { name: "permessage-deflate", params: shuffled.map(({ p }) => p) };
  });
  const optionsArb: fc.Arbitrary<DeflateNegotiationOptions> = fc.record({
    localNoContextTakeover: fc.boolean(),
    remoteNoContextTakeover: fc.boolean(),
    localMaxWindowBits: fc.integer({ min: 8, max: 15 }),
    remoteMaxWindowBits: fc.integer({ min: 8, max: 15 }),
  }, { requiredKeys: [] });

  it("accepts every valid offer with a response that RFC 7692 allows and both sides read alike", () => {
    fc.assert(
      fc.property(offerArb, optionsArb, (offer, options) => {
        const agreement = negotiateDeflate([offer], options);
        assert.ok(agreement);
        const parsed = parseExtensions(agreement.response);
        assert.ok(Array.isArray(parsed) && parsed.length === 1);
        const response = parsed[0];
        assert.equal(response.name, "permessage-deflate");
        // Only the four parameters, each once, in the fixed order.
        const names = response.params.map(([n]) => n);
        assert.deepEqual(names, NAMES.filter((n) => names.includes(n)));
        const offered = new Map(offer.params);
        const answered = new Map(response.params);
        // §7.1.1.1: server_no_context_takeover offered → answered.
        if (offered.has(NAMES[0])) assert.ok(answered.has(NAMES[0]));
        // §7.1.2.1: server_max_window_bits=N offered → answered with M ≤ N.
        if (offered.has(NAMES[2])) {
          assert.ok(Number(answered.get(NAMES[2])) <= Number(offered.get(NAMES[2])));
        }
        // §7.1.2.2: client_max_window_bits answered only if offered, and ≤ an offered value.
        if (!offered.has(NAMES[3])) assert.ok(!answered.has(NAMES[3]));
        if (typeof offered.get(NAMES[3]) === "string" && answered.has(NAMES[3])) {
          assert.ok(Number(answered.get(NAMES[3])) <= Number(offered.get(NAMES[3])));
        }
        // Values are always written, as 8–15, for the window bits.
        for (const name of [NAMES[2], NAMES[3]]) {
          if (answered.has(name)) assert.match(String(answered.get(name)), /^(8|9|1[0-5])$/);
        }
        // The agreed parameters are what a client reads from the response, and within the
        // server's options.
        assert.deepEqual(agreement.params, clientView(offer, response));
        assert.ok(agreement.params.localMaxWindowBits <= (options.localMaxWindowBits ?? 15));
        if (options.localNoContextTakeover) assert.ok(agreement.params.localNoContextTakeover);
        if (options.remoteNoContextTakeover) assert.ok(agreement.params.remoteNoContextTakeover);
      }),
      { numRuns: 3000 },
    );
  });

  it("never throws on arbitrary offers, and returns an agreement only for permessage-deflate", () => {
    const arbitraryOffer = fc.record({
      name: fc.constantFrom("permessage-deflate", "x-foo", "Permessage-Deflate"),
      params: fc.array(
        fc.tuple(
          fc.oneof(fc.constantFrom(...NAMES), fc.string({ maxLength: 8 })),
          fc.oneof(fc.constant(true as const), fc.string({ maxLength: 4 }), bitsValue),
        ),
        { maxLength: 5 },
      ),
    });
    fc.assert(
      fc.property(fc.array(arbitraryOffer, { maxLength: 4 }), optionsArb, (offers, options) => {
        const agreement = negotiateDeflate(offers, options);
        if (agreement) {
          assert.ok(offers.some((o) => o.name === "permessage-deflate"));
          assert.ok(agreement.response.startsWith("permessage-deflate"));
        }
      }),
      { numRuns: 3000 },
    );
  });
});

// ---------------------------------------------------------------------------------------------
// The client's side

/** Checks a server's answer (a Sec-WebSocket-Extensions value with one element). */
function check(answer: string, options?: DeflateNegotiationOptions): DeflateAgreement | string {
  const parsed = parse(answer);
  assert.equal(parsed.length, 1);
  return checkDeflateResponse(parsed[0], options);
}

describe("deflateOffer", () => {
  it("always offers client_max_window_bits, with a value below 15", () => {
    assert.equal(deflateOffer(), "permessage-deflate; client_max_window_bits");
    assert.equal(deflateOffer({}), "permessage-deflate; client_max_window_bits");
    assert.equal(
      deflateOffer({ localMaxWindowBits: 10 }),
      "permessage-deflate; client_max_window_bits=10",
    );
    assert.equal(
      deflateOffer({ localMaxWindowBits: 15 }),
      "permessage-deflate; client_max_window_bits",
    );
  });

  it("asks for server_max_window_bits below 15, and for both no_context_takeover flags", () => {
    assert.equal(
      deflateOffer({ remoteMaxWindowBits: 9 }),
      "permessage-deflate; client_max_window_bits; server_max_window_bits=9",
    );
    assert.equal(
      deflateOffer({
        localNoContextTakeover: true,
        remoteNoContextTakeover: true,
        localMaxWindowBits: 12,
        remoteMaxWindowBits: 11,
      }),
      "permessage-deflate; client_no_context_takeover; server_no_context_takeover; " +
        "client_max_window_bits=12; server_max_window_bits=11",
    );
  });

  it("writes an offer the extension parser reads and the server accepts", () => {
    const offer = deflateOffer({ localNoContextTakeover: true, remoteMaxWindowBits: 10 });
    assert.deepEqual(parse(offer), [{
      name: "permessage-deflate",
      params: [
        ["client_no_context_takeover", true],
        ["client_max_window_bits", true],
        ["server_max_window_bits", "10"],
      ],
    }]);
    assert.ok(negotiateDeflate(parse(offer)));
  });

  it("throws a RangeError for window bits that are not integers from 8 to 15", () => {
    for (const bad of [7, 16, 12.5, NaN]) {
      assert.throws(() => deflateOffer({ localMaxWindowBits: bad }), {
        name: "RangeError",
        message: "Cannot negotiate permessage-deflate: localMaxWindowBits must be an integer " +
          "from 8 to 15",
      });
      assert.throws(() => deflateOffer({ remoteMaxWindowBits: bad }), RangeError);
    }
  });
});

describe("checkDeflateResponse", () => {
  it("reads an answer without parameters as the defaults", () => {
    assert.deepEqual(check("permessage-deflate"), {
      params: params(false, false, 15, 15),
      response: "permessage-deflate",
    });
  });

  it("takes what a server may add unasked, each binding the side it names (§7.1)", () => {
    assert.deepEqual(
      check("permessage-deflate; server_no_context_takeover; client_no_context_takeover"),
      {
        params: params(true, true, 15, 15),
        response: "permessage-deflate; " +
          "server_no_context_takeover; client_no_context_takeover",
      },
    );
    // server_max_window_bits unasked: the server tells us its window is smaller.
    const smaller = check("permessage-deflate; server_max_window_bits=9");
    assert.deepEqual(typeof smaller !== "string" && smaller.params, params(false, false, 15, 9));
    // client_max_window_bits: we always offer it, so the server may limit our window.
    const limited = check('permessage-deflate; client_max_window_bits="10"');
    assert.deepEqual(typeof limited !== "string" && limited.params, params(false, false, 10, 15));
    assert.equal(
      typeof limited !== "string" && limited.response,
      "permessage-deflate; client_max_window_bits=10",
    );
  });

  it("keeps the client's own promises when the answer does not repeat them", () => {
    const agreement = check("permessage-deflate", {
      localNoContextTakeover: true,
      localMaxWindowBits: 11,
    });
    assert.deepEqual(
      typeof agreement !== "string" && agreement.params,
      params(true, false, 11, 15),
    );
  });

  it("accepts server_max_window_bits at or below the value asked for", () => {
    for (const answered of [8, 9, 10]) {
      const agreement = check(`permessage-deflate; server_max_window_bits=${answered}`, {
        remoteMaxWindowBits: 10,
      });
      assert.deepEqual(
        typeof agreement !== "string" && agreement.params,
        params(false, false, 15, answered),
      );
    }
  });

  for (
    const [name, answer, options, reason] of [
      [
        "an unknown parameter",
        "permessage-deflate; x_bits=1",
        undefined,
        'an unknown parameter "x_bits"',
      ],
      [
        "a repeated parameter",
        "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
        undefined,
        "server_no_context_takeover is repeated",
      ],
      [
        "a repeated window size",
        "permessage-deflate; client_max_window_bits=10; client_max_window_bits=10",
        undefined,
        "client_max_window_bits is repeated",
      ],
      [
        "a value on server_no_context_takeover",
        "permessage-deflate; server_no_context_takeover=1",
        undefined,
        "server_no_context_takeover takes no value",
      ],
      [
        "a value on client_no_context_takeover",
        'permessage-deflate; client_no_context_takeover="x"',
        undefined,
        "client_no_context_takeover takes no value",
      ],
      [
        "client_max_window_bits without a value",
        "permessage-deflate; client_max_window_bits",
        undefined,
        "client_max_window_bits needs a value from 8 to 15",
      ],
      ...["7", "16", "010", "1e1", "+9", "a"].map((value) =>
        [
          `server_max_window_bits=${value}`,
          `permessage-deflate; server_max_window_bits=${value}`,
          undefined,
          "server_max_window_bits needs a value from 8 to 15",
        ] as const
      ),
      [
        "server_max_window_bits without a value",
        "permessage-deflate; server_max_window_bits",
        undefined,
        "server_max_window_bits needs a value from 8 to 15",
      ],
      [
        "server_max_window_bits above the value asked for",
        "permessage-deflate; server_max_window_bits=11",
        { remoteMaxWindowBits: 10 },
        "server_max_window_bits=11 is above the 10 asked for",
      ],
      [
        "server_max_window_bits asked for and not answered",
        "permessage-deflate; client_max_window_bits=10",
        { remoteMaxWindowBits: 10 },
        "server_max_window_bits was asked for and not answered",
      ],
      [
        "client_max_window_bits above the value offered",
        "permessage-deflate; client_max_window_bits=12",
        { localMaxWindowBits: 11 },
        "client_max_window_bits=12 is above the 11 offered",
      ],
      [
        "server_no_context_takeover asked for and not answered",
        "permessage-deflate; client_no_context_takeover",
        { remoteNoContextTakeover: true },
        "server_no_context_takeover was asked for and not answered",
      ],
      ["another extension", "x-foo", undefined, '"x-foo" is not permessage-deflate'],
    ] as Array<readonly [string, string, DeflateNegotiationOptions | undefined, string]>
  ) {
    it(`fails ${name}`, () => {
      assert.equal(check(answer, options), `Invalid permessage-deflate response: ${reason}`);
    });
  }

  it("throws a RangeError for window bits that are not integers from 8 to 15", () => {
    const [answer] = parse("permessage-deflate");
    assert.throws(() => checkDeflateResponse(answer, { remoteMaxWindowBits: 16 }), RangeError);
  });
});

describe("client offer → server answer → client check", () => {
  const optionsArb: fc.Arbitrary<DeflateNegotiationOptions> = fc.record({
    localNoContextTakeover: fc.boolean(),
    remoteNoContextTakeover: fc.boolean(),
    localMaxWindowBits: fc.integer({ min: 8, max: 15 }),
    remoteMaxWindowBits: fc.integer({ min: 8, max: 15 }),
  }, { requiredKeys: [] });

  /** One negotiation: the client's agreement and the server's. */
  function negotiateBoth(client: DeflateNegotiationOptions, server: DeflateNegotiationOptions) {
    const serverSide = negotiateDeflate(parse(deflateOffer(client)), server);
    assert.ok(serverSide, "a sluice server accepts every offer a sluice client makes");
    const clientSide = check(serverSide.response, client);
    assert.ok(typeof clientSide !== "string", clientSide as string);
    return { clientSide, serverSide };
  }

  /** The same agreement seen from the other end. */
  function mirror(p: DeflateParams): DeflateParams {
    return params(
      p.remoteNoContextTakeover,
      p.localNoContextTakeover,
      p.remoteMaxWindowBits,
      p.localMaxWindowBits,
    );
  }

  it("shared mode, as serve() sets it up, against a default client", () => {
    const { clientSide, serverSide } = negotiateBoth({}, {
      localNoContextTakeover: true,
      remoteNoContextTakeover: true,
    });
    assert.equal(
      serverSide.response,
      "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
    );
    assert.deepEqual(clientSide.params, params(true, true, 15, 15));
    assert.deepEqual(clientSide.params, mirror(serverSide.params));
  });

  it("a client that limits both windows against a server that limits them further", () => {
    const { clientSide, serverSide } = negotiateBoth(
      { localMaxWindowBits: 12, remoteMaxWindowBits: 12 },
      { localMaxWindowBits: 10, remoteMaxWindowBits: 9 },
    );
    assert.equal(
      serverSide.response,
      "permessage-deflate; server_max_window_bits=10; client_max_window_bits=9",
    );
    assert.deepEqual(clientSide.params, params(false, false, 9, 10));
    assert.deepEqual(clientSide.params, mirror(serverSide.params));
  });

  it("always agree, each side's local parameters the other's remote ones", () => {
    fc.assert(
      fc.property(optionsArb, optionsArb, (client, server) => {
        const { clientSide, serverSide } = negotiateBoth(client, server);
        assert.deepEqual(clientSide.params, mirror(serverSide.params));
        assert.equal(clientSide.response, serverSide.response);
        // Each side keeps to what it asked for and what it promised.
        const c = clientSide.params;
        if (client.localNoContextTakeover) assert.ok(c.localNoContextTakeover);
        if (client.remoteNoContextTakeover) assert.ok(c.remoteNoContextTakeover);
        assert.ok(c.localMaxWindowBits <= (client.localMaxWindowBits ?? 15));
        assert.ok(c.remoteMaxWindowBits <= (client.remoteMaxWindowBits ?? 15));
        const s = serverSide.params;
        if (server.localNoContextTakeover) assert.ok(s.localNoContextTakeover);
        if (server.remoteNoContextTakeover) assert.ok(s.remoteNoContextTakeover);
        assert.ok(s.localMaxWindowBits <= (server.localMaxWindowBits ?? 15));
        assert.ok(s.remoteMaxWindowBits <= (server.remoteMaxWindowBits ?? 15));
      }),
      { numRuns: 2000 },
    );
  });

  it("never throws on arbitrary answers", () => {
    const answerArb = fc.record({
      name: fc.constantFrom("permessage-deflate", "x-foo"),
      params: fc.array(
        fc.tuple(
          fc.oneof(fc.constantFrom(...NAMES), fc.string({ maxLength: 8 })),
          fc.oneof(
            fc.constant(true as const),
            fc.string({ maxLength: 4 }),
            fc.integer({ min: 6, max: 17 }).map(String),
          ),
        ),
        { maxLength: 5 },
      ),
    });
    fc.assert(
      fc.property(answerArb, optionsArb, (answer, options) => {
        const result = checkDeflateResponse(answer, options);
        if (typeof result === "string") {
          assert.match(result, /^Invalid permessage-deflate response: /);
        } else {
          assert.equal(answer.name, "permessage-deflate");
          for (
            const bits of [result.params.localMaxWindowBits, result.params.remoteMaxWindowBits]
          ) {
            assert.ok(bits >= 8 && bits <= 15);
          }
        }
      }),
      { numRuns: 3000 },
    );
  });
});
