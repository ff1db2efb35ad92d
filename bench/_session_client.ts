/**
 * The sluice client of bench/session_bench.ts, on Deno or Bun, driven by
 * bench/_session_load.mjs.
 *
 *     deno run -A bench/_session_client.ts --mode raw|facade|session --url ws://127.0.0.1:PORT/
 *         [--scenario load|replay] [--conns 16] [--window 64] [--size 64] [--seconds 5]
 *         [--warmup 1] [--count 1000] [--cycles 5] [--kind topic|messages]
 *     bun bench/_session_client.ts ...
 *
 * `--mode raw` (load only): `connect` from mod.ts; each message is a text message and the
 * server's `k` acknowledges the oldest one in flight (bench/_session_server.ts). `--mode facade`
 * (load only): the same through sluice's WebSocket facade, against the same server: what the
 * facade costs (a session client given the facade as its factory pays it too).
 *
 * `--mode session`: load: a `connectSession` client per connection (sluice's `connect` under
 * it, no compression, its defaults otherwise); each message is `client.send(data)`,
 * acknowledged when its promise resolves. Replay: a `SessionClient` over the facade. Replay: `--kind topic` subscribes
 * to the topic `t` and counts publications, `--kind messages` counts session messages; `cut`
 * closes the current socket (code 4000, which the client retries after) and holds the client's
 * next dial until `back` (a {@linkcode HeldSocket}), so the server's messages all go out while
 * it is away and the replay is timed from the real dial, whatever the client's backoff drew.
 *
 * @module
 */
import { connect, connectSession, WebSocket } from "../mod.ts";
import { SessionClient } from "../lib/client/session.ts";
import {
  type AckConnection,
  type AckEvents,
  arg,
  type ReplayDriver,
  runAckLoad,
  runReplay,
} from "./_session_load.mjs";

/** The topic of the replay scenario (bench/_session_server.ts publishes to it). */
const TOPIC = "t";

const runtime = "Bun" in globalThis ? "bun" : "deno";
const mode = arg("mode", "raw");

/** Opens one raw connection: the application numbers nothing; the server answers each (or, in
 * `batched` mode, says how many it handled since its last answer). */
async function dialRaw(url: string, events: AckEvents): Promise<AckConnection> {
  const batched = mode === "batched";
  const ws = await connect(url, {
    message(_ws, data) {
      for (let n = batched ? Number(data) : 1; n > 0; n--) events.acked();
    },
    close(_ws, code, reason) {
      events.ended(`closed with ${code} ${reason}`);
    },
    error(error) {
      events.ended(String(error));
    },
  });
  return { send: (payload) => void ws.send(payload) };
}

/** What the factory hands the session client: sluice's WebSocket facade, without compression. */
function socket(url: string, protocols: string[]): WebSocket {
  return new WebSocket(url, protocols, { perMessageDeflate: false });
}

/** Opens one raw connection through the facade the session client runs on. */
function dialFacade(url: string, events: AckEvents): Promise<AckConnection> {
  const ws = socket(url, []);
  ws.onmessage = () => events.acked();
  ws.onclose = ({ code, reason }) => events.ended(`closed with ${code} ${reason}`);
  return new Promise((resolve, reject) => {
    ws.onopen = () => resolve({ send: (payload) => ws.send(payload) });
    ws.onerror = () => reject(new Error("the connection failed"));
  });
}

/** Opens one session for the load; each message is `await client.send(data)`. */
async function dialSession(url: string, events: AckEvents): Promise<AckConnection> {
  const client = connectSession(url);
  const acked = () => events.acked();
  const failed = (error: unknown) => events.ended(`a send failed: ${String(error)}`);
  await new Promise<void>((resolve, reject) => {
    client.on("open", () => resolve());
    client.on("closed", ({ code, reason }) => {
      reject(new Error(`closed with ${code} ${reason}`));
      events.ended(`closed with ${code} ${reason}`);
    });
  });
  client.on("reconnecting", ({ code, reason }) => events.ended(`lost: ${code} ${reason}`));
  return { send: (payload) => void client.send(payload).then(acked, failed) };
}

/**
 * The socket the session client gets while the harness holds its next dial (between `cut` and
 * `back`): the facade's socket is made only when the hold is released, and its events are
 * passed on: the surface of the session client's `WebSocketLike` (lib/client/session.ts), and
 * `addEventListener` for the harness.
 */
