// The scenario's calls through the REST twin under /v1 (plain fetch).
import { level, movement, stockChange } from "./scenario.mjs";

export function restSurface({ url, apiKey }) {
  const call = async (method, path, { body, headers = {} } = {}) => {
    const response = await fetch(`${url}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${apiKey}`,
        ...(body ? { "content-type": "application/json" } : {}),
        ...headers,
      },
      body: body ? JSON.stringify(body) : undefined,
    });
    const json = response.status === 204 ? null : await response.json();
    if (!response.ok) return { error: json.code, status: response.status };
    return { json, headers: response.headers };
  };
  const stock = (path) => async (input, idempotencyKey) => {
    const r = await call("POST", path, { body: input, headers: { "idempotency-key": idempotencyKey } });
    return r.error ? { error: r.error } : { ok: stockChange(r.json) };
  };
  return {
    name: "REST",
    createItem: async (input) => {
      const r = await call("POST", "/v1/items", { body: input });
      return r.error ? { error: r.error } : { ok: { sku: r.json.sku, name: r.json.name, version: r.json.version } };
    },
    createLocation: async (input) => {
      const r = await call("POST", "/v1/locations", { body: input });
      return r.error ? { error: r.error } : { ok: { code: r.json.code, name: r.json.name } };
    },
    adjustStock: stock("/v1/stock/adjustments"),
    moveStock: stock("/v1/stock/moves"),
    setStock: stock("/v1/stock/sets"),
    renameItem: async (sku, expectedVersion, name) => {
      const found = await call("GET", `/v1/items?sku=${encodeURIComponent(sku)}`);
      if (found.error) return { error: found.error };
      const id = found.json.data[0].id;
      const r = await call("PATCH", `/v1/items/${id}`, {
        body: { name },
        headers: { "if-match": `"${expectedVersion}"` },
      });
      return r.error ? { error: r.error } : { ok: { name: r.json.name, version: r.json.version } };
    },
    stockLevel: async (sku, locationCode) => {
      const r = await call("GET", `/v1/stock/levels?sku=${encodeURIComponent(sku)}&location=${encodeURIComponent(locationCode)}`);
      return r.error ? { error: r.error } : { ok: level(r.json.data[0]) };
    },
    movements: async (sku, pageSize) => {
      const all = [];
      let path = `/v1/stock/movements?sku=${encodeURIComponent(sku)}&first=${pageSize}`;
      for (;;) {
        const r = await call("GET", path);
        if (r.error) return { error: r.error };
        all.push(...r.json.data.map(movement));
        const next = /<([^>]+)>;\s*rel="next"/.exec(r.headers.get("link") ?? "")?.[1];
        if (!next) return { ok: all };
        path = next;
      }
    },
  };
}
