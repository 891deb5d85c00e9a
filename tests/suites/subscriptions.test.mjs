// GraphQL subscriptions over graphql-transport-ws against a real `twh serve`: the `graphql-ws`
// client (with `ws`) for what clients do, raw `ws` connections for close codes, limits and pings.
// Writes go over HTTP, as they would from another client.

import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { client, show, waitFor } from "../lib/api.mjs";
import { runTwh, startServer } from "../lib/server.mjs";
import { closeOf, connect, describe, noneOpen, openSubscriptions, rawConnect, subscribe, subscribed } from "../lib/ws.mjs";

const STOCK_CHANGED = `eventId position groupId operation sequence createdAt
  level { sku locationCode onHand available sequence version }`;
const EVENT = `id type aggregateType aggregateId data createdAt position`;

let server;
let api;
const clients = [];

before(async () => {
  server = await startServer();
  api = client(server);
});
after(async () => {
  for (const c of clients) await c.dispose();
  await server?.stop();
});

/** A graphql-ws client closed when the suite ends. */
function wsClient(target, options) {
  const c = connect(target, options);
  clients.push(c);
  return c;
}

const noErrors = (sub, what) => {
  assert.deepEqual(sub.errors.map(describe), [], `${what}: the subscription failed`);
  const withErrors = sub.results.filter((r) => r.errors?.length);
  assert.deepEqual(withErrors, [], `${what}: results with errors`);
};

test("stockChanged(sku, locationCode) gets the level and sequence of an adjustStock made over HTTP, and only its own", async () => {
  const base = await noneOpen(server);
  const ws = wsClient(server);
  const sub = subscribe(ws, `subscription($sku: String, $loc: String) { stockChanged(sku: $sku, locationCode: $loc) { ${STOCK_CHANGED} } }`, {
    sku: "MUG-12OZ",
    loc: "WH-MAIN",
  });
  try {
    await subscribed(server, base + 1, [sub]);
    const other = await api.receive("CAP-NAVY", "WH-MAIN", 1); // another SKU: not for this subscription
    const sameSkuElsewhere = await api.receive("MUG-12OZ", "STORE-1", 1); // another location
    const change = await api.receive("MUG-12OZ", "WH-MAIN", 3);
    const [event] = await waitFor(
      "the stockChanged event of the MUG-12OZ at WH-MAIN write",
      async () => sub.values("stockChanged").filter((e) => e.groupId === change.groupId),
      (list) => list.length >= 1,
    );
    noErrors(sub, "stockChanged");
    assert.equal(event.level.sku, "MUG-12OZ");
    assert.equal(event.level.locationCode, "WH-MAIN");
    assert.equal(event.level.onHand, change.levels[0].onHand);
    assert.equal(event.level.available, change.levels[0].available);
    assert.equal(event.level.version, change.levels[0].version);
    assert.equal(event.sequence, change.movements[0].sequence);
    assert.equal(event.level.sequence, change.movements[0].sequence);
    assert.ok(Number.isInteger(event.position) && event.position > 0, show(event));
    assert.ok(event.eventId && typeof event.operation === "string" && event.operation, show(event));
    const seen = sub.values("stockChanged");
    assert.deepEqual(
      seen.filter((e) => e.groupId === other.groupId || e.groupId === sameSkuElsewhere.groupId),
      [],
      "the filter keeps out the other SKU and the other location",
    );
    assert.ok(seen.every((e) => e.level.sku === "MUG-12OZ" && e.level.locationCode === "WH-MAIN"), show(seen));

    // The same event, with the same position, is in the event log.
    const logged = await findEvent(event.eventId);
    assert.ok(logged, `event ${event.eventId} is in the event log`);
    assert.equal(logged.position, event.position);
  } finally {
    sub.dispose();
  }
});

/** The event with this id in the stock.changed log (pages of 100). */
async function findEvent(id) {
  let after = null;
  for (let page = 0; page < 100; page++) {
    const { events } = await api.gql(
      `query($after: String) { events(filter: {types: ["stock.changed"]}, first: 100, after: $after) {
        nodes { id position } pageInfo { hasNextPage endCursor } } }`,
      { after },
    );
    const hit = events.nodes.find((e) => e.id === id);
    if (hit) return hit;
    if (!events.pageInfo.hasNextPage) return undefined;
    after = events.pageInfo.endCursor;
  }
  return undefined;
}

