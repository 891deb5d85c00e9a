// What every GraphQL tool sends first: graphql-js's standard introspection query (GraphiQL,
// GraphQL Code Generator, Apollo, Postman, Insomnia), with and without descriptions. The
// schema it returns must be the checked-in `schema.graphql`.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { after, before, test } from "node:test";
import {
  GraphQLSchema,
  buildClientSchema,
  buildSchema,
  getIntrospectionQuery,
  isSpecifiedScalarType,
  lexicographicSortSchema,
  printSchema,
} from "graphql";
import { startServer } from "../lib/server.mjs";

let server;
before(async () => {
  server = await startServer();
});
after(async () => {
  await server?.stop();
});

async function introspect(query) {
  const response = await fetch(`${server.url}/graphql`, {
    method: "POST",
    headers: {
      authorization: `Bearer ${server.apiKey}`,
      "content-type": "application/json",
      accept: "application/graphql-response+json",
    },
    body: JSON.stringify({ query }),
  });
  const body = await response.json();
  assert.equal(response.status, 200, JSON.stringify(body));
  assert.equal(body.errors, undefined, JSON.stringify(body.errors));
  return body.data;
}

const variants = {
  "default options": {},
  "without descriptions": { descriptions: false },
  "every option": {
    descriptions: true,
    specifiedByUrl: true,
    directiveIsRepeatable: true,
    schemaDescription: true,
    inputValueDeprecation: true,
    oneOf: true,
  },
};

for (const [name, options] of Object.entries(variants)) {
  test(`the standard introspection query (${name}) answers the checked-in schema`, async () => {
    const data = await introspect(getIntrospectionQuery(options));
    // async-graphql answers `__Schema.description` with the text describing __Schema itself;
    // the schema has no description of its own, so it is left out of the comparison.
    const client = buildClientSchema(data);
    const served = lexicographicSortSchema(
      new GraphQLSchema({ ...client.toConfig(), description: undefined }),
    );
    const checkedIn = lexicographicSortSchema(
      buildSchema(readFileSync(new URL("../../schema.graphql", import.meta.url), "utf8")),
    );
    // Built-in scalars (Float, …) may be listed by introspection though nothing uses them.
    const typeNames = (schema) =>
      Object.values(schema.getTypeMap())
        .filter((t) => !t.name.startsWith("__") && !isSpecifiedScalarType(t))
        .map((t) => t.name)
        .sort();
    assert.deepEqual(typeNames(served), typeNames(checkedIn));
    if (options.descriptions !== false) {
      // Without `specifiedByUrl` the query does not ask for scalars' specification URLs.
      const expected = options.specifiedByUrl
        ? printSchema(checkedIn)
        : printSchema(checkedIn).replace(/ @specifiedBy\(url: "[^"]*"\)/g, "");
      assert.equal(printSchema(served), expected);
    }
  });
}
