// One load run for bench/peer/run.sh: autocannon POSTs GraphQL request bodies to one server
// with N keep-alive connections (each sends its next request when the last one is answered,
// as TWH's own load generator and pgbench do), after a short warm-up that is not measured.
// Prints one JSON line.
//
// Usage: node load.mjs --url http://127.0.0.1:PORT/graphql --bodies FILE --label NAME
//          [--auth "Bearer KEY"] [--expect SUBSTRING] [--connections 32] [--seconds 15]
//          [--warmup 2]
// FILE holds one JSON request body a line; with more than one line every request picks one
// at random (the same seeded sequence for every server). A response counts as a success when
// its status is 2xx, it contains --expect and it has no "errors" key: GraphQL servers answer
// most failures with 200 and an "errors" list.
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import autocannon from "autocannon";

const { values: opts } = parseArgs({
  options: {
    url: { type: "string" },
    bodies: { type: "string" },
    label: { type: "string" },
    auth: { type: "string" },
    expect: { type: "string", default: '"data":{' },
    connections: { type: "string", default: "32" },
    seconds: { type: "string", default: "15" },
    warmup: { type: "string", default: "2" },
  },
});
for (const required of ["url", "bodies", "label"]) {
  if (!opts[required]) {
    console.error(`--${required} is required`);
    process.exit(2);
  }
}

const bodies = readFileSync(opts.bodies, "utf8").split("\n").filter((line) => line.trim());
const connections = Number(opts.connections);
const headers = { "content-type": "application/json" };
if (opts.auth) headers.authorization = opts.auth;

// A small linear congruential generator, seeded alike for every server, so each server is
// asked for the same sequence of rows.
let state = 0x2545f491n;
function nextIndex() {
  state = (state * 6364136223846793005n + 1442695040888963407n) & 0xffffffffffffffffn;
  return Number((state >> 33n) % BigInt(bodies.length));
}

function options(seconds) {
  const base = {
    url: opts.url,
    method: "POST",
    headers,
    connections,
    pipelining: 1,
    duration: seconds,
    // Count a 200 with GraphQL errors (or without the expected data) as a failure.
    verifyBody: (body) => body.includes(opts.expect) && !body.includes('"errors"'),
  };
  if (bodies.length === 1) {
    base.body = bodies[0];
  } else {
    // A new body for every request; autocannon renders each one as it sends it.
    base.requests = [
      {
        setupRequest: (request) => {
          request.body = bodies[nextIndex()];
          return request;
        },
      },
    ];
  }
  return base;
}

function run(seconds, latencies) {
  return new Promise((resolve, reject) => {
    const instance = autocannon(options(seconds), (err, result) => (err ? reject(err) : resolve(result)));
    if (latencies) {
      // autocannon's own histogram keeps whole milliseconds; keep each 2xx response's time to
      // the microsecond instead (a 2xx with a bad body is timed too, and counted apart).
      instance.on("response", (_client, statusCode, _bytes, responseTime) => {
        if (statusCode >= 200 && statusCode < 300) latencies.push(responseTime);
      });
    }
  });
}

const warmup = Number(opts.warmup) > 0 ? await run(Number(opts.warmup), null) : null;
const latencies = [];
const cpuBefore = process.cpuUsage();
const result = await run(Number(opts.seconds), latencies);
const cpu = process.cpuUsage(cpuBefore);

latencies.sort((a, b) => a - b);
const pct = (q) => (latencies.length ? latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] : null);
const ok = result["2xx"] - result.mismatches;
const completed = (r) => (r ? r["1xx"] + r["2xx"] + r["3xx"] + r["4xx"] + r["5xx"] : 0);
console.log(
  JSON.stringify({
    label: opts.label,
    connections,
    seconds: result.duration,
    requests_ok: ok,
    throughput_per_s: ok / result.duration,
    p50_ms: pct(0.5),
    p99_ms: pct(0.99),
    non_2xx: result.non2xx,
    errors: result.errors,
    timeouts: result.timeouts,
    mismatches: result.mismatches,
    requests_including_warmup: completed(warmup) + completed(result),
    client_cpu_ms: (cpu.user + cpu.system) / 1000,
  }),
);
