// runbooks/RECONCILIATION.md, run as an operator would, against a tampered database: a live
// server on SQLite whose snapshot of one level is changed behind the ledger's back (as a manual
// UPDATE would), then every ```sh block of the runbook in order with bash (-euo pipefail), with
// TWH_URL, TWH_KEY (the sandbox owner key), DATABASE_URL, TWH_WORK and `twh` on the PATH. Each
// block must exit 0 and do what it says: the run finds the mismatch, the report names the level
// and the difference, the movements are listed, the repair writes one RECONCILIATION movement,
// and the next run (and `twh reconcile`) is clean.

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { after, before, test } from "node:test";
import { client } from "../lib/api.mjs";
import { startServer } from "../lib/server.mjs";
import { runBlocks, runbookEnv, shellBlocks } from "../lib/runbook.mjs";

const RUNBOOK = fileURLToPath(new URL("../../runbooks/RECONCILIATION.md", import.meta.url));

let server;

before(async () => {
  server = await startServer();
});
after(async () => {
  await server?.stop();
});

test("the reconciliation runbook's commands find a tampered level, repair it, and confirm", async () => {
  const blocks = shellBlocks(readFileSync(RUNBOOK, "utf8"));
  assert.ok(blocks.length >= 7, `the runbook has its commands in sh blocks (${blocks.length})`);
  const api = client(server);
  const level = async () =>
    (await api.gql(`{ stockLevel(sku: "MUG-12OZ", locationCode: "WH-MAIN") { available sequence } }`)).stockLevel;
  const before = await level();

  // The tampering: the snapshot changed without a movement.
  const dbPath = server.databaseUrl.replace(/^sqlite:\/\//, "").replace(/\?.*$/, "");
  execFileSync("python3", [
    "-c",
    `import sqlite3, sys
c = sqlite3.connect(sys.argv[1], timeout=10)
c.execute("UPDATE stock_levels SET available = available + 3 WHERE item_id = (SELECT id FROM items WHERE sku = 'MUG-12OZ') AND location_id = (SELECT id FROM locations WHERE code = 'WH-MAIN')")
c.commit()`,
    dbPath,
  ]);
  assert.equal((await level()).available, before.available + 3);

  const out = await runBlocks(blocks, runbookEnv(server, { TWH_WORK: mkdtempSync(join(tmpdir(), "twh-runbook-")) }));
  assert.match(out("1."), /"mismatches": 1/, out("1."));
  assert.match(
    out("2."),
    new RegExp(`MUG-12OZ at WH-MAIN: available snapshot ${before.available + 3} ledger ${before.available} \\(difference \\+3\\)`),
    out("2."),
  );
  assert.match(out("3."), /movements:\n {2}#1 AVAILABLE/, out("3."));
  assert.match(out("4."), /repairedLevels 1\n {2}movement MUG-12OZ WH-MAIN AVAILABLE \+3 -> \d+ RECONCILIATION/, out("4."));
  assert.match(out("5."), /after repair: SUCCEEDED 0/, out("5."));
  assert.match(out("6."), /every tenant clean/, out("6."));

  // The snapshot kept what it showed; the ledger now agrees, with the repair on record.
  const after = await level();
  assert.equal(after.available, before.available + 3);
  assert.equal(after.sequence, before.sequence + 1);
  const repairs = await api.rest("GET", "/v1/stock/movements?sku=MUG-12OZ&location=WH-MAIN&reason=RECONCILIATION");
  assert.equal(repairs.json.data.length, 1, repairs.text);
  assert.equal(repairs.json.data[0].delta, 3);
});
