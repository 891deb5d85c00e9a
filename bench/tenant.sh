# The bench scripts' database set-up (sourced, with $URL and $TWH set): `bench_tenant NAME
# PLAN` migrates the database and makes a tenant of the run's own (the sandbox tenant is made
# on the server's first start, not here), setting KEY (its API key) and TENANT (its id).
bench_tenant() {
  DATABASE_URL="$URL" "$TWH" migrate >/dev/null
  local created
  created="$(DATABASE_URL="$URL" "$TWH" tenant create --name "$1" --plan "$2")"
  KEY="$(printf '%s' "$created" | python3 -c 'import json,sys; print(json.load(sys.stdin)["apiKey"])')"
  TENANT="$(printf '%s' "$created" | python3 -c 'import json,sys; print(json.load(sys.stdin)["tenantId"])')"
}
