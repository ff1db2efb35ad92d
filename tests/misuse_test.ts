/**
 * End to end: mistakes in application code get a clear error, never a dead or hung process.
 * serve() checks its options and handlers up front; what the upgrade hook and `fetch` return is
 * checked (anything unusable refuses with 500 and reaches the `error` handler as a TypeError);
 * handlers may return any value; shutdown() checks its options before closing anything; the
 * upgrade hook's headers are `fetch`-style headers without the handshake's own; listen and TLS
 * errors name the address; `server.clients` lists the open connections.
 *
 * An unhandled rejection, or a process that dies, fails the runner; every client wait has a
 * timeout shorter than the runner's, so a hung request fails its own test.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { serve, type ServeOptions, type Server, type ServerWebSocket } from "../mod.ts";
import {
  type HttpResponse,
  Op,
  parseClose,
  type RawClient,
  text,
  upgradeRequest,
  within,
} from "./_client.ts";
import { assertServeThrows, deferred, Queue, withServer } from "./_harness.ts";
import { generateCertificate, testCertificate } from "./_tls.ts";

/** Shorter than the runners' own test timeout, so a hang is reported as such. */
const HANG_MS = 2000;

/** An upgrade request on a new connection, and the response it gets. */
async function upgradeResponse(
  connect: () => Promise<RawClient>,
  options: { path?: string; protocols?: string } = {},
): Promise<{ client: RawClient; response: HttpResponse }> {
  const client = await connect();
  await client.write(upgradeRequest(options));
  return { client, response: await client.response(HANG_MS) };
}

/** A plain GET on a new connection, and the response it gets. */
async function getResponse(connect: () => Promise<RawClient>, path = "/"): Promise<HttpResponse> {
  const client = await connect();
  await client.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
  return await client.response(HANG_MS);
}

const hookMessage = (value: string) =>
  `The upgrade hook returned ${value}; return undefined or { data } to accept, or a Response to refuse`;

const fetchMessage = (value: string) =>
  `The fetch handler returned ${value}; return a Response, or undefined for a 404`;

/** Asserts `error` is a TypeError with exactly `message`. */
function assertTypeError(error: unknown, message: string): void {
  assert.ok(error instanceof TypeError, `expected a TypeError, got ${String(error)}`);
  assert.equal(error.message, message);
}

// serve(): options and handlers are checked up front.

const HANDLER_NAMES = [
  "upgrade",
  "fetch",
  "open",
  "message",
  "fragment",
  "drain",
  "ping",
  "pong",
  "close",
  "error",
] as const;

test("serve: every handler option must be a function when given", async () => {
  for (const name of HANDLER_NAMES) {
    for (const [value, shown] of [["nope", '"nope"'], [42, "42"], [{}, "{}"], [null, "null"]]) {
      await assertServeThrows({ [name]: value } as ServeOptions, {
        name: "TypeError",
        message: `Cannot serve: ${name} must be a function, got ${shown}`,
      });
    }
  }
});

test('serve: the issue\'s { message: "nope", upgrade: 42 } throws at once, naming an option', async () => {
  await assertServeThrows({ message: "nope", upgrade: 42 } as unknown as ServeOptions, {
    name: "TypeError",
    message: "Cannot serve: upgrade must be a function, got 42",
  });
});

test("serve: options of the wrong kind throw a TypeError naming the option and the value", async () => {
  const cases: Array<[Record<string, unknown>, string]> = [
    [{ protocols: "chat" }, 'Cannot serve: protocols must be an array of strings, got "chat"'],
    [
      { protocols: ["chat", 1] },
      "Cannot serve: protocols must be an array of strings, got an array of 2",
    ],
    [
      { trustProxy: "loopback" },
      'Cannot serve: trustProxy must be an array of strings, got "loopback"',
    ],
    [{ requireOrigin: "yes" }, 'Cannot serve: requireOrigin must be true or false, got "yes"'],
    [
      { metricsPath: "metrics" },
      'Cannot serve: metricsPath must be a path starting with "/", got "metrics"',
    ],
    [
      { perMessageDeflate: "yes" },
      'Cannot serve: perMessageDeflate must be true, false or options, got "yes"',
    ],
    [
      { heartbeat: 5000 },
      "Cannot serve: heartbeat must be false or { interval, timeout }, got 5000",
    ],
    [
      { rateLimit: 100 },
      "Cannot serve: rateLimit must be { messages, bytes, burst, policy }, got 100",
    ],
    [
      { maxPayloadLength: "1024" },
      'Cannot serve: maxPayloadLength must be a positive number, got "1024"',
    ],
    [
      { idleTimeout: "60000" },
      'Cannot serve: idleTimeout must be 0 or a positive number, got "60000"',
    ],
  ];
  for (const [options, message] of cases) {
    await assertServeThrows(options as ServeOptions, { name: "TypeError", message });
  }
});

