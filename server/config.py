"""Settings: embedded defaults, then BOOTFLEET_* environment variables, then command-line flags.

Every setting has one name. The environment variable is BOOTFLEET_<NAME upper-cased>, the flag
is --<name with dashes>. `Settings.load(env, overrides)` applies the three layers in order.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from importlib import resources
from pathlib import Path
from typing import Any

from server.errors import InvalidInput

PACKAGE_DIR = Path(__file__).resolve().parent


def _shipped_templates() -> Path:
    """The templates that came with this release: package data in an installed wheel
    (server/pxe_templates/), else pxe_templates/ beside server/ in a checkout."""
    shipped = resources.files("server").joinpath("pxe_templates")
    if isinstance(shipped, Path) and shipped.is_dir():
        return shipped
    return PACKAGE_DIR.parent / "pxe_templates"


DEFAULT_TEMPLATES_DIR = _shipped_templates()


def _default_data_dir() -> Path:
    if os.geteuid() == 0:
        return Path("/var/lib/bootfleet")
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "bootfleet"


def _default_tftp_port() -> int:
    # Port 69 needs root (or CAP_NET_BIND_SERVICE); an unprivileged demo falls back to 6969.
    return 69 if os.geteuid() == 0 else 6969


@dataclass(frozen=True)
class Settings:
    data_dir: Path = field(default_factory=_default_data_dir)
    images_dir: Path | None = None  # None: <data_dir>/images
    templates_dir: Path = DEFAULT_TEMPLATES_DIR
    database_url: str | None = None  # None: sqlite:///<data_dir>/bootfleet.db
    bind: str = "0.0.0.0"
    http_port: int = 8080
    tftp_port: int = field(default_factory=_default_tftp_port)
    tftp_enabled: bool = True
    tftp_max_blksize: int = 1468  # RFC 2348 allows more; Ethernet MTU 1500 - 32 does not
    tftp_max_transfers: int = 500  # concurrent transfers in all
    tftp_per_source: int = 64  # concurrent transfers from one address
    # The largest RFC 2349 `timeout` honoured (a longer one is left out of the OACK), and the
    # seconds after which a transfer ends, done or not: with the defaults a silent peer frees
    # its slot within 48 s, any peer within 300 s (docs/tftp.md).
    tftp_max_timeout: int = 8
    tftp_max_transfer_seconds: int = 300
    # Event-loop threads for TFTP transfers. One Python thread runs at a time, so a second
    # loop mostly adds GIL hand-offs: one loop served a 200-client storm ~20 % faster
    # (docs/tftp.md). A server with idle cores and many clients may try 2.
    tftp_loops: int = 1
    # Threads in each of the two TFTP pools (opening files; resolving and rendering boot
    # configs). 0: one with SQLite, whose queries never wait on a network, so a second thread
    # only contends for the GIL (per-MAC configs ~10 % more per second, ~15 % less CPU each,
    # and a small static file ~25 % less CPU, at 16 requests in flight); four with a database
    # server, where threads overlap the round trips.
    tftp_workers: int = 0
    interface: str | None = None  # advertise this interface's IPv4 address
    advertise: str | None = None  # or exactly this address / host name
    boot_timeout: int = 30 * 60  # seconds without a boot-file fetch before an install fails
    progress_timeout: int = 2 * 60 * 60  # seconds without progress before an install fails
    grace_seconds: int = 120  # re-reads of an installer config within this window: same answer
    reap_interval: float = 30.0
    # Seconds between rounds of scheduled group reinstalls (waves): how soon the next member
    # starts after one finishes, and how late a wave starts after its time.
    wave_interval: float = 5.0
    # Unregistered machines that boot iPXE get a menu: boot from disk (the default, after
    # a few seconds) or ask to be registered. Off: they boot from disk without a word.
    unknown_menu: bool = False
    # Retention, applied by the reaper thread every few minutes (server/retention.py): the
    # newest machines seen without being registered, the newest events of each MAC, and no
    # event older than event_days.
    discovered_max: int = 10_000
    events_per_mac: int = 1_000
    event_days: int = 365
    db_busy_timeout: int = 5000  # ms a SQLite write waits for a lock before answering 503
    # Per source address, for boot scripts and installer callbacks (0 turns the limit off).
    rate_limit: float = 10.0  # requests per second, sustained
    rate_burst: int = 120  # requests at once
    # Threads running requests. Python runs one at a time (the GIL), so more threads only
    # contend: at 100,000 clients 4 threads answered /ipxe ~15 % faster than 16, p99 11-16 ms
    # against 20-25 ms (wrk, 16 connections). No request holds one long: whole-file image
    # downloads are sent by waitress's I/O loop (wsgi.file_wrapper).
    http_threads: int = 4
    log_level: str = "INFO"
    # ProxyDHCP (PXE 2.1, docs/proxydhcp.md): boot information for PXE clients beside the
    # site's own DHCP server, which keeps handing out the addresses. Off by default.
    proxy_dhcp: bool = False
    # Who is answered: "all" PXE clients, "registered" MACs, or only MACs with a
    # "reinstall" in flight (every other machine never sees Bootfleet).
    proxy_dhcp_scope: str = "all"
    # Boot files per client architecture over the defaults: "bios=pxelinux.0,efi64=..."
    # (server/proxydhcp/policy.py: DEFAULT_FILES); "{server}" is the advertised URL.
    proxy_dhcp_files: str = ""
    # Option 43 with PXE_DISCOVERY_CONTROL = 8 in offers: "boot the file given". Without it
    # UEFI (EDK2) firmware takes the offer as a BINL one and asks port 4011 for the file.
    proxy_dhcp_discovery_control: bool = True
    proxy_dhcp_port: int = 67  # RFC 2131 server port
    proxy_dhcp_pxe_port: int = 4011  # PXE 2.1: the UEFI firmware's DHCPREQUEST to the proxy

    def __post_init__(self) -> None:
        if self.proxy_dhcp_scope not in PROXY_DHCP_SCOPES:
            raise InvalidInput("proxy_dhcp_scope", f"must be one of {', '.join(PROXY_DHCP_SCOPES)}")
        for name, low, high in _BOUNDS:
            value = getattr(self, name)
            if not low <= value <= high:
                shown = f"at least {low}" if high == _NO_LIMIT else f"{low} to {high}"
                raise InvalidInput(name, f"must be {shown}, not {value}")

    @property
    def images(self) -> Path:
        return self.images_dir if self.images_dir is not None else self.data_dir / "images"

    @property
    def tftp_threads(self) -> int:
        """Threads per TFTP pool: tftp_workers, or the automatic choice (see there)."""
        if self.tftp_workers:
            return self.tftp_workers
        return 1 if self.db_url.startswith("sqlite") else 4

    @property
    def db_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir / 'bootfleet.db'}"

    @classmethod
    def load(
        cls, env: Mapping[str, str] | None = None, overrides: Mapping[str, Any] | None = None
    ) -> Settings:
        """Build settings from defaults, then `env` (BOOTFLEET_*), then `overrides` (flags).

        Overrides whose value is None are ignored, so unset flags do not mask the environment.
        """
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        came_from: dict[str, str] = {}  # setting -> the variable or flag that set it
        for f in fields(cls):
            raw = env.get(f"BOOTFLEET_{f.name.upper()}")
            if raw is not None and raw != "":
                values[f.name] = _coerce(f.name, f.type, raw)
                came_from[f.name] = f"BOOTFLEET_{f.name.upper()}"
        for name, value in (overrides or {}).items():
            if value is None:
                continue
            if name not in {f.name for f in fields(cls)}:
                raise InvalidInput(name, "unknown setting")
            values[name] = _coerce(name, _field_type(cls, name), value)
            came_from[name] = "--" + name.replace("_", "-")
        try:
            return cls(**values)
        except InvalidInput as exc:  # out of bounds: name where the value came from
            raise InvalidInput(came_from.get(exc.field, exc.field), exc.detail) from None

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)


_NO_LIMIT = float("inf")
PROXY_DHCP_SCOPES = ("all", "registered", "reinstall")  # who the proxyDHCP answers
# (setting, lowest, highest): a value outside is refused when the settings are built, so
# `--http-threads 0` is a one-line error rather than a server that never answers.
_BOUNDS: tuple[tuple[str, float, float], ...] = (
    ("http_port", 0, 65535),
    ("tftp_port", 0, 65535),
    ("proxy_dhcp_port", 0, 65535),
    ("proxy_dhcp_pxe_port", 0, 65535),
    ("http_threads", 1, 256),
    ("tftp_max_blksize", 8, 65464),  # RFC 2348 (server.tftp.options; importing it costs 60 ms)
    ("tftp_max_transfers", 1, _NO_LIMIT),
    ("tftp_per_source", 1, _NO_LIMIT),
    ("tftp_max_timeout", 1, 255),  # RFC 2349
    ("tftp_max_transfer_seconds", 1, 24 * 60 * 60),
    ("tftp_loops", 1, 16),
    ("tftp_workers", 0, 64),
    ("boot_timeout", 0, _NO_LIMIT),  # 0: deadlines pass at once (the race tests use it)
    ("progress_timeout", 0, _NO_LIMIT),
    ("grace_seconds", 0, _NO_LIMIT),
    ("reap_interval", 0.01, _NO_LIMIT),
    ("wave_interval", 0.1, _NO_LIMIT),
    ("discovered_max", 1, _NO_LIMIT),
    ("events_per_mac", 1, _NO_LIMIT),
    ("event_days", 1, _NO_LIMIT),
    ("db_busy_timeout", 0, _NO_LIMIT),
    ("rate_limit", 0, _NO_LIMIT),
    ("rate_burst", 1, _NO_LIMIT),
)


def _field_type(cls: type, name: str) -> Any:
    return next(f.type for f in fields(cls) if f.name == name)


def _coerce(name: str, typ: Any, value: Any) -> Any:
    """Turn a string (or flag value) into the field's type, naming the setting on error."""
    typ = str(typ)
    if not isinstance(value, str):
        return Path(value) if "Path" in typ and isinstance(value, os.PathLike) else value
    try:
        if "Path" in typ:
            return Path(value).expanduser()
        if typ.startswith("bool"):
            lowered = value.strip().lower()
            if lowered in {"1", "true", "yes", "on"}:
                return True
            if lowered in {"0", "false", "no", "off"}:
                return False
            raise ValueError(value)
        if typ.startswith("int"):
            return int(value)
        if typ.startswith("float"):
            return float(value)
    except ValueError:
        raise InvalidInput(f"BOOTFLEET_{name.upper()}", f"bad value {value!r}") from None
    return value
