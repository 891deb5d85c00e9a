#!/usr/bin/env bash
# Refreshes the GraphiQL bundle embedded in the `twh` binary from the npm registry's packages,
# pinned here, and records their checksums in VERSIONS (a unit test checks the embedded files
# against it). Needs npm; building the server never does.
set -euo pipefail
cd "$(dirname "$0")"
GRAPHIQL=3.9.0
REACT=18.3.1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "graphiql@$GRAPHIQL" "react@$REACT" "react-dom@$REACT" >/dev/null)
for pkg in "graphiql-$GRAPHIQL" "react-$REACT" "react-dom-$REACT"; do
  mkdir -p "$work/$pkg" && tar xzf "$work/$pkg.tgz" -C "$work/$pkg"
done
cp "$work/graphiql-$GRAPHIQL/package/graphiql.min.js" "$work/graphiql-$GRAPHIQL/package/graphiql.min.css" .
cp "$work/graphiql-$GRAPHIQL/package/LICENSE" LICENSE-graphiql
cp "$work/react-$REACT/package/umd/react.production.min.js" .
cp "$work/react-dom-$REACT/package/umd/react-dom.production.min.js" .
cp "$work/react-$REACT/package/LICENSE" LICENSE-react
{
  echo "# package@version  sha256  file (checked by server/src/http/graphiql.rs's tests)"
  echo "graphiql@$GRAPHIQL $(sha256sum graphiql.min.js)"
  echo "graphiql@$GRAPHIQL $(sha256sum graphiql.min.css)"
  echo "react@$REACT $(sha256sum react.production.min.js)"
  echo "react-dom@$REACT $(sha256sum react-dom.production.min.js)"
} > VERSIONS
