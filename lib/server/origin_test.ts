import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { originMatcher, type OriginRule } from "./origin.ts";

/** Asserts which of `origins` the matcher for `rules` allows, naming each that is wrong. */
function assertMatches(
  rules: readonly OriginRule[],
  expected: Record<string, boolean>,
): void {
  const allowed = originMatcher(rules);
  const actual: Record<string, boolean> = {};
  for (const origin of Object.keys(expected)) actual[origin] = allowed(origin);
  assert.deepEqual(actual, expected);
}

/** Asserts that compiling `rule` throws a TypeError with exactly `message`. */
function assertRejected(rule: unknown, message: string): void {
  assert.throws(() => originMatcher([rule as OriginRule]), (error: unknown) => {
    assert.ok(error instanceof TypeError, `expected a TypeError, got ${error}`);
    assert.equal(error.message, message);
    return true;
  });
}

const notAnOrigin = (rule: string) =>
  `Cannot serve: the origin rule ${JSON.stringify(rule)} is not an origin (scheme://host[:port])`;

describe("originMatcher: exact rules", () => {
  it("allows the listed origins and nothing else", () => {
    assertMatches(["https://example.com", "http://localhost:8080"], {
      "https://example.com": true,
      "http://localhost:8080": true,
      "https://example.org": false,
      "https://www.example.com": false,
      "http://localhost": false,
      "http://localhost:8081": false,
    });
  });

  it("allows nothing with an empty allowlist", () => {
    assertMatches([], { "https://example.com": false, "null": false });
  });

  it("compares scheme and host case-insensitively (RFC 6454), in rules and headers", () => {
    assertMatches(["HTTPS://Example.COM"], {
      "https://example.com": true,
      "https://EXAMPLE.com": true,
      "HttpS://example.Com": true,
      "https://example.co": false,
    });
  });

  it("treats a written default port as the same origin as none", () => {
    assertMatches(["https://a.com:443", "http://b.com", "ws://c.com:80", "wss://d.com"], {
      "https://a.com": true,
      "https://a.com:443": true,
      "http://b.com": true,
      "http://b.com:80": true,
      "ws://c.com": true,
      "ws://c.com:80": true,
      "wss://d.com": true,
      "wss://d.com:443": true,
      // A default port of another scheme is not the default here.
      "https://a.com:80": false,
      "http://b.com:443": false,
    });
  });

  it("requires a non-default port to match exactly", () => {
    assertMatches(["https://a.com:8443", "http://b.com:0"], {
      "https://a.com:8443": true,
      "https://a.com": false,
      "https://a.com:443": false,
      "https://a.com:844": false,
      "https://a.com:84430": false,
      "http://b.com:0": true,
      "http://b.com": false,
    });
  });

  it("never matches another scheme", () => {
    assertMatches(["https://example.com"], {
      "http://example.com": false,
      "wss://example.com": false,
      "httpss://example.com": false,
      "ttps://example.com": false,
    });
  });

  it("matches IPv6 literals, whatever their spelling", () => {
    assertMatches(["http://[::1]:3000", "https://[2001:DB8:0:0:0:0:0:1]"], {
      "http://[::1]:3000": true,
      "http://[0:0:0:0:0:0:0:1]:3000": true,
      "http://[::1]": false,
      "https://[2001:db8::1]": true,
      "https://[2001:db8::1]:443": true,
      "https://[2001:db8::2]": false,
      "http://[::1:3000]": false,
    });
  });

  it("matches IPv4 addresses and single-label hosts", () => {
    assertMatches(["http://127.0.0.1:5173", "tauri://localhost"], {
      "http://127.0.0.1:5173": true,
      "http://127.0.0.2:5173": false,
      "tauri://localhost": true,
      "tauri://localhost:1": false,
    });
  });

  it("tolerates one trailing slash in a rule, but not in the header", () => {
    assertMatches(["https://example.com/"], {
      "https://example.com": true,
      "https://example.com/": false,
    });
  });

  it("keeps a trailing dot as a distinct origin", () => {
    assertMatches(["https://example.com"], {
      "https://example.com.": false,
    });
    assertMatches(["https://example.com."], {
      "https://example.com.": true,
      "https://example.com": false,
    });
  });
});

