#!/usr/bin/env bash
# adjustStock through GraphQL on Postgres vs pgbench running the same SQL transaction; with
# ORDERS=1 also the sales-order flow (create of 3 lines, allocate, ship) in the same rounds; with
# READS=1 also the point look-up (stockLevel by SKU and location; closed-loop, then open-loop at
# half the rate it reached) and a 50-row stockLevels page,
# each against pgbench running the one SELECT the server sends for it; with OWN=1 a second server
# with group commit off (a transaction per call) serves the same database, its adjustStock runs
# (the -own rows) interleaved with the others. The first server runs in TWH_GROUP_COMMIT's mode,
# by default the server's (`runs`).
# Usage: bench/run.sh            (CLIENTS=32 DURATION=20 SKUS=1000 PGHOST=127.0.0.1 PGPORT=5432)
# Prints one JSON line per run and a Markdown table with the ratios to paste into RESULTS.md.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/twh-target}"
TARGET="$CARGO_TARGET_DIR"
CLIENTS="${CLIENTS:-32}"
DURATION="${DURATION:-20}"
SKUS="${SKUS:-1000}"
PGHOST="${PGHOST:-127.0.0.1}"
PGPORT="${PGPORT:-5432}"
PGUSER="${PGUSER:-postgres}"
PORT="${BENCH_PORT:-18181}"
# The server's database pool; clients beyond it queue inside the server.
POOL="${POOL:-$CLIENTS}"
# Connections the server keeps for one-statement reads, beside the pool (its default: half).
READ_POOL="${READ_POOL:-$(( POOL / 2 > 2 ? POOL / 2 : 2 ))}"
export READ_POOL
# TLS between the clients and Postgres: the same setting for the server and for pgbench.
PGSSLMODE="${PGSSLMODE:-prefer}"
export PGHOST PGPORT PGUSER PGSSLMODE

cargo build --release -p twh-server -p twh-bench >&2
# TWH_BENCH_BIN: a server binary built elsewhere (an earlier commit, to compare in one session).
TWH="${TWH_BENCH_BIN:-$TARGET/release/twh}"
LOAD="$TARGET/release/twh-bench"

DB="twh_bench_$(date +%s)"
WORK="$(mktemp -d)"
psql -d postgres -qc "CREATE DATABASE $DB"
cleanup() {
  [ -n "${SERVER_PID:-}" ] && kill "$SERVER_PID" 2>/dev/null || true
  [ -n "${OWN_PID:-}" ] && kill "$OWN_PID" 2>/dev/null || true
  psql -d postgres -qc "DROP DATABASE IF EXISTS $DB" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
URL="postgres://$PGUSER@$PGHOST:$PGPORT/$DB?sslmode=$PGSSLMODE"

. bench/tenant.sh
bench_tenant bench scale

# Rate limits off (calls are still metered): the bench measures the server, not a plan's rate.
# The server's group commit mode: its default (`runs`) unless TWH_GROUP_COMMIT says otherwise.
GROUPED="${TWH_GROUP_COMMIT:-runs}"
DATABASE_URL="$URL" TWH_BIND="127.0.0.1:$PORT" TWH_DB_POOL_SIZE="$POOL" TWH_DB_READ_POOL_SIZE="$READ_POOL" TWH_RATE_LIMITS=off TWH_GROUP_COMMIT="$GROUPED" RUST_LOG=warn "$TWH" serve >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 50); do curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null && break; sleep 0.2; done
if [ "${OWN:-0}" = 1 ]; then
  OWN_PORT=$((PORT + 1))
  DATABASE_URL="$URL" TWH_BIND="127.0.0.1:$OWN_PORT" TWH_DB_POOL_SIZE="$POOL" TWH_DB_READ_POOL_SIZE="$READ_POOL" TWH_RATE_LIMITS=off TWH_GROUP_COMMIT=off RUST_LOG=warn "$TWH" serve >"$WORK/server-own.log" 2>&1 &
  OWN_PID=$!
  for _ in $(seq 1 50); do curl -sf "http://127.0.0.1:$OWN_PORT/readyz" >/dev/null && break; sleep 0.2; done
