"""Clients: one machine each, known by its canonical MAC.

create, update, delete and import_csv record their own events, in the caller's transaction,
naming the `actor` (a peer address, a web user, "cli"): whichever transport asks, the log
says the same."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple

from pydantic import ValidationError
from sqlalchemy import func, insert, or_
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from server.checks import Checks
from server.errors import Conflict, InvalidInput, NotFound, describe
from server.lifecycle import State
from server.macaddr import mac_fragment, normalize_mac
from server.models import (
    ROW_ID_MAX,
    Client,
    ClientCreate,
    ClientGroupLink,
    ClientPublic,
    ClientUpdate,
    Install,
    InstallPublic,
    Profile,
    construct_checked,
    keep_redacted,
    utcnow,
)
from server.registry import assignments, events, groups, profiles

MAX_PAGE = 1000


def get(session: Session, mac: str) -> Client:
    mac = normalize_mac(mac)
    row = session.exec(select(Client).where(Client.mac == mac)).first()
    if row is None:
        raise NotFound(f"no client with MAC {mac}")
    return row


def find(session: Session, mac: str) -> Client | None:
    return session.exec(select(Client).where(Client.mac == mac)).first()


def create(session: Session, data: ClientCreate, checks: Checks, actor: str | None) -> Client:
    if find(session, data.mac) is not None:
        raise Conflict(f"client {data.mac} exists already")
    profile = profiles.get(session, data.profile) if data.profile else None
    row = Client(
        mac=data.mac,
        hostname=data.hostname,
        profile_id=profile.id if profile else None,
        variables=data.variables,
    )
    session.add(row)
    try:
        session.flush()  # a concurrent create of this MAC on PostgreSQL fails here
    except IntegrityError:
        raise Conflict(f"client {data.mac} exists already") from None
    groups.set_membership(session, row, data.groups)
    session.flush()
    assignments.check(session, row, checks)  # a missing variable is a 400 now, not later
    events.record(session, row.mac, "registered", f"profile {data.profile or '-'}", actor)
    return row


def update(
    session: Session, mac: str, data: ClientUpdate, checks: Checks, actor: str | None
) -> Client:
    """Apply the fields `data` sets; the event names those whose value changed."""
    row = get(session, mac)
    assert row.id is not None
    changes = data.model_dump(exclude_unset=True)
    changed: list[str] = []
    if "hostname" in changes and changes["hostname"] != row.hostname:
        row.hostname = changes["hostname"]
        changed.append("hostname")
    if "profile" in changes:
        name = changes["profile"]
        profile_id = profiles.get(session, name).id if name else None
        if profile_id != row.profile_id:
            row.profile_id = profile_id
            changed.append("profile")
    if changes.get("variables") is not None:
        variables = keep_redacted(changes["variables"], row.variables)
        if variables != row.variables:
            row.variables = variables
            changed.append("variables")
    wanted = changes.get("groups")
    if (
        wanted is not None
        and sorted(set(wanted)) != groups.names_by_client(session, [row.id])[row.id]
    ):
        groups.set_membership(session, row, wanted)
        changed.append("groups")
    row.updated_at = utcnow()
    row.version += 1
    session.add(row)
    session.flush()
    assignments.check(session, row, checks)
    events.record(session, row.mac, "updated", ", ".join(sorted(changed)) or "no change", actor)
    return row


def delete(session: Session, mac: str, actor: str | None) -> Client:
    """Forget the client; its events stay (and gain this one)."""
    row = get(session, mac)
    events.record(session, row.mac, "deleted", "", actor)
    session.delete(row)
    return row


def owned_install(session: Session, client: Client, install_id: int) -> Install:
    """Install `install_id` if it is one of `client`'s, else NotFound."""
    row = session.get(Install, install_id) if 0 < install_id <= ROW_ID_MAX else None
    if row is None or row.client_id != client.id:
        raise NotFound(f"client {client.mac} has no install {install_id}")
    return row


def count_by_state(session: Session) -> dict[State, int]:
    """How many clients are in each lifecycle state (states with none are left out)."""
    stmt = select(Client.state, func.count()).group_by(col(Client.state))
    return {State(state): int(count) for state, count in session.exec(stmt).all()}


@dataclass(frozen=True)
class Page:
    items: list[ClientPublic]
    total: int
    next: int | None


