"""Secrets: admin tokens and one-time install tokens.

Tokens are 256-bit random values shown once; the registry stores only their SHA-256 (a fast
hash is right here: the token carries 256 bits of entropy, so it cannot be guessed offline).
Install tokens are derived as HMAC(site key, install salt), so the server can hand the same
token out again inside the grace window without ever storing it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import tempfile
from pathlib import Path

from server.errors import StartupError

TOKEN_BYTES = 32


def new_token() -> str:
    return secrets.token_hex(TOKEN_BYTES)


def new_salt() -> str:
    return secrets.token_hex(16)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def install_token(site_key: bytes, salt: str) -> str:
    """256 bits as 43 URL-safe characters: install URLs must stay short, because Windows
    limits one RunSynchronous command line to 259 characters."""
    digest = hmac.new(site_key, f"install:{salt}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def load_site_key(data_dir: Path) -> bytes:
    """Read <data_dir>/site.key, creating it (mode 0600) on first use; StartupError, naming
    the file, if it holds less than a whole key.

    Several boot servers sharing one database must share this file too. It appears whole or
    not at all: written to a temporary file beside it, fsync'd, then hard-linked into place.
    A link, unlike a rename, never replaces a key another starter put there first, so two
    starters at once both end up with that one.
    """
    path = data_dir / "site.key"
    if not path.exists():
        _create_site_key(path)
    return _read_site_key(path)


def _create_site_key(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".site.key.", dir=path.parent)  # mode 0600
    try:
        try:
            os.write(fd, secrets.token_hex(TOKEN_BYTES).encode() + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)
        except FileExistsError:  # another starter was first: its key is the one
            return
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)  # the new name survives a power cut
        finally:
            os.close(dir_fd)
    finally:
        os.unlink(tmp)


def _read_site_key(path: Path) -> bytes:
    text = path.read_text().strip()
    try:
        key = bytes.fromhex(text)
    except ValueError:
        problem = "not hex digits"
    else:
        if len(key) >= TOKEN_BYTES:
            return key
        problem = f"{len(key)} of {TOKEN_BYTES} bytes" if key else "empty"
    raise StartupError(
        f"site key {path} is broken ({problem}): restore it from a backup, or delete it to "
        "make a new one (install tokens handed out and web sessions then stop working)"
    )
