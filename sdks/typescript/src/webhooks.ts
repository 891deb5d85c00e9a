// Verification of webhook deliveries signed the Standard Webhooks way: the headers `webhook-id`,
// `webhook-timestamp` (Unix seconds) and `webhook-signature`, a space-separated list of
// `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`, keyed with the endpoint's secret
// `whsec_<base64>`.

import { createHmac, timingSafeEqual } from "node:crypto";

/** Headers as `fetch` gives them, or as node's `IncomingMessage.headers` holds them. */
export type WebhookHeaders =
  | { get(name: string): string | null }
  | Record<string, string | string[] | undefined>;

export interface VerifyWebhookOptions {
  /** How far the timestamp may be from now, in seconds. Default 300 (5 minutes). */
  toleranceSeconds?: number;
  /** The current time, for tests. Default `new Date()`. */
  now?: Date;
}

/** The delivery could not be verified: do not act on it (answer 400 or 401). */
export class WebhookVerificationError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "WebhookVerificationError";
  }
}

const SECRET_PREFIX = "whsec_";

function secretBytes(secret: string): Buffer {
  const encoded = secret.startsWith(SECRET_PREFIX) ? secret.slice(SECRET_PREFIX.length) : secret;
  const key = Buffer.from(encoded, "base64");
  if (key.length === 0) throw new TypeError("the webhook secret is empty or not base64 (expected whsec_<base64>)");
  return key;
}

function header(headers: WebhookHeaders, name: string): string | null {
  if (typeof (headers as { get?: unknown }).get === "function") {
    return (headers as { get(name: string): string | null }).get(name);
  }
  const record = headers as Record<string, string | string[] | undefined>;
  const key = Object.keys(record).find((k) => k.toLowerCase() === name);
  const value = key === undefined ? undefined : record[key];
  if (Array.isArray(value)) return value.join(" ");
  return value ?? null;
}

function payloadBytes(payload: string | Uint8Array): Buffer {
  return typeof payload === "string" ? Buffer.from(payload, "utf8") : Buffer.from(payload);
}

function hmac(key: Buffer, id: string, timestamp: string, payload: Buffer): Buffer {
  return createHmac("sha256", key).update(`${id}.${timestamp}.`).update(payload).digest();
}

/**
 * Signs a payload as a sender would, returning the three headers; for testing your webhook
 * handler.
 */
export function signWebhook(
  secret: string,
  payload: string | Uint8Array,
  options: { id: string; timestamp?: Date },
): { "webhook-id": string; "webhook-timestamp": string; "webhook-signature": string } {
  const timestamp = String(Math.floor((options.timestamp ?? new Date()).getTime() / 1000));
  const signature = hmac(secretBytes(secret), options.id, timestamp, payloadBytes(payload)).toString("base64");
  return { "webhook-id": options.id, "webhook-timestamp": timestamp, "webhook-signature": `v1,${signature}` };
}

/**
 * Verifies a delivery against the endpoint's secret and returns its parsed JSON body. Pass the
 * raw body exactly as received (before any JSON parsing). Throws `WebhookVerificationError` when
 * a header is missing, the timestamp is outside the tolerance, or no `v1` signature matches.
 */
export function verifyWebhook(
  payload: string | Uint8Array,
  headers: WebhookHeaders,
  secret: string,
  options: VerifyWebhookOptions = {},
): unknown {
  const id = header(headers, "webhook-id");
  const timestamp = header(headers, "webhook-timestamp");
  const signatures = header(headers, "webhook-signature");
  if (!id || !timestamp || !signatures) {
    throw new WebhookVerificationError("missing webhook-id, webhook-timestamp or webhook-signature header");
  }
  if (!/^\d+$/.test(timestamp.trim())) throw new WebhookVerificationError("webhook-timestamp is not a Unix time");
  const sentAt = Number(timestamp.trim());
  const now = Math.floor((options.now ?? new Date()).getTime() / 1000);
  const tolerance = options.toleranceSeconds ?? 300;
  if (Math.abs(now - sentAt) > tolerance) {
    throw new WebhookVerificationError("webhook-timestamp is too far from now (replayed or clock skew)");
  }

  const body = payloadBytes(payload);
  const expected = hmac(secretBytes(secret), id, timestamp.trim(), body);
  let matched = false;
  for (const entry of signatures.split(" ")) {
    const comma = entry.indexOf(",");
    if (comma < 0 || entry.slice(0, comma) !== "v1") continue;
    const candidate = Buffer.from(entry.slice(comma + 1), "base64");
    // Every candidate is compared (no early exit), each in constant time.
    if (candidate.length === expected.length && timingSafeEqual(candidate, expected)) matched = true;
  }
  if (!matched) throw new WebhookVerificationError("no webhook signature matches");

  try {
    return JSON.parse(body.toString("utf8"));
  } catch {
    throw new WebhookVerificationError("the signed body is not JSON");
  }
}
