#!/usr/bin/env bash
# Property-based API tests: schemathesis (PyPI) generates requests from
# schema/openapi.yaml and runs every check it has (`--checks all`: no 5xx,
# statuses, content types, headers and bodies as documented, invalid input
# rejected, valid input accepted, auth enforced, ...) against
# `holdfast serve --demo` on a temporary data directory and a free port.
# Exits non-zero if schemathesis reports a failure. CI runs it.
#
#   scripts/schemathesis.sh                 # uses (or builds) target/debug/holdfast
#   HOLDFAST_BIN=target/release/holdfast scripts/schemathesis.sh
#
# Environment: HOLDFAST_BIN (default target/debug/holdfast, built with
# `cargo build --locked` when missing), SCHEMATHESIS_VENV (default
# target/schemathesis-venv), SCHEMATHESIS_VERSION (default 4.32.5),
# SCHEMATHESIS_MAX_EXAMPLES (per operation and phase, default 20),
# SCHEMATHESIS_SEED (default 1), SCHEMATHESIS_WORKERS (default 1),
# SCHEMATHESIS_ARGS (more `st run` options), SCHEMATHESIS_VERBOSE=1 (print
# schemathesis' whole output even when it passes).
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION=${SCHEMATHESIS_VERSION:-4.32.5}
VENV=${SCHEMATHESIS_VENV:-target/schemathesis-venv}
MAX_EXAMPLES=${SCHEMATHESIS_MAX_EXAMPLES:-20}
SEED=${SCHEMATHESIS_SEED:-1}
WORKERS=${SCHEMATHESIS_WORKERS:-1}
START=$SECONDS

if ! "$VENV/bin/st" --version 2>/dev/null | grep -qx "st, version $VERSION"; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$VERSION"
fi

BIN=${HOLDFAST_BIN:-target/debug/holdfast}
if [ ! -x "$BIN" ]; then
    if [ -n "${HOLDFAST_BIN:-}" ]; then
        echo "HOLDFAST_BIN=$BIN is not an executable" >&2
        exit 2
    fi
    cargo build --locked --quiet --bin holdfast
fi

PY="$VENV/bin/python"
PORT=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
BASE="http://127.0.0.1:$PORT"
WORK=$(mktemp -d)
export HOLDFAST_API_KEY
HOLDFAST_API_KEY="st-$("$PY" -c 'import secrets; print(secrets.token_hex(16))')"
"$BIN" serve --data "$WORK/data" --listen "127.0.0.1:$PORT" --demo --durability buffered --issuer "$BASE" \
    2>"$WORK/server.log" &
PID=$!
cleanup() {
    kill "$PID" 2>/dev/null || true
    wait "$PID" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

# POSTs to the API with the admin key; prints the named fields of the answer.
post() {
    "$PY" - "$BASE$1" "${@:2}" <<'EOF'
import json, os, sys, urllib.request
req = urllib.request.Request(sys.argv[1], method="POST", data=b"",
                             headers={"Authorization": "Bearer " + os.environ["HOLDFAST_API_KEY"]})
answer = json.load(urllib.request.urlopen(req, timeout=10))
print(" ".join(answer[f] for f in sys.argv[2:]))
EOF
}

up=
for _ in $(seq 1 100); do
    if "$PY" -c "import urllib.request; urllib.request.urlopen('$BASE/healthz', timeout=1)" 2>/dev/null; then
        up=1
        break
    fi
    kill -0 "$PID" 2>/dev/null || break
    sleep 0.1
done
if [ -z "$up" ]; then
    cat "$WORK/server.log" >&2
    echo "holdfast did not start" >&2
    exit 2
fi

# Credentials for the other security schemes: a SCIM token of `acme`, and
# client credentials of one of its applications.
export HOLDFAST_SCIM_TOKEN HOLDFAST_CLIENT_ID HOLDFAST_CLIENT_SECRET
HOLDFAST_SCIM_TOKEN=$(post /v1/tenants/acme/scim-tokens token)
read -r HOLDFAST_CLIENT_ID HOLDFAST_CLIENT_SECRET \
    < <(post /v1/tenants/acme/applications/deploy-mcp/credentials client_id client_secret)

# Runs schemathesis on some operations; prints the summary (everything when
# it fails, or with SCHEMATHESIS_VERBOSE=1); returns its exit code.
run() {
    local log="$WORK/st-$1.log"
    shift
    local rc=0
    # shellcheck disable=SC2086
    NO_COLOR=1 "$VENV/bin/st" --config-file scripts/schemathesis.toml run schema/openapi.yaml \
        --url "$BASE" \
        --checks all \
        --max-examples "$MAX_EXAMPLES" \
        --seed "$SEED" \
        --workers "$WORKERS" \
        --generation-database none \
        --request-timeout 10 \
        --no-color \
        "$@" ${SCHEMATHESIS_ARGS:-} >"$log" 2>&1 || rc=$?
    if [ "$rc" -ne 0 ] || [ "${SCHEMATHESIS_VERBOSE:-}" = 1 ]; then
        cat "$log"
    else
        sed -n '/^=* *SUMMARY *=*$/,$p' "$log"
    fi
    return "$rc"
}

# Operations that revoke what the others authenticate with (the SCIM token,
# the client credentials and their application) run last, on their own.
REVOKING='^(deleteScimToken|deleteCredential|deleteApplication)$'
echo "schemathesis $VERSION against $BASE (seed $SEED, at most $MAX_EXAMPLES examples per operation and phase)"
rc=0
echo "--- every operation but the revoking ones"
run main --exclude-operation-id-regex "$REVOKING" || rc=1
echo "--- the revoking operations"
run revoking --include-operation-id-regex "$REVOKING" || rc=1
if ! kill -0 "$PID" 2>/dev/null; then
    echo "holdfast exited during the run:" >&2
    tail -n 50 "$WORK/server.log" >&2
    rc=1
fi
echo "schemathesis: exit $rc after $((SECONDS - START))s"
exit "$rc"
