/**
 * The opening handshake: parsing and validating a Chrome upgrade request (whole and in three
 * chunks), the accept key, and the 101 response; for the client, parsing that response and the
 * whole client side (request with a fresh key, then the response read and verified).
 *
 * Run with `deno run -A bench/handshake_bench.ts` or `bun bench/handshake_bench.ts`.
 *
 * @module
 */
import { bench, do_not_optimize, run, summary } from "mitata";
import {
  acceptKey,
  acceptResponse,
  isRefusal,
  RequestHeadParser,
  validateUpgradeRequest,
} from "../lib/protocol/handshake.ts";
import { ResponseHeadParser } from "../lib/protocol/http1.ts";
import { ClientHandshake } from "../lib/protocol/upgrade.ts";

const REQUEST = new TextEncoder().encode(
  "GET /chat HTTP/1.1\r\n" +
    "Host: localhost:8080\r\n" +
    "Connection: Upgrade\r\n" +
    "Pragma: no-cache\r\n" +
    "Cache-Control: no-cache\r\n" +
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) " +
    "Chrome/120.0.0.0 Safari/537.36\r\n" +
    "Upgrade: websocket\r\n" +
    "Origin: http://localhost:8080\r\n" +
    "Sec-WebSocket-Version: 13\r\n" +
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" +
    "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n" +
    "\r\n",
);
// Three chunks cut inside lines, as a slow network might deliver them.
const CUT1 = 137;
const CUT2 = 290;
const CHUNKS = [REQUEST.subarray(0, CUT1), REQUEST.subarray(CUT1, CUT2), REQUEST.subarray(CUT2)];
const KEY = "dGhlIHNhbXBsZSBub25jZQ==";

function check(): void {
  const parser = new RequestHeadParser();
  for (const chunk of CHUNKS.slice(0, 2)) if (parser.push(chunk) !== 0) throw new Error("early");
  if (parser.push(CHUNKS[2]) !== 1) throw new Error("the request did not parse");
  const info = validateUpgradeRequest(parser.head!);
  if (isRefusal(info)) throw new Error(info.message);
  if (acceptKey(info.key) !== "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=") throw new Error("accept key");
}
check();
const RESPONSE = acceptResponse(KEY, {
  protocol: "chat",
  extensions: "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
});
{
  const client = new ClientHandshake("ws://localhost:8080/chat", { protocols: ["chat"] });
  if (client.receive(acceptResponse(client.key, { protocol: "chat" })) !== 1) {
    throw new Error(`the client refused: ${client.error?.message}`);
  }
}
console.log(`request: ${REQUEST.length} bytes, ${CHUNKS.map((c) => c.length).join(" + ")}`);

summary(() => {
  bench("parse + validate, 1 chunk", () => {
    const parser = new RequestHeadParser();
    parser.push(REQUEST);
    do_not_optimize(validateUpgradeRequest(parser.head!));
  });
  bench("parse + validate, 3 chunks", () => {
    const parser = new RequestHeadParser();
    parser.push(CHUNKS[0]);
    parser.push(CHUNKS[1]);
    parser.push(CHUNKS[2]);
    do_not_optimize(validateUpgradeRequest(parser.head!));
  });
});
bench("acceptKey", () => do_not_optimize(acceptKey(KEY)));
bench("acceptResponse", () => do_not_optimize(acceptResponse(KEY)));
bench("acceptResponse with protocol + extensions", () =>
  do_not_optimize(
    acceptResponse(KEY, { protocol: "chat", extensions: "permessage-deflate" }),
  ));
bench("parse a 101 response head, 1 chunk", () => {
  const parser = new ResponseHeadParser();
  parser.push(RESPONSE);
  do_not_optimize(parser.head);
});
bench("client: request + verify a 101 (with permessage-deflate)", () => {
  const client = new ClientHandshake("ws://localhost:8080/chat", {
    protocols: ["chat"],
    perMessageDeflate: true,
  });
  client.receive(
    acceptResponse(client.key, {
      protocol: "chat",
      extensions: "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
    }),
  );
  do_not_optimize(client.result);
});

await run();
