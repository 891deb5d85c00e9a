// Compiled (never run) by types.test.mjs against the built declarations, as a consumer would:
// the README's calls type-check, and wrong ones do not.

import {
  StockLevelDocument,
  TwhClient,
  UserErrors,
  paginate,
  verifyWebhook,
  type Item,
  type MovementReason,
  type StockChange,
  type StockLevel,
} from "@twh/sdk";

export async function usage(twh: TwhClient): Promise<void> {
  const item: Item = await twh.items.create({ sku: "SOCK-RED-42", name: "Red socks, 42" });
  const renamed: Item = await twh.items.update({ id: item.id, expectedVersion: item.version, input: { name: "x" } });
  const found: Item | null = await twh.items.get({ sku: renamed.sku });
  void found;

  const reason: MovementReason = "RECEIVED";
  const change: StockChange = await twh.adjustStock(
    { reason, changes: [{ sku: "MUG-12OZ", locationCode: "WH-MAIN", delta: 5, state: "DAMAGED" }] },
    { idempotencyKey: "k", timeoutMs: 1000 },
  );
  const after: number = change.movements[0]?.quantityAfterChange ?? 0;
  void after;

  // @ts-expect-error: not a MovementReason
  await twh.adjustStock({ reason: "STOLEN", changes: [] });
  // @ts-expect-error: delta is required
  await twh.adjustStock({ reason: "RECEIVED", changes: [{ sku: "MUG-12OZ", locationCode: "WH-MAIN" }] });
  // @ts-expect-error: expectedVersion is required
  await twh.items.update({ id: item.id, input: {} });

  for await (const level of twh.stockLevels.iterate({ filter: { sku: "MUG-12OZ" } })) {
    const available: number = level.available;
    void available;
  }

  const typed = await twh.graphql(StockLevelDocument, { sku: "MUG-12OZ", locationCode: "WH-MAIN" });
  const level: StockLevel | null = typed.stockLevel;
  void level;
  // @ts-expect-error: locationCode is required by the document's variables
  await twh.graphql(StockLevelDocument, { sku: "MUG-12OZ" });

  for await (const n of paginate(async (afterCursor) => ({
    nodes: [afterCursor ?? "start"],
    pageInfo: { hasNextPage: false, endCursor: null },
  }))) {
    const s: string = n;
    void s;
  }

  try {
    await twh.setStock({ changes: [{ sku: "MUG-12OZ", locationCode: "WH-MAIN", quantity: 1 }] });
  } catch (e) {
    if (e instanceof UserErrors && e.has("CHANGE_FROM_QUANTITY_STALE")) {
      const field: string[] | null = e.field;
      void field;
    }
  }

  const event: unknown = verifyWebhook("{}", { "webhook-id": "a" }, "whsec_AAAA");
  void event;
}
