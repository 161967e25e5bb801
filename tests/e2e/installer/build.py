"""Build the test installer (Debian kernel + busybox initramfs) and the marker disk images.

Everything comes from Debian packages: the kernel and its virtio modules from
`linux-image-cloud-amd64` (fetched with `apt-get download`, unpacked with `dpkg-deb`), busybox
from `busybox-static`, the BIOS boot sector from `nasm`, the UEFI system from `grub-mkstandalone`
on a FAT ESP made with `mkfs.fat` + `mtools`, and for Secure Boot the same ESP with the signed
shim and GRUB of `shim-signed` and `grub-efi-amd64-signed`. Outputs are cached in `cache_dir`.
"""

from __future__ import annotations

import gzip
import io
import os
import re
import shutil
import stat
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
PLACEHOLDER = b"BOOTFLEET-MARKER-00:00:00:00:00:00"
MAC_OFFSET_IN_PLACEHOLDER = len(b"BOOTFLEET-MARKER-")
UEFI_DISK_MB = 16
ESP_START_LBA = 2048
# Drivers the installer needs that the cloud kernel builds as modules (af_packet, which
# udhcpc needs, is built in: CONFIG_PACKET=y). Their dependencies are added from .modinfo.
WANTED_MODULES = ("virtio_pci", "virtio_net", "virtio_blk")
# Loaded only on UEFI machines, to read the SecureBoot variable (it fails to load elsewhere).
EFI_MODULE = "efivarfs"
# The installed system's loaders under Secure Boot: Microsoft-signed shim as the removable-media
# loader, and Debian-signed GRUB next to it (shim loads grubx64.efi from its own directory).
SIGNED_SHIM = Path("/usr/lib/shim/shimx64.efi.signed")
SIGNED_GRUB = Path("/usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed")


@dataclass(frozen=True)
class Installer:
    kernel: Path
    initrd: Path
    bios_image: Path
    uefi_image: Path
    uefi_sb_image: Path | None = None  # the UEFI system with signed loaders (Secure Boot)


def _sh(*cmd: str | Path, cwd: Path | None = None) -> str:
    return subprocess.run(
        [str(c) for c in cmd], check=True, capture_output=True, text=True, cwd=cwd
    ).stdout


# --- the kernel -------------------------------------------------------------------------


def fetch_kernel(cache: Path) -> Path:
    """Unpack the Debian cloud kernel package into cache/kernel; return the unpacked root."""
    root = cache / "kernel"
    if (root / "done").exists():
        return root
    debs = cache / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    deps = _sh("apt-cache", "depends", "linux-image-cloud-amd64")
    m = re.search(r"Depends: (linux-image-\S+-cloud-amd64)", deps)
    if not m:
        raise RuntimeError(f"no kernel package behind linux-image-cloud-amd64: {deps}")
    os.chmod(debs, 0o777)  # apt-get download drops privileges to _apt
    _sh("apt-get", "download", m.group(1), cwd=debs)
    (deb,) = debs.glob(f"{m.group(1)}_*.deb")
    shutil.rmtree(root, ignore_errors=True)
    _sh("dpkg-deb", "-x", deb, root)
    (root / "done").write_text(deb.name)
    return root


def _module_index(root: Path) -> dict[str, Path]:
    return {
        p.name.split(".ko")[0].replace("-", "_"): p for p in root.glob("lib/modules/*/**/*.ko*")
    }


def _depends(path: Path) -> list[str]:
    data = path.read_bytes()
    if path.suffix == ".xz":
        import lzma

        data = lzma.decompress(data)
    m = re.search(rb"\x00depends=([^\x00]*)\x00", data)
    return [d.replace("-", "_") for d in m.group(1).decode().split(",") if d] if m else []


def modules_in_load_order(root: Path, wanted: tuple[str, ...] = WANTED_MODULES) -> list[Path]:
    """The wanted modules and their dependencies, dependencies first."""
    index = _module_index(root)
    order: list[Path] = []

    def visit(name: str) -> None:
        path = index[name]
        if path in order:
            return
        for dep in _depends(path):
            visit(dep)
        order.append(path)

    for name in wanted:
        visit(name)
    return order


# --- cpio (newc) ------------------------------------------------------------------------


