/**
 * A server's shutdown and its plain HTTP connections: an idle keep-alive connection is closed at
 * once, and a response in progress is finished (its last chunk arrives), then its connection
 * closes.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { serve } from "../mod.ts";
import { deferred, waitFor } from "./_harness.ts";
import { HttpClient, httpRequest } from "./_http_client.ts";

const encoder = new TextEncoder();

test("shutdown finishes a streamed response in progress, then closes; idle connections close", async () => {
  const release = deferred();
  const started = deferred();
  const server = serve({
    port: 0,
    hostname: "127.0.0.1",
    fetch(request) {
      if (new URL(request.url).pathname !== "/slow") return new Response("quick");
      const body = new ReadableStream<Uint8Array>({
        async start(controller) {
          controller.enqueue(encoder.encode("first "));
          started.resolve();
          await release.promise;
          controller.enqueue(encoder.encode("last"));
          controller.close();
        },
      });
      return new Response(body);
    },
  });
  const idle = await HttpClient.connect(server.port);
  const busy = await HttpClient.connect(server.port);
  try {
    await idle.write(httpRequest("GET", "/"));
    assert.equal((await idle.response()).body, "quick");
    await busy.write(httpRequest("GET", "/slow"));
    const head = await busy.head();
    assert.equal(head.status, 200);
    await started.promise;
    const stopped = server.shutdown({ timeout: 5000 });
    await idle.waitClosed(); // idle: closed at once
    assert.equal(busy.isClosed, false);
    assert.equal(await busy.chunk(head), "first ");
    release.resolve();
    assert.equal(await busy.chunk(head), "last");
    assert.equal(await busy.chunk(head), undefined); // the last chunk: the response is whole
    await busy.waitClosed();
    await stopped;
  } finally {
    release.resolve();
    idle.destroy();
    busy.destroy();
    await server.shutdown();
    await waitFor(() => idle.isClosed && busy.isClosed, "the clients to close");
  }
});