test("events(types) delivers the tenant's events of those types; another tenant never sees them", async () => {
  const created = JSON.parse(await runTwh(server, ["tenant", "create", "--name", "other"]));
  assert.ok(created.tenantId && created.apiKey, show(created));
  assert.notEqual(created.tenantId, server.tenantId);
  const other = client(server, created.apiKey);
  // The same location code and SKU as the sandbox's, so only the tenant tells them apart.
  await other.mutate(
    "createLocation",
    `mutation($input: CreateLocationInput!) { createLocation(input: $input) { location { code } userErrors { code field message } } }`,
    { input: { code: "WH-MAIN", name: "Other tenant's main warehouse" } },
  );
  await other.mutate(
    "createItem",
    `mutation($input: CreateItemInput!) { createItem(input: $input) { item { sku } userErrors { code field message } } }`,
    { input: { sku: "MUG-12OZ", name: "Other tenant's mug" } },
  );

  const base = await noneOpen(server);
  const mine = wsClient(server);
  const theirs = wsClient(server, { apiKey: created.apiKey });
  const eventsQuery = `subscription($types: [String!]) { events(types: $types) { ${EVENT} } }`;
  const stockQuery = `subscription { stockChanged(sku: "MUG-12OZ", locationCode: "WH-MAIN") { ${STOCK_CHANGED} } }`;
  const myEvents = subscribe(mine, eventsQuery, { types: ["stock.changed"] });
  const theirEvents = subscribe(theirs, eventsQuery, { types: ["stock.changed"] });
  const theirStock = subscribe(theirs, stockQuery);
  const subs = [myEvents, theirEvents, theirStock];
  try {
    await subscribed(server, base + 3, subs);
    // An event of another type first, then the stock change: the type filter must drop the first.
    await api.mutate(
      "createItem",
      `mutation($input: CreateItemInput!) { createItem(input: $input) { item { sku } userErrors { code field message } } }`,
      { input: { sku: `E2E-SUB-${Date.now()}`, name: "Subscription filter probe" } },
    );
    const myChange = await api.receive("MUG-12OZ", "WH-MAIN", 1);
    const theirChange = await other.receive("MUG-12OZ", "WH-MAIN", 4);

    const mineGot = await waitFor(
      "the sandbox's events subscription to get its stock.changed",
      async () => myEvents.values("events"),
      (list) => list.some((e) => e.data?.groupId === myChange.groupId),
    );
    const theirsGot = await waitFor(
      "the other tenant's events subscription to get its own stock.changed",
      async () => theirEvents.values("events"),
      (list) => list.some((e) => e.data?.groupId === theirChange.groupId),
    );
    const theirLevel = await waitFor(
      "the other tenant's stockChanged to get its own change",
      async () => theirStock.values("stockChanged").find((e) => e.groupId === theirChange.groupId),
    );
    for (const [sub, what] of [[myEvents, "events"], [theirEvents, "other tenant's events"], [theirStock, "other tenant's stockChanged"]]) {
      noErrors(sub, what);
    }

    assert.ok(mineGot.every((e) => e.type === "stock.changed"), `only stock.changed: ${show(mineGot.map((e) => e.type))}`);
    const mine1 = mineGot.find((e) => e.data.groupId === myChange.groupId);
    assert.equal(mine1.data.level.sku, "MUG-12OZ");
    assert.ok(Number.isInteger(mine1.position) && mine1.id && mine1.aggregateType && mine1.aggregateId, show(mine1));
    assert.equal(theirLevel.level.onHand, 4, "the other tenant's own level: its first 4 units");

    assert.deepEqual(
      mineGot.filter((e) => e.data?.groupId === theirChange.groupId),
      [],
      "the sandbox never sees the other tenant's event",
    );
    assert.deepEqual(
      theirsGot.filter((e) => e.data?.groupId !== theirChange.groupId),
      [],
      "the other tenant's events subscription sees only its own event",
    );
    assert.deepEqual(
      theirStock.values("stockChanged").filter((e) => e.groupId !== theirChange.groupId),
      [],
      "the other tenant's stockChanged (same SKU and location code) sees only its own change",
    );
  } finally {
    for (const s of subs) s.dispose();
  }
});

