#!/usr/bin/env python3
"""An MCP client's whole OAuth flow against Holdfast, with authlib.

Follows the MCP authorization spec's discovery chain: the MCP server's
protected-resource metadata (RFC 9728) names the authorization server; its
RFC 8414 metadata (path-inserted well-known URL) names the endpoints. Then
authlib's `OAuth2Session` runs the authorization-code flow with PKCE S256
and an RFC 8707 `resource`; a `requests` session plays the browser through
the login at the tenant's identity provider and the consent page. The
client checks the RFC 9207 `iss` of the answer, exchanges the code,
refreshes (rotation), and checks that reusing the old refresh token is
refused with `invalid_grant`.

Usage: mcp_flow_authlib.py BASE APPLICATION CLIENT_ID REDIRECT_URI SCOPE EXPECTED_SCOPE
Exits 0 when every step holds, 1 otherwise.
"""
import os
import re
import sys
from urllib.parse import urlsplit

os.environ.setdefault("AUTHLIB_INSECURE_TRANSPORT", "1")

import requests  # noqa: E402
from authlib.common.security import generate_token  # noqa: E402
from authlib.integrations.requests_client import OAuth2Session  # noqa: E402


def fail(msg):
    print(f"FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def main():
    if len(sys.argv) != 7:
        fail(__doc__)
    base, app, client_id, redirect_uri, scope, expected = sys.argv[1:]

    # 1. Discovery: resource metadata -> issuer -> endpoints.
    prm = requests.get(f"{base}/v1/tenants/acme/applications/{app}/.well-known/oauth-protected-resource").json()
    resource, issuer = prm["resource"], prm["authorization_servers"][0]
    parts = urlsplit(issuer)
    meta_url = f"{parts.scheme}://{parts.netloc}/.well-known/oauth-authorization-server{parts.path}"
    meta = requests.get(meta_url).json()
    if meta["issuer"] != issuer:
        fail(f"metadata issuer {meta['issuer']!r} is not {issuer!r}")
    if "S256" not in meta["code_challenge_methods_supported"] or not meta["client_id_metadata_document_supported"]:
        fail(f"metadata lacks PKCE S256 or CIMD support: {meta}")

    # 2. Authorization request with PKCE and the resource indicator.
    client = OAuth2Session(client_id, redirect_uri=redirect_uri, scope=scope,
                           code_challenge_method="S256", token_endpoint_auth_method="none")
    verifier = generate_token(64)
    url, state = client.create_authorization_url(meta["authorization_endpoint"], code_verifier=verifier,
                                                 resource=resource)

    # 3. The browser: login at the IdP (auto-approved), consent, back.
    browser = requests.Session()
    resp = browser.get(url, allow_redirects=False)
    for _ in range(10):
        loc = resp.headers.get("Location")
        if loc and loc.startswith(redirect_uri):
            break
        if loc:
            resp = browser.get(loc, allow_redirects=False)
            continue
        if resp.status_code == 200 and 'name="decision"' in resp.text:
            fields = dict(re.findall(r'name="(txn|csrf)" value="([^"]+)"', resp.text))
            action = re.search(r'action="([^"]+)"', resp.text).group(1)
            resp = browser.post(f"{base}{action}", data={**fields, "decision": "approve"}, allow_redirects=False)
            continue
        fail(f"stuck at {resp.status_code}: {resp.text[:500]}")
    else:
        fail("too many redirects")
    answer = resp.headers["Location"]

    # 4. RFC 9207: the answer's issuer must be the one discovered.
    from urllib.parse import parse_qs
    q = {k: v[0] for k, v in parse_qs(urlsplit(answer).query).items()}
    if "error" in q:
        fail(f"authorization failed: {q}")
    if q.get("iss") != issuer:
        fail(f"`iss` {q.get('iss')!r} is not the discovered issuer {issuer!r}")
    print("ok: iss matches the discovered issuer")

    # 5. Code exchange (authlib checks `state`).
    token = client.fetch_token(meta["token_endpoint"], authorization_response=answer, code_verifier=verifier,
                               resource=resource, state=state)
    granted = " ".join(sorted(token["scope"].split()))
    if granted != " ".join(sorted(expected.split())):
        fail(f"granted {granted!r}, expected {expected!r}")
    print(f"ok: granted {granted}")

    # 6. Refresh rotates; the old refresh token is then refused.
    old = token["refresh_token"]
    new = client.refresh_token(meta["token_endpoint"], refresh_token=old)
    if new["refresh_token"] == old:
        fail("the refresh token was not rotated")
    print(f"ok: refreshed, scope {new['scope']}")
    r = requests.post(meta["token_endpoint"], data={"grant_type": "refresh_token", "refresh_token": old,
                                                    "client_id": client_id})
    if r.status_code != 400 or r.json().get("error") != "invalid_grant":
        fail(f"reusing a refresh token answered {r.status_code} {r.text}")
    print("ok: reuse refused with invalid_grant")


if __name__ == "__main__":
    main()
