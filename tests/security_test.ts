/**
 * End to end: the Origin allowlist (`origins`, `requireOrigin`) and trusted proxies
 * (`trustProxy`) over real sockets. A refused Origin gets 403 before the upgrade hook runs, and
 * is counted in `stats().refused`; behind trusted proxies the hook and the WebSocket see the
 * client the proxies forwarded for, and `peerAddress` stays the TCP peer.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import type { ServeOptions, UpgradeRequest } from "../mod.ts";
import { type HttpResponse, Op, text, upgradeRequest } from "./_client.ts";
import { assertServeThrows, type Harness, Queue, withServer } from "./_harness.ts";

/** Sends an upgrade request with `extra` header lines and reads the response. */
async function handshake<T>(harness: Harness<T>, extra: string[]): Promise<HttpResponse> {
  const client = await harness.connect();
  await client.write(upgradeRequest({ extra }));
  const response = await client.response();
  if (response.status !== 101) {
    // A refusal ends the connection: the server closes it after the response.
    await client.waitClosed();
  }
  return response;
}

const decoder = new TextDecoder();

/** Options that record every upgrade hook call and echo messages. */
function recording(extra: Partial<ServeOptions<undefined>>) {
  const hooks = new Queue<string | undefined>();
  const options: ServeOptions<undefined> = {
    upgrade(request) {
      hooks.push(request.origin);
    },
    message(ws, data) {
      ws.send(data);
    },
    ...extra,
  };
  return { hooks, options };
}

test("origin: an allowed exact origin gets 101, written with a default port or in upper case too", async () => {
  const { hooks, options } = recording({ origins: ["https://app.example.com"] });
  await withServer(options, async (harness) => {
    for (
      const origin of [
        "https://app.example.com",
        "https://APP.Example.com",
        "https://app.example.com:443",
      ]
    ) {
      const { client } = await harness.open({ extra: [`Origin: ${origin}`] });
      assert.equal(await hooks.next("the upgrade hook"), origin);
      await client.sendFrame(Op.Text, "hello");
      const frame = await client.nextFrame();
      assert.equal(text(frame.payload), "hello");
    }
    assert.deepEqual(harness.server.stats().refused, {});
  });
});

test("origin: any other origin gets 403 and the upgrade hook never runs", async () => {
  const opened = new Queue<void>();
  const { hooks, options } = recording({
    origins: ["https://app.example.com"],
    open() {
      opened.push();
    },
  });
  await withServer(options, async (harness) => {
    for (
      const origin of [
        "https://evil.example.net",
        "http://app.example.com", // another scheme
        "https://app.example.com:8443", // another port
        "https://app.example.com.evil.net",
        "https://sub.app.example.com",
        "null",
      ]
    ) {
      const response = await handshake(harness, [`Origin: ${origin}`]);
      assert.equal(response.status, 403, `${origin}: ${response.statusLine}`);
      assert.equal(decoder.decode(response.body), "Forbidden: this Origin is not allowed");
      assert.equal(response.headers.get("connection"), "close");
      assert.equal(response.headers.get("upgrade"), undefined);
    }
    assert.equal(hooks.items.length, 0, "the upgrade hook ran for a refused origin");
    assert.equal(opened.items.length, 0);
    // The hook does run for an allowed one: the zero above means something.
    await harness.open({ extra: ["Origin: https://app.example.com"] });
    assert.equal(await hooks.next("the upgrade hook"), "https://app.example.com");
    await opened.next("open");
  });
});

test("origin: a wildcard rule allows every subdomain, not the apex or a look-alike", async () => {
  const { hooks, options } = recording({ origins: ["https://*.example.com"] });
  await withServer(options, async (harness) => {
    for (const origin of ["https://chat.example.com", "https://a.b.example.com"]) {
      await harness.open({ extra: [`Origin: ${origin}`] });
      assert.equal(await hooks.next("the upgrade hook"), origin);
    }
    for (
      const origin of [
        "https://example.com",
        "https://evilexample.com",
        "http://chat.example.com",
        "https://chat.example.com.evil.net",
      ]
    ) {
      const response = await handshake(harness, [`Origin: ${origin}`]);
      assert.equal(response.status, 403, `${origin}: ${response.statusLine}`);
    }
    assert.equal(hooks.items.length, 2);
  });
});

test("origin: a request without Origin is allowed by default", async () => {
  const { hooks, options } = recording({ origins: ["https://app.example.com"] });
  await withServer(options, async (harness) => {
    const { client } = await harness.open();
    assert.equal(await hooks.next("the upgrade hook"), undefined);
    await client.sendFrame(Op.Text, "no origin");
    assert.equal(text((await client.nextFrame()).payload), "no origin");
  });
});

