// Two `twh serve` replicas on one Postgres database and one Redis: A serves a webhook endpoint
// and a GraphQL subscription, B takes a burst of writes and is killed (SIGKILL) in the middle of
// it, then restarted; clients resend what was not acknowledged with the same idempotency keys.
// Every acknowledged write must reach the webhook receiver and A's subscriber, once per event
// and in sequence order per SKU, and each write must be applied exactly once.
//
// Runs only when TWH_TEST_DATABASE_URL (an admin URL of a Postgres server: a fresh database is
// created next to it and dropped at the end) and TWH_TEST_REDIS_URL are set; psql must be on PATH.

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { client } from "../lib/api.mjs";
import { startReceiver } from "../lib/receiver.mjs";
import { startServer } from "../lib/server.mjs";
import { connect, describe, subscribe, subscribed } from "../lib/ws.mjs";

const ADMIN_DATABASE_URL = process.env.TWH_TEST_DATABASE_URL;
const REDIS_URL = process.env.TWH_TEST_REDIS_URL;
const skip =
  ADMIN_DATABASE_URL && REDIS_URL
    ? false
    : "set TWH_TEST_DATABASE_URL (Postgres admin URL) and TWH_TEST_REDIS_URL to run the replica tests";

const LOCATION = "WH-MAIN";
const SKUS = ["TSHIRT-BLK-M", "TSHIRT-BLK-L", "MUG-12OZ", "CAP-NAVY"];
const WRITES = 400;
const CONCURRENCY = 16;
const KILL_AFTER_ACKS = 150;
const DELIVERY_DEADLINE_MS = 60_000;
const RESEND_DEADLINE_MS = 60_000;

const ADJUST = `mutation($input: AdjustStockInput!, $key: String) {
  adjustStock(input: $input, idempotencyKey: $key) {
    movements { sku sequence }
    userErrors { code message }
  }
}`;

/** Runs one SQL statement with psql against the admin database. */
function psql(sql) {
  return new Promise((resolve, reject) => {
    execFile(
      "psql",
      [ADMIN_DATABASE_URL, "-v", "ON_ERROR_STOP=1", "-qAtc", sql],
      { env: { ...process.env, PGCONNECT_TIMEOUT: "10" }, timeout: 60_000 },
      (err, stdout, stderr) => {
        if (err) reject(new Error(`psql ${JSON.stringify(sql)} failed (${err.code ?? err.signal}): ${stderr}`));
        else resolve(stdout);
      },
    );
  });
}

/**
 * One adjustStock (+1) call with its idempotency key. Acknowledged = HTTP 200 whose payload has
 * the movement and no errors: {ack: {sku, sequence}}; anything else: {failure: "why"}.
 */
async function adjustOnce(server, write) {
  let response;
  let text;
  try {
    response = await fetch(`${server.url}/graphql`, {
      method: "POST",
      headers: {
        authorization: `Bearer ${write.apiKey}`,
        "content-type": "application/json",
        accept: "application/graphql-response+json",
      },
      body: JSON.stringify({
        query: ADJUST,
        variables: {
          input: { reason: "RECEIVED", changes: [{ sku: write.sku, locationCode: LOCATION, delta: 1 }] },
          key: write.key,
        },
      }),
      signal: AbortSignal.timeout(30_000),
    });
    text = await response.text();
  } catch (err) {
    return { failure: `connection: ${err.cause?.code ?? err.cause?.message ?? err.message}`, connection: true };
  }
  let body;
  try {
    body = JSON.parse(text);
  } catch {
    return { failure: `HTTP ${response.status}, not JSON: ${text.slice(0, 200)}` };
  }
  const movement = body.data?.adjustStock?.movements?.[0];
  if (response.status === 200 && !body.errors?.length && !body.data.adjustStock.userErrors?.length && movement) {
    const replayed = response.headers.get("idempotent-replayed") === "true";
    return { ack: { sku: movement.sku, sequence: movement.sequence }, replayed };
  }
  const codes = [
    ...(body.errors ?? []).map((e) => e.extensions?.code ?? e.message),
    ...(body.data?.adjustStock?.userErrors ?? []).map((e) => e.code),
  ];
  return { failure: `HTTP ${response.status} ${codes.join(",") || text.slice(0, 200)}` };
}

