"""The boot-decision seam: what one machine boots next, independent of the transport.

TFTP and HTTP both ask `Booter.resolve(mac, arch, peer)` and hand the BootSpec to the renderer,
so a pxelinux file, a GRUB config and an iPXE script for one MAC always agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

# "menu": the unknown-machine menu (iPXE only; other loaders boot the disk, as for "local");
# "requested": the answer to a machine that asked from that menu to be registered.
Action = Literal["install", "local", "menu", "requested"]
Flavor = Literal["ipxe", "pxelinux", "grub"]


UNREGISTERED = "unregistered machine: local boot"


@dataclass(frozen=True)
class ImageRef:
    """A kernel or initrd: `url` for HTTP-capable loaders, `path` (under images/) for TFTP."""

    url: str
    path: str | None = None

    @property
    def name(self) -> str:
        """Base name, as iPXE's `initrd=<name>` on UEFI wants it."""
        return (self.path or self.url).rstrip("/").rsplit("/", 1)[-1]


@dataclass(frozen=True)
class BootSpec:
    """What to boot. `action == "local"` means: leave the network, boot from the disk."""

    action: Action
    mac: str | None = None
    hostname: str | None = None
    kernel: ImageRef | None = None
    initrds: tuple[ImageRef, ...] = ()
    cmdline: str = ""
    install_url: str | None = None
    reason: str = ""
    unregistered: bool = False  # no client has this MAC (the unknown-machine menu may show)

    @classmethod
    def local(cls, mac: str | None, reason: str) -> BootSpec:
        return cls(action="local", mac=mac, reason=reason)

    @classmethod
    def unknown(cls, mac: str) -> BootSpec:
        return cls(action="local", mac=mac, reason=UNREGISTERED, unregistered=True)


class Resolver(Protocol):
    """Anything that decides a BootSpec for a MAC (the real Booter, or a test fake)."""

    def resolve(self, mac: str | None, arch: str | None, peer: str | None) -> BootSpec: ...
