"""Booter: the one place boot policy lives. resolve(mac, arch, peer) -> BootSpec.

A registered client with a pending reinstall gets its installer (and moves to booting); a
re-read inside the grace window gets the same installer again, because GRUB and UEFI
firmware read a config more than once. Everyone else - idle, installed, failed, unknown, or a
malformed MAC - boots from its own disk. No answer is ever "install" by default.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable, Mapping
from typing import Any, Protocol

from sqlalchemy.engine import Engine

from server import cmdline
from server.bootspec import BootSpec, ImageRef
from server.errors import Conflict, InvalidInput
from server.lifecycle import MAY_INSTALL, State
from server.macaddr import normalize_mac
from server.models import Client, Install, utcnow
from server.registry import clients, events, installs
from server.registry.database import session_scope
from server.registry.installs import Policy
from server.registry.seen import BootRegistry
from server.render import Renderer

log = logging.getLogger(__name__)

RESOLVE_TRIES = 3
# What check_cmdline puts where an install's token goes: as long as a real one (43 URL-safe
# characters, tokens.install_token), so the command line's length is checked truly.
STAND_IN_TOKEN = "t" * 43


class Machine(Protocol):
    """What templates see of a client: a Client row, or a CSV row about to become one."""

    @property
    def mac(self) -> str: ...
    @property
    def hostname(self) -> str | None: ...
    @property
    def last_arch(self) -> str | None: ...


class Booter:
    def __init__(self, engine: Engine, policy: Policy, renderer: Renderer) -> None:
        self.engine = engine
        self.policy = policy
        self.renderer = renderer
        self.registry = BootRegistry(engine)

    @property
    def server_url(self) -> str:
        return self.renderer.server_url

    def resolve(self, mac: str | None, arch: str | None, peer: str | None) -> BootSpec:
        """Decide what `mac` boots now; a served installer is a lifecycle transition."""
        if mac is None:
            return BootSpec.local(None, "no MAC in the request")
        try:
            mac = normalize_mac(mac)
        except InvalidInput:
            return BootSpec.local(None, "malformed MAC: local boot")
        arch = arch[:32] if arch else None
        # Two fetches at the same moment (firmware and a re-read, or two servers sharing a
        # PostgreSQL registry) may both see `pending`; the loser's compare-and-set fails.
        # Read again: the client is booting now, and the grace window gives it the same
        # installer, so neither request errs and only one boot transition happens.
        for _attempt in range(RESOLVE_TRIES - 1):
            try:
                return self._resolve(mac, arch, peer)
            except Conflict:
                log.info("boot of %s raced another request; reading it again", mac)
        return self._resolve(mac, arch, peer)

    def _resolve(self, mac: str, arch: str | None, peer: str | None) -> BootSpec:
        found = self.registry.lookup(mac)
        if found is None and self.registry.unregistered(mac, peer, arch, utcnow()):
            return BootSpec.unknown(mac)
        if found is not None and found[1] not in MAY_INSTALL:
            # The common answer (idle, installed, failed, installing): local boot, decided on
            # a read; the sighting is written behind, with other machines' (it only touches
            # the last_* columns, so it commutes with any concurrent change of state).
            self.registry.seen(found[0], mac, peer, arch, utcnow())
            return BootSpec.local(mac, f"client is {found[1]}: local boot")
        # Unregistered, or an install may be due: the ORM path decides (afresh, in its own
        # transaction) and records what it did.
        with session_scope(self.engine, write=True) as session:
            client = clients.find(session, mac)
            if client is None:
                events.seen_unregistered(session, mac, peer, arch)
                return BootSpec.unknown(mac)
            client.last_ip = peer or client.last_ip
            client.last_arch = arch or client.last_arch
            client.last_seen_at = utcnow()
            session.add(client)
            install = installs.current(session, client)
            may_install = client.state == State.PENDING or (
                client.state == State.BOOTING
                and install is not None
                and installs.within_grace(install, self.policy)
            )
            if install is None or not may_install:
                return BootSpec.local(mac, f"client is {client.state}: local boot")
            try:
                spec = self.installer_spec(client, install)
            except InvalidInput as exc:
                # Checked when the install was requested (Checks); an install requested
                # before those checks, or a context that changed since (the arch a firmware
                # reports), ends here: local boot, and the client stays as it is.
                log.error("installer for %s (%s) not served: %s", mac, client.hostname, exc)
                installs.not_served(session, client, str(exc), peer)
                return BootSpec.local(mac, f"installer does not render ({exc.field}): local boot")
            if client.state == State.PENDING:
                installs.boot_served(session, client, install, self.policy, peer, "boot config")
                log.info(
                    "installer boot config for %s (%s) served to %s", mac, client.hostname, peer
                )
            else:
                installs.touch_boot(session, install, self.policy)
            return spec

    def install_url(self, install: Install) -> str:
        return self._install_url(self.policy.token(install))

    def _install_url(self, token: str) -> str:
        return f"{self.server_url}/api/v1/installs/{token}"

    def context(self, client: Client, install: Install) -> dict[str, Any]:
        """What templates (command line, answer file) see: the install's variables first,
        then the fixed names, which a variable cannot override."""
        return self._context(client, install.profile_snapshot, self.install_url(install))

    def _context(
        self, client: Machine, snap: Mapping[str, Any], install_url: str
    ) -> dict[str, Any]:
        context: dict[str, Any] = dict(snap.get("variables") or {})
        context.update(
            install_url=install_url,
            server_url=self.server_url,
            images_url=f"{self.server_url}/images",
            mac=client.mac,
            hostname=snap.get("hostname") or client.hostname or default_hostname(client.mac),
            profile=snap.get("profile"),
            arch=client.last_arch,
        )
        return context

    def installer_spec(self, client: Client, install: Install) -> BootSpec:
        snap = install.profile_snapshot
        reason = f"install {install.id} of profile {snap.get('profile')}"
        return self._installer_spec(client, snap, self.install_url(install), reason)

    def check_cmdline(
        self, client: Machine, snap: Mapping[str, Any], passed: set[Hashable] | None = None
    ) -> None:
        """Build the installer a reinstall with profile snapshot `snap` would serve `client`
        (its token stood in for): InvalidInput on `cmdline` now, not a local boot later.

        `passed` remembers what passed across many checks (a CSV import): the outcome
        depends only on the template, the kernel and initrds, and the values of the names
        the template reads, so an equal key needs no second rendering."""
        install_url = self._install_url(STAND_IN_TOKEN)
        if passed is None:
            self._installer_spec(client, snap, install_url, "check")
            return
        template = snap.get("cmdline") or ""
        context = self._context(client, snap, install_url)
        key = (
            template,
            snap["kernel"],
            tuple(snap.get("initrd") or ()),
            tuple(
                (name, repr(context.get(name)))
                for name in sorted(self.renderer.cmdline_names(template))
            ),
        )
        if key not in passed:
            self._installer_spec(client, snap, install_url, "check")
            passed.add(key)

    def _installer_spec(
        self, client: Machine, snap: Mapping[str, Any], install_url: str, reason: str
    ) -> BootSpec:
        context = self._context(client, snap, install_url)
        rendered = self.renderer.render_cmdline(snap.get("cmdline") or "", context)
        spec = BootSpec(
            action="install",
            mac=client.mac,
            hostname=context["hostname"],
            kernel=self.image(snap["kernel"]),
            initrds=tuple(self.image(i) for i in snap.get("initrd") or ()),
            cmdline=cmdline.join(rendered, f"bootfleet.install={install_url}"),
            install_url=install_url,
            reason=reason,
        )
        cmdline.check_fits(spec)
        return spec

    def image(self, ref: str) -> ImageRef:
        if ref.startswith(("http://", "https://")):
            return ImageRef(url=ref)
        return ImageRef(url=f"{self.server_url}/images/{ref}", path=ref)


def default_hostname(mac: str) -> str:
    return "client-" + mac.replace(":", "")
