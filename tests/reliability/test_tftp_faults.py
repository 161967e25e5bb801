"""The TFTP service under hostile input and a bad network.

- fuzz: random and mutated packets at the listener and at a live transfer's port; the
  service keeps running, logs no error, and still serves a file byte for byte;
- netem: real clients in a network namespace behind a link that loses, duplicates and
  reorders packets; every transfer completes exactly or fails cleanly within its bound, and
  no transfer is left behind;
- a peer that goes silent mid-transfer costs a bounded number of retransmissions.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import socket
import struct
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from server.tftp import TftpService
from tests.reliability.figures import FIGURES
from tests.reliability.impair import ImpairedRelay
from tests.reliability.netns import HOST_IP, Link, veth_namespace
from tests.reliability.tftpclient import fetch
from tests.tftp.helpers import payload

OPCODES = st.integers(min_value=0, max_value=8)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    top = tmp_path / "tftproot"
    (top / "boot").mkdir(parents=True)
    (top / "boot" / "loader.bin").write_bytes(payload(700_000, seed=1))
    (top / "boot" / "medium.bin").write_bytes(payload(60_000, seed=2))
    (top / "small.bin").write_bytes(payload(1500))
    return top


def until(check: object, bound: float = 30.0) -> None:
    """Poll `check` (a callable) up to `bound` seconds: a hang guard, not a timing check."""
    end = time.monotonic() + bound
    while time.monotonic() < end:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.02)
    raise AssertionError("condition never held")


# --- fuzz ------------------------------------------------------------------------------------

names = st.one_of(
    st.binary(max_size=300),
    st.sampled_from(
        [
            b"small.bin",
            b"boot/loader.bin",
            b"../etc/passwd",
            b"..\\..\\x",
            b"....//....//etc/passwd",
            b"/boot/../../x",
            b"a" * 5000,
            b"\xff\xfe",
        ]
    ),
)
modes = st.sampled_from([b"octet", b"netascii", b"OCTET", b"mail", b"", b"\x00", b"x" * 300])
option_pairs = st.lists(
    st.tuples(
        st.sampled_from([b"blksize", b"tsize", b"timeout", b"windowsize", b"BLKSIZE", b"x", b""]),
        st.one_of(
            st.sampled_from(
                [b"0", b"7", b"8", b"65464", b"65465", b"-1", b"99999999999999999999", b""]
            ),
            st.binary(max_size=20),
        ),
    ),
    max_size=6,
)


@st.composite
def packets(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["raw", "request", "ack", "data", "error", "truncated"]))
    if kind == "raw":
        return draw(st.binary(max_size=600))
    if kind == "request":
        body = draw(names) + b"\0" + draw(modes) + b"\0"
        for key, value in draw(option_pairs):
            body += key + b"\0" + value + b"\0"
        if draw(st.booleans()):
            body = body.rstrip(b"\0")  # unterminated
        return struct.pack("!H", draw(st.sampled_from([1, 2]))) + body
    if kind == "ack":
        return b"\0\4" + struct.pack("!H", draw(st.integers(0, 0xFFFF)))
    if kind == "data":
        return (
            b"\0\3"
            + struct.pack("!H", draw(st.integers(0, 0xFFFF)))
            + draw(st.binary(max_size=600))
        )
    if kind == "error":
        return (
            b"\0\5"
            + struct.pack("!H", draw(st.integers(0, 0xFFFF)))
            + draw(st.binary(max_size=100))
        )
    return struct.pack("!H", draw(OPCODES))[: draw(st.integers(0, 2))]


@pytest.fixture
def service(root: Path) -> Iterator[TftpService]:
    # caps out of the way: the fuzz starts many transfers from one address
    svc = TftpService(
        root,
        host="127.0.0.1",
        port=0,
        timeout=0.2,
        retries=2,
        max_transfers=100_000,
        per_source_max=100_000,
    )
    svc.start()
    try:
        yield svc
    finally:
        svc.stop()


def test_fuzzed_packets_never_break_the_service(
    service: TftpService, root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    sent = 0
    before = sorted(root.rglob("*"))

    @settings(
        max_examples=1000,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(st.lists(packets(), min_size=1, max_size=8), st.booleans())
    def blast(batch: list[bytes], at_transfer: bool) -> None:
        nonlocal sent
        target = ("127.0.0.1", service.port)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as own:
            own.settimeout(5)
            if at_transfer:  # a live transfer's own port (its TID), from its own peer
                own.sendto(b"\0\1boot/loader.bin\0octet\0", target)
                with contextlib.suppress(TimeoutError):  # then the listener gets the batch
                    _data, target = own.recvfrom(70000)
            for packet in batch:
                own.sendto(packet, target)
                sent += 1

    blast()
    until(lambda: service.stats.active == 0)  # every transfer the fuzz began has ended
    assert service._thread is not None and service._thread.is_alive()
    for name in ("small.bin", "boot/loader.bin"):
        assert fetch(service.port, name) == (root / name).read_bytes()
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, [r.getMessage() for r in errors]
    assert before == sorted(root.rglob("*")), "the fuzz wrote into the root"
    FIGURES["tftp packets fuzzed"] += sent


# --- a lossy, duplicating, reordering link ---------------------------------------------------
# tc netem in a network namespace where the kernel has it (sch_netem); everywhere, the same
# impairments from a userspace relay, so the property is tested even where netem is missing.

NETEM = "delay 4ms 3ms loss 5% duplicate 10% reorder 25% 50%"
CLIENTS: dict[str, Callable[[str, int, str, str], list[str]]] = {
    "tftp-hpa": lambda host, port, name, out: [
        "tftp",
        "-m",
        "octet",
        host,
        str(port),
        "-c",
        "get",
        name,
        out,
    ],
    "curl-blksize-1468": lambda host, port, name, out: [
        "curl",
        "-sS",
        "--tftp-blksize",
        "1468",
        "-o",
        out,
        f"tftp://{host}:{port}/{name}",
    ],
    "atftp-windowsize-8": lambda host, port, name, out: [
        "atftp",
        "--tftp-timeout",
        "1",
        "--option",
        "blksize 1468",
        "--option",
        "windowsize 8",
        "-g",
        "-r",
        name,
        "-l",
        out,
        host,
        str(port),
    ],
}


# curl asks for `timeout 6` (RFC 2349) and the server honours it, so every lost packet costs
# a curl transfer six seconds or more: it gets duplication and reordering only.
LOSSY = {"tftp-hpa": True, "curl-blksize-1468": False, "atftp-windowsize-8": True}


def run_client(
    run: Callable[[list[str]], subprocess.CompletedProcess[str]],
    client: str,
    host: str,
    port: int,
    root: Path,
    out: Path,
) -> bool:
    """Fetch the 60 kB file; True if it completed. A transfer may fail cleanly (non-zero
    exit); one that reports success must be byte-exact."""
    result = run(CLIENTS[client](host, port, "boot/medium.bin", str(out)))
    if result.returncode != 0:
        return False
    assert out.read_bytes() == (root / "boot" / "medium.bin").read_bytes(), (
        f"{client}: a wrong file, reported as done"
    )
    return True


def local(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=180, check=False)


def installed(client: str) -> bool:
    return shutil.which(CLIENTS[client]("h", 0, "n", "o")[0]) is not None


@pytest.mark.parametrize("client", list(CLIENTS))
def test_real_clients_through_an_impaired_relay(client: str, root: Path, tmp_path: Path) -> None:
    if not installed(client):
        pytest.skip(f"{client} is not installed")
    service = TftpService(root, host="127.0.0.1", port=0, timeout=0.3, retries=6)
    service.start()
    try:
        ok = 0
        counts: Counter[str] = Counter()
        for seed in range(3):
            loss = 0.05 if LOSSY[client] else 0.0
            with ImpairedRelay(("127.0.0.1", service.port), loss=loss, seed=seed) as relay:
                ok += run_client(
                    local, client, "127.0.0.1", relay.port, root, tmp_path / f"{seed}.bin"
                )
            counts += relay.counts
        until(lambda: service.stats.active == 0, bound=120)  # nothing left behind
    finally:
        service.stop()
    assert ok >= 2, f"{client}: only {ok} of 3 transfers completed"
    assert counts["duplicated"] and counts["reordered"] and (counts["lost"] or not LOSSY[client])
    FIGURES["tftp transfers through loss/dup/reorder (relay)"] += 3
    FIGURES["tftp packets lost/duplicated/reordered by the relay"] += (
        counts["lost"] + counts["duplicated"] + counts["reordered"]
    )


@pytest.fixture
def link() -> Iterator[Link]:
    with veth_namespace() as shaped:
        yield shaped


@pytest.fixture
def shaped_service(root: Path, link: Link) -> Iterator[TftpService]:
    svc = TftpService(root, host=HOST_IP, port=0, timeout=0.5, retries=6)
    svc.start()
    try:
        yield svc
    finally:
        svc.stop()


def test_real_clients_through_netem(
    shaped_service: TftpService, link: Link, root: Path, tmp_path: Path
) -> None:
    link.shape(NETEM)
    ran = ok = 0
    for client in CLIENTS:
        if installed(client):
            ran += 1
            ok += run_client(
                lambda argv: link.run(*argv, timeout=180),
                client,
                HOST_IP,
                shaped_service.port,
                root,
                tmp_path / f"{client}.bin",
            )
    if not ran:
        pytest.skip("no TFTP client installed")
    assert ok >= ran - 1, f"only {ok} of {ran} transfers completed"
    until(lambda: shaped_service.stats.active == 0, bound=200)
    FIGURES["tftp transfers through netem loss/dup/reorder"] += ran


def test_a_peer_that_goes_silent_costs_bounded_retransmits(
    shaped_service: TftpService, link: Link
) -> None:
    """The client asks, then its link drops everything: the server retries `retries`
    times, then forgets the transfer."""
    code = (
        "import socket\n"
        "s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n"
        f"s.sendto(b'\\0\\1boot/loader.bin\\0octet\\0',('{HOST_IP}',{shaped_service.port}))\n"
        "s.settimeout(10); s.recvfrom(70000)\n"
    )
    result = link.run(sys.executable, "-c", code, timeout=60)
    assert result.returncode == 0, result.stderr
    link.shape("loss 100%")
    until(lambda: shaped_service.stats.results["timeout"] == 1, bound=60)
    assert shaped_service.stats.active == 0
    assert shaped_service.stats.retransmits == shaped_service.retries


def test_a_peer_that_goes_silent_through_the_relay(root: Path) -> None:
    """The same bound without netem: the relay starts dropping everything after the first
    DATA; the server retransmits `retries` times with backoff, then ends the transfer."""
    service = TftpService(root, host="127.0.0.1", port=0, timeout=0.1, retries=4)
    service.start()
    try:
        with ImpairedRelay(("127.0.0.1", service.port), loss=0, duplicate=0, reorder=0) as relay:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as peer:
                peer.settimeout(10)
                peer.sendto(b"\0\1boot/loader.bin\0octet\0", ("127.0.0.1", relay.port))
                data, _ = peer.recvfrom(70000)
                assert data[:4] == b"\0\3\0\1"
                relay.link.loss = 1.0  # the peer is gone
                until(lambda: service.stats.results["timeout"] == 1, bound=60)
            assert relay.counts["lost"] == service.retries  # exactly the bounded resends
        assert service.stats.active == 0
        assert service.stats.retransmits == service.retries
    finally:
        service.stop()
    FIGURES["tftp retransmissions toward a silent peer (bounded)"] += service.retries
