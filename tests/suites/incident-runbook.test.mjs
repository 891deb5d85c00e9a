// runbooks/INCIDENT.md, run as an operator would: a live server with TWH_ADMIN_TOKEN and
// RUST_LOG=info, a failed request whose id a "customer" reports, and a "leaked" developer key;
// then every ```sh block of the runbook in order with bash (-euo pipefail), with TWH_URL, TWH_KEY
// (the sandbox owner key), TWH_ADMIN_TOKEN, TWH_LOG (the server's log, written to a file before
// each block), REQUEST_ID, TENANT_ID and LEAKED_KEY set. Each block must exit 0 and do what it
// says: the tenant is suspended (its key refused) and then active again, the leaked key is
// refused at the end, the replacement works, and the audit log shows the rotation.

import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { after, before, test } from "node:test";
import { client, waitFor } from "../lib/api.mjs";
import { startServer } from "../lib/server.mjs";
import { bash, shellBlocks } from "../lib/runbook.mjs";

const RUNBOOK = fileURLToPath(new URL("../../runbooks/INCIDENT.md", import.meta.url));
const ADMIN_TOKEN = `optok-${crypto.randomUUID()}`;

let server;

before(async () => {
  server = await startServer({ env: { TWH_ADMIN_TOKEN: ADMIN_TOKEN, RUST_LOG: "info" } });
});
after(async () => {
  await server?.stop();
});

test("the incident runbook's commands, run in order, triage, find a request, suspend and resume, rotate a key", async () => {
  const blocks = shellBlocks(readFileSync(RUNBOOK, "utf8"));
  assert.ok(blocks.length >= 12, `the runbook has its commands in sh blocks (${blocks.length})`);
  const api = client(server);
  const operator = client(server, ADMIN_TOKEN);
  const tenantStatus = async () =>
    (await operator.gql(`{ tenants(first: 100) { edges { node { id status } } } }`)).tenants.edges
      .map((e) => e.node)
      .find((t) => t.id === server.tenantId)?.status;
  const statusWith = async (key) =>
    (await fetch(`${server.url}/v1/api-keys`, { headers: { authorization: `Bearer ${key}` } })).status;

  // A key that leaks, and a failed request a customer reports by its id.
  const leaked = await api.rest("POST", "/v1/api-keys", { body: { role: "DEVELOPER", name: "ci deploy" } });
  assert.equal(leaked.status, 201, leaked.text);
  assert.equal(await statusWith(leaked.json.secret), 200);
  const requestId = `incident-drill-${crypto.randomUUID()}`;
  const failed = await fetch(`${server.url}/v1/items`, {
    headers: { authorization: "Bearer twh_test_notakey", "x-request-id": requestId },
  });
  assert.equal(failed.status, 401);
  assert.equal(failed.headers.get("x-request-id"), requestId);
  await waitFor("the failed request in the log", () => server.stderr().includes(requestId));

  const logFile = join(server.dataDir, "twh.log");
  const env = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    LANG: "C.UTF-8",
    TWH_URL: server.url,
    TWH_KEY: server.apiKey,
    TWH_ADMIN_TOKEN: ADMIN_TOKEN,
    TWH_LOG: logFile,
    REQUEST_ID: requestId,
    TENANT_ID: server.tenantId,
    LEAKED_KEY: leaked.json.secret,
  };

  const seen = new Set();
  const transcript = [];
  let replacement;
  for (const [i, block] of blocks.entries()) {
    writeFileSync(logFile, server.stderr()); // the log so far, as a log shipper would have it
    const result = await bash(block.script, env, 2 * 60_000);
    transcript.push(`--- block ${i + 1} (${block.heading}) exit ${result.code}\n${result.stdout}${result.stderr}`);
    assert.equal(
      result.code,
      0,
      `block ${i + 1} under "${block.heading}" failed:\n${block.script}\n--- stdout\n${result.stdout}\n--- stderr\n${result.stderr}`,
    );
    const s = block.script;
    const out = result.stdout;
    if (s.includes("/healthz")) {
      assert.match(out, /healthz: ok/);
      assert.match(out, /readyz: +ready/);
      seen.add("health");
    }
    if (s.includes("/metrics")) {
      assert.match(out, /^twh_outbox_lag_seconds /m, `the metrics block shows the outbox lag:\n${out}`);
      assert.match(out, /^twh_webhook_dead_letters /m);
      assert.match(out, /^twh_errors_total\{code="UNAUTHENTICATED"\} [1-9]/m, "and the drill's 401");
      seen.add("metrics");
    }
    if (s.includes("grep -i '^x-request-id:'")) {
      assert.match(out, /^x-request-id: \S+/im, `the header is shown:\n${out}`);
      seen.add("header");
    }
    if (s.includes("$TWH_LOG")) {
      assert.ok(out.includes("/v1/items") && out.includes("request served"), `the request's log lines:\n${out}`);
      assert.match(out, /"http\.status": 401/, `with its status:\n${out}`);
      seen.add("log");
    }
    if (s.includes("tenants(first")) {
      assert.ok(out.includes(`${server.tenantId} active`), `the tenant list names the tenant:\n${out}`);
      seen.add("tenants");
    }
    if (s.includes("suspendTenant")) {
      assert.equal(await tenantStatus(), "suspended", "the suspend block suspended the tenant");
      assert.equal(await statusWith(server.apiKey), 401, "its key is refused at once");
      seen.add("suspend");
    }
    if (s.includes("resumeTenant")) {
      assert.equal(await tenantStatus(), "active", "the resume block made the tenant active again");
      assert.equal(await statusWith(server.apiKey), 200, "its key works again");
      seen.add("resume");
    }
    if (s.includes("leaked:")) {
      assert.ok(out.includes(leaked.json.id), `the listing finds the leaked key by its prefix:\n${out}`);
      assert.ok(!out.includes(leaked.json.secret), "and shows no secret");
      seen.add("find");
    }
    if (s.includes("-X POST \"$TWH_URL/v1/api-keys\"")) {
      replacement = /secret \(shown once\): (twh_\S+)/.exec(out)?.[1];
      assert.ok(replacement, `the replacement's secret is printed:\n${out}`);
      seen.add("issue");
    }
    if (s.includes("/revoke")) {
      assert.ok(out.includes(`revoked: ${leaked.json.id}`), `the leaked key is the one revoked:\n${out}`);
      seen.add("revoke");
    }
    if (s.includes("the leaked key is refused")) {
      assert.match(out, /the leaked key is refused: 401/);
      seen.add("refused");
    }
    if (s.includes("/v1/audit-events")) {
      assert.match(out, new RegExp(`api_key\\.revoked ${leaked.json.id} by api_key:`), `the audit log shows the revocation:\n${out}`);
      assert.match(out, /api_key\.created/);
      seen.add("audit");
    }
  }

  const all = ["health", "metrics", "header", "log", "tenants", "suspend", "resume", "find", "issue", "revoke", "refused", "audit"];
  assert.deepEqual(
    all.filter((k) => !seen.has(k)),
    [],
    `every step of the runbook ran:\n${transcript.join("\n")}`,
  );
  assert.equal(await tenantStatus(), "active", "the tenant is left active");
  assert.equal(await statusWith(leaked.json.secret), 401, "the leaked key is refused at the end");
  assert.equal(await statusWith(replacement), 200, "the replacement works");
  assert.equal(await statusWith(server.apiKey), 200, "the owner key works");
});
