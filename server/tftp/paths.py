"""Map a requested TFTP file name to a regular file under the root, or refuse it."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

MAX_NAME = 512
_ESCAPE = re.compile(r"%[0-9a-fA-F]{2}")


class Refused(Exception):
    """The name may not be served; `code` is the TFTP error code (1 not found, 2 access)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def normalize(name: str) -> str:
    """Return the name as a clean relative path ('a/b/c'), or raise Refused.

    Backslashes count as separators (Windows-style loaders ask for 'boot\\x86\\pxe.com'),
    leading slashes are dropped (firmware asks '/pxelinux.0' meaning the root; as tftp-hpa
    -s does), and any component made of dots only ('..', '...', '....') is refused rather
    than interpreted. URL escapes and control characters are refused: TFTP names are literal.
    """
    if not name or len(name) > MAX_NAME:
        raise Refused(1, "bad file name length")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in name):
        raise Refused(2, "control character in file name")
    if _ESCAPE.search(name):
        raise Refused(2, "escaped characters in file name")
    parts = [p for p in name.replace("\\", "/").split("/") if p not in ("", ".")]
    if not parts:
        raise Refused(1, "no file name")
    if any(set(p) == {"."} for p in parts):
        raise Refused(2, "path traversal")
    return "/".join(parts)


def open_regular(root: Path, relpath: str) -> tuple[int, os.stat_result]:
    """Open root/relpath read-only; return (fd, stat). The caller owns the fd.

    The real path (symlinks resolved) must lie inside the real root, and the opened object
    must be a regular file. O_NONBLOCK keeps a FIFO from blocking the open; the check after
    opening (/proc/self/fd) closes the race with a symlink swapped in between.
    """
    real_root = os.path.realpath(root)
    target = os.path.realpath(os.path.join(real_root, relpath))
    if not _inside(target, real_root):
        raise Refused(2, "outside the root")
    try:
        fd = os.open(target, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise Refused(1, "file not found") from None
    except (PermissionError, OSError):
        raise Refused(2, "cannot open file") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise Refused(2, "not a regular file")
        try:
            opened = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:  # no /proc: the realpath check above stands alone
            opened = target
        if not _inside(opened, real_root):
            raise Refused(2, "outside the root")
    except BaseException:
        os.close(fd)
        raise
    return fd, st


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")