test("serve: a port or hostname that cannot be bound as given throws before binding", () => {
  const cases: Array<[unknown, { name: string; message: string }]> = [
    [{ port: 70000 }, {
      name: "RangeError",
      message: "Cannot serve: port must be an integer from 0 to 65535, got 70000",
    }],
    [{ port: -1 }, {
      name: "RangeError",
      message: "Cannot serve: port must be an integer from 0 to 65535, got -1",
    }],
    [{ port: "8080" }, {
      name: "TypeError",
      message: 'Cannot serve: port must be an integer from 0 to 65535, got "8080"',
    }],
    [{ hostname: 127 }, {
      name: "TypeError",
      message: "Cannot serve: hostname must be an IP address or a host name, got 127",
    }],
    [8080, { name: "TypeError", message: "Cannot serve: the options must be an object, got 8080" }],
  ];
  for (const [options, expected] of cases) {
    let server: Server | undefined;
    try {
      assert.throws(() => server = serve(options as ServeOptions), expected);
    } finally {
      server?.shutdown();
    }
  }
});

test("serve: unknown options are served without, with one warning naming them", async () => {
  const warnings: unknown[][] = [];
  const warn = console.warn;
  console.warn = (...args: unknown[]) => warnings.push(args);
  let server: Server | undefined;
  try {
    server = serve({
      hostname: "127.0.0.1",
      port: 0,
      onMessage() {},
      messsage() {},
      colour: "blue",
    } as ServeOptions);
  } finally {
    console.warn = warn;
    await server?.shutdown();
  }
  assert.deepEqual(warnings, [[
    'sluice: serve() ignores the unknown options "onMessage" (did you mean "message"?), ' +
    '"messsage" (did you mean "message"?), "colour"',
  ]]);
});

// What the upgrade hook returns.

const BAD_HOOK_RESULTS: Array<[string, () => unknown, string]> = [
  ["false", () => false, "false"],
  ["null", () => null, "null"],
  ["true", () => true, "true"],
  ["42", () => 42, "42"],
  ['"yes"', () => "yes", '"yes"'],
  ["{ user } (data: forgotten)", () => ({ user: "ann" }), "{ user }"],
  ["{ data, user }", () => ({ data: 1, user: "ann" }), "{ data, user }"],
  ["an array", () => [], "an array of 0"],
  ["a Map", () => new Map(), "a Map"],
];

for (const [name, make, shown] of BAD_HOOK_RESULTS) {
  for (const async of [false, true]) {
    test(`upgrade hook returning ${name}${async ? " (async)" : ""}: 500 and a TypeError naming it`, async () => {
      const errors = new Queue<[unknown, unknown]>();
      let opened = 0;
      await withServer({
        upgrade: (async ? () => Promise.resolve(make()) : make) as ServeOptions["upgrade"],
        open() {
          opened++;
        },
        error(error, ws) {
          errors.push([error, ws]);
        },
      }, async ({ connect }) => {
        const { client, response } = await upgradeResponse(connect);
        assert.equal(response.status, 500);
        assert.equal(response.headers.has("sec-websocket-accept"), false);
        const [error, ws] = await errors.next("the error handler");
        assertTypeError(error, hookMessage(shown));
        assert.equal(ws, undefined);
        await client.waitClosed(HANG_MS);
        assert.equal(opened, 0);
      });
    });
  }
}

