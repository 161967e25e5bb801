"""What the `bootfleet` commands share: the registry options (--data-dir and friends),
settings from them, an open Fleet, and one clear line for an error."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import click
from pydantic import ValidationError

from server.config import Settings
from server.errors import BootfleetError, describe
from server.fleet import Fleet

F = TypeVar("F", bound=Callable[..., Any])


def registry_options(func: F) -> F:
    """--data-dir/--database-url/--images-dir/--templates-dir on every command that needs
    the registry; they override BOOTFLEET_* variables, which override the defaults."""
    options = [
        click.option("--data-dir", type=click.Path(file_okay=False), help="State folder."),
        click.option("--database-url", help="SQLAlchemy URL (default: SQLite in the data dir)."),
        click.option("--images-dir", type=click.Path(file_okay=False), help="Images folder."),
        click.option("--templates-dir", type=click.Path(file_okay=False), help="Templates."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def settings_from(kwargs: dict[str, Any], names: tuple[str, ...] = ()) -> Settings:
    keys = ("data_dir", "database_url", "images_dir", "templates_dir", *names)
    overrides = {k: kwargs.pop(k, None) for k in keys}
    return Settings.load(overrides=overrides)


def open_fleet(kwargs: dict[str, Any]) -> Fleet:
    return Fleet.open(settings_from(kwargs))


def friendly(func: F) -> F:
    """Turn Bootfleet and validation errors into one clear line and exit status 1."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except BootfleetError as exc:
            raise click.ClickException(exc.message) from None
        except ValidationError as exc:
            raise click.ClickException(describe(exc).message) from None

    return wrapper  # type: ignore[return-value]
