// The bench data for bench/peer/run.sh, made through TWH's API as `twh-bench --setup` makes it
// (bench/src/main.rs): location BENCH-WH and items BENCH-00000 … BENCH-<SKUS-1>. Then, since the
// read benchmarks need a stock level for every item (bench/run.sh has its write runs make
// them), every SKU is stocked at BENCH-WH: 1 + i % 97 available and 1 + i % 5 damaged, so that
// onHand differs from available and from one row to the next.
//
// Usage: node setup.mjs --url http://127.0.0.1:PORT --key KEY [--skus 1000]
import { parseArgs } from "node:util";

const { values: opts } = parseArgs({
  options: {
    url: { type: "string" },
    key: { type: "string" },
    skus: { type: "string", default: "1000" },
  },
});
const skus = Number(opts.skus);
const sku = (i) => `BENCH-${String(i).padStart(5, "0")}`;

async function gql(query, variables = {}) {
  const response = await fetch(`${opts.url}/graphql`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${opts.key}` },
    body: JSON.stringify({ query, variables }),
  });
  const body = await response.json();
  if (!response.ok || body.errors) {
    throw new Error(`HTTP ${response.status}: ${JSON.stringify(body)}`);
  }
  const payload = Object.values(body.data)[0];
  if (payload?.userErrors?.length) {
    throw new Error(`user errors: ${JSON.stringify(payload.userErrors)}`);
  }
  return body.data;
}

await gql(
  'mutation { createLocation(input: {code: "BENCH-WH", name: "Bench warehouse"}) { userErrors { code message } } }',
);
// Eight calls in flight at a time.
let next = 0;
async function worker() {
  while (next < skus) {
    const i = next++;
    await gql(
      "mutation($sku: String!) { createItem(input: {sku: $sku, name: $sku}) { userErrors { code message } } }",
      { sku: sku(i) },
    );
  }
}
await Promise.all(Array.from({ length: 8 }, worker));

// At most 250 changes a call (the server's limit); one state per call.
for (const [state, delta] of [["AVAILABLE", (i) => 1 + (i % 97)], ["DAMAGED", (i) => 1 + (i % 5)]]) {
  for (let start = 0; start < skus; start += 250) {
    const changes = [];
    for (let i = start; i < Math.min(start + 250, skus); i++) {
      changes.push({ sku: sku(i), locationCode: "BENCH-WH", delta: delta(i), state });
    }
    await gql(
      "mutation($changes: [AdjustChangeInput!]!) { adjustStock(input: {reason: RECEIVED, changes: $changes}) { userErrors { code message } } }",
      { changes },
    );
  }
}
console.log(JSON.stringify({ location: "BENCH-WH", items: skus, stocked: skus }));
