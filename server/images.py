"""Boot images under images/: import, list, verify, delete, and boot loaders from Debian packages.

An image is a directory `images/NAME/` holding a kernel, its initrds, `image.json` (which file is
the kernel, which are the initrds, in order) and `SHA256SUMS` (sha256sum format, so
`cd images/NAME && sha256sum -c SHA256SUMS` checks it by hand). Files are copied into a
hidden temporary directory first and renamed into place, so a half-copied image never shows.
Boot loaders sit at the top of images/ (the TFTP root) with their own `SHA256SUMS`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import tarfile
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from server.errors import BootfleetError, Conflict, InvalidInput, NotFound

log = logging.getLogger(__name__)

MANIFEST = "SHA256SUMS"
METADATA = "image.json"
_NAME = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}$")
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Bootloader:
    package: str
    source: str
    target: str


# Boot loaders and where Debian 12 installs them (checked with `dpkg -L`).
BOOTLOADERS: tuple[Bootloader, ...] = (
    Bootloader("ipxe", "/usr/lib/ipxe/undionly.kpxe", "undionly.kpxe"),
    Bootloader("ipxe", "/usr/lib/ipxe/ipxe.efi", "ipxe.efi"),
    Bootloader("ipxe", "/usr/lib/ipxe/snponly.efi", "snponly.efi"),
    Bootloader("pxelinux", "/usr/lib/PXELINUX/pxelinux.0", "pxelinux.0"),
    Bootloader("pxelinux", "/usr/lib/PXELINUX/lpxelinux.0", "lpxelinux.0"),
    *(
        Bootloader("syslinux-common", f"/usr/lib/syslinux/modules/bios/{m}.c32", f"{m}.c32")
        for m in ("ldlinux", "libcom32", "libutil", "menu", "vesamenu", "chain", "reboot")
    ),
    Bootloader(
        "grub-efi-amd64-signed",
        "/usr/lib/grub/x86_64-efi-signed/grubnetx64.efi.signed",
        "grubnetx64.efi",
    ),
    # shimx64.efi loads "grubx64.efi" from the directory it was loaded from.
    Bootloader(
        "grub-efi-amd64-signed",
        "/usr/lib/grub/x86_64-efi-signed/grubnetx64.efi.signed",
        "grubx64.efi",
    ),
    Bootloader("shim-signed", "/usr/lib/shim/shimx64.efi.signed", "shimx64.efi"),
)
RESERVED_NAMES = frozenset({b.target for b in BOOTLOADERS} | {MANIFEST, "README.md"})


class MissingPackages(BootfleetError):
    """Some boot loaders were not copied because their Debian packages are not installed."""

    code = "missing_packages"
    status = 500

    def __init__(self, packages: Sequence[str], copied: Sequence[str]) -> None:
        names = " ".join(packages)
        super().__init__(f"missing Debian packages, install them with: apt-get install {names}")
        self.packages = list(packages)
        self.copied = list(copied)


@dataclass
class ImageInfo:
    name: str
    kernel: str
    initrds: list[str]
    files: list[str]
    size: int

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass
class VerifyResult:
    name: str
    mismatched: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unlisted: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.mismatched or self.missing or self.unlisted)

    def to_dict(self) -> dict[str, object]:
        return {"ok": self.ok, **asdict(self)}


def check_name(name: str) -> str:
    """Return `name` if it is a safe image slug, else raise InvalidInput on `name`."""
    if not isinstance(name, str) or not _NAME.fullmatch(name) or name in RESERVED_NAMES:
        raise InvalidInput(
            "name", "must be 1-64 letters, digits, '-', '_' or '.', not starting with a dot"
        )
    return name


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _copy(source: Path, target: Path) -> str:
    """Copy one regular file, returning its SHA-256 computed on the way."""
    digest = hashlib.sha256()
    with source.open("rb") as src, target.open("wb") as dst:
        while chunk := src.read(_CHUNK):
            digest.update(chunk)
            dst.write(chunk)
    shutil.copystat(source, target)
    return digest.hexdigest()


def _write_manifest(directory: Path, sums: dict[str, str]) -> None:
    lines = "".join(f"{digest}  {rel}\n" for rel, digest in sorted(sums.items()))
    (directory / MANIFEST).write_text(lines)


def read_manifest(directory: Path) -> dict[str, str]:
    """relpath -> hex digest from `directory/SHA256SUMS` (empty when there is none)."""
    path = directory / MANIFEST
    if not path.is_file():
        return {}
    sums: dict[str, str] = {}
    for line in path.read_text().splitlines():
        digest, _, rel = line.partition("  ")
        if digest and rel:
            sums[rel.lstrip("*")] = digest
    return sums


def _regular(path: Path, field_name: str) -> Path:
    if not path.is_file():
        raise InvalidInput(field_name, f"not a regular file: {path}")
    return path


def import_image(
    images_dir: Path, name: str, kernel: Path, initrds: Sequence[Path] = ()
) -> ImageInfo:
    """Copy a kernel and its initrds into images/NAME/ with a SHA256SUMS manifest.

    The kernel keeps its file name (e.g. `linux`, `vmlinuz`, `wimboot`); the initrds keep
    theirs, in order, so `BCD`, `boot.sdi` and `boot.wim` work for wimboot the same way.
    """
    check_name(name)
    kernel = _regular(Path(kernel), "kernel")
    sources = [kernel, *(_regular(Path(i), "initrd") for i in initrds)]
    names = [p.name for p in sources]
    if len(set(names)) != len(names) or {MANIFEST, METADATA} & set(names):
        raise InvalidInput("initrd", f"file names must be distinct and not reserved: {names}")
    images_dir = Path(images_dir)
    final = images_dir / name
    if final.exists():
        raise Conflict(f"image {name} exists; delete it first")
    images_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=images_dir))
    try:
        sums = {src.name: _copy(src, staging / src.name) for src in sources}
        meta = {"kernel": kernel.name, "initrds": names[1:]}
        (staging / METADATA).write_text(json.dumps(meta, indent=2) + "\n")
        sums[METADATA] = sha256_file(staging / METADATA)
        _write_manifest(staging, sums)
        staging.chmod(0o755)
        staging.rename(final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    log.info("imported image %s from %s", name, kernel)
    return image_info(images_dir, name)


# Netboot layouts: (kernel, initrd) file names that sit side by side in one directory.
_NETBOOT_PAIRS = (("linux", "initrd.gz"), ("linux", "initrd"), ("vmlinuz", "initrd.img"))


def _find_netboot(root: Path) -> tuple[Path, Path]:
    found: list[tuple[Path, Path]] = []
    for dirpath, _dirs, files in os.walk(root):  # does not follow directory symlinks
        here = Path(dirpath)
        for kernel, initrd in _NETBOOT_PAIRS:
            if kernel in files and initrd in files:
                pair = (here / kernel, here / initrd)
                if all(p.is_file() and not p.is_symlink() for p in pair):
                    found.append(pair)
                break
    if not found:
        raise InvalidInput(
            "source", "no netboot kernel + initrd (linux + initrd.gz, vmlinuz + initrd.img) found"
        )
    if len(found) > 1:
        where = ", ".join(str(k.parent.relative_to(root)) for k, _ in found)
        raise InvalidInput("source", f"several netboot kernels, point at one directory: {where}")
    return found[0]


def import_netboot(images_dir: Path, name: str, source: Path) -> ImageInfo:
    """Import from a Debian/Ubuntu netboot tree or tarball (netboot.tar.gz, or the directory
    /usr/lib/debian-installer/images/12/amd64/text that debian-installer-12-netboot-amd64
    installs): the one `.../linux` + `.../initrd.gz` it contains."""
    check_name(name)
    source = Path(source)
    if source.is_dir():
        kernel, initrd = _find_netboot(source)
        return import_image(images_dir, name, kernel, [initrd])
    if not source.is_file() or not tarfile.is_tarfile(source):
        raise InvalidInput("source", f"neither a directory nor a tar archive: {source}")
    with tempfile.TemporaryDirectory(prefix="bootfleet-netboot-") as tmp:
        with tarfile.open(source) as archive:
            # The "data" filter refuses absolute paths, "..", device nodes and links out.
            archive.extractall(tmp, filter="data")
        kernel, initrd = _find_netboot(Path(tmp))
        return import_image(images_dir, name, kernel, [initrd])


def image_info(images_dir: Path, name: str) -> ImageInfo:
    """What images/NAME holds; NotFound when it is not an image."""
    check_name(name)
    directory = Path(images_dir) / name
    meta_path = directory / METADATA
    if not meta_path.is_file():
        raise NotFound(f"no image {name}")
    meta = json.loads(meta_path.read_text())
    files = sorted(read_manifest(directory))
    size = sum((directory / f).stat().st_size for f in files if (directory / f).is_file())
    return ImageInfo(name, str(meta["kernel"]), list(meta["initrds"]), files, size)


def list_images(images_dir: Path) -> list[ImageInfo]:
    """Every image under images_dir, by name (hidden staging directories are skipped)."""
    images_dir = Path(images_dir)
    if not images_dir.is_dir():
        return []
    return [
        image_info(images_dir, entry.name)
        for entry in sorted(images_dir.iterdir())
        if entry.is_dir()
        and not entry.is_symlink()
        and _NAME.fullmatch(entry.name)
        and (entry / METADATA).is_file()
    ]


def verify_dir(directory: Path, name: str, ignore: Iterable[str] = ()) -> VerifyResult:
    """Recompute every hash listed in directory/SHA256SUMS."""
    result = VerifyResult(name)
    sums = read_manifest(directory)
    for rel, digest in sorted(sums.items()):
        path = directory / rel
        if not path.is_file():
            result.missing.append(rel)
        elif sha256_file(path) != digest:
            result.mismatched.append(rel)
    skip = {MANIFEST, *ignore}
    for entry in sorted(directory.iterdir()):
        if entry.is_file() and entry.name not in sums and entry.name not in skip:
            result.unlisted.append(entry.name)
    return result


def verify_image(images_dir: Path, name: str) -> VerifyResult:
    """Recompute the image's hashes: which files changed, went missing or were added."""
    image_info(images_dir, name)  # NotFound for a non-image
    return verify_dir(Path(images_dir) / name, name)


