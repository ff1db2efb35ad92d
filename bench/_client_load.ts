/**
 * What the client scripts of bench/client_bench.ts share (bench/_client_web.ts,
 * bench/_client_sluice.ts; bench/_client_ws.mjs repeats it in plain JavaScript for Node.js):
 * the command line, the echo loop and the measurement.
 *
 *     … --url ws://127.0.0.1:PORT/ --conns 16 --window 16 --size 32 --seconds 5 --warmup 1
 *
 * It opens `conns` connections; each sends `window` binary messages of `size` bytes and sends
 * one more for every echo it gets back, so `window` messages stay in flight on each. Once all
 * are open it prints `open N`, lets `warmup` seconds pass, prints `window`, counts the echoes
 * and its own CPU time (process.cpuUsage: user + system of every thread of the process) for
 * `seconds`, prints `result {JSON}` and exits. An echo of the wrong length, more echoes than
 * messages sent on a connection, a message the client dropped, or a connection that fails or
 * closes, is counted in `errors` (the first one's text in `error`).
 *
 * @module
 */
import process from "node:process";
import { option } from "./_server_cli.ts";

/** One open connection, as a client script hands it over. */
export interface LoadConnection {
  /** Sends a binary message; false if the client dropped it instead. */
  send(payload: Uint8Array): boolean;
}

/** What a client script's dialler is told about a connection. */
export interface LoadEvents {
  /** An echo of this many bytes arrived (a text message counts as an error). */
  message(length: number, isBinary: boolean): void;
  /** The connection failed or closed. */
  ended(why: string): void;
}

/**
 * Opens one connection with the client under test.
 *
 * @param url The server.
 * @param events Where its messages and its end go.
 * @returns The open connection.
 */
export type Dial = (url: string, events: LoadEvents) => Promise<LoadConnection>;

/** What a client prints after `result `. */
export interface LoadResult {
  client: string;
  conns: number;
  window: number;
  size: number;
  /** The measured window, in seconds. */
  seconds: number;
  /** Echoes received in the window. */
  messages: number;
  msgs_per_s: number;
  /** Echoed payload bytes received per second. */
  bytes_per_s: number;
  /** CPU seconds of the client process in the window. */
  cpu_s: number;
  cpu_us_per_msg: number;
  errors: number;
  error: string;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** CPU seconds of this process so far (all threads). */
function cpu(): number {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1e6;
}

/**
 * Runs the load with `dial` as the command line says, prints the result and exits.
 *
 * @param client The client's name, for the result.
 * @param dial Opens one connection.
 */
export async function runLoad(client: string, dial: Dial): Promise<void> {
  const url = option("url", "");
  const conns = Number(option("conns", "16"));
  const window = Number(option("window", "16"));
  const size = Number(option("size", "32"));
  const seconds = Number(option("seconds", "5"));
  const warmup = Number(option("warmup", "1"));
  if (url === "") throw new TypeError("Cannot run the load: --url is missing");
  const payload = new Uint8Array(size).fill(0x5a);
  let messages = 0;
  let errors = 0;
  let error = "";
  let measuring = true;
  const fail = (why: string) => {
    errors++;
    if (error === "") error = why;
  };
  const send = (self: { connection?: LoadConnection; sent: number }) => {
    self.sent++;
    if (!self.connection!.send(payload)) fail("the client dropped a message");
  };
  const open = await Promise.all(Array.from({ length: conns }, async () => {
    // Nothing arrives before the first send, which comes after dial() resolved.
    const self: { connection?: LoadConnection; sent: number; received: number } = {
      sent: 0,
      received: 0,
    };
    self.connection = await dial(url, {
      message(length, isBinary) {
        messages++;
        if (length !== size || !isBinary) fail(`an echo of ${length} bytes (binary: ${isBinary})`);
        if (++self.received > self.sent) fail("more echoes than messages sent");
        send(self);
      },
      ended(why) {
        if (measuring) fail(why);
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
  const [t0, m0, c0] = [performance.now(), messages, cpu()];
  await sleep(seconds * 1000);
  const [t1, m1, c1] = [performance.now(), messages, cpu()];
  measuring = false;
  const elapsed = (t1 - t0) / 1000;
  const counted = m1 - m0;
  const result: LoadResult = {
    client,
    conns,
    window,
    size,
    seconds: elapsed,
    messages: counted,
    msgs_per_s: counted / elapsed,
    bytes_per_s: (counted * size) / elapsed,
    cpu_s: c1 - c0,
    cpu_us_per_msg: ((c1 - c0) * 1e6) / counted,
    errors,
    error,
  };
  console.log(`result ${JSON.stringify(result)}`);
  process.exit(0);
}
