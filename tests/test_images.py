"""Image import/list/verify/delete and boot-loader copying."""

from __future__ import annotations

import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest
from pyfakefs.fake_filesystem import FakeFilesystem

from server import images
from server.errors import Conflict, InvalidInput, NotFound

NETBOOT = Path("/usr/lib/debian-installer/images/12/amd64/text")
NETBOOT_AMD64 = NETBOOT / "debian-installer/amd64"
needs_netboot = pytest.mark.skipif(
    not (NETBOOT_AMD64 / "linux").is_file(),
    reason="Debian package debian-installer-12-netboot-amd64 is not installed",
)


@pytest.fixture
def kernel_pair(fs: FakeFilesystem) -> tuple[Path, Path]:
    fs.create_file("/src/vmlinuz", contents=b"K" * 5000)
    fs.create_file("/src/initrd.img", contents=b"I" * 7000)
    return Path("/src/vmlinuz"), Path("/src/initrd.img")


def test_import_list_verify_delete(kernel_pair: tuple[Path, Path]) -> None:
    root = Path("/srv/images")
    info = images.import_image(root, "rocky-9", kernel_pair[0], [kernel_pair[1]])
    assert info.kernel == "vmlinuz" and info.initrds == ["initrd.img"]
    assert info.files == ["image.json", "initrd.img", "vmlinuz"]
    assert [i.name for i in images.list_images(root)] == ["rocky-9"]
    assert (root / "rocky-9/vmlinuz").read_bytes() == b"K" * 5000
    assert images.verify_image(root, "rocky-9").ok

    (root / "rocky-9/vmlinuz").write_bytes(b"tampered")
    (root / "rocky-9/initrd.img").unlink()
    (root / "rocky-9/stray").write_bytes(b"")
    result = images.verify_image(root, "rocky-9")
    assert not result.ok
    assert result.to_dict() == {
        "ok": False,
        "name": "rocky-9",
        "mismatched": ["vmlinuz"],
        "missing": ["initrd.img"],
        "unlisted": ["stray"],
    }

    with pytest.raises(Conflict, match="db, web"):
        images.delete_image(root, "rocky-9", lambda name: ["web", "db"])
    assert (root / "rocky-9").is_dir()
    images.delete_image(root, "rocky-9", lambda name: [])
    assert images.list_images(root) == []
    with pytest.raises(NotFound):
        images.delete_image(root, "rocky-9", lambda name: [])


def test_import_refuses_existing_and_leaves_no_staging(kernel_pair: tuple[Path, Path]) -> None:
    root = Path("/srv/images")
    images.import_image(root, "a", kernel_pair[0])
    with pytest.raises(Conflict):
        images.import_image(root, "a", kernel_pair[0])
    with pytest.raises(InvalidInput) as exc:
        images.import_image(root, "b", kernel_pair[0], [Path("/src/nope")])
    assert exc.value.field == "initrd"
    assert sorted(p.name for p in root.iterdir()) == ["a"]


@pytest.mark.parametrize(
    "name", ["", ".hidden", "../x", "a/b", "a b", "x" * 65, "SHA256SUMS", "ipxe.efi", "a\n"]
)
def test_bad_names(kernel_pair: tuple[Path, Path], name: str) -> None:
    with pytest.raises(InvalidInput) as exc:
        images.import_image(Path("/srv/images"), name, kernel_pair[0])
    assert exc.value.field == "name"


def test_list_skips_non_images(fs: FakeFilesystem, kernel_pair: tuple[Path, Path]) -> None:
    root = Path("/srv/images")
    images.import_image(root, "deb", kernel_pair[0])
    fs.create_dir("/srv/images/.deb.tmp123")
    fs.create_dir("/srv/images/empty")
    fs.create_file("/srv/images/undionly.kpxe")
    fs.create_symlink("/srv/images/link", "/srv/images/deb")
    assert [i.name for i in images.list_images(root)] == ["deb"]
    assert images.list_images(Path("/nowhere")) == []


