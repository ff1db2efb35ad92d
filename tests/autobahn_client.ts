/**
 * The client agent for Autobahn|Testsuite's fuzzing server: it asks the suite for the number of
 * cases, runs each case in turn (echoing every message back unchanged, same type), then asks the
 * suite to write its report. Runs unchanged on both runtimes:
 *
 *     deno run -A tests/autobahn_client.ts [--deflate] [--client sluice|whatwg|builtin] BASE_URL AGENT
 *     bun tests/autobahn_client.ts [--deflate] [--client sluice|whatwg|builtin] BASE_URL AGENT
 *
 * BASE_URL is the suite's `ws://host:port` and AGENT the name its report files the results
 * under; a runner passes them as the last two arguments. `--client sluice` (the default) tests
 * sluice's `connect`; `--client whatwg` sluice's WHATWG `WebSocket` facade; `--client builtin`
 * the runtime's own `WebSocket`, to check this agent and to compare. `--deflate` offers permessage-deflate (RFC 7692). A case whose connection fails is
 * logged and the run goes on: the suite judges it. Exits 0 once the report is written.
 *
 * @module
 */
import process from "node:process";
import { type ClientWebSocket, connect, WebSocket as SluiceWebSocket } from "../mod.ts";

/** Echoes or records what one connection receives; `send` answers on that connection. */
type OnMessage = (data: string | Uint8Array, send: (data: string | Uint8Array) => void) => void;

/** Opens `url`, hands every message to `onMessage`; resolves, once closed, with how it ended. */
type Dial = (url: string, onMessage: OnMessage) => Promise<string>;

/** Autobahn 9.* sends messages of 16 MiB; leave room above them. */
const MAX_PAYLOAD = 64 * 1024 * 1024;
/** A case the suite never closes is terminated after this long, so the run can go on. */
const CASE_TIMEOUT_MS = 120_000;

function usage(message: string): never {
  console.error(
    `${message}\nusage: autobahn_client.ts [--deflate] [--client sluice|whatwg|builtin] BASE_URL AGENT`,
  );
  process.exit(2);
}

const args = process.argv.slice(2);
if (args.length < 2) usage("missing the suite's base URL and the agent name");
const [base, agent] = args.slice(-2);
const flags = args.slice(0, -2);
let deflate = false;
let client = "sluice";
for (let i = 0; i < flags.length; i++) {
  if (flags[i] === "--deflate") deflate = true;
  else if (flags[i] === "--client" && i + 1 < flags.length) client = flags[++i];
  else usage(`unknown argument: ${flags[i]}`);
}
if (client !== "sluice" && client !== "whatwg" && client !== "builtin") {
  usage(`--client must be sluice, whatwg or builtin`);
}

/** Calls `onTimeout` after `ms` unless cancelled first. */
function watchdog(ms: number, onTimeout: () => void): { cancel(): void } {
  const timer = setTimeout(onTimeout, ms);
  return { cancel: () => clearTimeout(timer) };
}

/** sluice's client: `connect` from mod.ts, its handlers in the options. */
function sluiceDial(): Dial {
  return async (url, onMessage) => {
    let ws: ClientWebSocket;
    try {
      ws = await connect(url, {
        perMessageDeflate: deflate,
        maxPayloadLength: MAX_PAYLOAD,
        // Echoes of 16 MiB may queue behind one another: none may be dropped.
        maxBackpressure: MAX_PAYLOAD,
        message(ws, data) {
          onMessage(data, (reply) => ws.send(reply));
        },
      });
    } catch (error) {
      return `connect failed: ${describe(error)}`;
    }
    const guard = watchdog(CASE_TIMEOUT_MS, () => ws.terminate());
    const { code, reason } = await ws.closed;
    guard.cancel();
    return `closed ${code} ${JSON.stringify(reason)}`;
  };
}

/** A WebSocket with the browser's API: the runtime's own (Bun's takes `perMessageDeflate` in an
 * options object; Deno's cannot offer it) or sluice's facade. */
function eventDial(): Dial {
  let open: (url: string) => WebSocket;
  if (client === "whatwg") {
    open = (url) =>
      new SluiceWebSocket(url, [], {
        perMessageDeflate: deflate,
        maxPayloadLength: MAX_PAYLOAD,
      }) as unknown as WebSocket;
  } else {
    const isBun = process.versions.bun !== undefined;
    if (deflate && !isBun) {
      usage("--deflate: this runtime's WebSocket cannot offer permessage-deflate");
    }
    const Builtin = globalThis.WebSocket as unknown as new (
      url: string,
      options?: { perMessageDeflate: boolean },
    ) => WebSocket;
    open = (url) => isBun ? new Builtin(url, { perMessageDeflate: deflate }) : new Builtin(url);
  }
  return (url, onMessage) =>
    new Promise((resolve) => {
      const ws = open(url);
      ws.binaryType = "arraybuffer";
      const guard = watchdog(CASE_TIMEOUT_MS, () => ws.close());
      let failed = "";
      ws.onerror = (event) => {
        failed = ` after an error (${(event as ErrorEvent).message ?? event.type})`;
      };
      ws.onmessage = (event) => {
        const data = typeof event.data === "string" ? event.data : new Uint8Array(event.data);
        onMessage(data, (reply) => ws.send(reply));
      };
      ws.onclose = (event) => {
        guard.cancel();
        resolve(`closed ${event.code} ${JSON.stringify(event.reason)}${failed}`);
      };
    });
}

function describe(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const code = (error as { code?: unknown }).code;
  return `${error.name}${code === undefined ? "" : ` ${code}`}: ${error.message}`;
}

const dial = client === "sluice" ? sluiceDial() : eventDial();

let count = "";
const counted = await dial(`${base}/getCaseCount`, (data) => {
  if (typeof data === "string") count = data;
});
const cases = Number(count);
if (!Number.isInteger(cases) || cases < 0) {
  console.error(`getCaseCount gave ${JSON.stringify(count)} (${counted})`);
  process.exit(1);
}
console.log(`${cases} cases, client ${client}${deflate ? " with permessage-deflate" : ""}`);

const echo: OnMessage = (data, send) => send(data);
for (let i = 1; i <= cases; i++) {
  const url = `${base}/runCase?case=${i}&agent=${encodeURIComponent(agent)}`;
  const started = Date.now();
  const outcome = await dial(url, echo);
  console.log(`case ${i}/${cases}: ${outcome} (${Date.now() - started} ms)`);
}

const updated = await dial(`${base}/updateReports?agent=${encodeURIComponent(agent)}`, () => {});
console.log(`updateReports: ${updated}`);
process.exit(0);
