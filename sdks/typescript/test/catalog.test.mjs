// Items and locations against a real `twh serve`: create, get (by id, SKU or code), update with
// expectedVersion, list, and the user errors the server gives for a taken SKU and a stale version.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import { TwhClient, UserErrors } from "@twh/sdk";
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

describe("items", () => {
  test("create, get by id and by SKU, update with expectedVersion, list", async () => {
    const created = await twh.items.create({
      sku: "SOCK-RED-42",
      name: "Red socks, 42",
      barcode: "4006381333931",
      attributes: { colour: "red" },
    });
    assert.equal(created.sku, "SOCK-RED-42");
    assert.equal(created.unit, "each");
    assert.equal(created.status, "ACTIVE");
    assert.deepEqual(created.attributes, { colour: "red" });
    assert.equal(typeof created.version, "number");

    assert.deepEqual(await twh.items.get({ id: created.id }), created);
    assert.deepEqual(await twh.items.get({ sku: "SOCK-RED-42" }), created);
    assert.equal(await twh.items.get({ sku: "NO-SUCH-SKU" }), null);

    const updated = await twh.items.update({
      id: created.id,
      expectedVersion: created.version,
      input: { name: "Red socks, size 42", barcode: null },
    });
    assert.equal(updated.name, "Red socks, size 42");
    assert.equal(updated.barcode, null);
    assert.equal(updated.version, created.version + 1);

    const page = await twh.items.list({ filter: { search: "SOCK" } });
    assert.deepEqual(
      page.nodes.map((i) => i.sku),
      ["SOCK-RED-42"],
    );
    assert.equal(page.pageInfo.hasNextPage, false);

    const all = [];
    for await (const item of twh.items.iterate({ pageSize: 2 })) all.push(item.sku);
    assert.deepEqual(all, ["TSHIRT-BLK-M", "TSHIRT-BLK-L", "MUG-12OZ", "CAP-NAVY", "SOCK-RED-42"]);
  });

  test("a stale expectedVersion throws UserErrors with VERSION_CONFLICT", async () => {
    const item = await twh.items.get({ sku: "CAP-NAVY" });
    await twh.items.update({ id: item.id, expectedVersion: item.version, input: { name: "Navy cap" } });
    const error = await twh.items
      .update({ id: item.id, expectedVersion: item.version, input: { name: "Stale write" } })
      .then(() => assert.fail("expected a user error"), (e) => e);
    assert.ok(error instanceof UserErrors, String(error));
    assert.equal(error.code, "VERSION_CONFLICT");
    assert.ok(error.has("VERSION_CONFLICT"));
    assert.equal(error.errors.length, 1);
    assert.ok(error.requestId, "the response's x-request-id");
    assert.equal((await twh.items.get({ id: item.id })).name, "Navy cap");
  });

  test("a taken SKU throws UserErrors with ALREADY_EXISTS and the field", async () => {
    const error = await twh.items.create({ sku: "MUG-12OZ", name: "Another mug" }).catch((e) => e);
    assert.ok(error instanceof UserErrors);
    assert.equal(error.code, "ALREADY_EXISTS");
    assert.deepEqual(error.field, ["input", "sku"]);
  });

  test("the same idempotency key creates once and replays the first answer", async () => {
    const key = `create-bottle-${Date.now()}`;
    const first = await twh.items.create({ sku: "BOTTLE-1L", name: "Bottle" }, { idempotencyKey: key });
    const again = await twh.items.create({ sku: "BOTTLE-1L", name: "Bottle" }, { idempotencyKey: key });
    assert.deepEqual(again, first);
    const mismatch = await twh.items.create({ sku: "BOTTLE-2L", name: "Bottle" }, { idempotencyKey: key }).catch((e) => e);
    assert.ok(mismatch instanceof UserErrors);
    assert.equal(mismatch.code, "IDEMPOTENCY_KEY_PARAMETER_MISMATCH");
  });
});

describe("locations", () => {
  test("create, get by id and by code, update with expectedVersion, list", async () => {
    const created = await twh.locations.create({ code: "STORE-2", name: "Second store", kind: "STORE" });
    assert.equal(created.code, "STORE-2");
    assert.equal(created.kind, "STORE");
    assert.equal(created.allowNegative, false);

    assert.deepEqual(await twh.locations.get({ id: created.id }), created);
    assert.deepEqual(await twh.locations.get({ code: "STORE-2" }), created);
    assert.equal(await twh.locations.get({ code: "NOWHERE" }), null);

    const updated = await twh.locations.update({
      id: created.id,
      expectedVersion: created.version,
      input: { allowNegative: true, name: "Store two" },
    });
    assert.equal(updated.allowNegative, true);
    assert.equal(updated.version, created.version + 1);

    const stores = await twh.locations.list({ filter: { kind: "STORE" } });
    assert.deepEqual(
      stores.nodes.map((l) => l.code),
      ["STORE-1", "STORE-2"],
    );
    const codes = [];
    for await (const location of twh.locations.iterate({ pageSize: 1 })) codes.push(location.code);
    assert.deepEqual(codes, ["WH-MAIN", "STORE-1", "STORE-2"]);

    const stale = await twh.locations
      .update({ id: created.id, expectedVersion: created.version, input: { name: "x" } })
      .catch((e) => e);
    assert.ok(stale instanceof UserErrors);
    assert.equal(stale.code, "VERSION_CONFLICT");
  });
});
