// The checked-in Postman collection (postman/twh.postman_collection.json) as a Postman user
// runs it: the collection variables baseUrl and apiKey set, the whole collection run with
// newman, twice against the same server. Every request must pass and have been tested.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { after, before, test } from "node:test";
import newman from "newman";
import { startServer } from "../lib/server.mjs";

const collectionFile = new URL("../../postman/twh.postman_collection.json", import.meta.url);

let server;
before(async () => {
  server = await startServer();
});
after(async () => {
  await server?.stop();
});

/** The collection with its baseUrl and apiKey variables set to this server. */
function collectionFor({ url, apiKey }) {
  const collection = JSON.parse(readFileSync(collectionFile, "utf8"));
  const values = { baseUrl: url, apiKey };
  for (const variable of collection.variable) {
    if (variable.key in values) variable.value = values[variable.key];
  }
  return collection;
}

function requestsIn(item) {
  return item.request ? [item] : (item.item ?? []).flatMap(requestsIn);
}

function run(collection) {
  return new Promise((resolve, reject) => {
    newman.run({ collection, reporters: [] }, (err, summary) => (err ? reject(err) : resolve(summary)));
  });
}

function describeFailures(summary) {
  return summary.run.failures
    .map((f) => `${f.source?.name ?? "collection"}: ${f.error?.test ?? ""} ${f.error?.message ?? ""}`)
    .join("\n");
}

for (const round of ["first run", "second run against the same server"]) {
  test(`the Postman collection passes with newman (${round})`, async () => {
    const collection = collectionFor(server);
    const expected = requestsIn(collection).map((r) => r.name);
    const summary = await run(collection);

    assert.deepEqual(summary.run.failures, [], describeFailures(summary));
    assert.deepEqual(
      summary.run.executions.map((e) => e.item.name),
      expected,
      "every request of the collection ran, once, in order",
    );
    for (const execution of summary.run.executions) {
      const { name } = execution.item;
      assert.ok(execution.response, `${name} got no response: ${execution.requestError?.message}`);
      assert.ok(execution.assertions?.length > 0, `${name} has no test`);
      for (const assertion of execution.assertions) {
        assert.equal(assertion.error, undefined, `${name}: ${assertion.assertion}`);
      }
    }
  });
}
