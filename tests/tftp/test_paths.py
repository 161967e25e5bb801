"""Safe path resolution: traversal in every spelling, symlinks, non-regular files."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from server.tftp import paths

from .conftest import ServiceFactory
from .helpers import Raw


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("pxelinux.0", "pxelinux.0"),
        ("/pxelinux.0", "pxelinux.0"),
        ("//boot//grub/./x.efi", "boot/grub/x.efi"),
        ("boot\\x64\\wdsnbp.com", "boot/x64/wdsnbp.com"),
        ("a.b/..c/d..", "a.b/..c/d.."),
    ],
)
def test_normalize_accepts(name: str, expected: str) -> None:
    assert paths.normalize(name) == expected


TRAVERSALS = [
    "../etc/passwd",
    "..",
    "sub/../../etc/passwd",
    "..\\..\\etc\\passwd",
    "sub\\..\\..\\secret",
    "...",
    ".../secret",
    "....//....//etc/passwd",
    "sub/.../x",
    "%2e%2e/secret",
    "%2E%2E%2Fsecret",
    "..%2fsecret",
    "%252e%252e/secret",
    "f511.bin\x00../secret",
    "a\x01b",
    "x" * 600,
    "",
    "/",
    "./",
]


@pytest.mark.parametrize("name", TRAVERSALS)
def test_normalize_refuses(name: str) -> None:
    with pytest.raises(paths.Refused):
        paths.normalize(name)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "ok.bin").write_bytes(b"ok")
    (tmp_path / "secret").write_bytes(b"secret")
    (root / "escape").symlink_to(tmp_path / "secret")
    (root / "escape-dir").symlink_to(tmp_path)
    (root / "dotdot").symlink_to("../secret")
    (root / "inside").symlink_to("ok.bin")
    (root / "sub" / "up").symlink_to("../ok.bin")
    os.mkfifo(root / "fifo")
    (root / "devnull").symlink_to("/dev/null")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(root / "sock"))
    sock.close()
    return root


def read(root: Path, name: str) -> bytes:
    fd, _ = paths.open_regular(root, paths.normalize(name))
    try:
        return os.read(fd, 100)
    finally:
        os.close(fd)


@pytest.mark.parametrize("name", ["ok.bin", "inside", "sub/up", "/ok.bin"])
def test_open_inside(tree: Path, name: str) -> None:
    assert read(tree, name) == b"ok"


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("escape", 2),
        ("escape-dir/secret", 2),
        ("dotdot", 2),
        ("fifo", 2),
        ("devnull", 2),
        ("sock", 2),
        ("sub", 2),
        ("missing", 1),
        ("sub/missing/deeper", 1),
    ],
)
def test_open_refuses(tree: Path, name: str, code: int) -> None:
    with pytest.raises(paths.Refused) as caught:
        read(tree, name)
    assert caught.value.code == code


def test_root_itself_through_symlink(tmp_path: Path, tree: Path) -> None:
    link = tmp_path / "link-root"
    link.symlink_to(tree)
    assert read(link, "ok.bin") == b"ok"


@pytest.mark.parametrize(
    "name",
    [*TRAVERSALS[:14], "escape", "escape-dir/secret", "dotdot", "fifo", "devnull", "sub"],
)
def test_refused_on_the_wire(make_service: ServiceFactory, tree: Path, name: str) -> None:
    service = make_service(root=tree)
    raw = Raw(service.port)
    try:
        raw.rrq(name.encode("latin-1"))
        opcode, code, _, _ = raw.recv()
        # 1 not found / 2 access violation; 4 where a NUL ends the name and the rest is
        # read as a bad mode.
        assert opcode == 5 and code in (1, 2, 4)
    finally:
        raw.close()
    assert (tree.parent / "secret").read_bytes() == b"secret"