test("upgrade hook: a protocol that is not a string refuses with 500 and a TypeError", async () => {
  const errors = new Queue<unknown>();
  await withServer({
    upgrade: (() => ({ protocol: 1 })) as unknown as ServeOptions["upgrade"],
    error(error) {
      errors.push(error);
    },
  }, async ({ connect }) => {
    const { response } = await upgradeResponse(connect, { protocols: "chat" });
    assert.equal(response.status, 500);
    assertTypeError(
      await errors.next("the error handler"),
      "The upgrade hook returned a protocol that is not a string: 1",
    );
  });
});

test("upgrade hook: undefined, {} and a thenable that is not a Promise all accept", async () => {
  const results: Array<() => unknown> = [
    () => undefined,
    () => ({}),
    () => ({ then: (resolve: (value: unknown) => void) => resolve({ data: "thenable" }) }),
  ];
  const opened = new Queue<unknown>();
  let next = 0;
  await withServer<unknown>({
    upgrade: (() => results[next++]()) as ServeOptions<unknown>["upgrade"],
    open(ws) {
      opened.push(ws.data);
    },
  }, async ({ open }) => {
    for (const expected of [undefined, undefined, "thenable"]) {
      await open();
      assert.equal(await opened.next("open"), expected);
    }
  });
});

// What fetch returns.

const BAD_FETCH_RESULTS: Array<[string, () => unknown, string]> = [
  ["a string", () => "ok", '"ok"'],
  ["{ status, body }", () => ({ status: 200, body: "ok" }), "{ status, body }"],
  ["42", () => 42, "42"],
  ["true", () => true, "true"],
];

for (const [name, make, shown] of BAD_FETCH_RESULTS) {
  for (const async of [false, true]) {
    test(`fetch returning ${name}${async ? " (async)" : ""}: 500 and a TypeError naming it`, async () => {
      const errors = new Queue<unknown>();
      await withServer({
        fetch: (async ? () => Promise.resolve(make()) : make) as ServeOptions["fetch"],
        error(error) {
          errors.push(error);
        },
      }, async ({ connect }) => {
        const response = await getResponse(connect);
        assert.equal(response.status, 500);
        assert.equal(text(response.body), "Internal Server Error");
        assertTypeError(await errors.next("the error handler"), fetchMessage(shown));
        // The server still answers.
        assert.equal((await getResponse(connect)).status, 500);
      });
    });
  }
}

test("fetch: null still answers 404", async () => {
  await withServer({
    fetch: (() => null) as unknown as ServeOptions["fetch"],
  }, async ({ connect }) => {
    assert.equal((await getResponse(connect)).status, 404);
  });
});

test("fetch and the upgrade hook: a Response whose body was read already gives 500, not a hang", async () => {
  const errors = new Queue<unknown>();
  const used = async () => {
    const response = new Response("used");
    await response.text();
    return response;
  };
  await withServer({
    fetch: used,
    upgrade: used,
    error(error) {
      errors.push(error);
    },
  }, async ({ connect }) => {
    assert.equal((await getResponse(connect)).status, 500);
    assert.ok(await errors.next("fetch's error") instanceof TypeError);
    assert.equal((await upgradeResponse(connect)).response.status, 500);
    assert.ok(await errors.next("the hook's error") instanceof TypeError);
  });
});

// Handlers may return any value.

test("handlers returning null, a number or a string keep the connection open", async () => {
  const errors: unknown[] = [];
  const closes = new Queue<number>();
  await withServer({
    open: (() => null) as unknown as ServeOptions["open"],
    message: ((ws: ServerWebSocket<undefined>, data: string | Uint8Array) => {
      ws.send(data);
      return null;
    }) as unknown as ServeOptions["message"],
    ping: (() => 42) as unknown as ServeOptions["ping"],
    pong: (() => "pong") as unknown as ServeOptions["pong"],
    close: ((_ws: unknown, code: number) => {
      closes.push(code);
      return null;
    }) as unknown as ServeOptions["close"],
    error(error) {
      errors.push(error);
    },
  }, async ({ open }) => {
    const { client } = await open();
    for (const word of ["one", "two"]) {
      await client.sendFrame(Op.Text, word);
      const frame = await client.nextFrame(HANG_MS);
      assert.equal(frame.opcode, Op.Text);
      assert.equal(text(frame.payload), word);
    }
    await client.sendFrame(Op.Ping, "p");
    assert.equal((await client.nextFrame(HANG_MS)).opcode, Op.Pong);
    await client.sendFrame(Op.Pong, "q");
    await client.sendClose(1000);
    assert.deepEqual(parseClose(await client.nextFrame(HANG_MS)), { code: 1000, reason: "" });
    assert.equal(await closes.next("close"), 1000);
    assert.deepEqual(errors, []);
  });
});

