// Webhooks as a receiver sees them: a real node:http server on 127.0.0.1 gets the deliveries of
// a `twh serve` (private targets allowed, a retry schedule of fractions of a second), checks
// every one with the `standardwebhooks` package, and answers as each test needs (500s, 410, a
// redirect, a hang). Also the event log (GraphQL `events`, GET /v1/events) and the REST twins.

import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { Webhook } from "standardwebhooks";
import { client, metricSamples, show, waitFor } from "../lib/api.mjs";
import { startReceiver } from "../lib/receiver.mjs";
import { startServer } from "../lib/server.mjs";

const SCHEDULE = [0, 0.3, 0.3]; // three attempts, then DEAD
const TIMEOUT_MS = 1500;

const ENDPOINT = `id url description eventTypes status disabledReason secret version failingSince createdAt updatedAt`;
const DELIVERY = `id endpointId eventId eventType status attemptCount nextAttemptAt lastAttemptAt createdAt payload
  attempts { number attemptedAt statusCode latencyMs error responseExcerpt }`;

let server;
let receiver;
let api;
/** Every secret each receiver path was given (old ones stay: they signed earlier deliveries). */
const secrets = new Map();

before(async () => {
  receiver = await startReceiver();
  server = await startServer({
    env: {
      TWH_WEBHOOK_ALLOW_PRIVATE_TARGETS: "true",
      TWH_WEBHOOK_RETRY_SCHEDULE: SCHEDULE.join(","),
      TWH_WEBHOOK_TIMEOUT_MS: String(TIMEOUT_MS),
    },
  });
  api = client(server);
});
after(async () => {
  await server?.stop();
  await receiver?.close();
});

async function createEndpoint(path, { eventTypes, description } = {}) {
  const { endpoint } = await api.mutate(
    "createWebhookEndpoint",
    `mutation($input: CreateWebhookEndpointInput!) {
      createWebhookEndpoint(input: $input) { endpoint { ${ENDPOINT} } userErrors { code field message } } }`,
    { input: { url: receiver.url(path), eventTypes, description } },
  );
  assert.equal(endpoint.status, "ENABLED", `a new endpoint is ENABLED: ${show(endpoint)}`);
  assert.match(endpoint.secret ?? "", /^whsec_[A-Za-z0-9+/=]+$/, `create returns the signing secret: ${show(endpoint)}`);
  secrets.set(path, [...(secrets.get(path) ?? []), endpoint.secret]);
  return endpoint;
}

async function deleteEndpoint(id) {
  const { deleteWebhookEndpoint } = await api.gql(
    `mutation($id: ID!) { deleteWebhookEndpoint(id: $id) { deletedId userErrors { code message } } }`,
    { id },
  );
  assert.deepEqual(deleteWebhookEndpoint, { deletedId: id, userErrors: [] });
}

const endpointById = async (id) =>
  (await api.gql(`query($id: ID!) { webhookEndpoint(id: $id) { ${ENDPOINT} } }`, { id })).webhookEndpoint;

const deliveryById = async (id) =>
  (await api.gql(`query($id: ID!) { webhookDelivery(id: $id) { ${DELIVERY} } }`, { id })).webhookDelivery;

const deliveriesOf = async (endpointId) =>
  (
    await api.gql(
      `query($filter: WebhookDeliveryFilter) { webhookDeliveries(filter: $filter, first: 100) { nodes { ${DELIVERY} } } }`,
      { filter: { endpointId } },
    )
  ).webhookDeliveries.nodes;

/** Waits for the delivery of `eventId` to `endpointId` to satisfy `until`. */
const deliveryOfEvent = (endpointId, eventId, until, what, timeoutMs) =>
  waitFor(
    `the delivery of event ${eventId} to ${endpointId} ${what}`,
    async () => (await deliveriesOf(endpointId)).find((d) => d.eventId === eventId),
    (d) => d !== undefined && until(d),
    { timeoutMs },
  );

/** Waits for `count` requests at `path` carrying the stock.changed event of `groupId`. */
const requestsForGroup = (path, groupId, count = 1, timeoutMs = 15_000) =>
  waitFor(
    `${count} request(s) at ${path} for the stock.changed of group ${groupId}`,
    async () => receiver.requests(path).filter((r) => r.json?.type === "stock.changed" && r.json?.data?.groupId === groupId),
    (list) => list.length >= count,
    { timeoutMs },
  );

/** Verifies a received request with a secret; returns the payload or throws. */
const verify = (request, secret, headers = request.headers) => new Webhook(secret).verify(request.body, headers);

const attemptsOf = (delivery) => [...delivery.attempts].sort((a, b) => a.number - b.number);

