"""The dashboard and its live endpoint (server/web/dashboard.py), and the registry queries
they stand on (clients.count_by_state, installs.in_progress, installs.recent_failures)."""

from __future__ import annotations

from typing import Any

import pytest

from server.errors import Unavailable
from server.fleet import Fleet
from server.registry import clients, installs
from server.registry.database import session_scope

OTHER = "52:54:00:00:00:02"


@pytest.fixture
def two(ui: Any, registered: str, client: Any, auth: dict[str, str]) -> tuple[str, str]:
    r = client.post(
        "/api/v1/clients",
        json={"mac": OTHER, "hostname": "pc02", "profile": "debian12"},
        headers=auth,
    )
    assert r.status_code == 201, r.text
    return registered, OTHER


def test_empty_dashboard(ui: Any) -> None:
    r = ui.get("/ui/")
    assert r.status_code == 200
    assert "No install is pending or running." in r.text
    assert "No failed installs." in r.text
    assert 'data-live="/ui/live/dashboard.json"' in r.text


def test_counts_progress_and_failures(
    ui: Any, two: tuple[str, str], installer: Any, fleet: Fleet
) -> None:
    first, second = two
    for mac in two:
        assert ui.confirm(f"/ui/clients/{mac}/reinstall").status_code == 303
    one = installer(first)
    one.report("progress", percent=42, message="copying files")
    installer(second).report("failed", log="kernel panic", message="panic")

    html = ui.get("/ui/").text
    assert '<span class="n" data-count="installing">1</span>' in html
    assert '<span class="n" data-count="failed">1</span>' in html
    assert '<span class="n" data-count="total">2</span>' in html
    assert f'<tr data-mac="{first}">' in html
    assert '<progress max="100" value="42"' in html
    assert "copying files" in html
    assert f"/ui/clients/{second}/installs/" in html and "View log" in html

    with session_scope(fleet.engine) as s:
        assert clients.count_by_state(s) == {"installing": 1, "failed": 1}
        assert [c.mac for _, c in installs.in_progress(s)] == [first]
        assert [(i.failure_log, c.mac) for i, c in installs.recent_failures(s)] == [
            ("kernel panic", second)
        ]


def test_live_endpoint_follows_progress(ui: Any, registered: str, installer: Any) -> None:
    ui.confirm(f"/ui/clients/{registered}/reinstall")
    before = ui.get("/ui/live/dashboard.json").json
    assert before["counts"] == {"pending": 1}
    assert 'value="0"' in before["regions"]["active"]
    installer(registered).report("progress", percent=70, message="almost")
    after = ui.get("/ui/live/dashboard.json").json
    assert after["counts"] == {"installing": 1}
    assert 'value="70"' in after["regions"]["active"]
    assert set(after["regions"]) == {"counts", "active", "failures"}


def test_a_cancelled_install_leaves_the_progress_list(ui: Any, registered: str) -> None:
    ui.confirm(f"/ui/clients/{registered}/reinstall")
    ui.confirm(f"/ui/clients/{registered}/cancel")
    assert "No install is pending or running." in ui.get("/ui/").text


def test_registry_unavailable_is_a_readable_503(ui: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    def busy(_session: object) -> dict[str, int]:
        raise Unavailable("the registry database is busy or unreachable; retry shortly")

    monkeypatch.setattr(clients, "count_by_state", busy)
    r = ui.get("/ui/")
    assert r.status_code == 503
    assert r.headers["Retry-After"] == "5"
    assert r.mimetype == "text/html"
    assert "busy or unreachable" in r.text
    live = ui.get("/ui/live/dashboard.json")
    assert live.status_code == 503 and live.json["error"]["message"]


def test_more_active_installs_than_shown(
    ui: Any, two: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from server.web import dashboard

    for mac in two:
        ui.confirm(f"/ui/clients/{mac}/reinstall")
    monkeypatch.setattr(dashboard, "ACTIVE_LIMIT", 1)
    html = ui.get("/ui/").text
    assert html.count("<tr data-mac=") == 1
    assert "The 1 most recently active of 2" in html


def test_unregistered_machines_can_be_registered(ui: Any, registered: str, client: Any) -> None:
    for mac in ("52:54:00:de:ad:01", "52:54:00:de:ad:02", registered):
        assert client.get(f"/ipxe?mac={mac}&arch=x86_64").status_code == 200
    html = ui.get("/ui/").text
    assert "Seen on the network, not registered" in html
    assert 'href="/ui/clients/new?mac=52:54:00:de:ad:01"' in html
    assert 'href="/ui/clients/new?mac=52:54:00:de:ad:02"' in html
    assert f"new?mac={registered}" not in html  # registered machines are not "discovered"
    form = ui.get("/ui/clients/new?mac=52:54:00:de:ad:01").text
    assert 'value="52:54:00:de:ad:01"' in form
    ui.post("/ui/clients/new", {"mac": "52:54:00:de:ad:01"})
    assert "new?mac=52:54:00:de:ad:01" not in ui.get("/ui/").text
