#!/usr/bin/env bash
# Bulk jobs on Postgres, each against a baseline measured in the same run:
#   import   IMPORT_STOCK_COUNTS of ROWS rows (ITEMS SKUs x LOCATIONS locations, every row a
#            distinct level) through a running `twh serve`, REJECT_FAILED_ROWS (committed batch
#            by batch with the checkpoint); the job's own start-to-finish time, and the wall time
#            from upload to SUCCEEDED. Baseline: Postgres COPY of the same file into a plain
#            table (psql \copy), which checks nothing, writes no ledger, no events.
#   export   EXPORT_MOVEMENTS of every movement once the ledger holds MOVEMENTS of them (the
#            import's, plus synthetic ones written by SQL); peak RSS of the server before and
#            after (VmHWM), to show the export streams in constant memory.
#   reconcile a RECONCILE job over the same MOVEMENTS movements (aim: at most 5 s).
# Usage: bench/jobs.sh   (ROWS=100000 ITEMS=1000 MOVEMENTS=1000000 BATCH=1000)
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/twh-target}"
TARGET="$CARGO_TARGET_DIR"
ITEMS="${ITEMS:-1000}"
ROWS="${ROWS:-100000}"
MOVEMENTS="${MOVEMENTS:-1000000}"
BATCH="${BATCH:-1000}"
LOCATIONS=$(( (ROWS + ITEMS - 1) / ITEMS ))
PGHOST="${PGHOST:-127.0.0.1}"
PGPORT="${PGPORT:-5432}"
PGUSER="${PGUSER:-postgres}"
export PGHOST PGPORT PGUSER

# TWH_BENCH_BIN: a binary built elsewhere (an earlier commit, to compare in one session).
if [ -n "${TWH_BENCH_BIN:-}" ]; then
  TWH="$TWH_BENCH_BIN"
else
  cargo build --release -p twh-server >&2
  TWH="$TARGET/release/twh"
fi

DB="twh_bench_jobs_$(date +%s)"
WORK="$(mktemp -d)"
psql -d postgres -qc "CREATE DATABASE $DB"
PID=""
cleanup() {
  [ -n "$PID" ] && kill "$PID" 2>/dev/null || true
  wait 2>/dev/null || true
  psql -d postgres -qc "DROP DATABASE IF EXISTS $DB" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
URL="postgres://$PGUSER@$PGHOST:$PGPORT/$DB"
PORT=18291
API="http://127.0.0.1:$PORT"

. bench/tenant.sh
bench_tenant bench enterprise
# PG_LOG=1: Postgres logs every statement of this database with its duration (to find where
# the time goes; adds logging overhead, so not for the figures).
if [ "${PG_LOG:-0}" = 1 ]; then psql -d postgres -qc "ALTER DATABASE $DB SET log_min_duration_statement = 0"; fi

DATABASE_URL="$URL" TWH_BIND="127.0.0.1:$PORT" TWH_RATE_LIMITS=off TWH_DATA_DIR="$WORK/data" \
  TWH_JOB_WORKERS=1 TWH_JOB_BATCH_ROWS="$BATCH" TWH_RECONCILE_SCHEDULE=off RUST_LOG=warn \
  "$TWH" serve >"$WORK/server.log" 2>&1 &
PID=$!
for _ in $(seq 1 50); do curl -sf "$API/readyz" >/dev/null && break; sleep 0.2; done

gql() {
  curl -sf "$API/graphql" -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' -d "$1"
}
upload() {
  curl -sf "$API/v1/artifacts?name=$(basename "$1")" -H "Authorization: Bearer $KEY" \
    -H 'Content-Type: text/csv' --data-binary "@$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])'
}
# Starts a job and waits for it; prints "<wall seconds> <job seconds> <job json>".
run_job() {
  local body="$1" started id job
  started=$(date +%s.%N)
  id=$(curl -sf "$API/v1/jobs" -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' -d "$body" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
  while :; do
    job=$(curl -sf "$API/v1/jobs/$id" -H "Authorization: Bearer $KEY")
    case "$(printf '%s' "$job" | python3 -c 'import json,sys; print(json.load(sys.stdin)["status"])')" in
      SUCCEEDED) break ;;
      FAILED|CANCELLED) echo "job failed: $job" >&2; exit 1 ;;
    esac
    sleep 0.05
  done
  local wall
  wall=$(python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.3f}')" "$started" "$(date +%s.%N)")
  printf '%s %s\n' "$wall" "$(printf '%s' "$job" | python3 -c '
import json, sys
from datetime import datetime
j = json.load(sys.stdin)
t = lambda s: datetime.fromisoformat(s.replace("Z", "+00:00"))
print("%.3f" % (t(j["finishedAt"]) - t(j["startedAt"])).total_seconds(), json.dumps(j["result"]))')"
}
peak_rss_mb() { awk '/VmHWM/ { printf "%.1f", $2 / 1024 }' "/proc/$PID/status"; }

