"""`bootfleet hook add|list|remove`: webhooks for lifecycle events."""

from __future__ import annotations

from typing import Any

import click

from server.cli.options import friendly, open_fleet, registry_options
from server.cli.table import emit
from server.models import HOOK_EVENTS, HookCreate
from server.registry import hooks
from server.registry.database import session_scope


@click.group("hook")
def hook_group() -> None:
    """Webhooks: a signed JSON POST for each lifecycle event."""


@hook_group.command("add")
@registry_options
@click.argument("url")
@click.option(
    "--events",
    default=",".join(HOOK_EVENTS),
    show_default=True,
    help="Comma-separated events to send.",
)
@friendly
def hook_add(url: str, events: str, **kw: Any) -> None:
    """Send lifecycle events to URL. Prints the hook's id and its signing secret (shown once:
    the receiver checks X-Bootfleet-Signature with it)."""
    data = HookCreate(url=url, events=[e.strip() for e in events.split(",") if e.strip()])
    fleet = open_fleet(kw)
    with session_scope(fleet.engine, write=True) as s:
        hook = hooks.add(s, data)
        hook_id, secret = hook.id, hook.secret
    click.echo(f"hook {hook_id}: {data.url} ({','.join(data.events)})")
    click.echo(f"secret: {secret}")


@hook_group.command("list")
@registry_options
@click.option("--json", "as_json", is_flag=True, help="JSON output.")
@friendly
def hook_list(as_json: bool, **kw: Any) -> None:
    """The hooks, with how many deliveries wait for a retry and how many were given up."""
    fleet = open_fleet(kw)
    with session_scope(fleet.engine) as s:
        rows = hooks.list_hooks(s)
    emit(rows, ["id", "url", "events", "waiting", "undeliverable"], as_json)


@hook_group.command("remove")
@registry_options
@click.argument("hook_id", type=int)
@friendly
def hook_remove(hook_id: int, **kw: Any) -> None:
    """Delete a hook and the deliveries it is still owed."""
    fleet = open_fleet(kw)
    with session_scope(fleet.engine, write=True) as s:
        hooks.remove(s, hook_id)
    click.echo(f"hook {hook_id} removed")


COMMANDS = [hook_group]
