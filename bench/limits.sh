#!/usr/bin/env bash
# What metering and rate limits cost: adjustStock through GraphQL on Postgres against two servers
# of the same build on the same database, measured in interleaved rounds of the same run:
#   limits-on  REDIS_URL set, TWH_RATE_LIMITS=on: every call runs the Redis script (token bucket
#              and month count) and is flushed to usage_daily every second;
#   limits-off no Redis, TWH_RATE_LIMITS=off: nothing is refused and calls are only counted in
#              process (a map increment) and flushed, the least the server does for any call.
# The bench tenant is on Enterprise with a deal of 5,000 units/s and bursts of 10,000: above
# the load, so nothing is refused (a refusal would show as a failed call), and a bucket of a
# size large customers have, whose process leases (1%, 100 units) the limiter takes from Redis.
# Usage: bench/limits.sh   (CLIENTS=32 DURATION=15 ROUNDS=3 SKUS=1000 POOL=8 REDIS=redis://127.0.0.1:6379)
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/twh-target}"
TARGET="$CARGO_TARGET_DIR"
CLIENTS="${CLIENTS:-32}"
DURATION="${DURATION:-15}"
ROUNDS="${ROUNDS:-3}"
SKUS="${SKUS:-1000}"
POOL="${POOL:-8}"
REDIS="${REDIS:-redis://127.0.0.1:6379}"
PGHOST="${PGHOST:-127.0.0.1}"
PGPORT="${PGPORT:-5432}"
PGUSER="${PGUSER:-postgres}"
export PGHOST PGPORT PGUSER

cargo build --release -p twh-server -p twh-bench >&2
TWH="$TARGET/release/twh"
LOAD="$TARGET/release/twh-bench"

DB="twh_bench_limits_$(date +%s)"
WORK="$(mktemp -d)"
psql -d postgres -qc "CREATE DATABASE $DB"
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  psql -d postgres -qc "DROP DATABASE IF EXISTS $DB" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
URL="postgres://$PGUSER@$PGHOST:$PGPORT/$DB"

. bench/tenant.sh
bench_tenant bench enterprise
psql -d "$DB" -qc "UPDATE tenants SET plan_overrides = '{\"requestsPerSecond\": 5000, \"burst\": 10000}' WHERE id = '$TENANT'"

start() {
  local port="$1"
  shift
  env DATABASE_URL="$URL" TWH_BIND="127.0.0.1:$port" TWH_DB_POOL_SIZE="$POOL" RUST_LOG=warn "$@" \
    "$TWH" serve >"$WORK/server-$port.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 1 50); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && return; sleep 0.2; done
  echo "the server on $port did not start" >&2
  exit 1
}
ON=18191
OFF=18192
start "$ON" REDIS_URL="$REDIS" TWH_RATE_LIMITS=on
start "$OFF" TWH_RATE_LIMITS=off
# The limited server names its Redis keys once its bus has read the installation id.
sleep 2
"$LOAD" --url "http://127.0.0.1:$OFF" --key "$KEY" --clients "$CLIENTS" --seconds 1 --skus "$SKUS" --setup --label setup >/dev/null

: >"$WORK/results.jsonl"
for round in $(seq 1 "$ROUNDS"); do
  "$LOAD" --url "http://127.0.0.1:$ON" --key "$KEY" --clients "$CLIENTS" --seconds "$DURATION" --skus "$SKUS" --label limits-on >>"$WORK/results.jsonl"
  "$LOAD" --url "http://127.0.0.1:$OFF" --key "$KEY" --clients "$CLIENTS" --seconds "$DURATION" --skus "$SKUS" --label limits-off >>"$WORK/results.jsonl"
done
# Every call the limited server served is in the month's count (Redis) and, flushed, in
# usage_daily; print both so a run shows the metering kept up.
sleep 2
COUNTED="$(psql -d "$DB" -qAt -c "SELECT COALESCE(SUM(calls), 0) FROM usage_daily WHERE tenant_id = '$TENANT'")"

cat "$WORK/results.jsonl"
python3 - "$WORK/results.jsonl" "$CLIENTS" "$DURATION" "$SKUS" "$POOL" "$ROUNDS" "$COUNTED" <<'PY'
import json, sys, os, platform, datetime, statistics
path, clients, duration, skus, pool, rounds, counted = sys.argv[1:]
rows = [json.loads(l) for l in open(path) if l.strip()]
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
def med(rs, key):
    return statistics.median(r[key] for r in rs)
on = [r for r in rows if r["label"] == "limits-on"]
off = [r for r in rows if r["label"] == "limits-off"]
print()
print(f"### {datetime.date.today()} — metering and limits, {os.cpu_count()} cores, {cpu}")
print()
print(f"{clients} clients, {skus} SKUs, server pool {pool}, {rounds} interleaved rounds of {duration} s; medians over rounds. usage_daily counted {counted} calls in all (both servers, warm-ups and setup included).")
print()
print("| run | throughput (/s) | p50 (ms) | p99 (ms) | ratio to limits-off | failed | per-round throughput |")
print("| --- | --- | --- | --- | --- | --- | --- |")
base = med(off, "throughput_per_s")
for label, rs in (("limits-on (Redis script per lease of 100 calls)", on), ("limits-off (in-process count only)", off)):
    print(f"| {label} | {med(rs, 'throughput_per_s'):.0f} | {med(rs, 'p50_ms'):.2f} | {med(rs, 'p99_ms'):.2f} | **{med(rs, 'throughput_per_s') / base:.2f}** | {sum(r['failed'] for r in rs)} | {', '.join(str(round(r['throughput_per_s'])) for r in rs)} |")
PY
