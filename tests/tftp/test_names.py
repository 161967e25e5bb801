"""Which names are dynamic, for which loader and MAC."""

from __future__ import annotations

import pytest

from server.tftp import names

MAC = "aa:bb:cc:dd:ee:ff"


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("pxelinux.cfg/01-aa-bb-cc-dd-ee-ff", ("pxelinux", MAC)),
        ("pxelinux.cfg/01-AA-BB-CC-DD-EE-FF", ("pxelinux", MAC)),
        ("boot/pxelinux.cfg/01-aa-bb-cc-dd-ee-ff", ("pxelinux", MAC)),
        ("pxelinux.cfg/default", ("pxelinux", None)),
        ("grub.cfg", ("grub", None)),
        ("grub/grub.cfg", ("grub", None)),
        ("boot/grub/grub.cfg", ("grub", None)),
        ("grub.cfg-01-aa-bb-cc-dd-ee-ff", ("grub", MAC)),
        ("boot/grub/grub.cfg-01-aa-bb-cc-dd-ee-ff", ("grub", MAC)),
        ("boot.ipxe", ("ipxe", None)),
        ("autoexec.ipxe", ("ipxe", None)),
        ("ipxe/boot.ipxe", ("ipxe", None)),
        ("pxelinux.0", None),
        ("grubx64.efi", None),
        ("ldlinux.c32", None),
        ("grub/x86_64-efi/normal.mod", None),
        ("pxelinux.cfg.bak", None),
        ("mygrub.cfg", None),
        ("boot.ipxe.old", None),
    ],
)
def test_parse(path: str, expected: object) -> None:
    assert names.parse(path) == expected


@pytest.mark.parametrize(
    "path",
    [
        "pxelinux.cfg/01-aa-bb-cc-dd-ee",  # too short
        "pxelinux.cfg/01-zz-bb-cc-dd-ee-ff",  # not hex
        "pxelinux.cfg/01-ff-ff-ff-ff-ff-ff",  # broadcast
        "pxelinux.cfg/01-01-00-5e-00-00-01",  # multicast
        "pxelinux.cfg/aa-bb-cc-dd-ee-ff",  # no ARP type
        "pxelinux.cfg/C0A80001",  # hex IP: we answer 01-<mac> and default only
        "pxelinux.cfg/b8945908-d6a6-41a9-611d-74a6ab80b83d",  # UUID
        "grub.cfg-C0A80001",
        "grub.cfg-01-aa-bb-cc-dd-ee-ff-00",
    ],
)
def test_dynamic_namespace_without_content(path: str) -> None:
    with pytest.raises(names.NoSuchDynamicFile):
        names.parse(path)
