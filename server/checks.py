"""Checks: what assigning a profile to a client must pass before the registry stores it.

The answer file's variables (the catalog) and the installer's kernel command line, which the
booter renders as it would at the next network boot. The registry runs them when a profile is
assigned (API, web UI, CLI, CSV, backup import), when a profile changes (for its clients) and
when a reinstall is requested, so a mistake is an HTTP 400 naming the field then, not a
machine that quietly boots from its disk later.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from server.catalog import Catalog

if TYPE_CHECKING:  # the booter reads the registry, which takes Checks
    from server.booter import Booter, Machine


@dataclass(frozen=True)
class Checks:
    catalog: Catalog
    booter: Booter

    def variables(self, template: str | None, merged: dict[str, Any]) -> dict[str, Any]:
        """What an install snapshots of the merged variables: all of them without an answer
        file, else the ones its template declares, validated (Catalog.check)."""
        return merged if template is None else self.catalog.check(template, merged)

    def cmdline(
        self, client: Machine, snapshot: Mapping[str, Any], passed: set[Hashable] | None = None
    ) -> None:
        """InvalidInput on `cmdline` unless the installer for `snapshot` renders for `client`
        (`passed`: what already passed in this batch, see Booter.check_cmdline)."""
        self.booter.check_cmdline(client, snapshot, passed)

    def cmdline_template(self, template: str) -> None:
        """InvalidInput on `cmdline` unless a profile's command line compiles."""
        self.booter.renderer.check_cmdline_template(template)
