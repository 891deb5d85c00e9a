#!/usr/bin/env bash
# Search benchmark, one round per engine in the same run: the built-in engine on SQLite, the
# built-in engine on Postgres, and Meilisearch (../shared/tools/meilisearch) beside Postgres.
# Each: ITEMS items imported and indexed (documents per second to searchable), `twh search
# reindex` (documents per second), search p50/p99 at CLIENTS clients against an exact-SKU
# baseline through the same API (and, on Meilisearch, the same queries sent to it directly),
# and write-to-searchable lag under RATE background writes per second.
# Usage: bench/search.sh   (ITEMS=100000 CLIENTS=32 SECONDS_PER_RUN=15 RATE=100
#                           ENGINES="sqlite postgres meilisearch"; Postgres at PGHOST/PGPORT)
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/twh-target}"
TARGET="$CARGO_TARGET_DIR"
PGHOST="${PGHOST:-127.0.0.1}"
PGPORT="${PGPORT:-5432}"
PGUSER="${PGUSER:-postgres}"
PORT="${BENCH_PORT:-18183}"
ITEMS="${ITEMS:-100000}"
export PGHOST PGPORT PGUSER

cargo build --release -p twh-server -p twh-bench >&2
TWH="$TARGET/release/twh"
. bench/tenant.sh
LOAD="$TARGET/release/twh-bench-search"
MEILI_TOOL="${TWH_MEILISEARCH_TOOL:-../shared/tools/meilisearch}"
[ -x "$MEILI_TOOL" ] || MEILI_TOOL=/work/shared/tools/meilisearch

WORK="$(mktemp -d)"
DBS=()
cleanup() {
  [ -n "${SERVER_PID:-}" ] && kill "$SERVER_PID" 2>/dev/null || true
  [ -n "${MEILI_PID:-}" ] && kill "$MEILI_PID" 2>/dev/null || true
  for db in "${DBS[@]}"; do psql -d postgres -qc "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

start_server() {
  env "$@" TWH_BIND="127.0.0.1:$PORT" TWH_RATE_LIMITS=off TWH_RECONCILE_SCHEDULE=off RUST_LOG=warn \
    TWH_ARTIFACT_MAX_BYTES=$((512 * 1024 * 1024)) TWH_MAX_BODY_BYTES=$((512 * 1024 * 1024)) \
    TWH_DATA_DIR="$WORK/data" "$TWH" serve >>"$WORK/server.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.2; done
}
stop_server() { kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=""; }

for engine in ${ENGINES:-sqlite postgres meilisearch}; do
  extra=()
  case "$engine" in
    sqlite) URL="sqlite://$WORK/$engine.db?mode=rwc" ;;
    *)
      db="twh_bench_search_${engine}_$(date +%s)"
      psql -d postgres -qc "CREATE DATABASE $db"
      DBS+=("$db")
      URL="postgres://$PGUSER@$PGHOST:$PGPORT/$db"
      ;;
  esac
  if [ "$engine" = meilisearch ]; then
    MEILI_PORT=$((PORT + 1))
    MEILI_KEY="bench-master-key-$$"
    "$MEILI_TOOL" --db-path "$WORK/meili" --http-addr "127.0.0.1:$MEILI_PORT" --master-key "$MEILI_KEY" \
      --no-analytics --max-indexing-memory 1GiB >"$WORK/meili.log" 2>&1 &
    MEILI_PID=$!
    for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$MEILI_PORT/health" >/dev/null && break; sleep 0.2; done
    extra=(MEILISEARCH_URL="http://127.0.0.1:$MEILI_PORT" MEILISEARCH_API_KEY="$MEILI_KEY" TWH_SEARCH_INDEX_PREFIX=bench_)
  fi
  bench_tenant "bench-search-$engine" scale
  common=(--url "http://127.0.0.1:$PORT" --key "$KEY" --items "$ITEMS" --label "$engine" --seconds "${SECONDS_PER_RUN:-15}")

  start_server DATABASE_URL="$URL" "${extra[@]}"
  "$LOAD" "${common[@]}" --mode setup
  stop_server
  # The reindex alone: every document rebuilt from the database and swapped in.
  env DATABASE_URL="$URL" "${extra[@]}" RUST_LOG=warn "$TWH" search reindex --tenant "$TENANT" |
    python3 -c 'import json,sys; r=json.load(sys.stdin); r.update(label="'"$engine"'", mode="reindex", documents_per_second=r["documents"]/r["seconds"]); print(json.dumps(r))'
  start_server DATABASE_URL="$URL" "${extra[@]}"
  meili=()
  [ "$engine" = meilisearch ] && meili=(--meili-url "http://127.0.0.1:$MEILI_PORT" --meili-key "$MEILI_KEY" --meili-index "bench_$TENANT")
  "$LOAD" "${common[@]}" --clients "${CLIENTS:-32}" --mode load "${meili[@]}"
  "$LOAD" "${common[@]}" --mode lag --rate "${RATE:-100}"
  stop_server
  if [ -n "${MEILI_PID:-}" ]; then kill "$MEILI_PID"; wait "$MEILI_PID" 2>/dev/null || true; MEILI_PID=""; fi
done
grep -iE "error|panic" "$WORK/server.log" | head -5 || true
