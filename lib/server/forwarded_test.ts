import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { clientAddress, proxyTrust } from "./forwarded.ts";

/** Every address of both families: a valid address is trusted, anything else is not. */
const ANY = proxyTrust(["0.0.0.0/0", "::/0"]);
const PROXIES = proxyTrust(["loopback", "10.0.0.0/8", "2001:db8:1::/48"]);

function xff(...values: string[]): Array<[string, string]> {
  return values.map((value) => ["x-forwarded-for", value]);
}

function forwarded(...values: string[]): Array<[string, string]> {
  return values.map((value) => ["forwarded", value]);
}

/** Which of `addresses` the predicate trusts. */
function trustedOf(trusted: (address: string) => boolean, addresses: string[]): string[] {
  return addresses.filter((address) => trusted(address));
}

function assertBadEntry(entry: string): void {
  let error: unknown;
  try {
    proxyTrust(["127.0.0.1", entry]);
  } catch (e) {
    error = e;
  }
  assert.ok(error instanceof TypeError, `${JSON.stringify(entry)}: expected a TypeError`);
  assert.equal(
    error.message,
    `Cannot serve: "${entry}" in trustProxy is not an IP address or CIDR range`,
  );
}

describe("proxyTrust: ranges", () => {
  it("matches an IPv4 /8 up to its edges and no further", () => {
    const trusted = proxyTrust(["10.0.0.0/8"]);
    assert.deepEqual(
      trustedOf(trusted, ["9.255.255.255", "10.0.0.0", "10.128.0.1", "10.255.255.255", "11.0.0.0"]),
      ["10.0.0.0", "10.128.0.1", "10.255.255.255"],
    );
  });

  it("matches a /12 that does not end on a byte boundary", () => {
    const trusted = proxyTrust(["172.16.0.0/12"]);
    assert.deepEqual(
      trustedOf(trusted, ["172.15.255.255", "172.16.0.0", "172.31.255.255", "172.32.0.0"]),
      ["172.16.0.0", "172.31.255.255"],
    );
  });

  it("matches an IPv4 /32 and a bare IPv4 address only exactly", () => {
    for (const entry of ["192.0.2.7/32", "192.0.2.7"]) {
      const trusted = proxyTrust([entry]);
      assert.deepEqual(trustedOf(trusted, ["192.0.2.6", "192.0.2.7", "192.0.2.8"]), [
        "192.0.2.7",
      ], entry);
    }
  });

  it("matches every IPv4 address with 0.0.0.0/0, and no IPv6 address", () => {
    const trusted = proxyTrust(["0.0.0.0/0"]);
    assert.deepEqual(
      trustedOf(trusted, ["0.0.0.0", "255.255.255.255", "::ffff:1.2.3.4", "2001:db8::1", "::"]),
      ["0.0.0.0", "255.255.255.255", "::ffff:1.2.3.4"],
    );
  });

  it("matches everything with ::/0, IPv4 included (as IPv4-mapped)", () => {
    const trusted = proxyTrust(["::/0"]);
    assert.deepEqual(
      trustedOf(trusted, ["::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "1.2.3.4", "x"]),
      ["::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "1.2.3.4"],
    );
  });

  it("matches an IPv6 /128 and a bare IPv6 address only exactly", () => {
    for (const entry of ["2001:db8::1/128", "2001:db8::1"]) {
      const trusted = proxyTrust([entry]);
      assert.deepEqual(trustedOf(trusted, ["2001:db8::", "2001:db8::1", "2001:db8::2"]), [
        "2001:db8::1",
      ], entry);
    }
  });

  it("matches fc00::/7 up to its edges and no further", () => {
    const trusted = proxyTrust(["fc00::/7"]);
    assert.deepEqual(
      trustedOf(trusted, [
        "fbff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        "fc00::",
        "fd12:3456::1",
        "fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        "fe00::",
      ]),
      ["fc00::", "fd12:3456::1", "fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"],
    );
  });

  it("ignores host bits below the prefix, as nginx does", () => {
    const trusted = proxyTrust(["10.1.2.3/8", "172.31.2.3/12", "fdff::1/7"]);
    assert.deepEqual(
      trustedOf(trusted, ["10.200.0.1", "11.0.0.0", "172.16.0.1", "172.32.0.1", "fc00::1", "::1"]),
      ["10.200.0.1", "172.16.0.1", "fc00::1"],
    );
  });

  it("ignores whitespace around an entry", () => {
    const trusted = proxyTrust([" 10.0.0.0/8 ", "\t::1\n"]);
    assert.deepEqual(trustedOf(trusted, ["10.0.0.1", "::1", "11.0.0.1"]), ["10.0.0.1", "::1"]);
  });

  it("trusts nothing with an empty list", () => {
    const trusted = proxyTrust([]);
    assert.deepEqual(trustedOf(trusted, ["127.0.0.1", "::1", "10.0.0.1"]), []);
  });
});

describe("proxyTrust: names", () => {
  it("loopback is 127.0.0.0/8 and ::1", () => {
    const trusted = proxyTrust(["loopback"]);
    assert.deepEqual(
      trustedOf(trusted, ["126.255.255.255", "127.0.0.1", "127.255.255.255", "128.0.0.0"]),
      ["127.0.0.1", "127.255.255.255"],
    );
    assert.deepEqual(trustedOf(trusted, ["::", "::1", "::2", "::ffff:127.0.0.1"]), [
      "::1",
      "::ffff:127.0.0.1",
    ]);
  });

  it("private is 10/8, 172.16/12, 192.168/16 and fc00::/7", () => {
    const trusted = proxyTrust(["private"]);
    assert.deepEqual(
      trustedOf(trusted, [
        "10.9.8.7",
        "172.20.0.1",
        "172.32.0.1",
        "192.168.255.255",
        "192.169.0.0",
        "fd00::1",
        "fe00::1",
        "8.8.8.8",
        "127.0.0.1",
      ]),
      ["10.9.8.7", "172.20.0.1", "192.168.255.255", "fd00::1"],
    );
  });

  it("linklocal is 169.254/16 and fe80::/10", () => {
    const trusted = proxyTrust(["linklocal"]);
    assert.deepEqual(
      trustedOf(trusted, ["169.254.0.1", "169.255.0.1", "fe80::1", "febf::1", "fec0::1"]),
      ["169.254.0.1", "fe80::1", "febf::1"],
    );
  });

  it("ignores the zone of a scoped IPv6 address (RFC 4007 §11)", () => {
    const trusted = proxyTrust(["linklocal"]);
    assert.deepEqual(trustedOf(trusted, ["fe80::1%eth0", "fe80::1%", "fec0::1%eth0"]), [
      "fe80::1%eth0",
      "fe80::1%",
    ]);
  });
});

describe("proxyTrust: address forms", () => {
  it("matches every textual form of one IPv6 address", () => {
    const trusted = proxyTrust(["2001:db8::1"]);
    for (
      const form of [
        "2001:db8::1",
        "2001:DB8::1",
        "2001:0db8:0000:0000:0000:0000:0000:0001",
        "2001:db8:0:0:0:0:0:1",
        "2001:db8:0::0:1",
        "2001:0DB8::0001",
        "2001:db8::0.0.0.1",
      ]
    ) {
      assert.equal(trusted(form), true, form);
    }
    assert.equal(trusted("2001:db8::0.0.0.2"), false);
    assert.equal(trusted("2001:db8:0:0:0:0:1:0"), false);
  });

  it("treats IPv4-mapped IPv6 as the IPv4 address, in both directions", () => {
    const v4 = proxyTrust(["10.0.0.0/8"]);
    assert.deepEqual(
      trustedOf(v4, ["::ffff:10.0.0.1", "::FFFF:a00:1", "0:0:0:0:0:ffff:10.1.1.1", "::10.0.0.1"]),
      ["::ffff:10.0.0.1", "::FFFF:a00:1", "0:0:0:0:0:ffff:10.1.1.1"],
    );
    assert.equal(v4("::ffff:11.0.0.1"), false);
    const v6 = proxyTrust(["::ffff:10.0.0.0/104"]);
    assert.deepEqual(trustedOf(v6, ["10.0.0.5", "10.255.0.1", "11.0.0.1", "::ffff:10.0.0.6"]), [
      "10.0.0.5",
      "10.255.0.1",
      "::ffff:10.0.0.6",
    ]);
  });

  it("parses the edge forms of IPv6", () => {
    for (
      const form of [
        "::",
        "::1",
        "1::",
        "1:2:3:4:5:6:7::",
        "::2:3:4:5:6:7:8",
        "1:2:3:4:5:6::8",
        "1:2:3:4:5:6:7:8",
        "1:2:3:4:5:6:1.2.3.4",
        "::1.2.3.4",
        "ffff:FFFF:0000:0:abcd:ABCD:1:1",
      ]
    ) {
      assert.equal(ANY(form), true, form);
    }
  });

  it("rejects text that is not an address", () => {
    for (
      const text of [
        "",
        ":",
        ":::",
        ":1",
        "1:",
        "1::2::3",
        "2001:db8:::1",
        "1:2:3:4:5:6:7:8:9",
        "1:2:3:4:5:6:7",
        "1::2:3:4:5:6:7:8",
        "1::2:3:4:5:6:7:8:9",
        "1:2:3:4:5:6:7:8::",
        "12345::",
        "g::",
        "::1.2.3",
        "::1.2.3.4:5",
        "1:2:3:4:5:6:7:1.2.3.4",
        "1::2:3:4:5:6:7:1.2.3.4",
        "::ffff:256.0.0.1",
        "[::1]",
        "1.2.3",
        "1.2.3.4.5",
        "1.2.3.256",
        "01.2.3.4",
        "1.2.3.4 ",
        "1..2.3",
        "-1.2.3.4",
        "unknown",
        "localhost",
      ]
    ) {
      assert.equal(ANY(text), false, JSON.stringify(text));
    }
  });
});

describe("proxyTrust: bad entries", () => {
  it("throws a TypeError naming the entry", () => {
    for (
      const entry of [
        "",
        "localhost",
        "Loopback",
        "10.0.0",
        "256.0.0.0",
        "10.0.0.0/",
        "10.0.0.0/33",
        "10.0.0.0/08",
        "10.0.0.0/-1",
        "10.0.0.0/8/8",
        "10.0.0.0 /8",
        "::/129",
        "fe80::/1a",
        "fe80::1%eth0",
        "[::1]",
        "2001:db8:::/32",
      ]
    ) {
      assertBadEntry(entry);
    }
  });

  it("throws for an entry that is not a string", () => {
    assert.throws(() => proxyTrust([42 as unknown as string]), {
      name: "TypeError",
      message: `Cannot serve: "42" in trustProxy is not an IP address or CIDR range`,
    });
  });
});

describe("clientAddress: remote", () => {
  it("returns an untrusted remote and ignores its headers, which anyone can forge", () => {
    const headers = [...xff("203.0.113.9"), ...forwarded("for=198.51.100.1")];
    assert.equal(clientAddress("192.0.2.1", headers, PROXIES), "192.0.2.1");
    assert.equal(clientAddress("2001:db8:2::1", headers, PROXIES), "2001:db8:2::1");
  });

  it("returns a trusted remote when there is no header", () => {
    assert.equal(clientAddress("127.0.0.1", [["host", "example.com"]], PROXIES), "127.0.0.1");
    assert.equal(clientAddress("::1", [], PROXIES), "::1");
  });

  it("returns an IPv4-mapped remote in IPv4 form, trusted or not", () => {
    assert.equal(clientAddress("::ffff:192.0.2.1", xff("203.0.113.9"), PROXIES), "192.0.2.1");
    assert.equal(clientAddress("::ffff:127.0.0.1", [], PROXIES), "127.0.0.1");
    assert.equal(clientAddress("::ffff:127.0.0.1", xff("203.0.113.9"), PROXIES), "203.0.113.9");
  });

  it("returns a remote that is not an address unchanged, headers ignored", () => {
    assert.equal(
      clientAddress("unix:/run/ws.sock", xff("203.0.113.9"), PROXIES),
      "unix:/run/ws.sock",
    );
  });

  it("asks the predicate about the remote as given", () => {
    const asked: string[] = [];
    const trusted = (address: string) => (asked.push(address), false);
    assert.equal(clientAddress("::ffff:192.0.2.1", xff("10.0.0.1"), trusted), "192.0.2.1");
    assert.deepEqual(asked, ["::ffff:192.0.2.1"]);
  });
});

describe("clientAddress: X-Forwarded-For", () => {
  it("ignores a spoofed leftmost entry: the nearest untrusted hop is the client", () => {
    assert.equal(clientAddress("127.0.0.1", xff("6.6.6.6, 203.0.113.9"), PROXIES), "203.0.113.9");
  });

  it("walks past trusted proxies from the right", () => {
    const headers = xff("6.6.6.6, 203.0.113.9, 10.0.0.2, 2001:db8:1::5, 10.0.0.3");
    assert.equal(clientAddress("127.0.0.1", headers, PROXIES), "203.0.113.9");
  });

  it("returns the leftmost hop when every hop is trusted", () => {
    assert.equal(clientAddress("127.0.0.1", xff("10.0.0.1, 10.0.0.2"), PROXIES), "10.0.0.1");
  });

  it("joins every instance of the header, in order", () => {
    assert.equal(
      clientAddress("127.0.0.1", xff("203.0.113.9", "10.0.0.2"), PROXIES),
      "203.0.113.9",
    );
    assert.equal(
      clientAddress("127.0.0.1", xff("10.0.0.2, 198.51.100.1", "10.0.0.3"), PROXIES),
      "198.51.100.1",
    );
    assert.equal(
      clientAddress("127.0.0.1", xff("198.51.100.1", "203.0.113.9"), PROXIES),
      "203.0.113.9",
    );
  });

  it("trims whitespace and skips empty elements", () => {
    const headers = xff(" 203.0.113.9 ,, \t10.0.0.2 , ");
    assert.equal(clientAddress("127.0.0.1", headers, PROXIES), "203.0.113.9");
  });

  it("strips a port from IPv4 and from bracketed IPv6", () => {
    assert.equal(clientAddress("127.0.0.1", xff("203.0.113.9:5678"), PROXIES), "203.0.113.9");
    assert.equal(
      clientAddress("127.0.0.1", xff("[2001:db8:2::9]:443, 10.0.0.1:80"), PROXIES),
      "2001:db8:2::9",
    );
    assert.equal(clientAddress("127.0.0.1", xff("[2001:db8:2::9]"), PROXIES), "2001:db8:2::9");
  });

  it("returns addresses in canonical form", () => {
    const cases: Array<[string, string]> = [
      ["2001:0DB8:0002:0000:0000:0000:0000:0009", "2001:db8:2::9"],
      ["2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"],
      ["2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"],
      ["2001:0:0:1:0:0:0:1", "2001:0:0:1::1"],
      ["0:0:0:0:0:0:0:0", "::"],
      ["1:0:0:0:0:0:0:0", "1::"],
      ["2001:db8:2::0.0.1.2", "2001:db8:2::102"],
      ["::ffff:203.0.113.9", "203.0.113.9"],
      ["[::FFFF:CB00:7109]:80", "203.0.113.9"],
    ];
    for (const [hop, expected] of cases) {
      assert.equal(clientAddress("127.0.0.1", xff(hop), PROXIES), expected, hop);
    }
  });

  it("trusts an IPv4-mapped hop by its IPv4 ranges", () => {
    assert.equal(
      clientAddress("127.0.0.1", xff("203.0.113.9, ::ffff:10.0.0.2"), PROXIES),
      "203.0.113.9",
    );
  });

  it("stops at an entry that is not an address, at the proxy that reported it", () => {
    const cases: Array<[string, string]> = [
      ["203.0.113.9, garbage, 10.0.0.2", "10.0.0.2"],
      ["203.0.113.9, unknown", "127.0.0.1"],
      ["203.0.113.9, 10.0.0.2, _hidden, 10.0.0.3", "10.0.0.3"],
      ['"203.0.113.9"', "127.0.0.1"],
      ["203.0.113.9:http", "127.0.0.1"],
      ["203.0.113.9:123456", "127.0.0.1"],
      ["[2001:db8:2::9]x", "127.0.0.1"],
      ["[2001:db8:2::9", "127.0.0.1"],
      ["[203.0.113.9]", "127.0.0.1"],
      ["fe80::1%eth0", "127.0.0.1"],
    ];
    for (const [value, expected] of cases) {
      assert.equal(clientAddress("127.0.0.1", xff(value), PROXIES), expected, value);
    }
  });

  it("returns the remote for a header with no elements", () => {
    assert.equal(clientAddress("127.0.0.1", xff("", " , "), PROXIES), "127.0.0.1");
  });
});

describe("clientAddress: Forwarded", () => {
  it("reads the for= parameter of each element", () => {
    assert.equal(
      clientAddress("127.0.0.1", forwarded("for=192.0.2.60;proto=http;by=203.0.113.43"), PROXIES),
      "192.0.2.60",
    );
    assert.equal(
      clientAddress("127.0.0.1", forwarded("for=6.6.6.6, for=192.0.2.60, for=10.0.0.2"), PROXIES),
      "192.0.2.60",
    );
  });

  it("takes the parameter name in any case and tolerates whitespace around pairs", () => {
    assert.equal(
      clientAddress("127.0.0.1", forwarded("proto=https; FOR=192.0.2.60 ;By=10.0.0.1"), PROXIES),
      "192.0.2.60",
    );
    assert.equal(clientAddress("127.0.0.1", forwarded("For=192.0.2.61"), PROXIES), "192.0.2.61");
  });

  it("unquotes values, brackets IPv6 and strips ports, obfuscated ports included", () => {
    const cases: Array<[string, string]> = [
      ['for="192.0.2.43"', "192.0.2.43"],
      ['for="192.0.2.43:47011"', "192.0.2.43"],
      ['for="192.0.2.43:_port"', "192.0.2.43"],
      ['For="[2001:db8:cafe::17]:4711"', "2001:db8:cafe::17"],
      ['for="[2001:DB8:CAFE:0::17]"', "2001:db8:cafe::17"],
      ['for="[2001:db8:cafe::17]:_p-1"', "2001:db8:cafe::17"],
      ['for="\\192.0.2.44"', "192.0.2.44"],
      ['for="[::ffff:192.0.2.45]"', "192.0.2.45"],
    ];
    for (const [value, expected] of cases) {
      assert.equal(clientAddress("127.0.0.1", forwarded(value), PROXIES), expected, value);
    }
  });

  it("keeps separators inside quoted values", () => {
    const headers = forwarded('by="a,b;c";for=192.0.2.60, for=10.0.0.2;host="x,y"');
    assert.equal(clientAddress("127.0.0.1", headers, PROXIES), "192.0.2.60");
    const escaped = forwarded('by="a\\",b";for=192.0.2.60, for=10.0.0.2;host="x,y"');
    assert.equal(clientAddress("127.0.0.1", escaped, PROXIES), "192.0.2.60");
  });

  it("stops at unknown and obfuscated identifiers (RFC 7239 §6.2, §6.3)", () => {
    const cases: Array<[string, string]> = [
      ["for=unknown", "127.0.0.1"],
      ['for="unknown"', "127.0.0.1"],
      ["for=192.0.2.60, for=unknown, for=10.0.0.2", "10.0.0.2"],
      ["for=192.0.2.60, for=_hidden, for=10.0.0.2", "10.0.0.2"],
      ['for=192.0.2.60, for="_SEVKISEK"', "127.0.0.1"],
    ];
    for (const [value, expected] of cases) {
      assert.equal(clientAddress("127.0.0.1", forwarded(value), PROXIES), expected, value);
    }
  });

  it("stops at an element without for=, with it twice, or malformed", () => {
    const cases: Array<[string, string]> = [
      ["for=192.0.2.60, proto=https", "127.0.0.1"],
      ["for=192.0.2.60, for=6.6.6.6;for=10.0.0.2", "127.0.0.1"],
      ['for=192.0.2.60, for="10.0.0.2', "127.0.0.1"],
      ['for=192.0.2.60, for="10.0.0.2"x, for=10.0.0.3', "10.0.0.3"],
      ["for=192.0.2.60, for=[2001:db8:cafe::17, for=10.0.0.3", "10.0.0.3"],
      ["for=192.0.2.60, for=192.0.2.61:http", "127.0.0.1"],
    ];
    for (const [value, expected] of cases) {
      assert.equal(clientAddress("127.0.0.1", forwarded(value), PROXIES), expected, value);
    }
  });

  it("reads every instance of the header, in order", () => {
    assert.equal(
      clientAddress("127.0.0.1", forwarded("for=198.51.100.1", "for=192.0.2.60"), PROXIES),
      "192.0.2.60",
    );
    assert.equal(
      clientAddress(
        "127.0.0.1",
        forwarded("for=192.0.2.60, for=10.0.0.2", "for=10.0.0.3"),
        PROXIES,
      ),
      "192.0.2.60",
    );
  });

  it("does not let an unclosed quote in one instance swallow the next", () => {
    const headers = forwarded('for=192.0.2.60, for="10.0.0.1', "for=10.0.0.2");
    assert.equal(clientAddress("127.0.0.1", headers, PROXIES), "10.0.0.2");
  });

  it("takes precedence over X-Forwarded-For", () => {
    const headers = [...xff("6.6.6.6"), ...forwarded("for=192.0.2.60")];
    assert.equal(clientAddress("127.0.0.1", headers, PROXIES), "192.0.2.60");
    assert.equal(
      clientAddress("127.0.0.1", [...forwarded(""), ...xff("6.6.6.6")], PROXIES),
      "127.0.0.1",
    );
  });

  it("ignores a spoofed leftmost element", () => {
    const headers = forwarded("for=10.0.0.9, for=192.0.2.60, for=10.0.0.2");
    assert.equal(clientAddress("127.0.0.1", headers, PROXIES), "192.0.2.60");
  });
});

describe("clientAddress: bounded work", () => {
  const chain = (trustedHops: number) => {
    const hops = ["203.0.113.9"];
    for (let i = 0; i < trustedHops; i++) hops.push(`10.0.${i >> 8}.${i & 0xff}`);
    return hops.join(", ");
  };

  it("reaches a client 64 hops from the right", () => {
    assert.equal(clientAddress("127.0.0.1", xff(chain(63)), PROXIES), "203.0.113.9");
  });

  it("ignores hops beyond the 64 rightmost: the leftmost of those is returned", () => {
    assert.equal(clientAddress("127.0.0.1", xff(chain(64)), PROXIES), "10.0.0.0");
    assert.equal(clientAddress("127.0.0.1", xff(chain(1000)), PROXIES), "10.0.3.168");
  });

  it("asks the predicate at most 65 times, whatever the header holds", () => {
    let calls = 0;
    const trusted = (address: string) => (calls++, PROXIES(address));
    clientAddress("127.0.0.1", xff(chain(5000)), trusted);
    assert.equal(calls, 65);
    calls = 0;
    clientAddress("127.0.0.1", forwarded(chain(5000).replaceAll(/(^|, )/g, "$1for=")), trusted);
    assert.equal(calls, 65);
  });
});

describe("clientAddress: properties", () => {
  const word = fc.integer({ min: 0, max: 0xffff });
  const words = fc.array(word, { minLength: 8, maxLength: 8 }).filter((w) =>
    // IPv4-mapped addresses come back as IPv4, checked above.
    !(w.slice(0, 5).every((x) => x === 0) && w[5] === 0xffff)
  );

  it("returns IPv6 in the form the WHATWG URL parser gives, from any spelling", () => {
    fc.assert(
      fc.property(words, fc.boolean(), (w, upper) => {
        let text = w.map((x) => x.toString(16).padStart(4, "0")).join(":");
        if (upper) text = text.toUpperCase();
        const expected = new URL(`http://[${text}]/`).hostname.slice(1, -1);
        assert.equal(clientAddress("127.0.0.1", xff(`[${text}]:80`), PROXIES), expected);
        assert.equal(clientAddress("127.0.0.1", forwarded(`for="[${text}]"`), PROXIES), expected);
      }),
      { numRuns: 500 },
    );
  });

  it("never throws, and returns the remote or an address", () => {
    const text = fc.string({ unit: "binary-ascii", maxLength: 40 });
    const pieces = fc.constantFrom(
      "for=",
      '"',
      "[",
      "]",
      ":",
      "::",
      ",",
      ";",
      "\\",
      " ",
      "10.0.0.1",
      "203.0.113.9",
      "2001:db8::1",
      "unknown",
      "_x",
      ":80",
    );
    const value = fc.oneof(text, fc.array(pieces, { maxLength: 12 }).map((p) => p.join("")));
    const header = fc.tuple(fc.constantFrom("forwarded", "x-forwarded-for", "host"), value);
    fc.assert(
      fc.property(fc.array(header, { maxLength: 4 }), (headers) => {
        const result = clientAddress("127.0.0.1", headers, PROXIES);
        assert.ok(result === "127.0.0.1" || ANY(result), result);
      }),
      { numRuns: 1000 },
    );
  });
});
