"""The release this code belongs to, as installed (the wheel's or the checkout's metadata)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    VERSION = version("bootfleet")
except PackageNotFoundError:  # imported from a checkout that was never installed
    VERSION = "0+unknown"
