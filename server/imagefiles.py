"""Serve one file under images/ over HTTP: kernels, initrds, boot loaders, iPXE scripts.

Werkzeug's send_file streams from the open file (or the server's wsgi.file_wrapper), answers
single byte ranges (206, 416 with `Content-Range: bytes */size`, If-Range), and sets ETag,
Last-Modified and 304 for If-None-Match / If-Modified-Since, as RFC 9110 asks. Two things it
gets wrong for us are handled here: the path must stay inside images/ (no traversal, no symlink
out, nothing hidden, only regular files), and the type is fixed by suffix rather than guessed,
because a guess turns `initrd.gz` into `Content-Encoding: gzip` and clients then unpack it.
Werkzeug also answers 416 where RFC 9110 wants the Range ignored or the whole file sent;
`_range_for()` rewrites the Range header before werkzeug sees it (see its docstring).
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path, PurePosixPath

import flask
from werkzeug.utils import send_file

from server.errors import NotFound

OCTET = "application/octet-stream"
TEXT = "text/plain"  # werkzeug adds "; charset=utf-8"
# Suffixes served as text; everything else (kernels, initrds, .efi, .kpxe, .0, .c32, .wim) is
# opaque bytes.
_TEXT_SUFFIXES = frozenset({".ipxe", ".cfg", ".conf", ".txt", ".sh", ".toml", ".json", ".xml"})
_TEXT_NAMES = frozenset({"SHA256SUMS", "grub.cfg", "default"})


def content_type(relpath: str) -> str:
    """The Content-Type for a file under images/, by suffix."""
    path = PurePosixPath(relpath)
    if path.suffix.lower() in _TEXT_SUFFIXES or path.name in _TEXT_NAMES:
        return TEXT
    if "pxelinux.cfg" in path.parts[:-1]:
        return TEXT
    return OCTET


def resolve_image_path(images_dir: Path, relpath: str) -> Path:
    """The real path of `relpath` under images_dir, or NotFound (for every kind of refusal)."""
    parts = relpath.split("/")
    if (
        not relpath
        or "\\" in relpath
        or "\x00" in relpath
        or relpath.startswith("/")
        or any(p in ("", ".", "..") or p.startswith(".") for p in parts)
    ):
        raise NotFound(f"no image file {relpath[:200]!r}")
    root = Path(images_dir).resolve()
    try:
        real = root.joinpath(*parts).resolve(strict=True)
        mode = os.stat(real).st_mode
    except (OSError, RuntimeError):
        raise NotFound(f"no image file {relpath[:200]!r}") from None
    if not real.is_relative_to(root) or not stat.S_ISREG(mode):
        raise NotFound(f"no image file {relpath[:200]!r}")
    return real


_BYTES = re.compile(r"^\s*bytes\s*=\s*(.*)$", re.IGNORECASE)
_SUFFIX = re.compile(r"^-\s*([0-9]+)\s*$")


def _range_for(header: str | None, size: int) -> str | None:
    """The Range header werkzeug should see, per RFC 9110 section 14.

    - another unit than bytes: ignored (14.2: a server MUST ignore a unit it does not know);
    - several ranges: ignored, the whole file is sent (14.2: a server MAY ignore Range);
    - a suffix longer than the file: the whole file as a range (14.1.2);
    - anything else goes on unchanged: werkzeug serves it, or answers 416 when unsatisfiable.
    """
    if header is None:
        return None
    match = _BYTES.match(header)
    if match is None:
        return None
    spec = match.group(1)
    if "," in spec:
        return None
    suffix = _SUFFIX.match(spec)
    if suffix is not None and size > 0 and int(suffix.group(1)) >= size:
        return "bytes=0-"
    return header


def send_image(images_dir: Path, relpath: str) -> flask.Response:
    """Stream images_dir/relpath with Content-Length, Range, ETag and Last-Modified."""
    path = resolve_image_path(images_dir, relpath)
    environ = dict(flask.request.environ)
    wanted = _range_for(environ.pop("HTTP_RANGE", None), path.stat().st_size)
    if wanted is not None:
        environ["HTTP_RANGE"] = wanted
    app = flask.current_app
    response = send_file(
        path,
        environ,
        mimetype=content_type(relpath),
        conditional=True,
        etag=True,
        max_age=app.get_send_file_max_age,
        response_class=app.response_class,
    )
    return response  # type: ignore[return-value]
