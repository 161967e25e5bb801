"""What a client's profile assignment installs, checked: the snapshot a reinstall takes.

Variables merge profile defaults, then the client's groups in name order, then the client.
Client create, update and CSV import, a profile's change (for each of its clients) and a
reinstall all run the same Checks on the snapshot, so what passed here is what boots.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from sqlmodel import Session, select

from server.checks import Checks
from server.errors import InvalidInput
from server.models import Client, ClientGroup, Profile
from server.registry import groups

if TYPE_CHECKING:
    from server.booter import Machine


Layer = tuple[str, dict[str, Any]]  # where the values come from, and the values


def layered(
    profile: Profile | None, group_vars: Mapping[str, dict[str, Any]], client_vars: dict[str, Any]
) -> list[Layer]:
    """The layers of a client's variables, lowest first: the profile's defaults, then each
    group in name order (a later group wins a clash), then the client itself."""
    layers: list[Layer] = [(f"profile {profile.name}", profile.variables)] if profile else []
    layers += [(f"group {name}", group_vars[name]) for name in sorted(group_vars)]
    layers.append(("client", client_vars))
    return layers


def merge(layers: Iterable[Layer]) -> dict[str, Any]:
    """The values of `layers`, each overriding those below it."""
    merged: dict[str, Any] = {}
    for _source, values in layers:
        merged.update(values)
    return merged


def client_layers(session: Session, client: Client, profile: Profile | None) -> list[Layer]:
    assert client.id is not None
    return layered(profile, groups.variables_for(session, client.id), client.variables)


def merged_variables(session: Session, client: Client, profile: Profile) -> dict[str, Any]:
    return merge(client_layers(session, client, profile))


def checked(
    client: Machine, profile: Profile, merged: dict[str, Any], checks: Checks
) -> dict[str, Any]:
    """The install snapshot of `profile` for `client` with `merged` variables, after the
    checks: InvalidInput naming the variable or `cmdline` if it would not install."""
    return _installs(client, profile, checks.variables(profile.answer_template, merged), checks)


def _installs(
    client: Machine,
    profile: Profile,
    variables: dict[str, Any],
    checks: Checks,
    passed: set[Hashable] | None = None,
) -> dict[str, Any]:
    snap = snapshot(client, profile, variables)
    checks.cmdline(client, snap, passed)
    return snap


class NewClients:
    """`checked` for many new clients without variables of their own (a CSV import): the
    variables are checked once per profile and set of groups, and a command line is rendered
    once per distinct input (Booter.check_cmdline's `passed`)."""

    def __init__(self, session: Session, checks: Checks) -> None:
        self.session = session
        self.checks = checks
        self._groups: dict[str, dict[str, Any]] = {}
        self._variables: dict[tuple[str, tuple[str, ...]], dict[str, Any] | InvalidInput] = {}
        self._passed: set[Hashable] = set()

    def checked(self, client: Machine, profile: Profile, group_names: list[str]) -> dict[str, Any]:
        key = (profile.name, tuple(sorted(group_names)))
        variables = self._variables.get(key)
        if variables is None:
            layers = layered(profile, {n: self._group(n) for n in group_names}, {})
            try:
                variables = self.checks.variables(profile.answer_template, merge(layers))
            except InvalidInput as exc:
                variables = exc
            self._variables[key] = variables
        if isinstance(variables, InvalidInput):
            raise InvalidInput(variables.field, variables.detail)
        return _installs(client, profile, variables, self.checks, self._passed)

    def _group(self, name: str) -> dict[str, Any]:
        """A group's variables; none for a group the import is about to create."""
        if name not in self._groups:
            row = self.session.exec(select(ClientGroup).where(ClientGroup.name == name)).first()
            self._groups[name] = dict(row.variables) if row is not None else {}
        return self._groups[name]


def snapshot(client: Machine, profile: Profile, variables: dict[str, Any]) -> dict[str, Any]:
    """What an install keeps of its profile, with variables the catalog has checked."""
    return {
        "profile": profile.name,
        "kernel": profile.kernel,
        "initrd": list(profile.initrd),
        "cmdline": profile.cmdline,
        "answer_template": profile.answer_template,
        "variables": variables,
        "hostname": client.hostname,
    }


def check(session: Session, client: Client, checks: Checks) -> dict[str, Any] | None:
    """The snapshot a reinstall of `client` would take now, checked (None: no profile)."""
    if client.profile_id is None:
        return None
    profile = session.get(Profile, client.profile_id)
    assert profile is not None
    return checked(client, profile, merged_variables(session, client, profile), checks)


def check_users(session: Session, profile: Profile, checks: Checks) -> None:
    """Every client of `profile` still passes with the profile as it is now; the first that
    does not is an InvalidInput on the same field, naming the client."""
    users = list(session.exec(select(Client).where(Client.profile_id == profile.id)))
    layers = groups.variables_by_client(session, [c.id for c in users if c.id is not None])
    for client in users:
        merged = merge(layered(profile, layers.get(client.id or 0, {}), client.variables))
        try:
            checked(client, profile, merged, checks)
        except InvalidInput as exc:
            raise InvalidInput(exc.field, f"client {client.mac}: {exc.detail}") from None