test("a stock change reaches the endpoint as a signed {type, timestamp, data} request", async () => {
  const endpoint = await createEndpoint("/stock", { eventTypes: ["stock.*"], description: "stock feed" });
  try {
    const change = await api.receive("MUG-12OZ", "WH-MAIN", 2);
    const [request] = await requestsForGroup("/stock", change.groupId);

    assert.equal(request.method, "POST");
    assert.match(request.headers["content-type"] ?? "", /^application\/json/);
    assert.ok(request.webhookId, "webhook-id header");
    const timestamp = Number(request.headers["webhook-timestamp"]);
    assert.ok(
      /^\d+$/.test(request.headers["webhook-timestamp"] ?? "") && Math.abs(timestamp - Date.now() / 1000) < 300,
      `webhook-timestamp is unix seconds of now: ${request.headers["webhook-timestamp"]}`,
    );
    assert.match(request.headers["webhook-signature"] ?? "", /^v1,[A-Za-z0-9+/]+={0,2}$/, "one v1 signature");

    const payload = verify(request, endpoint.secret);
    assert.deepEqual(Object.keys(payload).sort(), ["data", "timestamp", "type"]);
    assert.equal(payload.type, "stock.changed");
    assert.ok(
      /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$/.test(payload.timestamp),
      `timestamp is RFC 3339: ${payload.timestamp}`,
    );
    assert.equal(payload.data.groupId, change.groupId);
    assert.equal(typeof payload.data.operation, "string");
    const level = change.levels[0];
    assert.equal(payload.data.level.sku, "MUG-12OZ");
    assert.equal(payload.data.level.locationCode, "WH-MAIN");
    assert.equal(payload.data.level.onHand, level.onHand);
    assert.equal(payload.data.level.available, level.available);
    assert.equal(payload.data.level.sequence, change.movements[0].sequence);
    assert.equal(payload.data.level.version, level.version);

    // The check means something: another secret or a changed body fails.
    assert.throws(() => verify(request, `whsec_${Buffer.from("not the secret at all!!").toString("base64")}`));
    assert.throws(() => new Webhook(endpoint.secret).verify(request.body.replace("MUG-12OZ", "MUG-13OZ"), request.headers));

    // webhook-id is the event's id, and the event log holds the same data.
    const delivered = await deliveryOfEvent(endpoint.id, request.webhookId, (d) => d.status === "SUCCEEDED", "to succeed");
    assert.equal(delivered.eventType, "stock.changed");
    assert.equal(delivered.attemptCount, 1);
    assert.equal(attemptsOf(delivered)[0].statusCode, 200);
    assert.deepEqual(delivered.payload, payload, "the stored payload is what was sent");
    const event = await findEvent(request.webhookId);
    assert.ok(event, `the event ${request.webhookId} is in the event log`);
    assert.equal(event.type, "stock.changed");
    assert.deepEqual(event.data, payload.data);
  } finally {
    await deleteEndpoint(endpoint.id);
  }
});

/** The event with this id, looked up through the whole log (oldest first, pages of 100). */
async function findEvent(id) {
  let after = null;
  for (let page = 0; page < 100; page++) {
    const { events } = await api.gql(
      `query($after: String) { events(first: 100, after: $after) {
        edges { cursor node { id type aggregateType aggregateId data createdAt position } } pageInfo { hasNextPage endCursor } } }`,
      { after },
    );
    const hit = events.edges.find((e) => e.node.id === id);
    if (hit) return hit.node;
    if (!events.pageInfo.hasNextPage) return undefined;
    after = events.pageInfo.endCursor;
  }
  return undefined;
}

test("event type filters: no types means every event, item.* gets item events and no stock events", async () => {
  const all = await createEndpoint("/all");
  const items = await createEndpoint("/items", { eventTypes: ["item.*"] });
  try {
    const change = await api.receive("CAP-NAVY", "WH-MAIN", 1);
    const sku = `E2E-HOOK-${Date.now()}`;
    await api.mutate(
      "createItem",
      `mutation($input: CreateItemInput!) { createItem(input: $input) { item { id sku } userErrors { code field message } } }`,
      { input: { sku, name: "Webhook filter probe" } },
    );
    const isItemCreated = (r) => r.json?.type === "item.created" && r.body.includes(sku);
    await waitFor(
      "the endpoint without event types to get both the stock.changed and the item.created",
      async () => receiver.requests("/all"),
      (list) => list.some((r) => r.json?.data?.groupId === change.groupId) && list.some(isItemCreated),
    );
    await waitFor("the item.* endpoint to get the item.created", async () => receiver.requests("/items"), (l) => l.some(isItemCreated));
    const wrong = receiver.requests("/items").filter((r) => !String(r.json?.type).startsWith("item."));
    assert.deepEqual(wrong.map((r) => r.json?.type), [], "the item.* endpoint got only item.* events");
    for (const r of receiver.requests("/items")) verify(r, items.secret);
    for (const r of receiver.requests("/all")) verify(r, all.secret);
  } finally {
    await deleteEndpoint(all.id);
    await deleteEndpoint(items.id);
  }
});

