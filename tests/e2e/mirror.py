"""A local Debian mirror for the real-installer test, built from Debian's packages by name.

The archive's own signed `InRelease` (and `Release` + `Release.gpg`) and its compressed
`Packages` indexes are copied byte for byte, so debian-installer verifies the signature and
every index hash exactly as it does against a real mirror; only the packages an install of the
shipped preseed needs are put into `pool/`. Everything is fetched with apt's own clients from the
archive the machine's apt sources name: `apt-get update` (with a private state directory),
`apt-helper download-file` (checked against the hashes in the verified `InRelease`) and
`apt-get download NAME=VERSION`.

Which packages:
- udebs: what netboot d-i's anna loads on its own (priority standard and above, for the
  installer's kernel), every kernel-module udeb of that kernel, and their dependencies;
- debs: what apt's own resolver picks, Recommends included as d-i installs them, for
  debootstrap's base (priority required and important) plus the kernel, both GRUB flavours,
  openssh-server and the rest of what d-i adds to a minimal system.

The result is cached (keyed by the InRelease date and the package lists) outside the checkout.
"""

from __future__ import annotations

import hashlib
import lzma
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

SUITE = "bookworm"
ARCH = "amd64"
COMPONENTS = ("main", "non-free-firmware")
KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")
NETBOOT = Path("/usr/lib/debian-installer/images/12/amd64/text/debian-installer/amd64")
INDEXES = (
    *(f"{c}/binary-{ARCH}/Packages" for c in COMPONENTS),
    f"main/debian-installer/binary-{ARCH}/Packages",
)
# What d-i installs into a minimal system beyond debootstrap's base (required + important):
# base-installer (kernel, initramfs), grub-installer (either flavour, os-prober),
# pkgsel (the preseed's pkgsel/include, tasksel, popularity-contest), hw-detect (discover).
EXTRA_DEBS = (
    "linux-image-amd64",
    "initramfs-tools",
    "busybox",
    "os-prober",
    "openssh-server",
    "efibootmgr",
    "tasksel",
    "popularity-contest",
    "discover",
    "laptop-detect",
)
LAYOUT = 2  # bump when what the builder lays out changes: the cached mirror is rebuilt
GRUB_FLAVOURS = (("grub-pc",), ("grub-efi-amd64", "grub-efi-amd64-signed", "shim-signed"))


@dataclass(frozen=True)
class Mirror:
    root: Path  # serve this directory; the archive is at <root>/debian
    packages: int
    size: int  # bytes of the packages in pool/
    build_seconds: float
    missing: tuple[str, ...] = ()  # wanted, but the archive (or the way to it) refused them

    def without(self, name: str, dest: Path) -> Mirror:
        """A copy (hard links) of this mirror lacking package `name`'s file: a broken mirror."""
        shutil.rmtree(dest, ignore_errors=True)
        shutil.copytree(self.root, dest, copy_function=os.link)
        dropped = [f for f in dest.rglob(f"{name}_*") if f.is_file()]
        if not dropped:
            raise FileNotFoundError(f"{name} is not in the mirror")
        for f in dropped:
            f.unlink()
        return Mirror(dest, self.packages - 1, self.size, 0.0, (*self.missing, name))


def _run(cmd: list[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:4])}... failed ({proc.returncode}):\n{proc.stderr}")
    return proc.stdout


def archive_uri() -> str:
    """The Debian archive this machine's apt sources use for SUITE."""
    out = _run(["apt-get", "indextargets", "--format", "$(REPO_URI) $(RELEASE)"])
    for line in out.splitlines():
        uri, _, release = line.partition(" ")
        if release == SUITE:
            return uri.rstrip("/")
    raise RuntimeError(f"no apt source for {SUITE} on this machine:\n{out}")


def paragraphs(text: str) -> Iterator[dict[str, str]]:
    """deb822 paragraphs (continuation lines dropped: no field we read has any)."""
    for block in text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.splitlines():
            if line[:1] not in (" ", "\t", ""):
                key, _, value = line.partition(":")
                fields[key] = value.strip()
        if fields:
            yield fields


def release_hashes(release_text: str) -> dict[str, tuple[str, int]]:
    """path -> (sha256, size) from a Release file's SHA256 section."""
    hashes: dict[str, tuple[str, int]] = {}
    section = release_text.split("\nSHA256:\n", 1)[1]
    for line in section.splitlines():
        if not line.startswith(" "):
            break
        digest, size, path = line.split()
        hashes[path] = (digest, int(size))
    return hashes


def depends(field: str) -> Iterable[str]:
    for alternative in field.split(","):
        for name in alternative.split("|"):
            name = name.strip().split(" ")[0]
            if name:
                yield name


