"""Real clients from Debian (and tftpy's own) download byte-identical files."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.tftp import TftpService
from server.tftp.content import FileCache, to_netascii

from .conftest import ServiceFactory
from .helpers import Raw, download, tftpy_download

CASES = [
    (client, blksize, name)
    for client in ("curl", "atftp", "busybox", "tftpy")
    for blksize in (512, 1468, 8192)
    for name in ("fempty.bin", "f511.bin", "f512.bin", f"x{blksize}.bin")
] + [("tftp-hpa", 512, name) for name in ("fempty.bin", "f511.bin", "f512.bin", "x512.bin")]


def fetch(client: str, port: int, name: str, out: Path, **kw: object) -> None:
    if client == "tftpy":
        tftpy_download(port, name, out, kw.get("blksize"))  # type: ignore[arg-type]
        return
    done = download(client, port, name, out, **kw)  # type: ignore[arg-type]
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize(("client", "blksize", "name"), CASES)
def test_download(
    client: str, blksize: int, name: str, service: TftpService, root: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    fetch(client, service.port, name, out, blksize=blksize)
    assert out.read_bytes() == (root / name).read_bytes()


@pytest.mark.parametrize(
    ("client", "blksize"),
    [("curl", 1468), ("atftp", 8192), ("busybox", 1468), ("tftpy", 1468), ("tftp-hpa", None)],
)
def test_ten_mebibytes(
    client: str, blksize: int | None, service: TftpService, big: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    fetch(client, service.port, "big.bin", out, blksize=blksize)
    assert out.read_bytes() == big.read_bytes()


@pytest.mark.parametrize(("blksize", "windowsize"), [(1468, 4), (1468, 16), (1468, 64), (8192, 64)])
def test_atftp_windowsize(
    blksize: int, windowsize: int, service: TftpService, big: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    done = download("atftp", service.port, "big.bin", out, blksize=blksize, windowsize=windowsize)
    assert done.returncode == 0, done.stderr
    assert out.read_bytes() == big.read_bytes()


@pytest.mark.parametrize("client", ["curl", "atftp", "busybox", "tftpy"])
def test_blksize_clamped_to_default_max(
    client: str, make_service: ServiceFactory, root: Path, tmp_path: Path
) -> None:
    service = make_service()  # max_blksize 1468
    out = tmp_path / "out"
    fetch(client, service.port, "x8192.bin", out, blksize=8192)
    assert out.read_bytes() == (root / "x8192.bin").read_bytes()


@pytest.mark.parametrize("mode", ["ascii", "netascii"])
def test_netascii_with_tftp_hpa(
    mode: str, service: TftpService, root: Path, tmp_path: Path
) -> None:
    text = b"DEFAULT menu.c32\nLABEL local\n  LOCALBOOT 0\n\nend\n" * 40  # > 1 block
    (root / "text.cfg").write_bytes(text)
    out = tmp_path / "out"
    done = download("tftp-hpa", service.port, "text.cfg", out, mode=mode)
    assert done.returncode == 0, done.stderr
    assert out.read_bytes() == text


def boundary_text() -> bytes:
    """Text whose LFs and bare CRs fall at every offset of a 512-byte block (so pairs are cut
    CR | LF and CR | NUL between blocks), past several 64 KiB conversion chunks, ending in a
    CR, and whose netascii form is an exact number of blocks (the last DATA is empty)."""
    text = bytearray()
    n = 0
    while len(text) < 200_000:
        text += b"x" * (n * 7 % 37) + (b"\n", b"\r", b"\r\n")[n % 3]
        n += 1
    text += b"\r"
    while len(to_netascii(bytes(text))) % 512:
        text[-1:-1] = b"z"
    return bytes(text)


@pytest.mark.parametrize("cached", [True, False], ids=["cached", "from-disk"])
def test_netascii_across_block_boundaries(
    make_service: ServiceFactory, root: Path, tmp_path: Path, cached: bool
) -> None:
    text = boundary_text()
    (root / "cut.cfg").write_bytes(text)
    service = make_service(cache=FileCache() if cached else FileCache(max_file=0))
    out = tmp_path / "out"
    done = download("tftp-hpa", service.port, "cut.cfg", out, mode="netascii")
    assert done.returncode == 0, done.stderr
    assert out.read_bytes() == text  # tftp-hpa turns netascii back into the local form
    raw = Raw(service.port)
    try:
        assert raw.fetch("cut.cfg", mode="netascii") == to_netascii(text)  # the wire, exactly
    finally:
        raw.close()


def test_subdirectory_and_leading_slash(service: TftpService, root: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    fetch("curl", service.port, "/sub/undionly.kpxe", out)
    assert out.read_bytes() == (root / "sub" / "undionly.kpxe").read_bytes()
