// GraphQL Code Generator pointed at a running server's /graphql (introspection, no key needed)
// produces exactly the types checked in from schema.graphql: the SDL and the server agree.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { after, before, test } from "node:test";

import { VERSION } from "@twh/sdk";
import { firstDifferences, generate } from "../scripts/codegen-check.mjs";
import { startServer } from "./helpers/server.mjs";

let server;

before(async () => {
  server = await startServer();
});
after(async () => {
  await server?.stop();
});

test("codegen from the live server's introspection equals the checked-in types", () => {
  const checkedIn = readFileSync(new URL("../src/generated/graphql.ts", import.meta.url), "utf8");
  const live = generate(`${server.url}/graphql`);
  assert.ok(live.includes("export type AdjustStockMutation"), "codegen produced the operation types");
  assert.equal(live, checkedIn, firstDifferences(checkedIn, live));
});

test("VERSION matches package.json", () => {
  const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8"));
  assert.equal(VERSION, pkg.version);
});
