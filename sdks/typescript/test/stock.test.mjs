// Stock changes, reads, pagination and errors against a real `twh serve` with its sample data
// (4 SKUs at WH-MAIN and STORE-1).

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import {
  RequestError,
  TwhClient,
  TwhError,
  UnauthenticatedError,
  UserErrors,
  ValidationError,
  StockLevelDocument,
} from "@twh/sdk";
import { startServer } from "./helpers/server.mjs";

let server;
let twh;

before(async () => {
  server = await startServer();
  twh = new TwhClient({ apiKey: server.apiKey, baseUrl: server.url });
});
after(async () => {
  await server?.stop();
});

const at = (sku, locationCode) => twh.stockLevel({ sku, locationCode });

describe("stock changes", () => {
  test("adjustStock adds and removes, returning movements and levels", async () => {
    const before = await at("MUG-12OZ", "WH-MAIN");
    const change = await twh.adjustStock({
      reason: "RECEIVED",
      referenceDocumentUri: "gid://test/Receipt/1",
      changes: [
        { sku: "MUG-12OZ", locationCode: "WH-MAIN", delta: 7 },
        { sku: "MUG-12OZ", locationCode: "WH-MAIN", delta: -2, state: "AVAILABLE" },
      ],
    });
    assert.ok(change.groupId);
    assert.equal(change.movements.length, 2);
    assert.deepEqual(
      change.movements.map((m) => [m.delta, m.quantityAfterChange]),
      [
        [7, before.available + 7],
        [-2, before.available + 5],
      ],
    );
    assert.ok(change.movements.every((m) => m.groupId === change.groupId && m.reason === "RECEIVED"));
    assert.equal(change.levels.length, 1);
    assert.equal(change.levels[0].available, before.available + 5);
    assert.equal((await at("MUG-12OZ", "WH-MAIN")).available, before.available + 5);
  });

  test("moveStock moves between locations and between states", async () => {
    const main = await at("CAP-NAVY", "WH-MAIN");
    const store = await at("CAP-NAVY", "STORE-1");
    const change = await twh.moveStock({
      changes: [
        { sku: "CAP-NAVY", quantity: 10, from: { locationCode: "WH-MAIN" }, to: { locationCode: "STORE-1" } },
        {
          sku: "CAP-NAVY",
          quantity: 3,
          from: { locationCode: "STORE-1" },
          to: { locationCode: "STORE-1", state: "DAMAGED" },
        },
      ],
    });
    assert.equal(change.movements.length, 4);
    const levels = Object.fromEntries(change.levels.map((l) => [l.locationCode, l]));
    assert.equal(levels["WH-MAIN"].available, main.available - 10);
    assert.equal(levels["STORE-1"].available, store.available + 10 - 3);
    assert.equal(levels["STORE-1"].damaged, store.damaged + 3);
    assert.equal(levels["STORE-1"].onHand, store.onHand + 10);
  });

  test("setStock sets an absolute quantity, with changeFromQuantity as compare-and-set", async () => {
    const now = await at("TSHIRT-BLK-L", "STORE-1");
    const change = await twh.setStock({
      changes: [{ sku: "TSHIRT-BLK-L", locationCode: "STORE-1", quantity: 40, changeFromQuantity: now.available }],
    });
    assert.equal(change.movements[0].reason, "CYCLE_COUNT");
    assert.equal(change.movements[0].delta, 40 - now.available);
    assert.equal((await at("TSHIRT-BLK-L", "STORE-1")).available, 40);

    const stale = await twh
      .setStock({ changes: [{ sku: "TSHIRT-BLK-L", locationCode: "STORE-1", quantity: 1, changeFromQuantity: now.available }] })
      .catch((e) => e);
    assert.ok(stale instanceof UserErrors);
    assert.equal(stale.code, "CHANGE_FROM_QUANTITY_STALE");
    assert.equal((await at("TSHIRT-BLK-L", "STORE-1")).available, 40);
  });

  test("a user error carries its code and the field at fault, and nothing changes", async () => {
    const level = await at("TSHIRT-BLK-M", "STORE-1");
    const error = await twh
      .adjustStock({
        reason: "SHRINKAGE",
        changes: [
          { sku: "TSHIRT-BLK-M", locationCode: "STORE-1", delta: -1 },
          { sku: "TSHIRT-BLK-M", locationCode: "STORE-1", delta: -1_000_000 },
        ],
      })
      .then(() => assert.fail("expected INSUFFICIENT_STOCK"), (e) => e);
    assert.ok(error instanceof UserErrors, String(error));
    assert.ok(error instanceof TwhError);
    assert.equal(error.code, "INSUFFICIENT_STOCK");
    assert.equal(error.field?.[0], "input");
    assert.equal(error.field?.[1], "changes");
    assert.equal(error.field?.[2], "1");
    assert.equal(error.errors[0].code, "INSUFFICIENT_STOCK");
    assert.match(error.message, /INSUFFICIENT_STOCK/);
    assert.deepEqual(await at("TSHIRT-BLK-M", "STORE-1"), level, "atomic: the first change was not applied");

    const unknown = await twh
      .adjustStock({ reason: "RECEIVED", changes: [{ sku: "NOPE", locationCode: "WH-MAIN", delta: 1 }] })
      .catch((e) => e);
    assert.equal(unknown.code, "UNKNOWN_SKU");
    assert.deepEqual(unknown.field, ["input", "changes", "0", "sku"]);
  });
});

