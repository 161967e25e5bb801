"""What one transfer may hold: the honoured `timeout` option and a transfer's whole life."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from .conftest import ServiceFactory
from .helpers import Raw, ack, parse_oack


def until(check: Callable[[], bool], bound: float = 10.0) -> float:
    """Poll `check` up to `bound` seconds; the seconds it took."""
    start = time.monotonic()
    while time.monotonic() - start < bound:
        if check():
            return time.monotonic() - start
        time.sleep(0.02)
    raise AssertionError(f"condition never held within {bound} s")


def oack_of(raw: Raw, name: str, **options: object) -> dict[str, str]:
    raw.rrq(name, **options)
    opcode, number, payload, _tid = raw.recv()
    assert opcode == 6, (opcode, number, payload)
    return parse_oack(number.to_bytes(2, "big") + payload)


@pytest.mark.parametrize(
    ("asked", "max_timeout", "echoed"),
    [
        (1, None, "1"),
        (8, None, "8"),  # the default bound: the largest gap our backoff reaches anyway
        (9, None, None),  # RFC 2349: the OACK must echo the value asked, so it is left out
        (255, None, None),
        (2, 2, "2"),
        (3, 2, None),
    ],
)
def test_timeout_option_is_honoured_up_to_the_bound(
    make_service: ServiceFactory, asked: int, max_timeout: int | None, echoed: str | None
) -> None:
    bounds = {} if max_timeout is None else {"max_timeout": max_timeout}
    service = make_service(timeout=30.0, **bounds)
    raw = Raw(service.port)
    try:
        oack = oack_of(raw, "x512.bin", timeout=asked, tsize=0)
        assert oack.get("timeout") == echoed
        assert oack["tsize"] == "1536"
    finally:
        raw.close()


def test_silent_peer_asking_timeout_255_frees_its_slot(make_service: ServiceFactory) -> None:
    # The server's own timeout applies: 0.2 + 0.4 + 0.8 s of retransmissions, then the slot
    # is free. Honouring 255 held it 6 x 255 s: 500 such requests locked out every client.
    service = make_service(timeout=0.2, retries=2, per_source_max=1)
    silent, other = Raw(service.port), Raw(service.port)
    try:
        oack = oack_of(silent, "x512.bin", timeout=255, tsize=0)
        other.rrq("f511.bin")
        assert other.recv()[:2] == (5, 0)  # busy: the silent peer holds the only slot
        took = until(lambda: service.stats.active == 0)
        assert took < 3.0, f"slot held {took:.1f} s"
        assert service.stats.results["timeout"] == 1
        assert "timeout" not in oack, oack
        assert other.fetch("f511.bin")  # the address is served again
    finally:
        silent.close()
        other.close()


def test_transfer_life_is_bounded(make_service: ServiceFactory, big: Path) -> None:
    # A peer that ACKs just often enough to never time out still lets go of its slot.
    service = make_service(timeout=1.0, max_transfer_seconds=1)
    raw = Raw(service.port)
    try:
        raw.rrq("big.bin")
        start = time.monotonic()
        while True:
            opcode, number, payload, tid = raw.recv()
            if opcode != 3:
                break
            time.sleep(0.2)
            raw.send(ack(number), tid)
        took = time.monotonic() - start
        assert (opcode, number) == (5, 0), payload
        assert payload.rstrip(b"\0") == b"transfer took too long"
        assert 1.0 <= took < 2.5, took
        until(lambda: service.stats.active == 0)
        assert service.stats.results["too_long"] == 1
    finally:
        raw.close()


def test_silent_peer_with_an_honoured_timeout_is_bounded_by_the_life(
    make_service: ServiceFactory,
) -> None:
    service = make_service(timeout=1.0, max_transfer_seconds=1)
    raw = Raw(service.port)
    try:
        assert oack_of(raw, "x512.bin", timeout=8)["timeout"] == "8"  # would resend at 8 s
        took = until(lambda: service.stats.active == 0)
        assert took < 2.0, f"slot held {took:.1f} s"
        assert service.stats.results["too_long"] == 1
    finally:
        raw.close()
