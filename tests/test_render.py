"""Rendered boot configs against golden files; UPDATE_GOLDEN=1 rewrites them after a
deliberate change (review the diff)."""

import os
from pathlib import Path

import pytest
from pyfakefs.fake_filesystem import FakeFilesystem

from server.bootspec import BootSpec, Flavor, ImageRef
from server.config import DEFAULT_TEMPLATES_DIR
from server.errors import InvalidInput
from server.render import Renderer
from tests.helpers import check_golden

GOLDEN = Path(__file__).parent / "golden"
URL = "http://198.18.0.1:8080"
INSTALL = BootSpec(
    action="install",
    mac="52:54:00:12:34:56",
    hostname="pc01",
    kernel=ImageRef(url=f"{URL}/images/debian/linux", path="debian/linux"),
    initrds=(ImageRef(url=f"{URL}/images/debian/initrd.gz", path="debian/initrd.gz"),),
    cmdline=f"auto=true bootfleet.install={URL}/api/v1/installs/0123abcd",
    install_url=f"{URL}/api/v1/installs/0123abcd",
)
CASES = {
    "install": INSTALL,
    "local": BootSpec.local("52:54:00:12:34:56", "client is installed: local boot"),
    "nomac": BootSpec.local(None, "no MAC"),
}
EXT = {"ipxe": "ipxe", "pxelinux": "cfg", "grub": "cfg"}


@pytest.fixture
def renderer() -> Renderer:
    return Renderer(DEFAULT_TEMPLATES_DIR, URL)


@pytest.mark.parametrize("flavor", ["ipxe", "pxelinux", "grub"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_golden(renderer: Renderer, flavor: Flavor, case: str) -> None:
    text = renderer.render_boot(CASES[case], flavor)
    check_golden(GOLDEN / f"{flavor}-{case}.{EXT[flavor]}", text.encode())


def test_install_configs_agree(renderer: Renderer) -> None:
    """One BootSpec, three loaders: each carries the same kernel, initrd and command line."""
    for flavor in ("ipxe", "pxelinux", "grub"):
        text = renderer.render_boot(INSTALL, flavor)  # type: ignore[arg-type]
        assert INSTALL.cmdline in text, flavor
        assert "linux" in text and "initrd.gz" in text, flavor


def test_uefi_ipxe_gets_initrd_name(renderer: Renderer) -> None:
    assert "initrd=initrd.gz" in renderer.render_boot(INSTALL, "ipxe")


def test_local_boot_never_loads_a_kernel(renderer: Renderer) -> None:
    for flavor in ("ipxe", "pxelinux", "grub"):
        text = renderer.render_boot(CASES["local"], flavor)  # type: ignore[arg-type]
        assert "kernel" not in text.lower().replace("# bootfleet", ""), flavor
        assert "linux " not in text, flavor


def test_unknown_flavor(renderer: Renderer) -> None:
    with pytest.raises(ValueError, match="flavor"):
        renderer.render_boot(INSTALL, "yaboot")  # type: ignore[arg-type]


def test_cmdline_renders_variables(renderer: Renderer) -> None:
    out = renderer.render_cmdline(
        "hostname={{ hostname }}  locale={{ locale }}", {"hostname": "a", "locale": "C"}
    )
    assert out == "hostname=a locale=C"


@pytest.mark.parametrize(
    ("template", "context", "match"),
    [
        ("x={{ missing }}", {}, "missing"),  # StrictUndefined: never an empty value
        ("x={{ v }}", {"v": "a\nb"}, "line break"),
        ("{{ ''.__class__.__mro__ }}", {}, "cannot render"),  # sandboxed
        ("{% for %}", {}, "cannot render"),
    ],
)
def test_cmdline_refusals(renderer: Renderer, template: str, context: dict, match: str) -> None:
    with pytest.raises(InvalidInput, match=match):
        renderer.render_cmdline(template, context)


def test_site_templates_dir_is_used(fs: FakeFilesystem) -> None:
    """An admin's own pxe_templates/ (here on a fake filesystem) replaces the shipped one."""
    fs.create_file(
        "/etc/bootfleet/templates/boot/ipxe.j2", contents="#!ipxe\necho {{ spec.reason }}\n"
    )
    r = Renderer(Path("/etc/bootfleet/templates"), URL)
    assert r.render_boot(BootSpec.local(None, "custom"), "ipxe") == "#!ipxe\necho custom\n"


def test_an_edited_template_is_picked_up_within_the_recheck_interval(tmp_path: Path) -> None:
    now = [100.0]
    (tmp_path / "boot").mkdir()
    template = tmp_path / "boot" / "ipxe.j2"
    template.write_text("first {{ spec.mac }}\n")
    renderer = Renderer(tmp_path, URL, recheck_seconds=1.0, clock=lambda: now[0])
    spec = CASES["local"]
    assert renderer.render_boot(spec, "ipxe") == f"first {spec.mac}\n"
    template.write_text("second {{ spec.mac }}\n")
    os.utime(template, (1, 1))  # a different mtime, whatever the filesystem's resolution
    now[0] += 0.5
    assert renderer.render_boot(spec, "ipxe") == f"first {spec.mac}\n"  # no stat yet
    now[0] += 0.6
    assert renderer.render_boot(spec, "ipxe") == f"second {spec.mac}\n"