test("origin: with requireOrigin a request without Origin gets 403 before the hook", async () => {
  const { hooks, options } = recording({
    origins: ["https://app.example.com"],
    requireOrigin: true,
  });
  await withServer(options, async (harness) => {
    const response = await handshake(harness, []);
    assert.equal(response.status, 403);
    assert.equal(decoder.decode(response.body), "Forbidden: an Origin header is required");
    assert.equal(hooks.items.length, 0);
    // An allowed origin still gets in.
    await harness.open({ extra: ["Origin: https://app.example.com"] });
    assert.equal(await hooks.next("the upgrade hook"), "https://app.example.com");
    assert.deepEqual(harness.server.stats().refused, { "403": 1 });
  });
});

test("origin: a RegExp rule is tested against the header as sent", async () => {
  const { hooks, options } = recording({
    origins: [/^http:\/\/localhost:\d+$/, "https://app.example.com"],
  });
  await withServer(options, async (harness) => {
    await harness.open({ extra: ["Origin: http://localhost:3000"] });
    assert.equal(await hooks.next("the upgrade hook"), "http://localhost:3000");
    for (
      const origin of [
        "http://localhost",
        "http://localhost:3000.evil.net",
        "https://localhost:3000",
      ]
    ) {
      const response = await handshake(harness, [`Origin: ${origin}`]);
      assert.equal(response.status, 403, `${origin}: ${response.statusLine}`);
    }
    // The string rule beside it still works.
    await harness.open({ extra: ["Origin: https://app.example.com"] });
    assert.equal(await hooks.next("the upgrade hook"), "https://app.example.com");
    assert.equal(hooks.items.length, 2);
  });
});

test('origin: "null" is allowed only when listed', async () => {
  const { hooks, options } = recording({ origins: ["null"] });
  await withServer(options, async (harness) => {
    await harness.open({ extra: ["Origin: null"] });
    assert.equal(await hooks.next("the upgrade hook"), "null");
    const response = await handshake(harness, ["Origin: https://app.example.com"]);
    assert.equal(response.status, 403);
  });
});

test("origin: without an allowlist every origin is accepted", async () => {
  const { hooks, options } = recording({});
  await withServer(options, async (harness) => {
    await harness.open({ extra: ["Origin: https://anything.example.org"] });
    assert.equal(await hooks.next("the upgrade hook"), "https://anything.example.org");
  });
});

test('origin: each refusal is counted in stats().refused["403"]', async () => {
  const { options } = recording({ origins: ["https://app.example.com"], requireOrigin: true });
  await withServer(options, async (harness) => {
    assert.deepEqual(harness.server.stats().refused, {});
    await handshake(harness, ["Origin: https://evil.example.net"]);
    await handshake(harness, ["Origin: http://app.example.com"]);
    await handshake(harness, []);
    await harness.open({ extra: ["Origin: https://app.example.com"] });
    const stats = harness.server.stats();
    assert.deepEqual(stats.refused, { "403": 3 });
    assert.equal(stats.accepted, 1);
    assert.equal(stats.connections, 1);
    assert.match(harness.server.metrics(), /^sluice_refused_total\{status="403"\} 3$/m);
  });
});

test("origin: an invalid rule throws a TypeError from serve()", async () => {
  await assertServeThrows(
    { origins: ["https://example.com/app"] },
    {
      name: "TypeError",
      message:
        'Cannot serve: the origin rule "https://example.com/app" is not an origin (scheme://host[:port])',
    },
  );
});

// ---------------------------------------------------------------------------------------------
// Trusted proxies

interface Seen {
  remoteAddress: string;
  peerAddress: string;
}

/** A server that records what the upgrade hook and the open WebSocket see. */
async function addressesFor(
  trustProxy: string[] | undefined,
  headers: string[],
): Promise<{ request: Seen; ws: string }> {
  const requests = new Queue<Seen>();
  const sockets = new Queue<string>();
  let result: { request: Seen; ws: string } | undefined;
  await withServer({
    trustProxy,
    upgrade(request: UpgradeRequest) {
      requests.push({ remoteAddress: request.remoteAddress, peerAddress: request.peerAddress });
    },
    open(ws) {
      sockets.push(ws.remoteAddress);
    },
  }, async (harness) => {
    await harness.open({ extra: headers });
    result = {
      request: await requests.next("the upgrade hook"),
      ws: await sockets.next("open"),
    };
  });
  return result!;
}

test("proxies: X-Forwarded-For behind a trusted loopback peer: the nearest untrusted hop is the client", async () => {
  // The TCP peer 127.0.0.1 is trusted; walking from the right, 10.0.0.1 is not (only loopback
  // is trusted), so it is the client, and 203.0.113.7 (which it claims) is not believed.
  const seen = await addressesFor(["loopback"], ["X-Forwarded-For: 203.0.113.7, 10.0.0.1"]);
  assert.deepEqual(seen.request, { remoteAddress: "10.0.0.1", peerAddress: "127.0.0.1" });
  assert.equal(seen.ws, "10.0.0.1");
});

