/**
 * The server bench/fanout_overload.ts starts as a child process, so that its memory
 * (/proc/PID/status) is its own: one publisher fans binary messages out to every subscriber,
 * under a backpressure limit, and counts what each `ws.send` returned.
 *
 *     deno run -A bench/fanout_overload_server.ts --port 9010 [--policy drop|close]
 *         [--max-backpressure BYTES] [--broadcast publish|loop] [--hostname 127.0.0.1]
 *         [--stdin-lifeline]
 *     bun bench/fanout_overload_server.ts --port 9010 ...
 *
 * Defaults: port 0 (any free port), policy `drop`, max-backpressure 65536, broadcast `publish`,
 * hostname 127.0.0.1.
 *
 * Broadcast `publish`: every subscriber subscribes to one topic and the publisher's messages go
 * out with `server.publish`, framed once; the send counts then come from its return value and
 * from each subscriber's `droppedMessages` (a publish does not say which were queued behind
 * backpressure: that count stays 0). Broadcast `loop`: `ws.send` on each subscriber, each
 * status counted.
 *
 * A connection to path `/pub` is the publisher; every other connection is a subscriber (one
 * whose URL has `?slow` is counted apart, so the benchmark can tell whose messages were
 * dropped; it is served like any other). From
 * the publisher, a binary message is sent to every subscriber; a text message is a command:
 * `stats` is answered with a JSON text of {@linkcode Stats}, `gc` runs a full garbage
 * collection (`Bun.gc`, or `gc()` in Deno with `--v8-flags=--expose-gc`) and is answered `gc`.
 *
 * Prints `ready PORT PID` once listening, and `stats {…}` when it stops: on SIGTERM or
 * SIGINT, and with `--stdin-lifeline` also when stdin ends (so it never outlives a parent that
 * spawned it with a pipe).
 *
 * @module
 */
import process from "node:process";
import { option, stopOnSignal } from "./_server_cli.ts";
import { SendStatus, serve, type ServerWebSocket } from "../mod.ts";
import { collect, emptyStats, memoryNow, type Stats } from "./_overload_stats.ts";

const policy = option("policy", "drop");
if (policy !== "drop" && policy !== "close") {
  throw new RangeError(`--policy must be drop or close, not ${policy}`);
}
const maxBackpressure = Number(option("max-backpressure", "65536"));
const port = Number(option("port", "0"));
const broadcast = option("broadcast", "publish");
if (broadcast !== "publish" && broadcast !== "loop") {
  throw new RangeError(`--broadcast must be publish or loop, not ${broadcast}`);
}

interface Peer {
  publisher: boolean;
  slow: boolean;
}

const subscribers = new Set<ServerWebSocket<Peer>>();
const stats = emptyStats();

function snapshot(): Stats {
  let queued = 0;
  let queuedSlow = 0;
  let maxQueued = 0;
  if (broadcast === "publish") {
    // Drops are counted by each connection; a publish only says how many it reached.
    stats.dropped = stats.slow.dropped = 0;
    for (const ws of subscribers) {
      stats.dropped += ws.droppedMessages;
      if (ws.data.slow) stats.slow.dropped += ws.droppedMessages;
    }
  }
  for (const ws of subscribers) {
    const amount = ws.bufferedAmount;
    queued += amount;
    if (ws.data.slow) queuedSlow += amount;
    if (amount > maxQueued) maxQueued = amount;
  }
  stats.subscribers = subscribers.size;
  stats.queued = queued;
  stats.queuedSlow = queuedSlow;
  stats.maxQueued = maxQueued;
  stats.peakQueued = Math.max(stats.peakQueued, maxQueued);
  stats.peakQueuedTotal = Math.max(stats.peakQueuedTotal, queued);
  stats.memory = memoryNow();
  return stats;
}

const server = serve<Peer>({
  hostname: option("hostname", "127.0.0.1"),
  port,
  maxBackpressure,
  backpressurePolicy: policy,
  // The benchmark measures backpressure, not liveness: a subscriber that stops reading answers
  // no ping (so a heartbeat would drop it after 40 s) and sends no data (idle timeout).
  heartbeat: false,
  idleTimeout: 0,
  upgrade(request) {
    const publisher = request.pathname === "/pub";
    return { data: { publisher, slow: !publisher && request.searchParams.has("slow") } };
  },
  open(ws) {
    if (ws.data.publisher) return;
    subscribers.add(ws);
    ws.subscribe("all");
  },
  message(ws, data, isBinary) {
    if (!ws.data.publisher) return;
    if (!isBinary) {
      if (data === "stats") ws.send(JSON.stringify(snapshot()));
      else if (data === "gc") {
        collect();
        collect();
        ws.send("gc");
      }
      return;
    }
    stats.published++;
    if (broadcast === "publish") {
      stats.sent += server.publish("all", data);
      return;
    }
    // A loop over the subscribers calling ws.send(data) on each: the message is framed once
    // per subscriber.
    for (const subscriber of subscribers) {
      const counted = subscriber.data.slow ? stats.slow : undefined;
      // Policy "close": a subscriber over the limit is closing until its close completes.
      if (subscriber.readyState !== 1) {
        stats.skipped++;
        if (counted) counted.skipped++;
        continue;
      }
      const status = subscriber.send(data);
      if (status === SendStatus.Sent) {
        stats.sent++;
        if (counted) counted.sent++;
      } else if (status === SendStatus.Backpressure) {
        stats.backpressure++;
        if (counted) counted.backpressure++;
      } else {
        stats.dropped++;
        if (counted) counted.dropped++;
      }
    }
  },
  drain() {
    stats.drains++;
  },
  close(ws, code) {
    if (ws.data.publisher) return;
    subscribers.delete(ws);
    stats.closes[code] = (stats.closes[code] ?? 0) + 1;
  },
});

stopOnSignal(() => {
  console.log(`stats ${JSON.stringify(snapshot())}`);
  // Subscribers that stopped reading never answer our Close frame: do not wait long.
  return server.shutdown({ timeout: 500 });
});

console.log(`ready ${server.port} ${process.pid}`);
