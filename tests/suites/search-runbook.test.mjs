// runbooks/SEARCH.md, run as an operator would, against an index that lost a document behind
// the indexer's back (as a restore of the database without its index would): a live server on
// SQLite whose search row for one item is deleted by hand, then every ```sh block of the
// runbook in order with bash (-euo pipefail), with TWH_URL, TWH_KEY (the sandbox owner key),
// SKU, DATABASE_URL and `twh` on the PATH. Each block must exit 0 and say what it should: the
// indexer is up to date, the item is in the catalog but not found, the rebuild writes the
// documents, and search finds the item again.

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { after, before, test } from "node:test";
import { client, waitFor } from "../lib/api.mjs";
import { startServer } from "../lib/server.mjs";
import { runBlocks, runbookEnv, shellBlocks } from "../lib/runbook.mjs";

const RUNBOOK = fileURLToPath(new URL("../../runbooks/SEARCH.md", import.meta.url));
const SKU = "MUG-12OZ";

let server;

before(async () => {
  server = await startServer();
});
after(async () => {
  await server?.stop();
});

test("the search runbook's commands find a lost document, rebuild the index, and confirm", async () => {
  const blocks = shellBlocks(readFileSync(RUNBOOK, "utf8"));
  assert.ok(blocks.length >= 4, `the runbook has its commands in sh blocks (${blocks.length})`);
  const api = client(server);
  const found = async () =>
    (await api.gql(`query($q: String!) { search(query: $q) { hits { code exactMatch } } }`, { q: SKU })).search.hits.some(
      (h) => h.code === SKU && h.exactMatch,
    );
  // The sandbox is indexed when the server starts.
  await waitFor("the sandbox's item to be searchable", found);

  // The loss: the item's search row deleted behind the indexer's back.
  const dbPath = server.databaseUrl.replace(/^sqlite:\/\//, "").replace(/\?.*$/, "");
  execFileSync("python3", [
    "-c",
    `import sqlite3, sys
c = sqlite3.connect(sys.argv[1], timeout=10)
n = c.execute("DELETE FROM search_documents WHERE code_key = ?", (sys.argv[2].lower(),)).rowcount
assert n == 1, n
c.commit()`,
    dbPath,
    SKU,
  ]);
  assert.equal(await found(), false, "the deleted document is gone from search");

  const out = await runBlocks(blocks, runbookEnv(server, { SKU }));
  assert.match(out("1."), /^ready$/m, out("1."));
  assert.match(out("1."), /^twh_search_index_lag_seconds 0$/m, out("1."));
  assert.match(out("2."), new RegExp(`^${SKU} in the catalog: yes; found by search: no$`, "m"), out("2."));
  const rebuilt = JSON.parse(out("3.").trim());
  assert.equal(rebuilt.engine, "built-in");
  assert.ok(rebuilt.documents >= 5, `the sandbox's items and locations were written (${out("3.")})`);
  assert.match(out("4."), /^found by search after the rebuild: yes$/m, out("4."));
  assert.equal(await found(), true);
});
