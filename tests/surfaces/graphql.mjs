// The scenario's calls through GraphQL over HTTP (plain fetch).
import { level, movement, stockChange } from "./scenario.mjs";

const CHANGE = `movements { sku locationCode state delta quantityAfterChange sequence reason }
  levels { sku locationCode onHand available committed reserved incoming damaged version }
  userErrors { code field message }`;

export function graphqlSurface({ url, apiKey }) {
  const gql = async (query, variables) => {
    const response = await fetch(`${url}/graphql`, {
      method: "POST",
      headers: {
        authorization: `Bearer ${apiKey}`,
        "content-type": "application/json",
        accept: "application/graphql-response+json",
      },
      body: JSON.stringify({ query, variables }),
    });
    const body = await response.json();
    if (body.errors?.length) return { error: body.errors[0].extensions?.code ?? "UNKNOWN" };
    return { data: body.data };
  };
  const payload = async (field, query, variables, shape) => {
    const { data, error } = await gql(query, variables);
    if (error) return { error };
    const result = data[field];
    if (result.userErrors.length) return { error: result.userErrors[0].code };
    return { ok: shape(result) };
  };
  const stock = (field) => (input, idempotencyKey) =>
    payload(
      field,
      `mutation($input: ${field[0].toUpperCase()}${field.slice(1)}Input!, $key: String) {
        ${field}(input: $input, idempotencyKey: $key) { ${CHANGE} } }`,
      { input, key: idempotencyKey },
      stockChange,
    );
  return {
    name: "GraphQL",
    createItem: (input) =>
      payload(
        "createItem",
        "mutation($input: CreateItemInput!) { createItem(input: $input) { item { sku name version } userErrors { code } } }",
        { input },
        (r) => ({ sku: r.item.sku, name: r.item.name, version: r.item.version }),
      ),
    createLocation: (input) =>
      payload(
        "createLocation",
        "mutation($input: CreateLocationInput!) { createLocation(input: $input) { location { code name } userErrors { code } } }",
        { input },
        (r) => ({ code: r.location.code, name: r.location.name }),
      ),
    adjustStock: stock("adjustStock"),
    moveStock: stock("moveStock"),
    setStock: stock("setStock"),
    renameItem: async (sku, expectedVersion, name) => {
      const found = await gql("query($sku: String) { item(sku: $sku) { id } }", { sku });
      if (found.error) return found;
      return payload(
        "updateItem",
        `mutation($id: ID!, $v: Int!, $input: UpdateItemInput!) {
          updateItem(id: $id, expectedVersion: $v, input: $input) { item { name version } userErrors { code } } }`,
        { id: found.data.item.id, v: expectedVersion, input: { name } },
        (r) => ({ name: r.item.name, version: r.item.version }),
      );
    },
    stockLevel: async (sku, locationCode) => {
      const { data, error } = await gql(
        `query($sku: String!, $code: String!) { stockLevel(sku: $sku, locationCode: $code) {
          sku locationCode onHand available committed reserved incoming damaged version } }`,
        { sku, code: locationCode },
      );
      return error ? { error } : { ok: level(data.stockLevel) };
    },
    movements: async (sku, pageSize) => {
      const all = [];
      let after = null;
      for (;;) {
        const { data, error } = await gql(
          `query($sku: String, $first: Int, $after: String) { movements(filter: { sku: $sku }, first: $first, after: $after) {
            edges { node { sku locationCode state delta quantityAfterChange sequence reason } }
            pageInfo { hasNextPage endCursor } } }`,
          { sku, first: pageSize, after },
        );
        if (error) return { error };
        all.push(...data.movements.edges.map((e) => movement(e.node)));
        if (!data.movements.pageInfo.hasNextPage) return { ok: all };
        after = data.movements.pageInfo.endCursor;
      }
    },
  };
}
