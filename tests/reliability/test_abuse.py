"""Per-source limits on what unauthenticated machines call: boot scripts and installer
callbacks answer 429 + Retry-After past the limit, other sources and the admin API are not
affected, a classroom at the defaults never sees a 429, and tracked sources are bounded."""

from __future__ import annotations

from flask import Flask

from server.app import create_app
from server.config import Settings
from server.fleet import Fleet
from server.ratelimit import RateLimiter
from tests.reliability.figures import FIGURES
from tests.reliability.helpers import PROFILE, mac, token_in


def app_with(fleet: Fleet, settings: Settings) -> Flask:
    fleet.settings = settings
    return create_app(fleet=fleet, test_config={"TESTING": True})


def test_one_noisy_source_is_limited(
    fleet: Fleet, settings: Settings, auth: dict[str, str]
) -> None:
    app = app_with(fleet, settings.replace(rate_limit=0.001, rate_burst=5))
    http = app.test_client()
    noisy = {"REMOTE_ADDR": "198.18.0.66"}
    statuses = [http.get(f"/ipxe?mac={mac(1)}", environ_base=noisy).status_code for _ in range(5)]
    assert statuses == [200] * 5
    for path in ("/ipxe?mac=" + mac(1), "/boot.ipxe", "/api/v1/installs/" + "0" * 64 + "/answer"):
        r = http.get(path, environ_base=noisy)
        assert r.status_code == 429, path
        assert int(r.headers["Retry-After"]) >= 1
        assert r.json["error"]["code"] == "rate_limited"
    r = http.post("/api/v1/installs/" + "0" * 64 + "/done", json={}, environ_base=noisy)
    assert r.status_code == 429
    # another machine, the admin API and static images are not held back
    assert (
        http.get(f"/ipxe?mac={mac(2)}", environ_base={"REMOTE_ADDR": "198.18.0.67"}).status_code
        == 200
    )
    assert http.get("/api/v1/clients", headers=auth, environ_base=noisy).status_code == 200
    assert http.get("/healthz", environ_base=noisy).status_code == 200
    FIGURES["abuse: requests refused with 429"] += 5


def test_a_classroom_at_the_defaults_is_never_limited(
    fleet: Fleet, settings: Settings, auth: dict[str, str]
) -> None:
    """500 machines, each its own address on the boot LAN, booting at the same moment; and
    the worst single machine: a whole install with a progress report at every percent, all
    at once, without any pause the limiter could refill in."""
    http = app_with(fleet, settings).test_client()
    machines = 500
    for n in range(machines):
        env = {"REMOTE_ADDR": f"198.18.{n // 250}.{n % 250 + 1}"}
        assert http.get("/boot.ipxe", environ_base=env).status_code == 200
        assert http.get(f"/ipxe?mac={mac(n)}", environ_base=env).status_code == 200
    assert http.post("/api/v1/profiles", json=PROFILE, headers=auth).status_code == 201
    m, env = mac(9999), {"REMOTE_ADDR": "198.18.3.1"}
    assert (
        http.post(
            "/api/v1/clients", json={"mac": m, "profile": "debian12"}, headers=auth
        ).status_code
        == 201
    )
    assert http.post(f"/api/v1/clients/{m}/reinstall", headers=auth).status_code == 200
    assert http.get("/boot.ipxe", environ_base=env).status_code == 200
    token = token_in(http.get(f"/ipxe?mac={m}", environ_base=env).text)
    assert http.get(f"/ipxe?mac={m}", environ_base=env).status_code == 200  # firmware re-read
    for percent in range(100):
        r = http.post(
            f"/api/v1/installs/{token}/progress", json={"percent": percent}, environ_base=env
        )
        assert r.status_code == 200, r.text
    assert http.post(f"/api/v1/installs/{token}/done", json={}, environ_base=env).status_code == 200
    FIGURES["abuse: classroom calls at the defaults, none refused"] += 2 * machines + 104


def test_tokens_refill_and_sources_are_bounded() -> None:
    now = [0.0]
    limiter = RateLimiter(rate=2.0, burst=3, max_sources=100, clock=lambda: now[0])
    assert [limiter.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.take("a") == 0.5  # empty: one token comes every 0.5 s
    now[0] += 0.5
    assert limiter.take("a") == 0.0
    now[0] += 100
    assert [limiter.take("a") for _ in range(3)] == [0.0] * 3  # refilled to the burst only
    assert limiter.take("a") > 0
    for n in range(10_000):  # a flood of spoofed sources
        limiter.take(f"10.{n}")
    assert limiter.sources() == 100
    assert RateLimiter(rate=0, burst=1).take("x") == 0.0  # off