def list_page(
    session: Session,
    *,
    state: str | None = None,
    profile: str | None = None,
    group: str | None = None,
    q: str | None = None,
    after: int = 0,
    limit: int = 100,
) -> Page:
    """One page of clients in id order, filtered; `next` is the cursor for the next page."""
    limit = max(1, min(limit, MAX_PAGE))
    filters: list[Any] = []
    if state:
        filters.append(Client.state == state)
    if profile:
        filters.append(Client.profile_id == profiles.get(session, profile).id)
    if group:
        gid = groups.get(session, group).id
        members = select(ClientGroupLink.client_id).where(ClientGroupLink.group_id == gid)
        filters.append(col(Client.id).in_(members))
    if q:
        # The one place a search is read, for the API, the web UI and the CLI alike: a host
        # name as typed (any case), a MAC fragment in any spelling (macaddr.mac_fragment).
        text = q.strip().lower()
        fragment = mac_fragment(text)
        found = [col(Client.hostname).like(f"%{text}%")]
        if fragment:
            found.append(col(Client.mac).like(f"%{fragment}%"))
        filters.append(or_(*found))
    total = int(session.exec(select(func.count()).select_from(Client).where(*filters)).one())
    stmt = (
        select(Client)
        .where(col(Client.id) > after, *filters)
        .order_by(col(Client.id))
        .limit(limit + 1)
    )
    rows = list(session.exec(stmt))
    more = len(rows) > limit
    rows = rows[:limit]
    return Page(publics(session, rows), total, rows[-1].id if more and rows else None)


def publics(session: Session, rows: list[Client]) -> list[ClientPublic]:
    """ClientPublic for many rows with three queries in all, not three per row."""
    ids = [r.id for r in rows if r.id is not None]
    group_names = groups.names_by_client(session, ids)
    profile_ids = {r.profile_id for r in rows if r.profile_id is not None}
    names: dict[int | None, str] = {}
    if profile_ids:
        stmt = select(Profile.id, Profile.name).where(col(Profile.id).in_(profile_ids))
        names = {pid: name for pid, name in session.exec(stmt).all()}
    install_ids = [r.install_id for r in rows if r.install_id is not None]
    installs = (
        {i.id: i for i in session.exec(select(Install).where(col(Install.id).in_(install_ids)))}
        if install_ids
        else {}
    )
    return [
        ClientPublic(
            mac=r.mac,
            hostname=r.hostname,
            profile=names.get(r.profile_id) if r.profile_id else None,
            groups=group_names.get(r.id or 0, []),
            variables=r.variables,
            state=r.state,
            version=r.version,
            install=install_public(installs[r.install_id]) if r.install_id in installs else None,
            last_ip=r.last_ip,
            last_arch=r.last_arch,
            last_seen_at=r.last_seen_at,
            created_at=r.created_at,
            updated_at=r.updated_at,
        )
        for r in rows
    ]


def public(session: Session, row: Client) -> ClientPublic:
    return publics(session, [row])[0]


def install_public(row: Install) -> InstallPublic:
    assert row.id is not None
    return InstallPublic(
        id=row.id,
        state=row.state,
        profile=str(row.profile_snapshot.get("profile", "")),
        progress=row.progress,
        message=row.message,
        result=row.result,
        created_at=row.created_at,
        booted_at=row.booted_at,
        updated_at=row.updated_at,
        finished_at=row.finished_at,
        deadline_at=row.deadline_at,
        has_log=bool(row.failure_log),
    )


CSV_FIELDS = ("mac", "hostname", "profile", "groups")


def _csv_rows(text: str) -> Iterator[list[str]]:
    """The CSV's rows; a file the csv module cannot read is InvalidInput naming the row."""
    # newline="": the csv module reads CR, LF and CRLF itself (a bare CR is a line end)
    reader = csv.reader(io.StringIO(text, newline=""))
    while True:
        try:
            yield next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise InvalidInput(f"row {reader.line_num}", f"not CSV: {exc}") from None


