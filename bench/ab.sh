#!/usr/bin/env bash
# Two server binaries side by side on ONE Postgres database, short runs alternating between them:
# a paired comparison for machines whose speed drifts between runs a few minutes apart (where
# one round of bench/run.sh per binary says nothing).
# Usage: OLD=/path/to/twh NEW=/path/to/twh bench/ab.sh
#   MODES="--orders,adjust" (comma-separated twh-bench modes: adjust, --orders, --keyed,
#   --reads lookup, --reads page)
#   PAIRS=5 SECONDS_PER_RUN=10 CLIENTS=32 POOL=8 SKUS=1000
# Prints one line per run (side, mode, throughput, CPU ms per call of the server and of
# Postgres), then the medians per side and mode.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/twh-target}"
: "${OLD:?OLD=the baseline server binary}"
: "${NEW:?NEW=the server binary to compare}"
MODES="${MODES:---orders}"
PAIRS="${PAIRS:-5}"
SECONDS_PER_RUN="${SECONDS_PER_RUN:-10}"
CLIENTS="${CLIENTS:-32}"
POOL="${POOL:-8}"
SKUS="${SKUS:-1000}"
PGHOST="${PGHOST:-127.0.0.1}"
PGPORT="${PGPORT:-5432}"
PGUSER="${PGUSER:-postgres}"
PGSSLMODE="${PGSSLMODE:-prefer}"
export PGHOST PGPORT PGUSER PGSSLMODE

cargo build --release -p twh-bench >&2
LOAD="$CARGO_TARGET_DIR/release/twh-bench"

DB="twh_ab_$(date +%s)"
WORK="$(mktemp -d)"
psql -d postgres -qc "CREATE DATABASE $DB"
URL="postgres://$PGUSER@$PGHOST:$PGPORT/$DB?sslmode=$PGSSLMODE"
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  sleep 1
  psql -d postgres -qc "DROP DATABASE IF EXISTS $DB" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# The newer binary migrates; both must accept that schema.
TWH="$NEW"
. bench/tenant.sh
bench_tenant bench scale
. bench/cpu.sh

declare -A PORT PID
PORT[old]=18311
PORT[new]=18312
for side in old new; do
  bin="$OLD"
  [ "$side" = new ] && bin="$NEW"
  DATABASE_URL="$URL" TWH_BIND="127.0.0.1:${PORT[$side]}" TWH_DB_POOL_SIZE="$POOL" TWH_RATE_LIMITS=off \
    RUST_LOG=warn "$bin" serve >"$WORK/$side.log" 2>&1 &
  PID[$side]=$!
  PIDS+=("$!")
  for _ in $(seq 1 50); do curl -sf "http://127.0.0.1:${PORT[$side]}/readyz" >/dev/null && break; sleep 0.2; done
done
"$LOAD" --url "http://127.0.0.1:${PORT[new]}" --key "$KEY" --clients "$CLIENTS" --seconds 1 --skus "$SKUS" --setup --label setup >/dev/null

: >"$WORK/runs.jsonl"
for _ in $(seq 1 "$PAIRS"); do
  for side in old new; do
    IFS=, read -r -a modes <<<"$MODES"
    for mode in "${modes[@]}"; do
      args=()
      [ "$mode" = adjust ] || read -r -a args <<<"$mode"
      pg0="$(pg_ticks)"
      s0="$(proc_ticks "${PID[$side]}")"
      "$LOAD" --url "http://127.0.0.1:${PORT[$side]}" --key "$KEY" --clients "$CLIENTS" \
        --seconds "$SECONDS_PER_RUN" --skus "$SKUS" --label "$side" "${args[@]}" >"$WORK/run.json"
      pg1="$(pg_ticks)"
      s1="$(proc_ticks "${PID[$side]}")"
      python3 - "$WORK/run.json" "$side" "$mode" "$(( (s1 - s0) * TICK_MS ))" "$(( (pg1 - pg0) * TICK_MS ))" <<'PY' | tee -a "$WORK/runs.jsonl"
import json, sys
run = json.load(open(sys.argv[1]))
calls = max(run["applied_including_warmup"], 1)
print(json.dumps({"side": sys.argv[2], "mode": sys.argv[3], "throughput_per_s": run["throughput_per_s"],
                  "failed": run.get("failed", 0),
                  "server_ms": int(sys.argv[4]) / calls, "postgres_ms": int(sys.argv[5]) / calls}))
PY
    done
  done
done

python3 - "$WORK/runs.jsonl" <<'PY'
import json, statistics, sys
runs = [json.loads(line) for line in open(sys.argv[1])]
print("\n| side | mode | throughput (/s), per pair | median | failed | CPU ms per call, server / Postgres (medians) |")
print("| --- | --- | --- | --- | --- | --- |")
for mode in dict.fromkeys(r["mode"] for r in runs):
    for side in ("old", "new"):
        rs = [r for r in runs if r["mode"] == mode and r["side"] == side]
        tps = [r["throughput_per_s"] for r in rs]
        print(f"| {side} | {mode} | {', '.join(str(round(t)) for t in tps)} | **{round(statistics.median(tps))}** | "
              f"{sum(r['failed'] for r in rs)} | {statistics.median(r['server_ms'] for r in rs):.3f} / {statistics.median(r['postgres_ms'] for r in rs):.3f} |")
PY
