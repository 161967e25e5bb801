"""Boot file per architecture and user class, and the scope switch."""

from __future__ import annotations

import pytest

from server.errors import InvalidInput
from server.proxydhcp.packet import parse
from server.proxydhcp.policy import Policy, boot_files

from .client import MAC, discover

SERVER = "http://198.18.0.1:8080"
FILES = boot_files("", SERVER)


def lookup_none(mac: str) -> tuple[int, str] | None:
    return None


@pytest.mark.parametrize(
    ("arch", "user_class", "vendor", "file"),
    [
        (0, None, None, "undionly.kpxe"),
        (7, None, None, "snponly.efi"),
        (9, None, None, "snponly.efi"),
        (11, None, None, "snponly-arm64.efi"),
        (0, b"iPXE", None, f"{SERVER}/boot.ipxe"),
        (7, b"iPXE", None, f"{SERVER}/boot.ipxe"),
        (16, None, b"HTTPClient:Arch:00016:UNDI:003001", f"{SERVER}/images/snponly.efi"),
        (6, None, None, None),  # 32-bit UEFI: no file by default
        (7, None, b"MSFT 5.0", None),  # not a PXE client
    ],
)
def test_file_by_architecture(
    arch: int, user_class: bytes | None, vendor: bytes | None, file: str | None
) -> None:
    decision = Policy(FILES, "all", lookup_none).decide(
        parse(discover(arch=arch, user_class=user_class, vendor=vendor))
    )
    assert decision.file == file, decision


def test_files_are_configurable_and_ipxe_entry_can_be_dropped() -> None:
    files = boot_files("bios=pxelinux.0, efi64=grubnetx64.efi, ipxe=", SERVER)
    policy = Policy(files, "all", lookup_none)
    assert policy.decide(parse(discover(arch=0, user_class=b"iPXE"))).file == "pxelinux.0"
    assert policy.decide(parse(discover(arch=7))).file == "grubnetx64.efi"


@pytest.mark.parametrize("spec", ["bios", "mips=foo.efi", "=x"])
def test_bad_file_spec(spec: str) -> None:
    with pytest.raises(InvalidInput, match="proxy_dhcp_files"):
        boot_files(spec, SERVER)


@pytest.mark.parametrize(
    ("scope", "found", "answered"),
    [
        ("all", None, True),
        ("registered", None, False),
        ("registered", (1, "idle"), True),
        ("reinstall", None, False),
        ("reinstall", (1, "idle"), False),
        ("reinstall", (1, "installed"), False),
        ("reinstall", (1, "pending"), True),
        ("reinstall", (1, "booting"), True),
    ],
)
def test_scope(scope: str, found: tuple[int, str] | None, answered: bool) -> None:
    asked: list[str] = []

    def lookup(mac: str) -> tuple[int, str] | None:
        asked.append(mac)
        return found

    decision = Policy(FILES, scope, lookup).decide(parse(discover()))
    assert (decision.file is not None) == answered, decision
    assert asked == ([] if scope == "all" else [MAC])


def test_unknown_scope() -> None:
    with pytest.raises(InvalidInput):
        Policy(FILES, "everyone", lookup_none)
