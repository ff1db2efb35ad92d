/**
 * The sluice server of bench/session_bench.ts, on Deno or Bun.
 *
 *     deno run -A bench/_session_server.ts --mode raw|batched|session [--port 0]
 *         [--hostname 127.0.0.1]
 *         [--stdin-lifeline]
 *     bun bench/_session_server.ts --mode raw|batched|session ...
 *
 * `--mode raw`: `serve`, the same traffic without the session layer: the application
 * acknowledges each message by hand with a one-byte text message (`k`) once its handler ran.
 * `--mode batched`: the same, acknowledging as the session layer does, cumulatively: one text
 * message per connection and turn, the count of messages handled since the last one.
 *
 * `--mode session`: `serveSessions`, whose handler does nothing: the session layer acknowledges
 * each reliable message once the handler returned. A line `publish N SIZE topic|messages` on
 * stdin waits until the last session that opened has no connection (the client's cut has been
 * seen), sends it N messages of SIZE bytes while it is away (`topic`: published to the topic
 * `t`, which it subscribed to; `messages`: `session.send`), and prints `published N`.
 *
 * Both modes: a line `stats` on stdin prints `stats {"messagesIn":…,"messagesOut":…}`, the data
 * messages the server received and sent so far (`server.stats()`), and no heartbeat, no idle
 * timeout, no compression, as in bench/echo_server.ts (a loaded client answers pings late and
 * would be dropped).
 *
 * Prints `ready PORT PID` once listening. Stops on SIGTERM or SIGINT, and with
 * `--stdin-lifeline` when stdin ends (bench/_server_cli.ts).
 *
 * @module
 */
import process from "node:process";
import { createInterface } from "node:readline";
import { option, stopOnSignal } from "./_server_cli.ts";
import { serve, serveSessions, type Session, type TrafficCounts } from "../mod.ts";

/** The topic of the replay scenario. */
const TOPIC = "t";

const LIMITS = {
  hostname: option("hostname", "127.0.0.1"),
  port: Number(option("port", "0")),
  perMessageDeflate: false,
  heartbeat: false,
  idleTimeout: 0,
} as const;

const mode = option("mode", "raw");
let stop: () => Promise<void>;
let port: number;
let stats: () => TrafficCounts;
/** What a line on stdin asks for, besides `stats`. */
let command = (_words: string[]): void | Promise<void> => {};
if (mode === "raw" || mode === "batched") {
  const server = serve<{ handled: number }>({
    ...LIMITS,
    upgrade: () => ({ data: { handled: 0 } }),
    message: mode === "raw" ? (ws) => void ws.send("k") : (ws) => {
      if (ws.data.handled++ === 0) {
        queueMicrotask(() => {
          ws.send(String(ws.data.handled));
          ws.data.handled = 0;
        });
      }
    },
  });
  [port, stop, stats] = [
    server.port,
    () => server.shutdown({ timeout: 500 }),
    () => server.stats(),
  ];
} else if (mode === "session") {
  /** The session that opened last: the replay scenario's only client. */
  let last: Session | undefined;
  const server = serveSessions({
    ...LIMITS,
    secret: "the session benchmark's own key",
    open(session) {
      last = session;
    },
    message() {},
  });
  [port, stop, stats] = [
    server.port,
    () => server.shutdown({ timeout: 500, retry: [0, 0] }),
    () => server.stats(),
  ];
  command = async ([word, n, size, kind]) => {
    if (word !== "publish") return;
    // The client's cut must have been seen: the messages are sent to a detached session.
    while (last?.connected !== false) await new Promise((resolve) => setTimeout(resolve, 1));
    const data = "y".repeat(Number(size));
    for (let i = 0; i < Number(n); i++) {
      if (kind === "topic") server.publish(TOPIC, data);
      else last.send(data);
    }
    console.log(`published ${n}`);
  };
} else {
  throw new RangeError(`--mode: ${mode}? (raw, batched, session)`);
}
createInterface({ input: process.stdin }).on("line", (line) => {
  const words = line.trim().split(" ");
  if (words[0] !== "stats") return command(words);
  const { messagesIn, messagesOut } = stats();
  console.log(`stats ${JSON.stringify({ messagesIn, messagesOut })}`);
});
stopOnSignal(() => stop());
console.log(`ready ${port} ${process.pid}`);
