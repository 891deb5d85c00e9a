// Retries through a proxy in front of a real `twh serve`: a response lost after the server
// applied the write, a 503 and a 429 with Retry-After, an unreachable server and a timeout.

import assert from "node:assert/strict";
import { createServer } from "node:http";
import { after, before, test } from "node:test";

import { ConnectionError, RateLimitedError, TimeoutError, TwhClient, UnavailableError } from "@twh/sdk";
import { startProxy } from "./helpers/proxy.mjs";
import { startServer } from "./helpers/server.mjs";

let server;

before(async () => {
  server = await startServer();
});
after(async () => {
  await server?.stop();
});

const isAdjust = (entry) => /adjustStock/.test(entry.body?.query ?? "");
const direct = () => new TwhClient({ apiKey: server.apiKey, baseUrl: server.url });
const level = (sku, locationCode) => direct().stockLevel({ sku, locationCode });

test("a lost response is retried with the same idempotency key and the stock moves once", async (t) => {
  let adjustments = 0;
  const proxy = await startProxy(server.url, (entry) =>
    isAdjust(entry) && ++adjustments === 1 ? "drop-response" : "forward",
  );
  t.after(() => proxy.close());
  const twh = new TwhClient({ apiKey: server.apiKey, baseUrl: proxy.url, retryBaseDelayMs: 50 });

  const before = await level("MUG-12OZ", "WH-MAIN");
  const change = await twh.adjustStock({
    reason: "RECEIVED",
    changes: [{ sku: "MUG-12OZ", locationCode: "WH-MAIN", delta: 5 }],
  });
  assert.equal(change.levels[0].available, before.available + 5);

  const sent = proxy.seen.filter(isAdjust);
  assert.equal(sent.length, 2, "the first answer was lost, so the SDK sent the call again");
  const keys = sent.map((e) => e.body.variables.idempotencyKey);
  assert.match(keys[0], /^[0-9a-f-]{36}$/, "a generated UUID");
  assert.equal(keys[1], keys[0], "the same key on the retry");
  assert.deepEqual(
    sent.map((e) => e.headers["idempotency-key"]),
    keys,
    "and in the Idempotency-Key header",
  );
  const after = await level("MUG-12OZ", "WH-MAIN");
  assert.equal(after.available, before.available + 5, "applied exactly once");
  assert.equal(after.sequence, before.sequence + 1, "one movement in the ledger");
});

test("every logical call gets its own key, and a caller's key is used as given", async (t) => {
  const proxy = await startProxy(server.url);
  t.after(() => proxy.close());
  const twh = new TwhClient({ apiKey: server.apiKey, baseUrl: proxy.url });
  const input = { reason: "RECEIVED", changes: [{ sku: "CAP-NAVY", locationCode: "STORE-1", delta: 1 }] };
  await twh.adjustStock(input);
  await twh.adjustStock(input);
  await twh.adjustStock(input, { idempotencyKey: "caller-chosen-key" });
  const keys = proxy.seen.filter(isAdjust).map((e) => e.body.variables.idempotencyKey);
  assert.equal(keys.length, 3);
  assert.notEqual(keys[0], keys[1]);
  assert.equal(keys[2], "caller-chosen-key");
});

test("503 with Retry-After (seconds) is retried after the wait it asks for", async (t) => {
  const proxy = await startProxy(server.url, (entry) =>
    entry.n === 1
      ? {
          status: 503,
          headers: { "retry-after": "1", "x-request-id": "proxy-503" },
          body: JSON.stringify({ errors: [{ message: "database out of reach", extensions: { code: "UNAVAILABLE" } }] }),
        }
      : "forward",
  );
  t.after(() => proxy.close());
  const twh = new TwhClient({ apiKey: server.apiKey, baseUrl: proxy.url, retryBaseDelayMs: 1 });
  const started = Date.now();
  const before = await direct().stockLevel({ sku: "TSHIRT-BLK-M", locationCode: "WH-MAIN" });
  const change = await twh.adjustStock({
    reason: "RECEIVED",
    changes: [{ sku: "TSHIRT-BLK-M", locationCode: "WH-MAIN", delta: 2 }],
  });
  const waited = Date.now() - started;
  assert.equal(change.levels[0].available, before.available + 2);
  assert.equal(proxy.seen.length, 2);
  assert.equal(proxy.seen[1].body.variables.idempotencyKey, proxy.seen[0].body.variables.idempotencyKey);
  assert.ok(waited >= 950, `waited ${waited} ms for Retry-After: 1`);
});