const tail = (text, lines = 30) => text.split("\n").slice(-lines).join("\n");
const countBy = (items) => {
  const counts = {};
  for (const item of items) counts[item] = (counts[item] ?? 0) + 1;
  return counts;
};

/** Pairs of consecutive values that do not strictly increase, as "a→b at #i". */
function orderBreaks(sequences) {
  const breaks = [];
  for (let i = 1; i < sequences.length; i++) {
    if (!(sequences[i] > sequences[i - 1])) breaks.push(`${sequences[i - 1]}→${sequences[i]} at #${i}`);
  }
  return breaks;
}

test(
  "a replica killed mid-burst loses no acknowledged event: webhooks and subscriptions see every write in order",
  { skip, timeout: 300_000 },
  async (t) => {
    const res = {};
    t.after(async () => {
      const steps = [
        ["subscription", () => res.sub?.dispose()],
        ["ws client", () => res.ws?.dispose()],
        ["server B", () => res.b?.stop()],
        ["server A", () => res.a?.stop()],
        ["receiver", () => res.receiver?.close()],
        ["B's folder", () => res.bDir && rmSync(res.bDir, { recursive: true, force: true })],
        ["database", () => res.database && psql(`DROP DATABASE IF EXISTS "${res.database}" WITH (FORCE)`)],
      ];
      for (const [what, step] of steps) {
        try {
          await step();
        } catch (err) {
          console.error(`# cleanup of ${what} failed: ${err.message}`);
        }
      }
    });

    // A fresh database on the admin URL's server.
    const database = `twh_rep_${randomBytes(6).toString("hex")}`;
    await psql(`CREATE DATABASE "${database}"`);
    res.database = database;
    const databaseUrl = new URL(ADMIN_DATABASE_URL);
    databaseUrl.pathname = `/${database}`;
    const env = {
      REDIS_URL,
      TWH_BIND: "127.0.0.1:0",
      TWH_WEBHOOK_ALLOW_PRIVATE_TARGETS: "true",
      TWH_WEBHOOK_RETRY_SCHEDULE: "0,0.2,0.5,1,1,2,2,5",
      TWH_WEBHOOK_LEASE_SECS: "3",
    };
    const serverOptions = { databaseUrl: databaseUrl.toString(), env };

    // A creates the sandbox on the empty database; B finds it not empty and prints no key.
    res.a = await startServer(serverOptions);
    const a = res.a;
    res.bDir = mkdtempSync(join(tmpdir(), "twh-e2e-b-"));
    res.b = await startServer({ ...serverOptions, dataDir: res.bDir, sandbox: false });
    const b1 = res.b;
    const apiKey = a.apiKey;
    const api = client(a);

    res.receiver = await startReceiver();
    const receiver = res.receiver;
    await api.mutate(
      "createWebhookEndpoint",
      `mutation($input: CreateWebhookEndpointInput!) {
        createWebhookEndpoint(input: $input) { endpoint { id status } userErrors { code field message } }
      }`,
      { input: { url: receiver.url("/hook"), eventTypes: ["stock.changed"] } },
    );

    res.ws = connect(a);
    res.sub = subscribe(res.ws, `subscription { stockChanged { sequence level { sku locationCode available } } }`);
    const sub = res.sub;
    await subscribed(a, 1, [sub]);

    const initial = {};
    for (const sku of SKUS) {
      const { stockLevel } = await api.gql(
        `query($sku: String!, $loc: String!) { stockLevel(sku: $sku, locationCode: $loc) { available sequence } }`,
        { sku, loc: LOCATION },
      );
      assert.ok(stockLevel, `the sandbox has ${sku} at ${LOCATION}`);
      initial[sku] = stockLevel;
    }

    // The burst, all of it to B.
    const runId = randomBytes(4).toString("hex");
    const writes = Array.from({ length: WRITES }, (_, i) => ({
      i,
      sku: SKUS[i % SKUS.length],
      key: `rep-${runId}-${i}`,
      apiKey,
    }));
    /** write index → {sku, sequence} of its acknowledgement (the first one). */
    const acks = new Map();
    /** write index → every {sku, sequence} it was acknowledged with (resends included). */
    const allAcks = new Map();
    const ackedBeforeKill = new Set();
    const failures = []; // {i, phase, failure}
    const replays = []; // write indexes answered with Idempotent-Replayed: true
    const record = (write, result, phase) => {
      if (result.replayed) replays.push(write.i);
      if (result.ack) {
        if (!acks.has(write.i)) acks.set(write.i, result.ack);
        allAcks.set(write.i, [...(allAcks.get(write.i) ?? []), result.ack]);
      } else {
        failures.push({ i: write.i, phase, failure: result.failure, connection: !!result.connection });
      }
    };

    // Each client keeps writing until a call of its own fails after the kill, as clients would.
    let next = 0;
    let killed = false;
    const unacked = new Set();
    const failedBeforeKill = [];
    const phase1 = async () => {
      while (next < writes.length) {
        const write = writes[next++];
        const wasKilled = killed;
        const result = await adjustOnce(b1, write);
        record(write, result, wasKilled ? "sent after the kill" : "sent before the kill");
        if (!result.ack) {
          unacked.add(write.i);
          if (killed) break;
          failedBeforeKill.push({ key: write.key, failure: result.failure });
          continue;
        }
        if (!killed) ackedBeforeKill.add(write.i);
        if (!killed && acks.size >= KILL_AFTER_ACKS) {
          killed = true;
          b1.child.kill("SIGKILL");
        }
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, phase1));
    const b1Exit = await b1.kill();
    const sentToFirstB = next;
    const b1Output = b1.output();

    // B again, same env and folder; every unacknowledged write is resent with its key, and the
    // rest of the burst follows.
    res.b = await startServer({ ...serverOptions, dataDir: res.bDir, sandbox: false });
    const b2 = res.b;
    const resend = [...[...unacked].sort((x, y) => x - y).map((i) => writes[i]), ...writes.slice(next)];
    const resendDeadline = Date.now() + RESEND_DEADLINE_MS;
    let cursor = 0;
    const phase2 = async () => {
      while (cursor < resend.length) {
        const write = resend[cursor++];
        for (let attempt = 0; ; attempt++) {
          const result = await adjustOnce(b2, write);
          record(write, result, "after restart");
          if (result.ack || Date.now() > resendDeadline) break;
          await sleep(Math.min(1000, 50 * 2 ** attempt));
        }
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, phase2));

    // Every acknowledged (sku, sequence) must reach the receiver and the subscriber.
    const acked = [...acks.entries()].map(([i, ack]) => ({ i, ...ack }));
    const pair = (sku, sequence) => `${sku}#${sequence}`;
    const hooks = () =>
      receiver
        .requests("/hook")
        .filter((r) => r.json?.type === "stock.changed")
        .map((r, arrival) => ({
          arrival,
          webhookId: r.webhookId,
          sku: r.json.data?.level?.sku,
          sequence: r.json.data?.level?.sequence,
        }));
    const events = () =>
      sub.results.map((r) => ({ sku: r.data?.stockChanged?.level?.sku, sequence: r.data?.stockChanged?.sequence }));
    const missingFrom = (seen) => {
      const have = new Set(seen.map((e) => pair(e.sku, e.sequence)));
      return acked.filter((w) => !have.has(pair(w.sku, w.sequence)));
    };
    const deliveryDeadline = Date.now() + DELIVERY_DEADLINE_MS;
    while (Date.now() < deliveryDeadline) {
      if (!missingFrom(hooks()).length && !missingFrom(events()).length) break;
      if (sub.errors.length || sub.completed) break;
      await sleep(200);
    }
    await sleep(1000); // late duplicates or stragglers would show in what follows

    // What was seen.
    const hookRequests = hooks();
    const firstArrivals = [];
    const seenIds = new Set();
    for (const h of hookRequests) {
      if (seenIds.has(h.webhookId)) continue;
      seenIds.add(h.webhookId);
      firstArrivals.push(h);
    }
    const subEvents = events();
    const problems = [];
    const lines = [];
    const finals = {};
    for (const sku of SKUS) {
      const { stockLevel } = await api.gql(
        `query($sku: String!, $loc: String!) { stockLevel(sku: $sku, locationCode: $loc) { available sequence } }`,
        { sku, loc: LOCATION },
      );
      finals[sku] = stockLevel;
    }

    lines.push(
      `writes: ${WRITES} to B (${CONCURRENCY} at a time); B killed after ${ackedBeforeKill.size} acknowledgements, ` +
        `${sentToFirstB} sent to it in all; B exited with ${JSON.stringify(b1Exit)}`,
      `unacknowledged before the restart: ${unacked.size}; sent after the restart: ${resend.length} ` +
        `(${writes.length - sentToFirstB} never sent before)`,
      `acknowledged in the end: ${acks.size}/${WRITES}; answers marked Idempotent-Replayed (a resend of a write ` +
        `B had committed before it died): ${replays.length}`,
      `failed calls: ${JSON.stringify(countBy(failures.map((f) => `${f.phase}: ${f.failure}`)))}`,
      `webhook requests: ${hookRequests.length} (${firstArrivals.length} distinct webhook-ids)`,
      `subscription events on A: ${subEvents.length}; errors: ${JSON.stringify(sub.errors.map(describe))}; ` +
        `completed: ${sub.completed}`,
    );

    // Every write acknowledged, each exactly once: the sequences per SKU are the consecutive range
    // after the initial one, and the level moved by exactly the number of writes.
    if (failedBeforeKill.length) {
      problems.push(`calls to B failed before it was killed: ${JSON.stringify(failedBeforeKill.slice(0, 10))}`);
    }
    if (!killed) problems.push(`B was never killed: fewer than ${KILL_AFTER_ACKS} writes were acknowledged before the restart`);
    const neverAcked = writes.filter((w) => !acks.has(w.i));
    if (neverAcked.length) {
      problems.push(
        `${neverAcked.length} writes never acknowledged within ${RESEND_DEADLINE_MS} ms of the restart: ` +
          neverAcked
            .slice(0, 20)
            .map((w) => `${w.key} (${failures.filter((f) => f.i === w.i).at(-1)?.failure})`)
            .join(", "),
      );
    }
    const resendMismatch = [...allAcks.entries()].filter(([, list]) =>
      list.some((ack) => ack.sku !== list[0].sku || ack.sequence !== list[0].sequence),
    );
    if (resendMismatch.length) {
      problems.push(`resends answered differently from the first answer: ${JSON.stringify(resendMismatch.slice(0, 10))}`);
    }
    const wrongSku = acked.filter((w) => w.sku !== writes[w.i].sku);
    if (wrongSku.length) problems.push(`acknowledged with another SKU: ${JSON.stringify(wrongSku.slice(0, 10))}`);
    for (const sku of SKUS) {
      const mine = writes.filter((w) => w.sku === sku).length;
      const sequences = acked.filter((w) => w.sku === sku).map((w) => w.sequence).sort((x, y) => x - y);
      const expected = Array.from({ length: mine }, (_, k) => initial[sku].sequence + 1 + k);
      if (JSON.stringify(sequences) !== JSON.stringify(expected)) {
        const dupes = Object.entries(countBy(sequences)).filter(([, n]) => n > 1).map(([s]) => Number(s));
        problems.push(
          `${sku}: acknowledged sequences are not ${expected[0]}..${expected.at(-1)} ` +
            `(${sequences.length} acks, duplicates ${JSON.stringify(dupes)}, ` +
            `missing ${JSON.stringify(expected.filter((s) => !sequences.includes(s)))})`,
        );
      }
      if (finals[sku].available !== initial[sku].available + mine || finals[sku].sequence !== initial[sku].sequence + mine) {
        problems.push(
          `${sku}: level is available ${finals[sku].available} sequence ${finals[sku].sequence}, ` +
            `expected ${initial[sku].available + mine} / ${initial[sku].sequence + mine} after ${mine} writes of +1`,
        );
      }
    }

    // Webhooks: every acknowledged write arrived; first arrivals strictly increasing per SKU.
    const hooksMissing = missingFrom(hookRequests);
    if (hooksMissing.length) {
      problems.push(
        `${hooksMissing.length} acknowledged writes never reached the webhook receiver within ` +
          `${DELIVERY_DEADLINE_MS} ms: ${hooksMissing.map((w) => pair(w.sku, w.sequence)).join(" ")}`,
      );
    }
    for (const sku of SKUS) {
      const order = firstArrivals.filter((h) => h.sku === sku).map((h) => h.sequence);
      const breaks = orderBreaks(order);
      if (breaks.length) {
        problems.push(`webhooks for ${sku} out of order (first arrival per webhook-id): ${breaks.slice(0, 20).join(", ")}`);
      }
    }
    const unknown = firstArrivals.filter((h) => !SKUS.includes(h.sku) || h.sequence <= initial[h.sku].sequence);
    if (unknown.length) problems.push(`webhooks for no write of this test: ${JSON.stringify(unknown.slice(0, 10))}`);

    // The subscriber on A: every acknowledged write, no duplicates, increasing per SKU.
    if (sub.errors.length || sub.completed) {
      problems.push(`A's subscription ended: ${JSON.stringify(sub.errors.map(describe))} completed=${sub.completed}`);
    }
    const withErrors = sub.results.filter((r) => r.errors?.length);
    if (withErrors.length) problems.push(`subscription results with errors: ${JSON.stringify(withErrors.slice(0, 5))}`);
    const subMissing = missingFrom(subEvents);
    if (subMissing.length) {
      const beforeKill = subMissing.filter((w) => ackedBeforeKill.has(w.i));
      problems.push(
        `${subMissing.length} acknowledged writes never reached A's subscriber (${beforeKill.length} of them ` +
          `acknowledged before the kill): ${subMissing.map((w) => pair(w.sku, w.sequence)).join(" ")}`,
      );
    }
    for (const sku of SKUS) {
      const breaks = orderBreaks(subEvents.filter((e) => e.sku === sku).map((e) => e.sequence));
      if (breaks.length) problems.push(`subscription events for ${sku} duplicated or out of order: ${breaks.slice(0, 20).join(", ")}`);
    }

    if (/API key:/.test(b1.stdout()) || /API key:/.test(b2.stdout())) {
      problems.push(`B printed a sandbox key on a database that was not empty:\n${b1.stdout()}\n${b2.stdout()}`);
    }

    for (const line of lines) t.diagnostic(line);
    const report = [
      ...lines,
      "",
      ...problems.map((p) => `PROBLEM: ${p}`),
      "",
      `--- A (${a.url}), last lines:\n${tail(a.output())}`,
      `--- B before the kill, last lines:\n${tail(b1Output)}`,
      `--- B after the restart (${b2.url}), last lines:\n${tail(b2.output())}`,
    ].join("\n");
    assert.deepEqual(problems, [], report);
  },
);
