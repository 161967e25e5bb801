"""Images: the imported images (server/images.py) and every file under the images
directory, each with the profiles that boot it. Importing and verifying stay in the CLI
(`bootfleet images ...`): hashing gigabytes does not belong in a page view."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from flask.typing import ResponseReturnValue

from server import images
from server.context import fleet
from server.errors import BootfleetError
from server.registry import profiles
from server.registry.database import session_scope
from server.web.blueprint import bp
from server.web.pages import page

MAX_FILES = 2000


@dataclass(frozen=True)
class ImageFile:
    path: str  # relative to the images directory, with '/' separators
    size: int
    modified: datetime


def image_files(root: Path, limit: int = MAX_FILES) -> tuple[list[ImageFile], bool]:
    """Regular files under `root`, sorted by path (symlinks not followed); True if there
    were more than `limit`."""
    found: list[ImageFile] = []
    if not root.is_dir():
        return found, False
    for folder, dirs, names in os.walk(root, followlinks=False):
        dirs.sort()
        for name in sorted(names):
            path = Path(folder, name)
            try:
                st = path.lstat()
            except OSError:
                continue
            if not stat.S_ISREG(st.st_mode):  # symlinks, sockets, devices: not served
                continue
            if len(found) >= limit:
                return sorted(found, key=lambda f: f.path), True
            found.append(
                ImageFile(
                    path=path.relative_to(root).as_posix(),
                    size=st.st_size,
                    modified=datetime.fromtimestamp(st.st_mtime, UTC),
                )
            )
    return sorted(found, key=lambda f: f.path), False


@bp.app_template_filter("size")
def human_size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"  # pragma: no cover


@bp.get("/images")
def image_list() -> ResponseReturnValue:
    root = fleet().settings.images
    files, truncated = image_files(root)
    problem = None
    try:
        imported = images.list_images(root)
    except (BootfleetError, OSError, ValueError, KeyError) as exc:  # a damaged image.json
        imported, problem = [], f"Could not read the imported images: {exc}"
    with session_scope(fleet().engine) as s:
        rows = profiles.list_all(s)
    used: dict[str, list[str]] = {}  # file path -> profiles that boot it
    by_image: dict[str, list[str]] = {}  # image name -> profiles with files in it
    for p in rows:
        for ref in (p.kernel, *p.initrd):
            used.setdefault(ref, []).append(p.name)
            top = ref.split("/", 1)[0]
            if "/" in ref and p.name not in by_image.get(top, []):
                by_image.setdefault(top, []).append(p.name)
    return page(
        "images.html",
        root=root,
        imported=imported,
        problem=problem,
        files=files,
        truncated=truncated,
        used=used,
        by_image=by_image,
        limit=MAX_FILES,
    )