test("500, 500, then 200: the same webhook-id three times, the delivery SUCCEEDED with 3 attempts", async () => {
  receiver.on("/flaky", (r) => ({ status: r.attempt <= 2 ? 500 : 200 }));
  const endpoint = await createEndpoint("/flaky", { eventTypes: ["stock.changed"] });
  try {
    const change = await api.receive("TSHIRT-BLK-M", "WH-MAIN", 1);
    const requests = await requestsForGroup("/flaky", change.groupId, 3);
    assert.equal(new Set(requests.map((r) => r.webhookId)).size, 1, "one webhook-id across the retries");
    for (const r of requests) verify(r, endpoint.secret);
    for (const r of requests.slice(1)) assert.deepEqual(r.json, requests[0].json, "every retry sends the same payload");
    for (let i = 1; i < 3; i++) {
      const gap = requests[i].receivedAt - requests[i - 1].receivedAt;
      assert.ok(gap >= SCHEDULE[i] * 1000 - 50, `attempt ${i + 1} came ${gap} ms after attempt ${i}; the schedule says ${SCHEDULE[i]} s`);
    }

    const delivery = await deliveryOfEvent(endpoint.id, requests[0].webhookId, (d) => d.status === "SUCCEEDED", "to succeed");
    assert.equal(delivery.attemptCount, 3, show(delivery));
    const attempts = attemptsOf(delivery);
    assert.deepEqual(attempts.map((a) => a.number), [1, 2, 3]);
    assert.deepEqual(attempts.map((a) => a.statusCode), [500, 500, 200]);
    for (const a of attempts) {
      assert.ok(Number.isInteger(a.latencyMs) && a.latencyMs >= 0, `latencyMs: ${show(a)}`);
      assert.ok(!Number.isNaN(Date.parse(a.attemptedAt)), `attemptedAt: ${show(a)}`);
    }
    assert.match(attempts[0].responseExcerpt ?? "", /failing on purpose \(500\)/, "the failed attempt keeps the response's start");
    assert.equal(delivery.nextAttemptAt, null, "nothing more is scheduled");
    // A few more retries would show here; the count must stay at three.
    assert.equal(receiver.requests("/flaky").filter((r) => r.webhookId === requests[0].webhookId).length, 3);
  } finally {
    await deleteEndpoint(endpoint.id);
  }
});

test("Retry-After on a failure postpones the next attempt at least that long", async () => {
  receiver.on("/busy", (r) => (r.attempt === 1 ? { status: 503, headers: { "retry-after": "2" } } : { status: 200 }));
  const endpoint = await createEndpoint("/busy", { eventTypes: ["stock.changed"] });
  try {
    const change = await api.receive("TSHIRT-BLK-L", "WH-MAIN", 1);
    const [first, second] = await requestsForGroup("/busy", change.groupId, 2);
    const gap = second.receivedAt - first.receivedAt;
    assert.ok(gap >= 1900, `the retry came ${gap} ms after a 503 with Retry-After: 2 (schedule says ${SCHEDULE[1]} s)`);
    const delivery = await deliveryOfEvent(endpoint.id, first.webhookId, (d) => d.status === "SUCCEEDED", "to succeed");
    assert.deepEqual(attemptsOf(delivery).map((a) => a.statusCode), [503, 200]);
  } finally {
    await deleteEndpoint(endpoint.id);
  }
});

test("a redirect is a failure and is not followed", async () => {
  receiver.on("/moved", () => ({ status: 302, headers: { location: receiver.url("/moved-here") } }));
  const endpoint = await createEndpoint("/moved", { eventTypes: ["stock.changed"] });
  try {
    const change = await api.receive("MUG-12OZ", "STORE-1", 1);
    const [request] = await requestsForGroup("/moved", change.groupId);
    const delivery = await deliveryOfEvent(endpoint.id, request.webhookId, (d) => d.status === "DEAD", "to end DEAD");
    assert.deepEqual(attemptsOf(delivery).map((a) => a.statusCode), [302, 302, 302]);
    assert.deepEqual(receiver.requests("/moved-here"), [], "the Location was never requested");
  } finally {
    await deleteEndpoint(endpoint.id);
  }
});

