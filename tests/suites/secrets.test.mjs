// No secret in the server's output: a live server with RUST_LOG=debug, TWH_ADMIN_TOKEN and webhook
// deliveries, driven through everything that handles a secret (the sandbox owner key, API keys
// made over GraphQL and REST, a revoked key, webhook signing secrets and their rotation, a
// delivery that succeeds and one that fails, operator calls and a new tenant's owner key, wrong
// tokens, WebSocket connection_init with a good and a bad key). Then none of those secrets may
// appear in stdout (past the lines of the startup banner that print the sandbox key), in stderr,
// or in GET /metrics.

import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, test } from "node:test";
import { client, show, waitFor } from "../lib/api.mjs";
import { startReceiver } from "../lib/receiver.mjs";
import { startServer } from "../lib/server.mjs";
import { closeOf, rawConnect } from "../lib/ws.mjs";

const ADMIN_TOKEN = randomBytes(20).toString("hex"); // 40 characters
const WRONG_ADMIN_TOKEN = randomBytes(20).toString("hex");
const WRONG_API_KEY = `twh_live_${randomBytes(16).toString("hex")}`;
const JWT_SECRET = randomBytes(24).toString("hex"); // 48 characters

let server;
let receiver;

before(async () => {
  receiver = await startReceiver();
  server = await startServer({
    env: {
      RUST_LOG: "debug",
      TWH_ADMIN_TOKEN: ADMIN_TOKEN,
      TWH_WEBHOOK_ALLOW_PRIVATE_TARGETS: "true",
      TWH_WEBHOOK_RETRY_SCHEDULE: "0,0.2",
      TWH_JWT_KEYS: `k1:${JWT_SECRET}`,
    },
  });
});
after(async () => {
  await server?.stop();
  await receiver?.close();
});

/** Replaces every secret in `line` by a masked form, to show a failure without leaking more. */
function mask(line, secrets) {
  let out = line;
  for (const { value } of [...secrets].sort((a, b) => b.value.length - a.value.length)) {
    out = out.split(value).join(`${value.slice(0, 4)}…[MASKED ${value.length} chars]`);
  }
  return out;
}

/** The lines of `text` (named `where`) that contain one of `secrets`, as readable findings. */
function leaks(where, lines, secrets) {
  const found = [];
  lines.forEach(({ n, line }) => {
    for (const { name, value } of secrets) {
      if (line.includes(value)) found.push(`${where} line ${n}: ${name} in: ${mask(line, secrets).slice(0, 600)}`);
    }
  });
  return found;
}

