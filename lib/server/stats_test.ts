import { describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  addTraffic,
  LATENCY_BUCKETS,
  prometheusText,
  ServerCounters,
  type ServerStats,
  zeroTraffic,
} from "./stats.ts";

/** A snapshot with distinct values everywhere, so that a value in the wrong place shows. */
function sampleStats(counters = new ServerCounters()): ServerStats {
  return {
    connections: 3,
    handshaking: 1,
    accepted: 17,
    refused: { "403": 2, "503": 5 },
    httpRequests: 7,
    httpResponses: { "200": 6, "404": 8 },
    httpBytesIn: 7007,
    httpBytesOut: 8008,
    httpConnections: 31,
    httpKeepAlive: 32,
    messagesIn: 101,
    messagesOut: 202,
    bytesIn: 3003,
    bytesOut: 4004,
    compressedIn: 55,
    rawIn: 66,
    rawOut: 880,
    compressedOut: 99,
    compressionRatio: 99 / 880,
    backpressureEvents: 11,
    droppedMessages: 12,
    backpressureCloses: 13,
    queuedBytes: 21,
    readPaused: 22,
    rateLimitedMessages: 14,
    controlFloodCloses: 17,
    topics: 15,
    subscriptions: 16,
    latency: counters.latencySnapshot(),
  };
}

/** The sample lines of a metric family, by the text before the value. */
function samples(text: string): Map<string, string> {
  const map = new Map<string, string>();
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const space = line.lastIndexOf(" ");
    map.set(line.slice(0, space), line.slice(space + 1));
  }
  return map;
}

// The text format 0.0.4: `# HELP name text`, `# TYPE name type`, then `name{labels} value`.
const NAME = "[a-zA-Z_:][a-zA-Z0-9_:]*";
const LABELS =
  `\\{[a-zA-Z_][a-zA-Z0-9_]*="[^"\\\\\\n]*"(,[a-zA-Z_][a-zA-Z0-9_]*="[^"\\\\\\n]*")*\\}`;
const VALUE = "(-?[0-9]+(\\.[0-9]+)?(e[+-]?[0-9]+)?|\\+Inf|-Inf|NaN)";
const HELP = new RegExp(`^# HELP (${NAME}) \\S.*$`);
const TYPE = new RegExp(`^# TYPE (${NAME}) (counter|gauge|histogram)$`);
const SAMPLE = new RegExp(`^(${NAME})(${LABELS})? ${VALUE}$`);