class Cpio:
    """A minimal writer for the newc format the kernel unpacks as initramfs."""

    def __init__(self) -> None:
        self.buf = io.BytesIO()
        self.ino = 1

    def _entry(
        self, name: str, mode: int, data: bytes = b"", rdev: tuple[int, int] = (0, 0)
    ) -> None:
        namez = name.encode() + b"\x00"
        fields = (self.ino, mode, 0, 0, 1, 0, len(data), 0, 0, rdev[0], rdev[1], len(namez), 0)
        self.ino += 1
        self.buf.write(b"070701" + b"".join(b"%08X" % f for f in fields) + namez)
        self.buf.write(b"\x00" * (-self.buf.tell() % 4))
        self.buf.write(data)
        self.buf.write(b"\x00" * (-self.buf.tell() % 4))

    def dir(self, name: str) -> None:
        self._entry(name, stat.S_IFDIR | 0o755)

    def file(self, name: str, data: bytes, mode: int = 0o644) -> None:
        self._entry(name, stat.S_IFREG | mode, data)

    def chardev(self, name: str, major: int, minor: int) -> None:
        self._entry(name, stat.S_IFCHR | 0o600, rdev=(major, minor))

    def finish(self) -> bytes:
        self._entry("TRAILER!!!", 0)
        return self.buf.getvalue()


def build_initrd(
    out: Path,
    kernel_root: Path,
    bios_image: Path,
    uefi_image: Path,
    uefi_sb_image: Path | None = None,
) -> Path:
    modules = modules_in_load_order(kernel_root)
    c = Cpio()
    for d in (
        "bin",
        "dev",
        "etc",
        "etc/bootfleet",
        "lib",
        "lib/modules",
        "lib/modules/efi",
        "images",
        "proc",
        "sys",
        "tmp",
    ):
        c.dir(d)
    c.chardev("dev/console", 5, 1)
    c.chardev("dev/null", 1, 3)
    c.file("bin/busybox", Path("/bin/busybox").read_bytes(), 0o755)
    c.file("init", (HERE / "init").read_bytes(), 0o755)
    c.file("etc/bootfleet/udhcpc.script", (HERE / "udhcpc.script").read_bytes(), 0o755)
    names = []
    for mod in modules:
        c.file(f"lib/modules/{mod.name}", mod.read_bytes())
        names.append(mod.name)
    c.file("etc/bootfleet/modules", ("\n".join(names) + "\n").encode())
    efi_module = _module_index(kernel_root)[EFI_MODULE]
    c.file(f"lib/modules/efi/{EFI_MODULE}.ko", efi_module.read_bytes())
    systems = [("bios", bios_image), ("uefi", uefi_image)]
    if uefi_sb_image is not None:
        systems.append(("uefi-sb", uefi_sb_image))
    for kind, image in systems:
        data = image.read_bytes()
        offset = data.index(PLACEHOLDER) + MAC_OFFSET_IN_PLACEHOLDER
        c.file(f"images/marker-{kind}.img", data)
        c.file(f"images/marker-{kind}.offset", f"{offset}\n".encode())
    out.write_bytes(gzip.compress(c.finish(), compresslevel=6))
    return out


# --- marker disks ------------------------------------------------------------------------


def build_bios_image(out: Path) -> Path:
    """A 512-byte MBR that prints BOOTFLEET-MARKER-<mac> on COM1 (see mbr.asm)."""
    _sh("nasm", "-f", "bin", "-o", out, HERE / "mbr.asm")
    data = out.read_bytes()
    assert len(data) == 512 and data.endswith(b"\x55\xaa") and PLACEHOLDER in data
    return out


def build_uefi_image(out: Path, work: Path) -> Path:
    """An MBR disk with one ESP holding EFI/BOOT/BOOTX64.EFI (GRUB) and the marker file."""
    work.mkdir(parents=True, exist_ok=True)
    efi = work / "BOOTX64.EFI"
    _sh(
        "grub-mkstandalone",
        "-O",
        "x86_64-efi",
        "-o",
        efi,
        "--modules=part_msdos fat search search_fs_file echo cat halt",
        "--locales=",
        "--themes=",
        "--fonts=",
        f"boot/grub/grub.cfg={HERE / 'grub-marker.cfg'}",
    )
    return _esp_disk(out, work, {"EFI/BOOT/BOOTX64.EFI": efi})