fi

# Create the SKUs and the location through the API (a 1-second run that also warms up).
"$LOAD" --url "http://127.0.0.1:$PORT" --key "$KEY" --clients "$CLIENTS" --seconds 1 --skus "$SKUS" --setup --label setup >/dev/null

# ANALYZE=1: statistics for every table once the data is in (autovacuum is off on these
# machines, so by default the runs plan on tables that have none).
if [ "${ANALYZE:-0}" = 1 ]; then psql -d "$DB" -qc "ANALYZE"; fi

BENCH_LOCATION="$(psql -d "$DB" -qAt -c "SELECT id FROM locations WHERE tenant_id = '$TENANT' AND code = 'BENCH-WH'")"

# The transaction the server issues for one adjustStock with one change, as captured from the
# Postgres statement log: the conditional update of the level, which finds the item and the
# location by SKU and code itself (scalar subqueries), then the movement, the outbox event and the audit row as one
# CTE statement.
write_script() {
  local pick="$1"
  cat <<SQL
$pick
BEGIN;
UPDATE stock_levels SET available = available + 1, sequence = sequence + 1, version = version + 1, updated_at = now() WHERE tenant_id = '$TENANT' AND item_id = (SELECT id FROM items WHERE tenant_id = '$TENANT' AND sku = 'BENCH-' || lpad(:n::text, 5, '0')) AND location_id = (SELECT id FROM locations WHERE tenant_id = '$TENANT' AND code = 'BENCH-WH') AND available + 1 <= 1000000000000000 AND (available + 1 >= 0 OR (SELECT allow_negative FROM locations WHERE tenant_id = '$TENANT' AND code = 'BENCH-WH')) RETURNING tenant_id AS s_tenant, item_id AS s_item, location_id AS s_location, available AS s_available, committed AS s_committed, reserved AS s_reserved, incoming AS s_incoming, damaged AS s_damaged, safety_stock AS s_safety, quality_control AS s_qc, sequence AS s_sequence, version AS s_version, updated_at AS s_updated, (SELECT allow_negative FROM locations WHERE tenant_id = '$TENANT' AND code = 'BENCH-WH') AS s_allow_negative \gset
WITH w0 AS (INSERT INTO "movements" ("tenant_id", "id", "group_id", "item_id", "location_id", "state", "delta", "quantity_after", "sequence", "counterparty", "counterparty_location_id", "counterparty_state", "reason", "reference_document_uri", "actor", "idempotency_key", "effective_at", "recorded_at") VALUES ('$TENANT', 'mov_' || gen_random_uuid(), 'grp_' || gen_random_uuid(), :s_item, :s_location, 'available', 1, :s_available, :s_sequence, 'adjustment', NULL, NULL, 'correction', NULL, 'api_key-bench', NULL, now(), now())), w1 AS (INSERT INTO "outbox_events" ("tenant_id", "id", "event_type", "aggregate_type", "aggregate_id", "payload", "created_at") VALUES ('$TENANT', 'evt_' || gen_random_uuid(), 'stock.changed', 'stock_level', :s_item::text || '-' || :s_location::text, '{"groupId": "grp_01a214d18f8c7340bd257e0f115fb465", "operation": "stock.adjust", "level": {"sku": "BENCH-00001", "itemId": "itm_01a214d17f76705eaaf266e855fa60df", "onHand": 130, "damaged": 0, "version": 3, "incoming": 0, "reserved": 0, "sequence": 3, "available": 130, "committed": 0, "updatedAt": "2026-11-25T22.26.47.820166Z", "locationId": "loc_01a214d17f6e744590d6db6bed56f053", "safetyStock": 0, "locationCode": "BENCH-WH", "qualityControl": 0}}', now())) INSERT INTO "audit_events" ("tenant_id", "id", "actor", "action", "target_type", "target_id", "request_id", "data", "created_at") VALUES ('$TENANT', 'aud_' || gen_random_uuid(), 'api_key-bench', 'stock.adjust', 'movement_group', 'grp_bench', 'req_bench', '{"reason": "correction", "movements": 1, "referenceDocumentUri": null}', now());
COMMIT;
SQL
}
# The SELECTs the server sends for the reads (ledger::query::level_statement and
# levels_statement), with this run's values.
LEVEL_COLUMNS='s.available, s.committed, s.reserved, s.incoming, s.damaged, s.safety_stock, s.quality_control, s.sequence, s.version, s.updated_at'
lookup_script() {
  cat <<SQL
$1
SELECT i.id AS item_id, i.sku AS sku, l.id AS location_id, l.code AS location_code, $LEVEL_COLUMNS FROM items i CROSS JOIN locations l LEFT JOIN stock_levels s ON s.tenant_id = '$TENANT' AND s.item_id = (SELECT id FROM items WHERE tenant_id = '$TENANT' AND sku = 'BENCH-' || lpad(:n::text, 5, '0')) AND s.location_id = (SELECT id FROM locations WHERE tenant_id = '$TENANT' AND code = 'BENCH-WH') WHERE i.tenant_id = '$TENANT' AND i.sku = 'BENCH-' || lpad(:n::text, 5, '0') AND l.tenant_id = '$TENANT' AND l.code = 'BENCH-WH';
SQL
}
page_script() {
  cat <<SQL
SELECT s.item_id AS item_id, (SELECT sku FROM items WHERE tenant_id = '$TENANT' AND id = s.item_id) AS sku, s.location_id AS location_id, (SELECT code FROM locations WHERE tenant_id = '$TENANT' AND id = s.location_id) AS location_code, $LEVEL_COLUMNS FROM stock_levels s WHERE (s.tenant_id, s.item_id, s.location_id) > ('$TENANT', '', '') AND (s.tenant_id, s.item_id, s.location_id) < ('$TENANT', 'itn', '') ORDER BY s.tenant_id, s.item_id, s.location_id LIMIT 51;
SQL
}
: "${BENCH_LOCATION:?the bench location is missing}"