test("a receiver slower than TWH_WEBHOOK_TIMEOUT_MS fails that attempt; the next one succeeds", async () => {
  receiver.on("/slow", (r) => (r.attempt === 1 ? { status: 200, delayMs: TIMEOUT_MS + 2500 } : { status: 200 }));
  const endpoint = await createEndpoint("/slow", { eventTypes: ["stock.changed"] });
  try {
    const change = await api.receive("CAP-NAVY", "STORE-1", 1);
    const [request] = await requestsForGroup("/slow", change.groupId, 2);
    const delivery = await deliveryOfEvent(endpoint.id, request.webhookId, (d) => d.status === "SUCCEEDED", "to succeed");
    const [timedOut, ok] = attemptsOf(delivery);
    assert.equal(timedOut.statusCode, null, `a timed-out attempt has no status: ${show(timedOut)}`);
    assert.ok(timedOut.error, `a timed-out attempt says why: ${show(timedOut)}`);
    assert.ok(
      timedOut.latencyMs >= TIMEOUT_MS - 100 && timedOut.latencyMs < TIMEOUT_MS + 2000,
      `it gave up after about ${TIMEOUT_MS} ms: ${show(timedOut)}`,
    );
    assert.equal(ok.statusCode, 200);
  } finally {
    await deleteEndpoint(endpoint.id);
  }
});

test("always failing ends DEAD; replayWebhookDeliveries(DEAD) after the fix delivers it, SUCCEEDED", async () => {
  let fixed = false;
  receiver.on("/dead", () => ({ status: fixed ? 200 : 500 }));
  const endpoint = await createEndpoint("/dead", { eventTypes: ["stock.changed"] });
  try {
    const change = await api.receive("MUG-12OZ", "WH-MAIN", 1);
    const requests = await requestsForGroup("/dead", change.groupId, SCHEDULE.length);
    const webhookId = requests[0].webhookId;
    const dead = await deliveryOfEvent(endpoint.id, webhookId, (d) => d.status === "DEAD", "to end DEAD");
    assert.equal(dead.attemptCount, SCHEDULE.length);
    assert.deepEqual(attemptsOf(dead).map((a) => a.statusCode), SCHEDULE.map(() => 500));
    assert.equal(dead.nextAttemptAt, null, `a dead delivery is not scheduled: ${show(dead)}`);
    assert.equal(receiver.requests("/dead").length, SCHEDULE.length, "no attempt past the schedule");

    const filtered = (
      await api.gql(
        `query($filter: WebhookDeliveryFilter) { webhookDeliveries(filter: $filter, first: 100) { nodes { id status } } }`,
        { filter: { endpointId: endpoint.id, status: "DEAD" } },
      )
    ).webhookDeliveries.nodes;
    assert.deepEqual(filtered, [{ id: dead.id, status: "DEAD" }], "the status filter finds the dead letter");

    fixed = true;
    const { replayWebhookDeliveries } = await api.gql(
      `mutation($input: ReplayWebhookDeliveriesInput!) {
        replayWebhookDeliveries(input: $input) { replayedCount userErrors { code field message } } }`,
      { input: { endpointId: endpoint.id, statuses: ["DEAD"] } },
    );
    assert.deepEqual(replayWebhookDeliveries, { replayedCount: 1, userErrors: [] });
    const [replayed] = await waitFor(
      "the replayed request",
      async () => receiver.requests("/dead").slice(SCHEDULE.length),
      (list) => list.length >= 1,
    );
    assert.equal(replayed.webhookId, webhookId, "a replay keeps the webhook-id");
    verify(replayed, endpoint.secret);
    const done = await waitFor(
      `delivery ${dead.id} to become SUCCEEDED after the replay`,
      () => deliveryById(dead.id),
      (d) => d?.status === "SUCCEEDED",
    );
    assert.equal(attemptsOf(done).at(-1).statusCode, 200);
  } finally {
    await deleteEndpoint(endpoint.id);
  }
});

test("410 Gone disables the endpoint, and it gets nothing more", async () => {
  receiver.on("/gone", 410);
  const endpoint = await createEndpoint("/gone", { eventTypes: ["stock.changed"] });
  const witness = await createEndpoint("/witness", { eventTypes: ["stock.changed"] });
  try {
    const change = await api.receive("TSHIRT-BLK-M", "STORE-1", 1);
    await requestsForGroup("/gone", change.groupId);
    const disabled = await waitFor(
      "the endpoint to be DISABLED after a 410",
      () => endpointById(endpoint.id),
      (e) => e?.status === "DISABLED",
    );
    assert.match(disabled.disabledReason ?? "", /410/, `disabledReason names the 410: ${show(disabled)}`);
    assert.ok(disabled.version > endpoint.version, "disabling is a change of the endpoint");

    const later = await api.receive("TSHIRT-BLK-M", "STORE-1", 1);
    await requestsForGroup("/witness", later.groupId);
    assert.equal(receiver.requests("/gone").length, 1, "a disabled endpoint gets no retry and no new event");
  } finally {
    await deleteEndpoint(endpoint.id);
    await deleteEndpoint(witness.id);
  }
});

