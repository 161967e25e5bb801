"""The `bootfleet` command. It wires settings to the registry and the service; the logic
lives in server.registry and server.service."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click
from pydantic import ValidationError

from server.config import Settings
from server.errors import BootfleetError
from server.fleet import Fleet
from server.registry import admin_tokens
from server.registry.database import session_scope

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
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"])
            msg = str(err["msg"]).removeprefix("Value error, ")
            raise click.ClickException(f"{where}: {msg}") from None

    return wrapper  # type: ignore[return-value]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="bootfleet")
@click.pass_context
def main(ctx: click.Context) -> None:
    """Bootfleet: network boot and one-shot reinstallation of client machines."""
    ctx.obj = _shared_obj()


def _shared_obj() -> dict[str, Any]:
    """What the `images` and `templates` groups take from the main command: the images dir
    and catalog from the settings, and which profiles boot an image (from the registry)."""
    from server.catalog import Catalog
    from server.registry import profiles

    try:
        settings = Settings.load()
    except BootfleetError as exc:
        raise click.ClickException(exc.message) from None

    def in_use(image: str) -> list[str]:
        fleet = Fleet.open(settings)
        try:
            with session_scope(fleet.engine) as s:
                return profiles.using_image(s, image)
        finally:
            fleet.close()

    return {
        "images_dir": settings.images,
        "catalog": Catalog(settings.templates_dir),
        "in_use": in_use,
    }


@main.command()
@registry_options
@click.option("--bind", help="Address to listen on (default 0.0.0.0).")
@click.option("--http-port", type=int, help="HTTP port (default 8080).")
@click.option("--http-threads", type=int, help="Threads answering HTTP requests (4).")
@click.option("--tftp-port", type=int, help="TFTP port (default 69 as root, else 6969).")
@click.option("--no-tftp", "tftp_enabled", flag_value=False, default=None, help="HTTP only.")
@click.option("--tftp-max-blksize", type=int, help="Largest TFTP block size granted (1468).")
@click.option("--tftp-max-transfers", type=int, help="Concurrent TFTP transfers (500).")
@click.option("--tftp-per-source", type=int, help="Concurrent TFTP transfers per address (64).")
@click.option("--tftp-max-timeout", type=int, help="Largest TFTP timeout option honoured (8).")
@click.option(
    "--tftp-max-transfer-seconds", type=int, help="A TFTP transfer ends after this (300)."
)
@click.option("--tftp-loops", type=int, help="Event-loop threads for TFTP transfers (1).")
@click.option("--tftp-workers", type=int, help="Threads per TFTP pool (0: 1 on SQLite, else 4).")
@click.option("--interface", help="Advertise this interface's IPv4 address to clients.")
@click.option("--advertise", help="Advertise exactly this address or host name.")
@click.option("--boot-timeout", type=int, help="Seconds without a boot-file fetch (1800).")
@click.option("--progress-timeout", type=int, help="Seconds without progress (7200).")
@click.option("--grace-seconds", type=int, help="Re-read window for installer configs (120).")
@click.option("--reap-interval", type=float, help="Seconds between deadline checks (30).")
@click.option("--wave-interval", type=float, help="Seconds between rounds of waves (5).")
@click.option(
    "--unknown-menu",
    "unknown_menu",
    flag_value=True,
    default=None,
    help="Offer unregistered iPXE machines a menu: disk (default) or request registration.",
)
@click.option("--discovered-max", type=int, help="Unregistered machines kept, newest (10000).")
@click.option("--events-per-mac", type=int, help="Events kept per MAC, newest (1000).")
@click.option("--event-days", type=int, help="Days an event is kept (365).")
@click.option("--db-busy-timeout", type=int, help="Milliseconds a SQLite write waits (5000).")
@click.option("--rate-limit", type=float, help="Boot/callback requests/s per source (10; 0 off).")
@click.option("--rate-burst", type=int, help="Burst of boot/callback requests per source (120).")
@click.option(
    "--log-level", type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False)
)
@friendly
def serve(**kwargs: Any) -> None:
    """Run HTTP, TFTP and the deadline reaper until SIGTERM or Ctrl-C."""
    from server import service

    names = tuple(
        k for k in kwargs if k not in {"data_dir", "database_url", "images_dir", "templates_dir"}
    )
    settings = settings_from(kwargs, names)
    service.configure_logging(settings.log_level)
    service.serve(settings)


@main.group()
def token() -> None:
    """Admin API tokens."""


@token.command("create")
@registry_options
@click.option("--name", default="admin", show_default=True, help="A label for the token.")
@friendly
def token_create(name: str, **kwargs: Any) -> None:
    """Create an admin token and print it (only the token, on stdout). Shown once."""
    fleet = open_fleet(kwargs)
    with session_scope(fleet.engine, write=True) as s:
        _, secret = admin_tokens.create(s, name)
    click.echo(secret)


@token.command("list")
@registry_options
@click.option("--json", "as_json", is_flag=True, help="JSON output.")
@friendly
def token_list(as_json: bool, **kwargs: Any) -> None:
    """List admin tokens (their first characters only)."""
    from server.clitable import emit
    from server.models import AdminTokenPublic

    fleet = open_fleet(kwargs)
    with session_scope(fleet.engine) as s:
        rows = [
            AdminTokenPublic.model_validate(t, from_attributes=True)
            for t in admin_tokens.list_tokens(s)
        ]
    emit(rows, ["id", "name", "prefix", "created_at", "revoked_at"], as_json)


@token.command("revoke")
@registry_options
@click.argument("token_id", type=int)
@friendly
def token_revoke(token_id: int, **kwargs: Any) -> None:
    """Revoke an admin token by its id."""
    fleet = open_fleet(kwargs)
    with session_scope(fleet.engine, write=True) as s:
        admin_tokens.revoke(s, token_id)
    click.echo(f"token {token_id} revoked")


@main.group()
def db() -> None:
    """The registry database."""


@db.command("migrate")
@registry_options
@friendly
def db_migrate(**kwargs: Any) -> None:
    """Create or upgrade the schema (serve does this too)."""
    from server.registry.database import SCHEMA_VERSION

    open_fleet(kwargs)
    click.echo(f"schema at version {SCHEMA_VERSION}")


def _register_subcommands() -> None:
    from server import (
        cli_backup,
        cli_discovered,
        cli_hooks,
        cli_images,
        cli_registry,
        cli_waves,
    )

    for command in [*cli_registry.COMMANDS, cli_images.images, cli_images.templates]:
        main.add_command(command)
    for command in [*cli_hooks.COMMANDS, *cli_waves.COMMANDS, *cli_discovered.COMMANDS]:
        main.add_command(command)
    for command in cli_backup.COMMANDS:
        main.add_command(command)
    for command in cli_backup.DB_COMMANDS:
        db.add_command(command)


_register_subcommands()

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