# CPU accounting: TICK_MS, proc_ticks PID and pg_ticks (the whole Postgres cluster).
. bench/cpu.sh

run_pgbench() {
  local label="$1" pick="$2" clients="$3" script="${4:-write_script}"
  "$script" "$pick" >"$WORK/$label.sql"
  rm -f "$WORK/$label".log*
  local pg_before pg_after
  pg_before="$(pg_ticks)"
  (cd "$WORK" && /usr/bin/time -f '%U %S' -o "$label.time" \
    pgbench -n -M prepared -c "$clients" -j 2 -T "$DURATION" -l --log-prefix="$label.log" -f "$label.sql" "$DB" >"$label.out" 2>&1) || {
    cat "$WORK/$label.out" >&2; exit 1; }
  pg_after="$(pg_ticks)"
  local tps failed count
  tps="$(grep -Eo 'tps = [0-9.]+' "$WORK/$label.out" | head -1 | awk '{print $3}')"
  failed="$(grep -Eo 'number of failed transactions: [0-9]+' "$WORK/$label.out" | awk '{print $5}')"
  count="$(grep -Eo 'number of transactions actually processed: [0-9]+' "$WORK/$label.out" | awk '{print $6}')"
  cat "$WORK/$label".log* 2>/dev/null | awk '{print $3}' | sort -n >"$WORK/$label.lat"
  python3 - "$label" "$tps" "${failed:-0}" "$WORK/$label.lat" "$clients" "$count" \
    "$(( (pg_after - pg_before) * TICK_MS ))" "$(tail -1 "$WORK/$label.time")" <<'PY'
import json, sys
label, tps, failed, path, clients, count, pg_ms = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), sys.argv[4], int(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7])
client_ms = sum(float(x) for x in sys.argv[8].split()) * 1000
lat = [int(x) for x in open(path) if x.strip().isdigit()]
pct = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] / 1000.0 if lat else None
print(json.dumps({"label": label, "clients": clients, "throughput_per_s": tps, "p50_ms": pct(0.50), "p99_ms": pct(0.99), "failed": failed,
                  "cpu_ms_per_request": {"server": 0.0, "postgres": pg_ms / count, "client": client_ms / count}}))
