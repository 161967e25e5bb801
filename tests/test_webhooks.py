"""The courier against a real HTTP receiver on loopback: signed POSTs, retries while the
receiver is down, and an outbox that survives a restart of a real `bootfleet serve`."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from server import webhooks
from server.fleet import Fleet
from server.models import HookCreate
from server.registry import hooks
from server.registry.database import session_scope
from tests.helpers import boot_installer, cli_profile
from tests.serve import Served, cli, free_port


class Receiver:
    """A webhook receiver: records each POST; answers `statuses` in turn, then 204."""

    def __init__(self, port: int = 0, statuses: tuple[int, ...] = ()) -> None:
        self.posts: list[tuple[dict[str, str], bytes]] = []
        self.statuses = list(statuses)
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.posts.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(outer.statuses.pop(0) if outer.statuses else 204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def verify(secret: str, headers: dict[str, str], body: bytes) -> bool:
    """What a receiver does with the documented headers."""
    signed = headers["x-bootfleet-timestamp"].encode() + b"." + body
    want = "sha256=" + hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return hmac.compare_digest(want, headers["x-bootfleet-signature"])


def add_hook(fleet: Fleet, url: str, events: list[str]) -> str:
    with session_scope(fleet.engine, write=True) as s:
        return hooks.add(s, HookCreate(url=url, events=events)).secret


def test_signed_post_with_an_absolute_log_link(
    fleet: Fleet, client: FlaskClient, auth: dict, registered: str, receiver: Receiver
) -> None:
    secret = add_hook(fleet, receiver.url, ["failed"])
    client.post(f"/api/v1/clients/{registered}/reinstall", headers=auth)
    cb = boot_installer(client, registered)
    client.post(cb + "/failed", json={"log": "no disk"})
    courier = webhooks.Courier(fleet.engine, fleet.server_url)
    assert courier.round() == 1
    ((headers, body),) = receiver.posts
    assert verify(secret, headers, body)
    assert not verify("another secret", headers, body)
    assert headers["x-bootfleet-event"] == "failed"
    doc = json.loads(body)
    assert doc["failure_log"].startswith(fleet.server_url + "/api/v1/clients/")
    assert courier.round() == 0  # delivered: never again
    assert courier.sent == 1


def test_a_receiver_that_is_down_for_a_while_gets_everything_in_order(
    fleet: Fleet, client: FlaskClient, auth: dict, registered: str
) -> None:
    port = free_port()  # nothing listens here yet: connections are refused
    secret = add_hook(fleet, f"http://127.0.0.1:{port}/hook", ["pending", "cancelled"])
    client.post(f"/api/v1/clients/{registered}/reinstall", headers=auth)
    client.post(f"/api/v1/clients/{registered}/cancel", headers=auth)
    courier = webhooks.Courier(fleet.engine, fleet.server_url, delay=lambda n: 0.0)
    assert courier.round() == 2 and courier.failed == 2
    with session_scope(fleet.engine) as s:
        (public,) = hooks.list_hooks(s)
        assert public.waiting == 2
    up = Receiver(port, statuses=(503,))  # back, but still busy for one request
    try:
        assert courier.round() == 2  # one 503, one delivered
        assert courier.round() == 1  # the retry
        events = [json.loads(b)["event"] for _, b in up.posts]
        assert events == ["pending", "cancelled", "pending"]
        assert all(verify(secret, h, b) for h, b in up.posts)
        ids = [h["x-bootfleet-delivery"] for h, _ in up.posts]
        assert ids[0] == ids[2]  # a retry repeats its delivery id
    finally:
        up.close()
    with session_scope(fleet.engine) as s:
        (public,) = hooks.list_hooks(s)
        assert (public.waiting, public.undeliverable) == (0, 0)


def test_gives_up_after_max_attempts(
    fleet: Fleet, client: FlaskClient, auth: dict, registered: str, receiver: Receiver
) -> None:
    receiver.statuses = [500, 500, 500]
    add_hook(fleet, receiver.url, ["pending"])
    client.post(f"/api/v1/clients/{registered}/reinstall", headers=auth)
    courier = webhooks.Courier(fleet.engine, fleet.server_url, max_attempts=2, delay=lambda n: 0.0)
    assert courier.round() == 1 and courier.round() == 1 and courier.round() == 0
    assert len(receiver.posts) == 2
    with session_scope(fleet.engine) as s:
        (public,) = hooks.list_hooks(s)
        assert (public.waiting, public.undeliverable) == (0, 1)


def test_a_redirect_is_not_followed(
    fleet: Fleet, client: FlaskClient, auth: dict, registered: str, receiver: Receiver
) -> None:
    receiver.statuses = [307]
    add_hook(fleet, receiver.url, ["pending"])
    client.post(f"/api/v1/clients/{registered}/reinstall", headers=auth)
    courier = webhooks.Courier(fleet.engine, fleet.server_url, delay=lambda n: 60.0)
    courier.round()
    assert len(receiver.posts) == 1 and courier.sent == 0


@pytest.mark.parametrize(("attempts", "low", "high"), [(1, 4, 6), (2, 8, 12), (30, 2880, 4320)])
def test_backoff_doubles_then_caps(attempts: int, low: float, high: float) -> None:
    for r in (0.0, 0.5, 0.999):
        assert low <= webhooks.backoff(attempts, lambda: r) <= high  # noqa: B023


def test_the_outbox_survives_a_restart_of_serve(tmp_path: Path) -> None:
    """Real processes: events recorded while the receiver is down, serve stopped, then a new
    serve delivers them once the receiver is back."""
    data = tmp_path / "data"
    port = free_port()
    out = cli("hook", "add", f"http://127.0.0.1:{port}/hook", "--events", "pending", data_dir=data)
    secret = out.split("secret: ", 1)[1].strip()
    cli_profile(data, tmp_path / "img")
    cli("client", "add", "52:54:00:aa:bb:01", "--profile", "p1", data_dir=data)
    with Served(tmp_path / "data", tmp_path / "img"):
        cli("reinstall", "52:54:00:aa:bb:01", data_dir=data)
        time.sleep(3)  # the courier tries (connection refused) and schedules a retry
    listing = cli("hook", "list", "--json", data_dir=data)
    assert json.loads(listing)[0]["waiting"] == 1
    up = Receiver(port)
    try:
        with Served(tmp_path / "data", tmp_path / "img"):
            deadline = time.monotonic() + 60  # the retry is due within ~6 s of the first try
            while not up.posts and time.monotonic() < deadline:
                time.sleep(0.2)
        ((headers, body),) = up.posts
        assert verify(secret, headers, body)
        assert json.loads(body)["client"]["mac"] == "52:54:00:aa:bb:01"
    finally:
        up.close()
