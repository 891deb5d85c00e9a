// The GraphQL requests of bench/peer/run.sh, and the check of every server's answers against
// the database before any load.
//
//   node queries.mjs write DIR LEVELS.tsv TENANT_ID
//     writes DIR/<read>.jsonl, one request body a line (the look-ups: one per SKU, in SKU order,
//     so that the same seeded pick asks every server for the same level);
//   node queries.mjs check DIR LEVELS.tsv TENANT_ID TWH_URL TWH_KEY PG5_URL PG4_URL
//     sends each server the page and five look-ups and compares every row with LEVELS.tsv.
//
// LEVELS.tsv is the tenant's stock levels as psql prints them (run.sh writes it), ordered by the
// primary key: sku, item_id, location code, location_id, available, on_hand, version.
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

// TWH: the queries TWH's own load generator sends for `--reads page|lookup` (bench/src/main.rs,
// PAGE and LOOKUP), unchanged.
export const TWH_PAGE =
  "{ stockLevels(first: 50) { nodes { sku locationCode available onHand version } pageInfo { hasNextPage endCursor } } }";
export const TWH_LOOKUP =
  'query($sku: String!) { stockLevel(sku: $sku, locationCode: "BENCH-WH") { sku locationCode available onHand version } }';

// PostGraphile (the same text for 5 and 4: both name these fields alike). "levels": the
// table's own columns, as PostGraphile serves the schema as migrated: the item and location
// ids in place of the SKU and code (no foreign keys to follow), and the six quantities onHand
// is the sum of. "matched": TWH's five fields, through what run.sh adds to the bench database
// for PostGraphile alone: two virtual foreign keys (smart comment `@foreignKey`) and a
// computed column stock_levels_on_hand().
const PG_PAGE_LEVELS =
  "query($tenantId: String!) { allStockLevels(first: 50, orderBy: PRIMARY_KEY_ASC, condition: {tenantId: $tenantId}) { nodes { itemId locationId available committed reserved damaged safetyStock qualityControl version } pageInfo { hasNextPage endCursor } } }";
const PG_PAGE_MATCHED =
  "query($tenantId: String!) { allStockLevels(first: 50, orderBy: PRIMARY_KEY_ASC, condition: {tenantId: $tenantId}) { nodes { itemByTenantIdAndItemId { sku } locationByTenantIdAndLocationId { code } available onHand version } pageInfo { hasNextPage endCursor } } }";
// The point look-up goes by the primary key (tenant, item id, location id): PostGraphile has no
// look-up by SKU and location code, since neither is a unique constraint (TWH's are unique
// indexes) and a condition cannot reach into a related table without a plugin.
const PG_LOOKUP_LEVELS =
  "query($tenantId: String!, $itemId: String!, $locationId: String!) { stockLevelByTenantIdAndItemIdAndLocationId(tenantId: $tenantId, itemId: $itemId, locationId: $locationId) { itemId locationId available committed reserved damaged safetyStock qualityControl version } }";
const PG_LOOKUP_MATCHED =
  "query($tenantId: String!, $itemId: String!, $locationId: String!) { stockLevelByTenantIdAndItemIdAndLocationId(tenantId: $tenantId, itemId: $itemId, locationId: $locationId) { itemByTenantIdAndItemId { sku } locationByTenantIdAndLocationId { code } available onHand version } }";

function readLevels(path) {
  return readFileSync(path, "utf8")
    .split("\n")
    .filter((line) => line.trim())
    .map((line) => {
      const [sku, itemId, code, locationId, available, onHand, version] = line.split("\t");
      return { sku, itemId, code, locationId, available: Number(available), onHand: Number(onHand), version: Number(version) };
    });
}

// The bodies of each read, keyed by the file name run.sh passes to load.mjs.
function bodies(levels, tenantId) {
  const pg = (query) => levels.map((l) => JSON.stringify({ query, variables: { tenantId, itemId: l.itemId, locationId: l.locationId } }));
  return {
    "twh-page": [JSON.stringify({ query: TWH_PAGE })],
    "twh-lookup": levels.map((l) => JSON.stringify({ query: TWH_LOOKUP, variables: { sku: l.sku } })),
    "pg-page-levels": [JSON.stringify({ query: PG_PAGE_LEVELS, variables: { tenantId } })],
    "pg-page-matched": [JSON.stringify({ query: PG_PAGE_MATCHED, variables: { tenantId } })],
    "pg-lookup-levels": pg(PG_LOOKUP_LEVELS),
    "pg-lookup-matched": pg(PG_LOOKUP_MATCHED),
  };
}

