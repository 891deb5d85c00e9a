#!/usr/bin/env bash
# Events benchmark: webhook deliveries per second (against plain signed POSTs to the same
# receiver) and commit-to-delivery latency; commit-to-subscriber latency with 1 and with
# SUBSCRIPTIONS open subscriptions on one process, and the memory each costs.
# Usage: bench/events.sh   (DELIVERIES=20000 CONCURRENCY=32 RATE=50 SECONDS=10 SUBSCRIPTIONS=10000,
#                           Postgres at PGHOST/PGPORT; SQLITE=1 for the embedded defaults)
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/twh-target}"
TARGET="$CARGO_TARGET_DIR"
PGHOST="${PGHOST:-127.0.0.1}"
PGPORT="${PGPORT:-5432}"
PGUSER="${PGUSER:-postgres}"
PORT="${BENCH_PORT:-18182}"
CONCURRENCY="${CONCURRENCY:-32}"
export PGHOST PGPORT PGUSER

cargo build --release -p twh-server -p twh-bench >&2
TWH="$TARGET/release/twh"
LOAD="$TARGET/release/twh-bench-events"

WORK="$(mktemp -d)"
if [ "${SQLITE:-0}" = 1 ]; then
  URL="sqlite://$WORK/twh.db?mode=rwc"
  DB=""
else
  DB="twh_bench_ev_$(date +%s)"
  psql -d postgres -qc "CREATE DATABASE $DB"
  URL="postgres://$PGUSER@$PGHOST:$PGPORT/$DB"
fi
cleanup() {
  [ -n "${SERVER_PID:-}" ] && kill "$SERVER_PID" 2>/dev/null || true
  [ -n "$DB" ] && psql -d postgres -qc "DROP DATABASE IF EXISTS $DB" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

. bench/tenant.sh
bench_tenant bench-events scale

# Rate limits off, as in bench/run.sh: opening 10,000 subscriptions at once is past a Scale
# plan's burst, and the refused ones would show as messages missing.
DATABASE_URL="$URL" TWH_BIND="127.0.0.1:$PORT" RUST_LOG=warn TWH_RATE_LIMITS=off \
  TWH_WEBHOOK_ALLOW_PRIVATE_TARGETS=true TWH_WEBHOOK_ENDPOINT_CONCURRENCY="$CONCURRENCY" \
  TWH_WS_MAX_CONNECTIONS_PER_TENANT=100000 \
  "$TWH" serve >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 50); do curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null && break; sleep 0.2; done

common=(--url "http://127.0.0.1:$PORT" --key "$KEY" --server-pid "$SERVER_PID" --rate "${RATE:-50}" --seconds "${SECONDS_PER_RUN:-10}")
"$LOAD" "${common[@]}" --mode setup
"$LOAD" "${common[@]}" --mode webhooks --deliveries "${DELIVERIES:-20000}" --concurrency "$CONCURRENCY" --label webhooks | tee "$WORK/results.jsonl"
"$LOAD" "${common[@]}" --mode subscriptions --subscriptions "${SUBSCRIPTIONS:-10000}" --label subscriptions | tee -a "$WORK/results.jsonl"
grep -iE "error|panic" "$WORK/server.log" | head -5 || true
