"""Which requested names are dynamic boot configs, and for which loader and MAC.

These names are always answered from the resolver, never from disk, so a stale file cannot
override a boot decision. Any prefix directory is accepted (GRUB's 'grub/', 'boot/grub/';
pxelinux looks next to pxelinux.0).
"""

from __future__ import annotations

from server.bootspec import Flavor
from server.errors import InvalidInput
from server.macaddr import normalize_mac

Dynamic = tuple[Flavor, str | None]


class NoSuchDynamicFile(LookupError):
    """A dynamic-looking name with nothing to render (bad MAC, pxelinux UUID/IP names)."""


def parse(path: str) -> Dynamic | None:
    """Return (flavor, mac or None) for a dynamic name, None for a static one.

    `path` is normalised ('a/b/c', see paths.normalize). Raises NoSuchDynamicFile for names
    in the dynamic namespace that we do not render: they answer "file not found" (pxelinux
    then falls through to the next name it tries) and are never looked up on disk.
    """
    parent, _, base = path.rpartition("/")
    if base in ("boot.ipxe", "autoexec.ipxe"):
        return "ipxe", None
    if base == "grub.cfg":
        return "grub", None
    if base.startswith("grub.cfg-"):
        return "grub", _mac(base.removeprefix("grub.cfg-"))
    if parent == "pxelinux.cfg" or parent.endswith("/pxelinux.cfg"):
        if base == "default":
            return "pxelinux", None
        return "pxelinux", _mac(base)
    return None


def _mac(suffix: str) -> str:
    """'01-aa-bb-cc-dd-ee-ff' (ARP type 1 = Ethernet, then the MAC) -> 'aa:bb:cc:dd:ee:ff'."""
    if not suffix.lower().startswith("01-"):
        raise NoSuchDynamicFile(suffix)
    try:
        return normalize_mac(suffix[3:])
    except InvalidInput:
        raise NoSuchDynamicFile(suffix) from None
