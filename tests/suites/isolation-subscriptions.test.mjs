// Tenant isolation on subscriptions, generated from the schema: tenant B subscribes to every
// subscription field with tenant A's ids, SKU and location, next to A's own subscriptions with
// the same arguments; A then changes each of those things. A's subscriptions see the changes
// (so the events did flow); B's see nothing. The queries, mutations and REST routes are covered
// the same way by server/tests/api/isolation.rs. A subscription field this suite does not know
// how to aim fails it.

import assert from "node:assert/strict";
import { test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { client, waitFor } from "../lib/api.mjs";
import { runTwh, startServer } from "../lib/server.mjs";
import { connect, describe, subscribe, subscribed } from "../lib/ws.mjs";

const SKU = "ISO-SUB-SKU";
const WH = "ISO-SUB-WH";
const WH2 = "ISO-SUB-WH2";

test("another tenant's subscriptions see nothing of A's, whatever ids they name", { timeout: 60_000 }, async () => {
  const server = await startServer();
  const clients = [];
  try {
    const a = client(server);
    const created = JSON.parse(await runTwh(server, ["tenant", "create", "--name", "B"]));
    const bKey = created.apiKey;

    // A's things.
    for (const code of [WH, WH2]) {
      await a.mutate("createLocation", `mutation($c: String!) { createLocation(input: {code: $c, name: $c}) { location { id } userErrors { code } } }`, { c: code });
    }
    await a.mutate("createItem", `mutation($s: String!) { createItem(input: {sku: $s, name: "iso"}) { item { id } userErrors { code } } }`, { s: SKU });
    await a.receive(SKU, WH, 20);
    const po = (await a.mutate("createPurchaseOrder", `mutation($s: String!, $w: String!) { createPurchaseOrder(input: {supplier: "A", lines: [{sku: $s, locationCode: $w, quantity: 3}]}) { purchaseOrder { id } userErrors { code } } }`, { s: SKU, w: WH })).purchaseOrder.id;
    const so = (await a.mutate("createSalesOrder", `mutation($s: String!, $w: String!) { createSalesOrder(input: {customer: "A", lines: [{sku: $s, locationCode: $w, quantity: 2}]}) { salesOrder { id } userErrors { code } } }`, { s: SKU, w: WH })).salesOrder.id;
    const reservation = (await a.mutate("createReservation", `mutation($s: String!, $w: String!) { createReservation(input: {sku: $s, locationCode: $w, quantity: 1, expiresInSeconds: 3600}) { reservation { id } userErrors { code } } }`, { s: SKU, w: WH })).reservation.id;
    const transfer = (await a.mutate("createTransfer", `mutation($s: String!, $f: String!, $t: String!) { createTransfer(input: {fromLocationCode: $f, toLocationCode: $t, lines: [{sku: $s, quantity: 1}]}) { transfer { id } userErrors { code } } }`, { s: SKU, f: WH, t: WH2 })).transfer.id;
    const returnOrder = (await a.mutate("createReturnOrder", `mutation($s: String!, $w: String!) { createReturnOrder(input: {lines: [{sku: $s, locationCode: $w, quantity: 1, disposition: RESTOCK}]}) { returnOrder { id } userErrors { code } } }`, { s: SKU, w: WH })).returnOrder.id;

    // A job that waits an hour: cancelling it is the change its subscription reports.
    const job = (await a.mutate("startJob", `mutation { startJob(input: {kind: EXPORT_STOCK_LEVELS, delaySeconds: 3600}) { job { id } userErrors { code } } }`, {})).job.id;

    // How to aim each subscription at A, and the change of A's that it would report.
    const aim = {
      events: { args: {}, change: () => a.receive(SKU, WH, 1) },
      stockChanged: { args: { sku: SKU, locationCode: WH }, change: () => a.receive(SKU, WH, 1) },
      purchaseOrderUpdated: { args: { id: po }, change: () => a.mutate("submitPurchaseOrder", `mutation($id: ID!) { submitPurchaseOrder(id: $id) { purchaseOrder { id } userErrors { code } } }`, { id: po }) },
      salesOrderUpdated: { args: { id: so }, change: () => a.mutate("allocateSalesOrder", `mutation($id: ID!) { allocateSalesOrder(id: $id) { salesOrder { id } userErrors { code } } }`, { id: so }) },
      reservationUpdated: { args: { id: reservation }, change: () => a.mutate("releaseReservation", `mutation($id: ID!) { releaseReservation(id: $id) { reservation { id } userErrors { code } } }`, { id: reservation }) },
      transferUpdated: { args: { id: transfer }, change: () => a.mutate("shipTransfer", `mutation($id: ID!) { shipTransfer(id: $id) { transfer { id } userErrors { code } } }`, { id: transfer }) },
      returnOrderUpdated: { args: { id: returnOrder }, change: () => a.mutate("receiveReturnOrder", `mutation($id: ID!) { receiveReturnOrder(id: $id) { returnOrder { id } userErrors { code } } }`, { id: returnOrder }) },
      jobUpdated: { args: { id: job }, change: () => a.mutate("cancelJob", `mutation($id: ID!) { cancelJob(id: $id) { job { id } userErrors { code } } }`, { id: job }) },
    };

    const schema = await a.gql(`{ __schema { subscriptionType { fields { name args { name } } } } }`);
    const fields = schema.__schema.subscriptionType.fields;
    assert.ok(fields.length >= 7);
    for (const f of fields) {
      assert.ok(aim[f.name], `subscription ${f.name} is not covered by the isolation suite: add how to aim it at A`);
    }

    const aClient = connect(server);
    const bClient = connect(server, { apiKey: bKey });
    clients.push(aClient, bClient);
    const subs = [];
    for (const f of fields) {
      const { args } = aim[f.name];
      const defs = Object.keys(args).map((k) => `$${k}: ${k === "id" ? "ID!" : "String"}`);
      const use = Object.keys(args).map((k) => `${k}: $${k}`);
      const query = `subscription${defs.length ? `(${defs.join(", ")})` : ""} { ${f.name}${use.length ? `(${use.join(", ")})` : ""} { __typename } }`;
      subs.push({ name: f.name, a: subscribe(aClient, query, args), b: subscribe(bClient, query, args) });
    }
    // B's subscriptions to A's documents may be refused outright; those that stay open count.
    await sleep(500);
    for (const s of subs) {
      for (const err of s.b.errors) {
        const text = describe(err);
        assert.doesNotMatch(text, new RegExp(SKU), `${s.name}: B's refusal shows A's data`);
      }
    }

    // A subscription to one document or job opens with it as it is: A must see more than that.
    for (const s of subs.filter((s) => "id" in aim[s.name].args)) {
      await waitFor(`A's ${s.name} to open with its document`, () => s.a.results.length, (n) => n > 0, { timeoutMs: 10_000 });
    }
    for (const s of subs) s.opened = s.a.results.length;
    for (const f of fields) await aim[f.name].change();
    for (const s of subs) {
      await waitFor(`A's ${s.name} to see its change`, () => s.a.results.length, (n) => n > s.opened, { timeoutMs: 10_000 });
      assert.deepEqual(s.a.errors.map(describe), [], `A's ${s.name} failed`);
    }
    // A's events have all been delivered; give B's a moment more to (wrongly) arrive.
    await sleep(1000);
    for (const s of subs) {
      const data = s.b.results.filter((r) => r.data);
      assert.deepEqual(data, [], `B's ${s.name} received A's events`);
    }
  } finally {
    for (const c of clients) await c.dispose();
    await server.stop();
  }
});