describe("prometheusText", () => {
  it("writes every line in the text format, HELP then TYPE before each family's samples", () => {
    const text = prometheusText(sampleStats());
    assert.ok(text.endsWith("\n"), "the text ends with a line feed");
    const lines = text.slice(0, -1).split("\n");
    const families = new Map<string, string>();
    let family: string | undefined;
    let helped: string | undefined;
    for (const line of lines) {
      const help = HELP.exec(line);
      if (help !== null) {
        helped = help[1];
        continue;
      }
      const type = TYPE.exec(line);
      if (type !== null) {
        assert.equal(type[1], helped, `TYPE right after HELP: ${line}`);
        assert.ok(!families.has(type[1]), `one TYPE per family: ${type[1]}`);
        families.set(type[1], type[2]);
        family = type[1];
        continue;
      }
      const sample = SAMPLE.exec(line);
      assert.ok(sample !== null, `not a valid line: ${JSON.stringify(line)}`);
      const name = sample[1];
      const expected = families.get(family!) === "histogram"
        ? [`${family}_bucket`, `${family}_sum`, `${family}_count`]
        : [family];
      assert.ok(expected.includes(name), `${name} is under the TYPE of ${family}`);
    }
    assert.deepEqual(Object.fromEntries(families), {
      sluice_connections: "gauge",
      sluice_handshaking: "gauge",
      sluice_accepted_total: "counter",
      sluice_refused_total: "counter",
      sluice_http_requests_total: "counter",
      sluice_http_responses_total: "counter",
      sluice_http_bytes_total: "counter",
      sluice_http_connections: "gauge",
      sluice_http_keepalive_connections: "gauge",
      sluice_messages_total: "counter",
      sluice_bytes_total: "counter",
      sluice_compression_raw_bytes_total: "counter",
      sluice_compression_compressed_bytes_total: "counter",
      sluice_backpressure_events_total: "counter",
      sluice_dropped_messages_total: "counter",
      sluice_backpressure_closes_total: "counter",
      sluice_queued_bytes: "gauge",
      sluice_read_paused_connections: "gauge",
      sluice_rate_limited_messages_total: "counter",
      sluice_control_flood_closes_total: "counter",
      sluice_topics: "gauge",
      sluice_subscriptions: "gauge",
      sluice_heartbeat_rtt_ms: "histogram",
    });
  });

  it("puts each number where it belongs, with its labels", () => {
    const values = samples(prometheusText(sampleStats()));
    assert.deepEqual(
      Object.fromEntries([...values].filter(([name]) => !name.includes("heartbeat"))),
      {
        "sluice_connections": "3",
        "sluice_handshaking": "1",
        "sluice_accepted_total": "17",
        'sluice_refused_total{status="403"}': "2",
        'sluice_refused_total{status="503"}': "5",
        "sluice_http_requests_total": "7",
        'sluice_http_responses_total{status="200"}': "6",
        'sluice_http_responses_total{status="404"}': "8",
        'sluice_http_bytes_total{direction="in"}': "7007",
        'sluice_http_bytes_total{direction="out"}': "8008",
        "sluice_http_connections": "31",
        "sluice_http_keepalive_connections": "32",
        'sluice_messages_total{direction="in"}': "101",
        'sluice_messages_total{direction="out"}': "202",
        'sluice_bytes_total{direction="in"}': "3003",
        'sluice_bytes_total{direction="out"}': "4004",
        'sluice_compression_raw_bytes_total{direction="in"}': "66",
        'sluice_compression_raw_bytes_total{direction="out"}': "880",
        'sluice_compression_compressed_bytes_total{direction="in"}': "55",
        'sluice_compression_compressed_bytes_total{direction="out"}': "99",
        "sluice_backpressure_events_total": "11",
        "sluice_dropped_messages_total": "12",
        "sluice_backpressure_closes_total": "13",
        "sluice_queued_bytes": "21",
        "sluice_read_paused_connections": "22",
        "sluice_rate_limited_messages_total": "14",
        "sluice_control_flood_closes_total": "17",
        "sluice_topics": "15",
        "sluice_subscriptions": "16",
      },
    );
  });

  it("writes a family with no refusals yet as HELP and TYPE without samples", () => {
    const stats = sampleStats();
    stats.refused = {};
    const text = prometheusText(stats);
    assert.match(text, /^# TYPE sluice_refused_total counter$/m);
    assert.doesNotMatch(text, /^sluice_refused_total/m);
  });

  it("writes the histogram with cumulative buckets, +Inf, sum and count", () => {
    const counters = new ServerCounters();
    for (const ms of [0.5, 3, 3, 5, 70, 5000]) counters.latency(ms);
    const text = prometheusText(sampleStats(counters));
    const lines = text.split("\n").filter((line) => line.startsWith("sluice_heartbeat_rtt_ms"));
    assert.deepEqual(lines, [
      'sluice_heartbeat_rtt_ms_bucket{le="1"} 1',
      'sluice_heartbeat_rtt_ms_bucket{le="2"} 1',
      'sluice_heartbeat_rtt_ms_bucket{le="5"} 4',
      'sluice_heartbeat_rtt_ms_bucket{le="10"} 4',
      'sluice_heartbeat_rtt_ms_bucket{le="25"} 4',
      'sluice_heartbeat_rtt_ms_bucket{le="50"} 4',
      'sluice_heartbeat_rtt_ms_bucket{le="100"} 5',
      'sluice_heartbeat_rtt_ms_bucket{le="250"} 5',
      'sluice_heartbeat_rtt_ms_bucket{le="500"} 5',
      'sluice_heartbeat_rtt_ms_bucket{le="1000"} 5',
      'sluice_heartbeat_rtt_ms_bucket{le="2500"} 5',
      'sluice_heartbeat_rtt_ms_bucket{le="+Inf"} 6',
      "sluice_heartbeat_rtt_ms_sum 5081.5",
      "sluice_heartbeat_rtt_ms_count 6",
    ]);
    assert.match(text, /^# TYPE sluice_heartbeat_rtt_ms histogram$/m);
  });

  it("writes an empty histogram as zero buckets", () => {
    const text = prometheusText(sampleStats());
    for (const le of [...LATENCY_BUCKETS.map(String), "+Inf"]) {
      const line = `sluice_heartbeat_rtt_ms_bucket{le="${le}"} 0`;
      assert.ok(text.split("\n").includes(line), line);
    }
    assert.match(text, /^sluice_heartbeat_rtt_ms_sum 0$/m);
    assert.match(text, /^sluice_heartbeat_rtt_ms_count 0$/m);
  });

  it("uses the prefix for every metric", () => {
    const text = prometheusText(sampleStats(), "ws");
    for (const line of text.trimEnd().split("\n")) {
      const name = line.startsWith("#") ? line.split(" ")[2] : line.split(/[{ ]/)[0];
      assert.ok(name.startsWith("ws_"), `${name} has the prefix`);
    }
    assert.match(text, /^ws_connections 3$/m);
    assert.match(text, /^ws_heartbeat_rtt_ms_count 0$/m);
  });
});

describe("ServerCounters", () => {
  it("counts refusals by status", () => {
    const counters = new ServerCounters();
    counters.refuse(403);
    counters.refuse(403);
    counters.refuse(503);
    assert.deepEqual(counters.refused, { "403": 2, "503": 1 });
  });

  it("puts a round trip on a bucket's bound in that bucket (le is less or equal)", () => {
    const counters = new ServerCounters();
    counters.latency(5);
    const { buckets } = counters.latencySnapshot();
    assert.deepEqual(
      buckets.map(({ le, count }) => [le, count]),
      [[1, 0], [2, 0], [5, 1], [10, 1], [25, 1], [50, 1], [100, 1], [250, 1], [500, 1], [
        1000,
        1,
      ], [2500, 1]],
    );
  });

  it("counts a round trip above every bound only in count (the +Inf bucket)", () => {
    const counters = new ServerCounters();
    counters.latency(2500.5);
    const snapshot = counters.latencySnapshot();
    assert.equal(snapshot.count, 1);
    assert.equal(snapshot.sum, 2500.5);
    assert.ok(snapshot.buckets.every(({ count }) => count === 0));
  });

  it("keeps buckets cumulative and monotonic, the last at most the count", () => {
    const counters = new ServerCounters();
    const trips = [0, 0.9, 1, 1.1, 7, 7, 49.9, 50, 260, 999, 1001, 3000, 9999];
    for (const ms of trips) counters.latency(ms);
    const snapshot = counters.latencySnapshot();
    assert.equal(snapshot.count, trips.length);
    assert.equal(snapshot.sum, trips.reduce((a, b) => a + b, 0));
    for (const { le, count } of snapshot.buckets) {
      assert.equal(count, trips.filter((ms) => ms <= le).length, `le=${le}`);
    }
  });
});

describe("traffic counts", () => {
  it("starts at zero and adds field by field", () => {
    const total = zeroTraffic();
    assert.deepEqual(total, {
      messagesIn: 0,
      messagesOut: 0,
      bytesIn: 0,
      bytesOut: 0,
      compressedIn: 0,
      rawIn: 0,
      rawOut: 0,
      compressedOut: 0,
    });
    const one = {
      messagesIn: 1,
      messagesOut: 2,
      bytesIn: 3,
      bytesOut: 4,
      compressedIn: 5,
      rawIn: 6,
      rawOut: 7,
      compressedOut: 8,
    };
    addTraffic(total, one);
    addTraffic(total, one);
    assert.deepEqual(total, {
      messagesIn: 2,
      messagesOut: 4,
      bytesIn: 6,
      bytesOut: 8,
      compressedIn: 10,
      rawIn: 12,
      rawOut: 14,
      compressedOut: 16,
    });
    assert.notEqual(zeroTraffic(), zeroTraffic(), "a fresh object each time");
  });
});