PY
}

# PGSS=1 (Postgres started with shared_preload_libraries=pg_stat_statements): the statements
# that took the most of Postgres' time in each GraphQL run of the last round, background work
# (relay, search indexer) included, are printed after the table.
if [ "${PGSS:-0}" = 1 ]; then psql -d "$DB" -qc "CREATE EXTENSION IF NOT EXISTS pg_stat_statements"; fi
pgss_reset() { if [ "${PGSS:-0}" = 1 ]; then psql -d "$DB" -qAtc "SELECT pg_stat_statements_reset()" >/dev/null; fi; }
pgss_dump() {
  [ "${PGSS:-0}" = 1 ] || return 0
  psql -d "$DB" -P pager=off -c "SELECT calls, round(total_exec_time::numeric / 1000, 2) AS total_s, \
      round(mean_exec_time::numeric, 3) AS mean_ms, rows, left(regexp_replace(query, '\s+', ' ', 'g'), 120) AS statement \
    FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) \
    ORDER BY total_exec_time DESC LIMIT 20" >"$WORK/$1.pgss"
}

run_graphql() {
  local label="$1" skus="$2" pg_before pg_after server_before server_after
  shift 2
  pgss_reset
  pg_before="$(pg_ticks)"
  server_before="$(proc_ticks "$SERVER_PID")"
  "$LOAD" --url "http://127.0.0.1:$PORT" --key "$KEY" --clients "$CLIENTS" --seconds "$DURATION" --skus "$skus" --label "$label" "$@" >"$WORK/$label.json"
  pg_after="$(pg_ticks)"
  server_after="$(proc_ticks "$SERVER_PID")"
  pgss_dump "$label"
  # The server and Postgres are sampled around the whole run (warm-up included), so their CPU is
  # divided by every applied call; the generator measures itself over the timed window.
  python3 - "$WORK/$label.json" "$(( (server_after - server_before) * TICK_MS ))" "$(( (pg_after - pg_before) * TICK_MS ))" <<'PY'
import json, sys
run = json.load(open(sys.argv[1]))
server_ms, pg_ms = int(sys.argv[2]), int(sys.argv[3])
calls = max(run["applied_including_warmup"], 1)
run["cpu_ms_per_request"] = {"server": server_ms / calls, "postgres": pg_ms / calls,
                             "client": (run.get("client_cpu_ms") or 0) / max(run["requests_ok"], 1)}
print(json.dumps(run))
PY
}

# Interleave the runs so that drift in a shared machine's speed hits both sides alike; the
# report compares medians over the rounds.
ROUNDS="${ROUNDS:-3}"
: >"$WORK/results.jsonl"
for round in $(seq 1 "$ROUNDS"); do
  run_graphql graphql-many "$SKUS" >>"$WORK/results.jsonl"
  if [ "${KEYED:-0}" = 1 ]; then
    run_graphql graphql-many-keyed "$SKUS" --keyed >>"$WORK/results.jsonl"
  fi
  if [ "${OWN:-0}" = 1 ]; then
    PORT=$OWN_PORT SERVER_PID=$OWN_PID run_graphql graphql-many-own "$SKUS" >>"$WORK/results.jsonl"
    if [ "${KEYED:-0}" = 1 ]; then
      PORT=$OWN_PORT SERVER_PID=$OWN_PID run_graphql graphql-many-own-keyed "$SKUS" --keyed >>"$WORK/results.jsonl"
    fi
  fi
  if [ "${ORDERS:-0}" = 1 ]; then
    run_graphql graphql-orders "$SKUS" --orders >>"$WORK/results.jsonl"
  fi
  run_pgbench pgbench-many "\\set n random(0, $((SKUS - 1)))" "$CLIENTS" >>"$WORK/results.jsonl"
  if [ "$POOL" != "$CLIENTS" ]; then
    run_pgbench pgbench-many "\\set n random(0, $((SKUS - 1)))" "$POOL" >>"$WORK/results.jsonl"
  fi
  if [ "${READS:-0}" = 1 ]; then
    run_graphql graphql-lookup "$SKUS" --reads lookup >>"$WORK/results.jsonl"
    # The same look-up in an open loop at half the rate this round just reached: its latency
    # when the server is not saturated (issue 13's aim: p99 under 2 ms there).
    HALF="$(tail -1 "$WORK/results.jsonl" | python3 -c 'import json,sys; print(json.load(sys.stdin)["throughput_per_s"] / 2)')"
    run_graphql graphql-lookup-half "$SKUS" --reads lookup --rate "$HALF" >>"$WORK/results.jsonl"
    run_pgbench pgbench-lookup "\\set n random(0, $((SKUS - 1)))" "$CLIENTS" lookup_script >>"$WORK/results.jsonl"
    run_graphql graphql-page "$SKUS" --reads page >>"$WORK/results.jsonl"
    run_pgbench pgbench-page "" "$CLIENTS" page_script >>"$WORK/results.jsonl"
  fi
  run_graphql graphql-hot 1 >>"$WORK/results.jsonl"
  if [ "${OWN:-0}" = 1 ]; then
    PORT=$OWN_PORT SERVER_PID=$OWN_PID run_graphql graphql-hot-own 1 >>"$WORK/results.jsonl"
  fi
  run_pgbench pgbench-hot "\\set n 0" "$CLIENTS" >>"$WORK/results.jsonl"
  if [ "$POOL" != "$CLIENTS" ]; then
    run_pgbench pgbench-hot "\\set n 0" "$POOL" >>"$WORK/results.jsonl"
  fi