test("a fragment handler returning null keeps the connection open", async () => {
  const errors: unknown[] = [];
  const pieces = new Queue<string>();
  await withServer({
    fragment: ((_ws: unknown, data: string) => {
      pieces.push(data);
      return null;
    }) as unknown as ServeOptions["fragment"],
    error(error) {
      errors.push(error);
    },
  }, async ({ open }) => {
    const { client } = await open();
    await client.sendFrame(Op.Text, "a", { fin: false });
    await client.sendFrame(Op.Continuation, "b");
    assert.equal(await pieces.next("first piece"), "a");
    assert.equal(await pieces.next("second piece"), "b");
    await client.sendClose(1000);
    assert.deepEqual(parseClose(await client.nextFrame(HANG_MS)), { code: 1000, reason: "" });
    assert.deepEqual(errors, []);
  });
});

// shutdown(): options are checked before anything is closed.

test("shutdown: bad options reject and change nothing; a good call then shuts down", async () => {
  const closes = new Queue<number>();
  await withServer({
    close(_ws, code) {
      closes.push(code);
    },
  }, async ({ server, open }) => {
    const { client } = await open();
    const cases: Array<[unknown, { name: string; message: string }]> = [
      [{ code: 999 }, {
        name: "RangeError",
        message: "Cannot shut down: code must be 1000-1003, 1007-1014 or 3000-4999, got 999",
      }],
      [{ code: 1005 }, {
        name: "RangeError",
        message: "Cannot shut down: code must be 1000-1003, 1007-1014 or 3000-4999, got 1005",
      }],
      [{ code: "1000" }, {
        name: "TypeError",
        message: 'Cannot shut down: code must be 1000-1003, 1007-1014 or 3000-4999, got "1000"',
      }],
      [{ reason: "é".repeat(62) }, {
        name: "RangeError",
        message: "Cannot shut down: reason must be at most 123 bytes of UTF-8, got 124",
      }],
      [{ reason: 5 }, {
        name: "TypeError",
        message: "Cannot shut down: reason must be a string, got 5",
      }],
      [{ timeout: -1 }, {
        name: "RangeError",
        message: "Cannot shut down: timeout must be 0 or a positive number of ms, got -1",
      }],
      [{ timeout: NaN }, {
        name: "RangeError",
        message: "Cannot shut down: timeout must be 0 or a positive number of ms, got NaN",
      }],
      [5, { name: "TypeError", message: "Cannot shut down: the options must be an object, got 5" }],
    ];
    for (const [options, expected] of cases) {
      const result = server.shutdown(options as never);
      assert.ok(result instanceof Promise, "shutdown returns a promise even for bad options");
      await assert.rejects(result, expected);
    }
    // Nothing changed: the listener still accepts, and the open connection got no Close.
    const { client: late } = await open();
    late.destroy();
    assert.equal(await closes.next("the late client's close"), 1006);
    await client.sendFrame(Op.Ping, "still there?");
    assert.equal((await client.nextFrame(HANG_MS)).opcode, Op.Pong);
    assert.equal(server.pendingWebSockets, 1);

    const done = server.shutdown({ code: 1012, reason: "Restarting", timeout: Infinity });
    assert.deepEqual(parseClose(await client.nextFrame(HANG_MS)), {
      code: 1012,
      reason: "Restarting",
    });
    await client.sendClose(1012);
    await within(done, "shutdown", HANG_MS);
    assert.equal(await closes.next("the close handler"), 1012);
  });
});

// The upgrade hook's headers.

