"""CSV import: all rows or none, the first bad row named, groups and profiles linked."""

from __future__ import annotations

import pytest
from sqlmodel import select

from server.errors import InvalidInput
from server.fleet import Fleet
from server.models import Client, GroupUpdate, ProfileCreate
from server.registry import clients, groups, profiles
from server.registry.database import session_scope


@pytest.fixture
def reg(fleet: Fleet) -> Fleet:
    with session_scope(fleet.engine, write=True) as s:
        profiles.create(s, ProfileCreate(name="debian12", kernel="debian/linux"), fleet.checks)
    return fleet


def run(fleet: Fleet, text: str) -> int:
    with session_scope(fleet.engine, write=True) as s:
        return clients.import_csv(s, text, fleet.checks, "test")


def macs(fleet: Fleet) -> list[str]:
    with session_scope(fleet.engine) as s:
        return sorted(s.exec(select(Client.mac)))


def test_import_creates_clients_with_profile_and_groups(reg: Fleet) -> None:
    text = "mac,hostname,profile,groups\n52:54:00:00:00:01,PC1,debian12,lab;b\n\n# note\n"
    text += "52-54-00-00-00-02,,,\n"
    assert run(reg, text) == 2
    with session_scope(reg.engine) as s:
        one = clients.public(s, clients.get(s, "52:54:00:00:00:01"))
        two = clients.public(s, clients.get(s, "52:54:00:00:00:02"))
        assert groups.public(s, groups.get(s, "lab")).members == 1
    assert (one.hostname, one.profile, one.groups, one.state) == (
        "pc1",
        "debian12",
        ["b", "lab"],
        "idle",
    )
    assert (two.hostname, two.profile, two.groups, two.variables) == (None, None, [], {})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "52:54:00:00:00:01\nnot-a-mac\n",
            "row 2: mac: not a MAC address: 'not-a-mac'",
        ),
        ("52:54:00:00:00:01\n52:54:00:00:00:01\n", "row 2: MAC 52:54:00:00:00:01 appears twice"),
        ("52:54:00:00:00:01,,nosuch\n", "row 1: no profile named 'nosuch'"),
        (
            "52:54:00:00:00:01\n52:54:00:00:00:09\n",
            "row 2: client 52:54:00:00:00:09 exists already",
        ),
        ("52:54:00:00:00:01,a,b,c,d\n", "row 1: expected at most 4 columns"),
        ("52:54:00:00:00:01,bad_host!\n", "row 1: hostname: not a valid host name"),
    ],
)
def test_first_bad_row_is_named_and_nothing_is_imported(
    reg: Fleet, text: str, message: str
) -> None:
    run(reg, "52:54:00:00:00:09\n")
    with pytest.raises(InvalidInput) as err:
        run(reg, text)
    assert err.value.message.startswith(message), err.value.message
    assert macs(reg) == ["52:54:00:00:00:09"]


def test_rows_are_checked_in_file_order(reg: Fleet) -> None:
    run(reg, "52:54:00:00:00:09\n")
    with pytest.raises(InvalidInput) as err:
        run(reg, "52:54:00:00:00:09\nbroken\n")
    assert err.value.message == "row 1: client 52:54:00:00:00:09 exists already"


def test_existing_group_keeps_its_variables(reg: Fleet) -> None:
    run(reg, "52:54:00:00:00:01,,,lab\n")
    with session_scope(reg.engine, write=True) as s:
        groups.update(s, "lab", GroupUpdate(variables={"x": 1}))
    assert run(reg, "52:54:00:00:00:02,,debian12,lab\n") == 1
    with session_scope(reg.engine) as s:
        assert groups.public(s, groups.get(s, "lab")).members == 2
        assert groups.public(s, groups.get(s, "lab")).variables == {"x": 1}


def test_a_command_line_is_rendered_once_per_distinct_input(
    reg: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A template that reads neither MAC nor host name renders once for the whole file."""
    rendered: list[str] = []
    original = reg.checks.booter.renderer.render_cmdline

    def counting(template: str, context: dict) -> str:
        rendered.append(context["mac"])
        return original(template, context)

    monkeypatch.setattr(reg.checks.booter.renderer, "render_cmdline", counting)
    rows = "".join(f"52:54:00:00:01:{n:02x},pc{n},debian12\n" for n in range(50))
    assert run(reg, rows) == 50
    assert rendered == ["52:54:00:00:01:00"]


def test_a_row_whose_values_break_the_command_line_is_still_named(reg: Fleet) -> None:
    """The remembered outcome is keyed on the values the template reads (here the host name)."""
    with session_scope(reg.engine, write=True) as s:
        profiles.create(
            s,
            ProfileCreate(
                name="picky",
                kernel="debian/linux",
                cmdline="{% if hostname == 'pc2' %}${x}{% endif %}quiet",
            ),
            reg.checks,
        )
    rows = "52:54:00:00:02:01,pc1,picky\n52:54:00:00:02:03,pc3,picky\n52:54:00:00:02:02,pc2,picky\n"
    with pytest.raises(InvalidInput) as err:
        run(reg, rows)
    assert err.value.message.startswith("row 3:"), err.value.message
    assert macs(reg) == []
