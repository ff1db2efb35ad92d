/**
 * End to end: examples/resilient_chat.ts. In process: two clients chat, one is cut off
 * mid-conversation while the other keeps talking and it keeps typing; after its resume both
 * have seen every message once, in the same order, and every line typed while away was
 * delivered. Then the server restarts on the same port with the same secret: the clients say
 * their history was reset and why, and chatting carries on. As child processes of the runtime
 * running the test: the server and the terminal client, a drop by signal, a restart.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { type ChildProcessWithoutNullStreams, spawn } from "node:child_process";
import process from "node:process";
import { fileURLToPath } from "node:url";
import {
  ChatClient,
  type ChatClientOptions,
  type ChatData,
  startServer,
} from "../examples/resilient_chat.ts";
import type { SessionServer } from "../mod.ts";
import { waitFor } from "./_harness.ts";

const EXAMPLE = fileURLToPath(new URL("../examples/resilient_chat.ts", import.meta.url));
const SECRET = "a test secret of more than 16 bytes";
const CHAT = /^#(\d+) (\w+): (.*)$/;

/** What a client printed, line by line. */
class Output {
  readonly lines: string[] = [];
  readonly print = (line: string): void => void this.lines.push(line);

  /** Whether a line matches. */
  has(pattern: RegExp): boolean {
    return this.lines.some((line) => pattern.test(line));
  }

  /** Waits for a line that matches. */
  seen(pattern: RegExp, ms = 10_000): Promise<void> {
    return waitFor(() => this.has(pattern), `${pattern}\n${this.lines.join("\n")}`, ms);
  }

  /** The room's messages shown, as `offset from: text`, from line `from` on. */
  chat(from = 0): string[] {
    return this.lines.slice(from).filter((line) => CHAT.test(line));
  }
}