def build_uefi_sb_image(out: Path, work: Path) -> Path:
    """The same system for Secure Boot: signed shim -> signed GRUB -> the marker grub.cfg.

    Debian's signed GRUB has its modules built in and no config; its embedded script falls
    back to `$cmdpath/grub.cfg`, the directory it was loaded from.
    """
    work.mkdir(parents=True, exist_ok=True)
    files = {
        "EFI/BOOT/BOOTX64.EFI": SIGNED_SHIM,
        "EFI/BOOT/grubx64.efi": SIGNED_GRUB,
        "EFI/BOOT/grub.cfg": HERE / "grub-marker.cfg",
    }
    return _esp_disk(out, work, files)


def _esp_disk(out: Path, work: Path, files: dict[str, Path]) -> Path:
    """An MBR disk whose one partition is an ESP holding `files` and the marker file."""
    marker = work / "bootfleet-marker.txt"
    marker.write_bytes(PLACEHOLDER + b"\n")
    esp = work / "esp.img"
    esp.unlink(missing_ok=True)
    esp_sectors = UEFI_DISK_MB * 2048 - ESP_START_LBA
    _sh("mkfs.fat", "-C", "-n", "BFMARKER", esp, str(esp_sectors // 2))
    env_img = "::"
    _sh("mmd", "-i", esp, f"{env_img}/EFI", f"{env_img}/EFI/BOOT")
    for target, source in files.items():
        _sh("mcopy", "-i", esp, source, f"{env_img}/{target}")
    _sh("mcopy", "-i", esp, marker, f"{env_img}/bootfleet-marker.txt")
    disk = bytearray(ESP_START_LBA * 512)
    # One primary partition, type 0xEF (EFI system), CHS fields unused by UEFI.
    entry = struct.pack(
        "<B3sB3sII", 0, b"\xfe\xff\xff", 0xEF, b"\xfe\xff\xff", ESP_START_LBA, esp_sectors
    )
    disk[446:462] = entry
    disk[510:512] = b"\x55\xaa"
    out.write_bytes(bytes(disk) + esp.read_bytes())
    data = out.read_bytes()
    assert data.count(PLACEHOLDER) == 1, "marker placeholder must be unique on the disk"
    return out


def marker_disk(image: Path, mac: str, out: Path, size_mb: int = UEFI_DISK_MB) -> Path:
    """A VM disk that already holds the marker system for `mac` (a machine installed earlier)."""
    data = bytearray(image.read_bytes())
    at = data.index(PLACEHOLDER) + MAC_OFFSET_IN_PLACEHOLDER
    data[at : at + 17] = mac.lower().encode()
    data += b"\x00" * (size_mb * 1024 * 1024 - len(data))
    out.write_bytes(bytes(data))
    return out


def blank_disk(out: Path, size_mb: int = UEFI_DISK_MB) -> Path:
    with out.open("wb") as f:
        f.truncate(size_mb * 1024 * 1024)
    return out


def build(cache: Path) -> Installer:
    """Build (or reuse from `cache`) everything the e2e tests boot."""
    cache.mkdir(parents=True, exist_ok=True)
    root = fetch_kernel(cache)
    (vmlinuz,) = root.glob("boot/vmlinuz-*")
    bios = cache / "marker-bios.img"
    uefi = cache / "marker-uefi.img"
    uefi_sb = cache / "marker-uefi-sb.img"
    initrd = cache / "installer.initrd.gz"
    sources = [
        HERE / n for n in ("init", "udhcpc.script", "mbr.asm", "grub-marker.cfg", "build.py")
    ]
    newest = max(p.stat().st_mtime for p in sources)
    if not initrd.exists() or initrd.stat().st_mtime < newest:
        build_bios_image(bios)
        build_uefi_image(uefi, cache / "esp")
        uefi_sb.unlink(missing_ok=True)
        if SIGNED_SHIM.exists() and SIGNED_GRUB.exists():  # else the Secure Boot test skips
            build_uefi_sb_image(uefi_sb, cache / "esp-sb")
        build_initrd(initrd, root, bios, uefi, uefi_sb if uefi_sb.exists() else None)
    return Installer(
        kernel=vmlinuz,
        initrd=initrd,
        bios_image=bios,
        uefi_image=uefi,
        uefi_sb_image=uefi_sb if uefi_sb.exists() else None,
    )


if __name__ == "__main__":
    import sys

    print(build(Path(sys.argv[1] if len(sys.argv) > 1 else "build/e2e")))
