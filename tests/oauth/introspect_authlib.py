#!/usr/bin/env python3
"""Introspects a Holdfast access token with a real OAuth client library.

Uses authlib's RFC 7662 client support (`OAuth2Session.introspect_token`,
HTTP Basic client authentication) and RFC 7009 revocation
(`OAuth2Session.revoke_token`) against a running Holdfast server.

Usage: introspect_authlib.py BASE_URL CLIENT_ID CLIENT_SECRET TOKEN EXPECTED_SCOPE

Checks, in order: the token is active with EXPECTED_SCOPE; a wrong secret
is refused with 401; an unknown token is exactly {"active": false}; after
revocation the token is inactive. Exits 0 when all hold, 1 otherwise.
"""
import os
import sys

# Holdfast runs on plain HTTP on 127.0.0.1 in the test; authlib insists on
# HTTPS unless told otherwise.
os.environ.setdefault("AUTHLIB_INSECURE_TRANSPORT", "1")

from authlib.integrations.requests_client import OAuth2Session  # noqa: E402


def fail(msg):
    print(f"FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def main():
    if len(sys.argv) != 6:
        fail(__doc__)
    base, client_id, client_secret, token, expected_scope = sys.argv[1:]
    introspect_url = f"{base}/oauth2/introspect"
    revoke_url = f"{base}/oauth2/revoke"

    rs = OAuth2Session(client_id, client_secret, token_endpoint_auth_method="client_secret_basic")
    resp = rs.introspect_token(introspect_url, token=token, token_type_hint="access_token")
    if resp.status_code != 200:
        fail(f"introspection answered {resp.status_code}: {resp.text}")
    body = resp.json()
    if body.get("active") is not True:
        fail(f"expected an active token, got {body}")
    if set(body.get("scope", "").split()) != set(expected_scope.split()):
        fail(f"expected scope {expected_scope!r}, got {body.get('scope')!r}")
    for claim in ("client_id", "sub", "aud", "exp", "iat", "token_type"):
        if claim not in body:
            fail(f"claim {claim!r} missing from {body}")
    if body["token_type"] != "Bearer":
        fail(f"token_type is {body['token_type']!r}")
    print(f"active: sub={body['sub']} scope={body['scope']!r} aud={body['aud']}")

    wrong = OAuth2Session(client_id, "hf_cs_wrong", token_endpoint_auth_method="client_secret_basic")
    r = wrong.introspect_token(introspect_url, token=token)
    if r.status_code != 401 or not r.headers.get("WWW-Authenticate", "").startswith("Basic"):
        fail(f"a wrong secret answered {r.status_code} {r.headers.get('WWW-Authenticate')!r}")

    r = rs.introspect_token(introspect_url, token="hf_at_unknown")
    if r.status_code != 200 or r.json() != {"active": False}:
        fail(f"an unknown token answered {r.status_code} {r.text}")

    r = rs.revoke_token(revoke_url, token=token, token_type_hint="access_token")
    if r.status_code != 200:
        fail(f"revocation answered {r.status_code}: {r.text}")
    r = rs.introspect_token(introspect_url, token=token)
    if r.json() != {"active": False}:
        fail(f"a revoked token answered {r.text}")
    print("ok: active, 401 on a wrong secret, inactive when unknown and after revocation")


if __name__ == "__main__":
    main()