/** Just the `from: text` of chat lines. */
function texts(lines: string[]): string[] {
  return lines.map((line) => line.replace(/^#\d+ /, ""));
}

test(
  "resilient_chat: a dropped client misses nothing; a server restart resets history, chat goes on",
  { timeout: 60_000 },
  async () => {
    let server: SessionServer<ChatData> | undefined = startServer({ port: 0, secret: SECRET });
    const port = server.port;
    const url = `ws://127.0.0.1:${port}`;
    const clients: ChatClient[] = [];
    const join = (name: string, options: Partial<ChatClientOptions>) => {
      const output = new Output();
      const client = new ChatClient({ url, name, print: output.print, ...options });
      clients.push(client);
      return { client, output };
    };
    try {
      const ann = join("ann", { backoff: { base: 100, cap: 200 } });
      const bob = join("bob", { backoff: { base: 50 }, random: () => 0.5 });
      await ann.output.seen(/^\* #room: joined at #\d+$/);
      await bob.output.seen(/^\* #room: joined at #\d+$/);
      assert.ok(
        ann.output.has(/^\* connected: new session \S+ as ann$/),
        ann.output.lines.join("\n"),
      );

      await ann.client.input("hi bob");
      await bob.client.input("hi ann");
      await ann.client.input("/who");
      assert.ok(ann.output.has(/^\* online: ann, bob$/), ann.output.lines.join("\n"));

      // Ann is cut off mid-conversation, without a closing handshake, and her network stays down
      // for a second: the room goes on without her.
      const mark = ann.output.lines.length;
      await ann.client.input("/drop 1");
      assert.ok(
        ann.output.has(
          /^\* dropping the connection \(no closing handshake\); the network stays down for 1 s$/,
        ),
      );
      await ann.output.seen(/^\* connection lost \(1006\); reconnecting in \d+ ms \(attempt 1\)$/);
      // While she is away, bob talks and she types.
      const typed = ["ann was away 1", "ann was away 2"].map((line) => ann.client.input(line));
      for (const line of ["bob talks 1", "bob talks 2", "bob talks 3"]) {
        await bob.client.input(line);
      }
      await Promise.all(typed);
      await ann.output.seen(/^\* resumed session \S+: nothing lost; /);
      // Attempts failed while the network was down (attempt 1 waits at most 100 ms, 2 at most 200).
      assert.ok(
        ann.output.has(/^\* connecting to \S+ \(attempt 2\)$/),
        ann.output.lines.join("\n"),
      );
      assert.ok(ann.output.has(/^\* #room: recovered from #2; missed messages follow$/));
      const queued = ann.output.lines.slice(mark).filter((line) => line.startsWith("… offline"));
      assert.equal(queued.length, 2, ann.output.lines.join("\n"));

      const expected = [
        "ann: hi bob",
        "bob: hi ann",
        "ann: ann was away 1",
        "ann: ann was away 2",
        "bob: bob talks 1",
        "bob: bob talks 2",
        "bob: bob talks 3",
      ];
      await waitFor(
        () => ann.output.chat().length >= 7 && bob.output.chat().length >= 7,
        "seven messages each",
      );
      // The same messages, each once, in the same order (the room's offsets 1 to 7) on both.
      const shown = ann.output.chat();
      assert.deepEqual(bob.output.chat(), shown);
      assert.deepEqual(shown.map((line) => Number(CHAT.exec(line)![1])), [1, 2, 3, 4, 5, 6, 7]);
      assert.deepEqual([...texts(shown)].sort(), [...expected].sort());
      // What each one said is in the order said.
      const order = texts(shown);
      assert.ok(order.indexOf("ann: ann was away 1") < order.indexOf("ann: ann was away 2"));
      assert.ok(order.indexOf("bob: bob talks 1") < order.indexOf("bob: bob talks 2"));
      assert.ok(order.indexOf("bob: bob talks 2") < order.indexOf("bob: bob talks 3"));
      for (const line of ["hi bob", "ann was away 1", "ann was away 2"]) {
        assert.ok(ann.output.has(new RegExp(`^✓ delivered: "${line}"$`)), line);
      }

      // The server restarts (graceful: clients are told to come back in 50 to 100 ms) on the same
      // port with the same secret; its sessions and the room's history are gone.
      await server.shutdown({ retry: [50, 100] });
      server = undefined;
      await ann.output.seen(/^\* connection lost \(1012\); reconnecting in \d+ ms/);
      const down = ann.client.input("typed while the server was down");
      server = startServer({ port, secret: SECRET });
      const afterRestart = { ann: ann.output.lines.length, bob: bob.output.lines.length };
      for (const { output } of [ann, bob]) {
        await output.seen(
          /^\* history reset: the server restarted and its state is gone \(restarted\); new session \S+; /,
        );
        await output.seen(
          /^\* history reset in #room: the room's history started again \(epoch\); what was said meanwhile is lost; continuing from #\d+$/,
        );
      }
      await down;
      assert.ok(ann.output.has(/^✓ delivered: "typed while the server was down"$/));
      assert.ok(ann.output.has(/^#\d+ ann: typed while the server was down$/));

      // Chat goes on.
      await bob.client.input("bob is back");
      await ann.client.input("so is ann");
      await waitFor(
        () =>
          texts(bob.output.chat(afterRestart.bob)).includes("ann: so is ann") &&
          texts(ann.output.chat(afterRestart.ann)).includes("ann: so is ann"),
        "the chat after the restart",
      );
      for (const { output, name } of [{ ...ann, name: "ann" }, { ...bob, name: "bob" }]) {
        const after = texts(output.chat(afterRestart[name as "ann" | "bob"]))
          .filter((line) => line !== "ann: typed while the server was down");
        assert.deepEqual(after, ["bob: bob is back", "ann: so is ann"], name);
      }
      for (const { output } of [ann, bob]) {
        assert.equal(new Set(output.chat()).size, output.chat().length, "no line twice");
      }

      await ann.client.input("/quit");
      assert.ok(ann.output.has(/^\* closed \(1000 quit\)$/));
      await bob.client.close();
    } finally {
      for (const client of clients) client.session.close();
      await server?.shutdown();
    }
  },
);

/** A child process running the example, and what it printed. */
class Child {
  readonly process: ChildProcessWithoutNullStreams;
  readonly output = new Output();
  readonly exited: Promise<number | null>;
  stderr = "";
  #partial = "";

  constructor(args: string[]) {
    const runtime = "Bun" in globalThis ? [EXAMPLE] : ["run", "-A", EXAMPLE];
    this.process = spawn(process.execPath, [...runtime, ...args], { stdio: "pipe" });
    this.process.stdout.setEncoding("utf8");
    this.process.stdout.on("data", (chunk: string) => {
      const lines = (this.#partial + chunk).split("\n");
      this.#partial = lines.pop()!;
      for (const line of lines) this.output.print(line);
    });
    this.process.stderr.on("data", (chunk) => this.stderr += chunk);
    this.exited = new Promise((resolve) => this.process.on("close", resolve));
  }

  /**
   * Sends a signal with `process.kill`: Deno's `ChildProcess.kill` also closes the child's stdin
   * (the client takes it as the end of input) and reports the signal instead of the exit code.
   */
  signal(signal: "SIGUSR2" | "SIGTERM"): void {
    process.kill(this.process.pid!, signal);
  }

  write(line: string): void {
    this.process.stdin.write(`${line}\n`);
  }

  seen(pattern: RegExp, ms = 15_000): Promise<void> {
    return this.output.seen(pattern, ms).catch((error) => {
      throw new Error(`${error.message}\nstderr: ${this.stderr}`);
    });
  }
}

test("resilient_chat: the server and client commands, a drop by SIGUSR2, a restart", {
  timeout: 60_000,
}, async () => {
  const children: Child[] = [];
  const start = (args: string[]) => {
    const child = new Child(args);
    children.push(child);
    return child;
  };
  try {
    const server = start(["server", "--port", "0", "--secret", SECRET]);
    await server.seen(/^listening on ws:\/\/127\.0\.0\.1:\d+$/);
    const port = /:(\d+)$/.exec(server.output.lines.find((l) => l.startsWith("listening"))!)![1];
    const client = start(["client", "--name", "cli", "--url", `ws://127.0.0.1:${port}`]);
    await client.seen(/^\* #room: joined at #0$/);
    client.write("hello from the cli");
    await client.seen(/^✓ delivered: "hello from the cli"$/);
    assert.ok(client.output.has(/^#1 cli: hello from the cli$/));
    client.write("/who");
    await client.seen(/^\* online: cli$/);

    client.signal("SIGUSR2");
    await client.seen(/^\* dropping the connection \(no closing handshake\)$/);
    await client.seen(/^\* connection lost \(1006\); reconnecting in \d+ ms \(attempt 1\)$/);
    await client.seen(/^\* resumed session \S+: nothing lost; nothing unacknowledged to re-send$/);
    await server.seen(/^cli resumed session \S+$/);

    // A graceful stop tells the client to come back in 1 to 5 s; a server started on the same
    // port meanwhile has none of the old one's state.
    server.signal("SIGTERM");
    assert.equal(await server.exited, 0);
    await client.seen(
      /^\* connection lost \(1012 restart\); reconnecting in \d+ ms \(attempt 2\)$/,
    );
    const again = start(["server", "--port", port, "--secret", SECRET]);
    await again.seen(/^listening on ws:\/\/127\.0\.0\.1:\d+$/);
    await client.seen(
      /^\* history reset: the server restarted and its state is gone \(restarted\)/,
    );
    await client.seen(/^\* history reset in #room: .* \(epoch\)/);
    await again.seen(/^cli started session \S+ \(restarted\)$/);
    client.write("still here");
    await client.seen(/^#1 cli: still here$/);

    client.write("/quit");
    assert.equal(await client.exited, 0);
    assert.ok(client.output.has(/^\* closed \(1000 quit\)$/));
    again.signal("SIGTERM");
    assert.equal(await again.exited, 0);
  } finally {
    for (const child of children) {
      if (child.process.exitCode === null && child.process.signalCode === null) {
        child.process.kill("SIGKILL");
        await child.exited;
      }
    }
  }
});
