// The GraphQL over HTTP specification's own audit suite (graphql-http's `serverAudits`), every
// MUST and every SHOULD, against a real `twh serve`.

import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { serverAudits } from "graphql-http";
import { startServer } from "../lib/server.mjs";

let server;
before(async () => {
  server = await startServer();
});
after(async () => {
  await server?.stop();
});

test("every graphql-http server audit passes", async (t) => {
  const audits = serverAudits({
    url: () => `${server.url}/graphql`,
    // The audits send no credentials; every request of ours needs them.
    fetchFn: (input, init = {}) => {
      const headers = new Headers(init.headers);
      headers.set("authorization", `Bearer ${server.apiKey}`);
      return fetch(input, { ...init, headers });
    },
  });
  assert.ok(audits.length > 30, `expected the full audit list, got ${audits.length}`);
  for (const audit of audits) {
    await t.test(`${audit.id} ${audit.name}`, async () => {
      const result = await audit.fn();
      assert.equal(result.status, "ok", `${audit.name}: ${result.reason}`);
    });
  }
});
