/**
 * The Socket.IO 4 client of bench/session_bench.ts, on Node.js: npm `socket.io-client`, the
 * WebSocket transport only, one Manager (one WebSocket) per connection (`forceNew`), driven by
 * bench/_session_load.mjs.
 *
 *     node bench/_socketio_client.mjs --url http://127.0.0.1:PORT/ --scenario load
 *         [--conns 16] [--window 64] [--size 64] [--seconds 5] [--warmup 1]
 *     node bench/_socketio_client.mjs --url http://127.0.0.1:PORT/ --scenario replay
 *         [--count 1000] [--cycles 5]
 *
 * Load: each message is `socket.emit("m", data, ack)`; the server's acknowledgement calls `ack`.
 * Replay: the client waits for its first room message (bench/_socketio_server.mjs says why);
 * `cut` closes the Engine.IO transport, which both ends take for a lost connection ("transport
 * close", one of the reasons Socket.IO recovers from); automatic reconnection is off so that
 * the client dials again only on `back` (`socket.connect()`, which offers the session id and
 * last offset the client holds). `socket.recovered` says whether the server restored it.
 *
 * @module
 */
import { io } from "socket.io-client";
import { arg, runAckLoad, runReplay } from "./_session_load.mjs";

const OPTIONS = { transports: ["websocket"], forceNew: true };

/**
 * Opens one connection for the load.
 *
 * @param {string} url
 * @param {import("./_session_load.mjs").AckEvents} events
 * @returns {Promise<import("./_session_load.mjs").AckConnection>}
 */
function dial(url, events) {
  const socket = io(url, { ...OPTIONS, reconnection: false });
  const acked = () => events.acked();
  socket.on("disconnect", (reason) => events.ended(`disconnected: ${reason}`));
  return new Promise((resolve, reject) => {
    socket.once(
      "connect",
      () => resolve({ send: (payload) => void socket.emit("m", payload, acked) }),
    );
    socket.once("connect_error", reject);
  });
}

/** @type {import("./_session_load.mjs").ReplayDriver} */
const replay = (() => {
  /** @type {import("socket.io-client").Socket} */
  let socket;
  return {
    connect(events) {
      const url = new URL(arg("url", ""));
      url.searchParams.set("replay", "1");
      socket = io(url.href, { ...OPTIONS, reconnection: false });
      return new Promise((resolve, reject) => {
        let first = true;
        socket.on("p", () => {
          if (first) {
            first = false;
            resolve();
          } else events.delivered();
        });
        socket.on("connect", () => events.resumed(socket.recovered));
        socket.once("connect_error", reject);
      });
    },
    cut() {
      return new Promise((resolve) => {
        socket.once("disconnect", () => resolve());
        socket.io.engine.close();
      });
    },
    back() {
      const at = performance.now();
      socket.connect();
      return at;
    },
  };
})();

const name = "socketio-node";
if (arg("scenario", "load") === "replay") await runReplay(name, replay);
else await runAckLoad(name, dial);
