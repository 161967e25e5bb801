"""Answer-file templates known to this server (minimal version; the full catalog with typed
variable declarations replaces it)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from server.errors import InvalidInput


class Catalog:
    def __init__(self, templates_dir: Path) -> None:
        self.dir = templates_dir / "answers"

    def names(self) -> list[str]:
        if not self.dir.is_dir():
            return []
        return sorted(p.name.removesuffix(".j2") for p in self.dir.glob("*.j2"))

    def exists(self, name: str) -> bool:
        return name in self.names()

    def describe(self) -> list[dict[str, object]]:
        return [{"name": n, "variables": []} for n in self.names()]

    def check(self, name: str, variables: Mapping[str, object]) -> dict[str, object]:
        if not self.exists(name):
            raise InvalidInput("answer_template", f"no such template {name!r}")
        return dict(variables)
