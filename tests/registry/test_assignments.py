"""What a client's profile assignment installs, checked (server/registry/assignments.py)."""

from __future__ import annotations

import pytest

from server.errors import InvalidInput
from server.fleet import Fleet
from server.models import GroupCreate, Profile, ProfileUpdate
from server.registry import assignments, clients, groups, installs, profiles
from server.registry.database import session_scope


def test_layers_in_order_and_merged() -> None:
    profile = Profile(name="p", kernel="k", variables={"a": 1, "b": 1, "c": 1})
    layers = assignments.layered(profile, {"zz": {"c": 3}, "aa": {"b": 2, "c": 2}}, {"a": 4})
    assert [source for source, _ in layers] == ["profile p", "group aa", "group zz", "client"]
    assert assignments.merge(layers) == {"a": 4, "b": 2, "c": 3}
    assert assignments.layered(None, {}, {"a": 4}) == [("client", {"a": 4})]


def test_the_checked_snapshot_is_what_a_reinstall_keeps(fleet: Fleet, registered: str) -> None:
    with session_scope(fleet.engine, write=True) as s:
        client = clients.get(s, registered)
        checked = assignments.check(s, client, fleet.checks)
        install = installs.reinstall(s, client, fleet.policy, fleet.checks, "test")
        assert checked == install.profile_snapshot
        assert checked["cmdline"] == "auto=true priority=critical hostname={{ hostname }}"


def test_a_client_without_a_profile_has_nothing_to_check(fleet: Fleet) -> None:
    with session_scope(fleet.engine, write=True) as s:
        clients.import_csv(s, "52:54:00:00:0e:01,,,\n", fleet.checks, "test")
        assert assignments.check(s, clients.get(s, "52:54:00:00:0e:01"), fleet.checks) is None


def test_variables_by_client_in_batches(fleet: Fleet) -> None:
    rows = "".join(f"52:54:00:00:{i >> 8:02x}:{i & 255:02x},,,g{i % 3};h\n" for i in range(7))
    with session_scope(fleet.engine, write=True) as s:
        for name in ("g0", "g1", "g2", "h"):
            groups.create(s, GroupCreate(name=name, variables={"from": name, name: 1}))
        clients.import_csv(s, rows, fleet.checks, "test")
        ids = [clients.get(s, f"52:54:00:00:00:{i:02x}").id or 0 for i in range(7)]
        batched = groups.variables_by_client(s, ids, batch=2)
        assert batched == {cid: groups.variables_for(s, cid) for cid in ids}
        assert batched[ids[1]] == {"g1": {"from": "g1", "g1": 1}, "h": {"from": "h", "h": 1}}


def test_profile_change_names_the_one_client_it_breaks(fleet: Fleet, registered: str) -> None:
    """1,200 users: the group variables come in batches; one client's own variable breaks."""
    rows = "".join(
        f"52:54:01:00:{i >> 8:02x}:{i & 255:02x},pc{i},debian12,lab\n" for i in range(1200)
    )
    bad = "52:54:01:00:03:e7"  # the 1000th
    with session_scope(fleet.engine, write=True) as s:
        clients.import_csv(s, rows, fleet.checks, "test")
        clients.get(s, bad).variables = {"x": "a #b"}
    with session_scope(fleet.engine, write=True) as s:
        change = ProfileUpdate(cmdline="auto=true x={{ x }}", variables={"x": "1"})
        with pytest.raises(InvalidInput, match=f"client {bad}: '#b'") as caught:
            profiles.update(s, "debian12", change, fleet.checks)
        assert caught.value.field == "cmdline"
