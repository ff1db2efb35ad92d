/**
 * The Socket.IO 4 server of bench/session_bench.ts, on Node.js: npm `socket.io` with
 * connection state recovery on (its defaults: a 2-minute window, middlewares skipped on
 * recovery), the WebSocket transport only (no HTTP long-polling first), no compression (the
 * default).
 *
 *     node bench/_socketio_server.mjs [--port 0] [--hostname 127.0.0.1] [--stdin-lifeline]
 *
 * The load: every event `m` is acknowledged at once (`ack()`), as the sluice servers of the
 * benchmark acknowledge a message once its (empty) handler returned.
 *
 * The replay: a socket that connects afresh with `?replay` in its URL joins the room `t` and is
 * sent one message (`p`, "first") through its own room: Socket.IO recovers only a client that
 * has received at least one broadcast (it looks the client's last offset up in its packet list). A line `publish N SIZE` on stdin
 * waits until no socket is connected (the client's cut has been seen, so its session is
 * persisted), emits N messages of SIZE bytes to the room, and prints `published N`.
 *
 * Prints `ready PORT PID` once listening; exits on SIGTERM, SIGINT, and with `--stdin-lifeline`
 * when stdin ends. Plain JavaScript: Node.js 20 does not run TypeScript.
 *
 * @module
 */
import { createServer } from "node:http";
import process from "node:process";
import { createInterface } from "node:readline";
import { Server } from "socket.io";
import { arg } from "./_session_load.mjs";

/** The room every socket joins. */
const ROOM = "t";

const http = createServer();
const io = new Server(http, {
  transports: ["websocket"],
  serveClient: false,
  connectionStateRecovery: {},
});

io.on("connection", (socket) => {
  socket.on("m", (_data, ack) => {
    if (typeof ack === "function") ack();
  });
  if (socket.handshake.query.replay !== undefined && !socket.recovered) {
    socket.join(ROOM);
    io.to(socket.id).emit("p", "first");
  }
});

http.listen(Number(arg("port", "0")), arg("hostname", "127.0.0.1"), () => {
  const address = http.address();
  console.log(
    `ready ${typeof address === "object" && address !== null ? address.port : 0} ${process.pid}`,
  );
});

/**
 * Waits until no socket is connected.
 *
 * @returns {Promise<void>}
 */
async function detached() {
  while (io.of("/").sockets.size > 0) await new Promise((resolve) => setTimeout(resolve, 1));
}

createInterface({ input: process.stdin }).on("line", async (line) => {
  const [word, n, size] = line.trim().split(" ");
  if (word !== "publish") return;
  await detached();
  const data = "y".repeat(Number(size));
  for (let i = 0; i < Number(n); i++) io.to(ROOM).emit("p", data);
  console.log(`published ${n}`);
});

let stopping = false;
function stop() {
  if (stopping) return;
  stopping = true;
  io.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 500).unref();
}
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
if (process.argv.includes("--stdin-lifeline")) {
  process.stdin.on("end", stop);
  process.stdin.on("close", stop);
}