test("secret rotation: during the overlap each delivery carries two v1 signatures, old and new", async () => {
  const endpoint = await createEndpoint("/rotate");
  const oldSecret = endpoint.secret;
  const sendTest = async () =>
    (
      await api.mutate(
        "sendTestWebhook",
        `mutation($id: ID!) { sendTestWebhook(endpointId: $id) { delivery { ${DELIVERY} } userErrors { code field message } } }`,
        { id: endpoint.id },
      )
    ).delivery;
  const received = (delivery) =>
    waitFor(
      `the test webhook ${delivery.eventId} at /rotate`,
      async () => receiver.requests("/rotate").find((r) => r.webhookId === delivery.eventId),
    );
  try {
    const before = await received(await sendTest());
    verify(before, oldSecret);
    assert.equal(before.headers["webhook-signature"].split(" ").length, 1, "one signature before any rotation");

    const { endpoint: rotated } = await api.mutate(
      "rotateWebhookEndpointSecret",
      `mutation($id: ID!) { rotateWebhookEndpointSecret(id: $id) { endpoint { ${ENDPOINT} } userErrors { code field message } } }`,
      { id: endpoint.id },
    );
    const newSecret = rotated.secret;
    assert.match(newSecret ?? "", /^whsec_/, `the rotation returns the new secret: ${show(rotated)}`);
    assert.notEqual(newSecret, oldSecret);
    assert.ok(rotated.version > endpoint.version, "a rotation is a change of the endpoint");
    secrets.set("/rotate", [oldSecret, newSecret]);

    const during = await received(await sendTest());
    const signatures = during.headers["webhook-signature"].split(" ");
    assert.equal(signatures.length, 2, `two signatures during the overlap: ${during.headers["webhook-signature"]}`);
    for (const s of signatures) assert.match(s, /^v1,[A-Za-z0-9+/]+={0,2}$/);
    verify(during, oldSecret);
    verify(during, newSecret);
    // Each signature is one secret's: not the same signature twice.
    const owners = signatures.map((signature) =>
      [oldSecret, newSecret].filter((secret) => {
        try {
          verify(during, secret, { ...during.headers, "webhook-signature": signature });
          return true;
        } catch {
          return false;
        }
      }),
    );
    assert.deepEqual(
      owners.map((o) => o.length),
      [1, 1],
      "each of the two signatures verifies with exactly one of the secrets",
    );
    assert.notDeepEqual(owners[0], owners[1], "the two signatures are of different secrets");
  } finally {
    await deleteEndpoint(endpoint.id);
  }
});

test("sendTestWebhook delivers a webhook.test event", async () => {
  const endpoint = await createEndpoint("/test-event", { eventTypes: ["stock.changed"] });
  try {
    const { delivery } = await api.mutate(
      "sendTestWebhook",
      `mutation($id: ID!) { sendTestWebhook(endpointId: $id) { delivery { ${DELIVERY} } userErrors { code field message } } }`,
      { id: endpoint.id },
    );
    assert.equal(delivery.endpointId, endpoint.id);
    assert.equal(delivery.eventType, "webhook.test");
    const request = await waitFor(
      "the webhook.test request",
      async () => receiver.requests("/test-event").find((r) => r.webhookId === delivery.eventId),
    );
    const payload = verify(request, endpoint.secret);
    assert.equal(payload.type, "webhook.test");
    assert.ok(payload.timestamp && payload.data !== undefined, show(payload));
    await waitFor(`test delivery ${delivery.id} to be SUCCEEDED`, () => deliveryById(delivery.id), (d) => d?.status === "SUCCEEDED");
  } finally {
    await deleteEndpoint(endpoint.id);
  }
});

