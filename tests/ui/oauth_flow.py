"""The MCP authorization flow in a real headless Chromium (Debian's, never a
downloaded browser), driven by Playwright for Python. Run by
tests/it/oauth_as.rs against a real Holdfast and the suite's test IdP:

    python3 tests/ui/oauth_flow.py AUTHORIZE_URL REDIRECT_URI SCREENSHOT_DIR

The browser opens the client's authorization request, is sent to the IdP
(which signs alice in), back to Holdfast's callback, and lands on the
consent page, which must show the client, the application, `deploy:read`
as granted and `repo:read` as not granted with its reason. It clicks
Allow; the redirect to the client's URI (answered by Playwright, nothing
listens there) must carry `code`, `state` and `iss`. Prints `code=<code>`.
"""

import os
import sys
from urllib.parse import parse_qs, urlsplit

from playwright.sync_api import expect, sync_playwright

URL, REDIRECT, SHOTS = sys.argv[1:4]
CHROMIUM = os.environ.get("HOLDFAST_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--disable-quic"]
os.makedirs(SHOTS, exist_ok=True)

with sync_playwright() as p:
    browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    landed = []

    def client(route):
        landed.append(route.request.url)
        route.fulfill(status=200, content_type="text/html", body="<h1>client</h1>")

    page.route(REDIRECT + "*", client)
    page.goto(URL)
    expect(page.get_by_role("heading", name="Allow MCP client chromium to use Deploy MCP?")).to_be_visible()
    granted = page.locator("section", has=page.get_by_role("heading", name="It would get"))
    expect(granted.get_by_text("deploy:read")).to_be_visible()
    blocked = page.locator("section", has=page.get_by_role("heading", name="It would not get"))
    expect(blocked.get_by_text("repo:read")).to_be_visible()
    expect(blocked).to_contain_text("the application does not offer this scope")
    page.screenshot(path=os.path.join(SHOTS, "oauth-consent.png"), full_page=True)
    page.get_by_role("button", name="Allow").click()
    page.wait_for_url(REDIRECT + "*")
    q = {k: v[0] for k, v in parse_qs(urlsplit(landed[-1]).query).items()}
    for k in ("code", "state", "iss"):
        if k not in q:
            print(f"FAIL: `{k}` missing from {landed[-1]}", file=sys.stderr)
            sys.exit(1)
    browser.close()
    print(f"code={q['code']}")
