#!/usr/bin/env bash
# Runs an independent SCIM 2.0 conformance suite, scim2-tester (PyPI), against
# `holdfast serve` on a temporary data directory and port, and prints its
# results. Not part of CI (it downloads packages and takes a while).
#
#   scripts/scim-conformance.sh            # builds target/debug/holdfast
#   HOLDFAST_BIN=target/release/holdfast scripts/scim-conformance.sh
#
# Environment: SCIM_VENV (default target/scim-venv), SCIM2_TESTER_VERSION
# (default 0.5.2), PORT (default: a free one).
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${SCIM_VENV:-target/scim-venv}
VERSION=${SCIM2_TESTER_VERSION:-0.5.2}
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
fi
"$VENV/bin/pip" install --quiet "scim2-tester==$VERSION" "scim2-client[httpx2]"

BIN=${HOLDFAST_BIN:-}
if [ -z "$BIN" ]; then
    cargo build --quiet --bin holdfast
    BIN=target/debug/holdfast
fi

PORT=${PORT:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
BASE="http://127.0.0.1:$PORT"
DATA=$(mktemp -d)
KEY="conformance-admin-$RANDOM$RANDOM"
HOLDFAST_API_KEY="$KEY" "$BIN" serve --data "$DATA" --listen "127.0.0.1:$PORT" --demo \
    --durability buffered --issuer "$BASE" 2>"$DATA.log" &
PID=$!
cleanup() {
    kill "$PID" 2>/dev/null || true
    wait "$PID" 2>/dev/null || true
    rm -rf "$DATA" "$DATA.log"
}
trap cleanup EXIT

for _ in $(seq 1 100); do
    curl -fs "$BASE/healthz" >/dev/null 2>&1 && break
    sleep 0.1
done
curl -fs "$BASE/healthz" >/dev/null || { cat "$DATA.log"; echo "holdfast did not start" >&2; exit 2; }

TOKEN=$(curl -fs -X POST "$BASE/v1/tenants/acme/scim-tokens" -H "Authorization: Bearer $KEY" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["token"])')
echo "scim2-tester $VERSION against $BASE/scim/v2/acme"
"$VENV/bin/python" scripts/scim_conformance.py "$BASE/scim/v2/acme" "$TOKEN"
