import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  type ClientFrame,
  decodeClientFrame,
  decodeServerFrame,
  encodeFrame,
  type ServerFrame,
  SessionProtocolError,
} from "./wire.ts";

const CLIENT_FRAMES: ClientFrame[] = [
  { t: "hello", v: 1 },
  { t: "hello", v: 1, token: "v1.a.b.c.d", ack: 3, topics: { news: { epoch: "E", offset: 4 } } },
  { t: "msg", seq: 1, d: "hi" },
  { t: "msg", d: "volatile" },
  { t: "req", seq: 2, d: '{"q":"x"}' },
  { t: "ack", seq: 9 },
  { t: "sub", topic: "news" },
  { t: "sub", topic: "news", from: { epoch: "E", offset: 0 } },
  { t: "unsub", topic: "news" },
];

const SERVER_FRAMES: ServerFrame[] = [
  {
    t: "welcome",
    v: 1,
    session: "S",
    token: "T",
    resumed: true,
    ack: 2,
    seq: 5,
    lost: 1,
    window: 1000,
  },
  {
    t: "welcome",
    v: 1,
    session: "S",
    token: "T",
    resumed: false,
    reason: "expired",
    ack: 0,
    seq: 0,
    window: 1,
  },
  { t: "msg", seq: 3, d: "hello" },
  { t: "reply", seq: 4, re: 2, d: "answer" },
  { t: "reply", seq: 5, re: 3, error: { message: "no" } },
  { t: "ack", seq: 2 },
  { t: "subscribed", topic: "news", epoch: "E", offset: 4, recovered: true },
  { t: "reset", topic: "news", epoch: "F", offset: 0, reason: "epoch" },
  { t: "pub", topic: "news", epoch: "E", offset: 5, d: "x" },
  { t: "unsubscribed", topic: "admin", reason: "denied" },
  { t: "bye", retry: [100, 200], reason: "deploy" },
];

test("every frame survives its text form", () => {
  for (const frame of CLIENT_FRAMES) {
    const encoded = encodeFrame(frame);
    assert.equal(typeof encoded, "string");
    assert.deepEqual(decodeClientFrame(encoded), frame);
    assert.deepEqual(JSON.parse(encoded as string), frame);
  }
  for (const frame of SERVER_FRAMES) {
    assert.deepEqual(decodeServerFrame(encodeFrame(frame)), frame);
  }
});

test("frames with bytes take the binary form: [u32 header length][header][data]", () => {
  const d = Uint8Array.of(0, 1, 2, 255);
  const encoded = encodeFrame({ t: "msg", seq: 7, d }) as Uint8Array;
  assert.ok(encoded instanceof Uint8Array);
  const length = new DataView(encoded.buffer).getUint32(0);
  const header = new TextDecoder().decode(encoded.subarray(4, 4 + length));
  assert.deepEqual(JSON.parse(header), { t: "msg", seq: 7 });
  assert.deepEqual(encoded.subarray(4 + length), d);
  assert.deepEqual(decodeClientFrame(encoded), { t: "msg", seq: 7, d });
  for (
    const frame of [
      { t: "reply", seq: 1, re: 1, d },
      { t: "pub", topic: "t", epoch: "E", offset: 1, d },
    ] as ServerFrame[]
  ) {
    assert.deepEqual(decodeServerFrame(encodeFrame(frame)), frame);
  }
});

test("the message fast path reads exactly what JSON.parse reads", () => {
  fc.assert(
    fc.property(
      fc.constantFrom("msg", "req"),
      fc.nat({ max: Number.MAX_SAFE_INTEGER }),
      fc.string({ unit: "binary" }),
      (t, seq, d) => {
        const encoded = encodeFrame({ t, seq, d } as ClientFrame) as string;
        assert.deepEqual(JSON.parse(encoded), { t, seq, d });
        assert.deepEqual(decodeClientFrame(encoded), { t, seq, d });
        if (t === "msg") assert.deepEqual(decodeServerFrame(encoded), { t, seq, d });
      },
    ),
  );
  // Forms the fast path leaves to JSON.parse, read the same.
  for (
    const text of [
      '{"t":"msg","seq":1,"d":"a\\"b"}',
      '{"seq":1,"t":"msg","d":"x"}',
      '{"t":"msg","seq":1,"d":"x","extra":true}',
      '{"t":"msg","seq":1,"d":"a"},"x":"b"}',
    ]
  ) {
    let expected: unknown;
    try {
      expected = JSON.parse(text);
    } catch {
      expected = "invalid";
    }
    const got = (() => {
      try {
        return decodeClientFrame(text);
      } catch (error) {
        assert.ok(error instanceof SessionProtocolError);
        return "invalid";
      }
    })();
    assert.deepEqual(got, expected, text);
  }
});

test("malformed seq numbers are refused on the fast path as by the validator", () => {
  for (
    const text of [
      '{"t":"msg","seq":01,"d":"x"}',
      '{"t":"msg","seq":1234567890123456789,"d":"x"}',
      '{"t":"msg","seq":-1,"d":"x"}',
      '{"t":"msg","seq":1.5,"d":"x"}',
      '{"t":"msg","seq":,"d":"x"}',
      '{"t":"msg","seq":1,"d":"\u0001"}',
    ]
  ) {
    assert.throws(() => decodeClientFrame(text), SessionProtocolError, text);
  }
});

test("every validation rule names the member", () => {
  const cases: Array<[string | Uint8Array, string]> = [
    ["nope", "frame is not JSON"],
    ["[1]", "frame is not a JSON object"],
    ['{"t":"x"}', 'unknown client frame type "x"'],
    ['{"t":"hello","v":2}', "hello frame: v must be 1"],
    ['{"t":"hello","v":1,"ack":-1}', "hello frame: ack must be a non-negative integer"],
    ['{"t":"hello","v":1,"topics":[]}', "hello frame: topics must be an object"],
    [
      '{"t":"hello","v":1,"topics":{"a":{"epoch":1,"offset":0}}}',
      "hello frame: topics.a must be a position ({ epoch: string, offset: integer })",
    ],
    ['{"t":"msg","d":5}', "msg frame: d must be a string"],
    ['{"t":"req","d":"x"}', "req frame: seq must be a non-negative integer"],
    ['{"t":"sub"}', "sub frame: topic must be a string"],
    [Uint8Array.of(0, 0), "binary frame shorter than its header"],
    [Uint8Array.of(0, 0, 0, 9, 1), "binary frame header longer than the frame"],
    [Uint8Array.of(0, 0, 0, 1, 0xff), "binary frame header is not UTF-8"],
  ];
  for (const [message, expected] of cases) {
    assert.throws(() => decodeClientFrame(message), {
      name: "SessionProtocolError",
      message: expected,
    });
  }
  const header = new TextEncoder().encode('{"t":"ack","seq":1}');
  const binaryAck = new Uint8Array(4 + header.length);
  new DataView(binaryAck.buffer).setUint32(0, header.length);
  binaryAck.set(header, 4);
  assert.throws(() => decodeClientFrame(binaryAck), { message: "frame ack has no binary form" });
  assert.throws(
    () => decodeServerFrame('{"t":"bye","retry":[5,1]}'),
    { message: "bye frame: retry must be [min, max] milliseconds" },
  );
  assert.throws(
    () =>
      decodeServerFrame(
        '{"t":"welcome","v":1,"session":"S","token":"T","resumed":true,"ack":0,"window":1}',
      ),
    { message: "welcome frame: seq must be a non-negative integer" },
  );
  const error = new SessionProtocolError("é".repeat(200));
  assert.ok(new TextEncoder().encode(error.closeReason).length <= 123);
});
