"""Response shapes that exist only on the wire (lists, pages, results)."""

from __future__ import annotations

from typing import Any

from sqlmodel import SQLModel

from server.models import (
    AdminTokenPublic,
    ClientPublic,
    EventPublic,
    GroupPublic,
    HookPublic,
    InstallPublic,
    ProfilePublic,
    Strict,
    UtcDatetime,
    WavePublic,
)


class Woken(SQLModel):
    mac: str
    wake: str


class WaveTurn(SQLModel):
    mac: str
    hostname: str | None
    state: str
    reason: str
    started_at: UtcDatetime | None
    finished_at: UtcDatetime | None


class ErrorDetail(SQLModel):
    code: str
    message: str
    field: str | None = None


class ErrorBody(SQLModel):
    error: ErrorDetail


class ClientPage(SQLModel):
    items: list[ClientPublic]
    total: int
    next: int | None


class ProfileList(SQLModel):
    items: list[ProfilePublic]


class HookList(SQLModel):
    items: list[HookPublic]


class HookCreated(HookPublic):
    secret: str  # the HMAC key the receiver checks signatures with; shown only here


class GroupList(SQLModel):
    items: list[GroupPublic]


class EventList(SQLModel):
    items: list[EventPublic]


class InstallDetail(InstallPublic):
    failure_log: str | None


class InstallList(SQLModel):
    items: list[InstallPublic]


class ImportResult(SQLModel):
    imported: int


class Skipped(SQLModel):
    mac: str
    reason: str


class Accepted(SQLModel):
    state: str
    install: int
    wake: str | None = None  # what Wake-on-LAN did, when asked for


class ReinstallRequest(Strict):
    wake: bool = False  # send a Wake-on-LAN packet once the reinstall is recorded


class GroupReinstall(SQLModel):
    requested: list[str]
    skipped: list[Skipped]
    woken: list[Woken] = []


class WaveList(SQLModel):
    items: list[WavePublic]


class WaveDetail(WavePublic):
    members: list[WaveTurn]


class DiscoveredPublic(SQLModel):
    mac: str
    first_seen_at: UtcDatetime
    last_seen_at: UtcDatetime
    last_ip: str | None
    last_arch: str | None
    boots: int
    requested_at: UtcDatetime | None = None
    manufacturer: str | None = None
    product: str | None = None
    serial: str | None = None
    uuid: str | None = None


class DiscoveredList(SQLModel):
    items: list[DiscoveredPublic]


class TokenList(SQLModel):
    items: list[AdminTokenPublic]


class VariableInfo(SQLModel):
    name: str
    type: str
    required: bool
    default: Any = None
    description: str
    items: str | None = None
    choices: list[str] | None = None


class TemplateInfo(SQLModel):
    name: str
    description: str
    os: str
    variables: list[VariableInfo]


class TemplateList(SQLModel):
    items: list[TemplateInfo]
