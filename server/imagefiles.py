"""Serve one file under the images directory over HTTP (minimal version; the full one with
its RFC 9110 tests replaces it)."""

from __future__ import annotations

from pathlib import Path

from flask import Response, send_file

from server.errors import NotFound


def send_image(images_dir: Path, relpath: str) -> Response:
    root = images_dir.resolve()
    try:
        path = (root / relpath).resolve(strict=True)
    except (OSError, RuntimeError):
        raise NotFound(f"no image file {relpath!r}") from None
    if not path.is_relative_to(root) or not path.is_file():
        raise NotFound(f"no image file {relpath!r}")
    return send_file(path, conditional=True, etag=True, max_age=0)
