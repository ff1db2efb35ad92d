/**
 * Type-level tests: mistakes the types must catch, each marked `// @ts-expect-error` (which is
 * itself an error when the line type-checks), and uses they must allow. `deno check` (in
 * .ci/run) checks this file; nothing in it runs: every case is in a function never called.
 */
import { serve, type ServeOptions, type UpgradeAccept } from "../mod.ts";

interface User {
  user: string;
}

/** `ws.data` has a value only if an upgrade hook gave it one. */
export function dataNeedsAnUpgradeHook(): void {
  // @ts-expect-error: T = User, and there is no upgrade hook to supply `data`.
  serve<User>({
    open(ws) {
      ws.send(ws.data.user);
    },
  });
  // @ts-expect-error: the same mistake, in an options object made first.
  const options: ServeOptions<User> = {
    open(ws) {
      ws.send(ws.data.user);
    },
  };
  // With data optional (T includes undefined) no hook is needed.
  serve<User | undefined>({
    open(ws) {
      ws.send(ws.data?.user ?? "anonymous");
    },
  });
  serve({
    open(ws) {
      const data: undefined = ws.data;
      ws.send(String(data));
    },
  });
  void options;
}

/** The upgrade hook's accept object must carry `data` when `T` needs it. */
export function acceptNeedsData(): void {
  serve<User>({
    // @ts-expect-error: `data:` forgotten.
    upgrade: () => ({ user: "ann" }),
  });
  serve<User>({
    // @ts-expect-error: no `data` at all.
    upgrade: () => ({ protocol: "chat" }),
  });
  serve<User>({
    // @ts-expect-error: `data` of the wrong type.
    upgrade: () => ({ data: { name: "ann" } }),
  });
  // @ts-expect-error: `data` is required in an accept object for User.
  const accept: UpgradeAccept<User> = {};
  // Accepting with data, refusing with a Response, or leaving it to a later check are fine.
  serve<User>({
    upgrade(request) {
      if (request.headers.get("authorization") === null) return new Response(null, { status: 401 });
      return { data: { user: "ann" }, protocol: "chat", headers: new Headers({ "X-Id": "1" }) };
    },
  });
  // An async hook, and T inferred from what it returns.
  serve({
    async upgrade(request) {
      await Promise.resolve();
      return { data: { user: request.searchParams.get("user") ?? "" } };
    },
    open(ws) {
      ws.send(ws.data.user.toUpperCase());
    },
  });
  // For T = undefined, `{}` and `undefined` accept.
  serve({ upgrade: () => ({}) });
  serve({ upgrade: () => undefined });
  void accept;
}

/** `request.url` is the same string in the upgrade hook and in `fetch`. */
export function urlIsAStringInBoth(): void {
  serve({
    upgrade(request) {
      const url: string = request.url;
      const path: string = request.pathname;
      const query: URLSearchParams = request.searchParams;
      // @ts-expect-error: `url` is a string, as in `fetch`; use `request.pathname`.
      request.url.pathname;
      void url, path, query;
    },
    fetch(request) {
      const url: string = request.url;
      return new Response(new URL(url).pathname);
    },
  });
}

/** Headers in the accept object are `fetch`-style headers, not a string. */
export function headersAreHeadersInit(): void {
  serve({ upgrade: () => ({ headers: [["X-Id", "1"]] }) });
  serve({ upgrade: () => ({ headers: { "X-Id": "1" } }) });
  serve({
    // @ts-expect-error: a string is not headers.
    upgrade: () => ({ headers: "X-Id: 1" }),
  });
}

/** Today's handlers keep type-checking: `message(ws, data)` with `data` a string or bytes. */
export function messageHandlers(): void {
  serve({
    message(ws, data) {
      ws.send(data);
    },
  });
  serve({
    message(ws, data, isBinary) {
      ws.send(isBinary ? data : String(data).toUpperCase());
      if (typeof data === "string") data.toUpperCase();
      // @ts-expect-error: `data` may be bytes.
      data.toUpperCase();
    },
  });
}

/** Handlers must be functions (the run-time check is for code the types do not see). */
export function handlersAreFunctions(): void {
  // @ts-expect-error: a string is not a handler.
  serve({ message: "nope" });
  // @ts-expect-error: nor is a number.
  serve({ upgrade: 42 });
}

/** A handler may return what it likes (the value is ignored, a promise awaited for errors). */
export function handlersReturnAnything(): void {
  serve({ message: (ws, data) => ws.send(data) });
  serve({ open: (ws) => ws.subscribe("news"), close: () => 42 });
}
