/**
 * What the clients of bench/session_bench.ts share, in plain JavaScript so that one copy runs
 * on Deno and Bun (bench/_session_client.ts) and on Node.js 20, which does not run TypeScript
 * (bench/_socketio_client.mjs): the command line, the acknowledged-message loop, the replay
 * measurement and their result lines.
 *
 * The load (`runAckLoad`): `--conns` connections each keep `--window` reliable messages of
 * `--size` bytes (a text message of that many ASCII characters) in flight, sending one more for
 * every acknowledgement. Once all are open it prints `open N`, lets `--warmup` seconds pass,
 * prints `window`, then for `--seconds` counts acknowledgements, their latency (send →
 * acknowledgement, each message's own) and its own CPU time (process.cpuUsage: every thread of
 * the process), prints `result {JSON}` and exits. Every client under test acknowledges a
 * connection's messages in the order they were sent (a server handles a connection's messages
 * in order, and the session layer's acknowledgements are cumulative), so each connection keeps
 * its send times in a ring and an acknowledgement matches the oldest.
 *
 * The replay (`runReplay`), driven by the parent through stdin: once connected and subscribed
 * the client prints `ready`; then, `--cycles` times: on `cut` it drops its connection without
 * ending its session and prints `away`; on `back` it dials again and prints
 * `replayed {JSON}` once `--count` missed messages have been delivered to it (the time from the
 * dial to the last of them, and whether the server said it recovered the client's state).
 *
 * @module
 */
import process from "node:process";
import { createInterface } from "node:readline";

/**
 * A command-line option's value (as bench/_server_cli.ts's `option`, which Node.js cannot
 * import).
 *
 * @param {string} name The option, without `--`.
 * @param {string} fallback The value when it is absent.
 * @returns {string} The value.
 */
export function arg(name, fallback) {
  const at = process.argv.indexOf(`--${name}`);
  return at !== -1 && at + 1 < process.argv.length ? process.argv[at + 1] : fallback;
}

/** @param {number} ms */
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** CPU seconds of this process so far (all threads). */
function cpu() {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1e6;
}

/**
 * A quantile of sorted samples (nearest rank).
 *
 * @param {Float64Array} sorted The samples, ascending.
 * @param {number} q The quantile, 0 to 1.
 * @returns {number} The sample at that rank, NaN if there is none.
 */
function quantile(sorted, q) {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
}

/**
 * One open connection, as a client script hands it over.
 *
 * @typedef {object} AckConnection
 * @property {(payload: string) => void} send Sends a reliable message; the client calls its
 *   `acked` event when the server acknowledges it.
 */

/**
 * What a client script's dialler is told about a connection.
 *
 * @typedef {object} AckEvents
 * @property {() => void} acked The oldest unacknowledged message of this connection is
 *   acknowledged.
 * @property {(why: string) => void} ended The connection failed or closed, or a message failed.
 */

/**
 * What a client prints after `result `.
 *
 * @typedef {object} AckResult
 * @property {string} client
 * @property {number} conns
 * @property {number} window
 * @property {number} size
 * @property {number} seconds The measured window, in seconds.
 * @property {number} messages Acknowledgements received in the window.
 * @property {number} msgs_per_s
 * @property {number} p50_ms Median latency, send → acknowledgement.
 * @property {number} p99_ms
 * @property {number} cpu_s CPU seconds of the client process in the window.
 * @property {number} cpu_us_per_msg
 * @property {number} errors
 * @property {string} error The first error's text.
 */

/**
 * Runs the load with `dial` as the command line says, prints the result and exits.
 *
 * @param {string} client The client's name, for the result.
 * @param {(url: string, events: AckEvents) => Promise<AckConnection>} dial Opens one connection.
 * @returns {Promise<void>} Never resolves: the process exits.
 */