class HeldSocket extends EventTarget {
  #real: WebSocket | undefined;
  #closed = false;
  #binaryType: BinaryType = "blob";
  onopen: ((event: Event) => void) | null = null;
  onmessage: ((event: MessageEvent) => void) | null = null;
  onerror: ((event: Event) => void) | null = null;
  onclose: ((event: CloseEvent) => void) | null = null;
  readonly url: string;
  readonly #protocols: string[];

  constructor(url: string, protocols: string[]) {
    super();
    this.url = url;
    this.#protocols = protocols;
  }

  get readyState(): number {
    return this.#real?.readyState ?? (this.#closed ? 3 : 0);
  }
  get protocol(): string {
    return this.#real?.protocol ?? "";
  }
  get binaryType(): BinaryType {
    return this.#binaryType;
  }
  set binaryType(type: BinaryType) {
    this.#binaryType = type;
    if (this.#real !== undefined) this.#real.binaryType = type;
  }

  /** Dials now (nothing, if the session client closed it meanwhile). */
  release(): void {
    if (this.#closed) return;
    const real = this.#real = socket(this.url, this.#protocols);
    real.binaryType = this.#binaryType;
    real.onopen = (e) => this.#pass(new Event(e.type));
    real.onmessage = (e) => this.#pass(new MessageEvent(e.type, { data: e.data }));
    real.onerror = (e) => this.#pass(new Event(e.type));
    real.onclose = (e) =>
      this.#pass(new CloseEvent(e.type, { code: e.code, reason: e.reason, wasClean: e.wasClean }));
  }

  send(data: string | Uint8Array): void {
    if (this.#real === undefined) throw new DOMException("not open", "InvalidStateError");
    this.#real.send(data);
  }

  close(code?: number, reason?: string): void {
    if (this.#real !== undefined) return this.#real.close(code, reason);
    if (this.#closed) return;
    this.#closed = true;
    queueMicrotask(() => this.#pass(new CloseEvent("close", { code: 1006, wasClean: false })));
  }

  #pass(event: Event): void {
    this.dispatchEvent(event);
    // deno-lint-ignore no-explicit-any
    (this as any)[`on${event.type}`]?.call(this, event);
  }
}

/** The replay scenario's session client: its dials are held between `cut` and `back`. */
function sessionReplay(kind: string): ReplayDriver {
  let client: SessionClient;
  let current: WebSocket | HeldSocket | undefined;
  let held: HeldSocket | undefined;
  let holding = false;
  /** Told the time of the next dial, when `back` came before the client dialled. */
  let dialled: ((at: number) => void) | undefined;
  const factory = (url: string, protocols: string[]) => {
    if (holding) return current = held = new HeldSocket(url, protocols);
    dialled?.(performance.now());
    dialled = undefined;
    return current = socket(url, protocols);
  };
  return {
    connect(events) {
      client = new SessionClient(arg("url", ""), { webSocket: factory });
      if (kind === "topic") client.on("publication", () => events.delivered());
      else client.on("message", () => events.delivered());
      client.on("open", ({ resumed }) => {
        if (kind !== "topic") events.resumed(resumed);
      });
      client.on("topic", ({ recovered }) => events.resumed(recovered));
      client.on("error", ({ error }) => events.failed(String(error)));
      return new Promise((resolve) => {
        if (kind === "topic") {
          const off = client.on("topic", () => {
            off();
            resolve();
          });
          client.subscribe(TOPIC);
        } else {
          const off = client.on("open", () => {
            off();
            resolve();
          });
        }
      });
    },
    cut() {
      holding = true;
      const gone = current!;
      return new Promise((resolve) => {
        gone.addEventListener("close", () => resolve(), { once: true });
        gone.close(4000, "cut by the benchmark");
      });
    },
    back() {
      holding = false;
      if (held === undefined) return new Promise((resolve) => dialled = resolve);
      const at = performance.now();
      held.release();
      held = undefined;
      return at;
    },
  };
}

const name = `${mode}-${runtime}`;
if (arg("scenario", "load") === "replay") {
  if (mode !== "session") throw new RangeError("--scenario replay takes --mode session");
  await runReplay(name, sessionReplay(arg("kind", "topic")));
} else {
  const dial = { raw: dialRaw, batched: dialRaw, facade: dialFacade, session: dialSession }[mode];
  if (dial === undefined) {
    throw new RangeError(`--mode: ${mode}? (raw, batched, facade, session)`);
  }
  await runAckLoad(name, dial);
}