describe("originMatcher: wildcard rules", () => {
  it("matches one label or more before the suffix", () => {
    assertMatches(["https://*.example.com"], {
      "https://a.example.com": true,
      "https://a.b.example.com": true,
      "https://x-1.y_2.z.example.com": true,
      "https://A.EXAMPLE.COM": true,
      "https://a.example.com:443": true,
    });
  });

  it("never matches the apex, a look-alike suffix, or an empty label", () => {
    assertMatches(["https://*.example.com"], {
      "https://example.com": false,
      "https://evilexample.com": false,
      "https://a.evilexample.com": false,
      "https://example.com.evil.net": false,
      "https://a.example.com.evil.net": false,
      "https://.example.com": false,
      "https://a..example.com": false,
      "https://a.example.org": false,
    });
  });

  it("keeps the scheme and the port", () => {
    assertMatches(["https://*.example.com"], {
      "http://a.example.com": false,
      "wss://a.example.com": false,
      "https://a.example.com:8443": false,
    });
    assertMatches(["https://*.example.com:8443"], {
      "https://a.example.com:8443": true,
      "https://a.example.com": false,
      "https://a.example.com:443": false,
      "https://example.com:8443": false,
    });
    assertMatches(["http://*.example.com:80"], {
      "http://a.example.com": true,
      "http://a.example.com:80": true,
    });
  });

  it("sits beside exact rules for the apex", () => {
    assertMatches(["https://example.com", "https://*.example.com"], {
      "https://example.com": true,
      "https://www.example.com": true,
      "https://www.example.org": false,
    });
  });
});

describe("originMatcher: null", () => {
  it('matches the opaque origin only with the rule "null"', () => {
    assertMatches(["null"], { "null": true, "NULL": false, "https://example.com": false });
    assertMatches(["https://example.com", "https://*.example.com"], { "null": false });
  });
});

describe("originMatcher: header values that are not origins", () => {
  it("never match a string rule", () => {
    assertMatches(["https://example.com", "https://*.example.com", "http://[::1]"], {
      "": false,
      "https://example.com/": false,
      "https://example.com/path": false,
      "https://example.com?q": false,
      "https://example.com#f": false,
      "https://user@example.com": false,
      "https://user:pw@example.com": false,
      "https://example.com:": false,
      "https://example.com:0443": false,
      "https://example.com:65536": false,
      "https://example.com:99999999999999999999": false,
      "https://example.com:44a": false,
      " https://example.com": false,
      "https://example.com ": false,
      "https://example.com https://example.com": false,
      "https://exa mple.com": false,
      "https://example.com\t": false,
      "https:/example.com": false,
      "https:example.com": false,
      "https//example.com": false,
      "example.com": false,
      "//example.com": false,
      "https://": false,
      "https://a.example.com/x": false,
      "https://\\a.example.com": false,
      "https://a.example.com\\": false,
      "https://exämple.com": false,
      "https://[::1": false,
      "http://[]": false,
      "http://[::1]x": false,
      "http://[::g]": false,
      "http://[:::]": false,
      "undefined": false,
    });
  });

  it("returns false for a value that is not a string", () => {
    const allowed = originMatcher(["https://example.com", /undefined/]);
    assert.equal(allowed(undefined as unknown as string), false);
    assert.equal(allowed(null as unknown as string), false);
  });
});

