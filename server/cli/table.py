"""Plain-text tables and JSON output for the `bootfleet` command."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import click
from pydantic import BaseModel


def emit(rows: Sequence[BaseModel], columns: Sequence[str], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps([json.loads(r.model_dump_json()) for r in rows], indent=2))
        return
    data = [[_cell(json.loads(r.model_dump_json()), c) for c in columns] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in data]) for i, c in enumerate(columns)]
    click.echo("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
    for row in data:
        click.echo("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())


def emit_one(row: BaseModel, as_json: bool) -> None:
    data = json.loads(row.model_dump_json())
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    width = max(len(k) for k in data)
    for key, value in data.items():
        click.echo(f"{key.ljust(width)}  {_text(value)}")


def _cell(data: dict[str, Any], column: str) -> str:
    value: Any = data
    for part in column.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return _text(value)


def _text(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, list):
        return ",".join(_text(v) for v in value) or "-"
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True) if value else "-"
    return str(value)
