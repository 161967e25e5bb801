"""`bootfleet profile|client|group|reinstall|cancel|events|import`: the registry by hand."""

from __future__ import annotations

import json
from typing import Any

import click

from server.cli.options import friendly, open_fleet, registry_options
from server.cli.table import emit, emit_one
from server.errors import InvalidInput
from server.models import (
    BATCH_MAX,
    ClientCreate,
    ClientUpdate,
    EventPublic,
    GroupCreate,
    ProfileCreate,
    ProfilePublic,
    ProfileUpdate,
    WaveCreate,
)
from server.registry import bulk, clients, events, groups, installs, profiles, wakes, waves
from server.registry.database import session_scope

json_flag = click.option("--json", "as_json", is_flag=True, help="JSON output.")
var_option = click.option(
    "--var",
    "variables",
    multiple=True,
    metavar="NAME=VALUE",
    help="A variable (repeatable); VALUE is parsed as JSON when it can be.",
)


def parse_vars(pairs: tuple[str, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep:
            raise InvalidInput("--var", f"expected NAME=VALUE, got {pair!r}")
        try:
            out[name.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[name.strip()] = value
    return out


# --- profiles ---------------------------------------------------------------------------------


@click.group("profile")
def profile_group() -> None:
    """Install profiles."""


@profile_group.command("list")
@registry_options
@json_flag
@friendly
def profile_list(as_json: bool, **kw: Any) -> None:
    fleet = open_fleet(kw)
    with session_scope(fleet.engine) as s:
        rows = [ProfilePublic.model_validate(p, from_attributes=True) for p in profiles.list_all(s)]
    emit(rows, ["name", "kernel", "initrd", "answer_template"], as_json)


@profile_group.command("show")
@registry_options
@click.argument("name")
@json_flag
@friendly
def profile_show(name: str, as_json: bool, **kw: Any) -> None:
    fleet = open_fleet(kw)
    with session_scope(fleet.engine) as s:
        emit_one(ProfilePublic.model_validate(profiles.get(s, name), from_attributes=True), as_json)


@profile_group.command("create")
@registry_options
@click.argument("name")
@click.option("--kernel", required=True, help="Path under the images dir, or a URL.")
@click.option("--initrd", multiple=True, help="Path or URL (repeatable, in order).")
@click.option("--cmdline", default="", help="Kernel command line (Jinja2, sandboxed).")
@click.option("--answer-template", help="Answer-file template (bootfleet templates list).")
@var_option
@friendly
def profile_create(
    name: str,
    kernel: str,
    initrd: tuple[str, ...],
    cmdline: str,
    answer_template: str | None,
    variables: tuple[str, ...],
    **kw: Any,
) -> None:
    fleet = open_fleet(kw)
    data = ProfileCreate(
        name=name,
        kernel=kernel,
        initrd=list(initrd),
        cmdline=cmdline,
        answer_template=answer_template,
        variables=parse_vars(variables),
    )
    with session_scope(fleet.engine, write=True) as s:
        profiles.create(s, data, fleet.checks)
    click.echo(f"profile {name} created")


@profile_group.command("update")
@registry_options
@click.argument("name")
@click.option("--kernel")
@click.option("--initrd", multiple=True)
@click.option("--cmdline")
@click.option("--answer-template")
@var_option
@friendly
def profile_update(
    name: str,
    kernel: str | None,
    initrd: tuple[str, ...],
    cmdline: str | None,
    answer_template: str | None,
    variables: tuple[str, ...],
    **kw: Any,
) -> None:
    fleet = open_fleet(kw)
    fields: dict[str, Any] = {
        "kernel": kernel,
        "cmdline": cmdline,
        "answer_template": answer_template,
    }
    fields = {k: v for k, v in fields.items() if v is not None}
    if initrd:
        fields["initrd"] = list(initrd)
    if variables:
        fields["variables"] = parse_vars(variables)
    with session_scope(fleet.engine, write=True) as s:
        profiles.update(s, name, ProfileUpdate(**fields), fleet.checks)
    click.echo(f"profile {name} updated")


@profile_group.command("delete")
@registry_options
@click.argument("name")
@friendly
def profile_delete(name: str, **kw: Any) -> None:
    fleet = open_fleet(kw)
    with session_scope(fleet.engine, write=True) as s:
        profiles.delete(s, name)
    click.echo(f"profile {name} deleted")


# --- clients ----------------------------------------------------------------------------------


@click.group("client")
def client_group() -> None:
    """Client machines, by MAC."""


@client_group.command("list")
@registry_options
@click.option("--state")
@click.option("--profile")
@click.option("--group")
@click.option("--search", "q", help="Part of a MAC or host name.")
@click.option("--limit", type=int, default=100, show_default=True)
@json_flag
@friendly
def client_list(
    state: str | None,
    profile: str | None,
    group: str | None,
    q: str | None,
    limit: int,
    as_json: bool,
    **kw: Any,
) -> None:
    fleet = open_fleet(kw)
    with session_scope(fleet.engine) as s:
        page = clients.list_page(s, state=state, profile=profile, group=group, q=q, limit=limit)
    emit(page.items, ["mac", "hostname", "profile", "groups", "state", "install.progress"], as_json)
    if not as_json and page.next is not None:
        click.echo(f"... {page.total} in all; use --limit or filters to see more")


@client_group.command("show")
@registry_options
@click.argument("mac")
@json_flag
@friendly
def client_show(mac: str, as_json: bool, **kw: Any) -> None:
    fleet = open_fleet(kw)
    with session_scope(fleet.engine) as s:
        emit_one(clients.public(s, clients.get(s, mac)), as_json)


@client_group.command("add")
@registry_options
@click.argument("mac")
@click.option("--hostname")
@click.option("--profile")
@click.option("--group", "group_names", multiple=True)
@var_option
@friendly
def client_add(
    mac: str,
    hostname: str | None,
    profile: str | None,
    group_names: tuple[str, ...],
    variables: tuple[str, ...],
    **kw: Any,
) -> None:
    fleet = open_fleet(kw)
    data = ClientCreate(
        mac=mac,
        hostname=hostname,
        profile=profile,
        groups=list(group_names),
        variables=parse_vars(variables),
    )
    with session_scope(fleet.engine, write=True) as s:
        clients.create(s, data, fleet.checks, "cli")
    click.echo(f"client {data.mac} added")


@client_group.command("update")
@registry_options
@click.argument("mac")
@click.option("--hostname")
@click.option("--profile")
@click.option("--group", "group_names", multiple=True, help="Replaces the client's groups.")
@var_option
@friendly
def client_update(
    mac: str,
    hostname: str | None,
    profile: str | None,
    group_names: tuple[str, ...],
    variables: tuple[str, ...],
    **kw: Any,
) -> None:
    fleet = open_fleet(kw)
    fields: dict[str, Any] = {
        k: v for k, v in {"hostname": hostname, "profile": profile}.items() if v is not None
    }
    if group_names:
        fields["groups"] = list(group_names)
    if variables:
        fields["variables"] = parse_vars(variables)
    with session_scope(fleet.engine, write=True) as s:
        row = clients.update(s, mac, ClientUpdate(**fields), fleet.checks, "cli")
    click.echo(f"client {row.mac} updated")


@client_group.command("delete")
@registry_options
@click.argument("mac")
@friendly
def client_delete(mac: str, **kw: Any) -> None:
    fleet = open_fleet(kw)
    with session_scope(fleet.engine, write=True) as s:
        row = clients.delete(s, mac, "cli")
    click.echo(f"client {row.mac} deleted")


wake_flag = click.option(
    "--wake", is_flag=True, help="Also send a Wake-on-LAN packet to each machine."
)


@click.command("reinstall")
@registry_options
@click.argument("macs", nargs=-1, required=True)
@wake_flag
@friendly
def reinstall(macs: tuple[str, ...], wake: bool, **kw: Any) -> None:
    """Reinstall these machines at their next network boot."""
    fleet = open_fleet(kw)
    for mac in macs:
        with session_scope(fleet.engine, write=True) as s:
            client = clients.get(s, mac)
            install = installs.reinstall(s, client, fleet.policy, fleet.checks, "cli")
        click.echo(f"{client.mac}: pending (install {install.id})")
        if wake:
            for woken, what in wakes.wake(fleet.engine, fleet.waker, [client.mac], "cli"):
                click.echo(f"{woken}: {what}")


@click.command("cancel")
@registry_options
@click.argument("macs", nargs=-1, required=True)
@friendly
def cancel(macs: tuple[str, ...], **kw: Any) -> None:
    """Cancel requested or running reinstalls."""
    fleet = open_fleet(kw)
    for mac in macs:
        with session_scope(fleet.engine, write=True) as s:
            client = clients.get(s, mac)
            installs.cancel(s, client, "cli")
        click.echo(f"{client.mac}: idle")


@click.command("events")
@registry_options
@click.argument("mac")
@click.option("--limit", type=int, default=50, show_default=True)
@json_flag
@friendly
def client_events(mac: str, limit: int, as_json: bool, **kw: Any) -> None:
    """A machine's events, newest first."""
    fleet = open_fleet(kw)
    with session_scope(fleet.engine) as s:
        rows = [
            EventPublic.model_validate(e, from_attributes=True)
            for e in events.list_events(s, clients.get(s, mac).mac, limit)
        ]
    emit(rows, ["at", "kind", "source", "detail"], as_json)


@client_group.command("import")
@registry_options
@click.argument("csv_file", type=click.File("r", encoding="utf-8-sig"))
@friendly
def import_csv(csv_file: Any, **kw: Any) -> None:
    """Import clients from CSV mac,hostname,profile,groups (all rows or none)."""
    fleet = open_fleet(kw)
    with session_scope(fleet.engine, write=True) as s:
        count = clients.import_csv(s, csv_file.read(), fleet.checks, "cli")
    click.echo(f"imported {count} clients")


# --- groups -----------------------------------------------------------------------------------


@click.group("group")
def group_group() -> None:
    """Groups of clients."""


@group_group.command("list")
@registry_options
@json_flag
@friendly
def group_list(as_json: bool, **kw: Any) -> None:
    fleet = open_fleet(kw)
    with session_scope(fleet.engine) as s:
        rows = [groups.public(s, g) for g in groups.list_all(s)]
    emit(rows, ["name", "members", "description", "variables"], as_json)


@group_group.command("create")
@registry_options
@click.argument("name")
@click.option("--description", default="")
@click.option("--wake-address", help="Wake-on-LAN to this IPv4 address (a routed broadcast).")
@var_option
@friendly
def group_create(
    name: str, description: str, wake_address: str | None, variables: tuple[str, ...], **kw: Any
) -> None:
    fleet = open_fleet(kw)
    data = GroupCreate(
        name=name,
        description=description,
        variables=parse_vars(variables),
        wake_address=wake_address,
    )
    with session_scope(fleet.engine, write=True) as s:
        groups.create(s, data)
    click.echo(f"group {name} created")


@group_group.command("delete")
@registry_options
@click.argument("name")
@friendly
def group_delete(name: str, **kw: Any) -> None:
    fleet = open_fleet(kw)
    with session_scope(fleet.engine, write=True) as s:
        groups.delete(s, name)
    click.echo(f"group {name} deleted")


@group_group.command("reinstall")
@registry_options
@click.argument("name")
@click.option(
    "--at",
    "at",
    help="Start then (ISO 8601, e.g. 2026-12-01T22:00; local time "
    "unless it names a zone): a wave the running server carries out.",
)
@click.option(
    "--batch",
    type=click.IntRange(1, BATCH_MAX),
    help="At most this many in flight at once (a wave; default 10 with --at).",
)
@wake_flag
@friendly
def group_reinstall(name: str, at: str | None, batch: int | None, wake: bool, **kw: Any) -> None:
    """Reinstall every member of the group that is not already being reinstalled: now, or
    as a wave (--at and/or --batch) that `bootfleet serve` carries out."""
    fleet = open_fleet(kw)
    if at is not None or batch is not None:
        data = WaveCreate(at=waves.parse_start(at, "--at"), batch=batch or 10, wake=wake)
        with session_scope(fleet.engine, write=True) as s:
            wave = waves.public(s, waves.schedule(s, name, data, "cli"))
        click.echo(
            f"wave {wave.id}: {wave.waiting} members of {name} from "
            f"{wave.start_at.isoformat(timespec='minutes')}, {wave.batch} at a time"
            + (", each woken at its turn" if wake else "")
        )
        return
    with session_scope(fleet.engine) as s:
        ids = groups.member_ids(s, name)
    done = bulk.reinstall(
        fleet.engine, ids, fleet.policy, fleet.checks, "cli", fleet.waker if wake else None
    )
    for mac, why in done.outcomes:
        click.echo(f"{mac}: pending" if why is None else f"{mac}: skipped ({why})")
    for mac, what in done.woken:
        click.echo(f"{mac}: {what}")


COMMANDS = [profile_group, client_group, group_group, reinstall, cancel, client_events]