done
kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=
if [ -n "${OWN_PID:-}" ]; then kill "$OWN_PID"; wait "$OWN_PID" 2>/dev/null || true; OWN_PID=; fi

cat "$WORK/results.jsonl"
python3 - "$WORK/results.jsonl" "$CLIENTS" "$DURATION" "$SKUS" "$POOL" "$ROUNDS" <<'PY'
import json, sys, os, platform, datetime, statistics
path, clients, duration, skus, pool, rounds = sys.argv[1:]
reads = os.environ["READ_POOL"]
rows = [json.loads(l) for l in open(path) if l.strip()]
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
def runs(label, c=None):
    return [r for r in rows if r["label"] == label and (c is None or r.get("clients") == c)]
def med(rs, key):
    return statistics.median(r[key] for r in rs)
def cpu_split(rs):
    return " / ".join(f"{statistics.median(r['cpu_ms_per_request'][k] for r in rs):.3f}" for k in ("server", "postgres", "client"))
def per_round(rs):
    return ", ".join(str(round(r["throughput_per_s"])) for r in rs)
print()
print(f"### {datetime.date.today()} — {os.cpu_count()} cores, {cpu}")
print()
print(f"{clients} concurrent clients, server pool {pool} connections (and {reads} kept for the look-up and pages), {rounds} interleaved rounds of {duration} s, Postgres sslmode={os.environ.get('PGSSLMODE', 'prefer')}; medians over rounds.")
print()
print("| run | SKUs | DB connections | throughput (/s) | p50 (ms) | p99 (ms) | ratio to best pgbench | errors / lost updates | CPU ms per call: server / Postgres / client | per-round throughput |")
print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
for kind, n in (("many", skus), ("hot", "1")):
    g = runs(f"graphql-{kind}")
    baselines = [runs(f"pgbench-{kind}", int(c)) for c in sorted({clients, pool}, key=int)]
    best = max(med(b, "throughput_per_s") for b in baselines if b)
    failed = sum(r["failed"] for r in g)
    lost = sum(r["lost_updates"] for r in g)
    print(f"| graphql-{kind} | {n} | {pool} (pool) | {med(g, 'throughput_per_s'):.0f} | {med(g, 'p50_ms'):.2f} | {med(g, 'p99_ms'):.2f} | **{med(g, 'throughput_per_s') / best:.2f}** | {failed} failed, {lost} lost | {cpu_split(g)} | {per_round(g)} |")
    for suffix, what in (("own", "group commit off: a transaction per call"), ("own-keyed", "group commit off, keyed")):
        own = runs(f"graphql-{kind}-{suffix}")
        if own:
            print(f"| graphql-{kind}-{suffix} ({what}) | {n} | {pool} (pool) | {med(own, 'throughput_per_s'):.0f} | {med(own, 'p50_ms'):.2f} | {med(own, 'p99_ms'):.2f} | {med(own, 'throughput_per_s') / best:.2f} | {sum(r['failed'] for r in own)} failed, {sum(r['lost_updates'] for r in own)} lost | {cpu_split(own)} | {per_round(own)} |")
    keyed = runs(f"graphql-{kind}-keyed")
    if keyed:
        print(f"| graphql-{kind}-keyed (a new Idempotency key per call) | {n} | {pool} (pool) | {med(keyed, 'throughput_per_s'):.0f} | {med(keyed, 'p50_ms'):.2f} | {med(keyed, 'p99_ms'):.2f} | {med(keyed, 'throughput_per_s') / best:.2f} | {sum(r['failed'] for r in keyed)} failed, {sum(r['lost_updates'] for r in keyed)} lost | {cpu_split(keyed)} | {per_round(keyed)} |")
    orders = runs("graphql-orders") if kind == "many" else []
    if orders:
        step = med(orders, "throughput_per_s")
        print(f"| graphql-orders (each call a step: create an order of 3 lines, allocate, ship) | {n} | {pool} (pool) | {step:.0f} steps ({med(orders, 'flows_per_s'):.0f} orders) | {med(orders, 'p50_ms'):.2f} | {med(orders, 'p99_ms'):.2f} | {step / best:.2f}; one step costs **{med(g, 'throughput_per_s') / step:.2f}** adjustStock calls | {sum(r['failed'] for r in orders)} failed, {sum(r['lost_updates'] for r in orders)} lost | {cpu_split(orders)} | {per_round(orders)} |")
    for b in baselines:
        if not b:
            continue
        print(f"| pgbench-{kind} | {n} | {b[0]['clients']} | {med(b, 'throughput_per_s'):.0f} | {med(b, 'p50_ms'):.2f} | {med(b, 'p99_ms'):.2f} | {med(b, 'throughput_per_s') / best:.2f} | {sum(r['failed'] for r in b)} failed | {cpu_split(b)} | {per_round(b)} |")
