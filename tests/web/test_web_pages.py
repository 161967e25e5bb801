"""Shared page helpers: safe redirects, time formatting, error pages (server/web/pages.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from importlib import metadata
from typing import Any

import pytest

from server.web import dashboard
from server.web.pages import iso, local_path, when


@pytest.mark.parametrize(
    "target, expected",
    [
        ("/ui/clients?state=failed", "/ui/clients?state=failed"),
        ("/ui/", "/ui/"),
        (None, "/d"),
        ("", "/d"),
        ("/api/v1/clients", "/d"),
        ("//evil.example/ui/", "/d"),
        ("https://evil.example/ui/", "/d"),
        ("/ui/\\evil", "/d"),
        ("/ui/\nSet-Cookie: x", "/d"),
        ("ui/relative", "/d"),
    ],
)
def test_local_path(target: str | None, expected: str) -> None:
    assert local_path(target, "/d") == expected


def test_times_are_shown_in_utc() -> None:
    naive = datetime(2026, 1, 2, 3, 4, 5)
    assert when(naive) == "2026-01-02 03:04:05 UTC"
    assert iso(naive) == "2026-01-02T03:04:05Z"
    plus2 = datetime(2026, 1, 2, 5, 4, 5, tzinfo=timezone(timedelta(hours=2)))
    assert when(plus2) == "2026-01-02 03:04:05 UTC"
    assert when(None) == "—" and iso(None) == ""
    assert iso(datetime(2026, 1, 2, tzinfo=UTC)) == "2026-01-02T00:00:00Z"


def test_an_unexpected_error_is_a_page_not_a_traceback(
    ui: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken() -> dict[str, Any]:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(dashboard, "overview", broken)
    r = ui.get("/ui/")
    assert r.status_code == 500
    assert r.mimetype == "text/html"
    assert "secret internals" not in r.text and "server log" in r.text


def test_unknown_method_is_a_page(ui: Any) -> None:
    r = ui.client.put("/ui/clients/new")
    assert r.status_code == 405


def test_too_large_upload_is_a_readable_413(ui: Any) -> None:
    r = ui.post("/ui/clients/import", {"text": "x" * (2 * 1024 * 1024)})
    assert r.status_code == 413


def test_a_mistyped_address_is_an_html_404(ui: Any, client: Any) -> None:
    r = ui.get("/ui/clientz")
    assert r.status_code == 404
    assert r.mimetype == "text/html"
    assert "There is no page /ui/clientz." in r.text
    assert client.get("/api/v1/nope").mimetype == "application/json"  # the API is unchanged


def test_every_page_footer_names_the_release(ui: Any) -> None:
    r = ui.get("/ui/")
    assert r.status_code == 200, r.text
    assert f'<footer class="site">Bootfleet {metadata.version("bootfleet")}</footer>' in r.text