test("the event log: events(filter) and GET /v1/events list a write's stock.changed by position; after= pages on", async (t) => {
  const first = await api.receive("MUG-12OZ", "STORE-1", 1);
  const second = await api.receive("MUG-12OZ", "STORE-1", 1);
  const stockEvents = async () => {
    const edges = [];
    let after = null;
    for (let page = 0; page < 100; page++) {
      const { events } = await api.gql(
        `query($after: String) { events(filter: {types: ["stock.changed"]}, first: 100, after: $after) {
          edges { cursor node { id type aggregateType aggregateId data createdAt position } } pageInfo { hasNextPage endCursor } } }`,
        { after },
      );
      edges.push(...events.edges);
      if (!events.pageInfo.hasNextPage) break;
      after = events.pageInfo.endCursor;
    }
    return edges;
  };
  const edges = await waitFor(
    "both writes' stock.changed events in events(filter: {types: [\"stock.changed\"]})",
    stockEvents,
    (list) => [first, second].every((c) => list.some((e) => e.node.data?.groupId === c.groupId)),
  );
  assert.ok(edges.every((e) => e.node.type === "stock.changed"), "the type filter holds");
  const positions = edges.map((e) => e.node.position);
  assert.ok(positions.every(Number.isInteger), "every event has a position");
  assert.deepEqual(positions, [...positions].sort((a, b) => a - b), "oldest first, by position");
  assert.equal(new Set(positions).size, positions.length, "positions are unique");
  const e1 = edges.find((e) => e.node.data.groupId === first.groupId);
  const e2 = edges.find((e) => e.node.data.groupId === second.groupId);
  assert.ok(e1.node.position < e2.node.position, "the later write has the later position");
  assert.equal(e1.node.data.level.sku, "MUG-12OZ");
  assert.ok(e1.node.aggregateType && e1.node.aggregateId, show(e1.node));

  const { events: later } = await api.gql(
    `query($after: String) { events(filter: {types: ["stock.changed"]}, first: 100, after: $after) {
      nodes { id position } } }`,
    { after: e1.cursor },
  );

  await t.test("GraphQL: after: the first event's cursor gives only later events", async () => {
    assert.ok(later.nodes.length >= 1);
    assert.ok(later.nodes.every((n) => n.position > e1.node.position), `only later events: ${show(later.nodes)}`);
    assert.ok(later.nodes.some((n) => n.id === e2.node.id));
    assert.ok(!later.nodes.some((n) => n.id === e1.node.id));
  });

  await t.test("REST: GET /v1/events lists the same event, and after= gives the same page", async () => {
    const all = [];
    let path = "/v1/events?type=stock.changed&first=100";
    for (let page = 0; page < 100 && path; page++) {
      const r = await api.rest("GET", path);
      assert.equal(r.status, 200, `GET ${path}: ${r.text}`);
      assert.ok(Array.isArray(r.json?.data) && r.json.pageInfo, `{data, pageInfo}: ${r.text.slice(0, 300)}`);
      all.push(...r.json.data);
      path = r.json.pageInfo.hasNextPage
        ? `/v1/events?type=stock.changed&first=100&after=${encodeURIComponent(r.json.pageInfo.endCursor)}`
        : null;
    }
    const restE1 = all.find((e) => e.id === e1.node.id);
    assert.ok(restE1, `GET /v1/events lists event ${e1.node.id}`);
    assert.equal(restE1.position, e1.node.position);
    assert.equal(restE1.type, "stock.changed");
    assert.deepEqual(restE1.data, e1.node.data);
    assert.ok(all.every((e) => e.type === "stock.changed"));

    const restLater = await api.rest("GET", `/v1/events?type=stock.changed&first=100&after=${encodeURIComponent(e1.cursor)}`);
    assert.equal(restLater.status, 200, restLater.text);
    assert.deepEqual(
      restLater.json.data.map((e) => e.id),
      later.nodes.map((n) => n.id),
      "REST after= gives the same page as GraphQL after:",
    );
  });

  await t.test("REST: GET /v1/events?type=a&type=b gives both types and no other", async () => {
    const sku = `E2E-EVT-${Date.now()}`;
    await api.mutate(
      "createItem",
      `mutation($input: CreateItemInput!) { createItem(input: $input) { item { id } userErrors { code field message } } }`,
      { input: { sku, name: "Event log probe" } },
    );
    const mixed = await waitFor(
      "GET /v1/events?type=stock.changed&type=item.created to list the new item",
      async () => {
        const found = [];
        let next = "/v1/events?type=stock.changed&type=item.created&first=100";
        for (let page = 0; page < 100 && next; page++) {
          const r = await api.rest("GET", next);
          assert.equal(r.status, 200, r.text);
          found.push(...r.json.data);
          next = r.json.pageInfo.hasNextPage
            ? `/v1/events?type=stock.changed&type=item.created&first=100&after=${encodeURIComponent(r.json.pageInfo.endCursor)}`
            : null;
        }
        return found;
      },
      (list) => list.some((e) => e.type === "item.created" && JSON.stringify(e.data).includes(sku)),
    );
    assert.deepEqual([...new Set(mixed.map((e) => e.type))].sort(), ["item.created", "stock.changed"]);
  });
});

