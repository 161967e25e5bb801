"""End to end: Debian's Chromium, driven by Playwright, against a real `bootfleet serve`.

The server is the installed command in a subprocess on 127.0.0.1 (HTTP only, temporary data
and images); the installer is simulated by POSTing to the callback URL that /ipxe hands out.
Screenshots go to tests/artifacts/web/; with UPDATE_SCREENSHOTS=1 the dashboard's also
replaces docs/img/dashboard.png (the README's picture), so a plain test run leaves the tree clean.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.serve import Served, cli

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "tests" / "artifacts" / "web"
DASHBOARD_PNG = REPO / "docs" / "img" / "dashboard.png"
WAIT_MS = 30_000  # upper bound for a live update to show; it normally takes one poll (2 s)

pytestmark = pytest.mark.slow


def _require_browser() -> None:
    required = os.environ.get("BOOTFLEET_E2E_REQUIRED") == "1"
    problem = None
    if not CHROMIUM.exists():
        problem = f"{CHROMIUM} is missing (apt-get install chromium)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            problem = "the playwright package is missing (pip install -e '.[test]')"
    if problem and required:
        pytest.fail(f"BOOTFLEET_E2E_REQUIRED=1 but {problem}")
    if problem:
        pytest.skip(problem)


@dataclass
class Server:
    url: str
    data_dir: Path
    token: str

    def cli(self, *args: str) -> str:
        return cli(*args, data_dir=self.data_dir).strip()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    _require_browser()
    base = tmp_path_factory.mktemp("web-e2e")
    data, images = base / "data", base / "images"
    (images / "debian").mkdir(parents=True)
    (images / "debian" / "linux").write_bytes(b"kernel" * 1000)
    (images / "debian" / "initrd.gz").write_bytes(b"initrd" * 5000)
    served = Served(data, images, "--advertise", "127.0.0.1")
    srv = Server(served.url, data, "")
    srv.token = srv.cli("token", "create", "--name", "e2e")
    try:
        with served:
            yield srv
    finally:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shutil.copy(served.log, ARTIFACTS / "server.log")


@pytest.fixture(scope="module")
def browser(server: Server) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def new_page(browser: Any, server: Server) -> Iterator[Any]:
    """Open pages in fresh browser contexts (own cookies); confirm() dialogs are accepted."""
    from playwright.sync_api import expect

    expect.set_options(timeout=WAIT_MS)
    contexts = []

    def make(**options: Any) -> Any:
        options.setdefault("viewport", {"width": 1280, "height": 860})
        context = browser.new_context(base_url=server.url, **options)
        context.set_default_timeout(WAIT_MS)
        contexts.append(context)
        page = context.new_page()
        page.on("dialog", lambda dialog: dialog.accept())
        return page

    yield make
    for context in contexts:
        context.close()


def shot(page: Any, name: str, full: bool = True) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=full)


def sign_in(page: Any, token: str) -> None:
    page.goto("/ui/login")
    page.get_by_label("Admin token").fill(token)
    page.get_by_role("button", name="Sign in").click()


# --- the simulated installer --------------------------------------------------------------


def boot(server: Server, mac: str) -> str:
    """Network-boot `mac` as iPXE would; the install callback URL from its kernel line."""
    with urllib.request.urlopen(f"{server.url}/ipxe?mac={mac}", timeout=30) as r:
        script = r.read().decode()
    match = re.search(r"bootfleet\.install=(\S+)", script)
    assert match, f"no installer in the iPXE script for {mac}:\n{script}"
    return match.group(1)


def report(install_url: str, what: str, body: dict[str, Any]) -> None:
    request = urllib.request.Request(
        f"{install_url}/{what}",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as r:
        assert r.status == 200, r.read()


FAILURE_LOG = "Installing base system\nE: unable to find a disk: /dev/sda does not exist\n"


def test_admin_journey(server: Server, new_page: Any) -> None:
    from playwright.sync_api import expect

    page = new_page()

    # Unsigned visitors land on the sign-in page; a wrong token is refused.
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/ui/login\?next="))
    page.get_by_label("Admin token").fill("not-a-token")
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#login-error")).to_have_text("Unknown or revoked admin token.")
    page.get_by_label("Admin token").fill(server.token)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(f"{server.url}/ui/")
    expect(page.get_by_role("heading", name="Dashboard", exact=True)).to_be_visible()

    # Keyboard: the first Tab reaches the skip link.
    page.keyboard.press("Tab")
    expect(page.locator("a.skip")).to_be_focused()

    # A profile, through the UI.
    page.get_by_role("link", name="Profiles").click()
    page.get_by_role("link", name="New profile").click()
    page.get_by_label("Name", exact=True).fill("debian12")
    page.get_by_label("Kernel (path").fill("debian/linux")
    page.get_by_label("Initrds").fill("debian/initrd.gz")
    page.get_by_label("Kernel command line").fill("auto=true hostname={{ hostname }}")
    page.get_by_label("Variables (one").fill("locale=en_US.UTF-8\n")
    page.get_by_role("button", name="Create profile").click()
    expect(page.locator(".flash.ok")).to_have_text("Profile debian12 created.")

    # A client without a profile: it cannot be reinstalled yet.
    mac = "52:54:00:aa:00:01"
    page.get_by_role("link", name="Clients").click()
    page.get_by_role("link", name="Add client").click()
    page.get_by_label("MAC address").fill(mac.upper().replace(":", "-"))
    page.get_by_label("Host name").fill("lab-pc01")
    page.get_by_role("button", name="Add client").click()
    expect(page.locator(".flash.ok")).to_have_text(f"Client {mac} added.")
    expect(page.locator("#reinstall")).to_be_disabled()

    # Assign the profile from the list with a bulk action.
    page.get_by_role("link", name="Clients").click()
    page.get_by_label("Select lab-pc01").check()
    page.get_by_label("Action").select_option("assign")
    page.get_by_label("Profile (for").select_option("debian12")
    page.get_by_role("button", name="Apply").click()
    expect(page.locator(".flash.ok")).to_have_text("Assigned profile debian12 to 1 client(s).")

    # Reinstall from the client page, then watch the installer's reports arrive live.
    page.get_by_role("link", name=mac).click()
    page.get_by_role("button", name="Reinstall…").click()
    expect(page.locator("#client-state")).to_have_text("pending")
    page.evaluate("window.__sameDocument = true")
    install_url = boot(server, mac)
    expect(page.locator("#client-state")).to_have_text("booting")
    report(install_url, "progress", {"percent": 40, "message": "partitioning"})
    expect(page.locator("#client-state")).to_have_text("installing")
    expect(page.locator("[data-region=status] progress")).to_have_attribute("value", "40")
    expect(page.locator("#client-message")).to_have_text("partitioning")
    shot(page, "client-installing")
    report(install_url, "failed", {"log": FAILURE_LOG, "message": "no disk"})
    expect(page.locator("#client-state")).to_have_text("failed")
    assert page.evaluate("window.__sameDocument === true"), "the page reloaded"
    page.locator("#failure-log-link").click()
    expect(page.locator("#failure-log")).to_contain_text("/dev/sda does not exist")
    shot(page, "failure-log")

    # CSV import: a bad row is named and nothing is imported; then a good file.
    page.goto("/ui/clients/import")
    bad = "mac,hostname,profile,groups\n52:54:00:bb:00:01,lab-pc02,debian12,lab\nnonsense,x,,\n"
    page.get_by_label("or paste the rows").fill(bad)
    page.get_by_role("button", name="Import").click()
    expect(page.locator("#import-error")).to_contain_text("row 3")
    expect(page.locator("#import-error li.bad")).to_contain_text("nonsense")
    shot(page, "import-error")
    good = "".join(f"52:54:00:bb:00:0{i},lab-pc0{i + 1},debian12,lab\n" for i in (1, 2, 3))
    page.get_by_label("or paste the rows").fill(good)
    page.get_by_role("button", name="Import").click()
    expect(page.locator(".flash.ok")).to_have_text("Imported 3 client(s).")

    # Bulk reinstall of the group.
    page.get_by_label("Group").select_option("lab")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("#summary")).to_contain_text("3 clients match")
    page.get_by_label("Select all on this page").check()
    page.get_by_label("Action").select_option("reinstall")
    page.get_by_role("button", name="Apply").click()
    expect(page.locator(".flash.ok")).to_have_text("Reinstall requested for 3 client(s).")
    expect(page.locator("table.clients .badge.state-pending")).to_have_count(3)
    shot(page, "clients")

    # The dashboard follows installs live: counts, progress bars, failures.
    with urllib.request.urlopen(f"{server.url}/ipxe?mac=52:54:00:ee:00:01", timeout=30) as r:
        assert b"booting from disk" in r.read()  # an unregistered machine boots its disk
    second = boot(server, "52:54:00:bb:00:01")
    report(second, "progress", {"percent": 30, "message": "fetching packages"})
    page.get_by_role("link", name="Dashboard").click()
    page.evaluate("window.__sameDocument = true")
    row = page.locator("[data-region=active] tr[data-mac='52:54:00:bb:00:01']")
    expect(row.locator("progress")).to_have_attribute("value", "30")
    report(second, "progress", {"percent": 65, "message": "installing packages"})
    expect(row.locator("progress")).to_have_attribute("value", "65")
    expect(row).to_contain_text("installing packages")
    # A keyboard user's focus stays on the same link when the region refreshes.
    row.get_by_role("link", name="lab-pc02").focus()
    report(second, "progress", {"percent": 80, "message": "installing packages"})
    expect(row.locator("progress")).to_have_attribute("value", "80")
    expect(row.get_by_role("link", name="lab-pc02")).to_be_focused()
    report(boot(server, "52:54:00:bb:00:02"), "progress", {"percent": 10, "message": "network"})
    expect(page.locator("[data-count=installing]")).to_have_text("2")
    expect(page.locator("[data-region=failures]")).to_contain_text("lab-pc01")
    assert page.evaluate("window.__sameDocument === true"), "the page reloaded"
    expect(page.get_by_role("link", name="Register 52:54:00:ee:00:01")).to_be_visible()
    # lab-pc03's news moved it above lab-pc02; focus stayed on lab-pc02's link all the same
    expect(page.locator("[data-region=active] tbody tr").first).to_have_attribute(
        "data-mac", "52:54:00:bb:00:02"
    )
    expect(row.get_by_role("link", name="lab-pc02")).to_be_focused()
    page.evaluate("document.activeElement.blur()")
    shot(page, "dashboard")
    if os.environ.get("UPDATE_SCREENSHOTS") == "1":  # the README's picture, refreshed on demand
        page.screenshot(path=str(DASHBOARD_PNG), full_page=True)
    page.locator("[data-region=failures]").get_by_role("link", name="View log").click()
    expect(page.locator("#failure-log")).to_contain_text("/dev/sda does not exist")

    # A state-changing fetch without the CSRF token is refused and changes nothing.
    page.goto(f"/ui/clients/{mac}")
    status = page.evaluate(
        "mac => fetch(`/ui/clients/${mac}/reinstall`, {method: 'POST',"
        " headers: {'Content-Type': 'application/x-www-form-urlencoded'},"
        " body: 'confirmed=1'}).then(r => r.status)",
        mac,
    )
    assert status == 403
    page.reload()
    expect(page.locator("#client-state")).to_have_text("failed")
    # ... and with the token in its header it goes through.
    status = page.evaluate(
        "mac => fetch(`/ui/clients/${mac}/reinstall`, {method: 'POST',"
        " headers: {'Content-Type': 'application/x-www-form-urlencoded', 'X-CSRF-Token':"
        " document.querySelector('input[name=csrf_token]').value},"
        " body: 'confirmed=1'}).then(r => r.status)",
        mac,
    )
    assert status == 200  # 303 to the client page, followed
    page.reload()
    expect(page.locator("#client-state")).to_have_text("pending")

    # Signing out ends the session.
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/ui/login"))
    page.goto("/ui/clients")
    expect(page).to_have_url(re.compile(r"/ui/login\?next="))


def test_phone_layout_and_revoked_token(server: Server, new_page: Any) -> None:
    from playwright.sync_api import expect

    secret = server.cli("token", "create", "--name", "phone")
    page = new_page(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    sign_in(page, secret)
    expect(page.get_by_role("heading", name="Dashboard", exact=True)).to_be_visible()
    for path, name in (("/ui/", "phone-dashboard"), ("/ui/clients", "phone-clients")):
        page.goto(path)
        overflow = page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, f"{path} is wider than a phone screen by {overflow}px"
        shot(page, name)

    # Revoking the token ends the session on the next request.
    tokens = json.loads(server.cli("token", "list", "--json"))
    token_id = next(t["id"] for t in tokens if t["name"] == "phone")
    server.cli("token", "revoke", str(token_id))
    page.goto("/ui/clients")
    expect(page).to_have_url(re.compile(r"/ui/login\?next="))


def api(server: Server, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    request = urllib.request.Request(
        f"{server.url}{path}",
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": f"Bearer {server.token}", "Content-Type": "application/json"},
        method=method,
    )
    with urllib.request.urlopen(request, timeout=30) as r:
        return json.loads(r.read() or b"null")


def test_pages_pass_axe_accessibility_checks(server: Server, new_page: Any) -> None:
    """axe-core (WCAG 2 A and AA rules) finds nothing on the main pages, failure states
    included."""
    from axe_playwright_python.sync_playwright import Axe

    mac = "52:54:00:cc:00:01"
    try:
        api(server, "POST", "/api/v1/profiles", {"name": "a11y", "kernel": "debian/linux"})
    except urllib.error.HTTPError as exc:
        assert exc.code == 409  # made by an earlier run of this test against the same server
    api(server, "POST", "/api/v1/clients", {"mac": mac, "hostname": "a11y", "profile": "a11y"})
    api(server, "PATCH", f"/api/v1/clients/{mac}", {"variables": {"disk": "/dev/vda"}})
    api(server, "POST", f"/api/v1/clients/{mac}/reinstall")
    report(boot(server, mac), "failed", {"log": FAILURE_LOG, "message": "no disk"})

    axe = Axe()
    options = {"runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21aa"]}}
    page = new_page()
    problems: dict[str, str] = {}

    def check(name: str) -> None:
        shot(page, "page-" + re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-"))
        results = axe.run(page, options=options)
        if results.violations_count:
            problems[name] = results.generate_report()

    page.goto("/ui/login")
    page.get_by_label("Admin token").fill("wrong")
    page.get_by_role("button", name="Sign in").click()
    check("login with error")
    sign_in(page, server.token)
    for path in (
        "/ui/",
        "/ui/clients",
        f"/ui/clients/{mac}",
        f"/ui/clients/{mac}/edit",
        f"/ui/clients/{mac}/installs/1",
        "/ui/clients/new",
        "/ui/profiles",
        "/ui/profiles/new",
        "/ui/profiles/a11y",
        "/ui/images",
        "/ui/clients/52:54:00:99:99:99",  # the error page
    ):
        page.goto(path)
        check(path)
    page.goto("/ui/clients/import")
    page.get_by_label("or paste the rows").fill("nonsense\n")
    page.get_by_role("button", name="Import").click()
    check("import with error")
    page = new_page(color_scheme="dark")  # the dark palette must keep its contrast too
    sign_in(page, server.token)
    for path in ("/ui/", f"/ui/clients/{mac}", "/ui/clients"):
        page.goto(path)
        check(f"{path} (dark)")
    shot(page, "dark-clients")
    assert not problems, "\n\n".join(f"== {k}\n{v}" for k, v in problems.items())


def test_works_without_javascript(server: Server, new_page: Any) -> None:
    """Progressive enhancement: with scripts off, the server asks for confirmation itself."""
    from playwright.sync_api import expect

    mac = "52:54:00:dd:00:01"
    try:
        api(server, "POST", "/api/v1/profiles", {"name": "nojs", "kernel": "debian/linux"})
    except urllib.error.HTTPError as exc:
        assert exc.code == 409
    api(server, "POST", "/api/v1/clients", {"mac": mac, "hostname": "nojs", "profile": "nojs"})
    page = new_page(java_script_enabled=False)
    sign_in(page, server.token)
    page.goto(f"/ui/clients/{mac}")
    page.get_by_role("button", name="Reinstall…").click()
    expect(page.get_by_role("heading", name="Please confirm")).to_be_visible()
    shot(page, "no-js-confirm")
    page.get_by_role("button", name="Yes, go ahead").click()
    expect(page.locator("#client-state")).to_have_text("pending")
    expect(page.locator(".flash.ok")).to_contain_text("Reinstall requested")


def test_live_updates_say_why_they_pause(server: Server, new_page: Any) -> None:
    from playwright.sync_api import expect

    mac = "52:54:00:dd:00:02"
    api(server, "POST", "/api/v1/clients", {"mac": mac, "hostname": "gone-soon"})
    page = new_page()
    sign_in(page, server.token)
    page.goto(f"/ui/clients/{mac}")
    api(server, "DELETE", f"/api/v1/clients/{mac}")
    expect(page.locator(".live-note")).to_contain_text(f"no client with MAC {mac}")
