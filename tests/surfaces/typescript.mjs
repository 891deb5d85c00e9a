// The scenario's calls through the TypeScript SDK (its built `dist/`).
import { level, movement, stockChange } from "./scenario.mjs";

const sdk = await import(new URL("../../sdks/typescript/dist/index.js", import.meta.url));

async function outcome(call, shape) {
  try {
    return { ok: shape(await call()) };
  } catch (err) {
    if (err instanceof sdk.TwhError) return { error: err.code };
    throw err;
  }
}

export function typescriptSurface({ url, apiKey }) {
  const twh = new sdk.TwhClient({ apiKey, baseUrl: url, maxRetries: 0 });
  return {
    name: "TypeScript SDK",
    createItem: (input) =>
      outcome(() => twh.items.create(input), (i) => ({ sku: i.sku, name: i.name, version: i.version })),
    createLocation: (input) =>
      outcome(() => twh.locations.create(input), (l) => ({ code: l.code, name: l.name })),
    adjustStock: (input, idempotencyKey) =>
      outcome(() => twh.adjustStock(input, { idempotencyKey }), stockChange),
    moveStock: (input, idempotencyKey) => outcome(() => twh.moveStock(input, { idempotencyKey }), stockChange),
    setStock: (input, idempotencyKey) => outcome(() => twh.setStock(input, { idempotencyKey }), stockChange),
    renameItem: (sku, expectedVersion, name) =>
      outcome(
        async () => {
          const item = await twh.items.get({ sku });
          return twh.items.update({ id: item.id, expectedVersion, input: { name } });
        },
        (i) => ({ name: i.name, version: i.version }),
      ),
    stockLevel: (sku, locationCode) => outcome(() => twh.stockLevel({ sku, locationCode }), level),
    movements: (sku, pageSize) =>
      outcome(async () => {
        const all = [];
        for await (const m of twh.movements.iterate({ filter: { sku }, pageSize })) all.push(movement(m));
        return all;
      }, (all) => all),
  };
}
