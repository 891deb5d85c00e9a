// The webhook verifier against the independent `standardwebhooks` package: what it signs
// verifies here, anything tampered with does not, and what signWebhook makes it accepts.

import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { test } from "node:test";

import { Webhook } from "standardwebhooks";
import { WebhookVerificationError, signWebhook, verifyWebhook } from "@twh/sdk";

const secret = `whsec_${randomBytes(32).toString("base64")}`;
const other = `whsec_${randomBytes(32).toString("base64")}`;
const body = JSON.stringify({ type: "stock.changed", data: { sku: "MUG-12OZ", locationCode: "WH-MAIN", available: 125 } });

function signedByReference(payload = body, { id = "msg_2Lk1", at = new Date(), key = secret } = {}) {
  const signature = new Webhook(key).sign(id, at, payload);
  return { "webhook-id": id, "webhook-timestamp": String(Math.floor(at.getTime() / 1000)), "webhook-signature": signature };
}

const rejects = (fn, pattern) => assert.throws(fn, (e) => e instanceof WebhookVerificationError && pattern.test(e.message));

test("a delivery signed by standardwebhooks verifies and its JSON body comes back", () => {
  const headers = signedByReference();
  assert.deepEqual(verifyWebhook(body, headers, secret), JSON.parse(body));
  assert.deepEqual(verifyWebhook(Buffer.from(body), new Headers(headers), secret), JSON.parse(body), "Buffer body, fetch Headers");
  const bare = secret.slice("whsec_".length);
  assert.deepEqual(verifyWebhook(body, headers, bare), JSON.parse(body), "a secret without its whsec_ prefix");
});

test("a tampered body, id, timestamp or signature, or another secret, does not verify", () => {
  const headers = signedByReference();
  rejects(() => verifyWebhook(body.replace("125", "126"), headers, secret), /no webhook signature matches/);
  rejects(() => verifyWebhook(body, { ...headers, "webhook-id": "msg_other" }, secret), /no webhook signature matches/);
  rejects(
    () => verifyWebhook(body, { ...headers, "webhook-timestamp": String(Number(headers["webhook-timestamp"]) + 1) }, secret),
    /no webhook signature matches/,
  );
  const sig = headers["webhook-signature"];
  const flipped = sig.slice(0, 3) + (sig[3] === "A" ? "B" : "A") + sig.slice(4);
  rejects(() => verifyWebhook(body, { ...headers, "webhook-signature": flipped }, secret), /no webhook signature matches/);
  rejects(() => verifyWebhook(body, { ...headers, "webhook-signature": sig.replace("v1,", "v2,") }, secret), /no webhook signature matches/);
  rejects(() => verifyWebhook(body, headers, other), /no webhook signature matches/);
  rejects(() => verifyWebhook(body, { "webhook-id": "x", "webhook-timestamp": "1" }, secret), /missing/);
});

test("several signatures: any one that matches passes (secret rotation)", () => {
  const mine = signedByReference();
  const theirs = signedByReference(body, { key: other });
  const both = `${theirs["webhook-signature"]} ${mine["webhook-signature"]}`;
  assert.deepEqual(verifyWebhook(body, { ...mine, "webhook-signature": both }, secret), JSON.parse(body));
  assert.deepEqual(verifyWebhook(body, { ...mine, "webhook-signature": `v1a,xyz ${both}` }, other), JSON.parse(body));
});

test("the timestamp must be within 5 minutes, either way", () => {
  const now = new Date();
  const old = signedByReference(body, { at: new Date(now.getTime() - 301_000) });
  const recent = signedByReference(body, { at: new Date(now.getTime() - 299_000) });
  const future = signedByReference(body, { at: new Date(now.getTime() + 301_000) });
  rejects(() => verifyWebhook(body, old, secret, { now }), /too far/);
  rejects(() => verifyWebhook(body, future, secret, { now }), /too far/);
  assert.ok(verifyWebhook(body, recent, secret, { now }));
  assert.ok(verifyWebhook(body, old, secret, { now, toleranceSeconds: 600 }));
});

test("signWebhook's headers verify with standardwebhooks", () => {
  const headers = signWebhook(secret, body, { id: "msg_ours" });
  assert.deepEqual(new Webhook(secret).verify(body, headers), JSON.parse(body));
  assert.throws(() => new Webhook(other).verify(body, headers));
});
