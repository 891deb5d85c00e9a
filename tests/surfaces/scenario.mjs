// One scenario of the product, written once as calls on a "surface" (GraphQL, REST, each SDK).
// Every surface answers each call with `{ ok: value }` or `{ error: code }`, values reduced to
// the fields every surface shows (no ids, no times), so the runs can be compared as they are.

/** Reduces a movement to what is the same on every surface. */
export function movement(m) {
  return {
    sku: m.sku,
    locationCode: m.locationCode,
    state: m.state,
    delta: m.delta,
    quantityAfterChange: m.quantityAfterChange,
    sequence: m.sequence,
    reason: m.reason,
  };
}

export function level(l) {
  return {
    sku: l.sku,
    locationCode: l.locationCode,
    onHand: l.onHand,
    available: l.available,
    committed: l.committed,
    reserved: l.reserved,
    incoming: l.incoming,
    damaged: l.damaged,
    version: l.version,
  };
}

export function stockChange(c) {
  return { movements: c.movements.map(movement), levels: c.levels.map(level) };
}

const SKU = "SCN-MUG";
const WH = "SCN-WH";

/** The scenario: a list of named calls; `surface` implements each call. */
export async function run(surface) {
  const log = [];
  const step = async (name, call) => {
    let outcome;
    try {
      outcome = await call();
    } catch (err) {
      outcome = { thrown: String(err?.stack || err) };
    }
    log.push([name, outcome]);
  };
  await step("create an item", () => surface.createItem({ sku: SKU, name: "Scenario mug", unit: "each" }));
  await step("the same SKU again", () => surface.createItem({ sku: SKU, name: "Twin" }));
  await step("create a location", () => surface.createLocation({ code: WH, name: "Scenario warehouse" }));
  const receive = { reason: "RECEIVED", changes: [{ sku: SKU, locationCode: WH, delta: 10 }] };
  await step("receive 10", () => surface.adjustStock(receive, "scn-receive"));
  await step("replay the receipt", () => surface.adjustStock(receive, "scn-receive"));
  await step("same key, other input", () =>
    surface.adjustStock({ ...receive, changes: [{ sku: SKU, locationCode: WH, delta: 11 }] }, "scn-receive"),
  );
  await step("damage 3", () =>
    surface.moveStock(
      { changes: [{ sku: SKU, quantity: 3, from: { locationCode: WH }, to: { locationCode: WH, state: "DAMAGED" } }] },
      "scn-damage",
    ),
  );
  await step("oversell", () =>
    surface.adjustStock({ reason: "OTHER", changes: [{ sku: SKU, locationCode: WH, delta: -100 }] }, "scn-oversell"),
  );
  await step("count with a stale compare-and-set", () =>
    surface.setStock({ changes: [{ sku: SKU, locationCode: WH, quantity: 5, changeFromQuantity: 99 }] }, "scn-count-stale"),
  );
  await step("count", () =>
    surface.setStock({ changes: [{ sku: SKU, locationCode: WH, quantity: 5, changeFromQuantity: 7 }] }, "scn-count"),
  );
  await step("unknown SKU", () =>
    surface.adjustStock({ reason: "OTHER", changes: [{ sku: "NOPE", locationCode: WH, delta: 1 }] }, "scn-unknown"),
  );
  await step("rename", () => surface.renameItem(SKU, 1, "Scenario mug, blue"));
  await step("rename with a stale version", () => surface.renameItem(SKU, 1, "Lost update"));
  await step("read the level", () => surface.stockLevel(SKU, WH));
  await step("read the ledger, two by two", () => surface.movements(SKU, 2));
  return log;
}
