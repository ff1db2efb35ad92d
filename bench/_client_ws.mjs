/**
 * A client of bench/client_bench.ts: `node-ws`, the npm package `ws`'s WebSocket client on
 * Node.js, without permessage-deflate (the other clients do not offer it) and without its
 * optional native add-ons (bufferutil, utf-8-validate are not installed: its JavaScript
 * fallbacks run, as for most of its users). The load is bench/_client_load.ts's, repeated here
 * in plain JavaScript (Node.js 20 does not run TypeScript): keep the two in step.
 *
 *     node bench/_client_ws.mjs --url ws://127.0.0.1:PORT/ [--conns 16] [--window 16]
 *         [--size 32] [--seconds 5] [--warmup 1]
 *
 * @module
 */
import { Buffer } from "node:buffer";
import process from "node:process";
import { parseArgs } from "node:util";
import { WebSocket } from "ws";

const { values } = parseArgs({
  options: {
    url: { type: "string", default: "" },
    conns: { type: "string", default: "16" },
    window: { type: "string", default: "16" },
    size: { type: "string", default: "32" },
    seconds: { type: "string", default: "5" },
    warmup: { type: "string", default: "1" },
  },
});
const url = values.url;
const conns = Number(values.conns);
const window = Number(values.window);
const size = Number(values.size);
const seconds = Number(values.seconds);
const warmup = Number(values.warmup);
if (url === "") throw new TypeError("Cannot run the load: --url is missing");

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const cpu = () => {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1e6;
};

const payload = Buffer.alloc(size, 0x5a);
let messages = 0;
let errors = 0;
let error = "";
let measuring = true;
const fail = (why) => {
  errors++;
  if (error === "") error = why;
};

/**
 * @param {WebSocket} ws
 * @param {{ sent: number }} counts
 */
function send(ws, counts) {
  counts.sent++;
  ws.send(payload);
}

/** @returns {Promise<{ ws: WebSocket, counts: { sent: number, received: number } }>} */
function dial() {
  const ws = new WebSocket(url, { perMessageDeflate: false });
  const counts = { sent: 0, received: 0 };
  ws.binaryType = "nodebuffer";
  ws.on("message", (data, isBinary) => {
    messages++;
    if (data.length !== size || !isBinary) {
      fail(`an echo of ${data.length} bytes (binary: ${isBinary})`);
    }
    if (++counts.received > counts.sent) fail("more echoes than messages sent");
    send(ws, counts);
  });
  ws.on("close", (code, reason) => {
    if (measuring) fail(`closed with ${code} ${reason}`);
  });
  return new Promise((resolve, reject) => {
    ws.once("open", () => resolve({ ws, counts }));
    ws.once("error", reject);
  });
}

const open = await Promise.all(Array.from({ length: conns }, dial));
console.log(`open ${open.length}`);
for (const { ws, counts } of open) {
  for (let i = 0; i < window; i++) send(ws, counts);
}
await sleep(warmup * 1000);
console.log("window");
const [t0, m0, c0] = [performance.now(), messages, cpu()];
await sleep(seconds * 1000);
const [t1, m1, c1] = [performance.now(), messages, cpu()];
measuring = false;
const elapsed = (t1 - t0) / 1000;
const counted = m1 - m0;
console.log(`result ${
  JSON.stringify({
    client: "node-ws",
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
  })
}`);
process.exit(0);