echo "setting up: $LOCATIONS locations, $ITEMS items" >&2
for l in $(seq 1 "$LOCATIONS"); do
  gql "{\"query\":\"mutation { createLocation(input: {code: \\\"L$l\\\", name: \\\"L$l\\\"}) { userErrors { code } } }\"}" >/dev/null
done
python3 - "$WORK/items.csv" "$ITEMS" <<'PY'
import sys
with open(sys.argv[1], "w") as f:
    f.write("sku,name,barcode,unit\n")
    for i in range(int(sys.argv[2])):
        f.write(f"SKU-{i},Item {i},,each\n")
PY
read -r items_wall items_job items_result < <(run_job "{\"kind\":\"IMPORT_ITEMS\",\"inputArtifact\":\"$(upload "$WORK/items.csv")\"}")

python3 - "$WORK/counts.csv" "$ITEMS" "$LOCATIONS" "$ROWS" <<'PY'
import sys
path, items, locations, rows = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
with open(path, "w") as f:
    f.write("sku,location,quantity\n")
    n = 0
    for l in range(1, locations + 1):
        for i in range(items):
            if n == rows:
                break
            f.write(f"SKU-{i},L{l},{(i * 7 + l) % 500 + 1}\n")
            n += 1
PY
ARTIFACT=$(upload "$WORK/counts.csv")
echo "importing $ROWS stock counts" >&2
read -r import_wall import_job import_result < <(run_job "{\"kind\":\"IMPORT_STOCK_COUNTS\",\"inputArtifact\":\"$ARTIFACT\",\"params\":{\"errorPolicy\":\"REJECT_FAILED_ROWS\"}}")

psql -d "$DB" -qc "CREATE TABLE copy_bench (sku text, location text, quantity bigint)"
copy_started=$(date +%s.%N)
psql -d "$DB" -qc "\\copy copy_bench FROM '$WORK/counts.csv' WITH (FORMAT csv, HEADER true)"
copy_s=$(python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.3f}')" "$copy_started" "$(date +%s.%N)")
copied=$(psql -d "$DB" -tAc "SELECT COUNT(*) FROM copy_bench")

# The floor: the rows this import must write, and nothing else, by SQL alone. For each counted
# row a level holding the count, one movement and one `stock.changed` event with the level in
# its payload, the SKU and location code resolved by join, from a COPY of the same file into a
# staging table, in one transaction, for a second tenant with the same items and locations in
# the same database (the same tables and indexes, already holding the import's rows). No
# validation, no relay, no row built outside Postgres: what any implementation of this import
# on this schema and machine pays at least.
FLOOR_TENANT="$(DATABASE_URL="$URL" "$TWH" tenant create --name floor --plan enterprise \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["tenantId"])')"
psql -d "$DB" -q <<SQL
INSERT INTO items (tenant_id, id, sku, name, barcode, unit, attributes, status, version, created_at, updated_at)
SELECT '$FLOOR_TENANT', 'f' || id, sku, name, barcode, unit, attributes, status, version, created_at, updated_at
FROM items WHERE tenant_id = '$TENANT';
INSERT INTO locations (tenant_id, id, code, name, kind, allow_negative, version, created_at, updated_at)
SELECT '$FLOOR_TENANT', 'f' || id, code, name, kind, allow_negative, version, created_at, updated_at
FROM locations WHERE tenant_id = '$TENANT';
SQL
floor_started=$(date +%s.%N)
psql -d "$DB" -q -v ON_ERROR_STOP=1 <<SQL
BEGIN;
CREATE TEMP TABLE floor_stage (sku text, location text, quantity bigint) ON COMMIT DROP;
\\copy floor_stage FROM '$WORK/counts.csv' WITH (FORMAT csv, HEADER true)
CREATE TEMP TABLE floor_rows ON COMMIT DROP AS
SELECT i.id AS item_id, i.sku, l.id AS location_id, l.code, s.quantity,
  lpad(to_hex(row_number() OVER ()), 32, '0') AS n
FROM floor_stage s JOIN items i ON i.tenant_id = '$FLOOR_TENANT' AND i.sku = s.sku
JOIN locations l ON l.tenant_id = '$FLOOR_TENANT' AND l.code = s.location;
INSERT INTO stock_levels (tenant_id, item_id, location_id, available, committed, reserved, incoming,
  damaged, safety_stock, quality_control, sequence, version, updated_at)
SELECT '$FLOOR_TENANT', item_id, location_id, quantity, 0, 0, 0, 0, 0, 0, 1, 1, now() FROM floor_rows;
INSERT INTO movements (tenant_id, id, group_id, item_id, location_id, state, delta, quantity_after,
  sequence, counterparty, reason, reference_document_uri, actor, effective_at, recorded_at)
SELECT '$FLOOR_TENANT', 'mov_' || n, 'grp_floor', item_id, location_id, 'available', quantity, quantity,
  1, 'adjustment', 'cycle_count', 'twh://jobs/floor', 'job:floor', now(), now() FROM floor_rows;