test("no secret reaches the server's stdout, stderr or /metrics", async () => {
  const api = client(server);
  const operator = client(server, ADMIN_TOKEN);
  /** @type {{name: string, value: string}[]} */
  const secrets = [
    { name: "the sandbox owner key", value: server.apiKey },
    { name: "TWH_ADMIN_TOKEN", value: ADMIN_TOKEN },
    { name: "a wrong admin token", value: WRONG_ADMIN_TOKEN },
    { name: "a wrong API key", value: WRONG_API_KEY },
    { name: "the session key (TWH_JWT_KEYS)", value: JWT_SECRET },
  ];
  const addWhsec = (name, secret) => {
    assert.match(secret ?? "", /^whsec_[A-Za-z0-9+/=]+$/, `${name} is a whsec_ secret`);
    secrets.push({ name, value: secret }, { name: `${name} (base64 part)`, value: secret.slice("whsec_".length) });
  };
  const statusWith = async (key, path = "/v1/items") =>
    (await fetch(`${server.url}${path}`, { headers: { authorization: `Bearer ${key}` } })).status;

  // The banner must be complete before it is cut off: wait for the sample curl's -d line.
  await waitFor("the startup banner's sample curl", () => /Try your first stock change:[\s\S]*\n\s+-d '.*\n/.test(server.stdout()));

  // API keys: GraphQL and REST; each used once; one revoked and refused afterwards.
  const { apiKey: gqlKey } = await api.mutate(
    "createApiKey",
    `mutation($input: CreateApiKeyInput!) { createApiKey(input: $input) { apiKey { id secret prefix } userErrors { code field message } } }`,
    { input: { name: "secrets e2e (graphql)", role: "DEVELOPER" } },
  );
  assert.match(gqlKey.secret ?? "", /^twh_/, show(gqlKey));
  secrets.push({ name: "the GraphQL-created API key", value: gqlKey.secret });
  const restKey = await api.rest("POST", "/v1/api-keys", { body: { role: "DEVELOPER", name: "secrets e2e (rest)" } });
  assert.equal(restKey.status, 201, restKey.text);
  assert.match(restKey.json.secret ?? "", /^twh_/, restKey.text);
  secrets.push({ name: "the REST-created API key", value: restKey.json.secret });
  assert.equal(await statusWith(gqlKey.secret), 200, "the GraphQL-created key works");
  assert.equal(await statusWith(restKey.json.secret), 200, "the REST-created key works");
  assert.equal((await client(server, gqlKey.secret).gql(`{ __typename }`)).__typename, "Query");

  const { apiKey: revoked } = await api.mutate(
    "revokeApiKey",
    `mutation($id: ID!) { revokeApiKey(id: $id) { apiKey { id revokedAt } userErrors { code field message } } }`,
    { id: gqlKey.id },
  );
  assert.ok(revoked.revokedAt, show(revoked));
  assert.equal(await statusWith(gqlKey.secret), 401, "a revoked key is refused");

  // Webhooks: two endpoints, one rotated; a delivery to each, the one to /fail answered 500.
  receiver.on("/ok", 200);
  receiver.on("/fail", 500);
  const createEndpoint = async (path) => {
    const { endpoint } = await api.mutate(
      "createWebhookEndpoint",
      `mutation($input: CreateWebhookEndpointInput!) {
        createWebhookEndpoint(input: $input) { endpoint { id status secret } userErrors { code field message } } }`,
      { input: { url: receiver.url(path) } },
    );
    addWhsec(`the signing secret of ${path}`, endpoint.secret);
    return endpoint;
  };
  const ok = await createEndpoint("/ok");
  await createEndpoint("/fail");
  const { endpoint: rotated } = await api.mutate(
    "rotateWebhookEndpointSecret",
    `mutation($id: ID!) { rotateWebhookEndpointSecret(id: $id) { endpoint { id secret } userErrors { code field message } } }`,
    { id: ok.id },
  );
  assert.notEqual(rotated.secret, ok.secret, "rotation gives a new secret");
  addWhsec("the rotated signing secret of /ok", rotated.secret);

  await api.receive("MUG-12OZ", "WH-MAIN", 3);
  await waitFor("a delivery at /ok", () => receiver.requests("/ok").length >= 1, Boolean, { timeoutMs: 20_000 });
  await waitFor(
    "a failed delivery at /fail, retried",
    () => receiver.requests("/fail").length,
    (n) => n >= 2,
    { timeoutMs: 20_000 },
  );

  // Operator calls, a new tenant's owner key, wrong tokens.
  const { tenants } = await operator.gql(`{ tenants { edges { node { id } } } }`);
  assert.ok(tenants.edges.some((e) => e.node.id === server.tenantId), show(tenants));
  const created = await operator.mutate(
    "createTenant",
    `mutation($input: CreateTenantInput!) { createTenant(input: $input) { apiKey tenant { id } userErrors { code field message } } }`,
    { input: { name: "secrets e2e tenant" } },
  );
  assert.match(created.apiKey ?? "", /^twh_/, show(created));
  secrets.push({ name: "the new tenant's owner key", value: created.apiKey });
  assert.equal(await statusWith(created.apiKey), 200, "the new tenant's owner key works");

  const wrongAdmin = await fetch(`${server.url}/graphql`, {
    method: "POST",
    headers: { authorization: `Bearer ${WRONG_ADMIN_TOKEN}`, "content-type": "application/json" },
    body: JSON.stringify({ query: `{ tenants { edges { node { id } } } }` }),
  });
  assert.equal(wrongAdmin.status, 401, "a wrong admin token is refused");
  assert.equal(await statusWith(WRONG_API_KEY), 401, "a wrong API key is refused");

  // A console session: minted, used over HTTP and WebSocket, and a forged one refused.
  const minted = await api.mutate(
    "createSession",
    `mutation { createSession(input: {role: VIEWER, ttlSeconds: 600}) { session { token } userErrors { code } } }`,
  );
  const sessionToken = minted.session.token;
  secrets.push(
    { name: "a session token", value: sessionToken },
    { name: "a session token's signature", value: sessionToken.split(".")[2] },
  );
  assert.equal(await statusWith(sessionToken), 200, "the session works");
  const forged = `${sessionToken.split(".").slice(0, 2).join(".")}.${randomBytes(32).toString("base64url")}`;
  secrets.push({ name: "a forged session token's signature", value: forged.split(".")[2] });
  assert.equal(await statusWith(forged), 401, "a forged session is refused");
  const sessionWs = rawConnect(server);
  await sessionWs.init({ authorization: `Bearer ${sessionToken}` });
  await waitFor("connection_ack for the session", () => sessionWs.messages.some((m) => m.type === "connection_ack"));
  sessionWs.close();
  await closeOf(sessionWs);

  // WebSocket: connection_init with a good key, then with a bad one.
  const good = rawConnect(server);
  await good.init({ authorization: `Bearer ${restKey.json.secret}` });
  await waitFor("connection_ack", () => good.messages.some((m) => m.type === "connection_ack"));
  good.close();
  await closeOf(good);
  const bad = rawConnect(server);
  await bad.init({ authorization: `Bearer ${WRONG_API_KEY}` });
  assert.equal((await closeOf(bad)).code, 4403, "a bad key closes with 4403");

  // Metrics, taken before the server stops; then stop and look at everything it wrote.
  const metrics = await (await fetch(`${server.url}/metrics`)).text();
  await new Promise((resolve) => setTimeout(resolve, 300)); // let the last log lines out
  await server.kill("SIGTERM");

  const numbered = (text) => text.split("\n").map((line, i) => ({ n: i + 1, line }));
  const stdoutLines = numbered(server.stdout());
  const bannerEnd = stdoutLines.findIndex(
    ({ line }, i) => /^\s+-d '/.test(line) && stdoutLines.slice(0, i).some((l) => /Try your first stock change/.test(l.line)),
  );
  assert.ok(bannerEnd >= 0, "the startup banner ends with the sample curl");
  // In the banner, only the lines that print the key (and the sample curl) may contain it.
  const allowedInBanner = (line) => /^\s+API key:/.test(line) || /^\s+curl /.test(line) || /^\s+-d '/.test(line);
  const checkedStdout = stdoutLines.filter(({ line }, i) => i > bannerEnd || !allowedInBanner(line));

  const found = [
    ...leaks("stdout", checkedStdout, secrets),
    ...leaks("stderr", numbered(server.stderr()), secrets),
    ...leaks("/metrics", numbered(metrics), secrets),
  ];
  assert.ok(server.stderr().length > 0, "RUST_LOG=debug wrote something to stderr");
  assert.deepEqual(found, [], `secrets in the server's output:\n${found.join("\n")}`);
});