def test_bootloaders_copy_what_exists_and_name_missing_packages(fs: FakeFilesystem) -> None:
    fs.create_file("/usr/lib/ipxe/undionly.kpxe", contents=b"undi")
    loaders = [b for b in images.BOOTLOADERS if b.package in ("ipxe", "shim-signed")]
    with pytest.raises(images.MissingPackages) as exc:
        images.copy_bootloaders(Path("/srv/images"), loaders)
    assert exc.value.packages == ["ipxe", "shim-signed"]
    assert exc.value.copied == ["undionly.kpxe"]
    fs.create_file("/usr/lib/ipxe/ipxe.efi", contents=b"efi")
    fs.create_file("/usr/lib/ipxe/snponly.efi", contents=b"snp")
    with pytest.raises(images.MissingPackages, match="apt-get install shim-signed") as exc:
        images.copy_bootloaders(Path("/srv/images"), loaders)
    assert exc.value.copied == ["undionly.kpxe", "ipxe.efi", "snponly.efi"]
    assert Path("/srv/images/undionly.kpxe").read_bytes() == b"undi"
    assert images.verify_bootloaders(Path("/srv/images")).ok


@pytest.mark.skipif(not Path("/usr/lib/ipxe/ipxe.efi").is_file(), reason="needs Debian's ipxe")
def test_real_bootloaders(tmp_path: Path) -> None:
    """All packages of .ci/debian-packages.txt installed: every boot loader is copied."""
    copied = images.copy_bootloaders(tmp_path)
    assert {"undionly.kpxe", "ipxe.efi", "pxelinux.0", "ldlinux.c32", "grubx64.efi"} <= set(copied)
    assert (tmp_path / "shimx64.efi").stat().st_size > 100_000
    # shim fetches grubx64.efi beside itself over TFTP: it must be the signed network GRUB
    assert (tmp_path / "grubx64.efi").read_bytes() == (tmp_path / "grubnetx64.efi").read_bytes()
    r = subprocess.run(["sha256sum", "-c", "--quiet", "SHA256SUMS"], cwd=tmp_path)
    assert r.returncode == 0


@needs_netboot
def test_import_netboot_from_the_debian_package(tmp_path: Path) -> None:
    info = images.import_netboot(tmp_path, "debian-12", NETBOOT)
    assert info.kernel == "linux" and info.initrds == ["initrd.gz"]
    image = tmp_path / "debian-12"
    assert (image / "linux").read_bytes() == (NETBOOT_AMD64 / "linux").read_bytes()
    r = subprocess.run(["sha256sum", "-c", "--quiet", "SHA256SUMS"], cwd=image)
    assert r.returncode == 0
    assert images.verify_image(tmp_path, "debian-12").ok


@needs_netboot
def test_import_netboot_from_a_tarball(tmp_path: Path) -> None:
    tarball = tmp_path / "netboot.tar.gz"
    with tarfile.open(tarball, "w:gz", compresslevel=1) as tar:
        tar.add(NETBOOT, arcname=".")  # keeps the package's symlinks, as netboot.tar.gz has
    info = images.import_netboot(tmp_path / "images", "deb", tarball)
    assert info.files == ["image.json", "initrd.gz", "linux"]
    assert images.verify_image(tmp_path / "images", "deb").ok


def test_netboot_layout_errors(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="no netboot kernel"):
        images.import_netboot(tmp_path / "img", "x", tmp_path)
    for arch in ("amd64", "arm64"):
        d = tmp_path / "debian-installer" / arch
        d.mkdir(parents=True)
        (d / "linux").write_bytes(b"k")
        (d / "initrd.gz").write_bytes(b"i")
    with pytest.raises(InvalidInput, match="several netboot kernels"):
        images.import_netboot(tmp_path / "img", "x", tmp_path)
    images.import_netboot(tmp_path / "img", "x", tmp_path / "debian-installer/arm64")
    bogus = tmp_path / "bogus.tar.gz"
    bogus.write_bytes(b"not a tarball")
    with pytest.raises(InvalidInput, match="neither a directory nor a tar"):
        images.import_netboot(tmp_path / "img", "y", bogus)


def test_tarball_with_traversal_is_refused(tmp_path: Path) -> None:
    evil = tmp_path / "evil.tar"
    payload = tmp_path / "payload"
    payload.write_bytes(b"x")
    with tarfile.open(evil, "w") as tar:
        tar.add(payload, arcname="../../escaped")
    with pytest.raises(tarfile.TarError):
        images.import_netboot(tmp_path / "img", "z", evil)
    assert not (tmp_path.parent / "escaped").exists()
    assert shutil.which("sha256sum")
