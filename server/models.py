"""Registry tables (SQLModel) and the API shapes built on them.

The "several models" pattern: `*Create` is what the API accepts, `*Update` has every field
optional and is applied with `model_dump(exclude_unset=True)`, `*Public` is what it returns.
Validation lives here, on the types; the HTTP layer only moves data in and out.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Callable
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, TypeVar

from pydantic import (
    AfterValidator,
    ConfigDict,
    PlainSerializer,
    StringConstraints,
    field_serializer,
    field_validator,
)
from pydantic import (
    Strict as Strictness,
)
from sqlalchemy import JSON, Column, DateTime, Index, String, Text
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel

from server.errors import InvalidInput
from server.lifecycle import InstallState, State
from server.macaddr import normalize_mac

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
HOSTNAME_LABEL_RE = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")
VARIABLE_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_NOT_ONE_WORD = re.compile(r"""[^!-~]|["',\\]""")
_IMAGE_PATH_PART = re.compile(r"[A-Za-z0-9._+~@-]+")
FAILURE_LOG_MAX = 64 * 1024
# VARCHAR(n) columns that take API input: the input types carry the same n, so an over-long
# value is a 400 naming the field on every database, not a 500 from the column.
IMAGE_REF_MAX = 1024
CMDLINE_MAX = 4096
DESCRIPTION_MAX = 1024
# The largest id a row can have: PostgreSQL's INTEGER (SQLite's is 2**63 - 1). An id from a
# URL past it is no row, not a database error.
ROW_ID_MAX = 2**31 - 1
FACT_MAX = 128  # one hardware fact a machine reports (SMBIOS strings are short)


def utcnow() -> datetime:
    return datetime.now(UTC)


class UtcTimestamp(TypeDecorator[datetime]):
    """Every timestamp column: aware UTC in, aware UTC out, on every database.

    SQLite keeps no offset and a PostgreSQL `timestamp without time zone` column (what
    sqlmodel before 0.0.45 made of `datetime`) neither: what comes back naive is UTC,
    because the engine holds PostgreSQL sessions to UTC (registry/database.py). The SQL
    type is `DateTime(timezone=True)`, what sqlmodel 0.0.45 and later emit for `datetime`,
    so existing schemas need no migration."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.utcoffset() is None:
            raise ValueError("timestamps must be timezone-aware (use models.utcnow())")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.utcoffset() is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


E = TypeVar("E", bound=StrEnum)


class StateText(TypeDecorator[E]):
    """A lifecycle state column: the enum in Python, its value as VARCHAR(16) in SQL (the
    type a plain `str` field of max_length 16 had, so the schema is unchanged)."""

    impl = String(16)
    cache_ok = True

    def __init__(self, enum: type[E]) -> None:
        super().__init__()
        self.enum = enum

    def process_bind_param(self, value: E | str | None, dialect: Dialect) -> str | None:
        if value is None:
            return None
        return value.value if isinstance(value, self.enum) else self.enum(value).value

    def process_result_value(self, value: str | None, dialect: Dialect) -> E | None:
        return None if value is None else self.enum(value)


def timestamp(*, now: bool = False, index: bool = False) -> Any:
    """A UtcTimestamp column: starting at the time of the row's creation, or empty."""
    if now:
        return Field(default_factory=utcnow, index=index, sa_type=UtcTimestamp)
    return Field(default=None, index=index, sa_type=UtcTimestamp)


# Variables whose values are secrets (password hashes, product keys): stored and rendered
# into answer files, but never sent back in an API answer. An update that sends the
# placeholder back keeps the stored value.
SECRET_VARIABLE = re.compile(r"password|secret|passphrase|product_key", re.IGNORECASE)
REDACTED = "<redacted>"


def redact_variables(variables: dict[str, Any]) -> dict[str, Any]:
    return {k: REDACTED if SECRET_VARIABLE.search(k) and v else v for k, v in variables.items()}


def keep_redacted(new: dict[str, Any], old: dict[str, Any]) -> dict[str, Any]:
    """`new` with every placeholder a client echoed back replaced by the stored secret."""
    return {k: old.get(k) if v == REDACTED and k in old else v for k, v in new.items()}


class RedactsVariables(SQLModel):
    """Base of the API shapes that carry `variables`: secrets are redacted in JSON."""

    @field_serializer("variables", when_used="json", check_fields=False)
    def _hide_secrets(self, value: dict[str, Any]) -> dict[str, Any]:
        return redact_variables(value)


