"""The admin UI in a real headless Chromium (Debian's, never a downloaded
browser), driven by Playwright for Python. Run by tests/it/ui_browser.rs
against a real server with the worked example loaded:

    python3 tests/ui/admin_flow.py BASE_URL ADMIN_KEY READER_KEY SCREENSHOT_DIR POLICY_FILE

Flow: sign in; create a group, add alice, bind a role on an application
with MFA; alice's effective access shows the entry tagged group with its
path; Why? for that scope without MFA is a step-up; suspend alice -> Why?
is denied (suspended); reactivate; a read-only key sees no controls; sign
out. A screenshot of each page goes to SCREENSHOT_DIR.
"""

import os
import sys

from playwright.sync_api import expect, sync_playwright

BASE, ADMIN, READER, SHOTS, POLICY = sys.argv[1:6]
CHROMIUM = os.environ.get("HOLDFAST_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--disable-quic"]
T = BASE + "/ui/t/acme"
os.makedirs(SHOTS, exist_ok=True)
shot_no = [0]


def shot(page, name):
    shot_no[0] += 1
    page.screenshot(path=os.path.join(SHOTS, f"{shot_no[0]:02d}-{name}.png"), full_page=True)


def sign_in(page, key):
    page.goto(BASE + "/ui/")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()


def sign_out(page):
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()


def why(page, subject, app, scope, mfa=False):
    page.goto(f"{T}/effective-access?subject={subject}")
    page.get_by_label("Application", exact=True).select_option(app)
    page.get_by_label("Scope", exact=True).fill(scope)
    page.get_by_label("MFA done" if mfa else "No MFA").check()
    page.get_by_role("button", name="Explain").click()


def changing_forms(page):
    """POST forms other than sign-out: controls that change something."""
    return page.locator("form[method=post]:not([action='/ui/sign-out'])").count()


