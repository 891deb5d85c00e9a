// Rate limits and metering across two `twh serve` processes sharing one database and one Redis
// (a redis-server this suite starts on a free port, so it can stop it): one token bucket holds
// across both processes, the RateLimit headers count down across them, the month's count is the
// same seen from either, a Free tenant past its quota is refused on both while a paid one goes
// into counted overage, and stopping Redis mid-test keeps requests flowing (limits fall back to
// each process) with the outage shown in /readyz and the twh_redis_up metric.
//
// Runs where `redis-server` is on PATH.

import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { createServer } from "node:net";
import { test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { client } from "../lib/api.mjs";
import { startServer } from "../lib/server.mjs";

const TOKEN = "operator-token-for-the-limits-suite-0123456789";

function hasRedisServer() {
  try {
    execFileSync("redis-server", ["--version"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

const skip = hasRedisServer() ? false : "redis-server is not on PATH";

async function freePort() {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const { port } = probe.address();
      probe.close(() => resolve(port));
    });
  });
}

/** A throwaway redis-server on `port`; resolves once it accepts connections. */
async function startRedis(port) {
  const child = spawn("redis-server", ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout.on("data", (chunk) => (output += chunk));
  const exited = new Promise((resolve) => child.on("exit", resolve));
  for (let i = 0; i < 100; i++) {
    if (/Ready to accept connections/.test(output)) return { child, exited };
    await sleep(50);
  }
  child.kill("SIGKILL");
  throw new Error(`redis-server did not start:\n${output}`);
}

async function operator(server, query, variables = {}) {
  const response = await fetch(`${server.url}/graphql`, {
    method: "POST",
    headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
    body: JSON.stringify({ query, variables }),
  });
  const body = await response.json();
  assert.equal(body.errors, undefined, JSON.stringify(body));
  return body.data;
}

async function setPlan(server, tenantId, plan, overrides) {
  const data = await operator(
    server,
    `mutation($t: ID!, $p: String!, $o: JSON) {
      updateTenantPlan(input: {tenantId: $t, plan: $p, overrides: $o}) { tenant { plan } userErrors { code message } }
    }`,
    { t: tenantId, p: plan, o: overrides },
  );
  assert.deepEqual(data.updateTenantPlan.userErrors, []);
}

async function readyz(server) {
  const response = await fetch(`${server.url}/readyz`);
  return { status: response.status, text: await response.text() };
}

async function metric(server, name) {
  const text = await (await fetch(`${server.url}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith(`${name} `));
  return line === undefined ? undefined : Number(line.split(" ")[1]);
}

const remaining = (headers) => Number(/"burst";r=(\d+)/.exec(headers.get("ratelimit") ?? "")?.[1]);

test("two processes share one bucket and one count through Redis, and keep serving without it", { skip, timeout: 120_000 }, async () => {
  const redisPort = await freePort();
  let redis = await startRedis(redisPort);
  const env = {
    REDIS_URL: `redis://127.0.0.1:${redisPort}`,
    TWH_RATE_LIMITS: "on",
    TWH_ADMIN_TOKEN: TOKEN,
    TWH_USAGE_FLUSH_MS: "100",
  };
  const a = await startServer({ env });
  const b = await startServer({ env, databaseUrl: a.databaseUrl, dataDir: a.dataDir, sandbox: false });
  // B serves the same database, so the sandbox tenant's key works there too.
  b.apiKey = a.apiKey;
  try {
    const servers = [a, b];
    const tenant = a.tenantId;
    // Each process names its Redis keys once its bus has read the installation id.
    await sleep(1500);

    // One bucket of 20 across both processes: alternate, and the 21st call is refused on each.
    await setPlan(a, tenant, "developer", { burst: 20, requestsPerSecond: 0.2 });
    const seen = [];
    for (let i = 0; i < 20; i++) {
      const response = await client(servers[i % 2]).rest("GET", "/v1/items?first=1");
      assert.equal(response.status, 200, `call ${i + 1}: ${response.text}`);
      assert.match(response.headers.get("ratelimit-policy"), /^"burst";q=20;w=100, "month";q=100000;w=\d+$/);
      seen.push(remaining(response.headers));
    }
    assert.deepEqual(seen, [...Array(20).keys()].map((k) => 19 - k), "the bucket counts down across both processes");
    for (const server of servers) {
      const refused = await client(server).rest("GET", "/v1/items?first=1");
      assert.equal(refused.status, 429, refused.text);
      assert.equal(refused.json.code, "RATE_LIMITED");
      assert.ok(Number(refused.headers.get("retry-after")) >= 1, "Retry-After");
      assert.equal(remaining(refused.headers), 0);
    }

    // One count: both processes read the same month, which counted the 20 calls (refusals are
    // not calls) and this read.
    await setPlan(a, tenant, "developer", { burst: 1000, requestsPerSecond: 1000 });
    await sleep(300); // the bucket the burst above emptied refills (and stays full below)
    const fromA = (await client(a).gql("{ usage { callsThisPeriod } }")).usage.callsThisPeriod;
    const fromB = (await client(b).gql("{ usage { callsThisPeriod } }")).usage.callsThisPeriod;
    assert.equal(fromA, 21);
    assert.equal(fromB, 22);

    // Free past its quota is refused on both; a paid tenant past its quota is served and counted.
    await setPlan(a, tenant, "free", { callLimit: 24 });
    // B cached the developer plan; it drops it when tenant.plan_changed reaches it (within a
    // second, through the outbox relay), and would serve the free plan's refusals late before.
    await sleep(1500);
    for (const server of servers) {
      const response = await client(server).rest("GET", "/v1/items?first=1"); // 23, 24
      assert.equal(response.status, 200, response.text);
    }
    for (const server of servers) {
      const refused = await client(server).rest("GET", "/v1/items?first=1");
      assert.equal(refused.status, 429, refused.text);
      assert.equal(refused.json.code, "QUOTA_EXCEEDED");
    }
    const created = await operator(
      a,
      `mutation { createTenant(input: {name: "Paid", plan: "developer"}) { tenant { id } apiKey } }`,
    );
    const paid = created.createTenant;
    await setPlan(a, paid.tenant.id, "developer", { callLimit: 2 });
    for (let i = 0; i < 4; i++) {
      const response = await client(servers[i % 2], paid.apiKey).rest("GET", "/v1/items?first=1");
      assert.equal(response.status, 200, response.text);
    }
    // A paid plan's bucket is large enough for leases: each process counts locally and adds
    // its calls to Redis with its next flush (every 100 ms here), so read after one.
    await sleep(500);
    const usage = (await client(b, paid.apiKey).gql("{ usage { callsThisPeriod callLimit overageCalls } }")).usage;
    assert.deepEqual(usage, { callsThisPeriod: 5, callLimit: 2, overageCalls: 3 });

    // Redis goes away mid-test: both processes keep serving, and say so.
    redis.child.kill("SIGKILL");
    await redis.exited;
    for (let i = 0; i < 6; i++) {
      const response = await client(servers[i % 2], paid.apiKey).rest("GET", "/v1/items?first=1");
      assert.equal(response.status, 200, `without Redis, call ${i + 1}: ${response.text}`);
    }
    for (const server of servers) {
      const ready = await readyz(server);
      assert.equal(ready.status, 200);
      assert.match(ready.text, /degraded: Redis is unreachable/);
      assert.equal(await metric(server, "twh_redis_up"), 0);
    }

    // Redis returns: readiness recovers.
    redis = await startRedis(redisPort);
    let recovered = false;
    for (let i = 0; i < 50 && !recovered; i++) {
      await sleep(200);
      recovered = (await readyz(a)).text === "ready";
    }
    assert.ok(recovered, "readiness recovers once Redis is back");
    assert.equal((await client(a, paid.apiKey).rest("GET", "/v1/items?first=1")).status, 200);
  } finally {
    await b.kill("SIGTERM");
    await a.stop();
    redis.child.kill("SIGKILL");
  }
});