test("proxies: trusting the inner proxy's range too reaches the original client", async () => {
  const seen = await addressesFor(
    ["loopback", "10.0.0.0/8"],
    ["X-Forwarded-For: 203.0.113.7, 10.0.0.1"],
  );
  assert.deepEqual(seen.request, { remoteAddress: "203.0.113.7", peerAddress: "127.0.0.1" });
  assert.equal(seen.ws, "203.0.113.7");
});

test("proxies: an untrusted hop in the middle stops the walk; what it claims is ignored", async () => {
  const seen = await addressesFor(
    ["loopback", "10.0.0.0/8"],
    ["X-Forwarded-For: 198.51.100.9, 203.0.113.7, 10.0.0.1"],
  );
  assert.deepEqual(seen.request, { remoteAddress: "203.0.113.7", peerAddress: "127.0.0.1" });
  assert.equal(seen.ws, "203.0.113.7");
});

test("proxies: when every hop is trusted, the leftmost is the client", async () => {
  const seen = await addressesFor(
    ["loopback", "10.0.0.0/8"],
    ["X-Forwarded-For: 10.0.0.5, 10.0.0.1"],
  );
  assert.equal(seen.request.remoteAddress, "10.0.0.5");
  assert.equal(seen.ws, "10.0.0.5");
});

test("proxies: X-Forwarded-For over several header lines is one list", async () => {
  const seen = await addressesFor(
    ["loopback", "10.0.0.0/8"],
    ["X-Forwarded-For: 198.51.100.9", "X-Forwarded-For: 10.0.0.2, 10.0.0.1"],
  );
  assert.equal(seen.request.remoteAddress, "198.51.100.9");
  assert.equal(seen.ws, "198.51.100.9");
});

test("proxies: Forwarded (RFC 7239) with a quoted IPv6 and a port, preferred over X-Forwarded-For", async () => {
  const seen = await addressesFor(["loopback"], [
    'Forwarded: for=198.51.100.9;proto=https, for="[2001:DB8:0::1]:4711";by=10.0.0.1',
    "X-Forwarded-For: 203.0.113.99",
  ]);
  assert.deepEqual(seen.request, { remoteAddress: "2001:db8::1", peerAddress: "127.0.0.1" });
  assert.equal(seen.ws, "2001:db8::1");
});

test("proxies: Forwarded with an IPv4 client behind a trusted hop", async () => {
  const seen = await addressesFor(["loopback", "10.0.0.0/8"], [
    "Forwarded: for=203.0.113.7:5555, for=10.0.0.1",
  ]);
  assert.equal(seen.request.remoteAddress, "203.0.113.7");
  assert.equal(seen.ws, "203.0.113.7");
});

test("proxies: an `unknown` hop stops the walk at the trusted proxy that reported it", async () => {
  const seen = await addressesFor(["loopback"], ["X-Forwarded-For: 203.0.113.7, unknown"]);
  assert.equal(seen.request.remoteAddress, "127.0.0.1");
  assert.equal(seen.ws, "127.0.0.1");
});

test("proxies: without trustProxy the headers are ignored", async () => {
  const seen = await addressesFor(undefined, [
    "X-Forwarded-For: 203.0.113.7",
    "Forwarded: for=198.51.100.9",
  ]);
  assert.deepEqual(seen.request, { remoteAddress: "127.0.0.1", peerAddress: "127.0.0.1" });
  assert.equal(seen.ws, "127.0.0.1");
});

test("proxies: an empty trustProxy list ignores the headers too", async () => {
  const seen = await addressesFor([], ["X-Forwarded-For: 203.0.113.7"]);
  assert.equal(seen.request.remoteAddress, "127.0.0.1");
  assert.equal(seen.ws, "127.0.0.1");
});

test("proxies: a TCP peer outside the trusted list is the client, whatever it sends", async () => {
  const seen = await addressesFor(["10.0.0.0/8"], ["X-Forwarded-For: 203.0.113.7"]);
  assert.deepEqual(seen.request, { remoteAddress: "127.0.0.1", peerAddress: "127.0.0.1" });
  assert.equal(seen.ws, "127.0.0.1");
});

test("proxies: an invalid trustProxy entry throws a TypeError from serve()", async () => {
  await assertServeThrows(
    { trustProxy: ["10.0.0.0/33"] },
    {
      name: "TypeError",
      message: 'Cannot serve: "10.0.0.0/33" in trustProxy is not an IP address or CIDR range',
    },
  );
});
