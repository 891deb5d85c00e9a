// GraphQL subscriptions over graphql-transport-ws: the `graphql-ws` client for the happy paths,
// and a raw `ws` connection to see what the protocol library hides (close codes, pings, errors).

import { createClient } from "graphql-ws";
import WebSocket from "ws";
import { metricSamples, waitFor } from "./api.mjs";

export const PROTOCOL = "graphql-transport-ws";

export const wsUrl = (server, path = "/graphql/ws") => `${server.url.replace(/^http/, "ws")}${path}`;

/** A graphql-ws client for one tenant; no retries, so a refusal shows as a failure. */
export function connect(server, { apiKey = server.apiKey, path = "/graphql/ws" } = {}) {
  return createClient({
    url: wsUrl(server, path),
    webSocketImpl: WebSocket,
    connectionParams: { authorization: `Bearer ${apiKey}` },
    retryAttempts: 0,
    lazy: true,
  });
}

/**
 * Subscribes and collects: `results` (each `next`, {data, errors}), `errors` (the sink's error),
 * `completed`, and `dispose()`.
 */
export function subscribe(client, query, variables = {}) {
  const sub = { results: [], errors: [], completed: false };
  sub.dispose = client.subscribe(
    { query, variables },
    {
      next: (result) => sub.results.push(result),
      error: (err) => sub.errors.push(err),
      complete: () => {
        sub.completed = true;
      },
    },
  );
  /** The `field` of every result received so far. */
  sub.values = (field) => sub.results.map((r) => r.data?.[field]).filter((v) => v != null);
  return sub;
}

/** How many subscriptions the server says are open (the sum of twh_subscriptions_open). */
export async function openSubscriptions(server) {
  const samples = await metricSamples(server, "twh_subscriptions_open");
  return samples.length ? samples.reduce((sum, s) => sum + s.value, 0) : null;
}

/**
 * Waits until the server counts no open subscription (those of earlier tests are ended: their
 * `complete` may still be on its way), and returns 0, the count to add a test's own to.
 */
export async function noneOpen(server) {
  await waitFor(
    "twh_subscriptions_open to be 0 (every earlier subscription ended)",
    () => openSubscriptions(server),
    (n) => n === null || n === 0,
    { timeoutMs: 10_000, intervalMs: 50 },
  );
  return 0;
}

/**
 * Waits until the server counts `count` open subscriptions, so that a write made next is seen by
 * them (the protocol has no "subscribed" acknowledgement).
 */
export async function subscribed(server, count, subs = []) {
  return waitFor(
    `twh_subscriptions_open to reach ${count}`,
    async () => {
      for (const s of subs) {
        if (s.errors.length) throw new Error(`a subscription failed: ${describe(s.errors[0])}`);
      }
      return openSubscriptions(server);
    },
    (n) => n !== null && n >= count,
    { timeoutMs: 10_000, intervalMs: 50 },
  );
}

export function describe(err) {
  if (err && typeof err === "object" && "code" in err && "reason" in err) return `closed ${err.code} ${err.reason}`;
  if (Array.isArray(err)) return JSON.stringify(err);
  return err instanceof Error ? err.message : JSON.stringify(err);
}

/**
 * A raw graphql-transport-ws connection: `messages` received, `opened`, `closed` ({code, reason}),
 * `send(message)`, and `init(payload)` which sends connection_init.
 */
export function rawConnect(server, { path = "/graphql/ws", protocol = PROTOCOL } = {}) {
  const ws = new WebSocket(wsUrl(server, path), protocol);
  const messages = [];
  const closed = new Promise((resolve) => ws.on("close", (code, reason) => resolve({ code, reason: reason.toString() })));
  const opened = new Promise((resolve, reject) => {
    ws.on("open", () => resolve(ws.protocol));
    ws.on("unexpected-response", (_req, res) =>
      reject(new Error(`the upgrade at ${path} was answered ${res.statusCode} ${res.statusMessage}`)),
    );
    ws.on("error", reject);
  });
  opened.catch(() => {}); // observed by the test that awaits it
  ws.on("message", (data) => {
    const message = JSON.parse(data.toString());
    messages.push(message);
    if (message.type === "ping") ws.send(JSON.stringify({ type: "pong" }));
  });
  return {
    ws,
    messages,
    opened,
    closed,
    send: (message) => ws.send(JSON.stringify(message)),
    async init(payload) {
      await opened;
      ws.send(JSON.stringify(payload === undefined ? { type: "connection_init" } : { type: "connection_init", payload }));
    },
    close: () => ws.close(1000),
  };
}

/** Resolves with the close, or rejects if the connection is still open after `timeoutMs`. */
export async function closeOf(raw, timeoutMs = 5000) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`still open after ${timeoutMs} ms; messages: ${JSON.stringify(raw.messages)}`)),
      timeoutMs,
    );
  });
  try {
    return await Promise.race([raw.closed, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
