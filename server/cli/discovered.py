"""`bootfleet discovered list|approve`: machines seen without being registered, and the
approval of those that asked to be (from the unknown-machine menu)."""

from __future__ import annotations

from typing import Any

import click

from server.api.schemas import DiscoveredPublic
from server.cli.options import friendly, open_fleet, registry_options
from server.cli.table import emit
from server.models import ClientCreate
from server.registry import discovered, events
from server.registry.database import session_scope


@click.group("discovered")
def discovered_group() -> None:
    """Machines that network-booted without being registered."""


@discovered_group.command("list")
@registry_options
@click.option("--requested", is_flag=True, help="Only those that asked to be registered.")
@click.option("--json", "as_json", is_flag=True, help="JSON output.")
@friendly
def discovered_list(requested: bool, as_json: bool, **kw: Any) -> None:
    fleet = open_fleet(kw)
    with session_scope(fleet.engine) as s:
        rows = [
            DiscoveredPublic.model_validate(d, from_attributes=True)
            for d in events.list_discovered(s)
            if d.requested_at is not None or not requested
        ]
    columns = ["mac", "last_seen_at", "last_ip", "requested_at", "manufacturer", "product"]
    emit(rows, [*columns, "serial"], as_json)


@discovered_group.command("approve")
@registry_options
@click.argument("mac")
@click.option("--profile", required=True, help="What it installs when a reinstall is asked.")
@click.option("--hostname")
@click.option("--group", "groups", multiple=True, help="A group (repeatable).")
@friendly
def discovered_approve(
    mac: str, profile: str, hostname: str | None, groups: tuple[str, ...], **kw: Any
) -> None:
    """Register MAC, which asked to be, as a client with PROFILE (nothing installs yet)."""
    fleet = open_fleet(kw)
    data = ClientCreate(mac=mac, hostname=hostname, profile=profile, groups=list(groups))
    with session_scope(fleet.engine, write=True) as s:
        row = discovered.approve(s, data, fleet.checks, "cli")
        click.echo(f"client {row.mac} registered with profile {profile}")


COMMANDS = [discovered_group]