describe("reads", () => {
  test("stockLevel is null for an unknown SKU and zeros for one that never moved", async () => {
    assert.equal(await at("NOPE", "WH-MAIN"), null);
    await twh.items.create({ sku: "NEVER-MOVED", name: "Never moved" });
    const level = await at("NEVER-MOVED", "WH-MAIN");
    assert.equal(level.onHand, 0);
    assert.equal(level.available, 0);
  });

  test("stockLevels.iterate walks more than one page", async () => {
    const firstPage = await twh.stockLevels.list({ first: 3 });
    assert.equal(firstPage.nodes.length, 3);
    assert.equal(firstPage.pageInfo.hasNextPage, true);
    assert.ok(firstPage.pageInfo.endCursor);

    const seen = [];
    for await (const level of twh.stockLevels.iterate({ pageSize: 3 })) seen.push(`${level.sku}@${level.locationCode}`);
    assert.ok(seen.length >= 8, `at least the 8 sample levels, got ${seen.length}`);
    assert.equal(new Set(seen).size, seen.length, "no level twice");
    assert.deepEqual(seen.slice(0, 3), firstPage.nodes.map((l) => `${l.sku}@${l.locationCode}`));

    const atStore = [];
    for await (const level of twh.stockLevels.iterate({ filter: { locationCode: "STORE-1" }, pageSize: 2 })) {
      atStore.push(level.locationCode);
    }
    assert.ok(atStore.length >= 4 && atStore.every((c) => c === "STORE-1"));
  });

  test("movements filter and paginate, and break early without fetching the rest", async () => {
    const mine = [];
    for await (const movement of twh.movements.iterate({ filter: { sku: "MUG-12OZ", locationCode: "WH-MAIN" }, pageSize: 1 })) {
      mine.push(movement);
    }
    assert.ok(mine.length >= 3, "the sample receipt and the two adjustments");
    assert.deepEqual(
      mine.map((m) => m.sequence),
      mine.map((_, i) => i + 1),
      "consecutive sequence numbers from 1",
    );
    let taken = 0;
    for await (const _ of twh.movements.iterate({ pageSize: 2 })) {
      if (++taken === 3) break;
    }
    assert.equal(taken, 3);
  });

  test("graphql() runs any document, typed or not, and returns userErrors as sent", async () => {
    const data = await twh.graphql("query($sku: String!) { item(sku: $sku) { sku name } }", { sku: "MUG-12OZ" });
    assert.equal(data.item.sku, "MUG-12OZ");
    const typed = await twh.graphql(StockLevelDocument, { sku: "MUG-12OZ", locationCode: "STORE-1" });
    assert.equal(typed.stockLevel.sku, "MUG-12OZ");
    const payload = await twh.graphql(
      `mutation { adjustStock(input: {reason: RECEIVED, changes: [{sku: "NOPE", locationCode: "WH-MAIN", delta: 1}]}) { userErrors { code field } } }`,
    );
    assert.equal(payload.adjustStock.userErrors[0].code, "UNKNOWN_SKU");
  });
});

describe("request errors", () => {
  test("an unknown API key throws UnauthenticatedError with the request id and status", async () => {
    const stranger = new TwhClient({ apiKey: "twh_test_not-a-real-key", baseUrl: server.url });
    const error = await stranger.items.list().then(() => assert.fail("expected UNAUTHENTICATED"), (e) => e);
    assert.ok(error instanceof UnauthenticatedError, String(error));
    assert.ok(error instanceof RequestError);
    assert.ok(error instanceof TwhError);
    assert.equal(error.code, "UNAUTHENTICATED");
    assert.equal(error.status, 401);
    assert.match(error.requestId ?? "", /^[0-9a-f]{16,}$/);
    assert.equal(error.errors[0].extensions.requestId, error.requestId);
  });

  test("an invalid document throws ValidationError", async () => {
    const error = await twh.graphql("{ items { nodes { skux } } }").catch((e) => e);
    assert.ok(error instanceof ValidationError, String(error));
    assert.equal(error.code, "GRAPHQL_VALIDATION_FAILED");
    assert.equal(error.status, 400);
    assert.ok(error.requestId);
  });

  test("a missing API key is refused before any request", () => {
    const saved = process.env.TWH_API_KEY;
    delete process.env.TWH_API_KEY;
    try {
      assert.throws(() => new TwhClient({ baseUrl: server.url }), /apiKey/);
    } finally {
      if (saved !== undefined) process.env.TWH_API_KEY = saved;
    }
  });
});