def delete_image(images_dir: Path, name: str, in_use: Callable[[str], list[str]]) -> None:
    """Remove images/NAME unless `in_use(name)` names profiles that boot it (Conflict)."""
    image_info(images_dir, name)
    users = in_use(name)
    if users:
        raise Conflict(f"image {name} is used by profiles: {', '.join(sorted(users))}")
    shutil.rmtree(Path(images_dir) / name)
    log.info("deleted image %s", name)


def copy_bootloaders(
    images_dir: Path, bootloaders: Sequence[Bootloader] = BOOTLOADERS
) -> list[str]:
    """Copy the boot loaders of installed Debian packages to the top of images_dir.

    Returns the names copied. When some are absent, still copies the rest, then raises
    MissingPackages naming the Debian packages to install.
    """
    images_dir = Path(images_dir)
    images_dir.mkdir(parents=True, exist_ok=True)
    sums = read_manifest(images_dir)
    copied: list[str] = []
    missing: list[str] = []
    for loader in bootloaders:
        source = Path(loader.source)
        if not source.is_file():
            if loader.package not in missing:
                missing.append(loader.package)
            continue
        target = images_dir / loader.target
        partial = target.with_name(f".{loader.target}.tmp")
        sums[loader.target] = _copy(source, partial)
        partial.replace(target)
        copied.append(loader.target)
    _write_manifest(images_dir, sums)
    log.info("copied boot loaders %s to %s", ", ".join(copied) or "none", images_dir)
    if missing:
        raise MissingPackages(missing, copied)
    return copied


def verify_bootloaders(images_dir: Path) -> VerifyResult:
    """Recompute the hashes of the boot loaders at the top of images_dir."""
    return verify_dir(Path(images_dir), "bootloaders", ignore={"README.md"})