test("the REST twins: create (201), list, read, test, deliveries, replay, PATCH with If-Match, delete", async () => {
  const created = await api.rest("POST", "/v1/webhook-endpoints", {
    body: { url: receiver.url("/rest"), eventTypes: ["stock.changed"], description: "via REST" },
  });
  assert.equal(created.status, 201, `POST /v1/webhook-endpoints: ${created.text}`);
  const endpoint = created.json;
  assert.equal(endpoint.url, receiver.url("/rest"));
  assert.deepEqual(endpoint.eventTypes, ["stock.changed"]);
  assert.equal(endpoint.status, "ENABLED");
  assert.match(endpoint.secret ?? "", /^whsec_/);
  assert.equal(created.headers.get("etag"), `"${endpoint.version}"`);
  secrets.set("/rest", [endpoint.secret]);
  let deleted = false;
  try {
    const list = await api.rest("GET", "/v1/webhook-endpoints");
    assert.equal(list.status, 200, list.text);
    assert.ok(list.json.data.some((e) => e.id === endpoint.id), `the list has it: ${list.text.slice(0, 500)}`);

    const one = await api.rest("GET", `/v1/webhook-endpoints/${endpoint.id}`);
    assert.equal(one.status, 200, one.text);
    assert.equal(one.json.id, endpoint.id);
    assert.equal(one.headers.get("etag"), `"${one.json.version}"`);

    const sent = await api.rest("POST", `/v1/webhook-endpoints/${endpoint.id}/test`);
    assert.ok(sent.status >= 200 && sent.status < 300, `POST …/test: ${sent.status} ${sent.text}`);
    assert.equal(sent.json.eventType, "webhook.test");
    const delivery = sent.json;
    await waitFor("the REST test webhook", async () => receiver.requests("/rest").filter((r) => r.webhookId === delivery.eventId), (l) => l.length === 1);

    const deliveries = await waitFor(
      `GET /v1/webhook-deliveries?endpointId=${endpoint.id} to show the delivery SUCCEEDED`,
      async () => {
        const r = await api.rest("GET", `/v1/webhook-deliveries?endpointId=${encodeURIComponent(endpoint.id)}`);
        assert.equal(r.status, 200, r.text);
        return r.json.data;
      },
      (data) => data.some((d) => d.id === delivery.id && d.status === "SUCCEEDED"),
    );
    assert.ok(deliveries.every((d) => d.endpointId === endpoint.id), "filtered by endpoint");
    const single = await api.rest("GET", `/v1/webhook-deliveries/${delivery.id}`);
    assert.equal(single.status, 200, single.text);
    assert.equal(single.json.attempts.length, 1);

    const replay = await api.rest("POST", "/v1/webhook-deliveries/replay", { body: { deliveryIds: [delivery.id] } });
    assert.equal(replay.status, 200, `POST /v1/webhook-deliveries/replay: ${replay.text}`);
    assert.equal(replay.json.replayedCount, 1);
    await waitFor(
      "the replayed REST test webhook (same webhook-id)",
      async () => receiver.requests("/rest").filter((r) => r.webhookId === delivery.eventId),
      (l) => l.length === 2,
    );

    const noMatch = await api.rest("PATCH", `/v1/webhook-endpoints/${endpoint.id}`, { body: { enabled: false } });
    assert.equal(noMatch.status, 428, `PATCH without If-Match: ${noMatch.text}`);
    const current = await api.rest("GET", `/v1/webhook-endpoints/${endpoint.id}`);
    const off = await api.rest("PATCH", `/v1/webhook-endpoints/${endpoint.id}`, {
      body: { enabled: false },
      headers: { "if-match": current.headers.get("etag") },
    });
    assert.equal(off.status, 200, `PATCH {"enabled": false}: ${off.text}`);
    assert.equal(off.json.status, "DISABLED");
    const stale = await api.rest("PATCH", `/v1/webhook-endpoints/${endpoint.id}`, {
      body: { enabled: true },
      headers: { "if-match": current.headers.get("etag") },
    });
    assert.equal(stale.status, 412, `PATCH with a stale If-Match: ${stale.text}`);
    const on = await api.rest("PATCH", `/v1/webhook-endpoints/${endpoint.id}`, {
      body: { enabled: true, description: "via REST, back on" },
      headers: { "if-match": off.headers.get("etag") },
    });
    assert.equal(on.status, 200, on.text);
    assert.equal(on.json.status, "ENABLED");
    assert.equal(on.json.description, "via REST, back on");

    const gone = await api.rest("DELETE", `/v1/webhook-endpoints/${endpoint.id}`);
    assert.equal(gone.status, 200, gone.text);
    assert.deepEqual(gone.json, { deletedId: endpoint.id });
    deleted = true;
    const missing = await api.rest("GET", `/v1/webhook-endpoints/${endpoint.id}`);
    assert.equal(missing.status, 404, missing.text);
  } finally {
    if (!deleted) await api.rest("DELETE", `/v1/webhook-endpoints/${endpoint.id}`);
  }
});

