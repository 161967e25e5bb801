"""Render boot configs on request from the resolver and renderer; nothing is written to disk."""

from __future__ import annotations

import logging
from collections.abc import Callable

from server.bootspec import BootSpec, Flavor, Resolver
from server.tftp import names

log = logging.getLogger(__name__)

Render = Callable[[BootSpec, Flavor], str]
DynamicFiles = Callable[[str, str], bytes | None]


class DynamicFailed(Exception):
    """The resolver or renderer failed; the TFTP server answers with an ERROR packet."""


def make_dynamic(resolver: Resolver, render: Render) -> DynamicFiles:
    """Return `files(path, peer_ip) -> bytes | None` (None: no such dynamic file)."""

    def files(path: str, peer: str) -> bytes | None:
        try:
            parsed = names.parse(path)
        except names.NoSuchDynamicFile:
            return None
        if parsed is None:
            return None
        flavor, mac = parsed
        try:
            spec = resolver.resolve(mac, None, peer)
            text = render(spec, flavor)
        except Exception as exc:
            log.exception("boot config %s for mac=%s peer=%s failed", path, mac, peer)
            raise DynamicFailed(f"cannot render {flavor} config") from exc
        log.debug("rendered %s for mac=%s peer=%s: %s", path, mac, peer, spec.action)
        return text.encode("utf-8")

    return files