INSERT INTO outbox_events (tenant_id, id, event_type, aggregate_type, aggregate_id, payload, created_at)
SELECT '$FLOOR_TENANT', 'evt_' || n, 'stock.changed', 'stock_level', item_id || ':' || location_id,
  json_build_object('groupId', 'grp_floor', 'operation', 'importStockCounts', 'level',
    json_build_object('itemId', item_id, 'sku', sku, 'locationId', location_id, 'locationCode', code,
      'onHand', quantity, 'available', quantity, 'committed', 0, 'reserved', 0, 'incoming', 0,
      'damaged', 0, 'safetyStock', 0, 'qualityControl', 0, 'sequence', 1, 'version', 1,
      'updatedAt', now())),
  now() FROM floor_rows;
COMMIT;
SQL
floor_s=$(python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.3f}')" "$floor_started" "$(date +%s.%N)")
floored=$(psql -d "$DB" -tAc "SELECT COUNT(*) FROM movements WHERE tenant_id = '$FLOOR_TENANT'")
# The running server relays the floor's events; let it finish before the export is timed.
for _ in $(seq 1 600); do
  [ "$(psql -d "$DB" -tAc "SELECT COUNT(*) FROM outbox_events WHERE published_at IS NULL")" = 0 ] && break
  sleep 0.5
done

# The ledger grows to MOVEMENTS movements: each level gets more receipts, written by SQL with
# matching snapshots, so it stays consistent (the reconciliation must find nothing).
have=$(psql -d "$DB" -tAc "SELECT COUNT(*) FROM movements WHERE tenant_id = '$TENANT'")
levels=$(psql -d "$DB" -tAc "SELECT COUNT(*) FROM stock_levels WHERE tenant_id = '$TENANT'")
per_level=$(( (MOVEMENTS - have + levels - 1) / levels ))
echo "writing $(( per_level * levels )) synthetic movements" >&2
psql -d "$DB" -q <<SQL
INSERT INTO movements (tenant_id, id, group_id, item_id, location_id, state, delta, quantity_after,
  sequence, counterparty, reason, actor, effective_at, recorded_at)
SELECT s.tenant_id, 'mov_bench_' || md5(s.item_id || s.location_id || g), 'grp_bench', s.item_id,
  s.location_id, 'available', 1, s.available + g, s.sequence + g, 'adjustment', 'received', 'bench',
  now(), now()
FROM stock_levels s, generate_series(1, $per_level) g WHERE s.tenant_id = '$TENANT';
UPDATE stock_levels SET available = available + $per_level, sequence = sequence + $per_level
  WHERE tenant_id = '$TENANT';
ANALYZE;
SQL
total=$(psql -d "$DB" -tAc "SELECT COUNT(*) FROM movements WHERE tenant_id = '$TENANT'")

rss_before=$(peak_rss_mb)
echo "exporting $total movements" >&2
read -r export_wall export_job export_result < <(run_job '{"kind":"EXPORT_MOVEMENTS"}')
rss_after=$(peak_rss_mb)
echo "reconciling $total movements" >&2
read -r rec_wall rec_job rec_result < <(run_job '{"kind":"RECONCILE"}')
read -r rec2_wall rec2_job rec2_result < <(run_job '{"kind":"RECONCILE"}')

rate() { python3 -c "import sys; print(f'{int(sys.argv[1]) / float(sys.argv[2]):.0f}')" "$1" "$2"; }
ratio() { python3 -c "import sys; print(f'{float(sys.argv[1]) / float(sys.argv[2]):.3f}')" "$1" "$2"; }
import_rate=$(rate "$ROWS" "$import_job")
copy_rate=$(rate "$copied" "$copy_s")
floor_rate=$(rate "$floored" "$floor_s")
cat <<EOF

Postgres, one \`twh serve\` (release, TWH_JOB_WORKERS=1, batches of $BATCH rows), one database, one run.

| measure | figure | baseline (same run) | ratio |
| --- | --- | --- | --- |
| IMPORT_ITEMS, $ITEMS rows | ${items_job} s in the job (${items_wall} s wall) | | |
| IMPORT_STOCK_COUNTS, $ROWS rows | **$import_rate rows/s** (${import_job} s in the job, ${import_wall} s from start to SUCCEEDED seen) | COPY of the same file into a plain table: $copy_rate rows/s (${copy_s} s) | **$(ratio "$import_rate" "$copy_rate")** |
| the floor: the same rows' level, movement and event written by SQL alone (COPY to a staging table, three INSERT … SELECT, one transaction) | $floor_rate rows/s (${floor_s} s) | COPY: $copy_rate rows/s | import / floor **$(ratio "$import_rate" "$floor_rate")**, floor / COPY $(ratio "$floor_rate" "$copy_rate") |
| EXPORT_MOVEMENTS, $total movements | ${export_job} s in the job ($(rate "$total" "$export_job") rows/s) | server peak RSS before the export: ${rss_before} MB | peak RSS after: **${rss_after} MB** |
| RECONCILE, $total movements | **${rec_job} s**, then ${rec2_job} s | aim: 5 s | |

import result: $import_result
export result: $export_result
reconcile results: $rec_result / $rec2_result
EOF
