/**
 * A command-line WebSocket client: connects to the URL given, sends each line read from stdin
 * as a text message, and prints every message that arrives. Runs unchanged on both runtimes:
 *
 *     deno run -A examples/client.ts ws://127.0.0.1:9001
 *     bun examples/client.ts ws://127.0.0.1:9001
 *
 * Options (before the URL): --protocol NAME (offer a subprotocol; repeatable), --header
 * "Name: value" (repeatable), --deflate (offer permessage-deflate), --ca FILE (a PEM CA for
 * wss:// to a server with a private certificate). End of input (Ctrl-D) closes the connection
 * with 1000; Ctrl-C too.
 */
import { readFileSync } from "node:fs";
import process from "node:process";
import { createInterface } from "node:readline";
import { connect, HandshakeError } from "../mod.ts";

const args = process.argv.slice(2);
const protocols: string[] = [];
const headers: Array<[string, string]> = [];
let deflate = false;
let ca: string | undefined;
let url: string | undefined;
for (let i = 0; i < args.length; i++) {
  const arg = args[i];
  if (arg === "--protocol") protocols.push(args[++i]);
  else if (arg === "--header") {
    const [name, ...value] = (args[++i] ?? "").split(":");
    headers.push([name.trim(), value.join(":").trim()]);
  } else if (arg === "--deflate") deflate = true;
  else if (arg === "--ca") ca = readFileSync(args[++i], "utf8");
  else url = arg;
}
if (url === undefined) {
  console.error("usage: client.ts [--protocol P] [--header 'N: v'] [--deflate] [--ca FILE] URL");
  process.exit(2);
}

const decoder = new TextDecoder();
let ws;
try {
  ws = await connect(url, {
    protocols,
    headers,
    perMessageDeflate: deflate,
    ca,
    message(_ws, data) {
      console.log(
        typeof data === "string" ? `< ${data}` : `< [${data.length} bytes] ${decoder.decode(data)}`,
      );
    },
    close(_ws, code, reason) {
      console.log(`closed: ${code}${reason === "" ? "" : ` ${reason}`}`);
      process.exit(code === 1000 || code === 1005 ? 0 : 1);
    },
  });
} catch (error) {
  if (error instanceof HandshakeError) {
    console.error(`refused: ${error.message}`);
    if (error.body.length !== 0) console.error(decoder.decode(error.body));
  } else {
    console.error(`cannot connect: ${(error as Error).message}`);
  }
  process.exit(1);
}

const open = ws;
console.log(
  `connected to ${open.url}` +
    (open.protocol === "" ? "" : ` (subprotocol ${open.protocol})`) +
    (open.extensions === "" ? "" : ` (${open.extensions})`),
);
const lines = createInterface({ input: process.stdin });
lines.on("line", (line) => {
  if (open.readyState === 1) open.send(line);
});
lines.on("close", () => open.close(1000));
process.on("SIGINT", () => open.close(1000));