test("metrics: deliveries by outcome, dead letters and outbox lag are exported", async () => {
  // A dead letter now, so that twh_webhook_dead_letters has one to count.
  receiver.on("/metrics-dead", 500);
  const endpoint = await createEndpoint("/metrics-dead", { eventTypes: ["stock.changed"] });
  try {
    const { delivery } = await api.mutate(
      "sendTestWebhook",
      `mutation($id: ID!) { sendTestWebhook(endpointId: $id) { delivery { id } userErrors { code field message } } }`,
      { id: endpoint.id },
    );
    await waitFor(`test delivery ${delivery.id} to end DEAD`, () => deliveryById(delivery.id), (d) => d?.status === "DEAD");
    await waitFor(
      "twh_webhook_dead_letters to count the dead delivery",
      () => metricSamples(server, "twh_webhook_dead_letters"),
      (samples) => samples.reduce((sum, s) => sum + s.value, 0) >= 1,
      { timeoutMs: 30_000, intervalMs: 500 },
    );
  } finally {
    await deleteEndpoint(endpoint.id);
  }

  const outcomes = await metricSamples(server, "twh_webhook_deliveries_total");
  const labels = new Set(outcomes.map((s) => /outcome="([^"]*)"/.exec(s.labels)?.[1]).filter(Boolean));
  assert.ok(labels.size >= 2, `twh_webhook_deliveries_total{outcome} counts successes and failures: ${show(outcomes)}`);
  assert.ok(outcomes.every((s) => s.value >= 0) && outcomes.some((s) => s.value > 0), show(outcomes));
  const dead = await metricSamples(server, "twh_webhook_dead_letters");
  assert.ok(dead.length >= 1 && dead.every((s) => Number.isFinite(s.value) && s.value >= 0), `twh_webhook_dead_letters: ${show(dead)}`);
  const lag = await metricSamples(server, "twh_outbox_lag_seconds");
  assert.ok(lag.length >= 1 && lag.every((s) => Number.isFinite(s.value) && s.value >= 0), `twh_outbox_lag_seconds: ${show(lag)}`);
});

test("every request the receiver got verifies with its endpoint's secret", () => {
  const all = receiver.requests();
  assert.ok(all.length >= 10, `the suite's deliveries reached the receiver (${all.length})`);
  for (const request of all) {
    const candidates = secrets.get(request.path) ?? [];
    assert.ok(candidates.length, `a request at ${request.path}, which no endpoint targets`);
    const ok = candidates.some((secret) => {
      try {
        verify(request, secret);
        return true;
      } catch {
        return false;
      }
    });
    assert.ok(ok, `request ${request.webhookId} at ${request.path} verifies with none of its secrets`);
    assert.deepEqual(Object.keys(request.json ?? {}).sort(), ["data", "timestamp", "type"], request.body.slice(0, 300));
  }
});

test("without TWH_WEBHOOK_ALLOW_PRIVATE_TARGETS a loopback URL is refused with INVALID_INPUT", async (t) => {
  const strict = await startServer();
  const strictApi = client(strict);
  try {
    await t.test("GraphQL: createWebhookEndpoint answers INVALID_INPUT on input.url", async () => {
      for (const url of [`http://127.0.0.1:${receiver.port}/x`, `http://localhost:${receiver.port}/x`, `http://[::1]:${receiver.port}/x`]) {
        const { createWebhookEndpoint } = await strictApi.gql(
          `mutation($input: CreateWebhookEndpointInput!) {
            createWebhookEndpoint(input: $input) { endpoint { id } userErrors { code field message } } }`,
          { input: { url } },
        );
        assert.equal(createWebhookEndpoint.endpoint, null, `${url} is refused: ${show(createWebhookEndpoint)}`);
        assert.deepEqual(
          createWebhookEndpoint.userErrors.map(({ code, field }) => ({ code, field })),
          [{ code: "INVALID_INPUT", field: ["input", "url"] }],
          `${url}: ${show(createWebhookEndpoint)}`,
        );
      }
    });
    await t.test("REST: POST /v1/webhook-endpoints answers 422 INVALID_INPUT", async () => {
      const rest = await strictApi.rest("POST", "/v1/webhook-endpoints", { body: { url: `http://127.0.0.1:${receiver.port}/x` } });
      assert.equal(rest.status, 422, `POST /v1/webhook-endpoints refuses it too (422 INVALID_INPUT): ${rest.status} ${rest.text}`);
      assert.equal(rest.json?.code, "INVALID_INPUT", `the problem's code: ${rest.text}`);
    });
    await t.test("nothing was created and nothing called", async () => {
      const { webhookEndpoints } = await strictApi.gql(`{ webhookEndpoints(first: 10) { nodes { id url } } }`);
      assert.deepEqual(webhookEndpoints.nodes, [], "nothing was created");
      assert.equal(receiver.requests("/x").length, 0, "the refused URL was never called");
    });
  } finally {
    await strict.stop();
  }
});