describe("originMatcher: RegExp rules", () => {
  it("tests the header as sent", () => {
    assertMatches([/^https:\/\/[a-z]+\.example\.com$/], {
      "https://app.example.com": true,
      // No normalisation for a RegExp: the upper case and the default port are as sent.
      "https://APP.example.com": false,
      "https://app.example.com:443": false,
      "https://app.example.com.evil.net": false,
    });
  });

  it("sees values that string rules reject, null included", () => {
    assertMatches([/^null$|^https:\/\/example\.com\/$/], {
      "null": true,
      "https://example.com/": true,
      "https://example.com": false,
    });
  });

  it("gives the same answer every time for a global or sticky RegExp", () => {
    const allowed = originMatcher([/^https:\/\/example\.com$/g, /^http:\/\/a\.com$/y]);
    for (let i = 0; i < 3; i++) {
      assert.equal(allowed("https://example.com"), true, `call ${i}`);
      assert.equal(allowed("http://a.com"), true, `call ${i}`);
    }
  });

  it("leaves the caller's RegExp alone", () => {
    const pattern = /example/g;
    const allowed = originMatcher([pattern]);
    assert.equal(allowed("https://example.com"), true);
    assert.equal(pattern.lastIndex, 0);
  });

  it("is combined with string rules: any match allows", () => {
    assertMatches(["https://example.com", /^http:\/\/localhost:\d+$/], {
      "https://example.com": true,
      "http://localhost:5173": true,
      "http://localhost": false,
    });
  });
});

describe("originMatcher: malformed rules", () => {
  it("throws a TypeError for a string that is not an origin", () => {
    for (
      const rule of [
        "",
        "example.com",
        "https://",
        "https://example.com/app",
        "https://example.com//",
        "https://example.com?x",
        "https://example.com#x",
        "https://user@example.com",
        "https://example.com:",
        "https://example.com:65536",
        "https://example.com:08443",
        "https://example..com",
        "https://.example.com",
        " https://example.com",
        "https:// example.com",
        "https://[::1",
        "https://[zz::1]",
        "1http://example.com",
        "https:x/example.com",
        "NULL",
      ]
    ) {
      assertRejected(rule, notAnOrigin(rule));
    }
  });

  it('refuses "*": no allowlist is how to allow every origin', () => {
    assertRejected(
      "*",
      'Cannot serve: the origin rule "*" would allow every origin; to allow every origin, ' +
        "configure no allowlist",
    );
  });

  it("refuses a * that is not one whole leading label", () => {
    for (
      const rule of [
        "*.example.com",
        "https://*",
        "https://*example.com",
        "https://a*.example.com",
        "https://a.*.example.com",
        "https://*.*.example.com",
        "https://example.*",
        "*://example.com",
        "https://example.com:*",
      ]
    ) {
      assertRejected(
        rule,
        `Cannot serve: the origin rule ${JSON.stringify(rule)} has a "*" that is not one ` +
          'whole leading label (as in "https://*.example.com")',
      );
    }
  });

  it("refuses a wildcard without a host after it", () => {
    assertRejected("https://*.", notAnOrigin("https://*."));
    assertRejected("https://*.:443", notAnOrigin("https://*.:443"));
  });

  it("refuses a wildcard on an IP address", () => {
    for (const rule of ["http://*.0.0.1", "http://*.1", "http://*.[::1]", "http://*.0.1.:80"]) {
      assertRejected(
        rule,
        `Cannot serve: the origin rule ${JSON.stringify(rule)} puts a wildcard on an IP address`,
      );
    }
  });

  it("names the ASCII form of a non-ASCII host", () => {
    assertRejected(
      "https://bücher.de",
      'Cannot serve: the origin rule "https://bücher.de" has a non-ASCII host; ' +
        'write it in ASCII, as "https://xn--bcher-kva.de"',
    );
    assertRejected(
      "https://*.bücher.de:8443/",
      'Cannot serve: the origin rule "https://*.bücher.de:8443/" has a non-ASCII host; ' +
        'write it in ASCII, as "https://*.xn--bcher-kva.de:8443"',
    );
    // No suggestion for what would not be an origin even in ASCII.
    for (const rule of ["https://bücher.de/a", "https://u@bücher.de", "bücher://a.de"]) {
      assertRejected(rule, notAnOrigin(rule));
    }
  });

  it("throws a TypeError for a rule that is neither a string nor a RegExp", () => {
    for (const [rule, type] of [[42, "number"], [null, "null"], [undefined, "undefined"]]) {
      assertRejected(
        rule,
        `Cannot serve: an origin rule must be a string or a RegExp, not ${type}`,
      );
    }
    assert.throws(() => originMatcher("https://example.com" as unknown as OriginRule[]), {
      name: "TypeError",
      message: "Cannot serve: the origin rules must be an array",
    });
  });
});