test("connection_init with a wrong key, or none, is closed with 4403", async () => {
  const cases = [
    ["a wrong key", { authorization: "Bearer twh_test_notarealkey0000000000000000" }],
    ["no authorization", {}],
    ["no payload at all", undefined],
    ["a truncated key without Bearer", { authorization: server.apiKey.slice(0, -2) }],
  ];
  for (const path of ["/graphql/ws", "/graphql"]) {
    for (const [what, payload] of cases) {
      const raw = rawConnect(server, { path });
      const protocol = await raw.opened;
      assert.equal(protocol, "graphql-transport-ws", `${path}: the server agrees on the subprotocol`);
      await raw.init(payload);
      const { code, reason } = await closeOf(raw);
      assert.equal(code, 4403, `${path}, ${what}: closed with ${code} ${reason}; messages ${show(raw.messages)}`);
      assert.match(reason, /forbidden/i, `${path}, ${what}: reason ${reason}`);
      assert.ok(!raw.messages.some((m) => m.type === "connection_ack"), `${path}, ${what}: no connection_ack`);
    }
  }
  // The right key is acknowledged on the same connection kind.
  const good = rawConnect(server);
  await good.init({ authorization: `Bearer ${server.apiKey}` });
  await waitFor("connection_ack for the right key", async () => good.messages, (m) => m.some((x) => x.type === "connection_ack"));
  good.close();
  await closeOf(good);
});

test("the same subscription works at ws://…/graphql (upgrade on the GraphQL path)", async () => {
  const base = await noneOpen(server);
  const ws = wsClient(server, { path: "/graphql" });
  const sub = subscribe(ws, `subscription { stockChanged(sku: "TSHIRT-BLK-L", locationCode: "STORE-1") { ${STOCK_CHANGED} } }`);
  try {
    await subscribed(server, base + 1, [sub]);
    const change = await api.receive("TSHIRT-BLK-L", "STORE-1", 2);
    const event = await waitFor(
      "the stockChanged event at /graphql",
      async () => sub.values("stockChanged").find((e) => e.groupId === change.groupId),
    );
    noErrors(sub, "stockChanged at /graphql");
    assert.equal(event.level.onHand, change.levels[0].onHand);
    assert.equal(event.sequence, change.movements[0].sequence);
  } finally {
    sub.dispose();
  }
  // Plain GraphQL over HTTP at /graphql still works beside the upgrade.
  const { stockLevel } = await api.gql(`{ stockLevel(sku: "TSHIRT-BLK-L", locationCode: "STORE-1") { sku } }`);
  assert.equal(stockLevel.sku, "TSHIRT-BLK-L");
});

test("purchaseOrderUpdated(id) opens with the document as it is, emits it when it changes, and only that document", async () => {
  const PO = `id number status version supplier lines { sku locationCode quantity outstanding received }`;
  const create = async (supplier, quantity) =>
    (
      await api.mutate(
        "createPurchaseOrder",
        `mutation($input: CreatePurchaseOrderInput!) {
          createPurchaseOrder(input: $input) { purchaseOrder { ${PO} } userErrors { code field message } } }`,
        { input: { supplier, lines: [{ sku: "MUG-12OZ", locationCode: "WH-MAIN", quantity, unitCost: "2.50" }] } },
      )
    ).purchaseOrder;
  const submit = async (po) =>
    (
      await api.mutate(
        "submitPurchaseOrder",
        `mutation($id: ID!, $v: Int) {
          submitPurchaseOrder(id: $id, expectedVersion: $v) { purchaseOrder { ${PO} } userErrors { code field message } } }`,
        { id: po.id, v: po.version },
      )
    ).purchaseOrder;

  const watched = await create("Subscribed Supplier", 12);
  const unwatched = await create("Other Supplier", 5);
  assert.equal(watched.status, "DRAFT");
  const base = await noneOpen(server);
  const ws = wsClient(server);
  const sub = subscribe(ws, `subscription($id: ID!) { purchaseOrderUpdated(id: $id) { ${PO} } }`, { id: watched.id });
  try {
    await subscribed(server, base + 1, [sub]);
    const opened = await waitFor(`purchaseOrderUpdated to open with ${watched.number}`, async () => sub.values("purchaseOrderUpdated")[0]);
    assert.deepEqual(opened, watched, "the first message is the document as it is");
    await submit(unwatched);
    const submitted = await submit(watched);
    assert.equal(submitted.status, "ORDERED");
    const update = await waitFor(
      `purchaseOrderUpdated to emit ${watched.number} as ORDERED`,
      async () => sub.values("purchaseOrderUpdated").find((po) => po.status === "ORDERED"),
    );
    noErrors(sub, "purchaseOrderUpdated");
    assert.deepEqual(update, submitted, "the emitted document is the document as the submit left it");
    assert.deepEqual(
      sub.values("purchaseOrderUpdated").filter((po) => po.id !== watched.id),
      [],
      "no other order's changes",
    );
  } finally {
    sub.dispose();
  }
});

