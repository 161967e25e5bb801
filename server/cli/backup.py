"""`bootfleet db backup|restore` and `bootfleet export|import`: the registry, saved and moved."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from server import backup
from server.cli.options import friendly, open_fleet, registry_options, settings_from
from server.errors import InvalidInput
from server.registry.database import session_scope


@click.command("backup")
@registry_options
@click.argument("path", type=click.Path(path_type=Path))
@friendly
def db_backup(path: Path, **kw: Any) -> None:
    """Copy the SQLite registry to PATH (a file, or a folder for a dated name), online:
    the service keeps serving and the copy is one consistent snapshot."""
    settings = settings_from(kw)
    dest = backup.backup(settings.db_url, path)
    click.echo(f"registry backed up to {dest}")
    click.echo(f"keep {settings.data_dir / 'site.key'} safe too: install tokens derive from it")


@click.command("restore")
@registry_options
@click.option(
    "--keep-pending",
    is_flag=True,
    help="Keep the backup's pending/booting/installing reinstalls armed (default: cancel).",
)
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@friendly
def db_restore(path: Path, keep_pending: bool, **kw: Any) -> None:
    """Replace the SQLite registry with backup PATH. Refused while `bootfleet serve` runs on
    the data dir; the replaced database is kept beside it. Reinstalls that were pending in
    the backup are cancelled, each with an event, unless --keep-pending."""
    settings = settings_from(kw)
    done = backup.restore(settings.db_url, settings.data_dir, path, keep_pending=keep_pending)
    if done.kept:
        click.echo(f"previous registry kept as {done.kept}")
    click.echo(f"registry restored from {path} (backup of {done.taken_at})")
    for mac in done.cancelled:
        click.echo(f"{mac}: reinstall cancelled, not re-armed (--keep-pending keeps it)")
    for mac in done.armed:
        click.echo(f"{mac}: reinstall still armed: it installs at its next network boot")


@click.command("export")
@registry_options
@click.argument("path", required=False, type=click.Path(dir_okay=False, path_type=Path))
@friendly
def export(path: Path | None, **kw: Any) -> None:
    """Write profiles, groups and clients as JSON to PATH (default: standard output).
    Admin tokens, install history, events and states are not exported."""
    fleet = open_fleet(kw)
    try:
        with session_scope(fleet.engine) as s:
            data = backup.export(s)
    finally:
        fleet.engine.dispose()
    if path is None:
        backup.dump(data, sys.stdout)
        return
    tmp = path.with_name(f".{path.name}.partial")
    with open(tmp, "w", encoding="utf-8") as out:
        backup.dump(data, out)
    tmp.replace(path)
    n = {k: len(data[k]) for k in ("profiles", "groups", "clients")}
    click.echo(f"exported {n['profiles']} profiles, {n['groups']} groups, {n['clients']} clients")


@click.command("import")
@registry_options
@click.argument("path", type=click.File("r", encoding="utf-8"))
@friendly
def import_(path: Any, **kw: Any) -> None:
    """Create the profiles, groups and clients of an export (PATH, or - for standard input).
    All or nothing; an existing name or MAC stops it."""
    try:
        data = json.load(path)
    except json.JSONDecodeError as exc:
        raise InvalidInput("file", f"not JSON: {exc}") from None
    fleet = open_fleet(kw)
    try:
        with session_scope(fleet.engine, write=True) as s:
            n = backup.import_(s, data, fleet.checks, "cli")
    finally:
        fleet.engine.dispose()
    click.echo(f"imported {n['profiles']} profiles, {n['groups']} groups, {n['clients']} clients")


DB_COMMANDS = [db_backup, db_restore]
COMMANDS = [export, import_]