test("upgrade headers: a Headers, pairs and a record all reach the 101", async () => {
  const all: unknown[] = [
    new Headers({ "X-Kind": "headers" }),
    [["X-Kind", "pairs"], ["X-Also", "1"]],
    { "X-Kind": "record" },
  ];
  let next = 0;
  await withServer({
    upgrade: () => ({ headers: all[next++] as Headers }),
  }, async ({ open }) => {
    assert.equal((await open()).response.headers.get("x-kind"), "headers");
    const pairs = (await open()).response;
    assert.equal(pairs.headers.get("x-kind"), "pairs");
    assert.equal(pairs.headers.get("x-also"), "1");
    assert.equal((await open()).response.headers.get("x-kind"), "record");
  });
});

const BAD_HEADERS: Array<[string, unknown, string]> = [
  [
    "a string",
    "x-",
    'Cannot write the response: headers must be a Headers, an array of [name, value] pairs or a record of strings, got the string "x-"',
  ],
  [
    "a Map",
    new Map([["x-a", "1"]]),
    "Cannot write the response: headers must be a Headers, an array of [name, value] pairs or a record of strings, got a Map",
  ],
  [
    "a pair of one",
    [["x-a"]],
    "Cannot write the response: headers must be a Headers, an array of [name, value] pairs or a record of strings; item 0 is not a pair of strings",
  ],
  [
    "a number value",
    { "x-a": 1 },
    'Cannot write the response: headers must be a Headers, an array of [name, value] pairs or a record of strings; the value of "x-a" is a number',
  ],
  [
    "a second Sec-WebSocket-Accept",
    { "Sec-WebSocket-Accept": "forged" },
    "Cannot write the response: the handshake sets Sec-WebSocket-Accept itself",
  ],
  [
    "Upgrade: h2c",
    [["Upgrade", "h2c"]],
    "Cannot write the response: the handshake sets Upgrade itself",
  ],
  [
    "Connection",
    new Headers({ Connection: "close" }),
    "Cannot write the response: the handshake sets connection itself",
  ],
  [
    "Sec-WebSocket-Protocol",
    { "sec-websocket-protocol": "chat" },
    "Cannot write the response: the handshake sets sec-websocket-protocol itself (to choose a subprotocol, accept with { protocol })",
  ],
  [
    "Sec-WebSocket-Extensions",
    { "Sec-WebSocket-Extensions": "permessage-deflate" },
    "Cannot write the response: the handshake sets Sec-WebSocket-Extensions itself",
  ],
  [
    "Content-Length",
    { "Content-Length": "0" },
    "Cannot write the response: the handshake sets Content-Length itself",
  ],
  [
    "Transfer-Encoding",
    { "Transfer-Encoding": "chunked" },
    "Cannot write the response: the handshake sets Transfer-Encoding itself",
  ],
];

test("upgrade headers: junk and the handshake's own headers refuse with 500 and a TypeError", async () => {
  const errors = new Queue<unknown>();
  let opened = 0;
  let next = 0;
  await withServer({
    upgrade: () => ({ headers: BAD_HEADERS[next++][1] as Headers }),
    open() {
      opened++;
    },
    error(error) {
      errors.push(error);
    },
  }, async ({ connect }) => {
    for (const [name, , message] of BAD_HEADERS) {
      const { response } = await upgradeResponse(connect);
      assert.equal(response.status, 500, name);
      assert.equal(response.headers.has("sec-websocket-accept"), false, name);
      assertTypeError(await errors.next(name), message);
    }
    assert.equal(opened, 0);
  });
});

// Listen and TLS errors.

test("listen: a port in use names the address; the runtime's error is the cause", async () => {
  await withServer({}, async ({ port }) => {
    let error: unknown;
    let server: Server | undefined;
    try {
      server = serve({ hostname: "127.0.0.1", port });
    } catch (thrown) {
      error = thrown;
    } finally {
      await server?.shutdown();
    }
    assert.ok(error instanceof Error);
    assert.equal(error.message, `Cannot serve on 127.0.0.1:${port}: the address is already in use`);
    assert.ok(error.cause instanceof Error, "the runtime's error is kept as the cause");
    assert.equal((error.cause as { code?: string }).code, "EADDRINUSE");
  });
});

test("listen: an address that is not this machine's names it", async () => {
  let server: Server | undefined;
  try {
    // 192.0.2.0/24 is TEST-NET-1 (RFC 5737): never assigned to a host.
    assert.throws(() => server = serve({ hostname: "192.0.2.1", port: 0 }), {
      name: "Error",
      message: "Cannot serve on 192.0.2.1:0: the address is not one of this machine's",
    });
  } finally {
    await server?.shutdown();
  }
});

