"""`bootfleet wave list|show|pause|resume|cancel`: scheduled group reinstalls by hand.

A wave is made with `bootfleet group reinstall NAME --at ... --batch N [--wake]`; the
running `bootfleet serve` carries it out.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click
from sqlmodel import Session

from server.cli.options import friendly, open_fleet, registry_options
from server.cli.table import emit, emit_one
from server.models import Wave, WavePublic
from server.registry import waves
from server.registry.database import session_scope

COLUMNS = [
    f for f in WavePublic.model_fields if f not in ("created_at", "created_by", "finished_at")
]


@click.group("wave")
def wave_group() -> None:
    """Scheduled, throttled group reinstalls."""


@wave_group.command("list")
@registry_options
@click.option("--json", "as_json", is_flag=True, help="JSON output.")
@friendly
def wave_list(as_json: bool, **kw: Any) -> None:
    """Waves, newest first, with how many members wait, run, are done, failed or skipped."""
    fleet = open_fleet(kw)
    with session_scope(fleet.engine) as s:
        rows = waves.list_waves(s)
    emit(rows, COLUMNS, as_json)


@wave_group.command("show")
@registry_options
@click.argument("wave_id", type=int)
@click.option("--json", "as_json", is_flag=True, help="JSON output.")
@friendly
def wave_show(wave_id: int, as_json: bool, **kw: Any) -> None:
    """One wave, then each member's turn."""
    fleet = open_fleet(kw)
    with session_scope(fleet.engine) as s:
        emit_one(waves.public(s, waves.get(s, wave_id)), as_json)
        if not as_json:
            for member, client in waves.members(s, wave_id):
                why = f" ({member.reason})" if member.reason else ""
                click.echo(f"  {client.mac}  {member.state}{why}")


def _change(name: str, doc: str, act: Callable[[Session, int], Wave]) -> click.Command:
    @registry_options
    @click.argument("wave_id", type=int)
    @friendly
    def command(wave_id: int, **kw: Any) -> None:
        fleet = open_fleet(kw)
        with session_scope(fleet.engine, write=True) as s:
            wave = act(s, wave_id)
            click.echo(f"wave {wave.id}: {wave.state}")

    command.__doc__ = doc
    return wave_group.command(name)(command)


_change("pause", "Start no new turns; members in flight finish.", waves.pause)
_change("resume", "Resume a paused wave.", waves.resume)
_change(
    "cancel",
    "No new turns; reinstalls not yet booted are cancelled, those installing finish.",
    lambda s, wave_id: waves.cancel(s, wave_id, "cli"),
)

COMMANDS = [wave_group]
