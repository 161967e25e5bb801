"""Which boot file a PXE client gets from the proxy, or why it gets no answer at all.

Boot files are chosen by the client architecture (RFC 4578 option 93) and are configurable
per architecture; iPXE (user class "iPXE") gets Bootfleet's HTTP entry point, so an iPXE we
chain-loaded does not load iPXE again forever. The scope decides who is answered at all:
every PXE client, registered MACs only, or only MACs with a reinstall in flight.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

from server.config import PROXY_DHCP_SCOPES as SCOPES
from server.errors import InvalidInput
from server.lifecycle import MAY_INSTALL
from server.proxydhcp.packet import Packet

Scope = Literal["all", "registered", "reinstall"]
# States in which a reinstall is in flight: requested, or its boot config being served.

# RFC 4578 section 2.1 (and the IANA registry) architecture types -> our names.
ARCH_NAMES: dict[int, str] = {
    0: "bios",
    6: "efi32",
    7: "efi64",
    9: "efi64",  # "EFI BC": x86-64 UEFI firmware sends 7 or 9
    10: "arm32",
    11: "arm64",
    15: "efi32-http",
    16: "efi64-http",
    19: "arm64-http",
}
# Keys of the boot-file table: one per architecture name, and "ipxe" for iPXE clients.
FILE_KEYS = (*dict.fromkeys(ARCH_NAMES.values()), "ipxe")
# `{server}` is replaced by Bootfleet's advertised URL (http://host:port).
DEFAULT_FILES: dict[str, str] = {
    "bios": "undionly.kpxe",
    "efi64": "snponly.efi",
    "arm64": "snponly-arm64.efi",
    "efi64-http": "{server}/images/snponly.efi",
    "arm64-http": "{server}/images/snponly-arm64.efi",
    "ipxe": "{server}/boot.ipxe",
}


def boot_files(spec: str, server_url: str) -> dict[str, str]:
    """The defaults, changed by `spec` ("bios=pxelinux.0,efi64=grubnetx64.efi"); an empty
    value ("ipxe=") removes an entry: that client is not answered (or, for "ipxe", gets its
    architecture's file like any other client)."""
    files = dict(DEFAULT_FILES)
    for item in filter(None, (part.strip() for part in spec.split(","))):
        key, sep, value = item.partition("=")
        key = key.strip().lower()
        if not sep or key not in FILE_KEYS:
            raise InvalidInput(
                "proxy_dhcp_files", f"{item!r}: want NAME=FILE, NAME one of {', '.join(FILE_KEYS)}"
            )
        if value.strip():
            files[key] = value.strip()
        else:
            files.pop(key, None)
    return {k: v.replace("{server}", server_url) for k, v in files.items()}


@dataclass(frozen=True)
class Decision:
    """A boot file to offer (`file` set), or no answer (`file` None) and why."""

    mac: str
    arch: str
    file: str | None
    reason: str
    http: bool = False  # a UEFI HTTP boot client: answer as "HTTPClient"


class Policy:
    """Decides per request; `lookup(mac)` is the registry's (id, state) read, or None."""

    def __init__(
        self,
        files: Mapping[str, str],
        scope: str,
        lookup: Callable[[str], tuple[int, str] | None],
    ) -> None:
        if scope not in SCOPES:
            raise InvalidInput("proxy_dhcp_scope", f"must be one of {', '.join(SCOPES)}")
        self.files = dict(files)
        self.scope = scope
        self.lookup = lookup

    def decide(self, packet: Packet) -> Decision:
        vendor = packet.vendor_class
        http = vendor.startswith("HTTPClient")
        code = packet.arch
        arch = ARCH_NAMES.get(code, f"arch-{code}") if code is not None else "bios"
        if not vendor.startswith("PXEClient") and not http:
            return Decision(packet.mac, arch, None, "not a PXE client")
        why_not = self._out_of_scope(packet.mac)
        if why_not:
            return Decision(packet.mac, arch, None, why_not, http)
        if packet.user_class == "iPXE" and "ipxe" in self.files and not http:
            return Decision(packet.mac, arch, self.files["ipxe"], "iPXE", http)
        file = self.files.get(arch)
        if file is None:
            return Decision(packet.mac, arch, None, f"no boot file for {arch}", http)
        return Decision(packet.mac, arch, file, arch, http)

    def _out_of_scope(self, mac: str) -> str:
        if self.scope == "all":
            return ""
        found = self.lookup(mac)
        if found is None:
            return "not registered"
        if self.scope == "reinstall" and found[1] not in MAY_INSTALL:
            return f"no reinstall in flight ({found[1]})"
        return ""
