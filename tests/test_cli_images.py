"""`images` and `templates` click groups, standalone and under a parent that fills ctx.obj."""

from __future__ import annotations

import json
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from server.catalog import Catalog
from server.cli.images import images, templates

TEMPLATES = Path(__file__).resolve().parents[1] / "pxe_templates"


@pytest.fixture
def files(tmp_path: Path) -> Path:
    (tmp_path / "vmlinuz").write_bytes(b"kernel")
    (tmp_path / "initrd.img").write_bytes(b"initrd")
    (tmp_path / "extra.cpio").write_bytes(b"extra")
    return tmp_path


def run(*args: str, env: dict[str, str] | None = None, obj: object = None) -> click.testing.Result:
    return CliRunner().invoke(images, list(args), env=env, obj=obj)


def test_standalone_round_trip(files: Path) -> None:
    root = files / "images"
    env = {"BOOTFLEET_IMAGES_DIR": str(root)}
    r = run(
        "import", "rocky", "--kernel", str(files / "vmlinuz"),
        "--initrd", str(files / "initrd.img"), "--initrd", str(files / "extra.cpio"), env=env,
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    r = run("list", "--json", env=env)
    assert r.exit_code == 0, r.output
    (item,) = json.loads(r.output)["items"]
    assert item["name"] == "rocky" and item["initrds"] == ["initrd.img", "extra.cpio"]
    assert run("list", env=env).output.startswith("rocky\tvmlinuz\tinitrd.img,extra.cpio\t")
    assert run("verify", env=env).exit_code == 0

    (root / "rocky/vmlinuz").write_bytes(b"changed")
    r = run("verify", "rocky", env=env)
    assert r.exit_code == 1
    assert "rocky: FAILED (changed: vmlinuz)" in r.output
    r = run("verify", "--json", env=env)
    assert json.loads(r.output)["items"][0]["mismatched"] == ["vmlinuz"]

    r = run("delete", "rocky", env=env)
    assert r.exit_code == 2 and "--force" in r.output
    assert run("delete", "rocky", "--force", env=env).exit_code == 0
    assert json.loads(run("list", "--json", env=env).output) == {"items": []}


def test_under_a_parent_group(files: Path) -> None:
    root = files / "images"

    @click.group()
    @click.pass_context
    def main(ctx: click.Context) -> None:
        ctx.obj = {
            "images_dir": root,
            "catalog": Catalog(TEMPLATES),
            "in_use": lambda name: ["web"] if name == "deb" else [],
        }

    main.add_command(images)
    main.add_command(templates)
    runner = CliRunner()
    r = runner.invoke(main, ["images", "import", "deb", "--kernel", str(files / "vmlinuz")])
    assert r.exit_code == 0, r.output
    r = runner.invoke(main, ["images", "delete", "deb"])
    assert r.exit_code == 1 and "used by profiles: web" in r.output
    r = runner.invoke(main, ["templates", "list", "--json"])
    assert r.exit_code == 0, r.output
    assert [t["name"] for t in json.loads(r.output)["items"]] == Catalog(TEMPLATES).names()


@pytest.mark.parametrize(
    "args",
    [
        ["import", "x"],
        ["import", "x", "--kernel", "K", "--from-netboot", "K"],
    ],
)
def test_import_usage_errors(files: Path, args: list[str]) -> None:
    args = [a if a != "K" else str(files / "vmlinuz") for a in args]
    r = run(*args, env={"BOOTFLEET_IMAGES_DIR": str(files / "images")})
    assert r.exit_code == 2


def test_errors_are_messages_not_tracebacks(files: Path) -> None:
    env = {"BOOTFLEET_IMAGES_DIR": str(files / "images")}
    r = run("import", ".bad", "--kernel", str(files / "vmlinuz"), env=env)
    assert r.exit_code == 1 and "Error: name: must be" in r.output
    r = run("verify", "nope", env=env)
    assert r.exit_code == 1 and "no image nope" in r.output


def test_no_images_dir(files: Path) -> None:
    r = CliRunner().invoke(images, ["list"], env={"BOOTFLEET_IMAGES_DIR": ""})
    assert r.exit_code == 2 and "--images-dir" in r.output


def test_bootloaders_command(files: Path) -> None:
    r = run("bootloaders", env={"BOOTFLEET_IMAGES_DIR": str(files / "images")})
    if (
        Path("/usr/lib/ipxe/ipxe.efi").is_file()
        and Path("/usr/lib/shim/shimx64.efi.signed").is_file()
    ):
        assert r.exit_code == 0, r.output
        assert "undionly.kpxe" in r.output
    else:
        assert r.exit_code == 1 and "apt-get install" in r.output


def test_templates_list_standalone() -> None:
    r = CliRunner().invoke(templates, ["list"])
    assert r.exit_code == 0, r.output
    assert "debian-preseed (debian)" in r.output
    assert "    root_password_hash: password_hash, required" in r.output
