"""The `bootfleet` command. It wires settings to the registry and the service; the logic
lives in server.registry and server.service. Each command family is a module of this
package (serve, registry, backup, images); what they share is in options.py."""

from __future__ import annotations

from typing import Any

import click

from server.cli import backup, discovered, hooks, images, registry, serve, waves
from server.cli.options import friendly, open_fleet, registry_options, settings_from
from server.config import Settings
from server.errors import BootfleetError
from server.fleet import Fleet
from server.registry import admin_tokens
from server.registry.database import session_scope


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
    from server.cli.table import emit
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
@click.option("--dry-run", is_flag=True, help="Say which steps would run; change nothing.")
@registry_options
@friendly
def db_migrate(dry_run: bool, **kwargs: Any) -> None:
    """Create or upgrade the schema (serve does this too)."""
    from server.registry import migrations

    if dry_run:
        click.echo("\n".join(migrations.dry_run(settings_from(kwargs).db_url)))
        return
    open_fleet(kwargs)
    click.echo(f"schema at version {migrations.SCHEMA_VERSION}")


for command in [serve.serve, *registry.COMMANDS, images.images, images.templates]:
    main.add_command(command)
for command in [*hooks.COMMANDS, *waves.COMMANDS, *discovered.COMMANDS, *backup.COMMANDS]:
    main.add_command(command)
for command in backup.DB_COMMANDS:
    db.add_command(command)
