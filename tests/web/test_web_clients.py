"""The client list, bulk actions, adding and CSV import (server/web/clients.py)."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import event, insert

from server.fleet import Fleet
from server.models import Client, utcnow
from server.registry import clients
from server.registry.database import session_scope
from server.web.clients import PAGE_SIZE

MAC = "52:54:00:12:34:56"


def macs_on(html: str) -> list[str]:
    return re.findall(r'name="mac" value="([^"]+)"', html)


def state_of(fleet: Fleet, mac: str) -> str:
    with session_scope(fleet.engine) as s:
        return clients.get(s, mac).state


def add_many(fleet: Fleet, count: int, start: int = 0) -> list[str]:
    """`count` idle clients, inserted in one statement (the UI is not what is under test)."""
    now = utcnow()
    macs = [
        f"02:00:{(i >> 24) & 255:02x}:{(i >> 16) & 255:02x}:{(i >> 8) & 255:02x}:{i & 255:02x}"
        for i in range(start, start + count)
    ]
    rows = [
        {
            "mac": m,
            "hostname": f"host{i}",
            "variables": {},
            "state": "idle",
            "version": 0,
            "created_at": now,
            "updated_at": now,
        }
        for i, m in enumerate(macs, start=start)
    ]
    with fleet.engine.begin() as conn:
        conn.execute(insert(Client), rows)
    return macs


# --- listing ---------------------------------------------------------------------------------


def test_list_shows_clients_with_their_state(ui: Any, registered: str) -> None:
    r = ui.get("/ui/clients")
    assert r.status_code == 200
    assert macs_on(r.text) == [registered]
    assert "pc01" in r.text and "debian12" in r.text and "lab" in r.text
    assert "1 client matches" in r.text


@pytest.mark.parametrize(
    "query, found",
    [
        ("q=pc01", True),
        ("q=PC01", True),
        ("q=52-54-00-12", True),  # a partial MAC in any spelling (the registry reads it)
        ("q=52%3A54%3A00%3A12", True),
        ("q=5254.0012", True),
        ("q=52540012", True),
        ("q=52-54-00-AB", False),
        ("q=nomatch", False),
        ("state=idle", True),
        ("state=failed", False),
        ("profile=debian12", True),
        ("group=lab", True),
        ("group=lab&state=pending", False),
    ],
)
def test_filters(ui: Any, registered: str, query: str, found: bool) -> None:
    r = ui.get(f"/ui/clients?{query}")
    assert r.status_code == 200, r.text
    assert macs_on(r.text) == ([registered] if found else [])


@pytest.mark.parametrize(
    "query, message",
    [
        ("profile=nope", "no profile named &#39;nope&#39;"),
        ("group=nope", "no group named &#39;nope&#39;"),
        ("state=sleeping", "unknown state &#39;sleeping&#39;"),
        ("q=" + "x" * 65, "search at most 64 characters"),
    ],
)
def test_bad_filters_are_readable_messages(
    ui: Any, registered: str, query: str, message: str
) -> None:
    r = ui.get(f"/ui/clients?{query}")
    assert r.status_code == 400
    assert message in r.text


def test_a_host_name_shaped_like_a_mac_fragment_is_found(
    ui: Any, client: Any, auth: dict[str, str]
) -> None:
    """`ab-12` is a host name here: the search is not rewritten to `ab:12` for host names."""
    body = {"mac": "52:54:00:00:00:77", "hostname": "ab-12"}
    assert client.post("/api/v1/clients", json=body, headers=auth).status_code == 201
    assert macs_on(ui.get("/ui/clients?q=ab-12").text) == ["52:54:00:00:00:77"]


def test_pages_follow_the_keyset_cursor(ui: Any, fleet: Fleet) -> None:
    macs = add_many(fleet, PAGE_SIZE * 2 + 7)
    seen: list[str] = []
    url: str | None = "/ui/clients"
    while url:
        html = ui.get(url).text
        seen += macs_on(html)
        match = re.search(r'<a href="([^"]+)" rel="next">', html)
        url = match.group(1).replace("&amp;", "&") if match else None
    assert seen == macs
    assert "« First page" in html


@pytest.fixture
def statements(fleet: Fleet) -> Iterator[list[tuple[str, Any]]]:
    seen: list[tuple[str, Any]] = []

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_args: Any) -> None:
        seen.append((statement, parameters))

    event.listen(fleet.engine, "before_cursor_execute", record)
    yield seen
    event.remove(fleet.engine, "before_cursor_execute", record)


@pytest.mark.slow
def test_a_deep_page_of_100000_clients_reads_one_page(
    ui: Any, fleet: Fleet, statements: list[tuple[str, Any]]
) -> None:
    """Keyset pagination: no OFFSET skipping, and every row query is bounded by LIMIT.
    (SQLAlchemy's SQLite dialect always writes `LIMIT ? OFFSET ?`; the offset must be 0.)"""
    macs = add_many(fleet, 100_000)
    with session_scope(fleet.engine) as s:
        cursor = clients.get(s, macs[-PAGE_SIZE - 1]).id
    statements.clear()
    r = ui.get(f"/ui/clients?after={cursor}&q=host")
    assert r.status_code == 200
    assert macs_on(r.text) == macs[-PAGE_SIZE:]
    assert "100000 clients match" in r.text
    assert 'rel="next"' not in r.text
    selects = [(s, p) for s, p in statements if s.lstrip().upper().startswith("SELECT")]
    rows = [s for s, _ in selects if "\nFROM client \n" in s and "count(" not in s.lower()]
    assert rows, selects
    assert all("LIMIT" in s.upper() for s in rows), rows
    for statement, params in selects:
        if "OFFSET" in statement.upper():
            assert statement.rstrip().endswith("OFFSET ?") and params[-1] == 0, statement


# --- bulk actions ----------------------------------------------------------------------------


@pytest.fixture
def three(ui: Any, registered: str, client: Any, auth: dict[str, str]) -> list[str]:
    """Two clients with a profile (registered and pc02) and one without (pc03)."""
    for mac, host, profile in (
        ("52:54:00:00:00:02", "pc02", "debian12"),
        ("52:54:00:00:00:03", "pc03", None),
    ):
        r = client.post(
            "/api/v1/clients", json={"mac": mac, "hostname": host, "profile": profile}, headers=auth
        )
        assert r.status_code == 201, r.text
    return [registered, "52:54:00:00:00:02", "52:54:00:00:00:03"]


def test_bulk_needs_confirmation_without_javascript(
    ui: Any, three: list[str], fleet: Fleet
) -> None:
    r = ui.post("/ui/clients/bulk", {"action": "reinstall", "mac": three})
    assert r.status_code == 200
    assert "Reinstall for 3 selected client(s)?" in r.text
    assert r.text.count('name="mac"') == 3 and 'name="confirmed" value="1"' in r.text
    assert all(state_of(fleet, m) == "idle" for m in three)


def test_bulk_reinstall_reports_the_clients_it_skipped(
    ui: Any, three: list[str], fleet: Fleet
) -> None:
    r = ui.confirm(
        "/ui/clients/bulk", {"action": "reinstall", "mac": three, "back": "/ui/clients?q=pc"}
    )
    assert r.status_code == 303
    assert r.headers["Location"] == "/ui/clients?q=pc"
    assert [state_of(fleet, m) for m in three] == ["pending", "pending", "idle"]
    html = ui.get("/ui/clients").text
    assert "Reinstall requested for 2 client(s)." in html
    assert "Skipped 52:54:00:00:00:03: profile: client 52:54:00:00:00:03 has no profile" in html


def test_bulk_cancel(ui: Any, three: list[str], fleet: Fleet) -> None:
    ui.confirm("/ui/clients/bulk", {"action": "reinstall", "mac": three[:2]})
    ui.confirm("/ui/clients/bulk", {"action": "cancel", "mac": three})
    assert [state_of(fleet, m) for m in three] == ["idle", "idle", "idle"]
    html = ui.get("/ui/clients").text
    assert "Cancelled 2 client(s)." in html
    assert "cannot cancel a client that is idle" in html


def test_bulk_assign_profile(ui: Any, three: list[str], fleet: Fleet) -> None:
    ui.confirm("/ui/clients/bulk", {"action": "assign", "profile": "debian12", "mac": three[2:]})
    assert "Assigned profile debian12 to 1 client(s)." in ui.get("/ui/clients").text
    assert macs_on(ui.get("/ui/clients?profile=debian12").text) == three


@pytest.mark.parametrize(
    "form, status, message",
    [
        ({"action": "explode", "mac": MAC}, 400, "action: choose one of"),
        ({"action": "assign", "mac": MAC}, 400, "profile: choose the profile to assign"),
        ({"action": "assign", "profile": "nope", "mac": MAC}, 303, None),
        ({"action": "reinstall"}, 303, None),
    ],
)
def test_bulk_bad_input(
    ui: Any, registered: str, fleet: Fleet, form: dict[str, str], status: int, message: str | None
) -> None:
    r = ui.confirm("/ui/clients/bulk", form)
    assert r.status_code == status
    if message:
        assert message in r.text
    assert state_of(fleet, registered) == "idle"


def test_bulk_unknown_profile_is_reported_per_client(ui: Any, registered: str) -> None:
    ui.confirm("/ui/clients/bulk", {"action": "assign", "profile": "nope", "mac": registered})
    assert f"Skipped {registered}: no profile named" in ui.get("/ui/clients").text


# --- adding ----------------------------------------------------------------------------------


def test_add_a_client(ui: Any, registered: str, fleet: Fleet) -> None:
    r = ui.post(
        "/ui/clients/new",
        {
            "mac": "52-54-00-AB-CD-EF",
            "hostname": "PC09",
            "profile": "debian12",
            "groups": "lab, floor2",
            "variables": "disk=/dev/vda\nswap=2048\n",
        },
    )
    assert r.status_code == 303, r.text
    assert r.headers["Location"] == "/ui/clients/52:54:00:ab:cd:ef"
    with session_scope(fleet.engine) as s:
        c = clients.public(s, clients.get(s, "52:54:00:ab:cd:ef"))
    assert (c.hostname, c.profile, c.groups) == ("pc09", "debian12", ["floor2", "lab"])
    assert c.variables == {"disk": "/dev/vda", "swap": 2048}


@pytest.mark.parametrize(
    "form, status, message, field",
    [
        ({"mac": "nonsense"}, 400, "mac: not a MAC address", "mac"),
        ({"mac": "ff:ff:ff:ff:ff:ff"}, 400, "broadcast", "mac"),
        (
            {"mac": "52:54:00:00:00:09", "hostname": "bad_name!"},
            400,
            "hostname: not a valid",
            "hostname",
        ),
        ({"mac": "52:54:00:00:00:09", "profile": "nope"}, 404, "no profile named", None),
        ({"mac": MAC}, 409, "exists already", None),
        (
            {"mac": "52:54:00:00:00:09", "variables": "no equals sign"},
            400,
            "expected NAME=VALUE",
            "variables",
        ),
        (
            {"mac": "52:54:00:00:00:09", "variables": "bad-name=1"},
            400,
            "bad variable name",
            "variables",
        ),
        ({"mac": "52:54:00:00:00:09", "groups": "ok bad/group"}, 400, "groups", "groups"),
    ],
)
def test_add_a_client_with_bad_input(
    ui: Any, registered: str, form: dict[str, str], status: int, message: str, field: str | None
) -> None:
    r = ui.post("/ui/clients/new", form)
    assert r.status_code == status, r.text
    assert message in r.text
    assert f'value="{form["mac"]}"' in r.text  # the form comes back filled in
    if field:
        assert re.search(rf'id="{field}"[^>]*aria-invalid="true"', r.text), r.text


# --- CSV import ------------------------------------------------------------------------------


GOOD_CSV = (
    "mac,hostname,profile,groups\n52:54:00:00:01:01,a1,debian12,lab;x\n52:54:00:00:01:02,a2,,\n"
)


def test_import_pasted_rows(ui: Any, registered: str) -> None:
    r = ui.post("/ui/clients/import", {"text": GOOD_CSV})
    assert r.status_code == 303, r.text
    html = ui.get("/ui/clients").text
    assert "Imported 2 client(s)." in html
    assert macs_on(html) == [registered, "52:54:00:00:01:01", "52:54:00:00:01:02"]


def test_import_an_uploaded_file(ui: Any, registered: str) -> None:
    data = {"file": (io.BytesIO(b"\xef\xbb\xbf" + GOOD_CSV.encode()), "fleet.csv"), "text": ""}
    r = ui.post("/ui/clients/import", data, content_type="multipart/form-data")
    assert r.status_code == 303, r.text
    assert len(macs_on(ui.get("/ui/clients").text)) == 3


@pytest.mark.parametrize(
    "csv, row, message",
    [
        (GOOD_CSV + "garbage,,,\n", 4, "row 4: mac"),
        (GOOD_CSV + "52:54:00:00:01:01,dup,,\n", 4, "appears twice"),
        ("52:54:00:00:01:05,a,nope,\n", 1, "no profile named"),
        (f"{MAC},again,,\n", 1, "exists already"),
        ("a,b,c,d,e\n", 1, "at most 4 columns"),
    ],
)
def test_import_names_the_bad_row_and_imports_nothing(
    ui: Any, registered: str, csv: str, row: int, message: str
) -> None:
    r = ui.post("/ui/clients/import", {"text": csv})
    assert r.status_code == 400, r.text
    assert f"row {row}" in r.text and message in r.text
    assert "Nothing was imported." in r.text
    assert "Value error" not in r.text
    assert re.search(rf'<li value="{row}" class="bad"', r.text), r.text
    assert macs_on(ui.get("/ui/clients").text) == [registered]


def test_import_refuses_non_utf8(ui: Any) -> None:
    data = {"file": (io.BytesIO(b"\xff\xfe\x00m"), "x.csv")}
    r = ui.post("/ui/clients/import", data, content_type="multipart/form-data")
    assert r.status_code == 400
    assert "not UTF-8" in r.text


def test_bulk_on_every_client_matching_the_filter(
    ui: Any, registered: str, fleet: Fleet, client: Any, auth: dict[str, str]
) -> None:
    """'All N matching' walks the cursor past the page the admin sees."""
    macs = add_many(fleet, PAGE_SIZE + 5)
    page = ui.get("/ui/clients?q=host").text
    assert f"All {PAGE_SIZE + 5} matching clients" in page
    assert '<input type="hidden" name="f_q" value="host">' in page
    form = {"action": "assign", "profile": "debian12", "scope": "all", "f_q": "host"}
    r = ui.post("/ui/clients/bulk", form)
    assert f"Assign profile for all {PAGE_SIZE + 5} matching client(s)?" in r.text
    assert ui.confirm("/ui/clients/bulk", form).status_code == 303
    assert f"Assigned profile debian12 to {PAGE_SIZE + 5} client(s)." in ui.get("/ui/").text
    assert set(macs_on(ui.get("/ui/clients?profile=debian12&q=host").text)) <= set(macs)
    with session_scope(fleet.engine) as s:
        assert clients.list_page(s, profile="debian12").total == PAGE_SIZE + 6


def test_bulk_on_all_refuses_more_than_the_limit(
    ui: Any, fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    from server.web import clients as web_clients

    add_many(fleet, 12)
    monkeypatch.setattr(web_clients, "MAX_BULK", 10)
    r = ui.confirm("/ui/clients/bulk", {"action": "reinstall", "scope": "all"})
    assert r.status_code == 400
    assert "more than 10 clients match; narrow the filter" in r.text
