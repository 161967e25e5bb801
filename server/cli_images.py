"""`bootfleet images ...` and `bootfleet templates ...`: click groups the main command adds.

Wired under the main group, they take `images_dir`, `catalog` and `in_use` from ctx.obj (a
dict); run alone they fall back to --images-dir / BOOTFLEET_IMAGES_DIR and --templates-dir.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from server import images as imagestore
from server.catalog import Catalog
from server.config import DEFAULT_TEMPLATES_DIR
from server.errors import BootfleetError


def _obj(ctx: click.Context) -> dict[str, Any]:
    obj = ctx.find_root().obj
    return obj if isinstance(obj, dict) else {}


def _images_dir(ctx: click.Context) -> Path:
    obj = _obj(ctx)
    if obj.get("images_dir") is not None:
        return Path(obj["images_dir"])
    option = ctx.find_object(_Options)
    if option is None or option.images_dir is None:
        raise click.UsageError("no images directory: pass --images-dir or BOOTFLEET_IMAGES_DIR")
    return option.images_dir


class _Options:
    def __init__(self, images_dir: Path | None = None, templates_dir: Path | None = None):
        self.images_dir = images_dir
        self.templates_dir = templates_dir


def _emit(data: object, as_json: bool, text: Callable[[], None]) -> None:
    if as_json:
        click.echo(json.dumps(data, indent=2))
    else:
        text()


def _fail(exc: BootfleetError) -> click.ClickException:
    return click.ClickException(exc.message)


@click.group("images")
@click.option(
    "--images-dir",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="BOOTFLEET_IMAGES_DIR",
    help="Where images live (the TFTP and HTTP root). Default: from the main command.",
)
@click.pass_context
def images(ctx: click.Context, images_dir: Path | None) -> None:
    """Import, list, verify and delete boot images; copy boot loaders."""
    ctx.obj = ctx.obj if isinstance(ctx.obj, dict) else _Options(images_dir=images_dir)
    flag = ctx.get_parameter_source("images_dir") == click.core.ParameterSource.COMMANDLINE
    if isinstance(ctx.obj, dict) and images_dir is not None and flag:  # a flag beats settings
        ctx.obj["images_dir"] = images_dir


@images.command("import")
@click.argument("name")
@click.option("--kernel", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--initrd",
    "initrds",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="An initrd (repeat for several; order is kept).",
)
@click.option(
    "--from-netboot",
    "netboot",
    type=click.Path(exists=True, path_type=Path),
    help="A Debian/Ubuntu netboot directory or tarball.",
)
@click.pass_context
def import_cmd(
    ctx: click.Context,
    name: str,
    kernel: Path | None,
    initrds: tuple[Path, ...],
    netboot: Path | None,
) -> None:
    """Copy a kernel and initrds, or a netboot tree, into images/NAME."""
    if (kernel is None) == (netboot is None) or (netboot is not None and initrds):
        raise click.UsageError("give either --kernel [--initrd ...] or --from-netboot")
    root = _images_dir(ctx)
    try:
        if netboot is not None:
            info = imagestore.import_netboot(root, name, netboot)
        else:
            assert kernel is not None
            info = imagestore.import_image(root, name, kernel, list(initrds))
    except BootfleetError as exc:
        raise _fail(exc) from None
    click.echo(f"imported {info.name}: kernel {info.kernel}, initrds {' '.join(info.initrds)}")


@images.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def list_cmd(ctx: click.Context, as_json: bool) -> None:
    """List the images."""
    found = imagestore.list_images(_images_dir(ctx))

    def text() -> None:
        for i in found:
            click.echo(f"{i.name}\t{i.kernel}\t{','.join(i.initrds)}\t{i.size}")

    _emit({"items": [i.to_dict() for i in found]}, as_json, text)


@images.command("verify")
@click.argument("name", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def verify_cmd(ctx: click.Context, name: str | None, as_json: bool) -> None:
    """Recompute hashes of one image, or of every image and the boot loaders."""
    root = _images_dir(ctx)
    try:
        if name is not None:
            results = [imagestore.verify_image(root, name)]
        else:
            results = [imagestore.verify_image(root, i.name) for i in imagestore.list_images(root)]
            if (root / imagestore.MANIFEST).is_file():
                results.append(imagestore.verify_bootloaders(root))
    except BootfleetError as exc:
        raise _fail(exc) from None

    def text() -> None:
        for r in results:
            problems = {"changed": r.mismatched, "missing": r.missing, "unlisted": r.unlisted}
            details = [f"{k}: {', '.join(v)}" for k, v in problems.items() if v]
            state = "ok" if r.ok else "FAILED (" + "; ".join(details) + ")"
            click.echo(f"{r.name}: {state}")

    _emit({"items": [r.to_dict() for r in results]}, as_json, text)
    if not all(r.ok for r in results):
        ctx.exit(1)


@images.command("delete")
@click.argument("name")
@click.option("--force", is_flag=True, help="Delete without asking which profiles use it.")
@click.pass_context
def delete_cmd(ctx: click.Context, name: str, force: bool) -> None:
    """Delete images/NAME unless a profile boots it."""
    in_use = _obj(ctx).get("in_use")
    if in_use is None and not force:
        raise click.UsageError("cannot see which profiles use images here; pass --force")
    try:
        imagestore.delete_image(_images_dir(ctx), name, in_use or (lambda _name: []))
    except BootfleetError as exc:
        raise _fail(exc) from None
    click.echo(f"deleted {name}")


@images.command("bootloaders")
@click.pass_context
def bootloaders_cmd(ctx: click.Context) -> None:
    """Copy iPXE, pxelinux, GRUB and shim from installed Debian packages."""
    try:
        copied = imagestore.copy_bootloaders(_images_dir(ctx))
    except imagestore.MissingPackages as exc:
        if exc.copied:
            click.echo(f"copied {' '.join(exc.copied)}")
        raise _fail(exc) from None
    click.echo(f"copied {' '.join(copied)}")


@click.group("templates")
@click.option(
    "--templates-dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    envvar="BOOTFLEET_TEMPLATES_DIR",
    help="Template root (pxe_templates). Default: from the main command, else the built-in.",
)
@click.pass_context
def templates(ctx: click.Context, templates_dir: Path | None) -> None:
    """Answer-file templates and their variables."""
    if not isinstance(ctx.obj, dict):
        ctx.obj = _Options(templates_dir=templates_dir)
    elif templates_dir is not None:
        ctx.obj["catalog"] = Catalog(templates_dir)


@templates.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def templates_list(ctx: click.Context, as_json: bool) -> None:
    """List the templates and the variables each takes."""
    catalog: Catalog | None = _obj(ctx).get("catalog")
    if catalog is None:
        option = ctx.find_object(_Options)
        catalog = Catalog((option and option.templates_dir) or DEFAULT_TEMPLATES_DIR)
    described = catalog.describe()

    def text() -> None:
        for t in described:
            click.echo(f"{t['name']} ({t['os']}): {t['description']}")
            variables: list[dict[str, Any]] = t["variables"]  # type: ignore[assignment]
            for v in variables:
                need = "required" if v["required"] else f"default {json.dumps(v['default'])}"
                click.echo(f"    {v['name']}: {v['type']}, {need} - {v['description']}")

    _emit({"items": described}, as_json, text)