class Builder:
    """Builds the mirror under `cache`; `build()` returns it, reusing a finished one."""

    def __init__(self, cache: Path, uri: str | None = None) -> None:
        self.cache = cache
        self.uri = uri or archive_uri()
        self.apt = cache / "apt"
        self.root = cache / "root"
        self.archive = self.root / "debian"
        self.downloads = cache / "debs"

    # --- apt with a private state directory ------------------------------------------------

    def _apt_env(self) -> dict[str, str]:
        return {**os.environ, "APT_CONFIG": str(self.apt / "apt.conf"), "LC_ALL": "C"}

    def _apt_setup(self) -> None:
        for d in ("lists/partial", "cache/archives/partial"):
            (self.apt / d).mkdir(parents=True, exist_ok=True)
        (self.apt / "status").touch()
        components = " ".join((*COMPONENTS, "main/debian-installer"))
        (self.apt / "sources.list").write_text(
            f"deb [signed-by={KEYRING}] {self.uri} {SUITE} {components}\n"
        )
        (self.apt / "apt.conf").write_text(
            "\n".join(
                [
                    f'Dir::Etc::SourceList "{self.apt / "sources.list"}";',
                    'Dir::Etc::SourceParts "/dev/null";',
                    'Dir::Etc::Preferences "/dev/null";',
                    'Dir::Etc::PreferencesParts "/dev/null";',
                    f'Dir::State::Lists "{self.apt / "lists"}";',
                    f'Dir::State::status "{self.apt / "status"}";',  # an empty system
                    f'Dir::Cache "{self.apt / "cache"}";',
                    'Acquire::Languages "none";',
                    f'APT::Architecture "{ARCH}";',
                    f'APT::Architectures {{ "{ARCH}"; }};',
                    'APT::Sandbox::User "root";',
                    "",
                ]
            )
        )
        _run(["apt-get", "update", "-q"], env=self._apt_env())

    def _fetch(self, path: str, expect: tuple[str, int] | None) -> Path:
        """dists/SUITE/<path> from the archive into the mirror, hash-checked when known."""
        dest = self.archive / "dists" / SUITE / path
        dest.parent.mkdir(parents=True, exist_ok=True)
        cmd = ["/usr/lib/apt/apt-helper", "download-file", f"{self.uri}/dists/{SUITE}/{path}"]
        cmd.append(str(dest))
        if expect is not None:
            cmd.append(f"SHA256:{expect[0]}")
        _run(cmd, env=self._apt_env())
        return dest

    # --- the indexes -----------------------------------------------------------------------

    def _dists(self) -> dict[str, str]:
        """Copy the signed release files and the compressed indexes; return the indexes' text."""
        lists = self.apt / "lists"
        inrelease = next(lists.glob(f"*_dists_{SUITE}_InRelease"))  # apt verified it
        dists = self.archive / "dists" / SUITE
        dists.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(inrelease, dists / "InRelease")
        release = self._fetch("Release", None)
        signature = self._fetch("Release.gpg", None)
        _run(["gpgv", "--keyring", str(KEYRING), str(signature), str(release)])
        hashes = release_hashes(release.read_text())
        if hashes != release_hashes(inrelease.read_text()):
            raise RuntimeError("Release and InRelease disagree: the archive changed mid-fetch")
        texts = {}
        for index in INDEXES:
            # choose-mirror reads <component>/binary-<arch>/Release to check the architecture
            for name in (f"{index}.xz", f"{index}.gz", f"{index.rsplit('/', 1)[0]}/Release"):
                if name in hashes:
                    self._fetch(name, hashes[name])
            xz = dists / f"{index}.xz"
            texts[index] = lzma.decompress(xz.read_bytes()).decode()
        return texts

    # --- the package set -------------------------------------------------------------------

    def installer_kernel(self) -> str:
        out = _run(["sh", "-c", f"zcat {NETBOOT / 'initrd.gz'} | cpio -t 2>/dev/null"])
        m = re.search(r"^lib/modules/([^/\s]+)$", out, re.M)
        if not m:
            raise RuntimeError("no lib/modules/<version> in the netboot initrd")
        return m.group(1)

    def installer_udebs(self) -> set[str]:
        """The udebs already inside the netboot initrd (anna never fetches those)."""
        status = _run(
            ["sh", "-c", f"zcat {NETBOOT / 'initrd.gz'} | cpio -i --to-stdout var/lib/dpkg/status"]
        )
        return {p["Package"] for p in paragraphs(status)}

    def udeb_set(self, index: str) -> dict[str, str]:
        """name -> version of the udebs netboot d-i fetches for its kernel."""
        kernel = self.installer_kernel()
        table = {p["Package"]: p for p in paragraphs(index)}
        wanted = [
            name
            for name, p in table.items()
            if p.get("Kernel-Version") == kernel
            or (
                "Kernel-Version" not in p
                and p.get("Priority") in ("required", "important", "standard")
            )
        ]
        chosen: dict[str, str] = {}
        installed = self.installer_udebs()
        while wanted:
            name = wanted.pop()
            p = table.get(name)
            if name in chosen or name in installed or p is None:  # virtual: in the initrd
                continue
            if p.get("Kernel-Version", kernel) != kernel:
                continue
            chosen[name] = p["Version"]
            wanted.extend(depends(p.get("Depends", "") + "," + p.get("Pre-Depends", "")))
        return chosen

    def deb_set(self) -> dict[str, str]:
        """name -> version that apt installs on an empty system, for either firmware."""
        main = self._index_text[f"main/binary-{ARCH}/Packages"]
        base = [
            p["Package"] for p in paragraphs(main) if p.get("Priority") in ("required", "important")
        ]
        chosen: dict[str, str] = {}
        for grub in GRUB_FLAVOURS:
            out = _run(
                ["apt-get", "-s", "-q", "install", *base, *EXTRA_DEBS, *grub],
                env=self._apt_env(),
            )
            for m in re.finditer(r"^Inst (\S+) \((\S+) ", out, re.M):
                chosen[m.group(1)] = m.group(2)
        return chosen

    def _download(
        self, wanted: dict[str, str], table: dict[str, dict[str, str]]
    ) -> tuple[int, list[str]]:
        """`apt-get download` what is missing, then lay each file out at its pool path.

        Returns the bytes laid out and the names apt could not fetch."""
        self.downloads.mkdir(parents=True, exist_ok=True)
        os.chmod(self.downloads, 0o777)
        by_hash = {_sha256(f): f for f in self.downloads.iterdir() if f.suffix in (".deb", ".udeb")}
        missing = [n for n in wanted if table[n]["SHA256"] not in by_hash]
        for i in range(0, len(missing), 200):
            batch = [f"{n}={wanted[n]}" for n in missing[i : i + 200]]
            # apt fetches what it can and says which failed; the caller reports the missing
            subprocess.run(
                ["apt-get", "download", "-q", *batch],
                env=self._apt_env(),
                cwd=self.downloads,
                capture_output=True,
            )
        by_hash = {_sha256(f): f for f in self.downloads.iterdir() if f.suffix in (".deb", ".udeb")}
        size, missing = 0, []
        for name in wanted:
            entry = table[name]
            src = by_hash.get(entry["SHA256"])
            if src is None:
                missing.append(name)
                continue
            dest = self.archive / entry["Filename"]
            dest.parent.mkdir(parents=True, exist_ok=True)
            if not dest.exists():
                os.link(src, dest)
            size += int(entry["Size"])
        return size, missing

    def build(self) -> Mirror:
        started = time.monotonic()
        done = self.cache / "done"
        self._apt_setup()
        inrelease = next((self.apt / "lists").glob(f"*_dists_{SUITE}_InRelease")).read_bytes()
        layout = repr((LAYOUT, EXTRA_DEBS, GRUB_FLAVOURS)).encode()
        stamp = hashlib.sha256(inrelease + layout).hexdigest()
        if done.exists() and done.read_text().split()[0] == stamp:
            _, packages, size, seconds, *missing = done.read_text().split()
            return Mirror(self.root, int(packages), int(size), float(seconds), tuple(missing))
        shutil.rmtree(self.root, ignore_errors=True)
        self._index_text = self._dists()
        udeb_index = self._index_text[f"main/debian-installer/binary-{ARCH}/Packages"]
        deb_table: dict[str, dict[str, str]] = {}
        for component in COMPONENTS:
            for p in paragraphs(self._index_text[f"{component}/binary-{ARCH}/Packages"]):
                deb_table.setdefault(p["Package"], p)
        udebs = self.udeb_set(udeb_index)
        debs = self.deb_set()
        udeb_table = {p["Package"]: p for p in paragraphs(udeb_index)}
        udeb_size, udeb_missing = self._download(udebs, udeb_table)
        deb_size, deb_missing = self._download(debs, deb_table)
        missing = sorted(udeb_missing + deb_missing)
        count = len(udebs) + len(debs) - len(missing)
        seconds = time.monotonic() - started
        size = udeb_size + deb_size
        done.write_text(f"{stamp} {count} {size} {seconds:.1f} {' '.join(missing)}\n")
        return Mirror(self.root, count, size, seconds, tuple(missing))


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
