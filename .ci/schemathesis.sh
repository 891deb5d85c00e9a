#!/usr/bin/env bash
# Runs schemathesis (every check) against a freshly started server's /v1/openapi.json.
# Usage: .ci/schemathesis.sh LABEL [DATABASE_URL]   (no URL: SQLite in a temporary folder)
set -euo pipefail
cd "$(dirname "$0")/.."
label="$1"
database_url="${2:-}"
TARGET="${CARGO_TARGET_DIR:-$HOME/.cache/twh-target}"
VENV="${TWH_VENV:-$HOME/.cache/twh-venv}"
PORT="${ST_PORT:-18190}"

if [ ! -x "$VENV/bin/st" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q "schemathesis==4.32.5"
fi

workdir="$(mktemp -d)"
cleanup() {
  [ -n "${server_pid:-}" ] && kill "$server_pid" 2>/dev/null || true
  rm -rf "$workdir"
}
trap cleanup EXIT

cargo build -q --bin twh
(
  cd "$workdir"
  if [ -n "$database_url" ]; then export DATABASE_URL="$database_url"; fi
  # Rate limits off: thousands of generated requests on the sandbox's Free plan would mostly
  # be 429s and leave the operations behind them untested (429 is in every operation's
  # responses, and the limits have their own tests).
  TWH_BIND="127.0.0.1:$PORT" TWH_RATE_LIMITS=off RUST_LOG=warn exec "$TARGET/debug/twh" serve >"$workdir/server.out" 2>"$workdir/server.err"
) &
server_pid=$!
key=""
for _ in $(seq 1 120); do
  key="$(grep -o 'twh_test_[A-Za-z0-9]*' "$workdir/server.out" 2>/dev/null | head -1 || true)"
  [ -n "$key" ] && curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null && break
  sleep 0.5
done
if [ -z "$key" ]; then
  echo "the server did not start:" >&2
  cat "$workdir/server.err" >&2
  exit 1
fi

echo "schemathesis ($label): every check against http://127.0.0.1:$PORT/v1/openapi.json"
"$VENV/bin/st" run "http://127.0.0.1:$PORT/v1/openapi.json" \
  --checks all \
  --max-examples "${ST_MAX_EXAMPLES:-60}" \
  -H "Authorization: Bearer $key" \
  --no-color
