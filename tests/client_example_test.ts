/**
 * End to end: examples/client.ts as a child process of the runtime running the test, against
 * sluice's server: lines from stdin go out as messages, what arrives is printed, end of input
 * closes with 1000; a refusal is printed with its body and exits 1.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { serve } from "../mod.ts";

const EXAMPLE = fileURLToPath(new URL("../examples/client.ts", import.meta.url));

/** Runs the example with `args`, writes `input` to its stdin, and collects what it printed. */
function runExample(
  args: string[],
  input: string[],
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const runtime = "Bun" in globalThis ? [EXAMPLE] : ["run", "-A", EXAMPLE];
  const child = spawn(process.execPath, [...runtime, ...args], { stdio: "pipe" });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (chunk) => {
    stdout += chunk;
    // Each line goes once the connection is open, one at a time, then end of input.
    if (stdout.includes("connected to") && input.length !== 0) {
      for (const line of input.splice(0)) child.stdin.write(`${line}\n`);
    }
    if (stdout.split("\n").filter((line) => line.startsWith("< ")).length >= 2) child.stdin.end();
  });
  child.stderr.on("data", (chunk) => stderr += chunk);
  const timer = setTimeout(() => child.kill(), 15_000);
  return new Promise((resolve) => {
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

test("examples/client.ts: sends stdin lines, prints the echoes, closes with 1000 at the end", async () => {
  const closes: number[] = [];
  const server = serve({
    hostname: "127.0.0.1",
    port: 0,
    protocols: ["echo"],
    message(ws, data) {
      ws.send(typeof data === "string" ? data.toUpperCase() : data);
    },
    close(_ws, code) {
      closes.push(code);
    },
  });
  try {
    const { code, stdout } = await runExample(
      ["--protocol", "echo", `ws://127.0.0.1:${server.port}/`],
      ["hello", "two words"],
    );
    assert.match(stdout, /connected to ws:\/\/127\.0\.0\.1:\d+\/ \(subprotocol echo\)/);
    assert.match(stdout, /^< HELLO$/m);
    assert.match(stdout, /^< TWO WORDS$/m);
    assert.match(stdout, /^closed: 1000$/m);
    assert.equal(code, 0);
    assert.deepEqual(closes, [1000]);
  } finally {
    await server.shutdown();
  }
});

test("examples/client.ts: a refusal is printed with its body, and exits 1", async () => {
  const server = serve({
    hostname: "127.0.0.1",
    port: 0,
    upgrade: () => new Response("no entry", { status: 403 }),
  });
  try {
    const { code, stderr } = await runExample([`ws://127.0.0.1:${server.port}/`], []);
    assert.match(stderr, /refused: Handshake refused: the server answered 403 Forbidden/);
    assert.match(stderr, /no entry/);
    assert.equal(code, 1);
  } finally {
    await server.shutdown();
  }
});