for kind, what in (("lookup", "stockLevel(sku, locationCode)"), ("page", "stockLevels(first: 50)")):
    g, b = runs(f"graphql-{kind}"), runs(f"pgbench-{kind}")
    if not g or not b:
        continue
    base = med(b, "throughput_per_s")
    print(f"| graphql-{kind}: {what}, one statement | {skus} | {reads} kept for reads | {med(g, 'throughput_per_s'):.0f} | {med(g, 'p50_ms'):.2f} | {med(g, 'p99_ms'):.2f} | **{med(g, 'throughput_per_s') / base:.2f}** of pgbench-{kind} | {sum(r['failed'] for r in g)} failed | {cpu_split(g)} | {per_round(g)} |")
    half = runs(f"graphql-{kind}-half")
    if half:
        print(f"| graphql-{kind} at half its maximum rate (open loop, {med(half, 'rate'):.0f}/s; latency from when each call was due) | {skus} | {reads} kept for reads | {med(half, 'throughput_per_s'):.0f} | {med(half, 'p50_ms'):.2f} | **{med(half, 'p99_ms'):.2f}** | {med(half, 'throughput_per_s') / base:.2f} of pgbench-{kind} | {sum(r['failed'] for r in half)} failed | {cpu_split(half)} | {per_round(half)} |")
    print(f"| pgbench-{kind}: that SELECT | {skus} | {clients} | {base:.0f} | {med(b, 'p50_ms'):.2f} | {med(b, 'p99_ms'):.2f} | 1.00 | {sum(r['failed'] for r in b)} failed | {cpu_split(b)} | {per_round(b)} |")
PY
if [ "${PGSS:-0}" = 1 ]; then
  for f in "$WORK"/graphql-*.pgss; do
    printf '\n#### Postgres time by statement, %s (last round)\n\n```\n' "$(basename "$f" .pgss)"
    cat "$f"
    printf '```\n'
  done
fi