test("jobUpdated(id) opens with the job as it is now (a job that ended before the subscription is seen ended), then each change", async () => {
  const JOB = `id kind status`;
  const start = async (delaySeconds) =>
    (
      await api.mutate(
        "startJob",
        `mutation($input: StartJobInput!) { startJob(input: $input) { job { ${JOB} } userErrors { code field message } } }`,
        { input: { kind: "EXPORT_STOCK_LEVELS", delaySeconds } },
      )
    ).job;

  // Ended before anyone listened: the first message still says how it ended.
  const done = await start(0);
  await waitFor(
    `job ${done.id} to succeed`,
    async () => (await api.gql(`query($id: ID!) { job(id: $id) { status } }`, { id: done.id })).job.status,
    (status) => status === "SUCCEEDED",
  );
  const waiting = await start(3600);
  assert.equal(waiting.status, "QUEUED");
  const base = await noneOpen(server);
  const ws = wsClient(server);
  const subDone = subscribe(ws, `subscription($id: ID!) { jobUpdated(id: $id) { ${JOB} } }`, { id: done.id });
  const subWaiting = subscribe(ws, `subscription($id: ID!) { jobUpdated(id: $id) { ${JOB} } }`, { id: waiting.id });
  try {
    await subscribed(server, base + 2, [subDone, subWaiting]);
    const ended = await waitFor(`jobUpdated to open with ${done.id}`, async () => subDone.values("jobUpdated")[0]);
    assert.deepEqual(ended, { ...done, status: "SUCCEEDED" });
    const now = await waitFor(`jobUpdated to open with ${waiting.id}`, async () => subWaiting.values("jobUpdated")[0]);
    assert.deepEqual(now, waiting, "the first message is the job as it is");

    await api.mutate("cancelJob", `mutation($id: ID!) { cancelJob(id: $id) { job { id } userErrors { code } } }`, { id: waiting.id });
    await waitFor(
      `jobUpdated to emit ${waiting.id} cancelled`,
      async () => subWaiting.values("jobUpdated").at(-1)?.status,
      (status) => status === "CANCELLED",
    );
    noErrors(subDone, "jobUpdated of an ended job");
    noErrors(subWaiting, "jobUpdated");
    for (const [sub, id] of [[subDone, done.id], [subWaiting, waiting.id]]) {
      assert.deepEqual(sub.values("jobUpdated").filter((j) => j.id !== id), [], "no other job's changes");
    }
  } finally {
    subDone.dispose();
    subWaiting.dispose();
  }
});

test("twh_subscriptions_open counts a subscription while it is open", async () => {
  const before = await noneOpen(server);
  const ws = wsClient(server);
  const sub = subscribe(ws, `subscription { events(types: ["stock.changed"]) { id } }`);
  await subscribed(server, before + 1, [sub]);
  assert.equal(await openSubscriptions(server), before + 1, "exactly one more while it is open");
  sub.dispose();
  await waitFor("twh_subscriptions_open to come back down", () => openSubscriptions(server), (n) => n === before);
});

