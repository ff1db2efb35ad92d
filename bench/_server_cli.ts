/**
 * What every benchmark server shares: `--name value` options, and stopping once on SIGTERM,
 * SIGINT or (with `--stdin-lifeline`) the end of stdin, so a server never outlives the parent
 * that spawned it with a pipe.
 *
 * @module
 */
import process from "node:process";

/**
 * A command-line option's value.
 *
 * @param name The option, without `--`.
 * @param fallback The value when it is absent.
 * @returns The value.
 */
export function option(name: string, fallback: string): string {
  const at = process.argv.indexOf(`--${name}`);
  return at !== -1 && at + 1 < process.argv.length ? process.argv[at + 1] : fallback;
}

/**
 * Runs `stop` once when the server is told to stop, then exits with 0. `stop` should not
 * wait long: clients that stopped reading never answer a Close frame.
 *
 * @param stop Shuts the server down.
 */
export function stopOnSignal(stop: () => unknown): void {
  let stopping = false;
  const once = async () => {
    if (stopping) return;
    stopping = true;
    await stop();
    process.exit(0);
  };
  process.on("SIGTERM", once);
  process.on("SIGINT", once);
  if (process.argv.includes("--stdin-lifeline")) {
    process.stdin.on("end", once);
    process.stdin.on("close", once);
    process.stdin.resume();
  }
}

/**
 * A promise that settles after `ms`, for racing a shutdown that may hang.
 *
 * @param ms Milliseconds.
 * @returns The promise.
 */
export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
