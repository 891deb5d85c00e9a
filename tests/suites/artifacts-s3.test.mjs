// Artifacts on S3: `twh serve` with TWH_OBJECT_STORE_URL=s3://… and the standard AWS variables,
// against a real S3-protocol server (s3s-fs, serving a folder with SigV4 authentication). An
// upload, an import that reads it, an export that writes one, both downloaded through the API;
// the objects are in the bucket under the tenant's prefix; a wrong secret fails the upload with
// 503 and stores nothing.
//
// s3s-fs comes from `cargo install s3s-fs --features binary` (.ci/run keeps it under
// ~/.cache/twh-tools); TWH_S3S_FS names it elsewhere. Without it the suite is skipped, unless
// TWH_REQUIRE_S3=1 (CI) makes that a failure.

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, statSync } from "node:fs";
import { createServer } from "node:net";
import { homedir, tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { client, waitFor } from "../lib/api.mjs";
import { startServer } from "../lib/server.mjs";

const candidates = [process.env.TWH_S3S_FS, join(homedir(), ".cache/twh-tools/bin/s3s-fs")].filter(Boolean);
const S3S_FS = candidates.find((p) => existsSync(p));
const skip = S3S_FS || process.env.TWH_REQUIRE_S3 === "1" ? false : "s3s-fs is not installed (cargo install s3s-fs --features binary)";

const freePort = () =>
  new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const { port } = probe.address();
      probe.close(() => resolve(port));
    });
  });

function files(dir) {
  const found = [];
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) found.push(...files(path));
    else found.push(path);
  }
  return found;
}

async function startS3(root, accessKey, secretKey) {
  assert.ok(S3S_FS, "s3s-fs is required (TWH_REQUIRE_S3=1) but not installed");
  const port = await freePort();
  const child = spawn(S3S_FS, ["--host", "127.0.0.1", "--port", String(port), "--access-key", accessKey, "--secret-key", secretKey, root], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout.on("data", (c) => (output += c));
  child.stderr.on("data", (c) => (output += c));
  await waitFor(`s3s-fs listening on ${port}`, async () => {
    try {
      await fetch(`http://127.0.0.1:${port}/`);
      return true;
    } catch {
      return false;
    }
  }, Boolean, { timeoutMs: 15_000 });
  return { port, child, output: () => output };
}

test("artifacts go to S3 and come back through the API", { skip, timeout: 120_000 }, async () => {
  const root = mkdtempSync(join(tmpdir(), "twh-s3-"));
  mkdirSync(join(root, "twh-artifacts"));
  const accessKey = "twh-test-access";
  const secretKey = `secret-${crypto.randomUUID()}`;
  const s3 = await startS3(root, accessKey, secretKey);
  const s3Env = (secret) => ({
    TWH_OBJECT_STORE_URL: "s3://twh-artifacts/prod",
    AWS_ACCESS_KEY_ID: accessKey,
    AWS_SECRET_ACCESS_KEY: secret,
    AWS_REGION: "us-east-1",
    AWS_ENDPOINT: `http://127.0.0.1:${s3.port}`,
    AWS_ALLOW_HTTP: "true",
  });
  const server = await startServer({ env: s3Env(secretKey) });
  try {
    const api = client(server);
    const upload = await fetch(`${server.url}/v1/artifacts?name=counts.csv`, {
      method: "POST",
      headers: { authorization: `Bearer ${server.apiKey}`, "content-type": "text/csv" },
      body: "sku,location,quantity\nMUG-12OZ,WH-MAIN,33\n",
    });
    const artifact = await upload.json();
    assert.equal(upload.status, 201, JSON.stringify(artifact));
    const stored = files(root).map((f) => f.slice(root.length));
    assert.ok(
      stored.some((f) => f.startsWith(`/twh-artifacts/prod/${server.tenantId}/${artifact.id}`)),
      `the upload is an object in the bucket: ${stored.join(", ")}`,
    );

    const job = async (input) => {
      const started = await api.mutate(
        "startJob",
        `mutation($input: StartJobInput!) { startJob(input: $input) { job { id } userErrors { code message } } }`,
        { input },
      );
      return waitFor(
        `job ${started.job.id}`,
        async () => (await api.gql(`query($id: ID!) { job(id: $id) { status result errors artifacts { url purpose } } }`, { id: started.job.id })).job,
        (j) => ["SUCCEEDED", "FAILED"].includes(j.status),
        { timeoutMs: 30_000 },
      );
    };
    const imported = await job({ kind: "IMPORT_STOCK_COUNTS", inputArtifact: artifact.id });
    assert.equal(imported.status, "SUCCEEDED", JSON.stringify(imported));
    const level = await api.gql(`{ stockLevel(sku: "MUG-12OZ", locationCode: "WH-MAIN") { available } }`);
    assert.equal(level.stockLevel.available, 33);

    const exported = await job({ kind: "EXPORT_STOCK_LEVELS", params: { sku: "MUG-12OZ" } });
    assert.equal(exported.status, "SUCCEEDED", JSON.stringify(exported));
    const output = exported.artifacts.find((a) => a.purpose === "output");
    const download = await fetch(`${server.url}${output.url}`, { headers: { authorization: `Bearer ${server.apiKey}` } });
    assert.equal(download.status, 200);
    assert.equal(download.headers.get("content-type"), "text/csv");
    const csv = await download.text();
    assert.match(csv, /^MUG-12OZ,WH-MAIN,33,33,/m, csv);
    assert.ok(files(root).length >= 2, "the export is in the bucket too");
  } finally {
    await server.stop();
  }

  // The wrong secret: S3 refuses the signature; the upload fails cleanly and nothing is kept.
  const wrong = await startServer({ env: s3Env("not-the-secret") });
  try {
    const before = files(root).length;
    const upload = await fetch(`${wrong.url}/v1/artifacts`, {
      method: "POST",
      headers: { authorization: `Bearer ${wrong.apiKey}`, "content-type": "text/csv" },
      body: "sku,location,quantity\n",
    });
    const problem = await upload.json();
    assert.equal(upload.status, 503, JSON.stringify(problem));
    assert.equal(problem.code, "UNAVAILABLE");
    assert.equal(files(root).length, before);
    const listed = await client(wrong).gql(`{ jobs { edges { node { id } } } }`);
    assert.deepEqual(listed.jobs.edges, []);
  } finally {
    await wrong.stop();
    s3.child.kill();
  }
});