test("429 with Retry-After as an HTTP date is retried; when retries run out the typed error is thrown", async (t) => {
  const rateLimited = () => ({
    status: 429,
    headers: { "retry-after": new Date(Date.now() + 1000).toUTCString(), "x-request-id": "proxy-429" },
    body: JSON.stringify({ errors: [{ message: "slow down", extensions: { code: "RATE_LIMITED" } }] }),
  });
  const proxy = await startProxy(server.url, (entry) => (entry.n === 1 ? rateLimited() : "forward"));
  t.after(() => proxy.close());
  const twh = new TwhClient({ apiKey: server.apiKey, baseUrl: proxy.url });
  const page = await twh.items.list({ first: 1 });
  assert.equal(page.nodes.length, 1);
  assert.equal(proxy.seen.length, 2);

  const always = await startProxy(server.url, rateLimited);
  t.after(() => always.close());
  const impatient = new TwhClient({ apiKey: server.apiKey, baseUrl: always.url, maxRetries: 1, retryMaxDelayMs: 20 });
  const error = await impatient.items.list().catch((e) => e);
  assert.ok(error instanceof RateLimitedError, String(error));
  assert.equal(error.code, "RATE_LIMITED");
  assert.equal(error.status, 429);
  assert.equal(error.requestId, "proxy-429");
  assert.ok(error.retryAfterMs > 0 && error.retryAfterMs <= 1000);
  assert.equal(always.seen.length, 2, "one try and one retry (the wait capped by retryMaxDelayMs)");
});

test("a raw graphql() mutation without retry: true is not sent twice", async (t) => {
  const proxy = await startProxy(server.url, () => ({ status: 503, headers: { "retry-after": "0" }, body: "" }));
  t.after(() => proxy.close());
  const twh = new TwhClient({ apiKey: server.apiKey, baseUrl: proxy.url });
  const error = await twh
    .graphql(`mutation { adjustStock(input: {reason: RECEIVED, changes: [{sku: "MUG-12OZ", locationCode: "WH-MAIN", delta: 1}]}) { groupId } }`)
    .catch((e) => e);
  assert.ok(error instanceof UnavailableError, String(error));
  assert.equal(error.status, 503);
  assert.equal(error.code, "UNAVAILABLE", "from the status when the body names no code");
  assert.equal(proxy.seen.length, 1);
});

test("an unreachable server throws ConnectionError after the retries", async () => {
  const closed = createServer();
  await new Promise((resolve) => closed.listen(0, "127.0.0.1", resolve));
  const { port } = closed.address();
  await new Promise((resolve) => closed.close(resolve));
  const twh = new TwhClient({ apiKey: "twh_test_x", baseUrl: `http://127.0.0.1:${port}`, maxRetries: 2, retryBaseDelayMs: 5 });
  const error = await twh.items.list().catch((e) => e);
  assert.ok(error instanceof ConnectionError, String(error));
  assert.equal(error.code, "CONNECTION_ERROR");
  assert.equal(error.status, null);
});

test("an answer that takes longer than timeoutMs throws TimeoutError; a caller's abort is not retried", async (t) => {
  let requests = 0;
  const silent = createServer(() => {
    requests++; // never answers
  });
  await new Promise((resolve) => silent.listen(0, "127.0.0.1", resolve));
  t.after(() => {
    silent.closeAllConnections();
    silent.close();
  });
  const url = `http://127.0.0.1:${silent.address().port}`;
  const twh = new TwhClient({ apiKey: "twh_test_x", baseUrl: url, timeoutMs: 100, maxRetries: 1, retryBaseDelayMs: 5 });
  const error = await twh.items.list().catch((e) => e);
  assert.ok(error instanceof TimeoutError, String(error));
  assert.equal(error.code, "TIMEOUT");
  assert.equal(requests, 2);

  const aborted = await twh.items.list({}, { signal: AbortSignal.timeout(20), timeoutMs: 5000 }).catch((e) => e);
  assert.equal(aborted.name, "TimeoutError");
  assert.ok(!(aborted instanceof TimeoutError), "the caller's own abort reason, not the SDK's");
  assert.equal(requests, 3);
});
