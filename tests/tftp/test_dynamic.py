"""Boot configs rendered on request: fake resolver and renderer, real clients."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import pytest

from server.bootspec import BootSpec, Flavor
from server.tftp import make_dynamic
from server.tftp.dynamic import DynamicFailed

from .conftest import ServiceFactory
from .helpers import GUARD, Raw, ack, download


class FakeResolver:
    """Records calls; answers "install" for one known MAC, "local" for everyone else."""

    def __init__(self, fail: bool = False) -> None:
        self.calls: list[tuple[str | None, str | None, str | None]] = []
        self.fail = fail

    def resolve(self, mac: str | None, arch: str | None, peer: str | None) -> BootSpec:
        self.calls.append((mac, arch, peer))
        if self.fail:
            raise RuntimeError("registry is down")
        if mac == "aa:bb:cc:dd:ee:ff":
            return BootSpec(action="install", mac=mac, cmdline="auto=true")
        return BootSpec.local(mac, "unknown")


def render(spec: BootSpec, flavor: Flavor) -> str:
    return f"{flavor} {spec.action} {spec.mac} {spec.cmdline}\n"


def test_make_dynamic_unit() -> None:
    resolver = FakeResolver()
    files = make_dynamic(resolver, render)
    assert files("grub/grub.cfg-01-AA-BB-CC-DD-EE-FF", "198.18.0.7") == (
        b"grub install aa:bb:cc:dd:ee:ff auto=true\n"
    )
    assert files("boot.ipxe", "198.18.0.8") == b"ipxe local None \n"
    assert files("pxelinux.cfg/01-zz-bb-cc-dd-ee-ff", "198.18.0.9") is None
    assert files("pxelinux.0", "198.18.0.9") is None
    assert resolver.calls == [
        ("aa:bb:cc:dd:ee:ff", None, "198.18.0.7"),
        (None, None, "198.18.0.8"),
    ]


def test_make_dynamic_failure_is_typed(caplog: pytest.LogCaptureFixture) -> None:
    files = make_dynamic(FakeResolver(fail=True), render)
    with caplog.at_level(logging.ERROR), pytest.raises(DynamicFailed):
        files("pxelinux.cfg/default", "198.18.0.7")
    assert "peer=198.18.0.7" in caplog.text


def test_real_client_gets_rendered_pxelinux_config(
    make_service: ServiceFactory, root: Path, tmp_path: Path
) -> None:
    resolver = FakeResolver()
    (root / "pxelinux.cfg").mkdir()
    (root / "pxelinux.cfg" / "01-aa-bb-cc-dd-ee-ff").write_text("stale file on disk\n")
    service = make_service(dynamic=make_dynamic(resolver, render))
    out = tmp_path / "out"
    done = download("curl", service.port, "pxelinux.cfg/01-aa-bb-cc-dd-ee-ff", out)
    assert done.returncode == 0, done.stderr
    assert out.read_text() == "pxelinux install aa:bb:cc:dd:ee:ff auto=true\n"
    assert resolver.calls == [("aa:bb:cc:dd:ee:ff", None, "127.0.0.1")]


@pytest.mark.parametrize(
    ("client", "name", "text"),
    [
        ("tftp-hpa", "boot/grub/grub.cfg", "grub local None \n"),
        ("atftp", "grub.cfg-01-aa-bb-cc-dd-ee-ff", "grub install aa:bb:cc:dd:ee:ff auto=true\n"),
        ("busybox", "autoexec.ipxe", "ipxe local None \n"),
        ("curl", "pxelinux.cfg/default", "pxelinux local None \n"),
    ],
)
def test_other_flavours(
    client: str, name: str, text: str, make_service: ServiceFactory, tmp_path: Path
) -> None:
    service = make_service(dynamic=make_dynamic(FakeResolver(), render))
    out = tmp_path / "out"
    done = download(client, service.port, name, out)
    assert done.returncode == 0, done.stderr
    assert out.read_text() == text


@pytest.mark.parametrize(
    "name",
    ["pxelinux.cfg/01-zz-bb-cc-dd-ee-ff", "pxelinux.cfg/C0A80001", "grub.cfg-01-ff-ff-ff-ff-ff-ff"],
)
def test_bad_mac_is_file_not_found(make_service: ServiceFactory, root: Path, name: str) -> None:
    resolver = FakeResolver()
    (root / "pxelinux.cfg").mkdir()
    (root / "pxelinux.cfg" / "C0A80001").write_text("stale\n")
    service = make_service(dynamic=make_dynamic(resolver, render))
    raw = Raw(service.port)
    try:
        raw.rrq(name)
        assert raw.recv()[:2] == (5, 1)
    finally:
        raw.close()
    assert resolver.calls == []


def test_without_dynamic_the_names_are_not_found(make_service: ServiceFactory, root: Path) -> None:
    (root / "boot.ipxe").write_text("#!ipxe\nstale\n")
    service = make_service()
    raw = Raw(service.port)
    try:
        raw.rrq("boot.ipxe")
        assert raw.recv()[:2] == (5, 1)
    finally:
        raw.close()


def test_resolver_failure_answers_error_and_server_goes_on(
    make_service: ServiceFactory, root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    service = make_service(dynamic=make_dynamic(FakeResolver(fail=True), render))
    raw = Raw(service.port)
    try:
        with caplog.at_level(logging.ERROR):
            raw.rrq("pxelinux.cfg/01-aa-bb-cc-dd-ee-ff")
            opcode, code, message, _ = raw.recv()
        assert (opcode, code) == (5, 0) and b"pxelinux" in message
        assert "registry is down" in caplog.text
        assert raw.fetch("f511.bin") == (root / "f511.bin").read_bytes()
    finally:
        raw.close()


def test_any_exception_from_a_custom_dynamic_callable(
    make_service: ServiceFactory, root: Path
) -> None:
    def broken(path: str, peer: str) -> bytes | None:
        raise KeyError(path)

    service = make_service(dynamic=broken)
    raw = Raw(service.port)
    try:
        raw.rrq("boot.ipxe")
        assert raw.recv()[:2] == (5, 0)
        assert raw.fetch("f511.bin") == (root / "f511.bin").read_bytes()
    finally:
        raw.close()


def test_hung_resolver_does_not_hold_up_boot_loaders(
    make_service: ServiceFactory, root: Path
) -> None:
    release = threading.Event()

    class SlowResolver(FakeResolver):
        def resolve(self, mac: str | None, arch: str | None, peer: str | None) -> BootSpec:
            release.wait(GUARD)
            return super().resolve(mac, arch, peer)

    service = make_service(dynamic=make_dynamic(SlowResolver(), render), workers=1)
    waiting, other = Raw(service.port), Raw(service.port)
    try:
        waiting.rrq("boot.ipxe")
        other.rrq("pxelinux.cfg/default")  # queued behind the hung one
        assert other.fetch("sub/undionly.kpxe") == (root / "sub/undionly.kpxe").read_bytes()
        release.set()
        opcode, block, data, tid = waiting.recv()
        assert (opcode, block, data) == (3, 1, b"ipxe local None \n")
        waiting.send(ack(1), tid)
    finally:
        release.set()
        waiting.close()
        other.close()
