"""Parse and normalise MAC addresses: one canonical form everywhere (aa:bb:cc:dd:ee:ff)."""

from __future__ import annotations

import re

from server.errors import InvalidInput

_SEPARATED = re.compile(r"^[0-9a-fA-F]{2}([:-])(?:[0-9a-fA-F]{2}\1){4}[0-9a-fA-F]{2}$")
_CISCO = re.compile(r"^[0-9a-fA-F]{4}\.[0-9a-fA-F]{4}\.[0-9a-fA-F]{4}$")
_BARE = re.compile(r"^[0-9a-fA-F]{12}$")


def normalize_mac(value: object, field: str = "mac") -> str:
    """Return `value` as a lower-case colon-separated unicast MAC, or raise InvalidInput.

    Accepted spellings: aa:bb:cc:dd:ee:ff, AA-BB-CC-DD-EE-FF, aabb.ccdd.eeff, aabbccddeeff.
    Refused: anything else, the all-zero and broadcast addresses, and multicast addresses
    (least significant bit of the first octet set), which no NIC boots from.
    """
    if not isinstance(value, str):
        raise InvalidInput(field, "must be a string")
    text = value.strip()
    if _SEPARATED.match(text) or _CISCO.match(text) or _BARE.match(text):
        digits = re.sub(r"[^0-9a-fA-F]", "", text).lower()
    else:
        raise InvalidInput(field, f"not a MAC address: {value[:40]!r}")
    if digits == "000000000000":
        raise InvalidInput(field, "the all-zero MAC is not a client")
    if digits == "ffffffffffff":
        raise InvalidInput(field, "the broadcast MAC is not a client")
    if int(digits[:2], 16) & 1:
        raise InvalidInput(field, "a multicast MAC is not a client")
    return ":".join(digits[i : i + 2] for i in range(0, 12, 2))


def mac_hyphens(mac: str) -> str:
    """Canonical MAC in the dash form pxelinux and GRUB use in file names (aa-bb-...)."""
    return mac.replace(":", "-")


_SEPARATORS = re.compile(r"[-:.]")


def mac_fragment(text: str) -> str | None:
    """Part of a MAC in any spelling, as it reads in the canonical form, or None if `text`
    cannot be part of a MAC: 52-54-00, 52:54:00, 525400 and 5254.00 all give 52:54:00.

    Octets are taken from the start, unless the first group (before any separator) has an
    odd number of digits: 4:00:1 starts inside an octet and gives 4:00:1.
    """
    groups = _SEPARATORS.split(text.strip().lower().strip("-:."))
    digits = "".join(groups)
    if not digits or len(digits) > 12 or not all(c in "0123456789abcdef" for c in digits):
        return None
    if "" in groups or any(len(g) % 2 for g in groups[1:-1]):
        return None  # 52::54, 52:5:4: not how a MAC is written
    first = len(groups[0]) % 2
    octets = [digits[:first]] if first else []
    octets += [digits[i : i + 2] for i in range(first, len(digits), 2)]
    return ":".join(octets)