def import_csv(session: Session, text: str, checks: Checks, actor: str | None) -> int:
    """Create clients from CSV `mac,hostname,profile,groups` (groups separated by ';' or
    spaces). All rows or none: the first bad row raises InvalidInput naming the row.

    Every row is checked in file order, as `create` would check it (ClientCreate's own
    validators; exists already, unknown profile, and the assignment checks), against registry
    facts read once; then all rows go in with a few bulk INSERTs instead of one ORM round trip
    per row, and their "registered" events with one more."""
    reader = _csv_rows(text)
    existing = set(session.exec(select(Client.mac)))
    found_profiles: dict[str, Profile] = {}
    assigned = assignments.NewClients(session, checks)
    seen: set[str] = set()
    rows: list[tuple[ClientCreate, Profile | None]] = []
    for lineno, fields in enumerate(reader, start=1):
        if not fields or all(not f.strip() for f in fields) or fields[0].lstrip().startswith("#"):
            continue
        if lineno == 1 and fields[0].strip().lower() == "mac":
            continue  # header row
        if len(fields) > len(CSV_FIELDS):
            raise InvalidInput(f"row {lineno}", f"expected at most {len(CSV_FIELDS)} columns")
        fields += [""] * (len(CSV_FIELDS) - len(fields))
        mac, hostname, profile, group_field = (f.strip() for f in fields)
        values = {
            "mac": mac,
            "hostname": hostname or None,
            "profile": profile or None,
            "groups": group_field.replace(";", " ").split(),
        }
        try:
            data = construct_checked(ClientCreate, values)
        except ValueError:  # something is wrong: full validation names it
            try:
                data = ClientCreate.model_validate(values)
            except ValidationError as exc:
                raise InvalidInput(f"row {lineno}", describe(exc).message) from None
        if data.mac in seen:
            raise InvalidInput(f"row {lineno}", f"MAC {data.mac} appears twice in the file")
        seen.add(data.mac)
        try:
            if data.mac in existing:
                raise Conflict(f"client {data.mac} exists already")
            row_profile = None
            if data.profile:
                row_profile = found_profiles.get(data.profile)
                if row_profile is None:
                    row_profile = found_profiles[data.profile] = profiles.get(session, data.profile)
                assigned.checked(
                    _NewClient(data.mac, data.hostname, None), row_profile, data.groups
                )
        except (InvalidInput, NotFound, Conflict) as exc:
            raise InvalidInput(f"row {lineno}", exc.message) from None
        rows.append((data, row_profile))
    try:
        _insert_many(session, rows)
        now = utcnow()
        events.record_many(
            session,
            [
                (data.mac, "registered", f"profile {data.profile or '-'}", actor, now)
                for data, _ in rows
            ],
        )
    except IntegrityError:
        # On PostgreSQL another request registered a MAC (or made a group) of this file
        # after it was checked above; SQLite's write lock rules that out.
        raise Conflict(
            "a client of this file exists already: it was registered while the file was"
            " imported; nothing was imported"
        ) from None
    return len(rows)


class _NewClient(NamedTuple):
    """What the checks see of a CSV row: a Client row costs ~0.3 ms to build."""

    mac: str
    hostname: str | None
    last_arch: str | None


def _insert_many(session: Session, rows: list[tuple[ClientCreate, Profile | None]]) -> None:
    """Insert checked rows and their group links: a few statements per thousand rows."""
    if not rows:
        return
    names = sorted({g for data, _ in rows for g in data.groups})
    group_ids = {g.name: g.id for g in groups.ensure(session, names)}
    values = []
    for data, profile in rows:
        now = utcnow()
        values.append(
            {
                "mac": data.mac,
                "hostname": data.hostname,
                "profile_id": profile.id if profile else None,
                "variables": data.variables,
                "state": State.IDLE,
                "version": 0,
                "created_at": now,
                "updated_at": now,
            }
        )
    # Core executemany, not the ORM: the driver loops in C. This runs inside the caller's
    # write transaction, so the rows with an id above the old maximum are ours; matching
    # them back by MAC keeps that true even on a database that interleaves ids.
    conn = session.connection()
    before = conn.execute(select(func.max(Client.id))).scalar() or 0
    conn.execute(insert(Client.__table__), values)  # type: ignore[attr-defined]
    ours = {data.mac for data, _ in rows}
    ids = {
        mac: cid
        for cid, mac in conn.execute(
            select(col(Client.id), col(Client.mac)).where(col(Client.id) > before)
        )
        if mac in ours
    }
    links = [
        {"client_id": ids[data.mac], "group_id": group_ids[g]}
        for data, _ in rows
        for g in data.groups
    ]
    if links:
        conn.execute(insert(ClientGroupLink.__table__), links)  # type: ignore[attr-defined]
