"""Machines that asked to be registered, and an admin's approval of them.

From the unknown-machine menu (boot/ipxe.j2) a machine reports its SMBIOS facts; they wait in
its discovered row. Nothing installs on it until an admin approves it with a profile, which
registers it as a client like any other (and a reinstall is still a separate request).
"""

from __future__ import annotations

from sqlmodel import Session, select

from server.checks import Checks
from server.errors import NotFound
from server.models import FACT_MAX, Client, ClientCreate, Discovered, utcnow
from server.registry import clients
from server.registry.events import record

FACTS = ("manufacturer", "product", "serial", "uuid")


def clean_fact(value: str | None) -> str | None:
    """A hardware fact as a machine reported it: printable, trimmed, at most FACT_MAX long."""
    if not value:
        return None
    text = "".join(ch for ch in value if ch.isprintable()).strip()[:FACT_MAX]
    return text or None


def request_registration(
    session: Session, mac: str, facts: dict[str, str | None], ip: str | None
) -> bool:
    """An unregistered machine asked (from the unknown-machine menu) to be registered: keep
    its facts for an admin to approve it. False if a client has the MAC already (nothing to
    ask: it boots as its state says)."""
    if session.exec(select(Client.id).where(Client.mac == mac)).first() is not None:
        return False
    row = session.get(Discovered, mac)
    if row is None:
        row = Discovered(mac=mac, last_ip=ip)
    row.requested_at = row.last_seen_at = utcnow()
    row.last_ip = ip or row.last_ip
    for name in FACTS:
        setattr(row, name, clean_fact(facts.get(name)))
    session.add(row)
    said = ", ".join(f"{n} {getattr(row, n)}" for n in FACTS if getattr(row, n))
    record(session, mac, "registration_requested", said or "no hardware facts reported", ip)
    return True


def approve(session: Session, data: ClientCreate, checks: Checks, actor: str | None) -> Client:
    """Register a machine that asked to be: a client with the admin's profile."""
    row = session.get(Discovered, data.mac)
    if row is None or row.requested_at is None:
        raise NotFound(f"{data.mac} did not ask to be registered")
    client = clients.create(session, data, checks, actor)
    facts = ", ".join(f"{n} {getattr(row, n)}" for n in FACTS if getattr(row, n))
    record(session, client.mac, "approved", facts or "no hardware facts reported", actor)
    return client
