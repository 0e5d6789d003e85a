#!/usr/bin/env bash
# Mints an RS256 ID token of the test identity provider of the README's
# "OIDC group claims" section (examples/oidc/test-idp.json): signed with
# tests/fixtures/oidc/rsa1.pem (kid r1), issuer https://idp.example.test,
# audience holdfast, valid for 10 minutes. Test keys only: they protect nothing.
#
#   scripts/mint-id-token.sh USER [GROUP...]     # prints the token
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -lt 1 ]; then
  echo "usage: $0 USER [GROUP...]" >&2
  exit 2
fi
user=$1
shift
groups="[]"
if [ $# -gt 0 ]; then
  groups=$(printf '"%s",' "$@")
  groups="[${groups%,}]"
fi
now=$(date +%s)
b64url() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }
header=$(printf '{"alg":"RS256","typ":"JWT","kid":"r1"}' | b64url)
payload=$(printf '{"iss":"https://idp.example.test","aud":"holdfast","sub":"%s","iat":%d,"exp":%d,"groups":%s}' \
  "$user" "$now" "$((now + 600))" "$groups" | b64url)
sig=$(printf '%s.%s' "$header" "$payload" | openssl dgst -sha256 -sign tests/fixtures/oidc/rsa1.pem -binary | b64url)
printf '%s.%s.%s\n' "$header" "$payload" "$sig"