export async function runAckLoad(client, dial) {
  const url = arg("url", "");
  const conns = Number(arg("conns", "16"));
  const window = Number(arg("window", "64"));
  const size = Number(arg("size", "64"));
  const seconds = Number(arg("seconds", "5"));
  const warmup = Number(arg("warmup", "1"));
  if (url === "") throw new TypeError("Cannot run the load: --url is missing");
  const payload = "x".repeat(size);
  let acks = 0;
  let errors = 0;
  let error = "";
  let measuring = false;
  let running = true;
  /** @type {Float64Array} */
  let samples = new Float64Array(1 << 16);
  let count = 0;
  /** @param {string} why */
  const fail = (why) => {
    errors++;
    if (error === "") error = why;
  };
  /**
   * @typedef {object} Slot
   * @property {AckConnection | undefined} connection
   * @property {Float64Array} times Send times of the messages in flight, oldest at `head`.
   * @property {number} head
   * @property {number} inflight
   */
  /** @param {Slot} self */
  const send = (self) => {
    self.times[(self.head + self.inflight) % window] = performance.now();
    self.inflight++;
    self.connection.send(payload);
  };
  const open = await Promise.all(Array.from({ length: conns }, async () => {
    /** @type {Slot} */
    const self = { connection: undefined, times: new Float64Array(window), head: 0, inflight: 0 };
    self.connection = await dial(url, {
      acked() {
        if (self.inflight === 0) {
          fail("an acknowledgement of no message");
          return;
        }
        const latency = performance.now() - self.times[self.head];
        self.head = (self.head + 1) % window;
        self.inflight--;
        if (measuring) {
          acks++;
          if (count === samples.length) {
            const more = new Float64Array(samples.length * 2);
            more.set(samples);
            samples = more;
          }
          samples[count++] = latency;
        }
        if (running) send(self);
      },
      ended(why) {
        if (running) fail(why);
      },
    });
    return self;
  }));
  console.log(`open ${open.length}`);
  for (const self of open) {
    for (let i = 0; i < window; i++) send(self);
  }
  await sleep(warmup * 1000);
  console.log("window");
  measuring = true;
  const [t0, c0] = [performance.now(), cpu()];
  await sleep(seconds * 1000);
  const [t1, c1] = [performance.now(), cpu()];
  measuring = false;
  running = false;
  const elapsed = (t1 - t0) / 1000;
  const sorted = samples.subarray(0, count).sort();
  /** @type {AckResult} */
  const result = {
    client,
    conns,
    window,
    size,
    seconds: elapsed,
    messages: acks,
    msgs_per_s: acks / elapsed,
    p50_ms: quantile(sorted, 0.5),
    p99_ms: quantile(sorted, 0.99),
    cpu_s: c1 - c0,
    cpu_us_per_msg: ((c1 - c0) * 1e6) / acks,
    errors,
    error,
  };
  console.log(`result ${JSON.stringify(result)}`);
  process.exit(0);
}

/**
 * How a client script takes part in the replay scenario.
 *
 * @typedef {object} ReplayDriver
 * @property {(events: ReplayEvents) => Promise<void>} connect Connects, subscribes, and
 *   resolves once subscribed.
 * @property {() => Promise<void>} cut Drops the connection without ending the session, and
 *   resolves once it is closed; the client must not dial again until `back`.
 * @property {() => number | Promise<number>} back Lets the client dial again; returns (or
 *   resolves to) the time of the dial (`performance.now()`): at once, or when the client's own
 *   backoff lets it dial.
 */

/**
 * What a replay driver reports.
 *
 * @typedef {object} ReplayEvents
 * @property {() => void} delivered A missed message was delivered to the application.
 * @property {(recovered: boolean) => void} resumed The server said whether it recovered the
 *   state (the session and its subscription): false means the messages are lost.
 * @property {(why: string) => void} failed Something went wrong.
 */

/**
 * What a client prints after `replayed `.
 *
 * @typedef {object} ReplayResult
 * @property {string} client
 * @property {number} cycle 1, 2, …
 * @property {number} ms From the dial to the `count`-th message delivered.
 * @property {number} delivered Messages delivered after the dial.
 * @property {boolean} recovered
 * @property {string} error Empty when the cycle went well.
 */

/**
 * Runs the replay cycles the parent asks for on stdin (`cut`, `back`), prints a `replayed`
 * line after each, and exits when stdin ends or after `--cycles` cycles.
 *
 * @param {string} client The client's name, for the results.
 * @param {ReplayDriver} driver The client under test.
 * @returns {Promise<void>} Never resolves: the process exits.
 */
export async function runReplay(client, driver) {
  const count = Number(arg("count", "1000"));
  const cycles = Number(arg("cycles", "5"));
  const timeout = Number(arg("timeout", "30")) * 1000;
  let delivered = 0;
  let recovered = false;
  let error = "";
  /** @type {(() => void) | undefined} */
  let done;
  await driver.connect({
    delivered() {
      if (++delivered === count) done?.();
    },
    resumed(yes) {
      recovered = yes;
    },
    failed(why) {
      if (error === "") error = why;
      done?.();
    },
  });
  console.log("ready");
  const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
  const next = async () => {
    const line = await lines.next();
    if (line.done) process.exit(0);
    return line.value.trim();
  };
  for (let cycle = 1; cycle <= cycles; cycle++) {
    while (await next() !== "cut");
    await driver.cut();
    console.log("away");
    while (await next() !== "back");
    [delivered, recovered, error] = [0, false, ""];
    const all = new Promise((resolve) => {
      done = () => resolve(undefined);
    });
    const dialed = Promise.resolve(driver.back());
    const late = await Promise.race([all.then(() => false), sleep(timeout).then(() => true)]);
    const ms = performance.now() - await dialed;
    if (late && error === "") error = `${delivered} of ${count} in ${timeout / 1000} s`;
    // A moment for anything past the last one to arrive: a duplicate must be counted.
    await sleep(100);
    if (delivered > count && error === "") error = `${delivered} messages for ${count} missed`;
    /** @type {ReplayResult} */
    const result = { client, cycle, ms, delivered, recovered, error };
    console.log(`replayed ${JSON.stringify(result)}`);
  }
  process.exit(0);
}
