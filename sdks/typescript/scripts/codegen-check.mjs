#!/usr/bin/env node
// Regenerates the operation types into a temporary folder and compares them with the checked-in
// src/generated/graphql.ts; exits 1 (printing a diff) when they differ.
//
//   node scripts/codegen-check.mjs                    # from ../../schema.graphql
//   node scripts/codegen-check.mjs --schema URL       # from a running server's introspection
//
// The second form shows that the checked-in SDL and what the server serves give the same types.

import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const checkedIn = join(root, "src/generated/graphql.ts");

/** Runs codegen and returns the generated text; `schema` overrides codegen.mjs's schema. */
export function generate(schema) {
  const dir = mkdtempSync(join(tmpdir(), "twh-codegen-"));
  const out = join(dir, "graphql.ts");
  try {
    const run = spawnSync(process.execPath, [join(root, "node_modules/@graphql-codegen/cli/cjs/bin.js"), "--config", "codegen.mjs"], {
      cwd: root,
      env: { ...process.env, TWH_CODEGEN_OUT: out, ...(schema ? { TWH_CODEGEN_SCHEMA: schema } : {}) },
      encoding: "utf8",
    });
    if (run.status !== 0) {
      throw new Error(`graphql-codegen failed (exit ${run.status}):\n${run.stdout}\n${run.stderr}`);
    }
    return readFileSync(out, "utf8");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The first lines where two texts differ, as a short unified-looking report. */
export function firstDifferences(expected, actual, max = 20) {
  const a = expected.split("\n");
  const b = actual.split("\n");
  const lines = [];
  for (let i = 0; i < Math.max(a.length, b.length) && lines.length < max; i++) {
    if (a[i] !== b[i]) lines.push(`line ${i + 1}:\n- ${a[i] ?? "<end of file>"}\n+ ${b[i] ?? "<end of file>"}`);
  }
  return lines.join("\n");
}

function main() {
  const at = process.argv.indexOf("--schema");
  const schema = at > 0 ? process.argv[at + 1] : undefined;
  const fresh = generate(schema);
  const current = readFileSync(checkedIn, "utf8");
  if (fresh !== current) {
    console.error(`src/generated/graphql.ts is stale (schema: ${schema ?? "../../schema.graphql"}); run \`npm run codegen\`.`);
    console.error(firstDifferences(current, fresh));
    process.exit(1);
  }
  console.log(`codegen: src/generated/graphql.ts is up to date (schema: ${schema ?? "../../schema.graphql"})`);
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) main();