def check_name(value: str) -> str:
    if not NAME_RE.match(value):
        raise ValueError(
            "use 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    return value


def check_hostname(value: str | None) -> str | None:
    if value is None or value == "":
        return None
    if len(value) > 253 or not all(HOSTNAME_LABEL_RE.match(p) for p in value.split(".")):
        raise ValueError("not a valid host name (RFC 1123)")
    return value.lower()


def check_variables(value: dict[str, Any]) -> dict[str, Any]:
    for key, item in value.items():
        if not VARIABLE_RE.match(key):
            raise ValueError(f"bad variable name {key!r}")
        if not _json_scalar_or_list(item):
            raise ValueError(f"variable {key!r}: use a string, number, boolean or list of those")
    return value


def _json_scalar_or_list(item: object) -> bool:
    scalar = (str, int, float, bool, type(None))
    if isinstance(item, scalar):
        return True
    return isinstance(item, list) and all(isinstance(x, scalar) for x in item)


def _mac(value: str) -> str:
    try:
        return normalize_mac(value)
    except InvalidInput as exc:
        raise ValueError(exc.detail) from None


def _check_image_ref(value: str) -> str:
    """A kernel or initrd: a path under images/ or an http(s) URL that all three boot
    loaders take as one word (server/cmdline.py): pxelinux's KERNEL ends at a blank and its
    INITRD splits at commas, iPXE expands ${, GRUB escapes quotes and backslashes."""
    if not value or _NOT_ONE_WORD.search(value):
        raise ValueError(
            "must be a path under the images directory or an http(s) URL, in printable ASCII"
            " without blanks, quotes, commas or backslashes"
        )
    if value.startswith(("http://", "https://")):
        if "${" in value:
            raise ValueError("must not contain '${' (iPXE expands it)")
        return value
    parts = value.split("/")
    if value.startswith("/") or any(p in {"", ".", ".."} for p in parts):
        raise ValueError("must be a relative path under the images directory, without '..'")
    if not all(_IMAGE_PATH_PART.fullmatch(p) for p in parts):
        raise ValueError("use letters, digits and . _ + ~ @ - in paths under the images directory")
    return value


def _check_cmdline(value: str) -> str:
    if any(c in value for c in "\r\n\0"):
        raise ValueError("must be one line")
    return value


def _check_groups(value: list[str]) -> list[str]:
    return sorted({check_name(v) for v in value})


def _iso_utc(value: datetime) -> str:
    if value.tzinfo is None:  # some databases hand back naive UTC
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


# Sent as ISO 8601 in UTC, with the Z that says so.
UtcDatetime = Annotated[datetime, PlainSerializer(_iso_utc, return_type=str, when_used="json")]
Mac = Annotated[str, AfterValidator(_mac)]
Name = Annotated[str, AfterValidator(check_name)]
Hostname = Annotated[str | None, AfterValidator(check_hostname)]
Variables = Annotated[dict[str, Any], AfterValidator(check_variables)]
ImagePath = Annotated[
    str, StringConstraints(max_length=IMAGE_REF_MAX), AfterValidator(_check_image_ref)
]
Cmdline = Annotated[str, StringConstraints(max_length=CMDLINE_MAX), AfterValidator(_check_cmdline)]
TemplateName = Annotated[str, StringConstraints(max_length=63)]
Description = Annotated[str, StringConstraints(max_length=DESCRIPTION_MAX)]
GroupNames = Annotated[list[str], AfterValidator(_check_groups)]


def _has_nul(value: object) -> bool:
    if isinstance(value, str):
        return "\0" in value
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    return False


class Strict(SQLModel):
    """Input shapes refuse unknown fields and do not coerce types silently."""

    model_config = ConfigDict(extra="forbid", strict=True)  # type: ignore[assignment]

    @field_validator("*")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        # PostgreSQL text cannot hold NUL (a 500 there, stored on SQLite): one answer, 400.
        if _has_nul(value):
            raise ValueError("must not contain NUL characters")
        return value


# --- profiles ---------------------------------------------------------------------------------


class ProfileBase(SQLModel):
    name: str = Field(index=True, unique=True, max_length=63)
    kernel: str = Field(max_length=IMAGE_REF_MAX)
    initrd: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    cmdline: str = Field(default="", max_length=CMDLINE_MAX)
    answer_template: str | None = Field(default=None, max_length=63)
    variables: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class Profile(ProfileBase, table=True):
    id: int | None = Field(default=None, primary_key=True)
    created_at: datetime = timestamp(now=True)
    updated_at: datetime = timestamp(now=True)


class ProfileCreate(Strict):
    name: Name
    kernel: ImagePath
    initrd: list[ImagePath] = []
    cmdline: Cmdline = ""
    answer_template: TemplateName | None = None
    variables: Variables = {}


class ProfileUpdate(Strict):
    kernel: ImagePath | None = None
    initrd: list[ImagePath] | None = None
    cmdline: Cmdline | None = None
    answer_template: TemplateName | None = None
    variables: Variables | None = None


class ProfilePublic(RedactsVariables, ProfileBase):
    created_at: UtcDatetime
    updated_at: UtcDatetime


# --- groups -----------------------------------------------------------------------------------


class ClientGroupLink(SQLModel, table=True):
    client_id: int = Field(foreign_key="client.id", primary_key=True, ondelete="CASCADE")
    group_id: int = Field(foreign_key="clientgroup.id", primary_key=True, ondelete="CASCADE")
    __table_args__ = (Index("ix_link_group", "group_id"),)


class GroupBase(SQLModel):
    name: str = Field(index=True, unique=True, max_length=63)
    description: str = Field(default="", max_length=DESCRIPTION_MAX)
    variables: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    # Where Wake-on-LAN packets for members go when their own segment is not this server's
    # (a directed broadcast a router forwards, e.g. 10.2.0.255). None: the member's segment.
    wake_address: str | None = Field(default=None, max_length=15)


class ClientGroup(GroupBase, table=True):
    id: int | None = Field(default=None, primary_key=True)


def _check_ipv4(value: str | None) -> str | None:
    if value is not None:
        try:
            ipaddress.IPv4Address(value)
        except ValueError:
            raise ValueError(f"not an IPv4 address: {value[:40]!r}") from None
    return value


WakeAddress = Annotated[str | None, AfterValidator(_check_ipv4)]


class GroupCreate(Strict):
    name: Name
    description: Description = ""
    variables: Variables = {}
    wake_address: WakeAddress = None


class GroupUpdate(Strict):
    description: Description | None = None
    variables: Variables | None = None
    wake_address: WakeAddress = None


class GroupPublic(RedactsVariables, GroupBase):
    members: int = 0


# --- clients and installs ---------------------------------------------------------------------


class Client(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    mac: str = Field(index=True, unique=True, max_length=17)
    hostname: str | None = Field(default=None, max_length=253, index=True)
    profile_id: int | None = Field(default=None, foreign_key="profile.id", index=True)
    variables: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    state: State = Field(default=State.IDLE, index=True, sa_type=StateText(State))
    version: int = Field(default=0)
    install_id: int | None = Field(default=None)
    last_ip: str | None = Field(default=None, max_length=45)
    last_arch: str | None = Field(default=None, max_length=32)
    last_seen_at: datetime | None = timestamp()
    created_at: datetime = timestamp(now=True)
    updated_at: datetime = timestamp(now=True)


M = TypeVar("M", bound=SQLModel)


def construct_checked(model: type[M], values: dict[str, Any]) -> M:
    """`model` from values already of its field types (text read from a CSV file), through
    each field's own AfterValidators but without pydantic's machinery around them (a third
    of model_validate's cost); ValueError where they object, and model_validate then says
    exactly what is wrong."""
    checks = _after_validators(model)
    checked = {}
    for name, value in values.items():
        for check in checks[name]:
            value = check(value)
        checked[name] = value
    return model.model_construct(_fields_set=set(values), **checked)


@functools.cache
def _after_validators(model: type[SQLModel]) -> dict[str, tuple[Callable[[Any], Any], ...]]:
    return {
        name: tuple(m.func for m in f.metadata if isinstance(m, AfterValidator))  # type: ignore[misc]
        for name, f in model.model_fields.items()
    }


class ClientCreate(Strict):
    mac: Mac
    hostname: Hostname = None
    profile: str | None = None
    groups: GroupNames = []
    variables: Variables = {}


class DiscoveredApprove(Strict):
    """An admin's decision on a machine that asked to be registered: it becomes a client."""

    profile: Name
    hostname: Hostname = None
    groups: GroupNames = []
    variables: Variables = {}


class ClientUpdate(Strict):
    hostname: Hostname = None
    profile: str | None = None
    groups: GroupNames | None = None
    variables: Variables | None = None


class Install(SQLModel, table=True):
    """One reinstall attempt. `token_hash` is sha256 of the one-time token; never the token."""

    id: int | None = Field(default=None, primary_key=True)
    client_id: int = Field(foreign_key="client.id", index=True, ondelete="CASCADE")
    token_hash: str = Field(index=True, unique=True, max_length=64)
    salt: str = Field(max_length=64)
    state: InstallState = Field(
        default=InstallState.PENDING, index=True, sa_type=StateText(InstallState)
    )
    profile_snapshot: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    created_at: datetime = timestamp(now=True)
    booted_at: datetime | None = timestamp()
    updated_at: datetime = timestamp(now=True)
    finished_at: datetime | None = timestamp()
    deadline_at: datetime | None = timestamp(index=True)
    progress: int = 0
    message: str = Field(default="", max_length=1024)
    failure_log: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    result: str | None = Field(default=None, max_length=32)


class InstallPublic(SQLModel):
    id: int
    state: str
    profile: str
    progress: int
    message: str
    result: str | None
    created_at: UtcDatetime
    booted_at: UtcDatetime | None
    updated_at: UtcDatetime
    finished_at: UtcDatetime | None
    deadline_at: UtcDatetime | None
    has_log: bool


class ClientPublic(RedactsVariables):
    mac: str
    hostname: str | None
    profile: str | None
    groups: list[str]
    variables: dict[str, Any]
    state: str
    version: int
    install: InstallPublic | None
    last_ip: str | None
    last_arch: str | None
    last_seen_at: UtcDatetime | None
    created_at: UtcDatetime
    updated_at: UtcDatetime


class ProgressReport(Strict):
    percent: int = Field(ge=0, le=100)
    message: str = Field(default="", max_length=1024)


def _nul_visible(value: str) -> str:
    """An installer's log is kept even with NUL bytes in it: they show as U+FFFD."""
    return value.replace("\0", "\ufffd")


class FailureReport(Strict):
    log: Annotated[str, AfterValidator(_nul_visible)] = ""
    message: str = Field(default="", max_length=1024)


class DoneReport(Strict):
    message: str = Field(default="", max_length=1024)


# --- events, discovered machines, admin tokens, schema ----------------------------------------


class Event(SQLModel, table=True):
    """Append-only log; keyed by MAC so it outlives a deleted client."""

    id: int | None = Field(default=None, primary_key=True)
    mac: str = Field(index=True, max_length=17)
    at: datetime = timestamp(now=True, index=True)  # retention drops events older than N days
    kind: str = Field(max_length=32)
    detail: str = Field(default="", max_length=2048)
    source: str | None = Field(default=None, max_length=64)


class EventPublic(SQLModel):
    at: UtcDatetime
    kind: str
    detail: str
    source: str | None


class Discovered(SQLModel, table=True):
    """A MAC that network-booted without being registered (it got local boot)."""

    mac: str = Field(primary_key=True, max_length=17)
    first_seen_at: datetime = timestamp(now=True)
    # the list and retention order by it (newest first; the oldest past discovered_max go)
    last_seen_at: datetime = timestamp(now=True, index=True)
    last_ip: str | None = Field(default=None, max_length=45)
    last_arch: str | None = Field(default=None, max_length=32)
    boots: int = 1
    # Asked for by the machine itself from the unknown-machine menu (iPXE's SMBIOS settings);
    # nothing installs on it until an admin approves it with a profile.
    requested_at: datetime | None = timestamp()
    manufacturer: str | None = Field(default=None, max_length=FACT_MAX)
    product: str | None = Field(default=None, max_length=FACT_MAX)
    serial: str | None = Field(default=None, max_length=FACT_MAX)
    uuid: str | None = Field(default=None, max_length=FACT_MAX)


class AdminToken(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=63)
    token_hash: str = Field(index=True, unique=True, max_length=64)
    prefix: str = Field(max_length=8)
    created_at: datetime = timestamp(now=True)
    revoked_at: datetime | None = timestamp()


class AdminTokenPublic(SQLModel):
    id: int
    name: str
    prefix: str
    created_at: UtcDatetime
    revoked_at: UtcDatetime | None


class Meta(SQLModel, table=True):
    """Key/value facts about the database itself, such as the schema version."""

    key: str = Field(primary_key=True, max_length=64)
    value: str = Field(max_length=1024)


# --- webhooks ---------------------------------------------------------------------------------

# What hooks subscribe to: the state an event moved the client (or its install) to, and
# "progress" (a report that changes no state).
HOOK_EVENTS = (
    State.PENDING.value,
    State.BOOTING.value,
    State.INSTALLING.value,
    "progress",
    State.INSTALLED.value,
    State.FAILED.value,
    InstallState.CANCELLED.value,
)
URL_MAX = 2048


def _check_hook_url(value: str) -> str:
    if not re.match(r"^https?://[^\s/?#]+[^\s]*$", value):
        raise ValueError("must be an http:// or https:// URL")
    return value


def _check_hook_events(value: list[str]) -> list[str]:
    unknown = sorted(set(value) - set(HOOK_EVENTS))
    if unknown:
        raise ValueError(f"unknown event {', '.join(unknown)} (known: {', '.join(HOOK_EVENTS)})")
    if not value:
        raise ValueError("at least one event")
    return sorted(set(value), key=HOOK_EVENTS.index)


class Hook(SQLModel, table=True):
    """A URL that gets a signed JSON POST for each lifecycle event it subscribes to."""

    id: int | None = Field(default=None, primary_key=True)
    url: str = Field(max_length=URL_MAX)
    events: str = Field(max_length=256)  # comma-separated names from HOOK_EVENTS
    # The HMAC key; kept in the clear because signing needs it. Shown once, at creation.
    secret: str = Field(max_length=128)
    created_at: datetime = timestamp(now=True)


class HookCreate(SQLModel):
    url: Annotated[str, StringConstraints(max_length=URL_MAX), AfterValidator(_check_hook_url)]
    events: Annotated[list[str], AfterValidator(_check_hook_events)] = list(HOOK_EVENTS)


class HookPublic(SQLModel):
    id: int
    url: str
    events: list[str]
    created_at: UtcDatetime
    waiting: int = 0  # deliveries not yet made (retrying)
    undeliverable: int = 0  # deliveries given up after every retry


class Delivery(SQLModel, table=True):
    """The outbox: one POST owed to one hook, written in the transaction of its event, so a
    restart or a down receiver loses nothing."""

    __table_args__ = (Index("ix_delivery_due", "delivered_at", "next_at"),)

    id: int | None = Field(default=None, primary_key=True)
    hook_id: int = Field(foreign_key="hook.id", index=True, ondelete="CASCADE")
    body: str = Field(sa_type=Text)
    created_at: datetime = timestamp(now=True)
    next_at: datetime = timestamp(now=True)
    attempts: int = 0
    leased_until: datetime | None = timestamp()
    delivered_at: datetime | None = timestamp()
    gave_up_at: datetime | None = timestamp()
    last_error: str = Field(default="", max_length=512)


# --- scheduled, throttled group reinstalls ("waves") ------------------------------------------

BATCH_MAX = 1000


class Wave(SQLModel, table=True):
    """A group reinstall that starts at `start_at` and keeps at most `batch` members in
    flight (pending, booting or installing) until every member has had its turn."""

    id: int | None = Field(default=None, primary_key=True)
    group: str = Field(max_length=63)  # the group's name when the wave was made
    start_at: datetime = timestamp(now=True)
    batch: int
    wake: bool = False
    state: str = Field(default="scheduled", max_length=16, index=True)  # lifecycle.WaveState
    created_at: datetime = timestamp(now=True)
    created_by: str | None = Field(default=None, max_length=64)
    finished_at: datetime | None = timestamp()
    version: int = 0  # compare-and-set: one server advances a wave at a time


class WaveMember(SQLModel, table=True):
    wave_id: int = Field(foreign_key="wave.id", primary_key=True, ondelete="CASCADE")
    client_id: int = Field(foreign_key="client.id", primary_key=True, ondelete="CASCADE")
    position: int
    state: str = Field(default="waiting", max_length=16)  # lifecycle.TurnState
    install_id: int | None = None
    reason: str = Field(default="", max_length=512)
    started_at: datetime | None = timestamp()
    finished_at: datetime | None = timestamp()


class WaveCreate(Strict):
    # JSON has no time type: an ISO 8601 string is the one way to give one (strict=False).
    at: Annotated[UtcDatetime, Strictness(False)] | None = None  # default: now
    batch: Annotated[int, Field(ge=1, le=BATCH_MAX)] = 10
    wake: bool = False

    @field_validator("at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.utcoffset() is None:
            raise ValueError("give a time zone (e.g. 2026-12-01T22:00+01:00 or ...Z)")
        return value


class WavePublic(SQLModel):
    id: int
    group: str
    start_at: UtcDatetime
    batch: int
    wake: bool
    state: str
    created_at: UtcDatetime
    created_by: str | None
    finished_at: UtcDatetime | None
    waiting: int = 0
    running: int = 0
    done: int = 0
    failed: int = 0
    skipped: int = 0