// Each server's row in one shape: { sku, code, available, onHand, version }.
function normalize(node, byItem, byLocation) {
  if (!node) return null;
  const n = (v) => (v == null ? null : Number(v)); // PostGraphile sends bigint as a string
  if ("sku" in node) {
    return { sku: node.sku, code: node.locationCode, available: n(node.available), onHand: n(node.onHand), version: n(node.version) };
  }
  if ("itemByTenantIdAndItemId" in node) {
    return {
      sku: node.itemByTenantIdAndItemId?.sku,
      code: node.locationByTenantIdAndLocationId?.code,
      available: n(node.available),
      onHand: n(node.onHand),
      version: n(node.version),
    };
  }
  const onHand = ["available", "committed", "reserved", "damaged", "safetyStock", "qualityControl"].reduce((sum, k) => sum + n(node[k]), 0);
  return { sku: byItem.get(node.itemId), code: byLocation.get(node.locationId), available: n(node.available), onHand, version: n(node.version) };
}

async function post(url, body, key) {
  const headers = { "content-type": "application/json" };
  if (key) headers.authorization = `Bearer ${key}`;
  const response = await fetch(url, { method: "POST", headers, body });
  const text = await response.text();
  if (!response.ok) throw new Error(`HTTP ${response.status} from ${url}: ${text.slice(0, 500)}`);
  const json = JSON.parse(text);
  if (json.errors) throw new Error(`GraphQL errors from ${url}: ${JSON.stringify(json.errors).slice(0, 500)}`);
  return { json, bytes: Buffer.byteLength(text) };
}

async function check(dir, levels, servers) {
  const byItem = new Map(levels.map((l) => [l.itemId, l.sku]));
  const byLocation = new Map(levels.map((l) => [l.locationId, l.code]));
  const expect = (l) => ({ sku: l.sku, code: l.code, available: l.available, onHand: l.onHand, version: l.version });
  const files = Object.fromEntries(
    ["twh-page", "twh-lookup", "pg-page-levels", "pg-page-matched", "pg-lookup-levels", "pg-lookup-matched"].map((name) => [
      name,
      readFileSync(join(dir, `${name}.jsonl`), "utf8").split("\n").filter((line) => line.trim()),
    ]),
  );
  const picks = [0, 1, Math.floor(levels.length / 2), levels.length - 2, levels.length - 1];
  const summary = [];
  let failures = 0;
  const fail = (message) => {
    failures += 1;
    console.error(`check failed: ${message}`);
  };
  for (const server of servers) {
    for (const variant of server.variants) {
      const page = await post(server.url, files[variant.page][0], server.key);
      const connection = Object.values(page.json.data)[0];
      const rows = connection.nodes.map((node) => normalize(node, byItem, byLocation));
      const wanted = levels.slice(0, 50).map(expect);
      if (rows.length !== 50) fail(`${server.name} ${variant.page}: ${rows.length} rows, not 50`);
      if (JSON.stringify(rows) !== JSON.stringify(wanted)) {
        fail(`${server.name} ${variant.page}: rows differ from the database's first 50\n got ${JSON.stringify(rows.slice(0, 2))}\n want ${JSON.stringify(wanted.slice(0, 2))}`);
      }
      if (connection.pageInfo?.hasNextPage !== true || !connection.pageInfo?.endCursor) fail(`${server.name} ${variant.page}: pageInfo ${JSON.stringify(connection.pageInfo)}`);
      summary.push({ server: server.name, read: variant.page, rows: rows.length, response_bytes: page.bytes, fields: Object.keys(connection.nodes[0]) });
      let lookupBytes = 0;
      for (const i of picks) {
        const one = await post(server.url, files[variant.lookup][i], server.key);
        lookupBytes = one.bytes;
        const got = normalize(Object.values(one.json.data)[0], byItem, byLocation);
        if (JSON.stringify(got) !== JSON.stringify(expect(levels[i]))) {
          fail(`${server.name} ${variant.lookup} #${i}: ${JSON.stringify(got)} != ${JSON.stringify(expect(levels[i]))}`);
        }
      }
      summary.push({ server: server.name, read: variant.lookup, checked: picks.length, response_bytes: lookupBytes });
    }
  }
  for (const line of summary) console.log(JSON.stringify(line));
  if (failures) process.exit(1);
}

const [command, dir, levelsPath, tenantId, twhUrl, twhKey, pg5Url, pg4Url] = process.argv.slice(2);
const levels = readLevels(levelsPath);
if (command === "write") {
  for (const [name, lines] of Object.entries(bodies(levels, tenantId))) {
    writeFileSync(join(dir, `${name}.jsonl`), lines.join("\n") + "\n");
  }
} else if (command === "check") {
  const pgVariants = [
    { page: "pg-page-levels", lookup: "pg-lookup-levels" },
    { page: "pg-page-matched", lookup: "pg-lookup-matched" },
  ];
  await check(dir, levels, [
    { name: "twh", url: twhUrl, key: twhKey, variants: [{ page: "twh-page", lookup: "twh-lookup" }] },
    { name: "pg5", url: pg5Url, variants: pgVariants },
    { name: "pg4", url: pg4Url, variants: pgVariants },
  ]);
} else {
  console.error("usage: node queries.mjs write|check DIR LEVELS.tsv TENANT_ID [TWH_URL TWH_KEY PG5_URL PG4_URL]");
  process.exit(2);
}