test("tls: a file path as cert or key says that PEM text is expected", async () => {
  const { cert, key } = testCertificate();
  for (
    const [options, message] of [
      [
        { cert: "./cert.pem", key },
        'Cannot serve: cert looks like a file path ("./cert.pem"): pass the PEM text it holds, ' +
        'e.g. readFileSync(path, "utf8") from node:fs',
      ],
      [
        { cert, key: "/etc/ssl/private/server.key" },
        'Cannot serve: key looks like a file path ("/etc/ssl/private/server.key"): pass the PEM ' +
        'text it holds, e.g. readFileSync(path, "utf8") from node:fs',
      ],
      [
        { cert: "not a certificate", key },
        'Cannot serve: cert must be PEM text ("-----BEGIN ..."), got "not a certificate"',
      ],
      [
        { cert: key, key: cert },
        "Cannot serve: cert holds a private key: are cert and key swapped?",
      ],
      [
        { cert: new Uint8Array(4), key },
        "Cannot serve: cert must be PEM text (a string), got a Uint8Array",
      ],
    ] as const
  ) {
    await assertServeThrows(options as unknown as ServeOptions, { name: "TypeError", message });
  }
});

test("tls: a key that does not match the certificate names the address and the TLS problem", async () => {
  const { cert } = testCertificate();
  const { key } = generateCertificate();
  let error: unknown;
  try {
    await serve({ hostname: "127.0.0.1", port: 0, cert, key }).shutdown();
  } catch (thrown) {
    error = thrown;
  }
  assert.ok(error instanceof Error);
  assert.match(
    error.message,
    /^Cannot serve on 127\.0\.0\.1:0: the TLS certificate or key was refused \(.+\)$/,
  );
  assert.ok(error.cause instanceof Error);
});

// server.clients

test("server.clients: the open WebSockets, live; not those handshaking; closable by hand", async () => {
  const sockets = new Queue<ServerWebSocket<string>>();
  const closes = new Queue<string>();
  const hookCalled = deferred();
  const decide = deferred();
  let server: Server<string> | undefined;
  await withServer<string>({
    async upgrade(request) {
      if (request.pathname === "/slow") {
        hookCalled.resolve();
        await decide.promise;
      }
      return { data: request.pathname };
    },
    open(ws) {
      assert.ok(server!.clients.has(ws), "a connection is in clients when open runs");
      sockets.push(ws);
    },
    close(ws) {
      assert.equal(server!.clients.has(ws), false, "a connection leaves clients before close");
      closes.push(ws.data);
    },
  }, async (harness) => {
    server = harness.server;
    const clients = harness.server.clients;
    assert.equal(clients.size, 0);
    const a = (await harness.open({ path: "/a" })).client;
    const b = (await harness.open({ path: "/b" })).client;
    const opened = [await sockets.next("open a"), await sockets.next("open b")];
    // Still handshaking: not a client yet.
    const slow = await harness.connect();
    await slow.write(upgradeRequest({ path: "/slow" }));
    await hookCalled.promise;
    assert.deepEqual([...clients], opened, "the same set, updated as connections open");
    assert.equal(clients, harness.server.clients);

    await a.sendClose(1000);
    assert.equal(await closes.next("close a"), "/a");
    assert.deepEqual([...clients].map((ws) => ws.data), ["/b"]);

    decide.resolve();
    assert.equal((await slow.response(HANG_MS)).status, 101);
    assert.equal((await sockets.next("open slow")).data, "/slow");
    assert.deepEqual([...clients].map((ws) => ws.data), ["/b", "/slow"]);

    // Close every connection by hand, while walking the set.
    for (const ws of clients) ws.close(4000, "bye");
    for (const client of [b, slow]) {
      assert.deepEqual(parseClose(await client.nextFrame(HANG_MS)), { code: 4000, reason: "bye" });
      await client.sendClose(4000);
    }
    assert.deepEqual([await closes.next("close"), await closes.next("close")].sort(), [
      "/b",
      "/slow",
    ]);
    assert.equal(clients.size, 0);
  });
});
