"""Hooks in the web UI: add one (its secret shown once), see what it is owed, remove it."""

from __future__ import annotations

import re

from flask.testing import FlaskClient

from server.fleet import Fleet
from server.registry import hooks
from server.registry.database import session_scope
from tests.web.conftest import UI


def test_add_list_remove(ui: UI, fleet: Fleet, client: FlaskClient, auth: dict) -> None:
    assert "No hooks yet." in ui.get("/ui/hooks").text
    r = ui.post(
        "/ui/hooks/new",
        {"url": "https://chat.example.org/x", "events": ["installed", "failed"]},
        follow_redirects=True,
    )
    secret = re.search(r"shown only now: (\S+)</p>", r.text)
    assert secret, r.text[:500]
    with session_scope(fleet.engine) as s:
        (hook,) = hooks.list_hooks(s)
        assert hook.events == ["installed", "failed"]
        assert hooks.get(s, hook.id).secret == secret.group(1)
    assert secret.group(1) not in ui.get("/ui/hooks").text  # shown once
    assert "https://chat.example.org/x" in ui.get("/ui/hooks").text
    assert "Please confirm" in ui.post(f"/ui/hooks/{hook.id}/remove").text
    assert ui.confirm(f"/ui/hooks/{hook.id}/remove").status_code == 303
    assert "No hooks yet." in ui.get("/ui/hooks").text


def test_bad_hooks_are_a_clear_message(ui: UI) -> None:
    for data, message in [
        ({"url": "ftp://x/", "events": ["failed"]}, "http:// or https://"),
        ({"url": "https://x/"}, "at least one event"),
        ({"url": "https://x/", "events": ["bogus"]}, "unknown event bogus"),
    ]:
        r = ui.post("/ui/hooks/new", data, follow_redirects=True)
        assert message in r.text, (data, r.text[:300])