test("limits: a second connection over TWH_WS_MAX_CONNECTIONS_PER_TENANT=1 is closed with 4429; subscriptions per connection; pings", async () => {
  const limited = await startServer({
    env: {
      TWH_WS_MAX_CONNECTIONS_PER_TENANT: "1",
      TWH_WS_MAX_SUBSCRIPTIONS_PER_CONNECTION: "1",
      TWH_WS_PING_SECS: "1",
    },
  });
  const raws = [];
  const open = (options) => {
    const raw = rawConnect(limited, options);
    raws.push(raw);
    return raw;
  };
  const acked = (raw, what) =>
    waitFor(`connection_ack for ${what}`, async () => raw.messages, (m) => m.some((x) => x.type === "connection_ack"), {
      timeoutMs: 5000,
      intervalMs: 25,
    });
  try {
    const auth = { authorization: `Bearer ${limited.apiKey}` };
    const first = open();
    await first.init(auth);
    await acked(first, "the first connection");

    const second = open();
    await second.init(auth);
    const { code, reason } = await closeOf(second);
    assert.equal(code, 4429, `the second connection closed with ${code} ${reason}; messages ${show(second.messages)}`);
    assert.match(reason, /\b1\b|limit|max/i, `the reason names the limit: ${JSON.stringify(reason)}`);

    // The first connection is unharmed, and holds one subscription at most.
    first.send({ id: "a", type: "subscribe", payload: { query: `subscription { events { id } }` } });
    first.send({ id: "b", type: "subscribe", payload: { query: `subscription { stockChanged { eventId } }` } });
    const limitError = await waitFor(
      "an error message for the subscription over TWH_WS_MAX_SUBSCRIPTIONS_PER_CONNECTION",
      async () => first.messages.find((m) => m.type === "error" && m.id === "b"),
      Boolean,
      { timeoutMs: 5000 },
    );
    assert.equal(limitError.payload?.[0]?.extensions?.code, "LIMIT_EXCEEDED", show(limitError));
    assert.ok(!first.messages.some((m) => m.type === "error" && m.id === "a"), `subscription a stands: ${show(first.messages)}`);

    await waitFor("a ping within TWH_WS_PING_SECS=1", async () => first.messages, (m) => m.some((x) => x.type === "ping"), {
      timeoutMs: 4000,
    });
    assert.equal((await Promise.race([first.closed, Promise.resolve("open")])), "open", "the first connection is still open");

    // Closing the first frees the slot.
    first.close();
    await closeOf(first);
    const third = await waitFor(
      "a new connection to be accepted once the first closed",
      async () => {
        const raw = open();
        await raw.init(auth);
        const outcome = await Promise.race([
          waitFor("ack", async () => raw.messages, (m) => m.some((x) => x.type === "connection_ack"), { timeoutMs: 2000, intervalMs: 25 }).then(
            () => "acked",
            () => "no ack",
          ),
          raw.closed.then((c) => `closed ${c.code}`),
        ]);
        if (outcome !== "acked") raw.ws.terminate();
        return { raw, outcome };
      },
      (r) => r.outcome === "acked",
      { timeoutMs: 8000, intervalMs: 200 },
    );
    third.raw.close();
  } finally {
    for (const raw of raws) raw.ws.terminate();
    await limited.stop();
  }
});

test("an open connection closes with 4403 when its key is revoked", async () => {
  const owner = client(server);
  const created = await owner.mutate(
    "createApiKey",
    `mutation { createApiKey(input: {role: VIEWER, name: "revoked while connected"}) { apiKey { id secret } userErrors { code message } } }`,
  );
  const raw = rawConnect(server);
  await raw.init({ authorization: `Bearer ${created.apiKey.secret}` });
  await waitFor("connection_ack for the new key", async () => raw.messages, (m) => m.some((x) => x.type === "connection_ack"));
  raw.send({ id: "1", type: "subscribe", payload: { query: "subscription { events { type } }" } });
  await owner.mutate(
    "revokeApiKey",
    `mutation($id: ID!) { revokeApiKey(id: $id) { apiKey { revokedAt } userErrors { code message } } }`,
    { id: created.apiKey.id },
  );
  const { code, reason } = await closeOf(raw, 5000);
  assert.equal(code, 4403, `closed with ${code} ${reason}; messages ${show(raw.messages)}`);
  assert.match(reason, /revoked/i);
  // Other connections (the owner's) are untouched.
  const other = rawConnect(server);
  await other.init({ authorization: `Bearer ${server.apiKey}` });
  await waitFor("the owner's connection_ack", async () => other.messages, (m) => m.some((x) => x.type === "connection_ack"));
  other.close();
});
