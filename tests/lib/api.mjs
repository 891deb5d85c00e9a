// Small clients for a running `twh serve` (GraphQL over HTTP, the REST twin, /metrics) and a
// polling helper with a deadline, for the suites that wait on background work (relay, webhooks).

import { setTimeout as sleep } from "node:timers/promises";

/** GraphQL and REST calls as one tenant (`apiKey`, the sandbox's by default). */
export function client(server, apiKey = server.apiKey) {
  /** Runs a GraphQL operation; throws with the errors when the response has any. */
  const gql = async (query, variables = {}) => {
    const response = await fetch(`${server.url}/graphql`, {
      method: "POST",
      headers: {
        authorization: `Bearer ${apiKey}`,
        "content-type": "application/json",
        accept: "application/graphql-response+json",
      },
      body: JSON.stringify({ query, variables }),
    });
    const text = await response.text();
    let body;
    try {
      body = JSON.parse(text);
    } catch {
      throw new Error(`POST /graphql answered ${response.status} with a body that is not JSON: ${text.slice(0, 500)}`);
    }
    if (body.errors?.length || !body.data) {
      throw new Error(
        `GraphQL errors (HTTP ${response.status}) for ${query.replace(/\s+/g, " ").slice(0, 200)}:\n` +
          JSON.stringify(body.errors ?? body, null, 2),
      );
    }
    return body.data;
  };

  /** A mutation whose payload must have no userErrors; returns the payload. */
  const mutate = async (field, query, variables) => {
    const data = await gql(query, variables);
    const payload = data[field];
    if (payload.userErrors?.length) {
      throw new Error(`${field} answered userErrors: ${JSON.stringify(payload.userErrors)}`);
    }
    return payload;
  };

  /** A REST call; returns {status, headers, json, text} whatever the status. */
  const rest = async (method, path, { body, headers = {} } = {}) => {
    const response = await fetch(`${server.url}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${apiKey}`,
        ...(body !== undefined ? { "content-type": "application/json" } : {}),
        ...headers,
      },
      body: body !== undefined ? JSON.stringify(body) : undefined,
    });
    const text = await response.text();
    let json = null;
    try {
      json = text ? JSON.parse(text) : null;
    } catch {
      // left null: the caller's assertion shows the text
    }
    return { status: response.status, headers: response.headers, json, text };
  };

  /** One RECEIVED adjustment of `delta` at (sku, locationCode); returns the StockChangePayload. */
  const receive = (sku, locationCode, delta, idempotencyKey = `e2e-${crypto.randomUUID()}`) =>
    mutate(
      "adjustStock",
      `mutation($input: AdjustStockInput!, $key: String) {
        adjustStock(input: $input, idempotencyKey: $key) {
          groupId
          movements { sku locationCode sequence delta }
          levels { sku locationCode onHand available sequence version }
          userErrors { code field message }
        }
      }`,
      { input: { reason: "RECEIVED", changes: [{ sku, locationCode, delta }] }, key: idempotencyKey },
    );

  return { gql, mutate, rest, receive };
}

/** The samples of one metric family from GET /metrics, as [{labels: string, value: number}]. */
export async function metricSamples(server, name) {
  const text = await (await fetch(`${server.url}/metrics`)).text();
  const samples = [];
  for (const line of text.split("\n")) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)/.exec(line);
    if (m && m[1] === name) samples.push({ labels: m[2] ?? "", value: Number(m[3]) });
  }
  return samples;
}

/**
 * Calls `probe` until `until(value)` holds, and returns that value; past the deadline throws an
 * error naming what was awaited and the last value seen.
 */
export async function waitFor(what, probe, until = Boolean, { timeoutMs = 15_000, intervalMs = 100 } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    last = await probe();
    if (until(last)) return last;
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; last seen:\n${show(last)}`);
    }
    await sleep(intervalMs);
  }
}

export function show(value) {
  try {
    const text = JSON.stringify(value, null, 2);
    return text === undefined ? String(value) : text.length > 4000 ? `${text.slice(0, 4000)}…` : text;
  } catch {
    return String(value);
  }
}
