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
from pathlib import Path

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
    """Read <data_dir>/site.key, creating it (mode 0600) on first use.

    Several boot servers sharing one database must share this file too.
    """
    path = data_dir / "site.key"
    try:
        return bytes.fromhex(path.read_text().strip())
    except FileNotFoundError:
        pass
    data_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_bytes(TOKEN_BYTES)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process won the race; use its key
        return bytes.fromhex(path.read_text().strip())
    try:
        os.write(fd, key.hex().encode() + b"\n")
    finally:
        os.close(fd)
    return key