with sync_playwright() as p:
    browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    page.set_default_timeout(15000)

    # Sign in with the admin key; the key is in no URL.
    page.goto(BASE + "/ui/")
    shot(page, "sign-in")
    sign_in(page, ADMIN)
    expect(page.get_by_role("heading", name="Tenants")).to_be_visible()
    assert ADMIN not in page.url
    page.get_by_role("link", name="acme").click()
    expect(page.get_by_role("heading", name="Groups")).to_be_visible()
    expect(page.locator("table")).to_contain_text("on-call")
    shot(page, "groups")

    # Create a group, add alice, bind a role on an application with MFA.
    page.get_by_label("Id", exact=True).fill("release")
    page.get_by_label("Display name (optional)").fill("Release managers")
    page.get_by_role("button", name="Create group").click()
    expect(page.get_by_role("heading", name="Group release")).to_be_visible()
    expect(page.locator(".notice")).to_contain_text("created group `release`")
    page.get_by_label("Add a member").fill("user:alice")
    page.get_by_role("button", name="Add member").click()
    expect(page.locator(".notice")).to_contain_text("added `user:alice`")
    page.get_by_label("Role", exact=True).select_option("deploy-operator")
    page.get_by_label("Application", exact=True).select_option("deploy-mcp")
    page.get_by_label("Require multi-factor authentication").check()
    page.get_by_label("MFA at most this old").fill("10m")
    page.get_by_role("button", name="Bind role").click()
    expect(page.locator(".notice")).to_contain_text("bound `application:deploy-mcp#deploy-operator@group:release`")
    expect(page.locator("section", has_text="Role bindings")).to_contain_text("mfa (max_age 10m)")
    shot(page, "group-release")

    # Alice's effective access: the new entry, tagged group, with its path.
    page.goto(f"{T}/effective-access?subject=user:alice")
    row = page.locator("tr[data-binding='application:deploy-mcp#deploy-operator@group:release']")
    expect(row).to_contain_text("group")
    expect(row).to_contain_text("user:alice → group:release")
    expect(row).to_contain_text("mfa (max_age 10m)")
    expect(row).to_contain_text("active")
    shot(page, "effective-access")

    # Why? for that scope without MFA: step-up.
    why(page, "user:alice", "deploy-mcp", "deploy:prod")
    expect(page.locator(".decision")).to_contain_text("Step-up required")
    expect(page.locator("table.trace")).to_contain_text("application:deploy-mcp#deploy-operator@group:release")
    expect(page.locator("table.trace")).to_contain_text("blocked: multi-factor authentication is required")
    shot(page, "why-step-up")
    why(page, "user:alice", "deploy-mcp", "deploy:prod", mfa=True)
    expect(page.locator(".decision")).to_contain_text("Allowed")

    # Suspend alice: Why? is denied, suspended.
    page.goto(f"{T}/users")
    alice = page.locator("tr[data-subject='user:alice']")
    alice.get_by_label("Reason for suspending alice").fill("laptop lost")
    alice.get_by_role("button", name="Suspend alice").click()
    expect(page.locator(".notice")).to_contain_text("suspended `user:alice`")
    expect(alice).to_contain_text("suspended — laptop lost")
    shot(page, "users-suspended")
    why(page, "user:alice", "deploy-mcp", "deploy:prod", mfa=True)
    expect(page.locator(".decision")).to_contain_text("Denied")
    expect(page.locator(".decision")).to_contain_text("subject_suspended")
    shot(page, "why-suspended")

    # Reactivate.
    page.goto(f"{T}/users")
    alice.get_by_role("button", name="Reactivate alice").click()
    expect(page.locator(".notice")).to_contain_text("reactivated `user:alice`")
    expect(alice).to_contain_text("active")
    why(page, "user:alice", "deploy-mcp", "deploy:prod", mfa=True)
    expect(page.locator(".decision")).to_contain_text("Allowed")

    # The other pages.
    page.goto(f"{T}/service-accounts")
    expect(page.locator("table")).to_contain_text("ci-bot")
    shot(page, "service-accounts")
    page.goto(f"{T}/roles")
    expect(page.locator("table")).to_contain_text("deploy-operator")
    shot(page, "roles")
    page.goto(f"{T}/applications")
    expect(page.locator("table")).to_contain_text("https://mcp.acme.example/deploy")
    page.get_by_role("link", name="deploy-mcp").click()
    expect(page.get_by_role("heading", name="Who can access")).to_be_visible()
    expect(page.locator("table.access")).to_contain_text("user:alice")
    shot(page, "application-deploy-mcp")
    page.goto(f"{T}/changes")
    expect(page.locator("table.activity")).to_contain_text("wrote group:release#member@user:alice")
    expect(page.locator("table.activity")).to_contain_text("suspended user:alice: laptop lost")
    shot(page, "activity")
    page.goto(f"{T}/policy")
    # Upload: our script reads the file into the text area.
    page.get_by_label("Upload a policy file (YAML or JSON)").set_input_files(POLICY)
    expect(page.get_by_label("…or paste it")).to_have_value(open(POLICY, encoding="utf-8").read())
    page.get_by_role("button", name="Validate and preview the diff").click()
    expect(page.locator(".notice")).to_contain_text("The file is valid")
    expect(page.locator("pre.diff")).to_be_visible()
    shot(page, "policy-preview")
    page.get_by_label("…or paste it").fill("roles:\n  r:\n    scopes: [x]\nbindings:\n  - subject: user:a\n    role: nope\n")
    page.get_by_role("button", name="Validate and preview the diff").click()
    expect(page.locator("table.findings")).to_contain_text("nope")
    shot(page, "policy-findings")

    # Sign out: the pages redirect to sign-in and show no data.
    sign_out(page)
    page.goto(f"{T}/users")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    assert "alice" not in page.content()

    # A read-only key sees everything in its tenant, and no controls.
    sign_in(page, READER)
    expect(page.get_by_role("heading", name="Groups")).to_be_visible()
    expect(page.locator(".who")).to_contain_text("read-only")
    for path in ["/groups", "/groups/release", "/users", "/service-accounts", "/policy",
                 "/effective-access?subject=user:alice&application=deploy-mcp&scope=deploy:prod"]:
        page.goto(T + path)
        assert changing_forms(page) == 0, f"{path}: a read-only key sees a control that changes something"
    page.goto(f"{T}/users")
    expect(page.locator("tr[data-subject='user:alice']")).to_contain_text("active")
    shot(page, "users-read-only")
    sign_out(page)

    browser.close()
print(f"ok: {shot_no[0]} screenshots in {SHOTS}")
