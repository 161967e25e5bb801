"""Install attempts and the lifecycle operations on them.

Every change of a client's state goes through transition.compare_and_set inside the caller's
write transaction, and leaves an event. Install tokens are derived from the site key and the
install's salt (see server/tokens.py) and looked up by their hash.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel import Session, col, select

from server.checks import Checks
from server.errors import Conflict, InvalidInput, Unauthorized
from server.lifecycle import ACTIVE, RUNNING, Action, InstallState, State, target
from server.models import FAILURE_LOG_MAX, Client, Install, utcnow
from server.registry import assignments, events
from server.registry.transition import compare_and_set
from server.tokens import install_token, new_salt, token_hash


@dataclass(frozen=True)
class Policy:
    """What the lifecycle needs from the settings."""

    site_key: bytes
    boot_timeout: int = 30 * 60
    progress_timeout: int = 2 * 60 * 60
    grace_seconds: int = 120

    def token(self, install: Install) -> str:
        return install_token(self.site_key, install.salt)


def current(session: Session, client: Client) -> Install | None:
    return session.get(Install, client.install_id) if client.install_id else None


def history(session: Session, client: Client, limit: int = 50) -> list[Install]:
    stmt = (
        select(Install)
        .where(Install.client_id == client.id)
        .order_by(col(Install.id).desc())
        .limit(limit)
    )
    return list(session.exec(stmt))


def in_progress(session: Session, limit: int = 50) -> list[tuple[Install, Client]]:
    """Current installs that are pending, booting or installing, most recently active first."""
    stmt = (
        select(Install, Client)
        .join(Client, col(Client.id) == col(Install.client_id))
        .where(col(Install.state).in_(ACTIVE), col(Client.install_id) == col(Install.id))
        .order_by(col(Install.updated_at).desc(), col(Install.id).desc())
        .limit(limit)
    )
    return [(i, c) for i, c in session.exec(stmt).all()]


def recent_failures(session: Session, limit: int = 10) -> list[tuple[Install, Client]]:
    """The latest failed installs with their clients, newest first."""
    stmt = (
        select(Install, Client)
        .join(Client, col(Client.id) == col(Install.client_id))
        .where(Install.state == InstallState.FAILED)
        .order_by(col(Install.id).desc())
        .limit(limit)
    )
    return [(i, c) for i, c in session.exec(stmt).all()]


def reinstall(
    session: Session, client: Client, policy: Policy, checks: Checks, source: str | None
) -> Install:
    """Start a new install for `client`: pending until its next network boot."""
    to = target(Action.REINSTALL, client.state)
    snapshot = assignments.check(session, client, checks)
    if snapshot is None:
        raise InvalidInput("profile", f"client {client.mac} has no profile to install")
    salt = new_salt()
    row = Install(
        client_id=client.id,  # type: ignore[arg-type]
        salt=salt,
        token_hash=token_hash(install_token(policy.site_key, salt)),
        state=InstallState.PENDING,
        profile_snapshot=snapshot,
    )
    session.add(row)
    session.flush()
    compare_and_set(session, client, to, install_id=row.id)
    events.record(
        session, client.mac, "reinstall", f"install {row.id} of {snapshot['profile']}", source
    )
    return row


def cancel(session: Session, client: Client, source: str | None, detail: str | None = None) -> None:
    """Back to idle; `detail` says why in the event (default: which install was cancelled)."""
    to = target(Action.CANCEL, client.state)
    compare_and_set(session, client, to)
    install = current(session, client)
    if install is not None:
        _finish(session, install, InstallState.CANCELLED, InstallState.CANCELLED.value)
    what = f"install {client.install_id} cancelled"
    events.record(session, client.mac, "cancel", f"{what}: {detail}" if detail else what, source)


def boot_served(
    session: Session,
    client: Client,
    install: Install,
    policy: Policy,
    source: str | None,
    what: str,
) -> None:
    """The installer boot config went out: pending -> booting, with a boot deadline."""
    now = utcnow()
    compare_and_set(session, client, target(Action.BOOT_SERVED, client.state))
    install.state = InstallState.BOOTING
    install.booted_at = now
    install.updated_at = now
    install.deadline_at = now + timedelta(seconds=policy.boot_timeout)
    session.add(install)
    events.record(
        session, client.mac, "boot", f"installer {what} served (install {install.id})", source
    )


def within_grace(install: Install, policy: Policy, now: datetime | None = None) -> bool:
    if install.state != InstallState.BOOTING or install.booted_at is None:
        return False
    return (now or utcnow()) - install.booted_at <= timedelta(seconds=policy.grace_seconds)


def by_token(session: Session, token: str) -> tuple[Install, Client]:
    """The install a callback's token belongs to; refused if unknown, superseded or over."""
    if not token or len(token) > 128:
        raise Unauthorized("missing or malformed install token")
    install = session.exec(select(Install).where(Install.token_hash == token_hash(token))).first()
    if install is None:
        raise Unauthorized("unknown install token")
    client = session.get(Client, install.client_id)
    if client is None or client.install_id != install.id:
        raise Conflict("this install was superseded by a newer one")
    return install, client


def require_active(install: Install, client: Client) -> None:
    if install.state not in RUNNING or client.state not in RUNNING:
        raise Conflict(f"install {install.id} is {install.state}; it takes no more reports")


def _start(
    session: Session, client: Client, install: Install, policy: Policy, source: str | None, why: str
) -> None:
    """Any sign of the running installer: booting -> installing, and a fresh deadline."""
    now = utcnow()
    to = State.INSTALLING if client.state == State.BOOTING else client.state
    compare_and_set(session, client, to)  # also when already installing: one winner per race
    if install.state != InstallState.INSTALLING:
        events.record(session, client.mac, State.INSTALLING.value, why, source)
    install.state = InstallState.INSTALLING
    install.updated_at = now
    install.deadline_at = now + timedelta(seconds=policy.progress_timeout)
    session.add(install)


def answer_fetched(
    session: Session, token: str, policy: Policy, source: str | None
) -> tuple[Install, Client]:
    install, client = by_token(session, token)
    require_active(install, client)
    _start(session, client, install, policy, source, "answer file fetched")
    return install, client


def progress(
    session: Session, token: str, percent: int, message: str, policy: Policy, source: str | None
) -> Install:
    install, client = by_token(session, token)
    require_active(install, client)
    _start(session, client, install, policy, source, f"installer reported {percent}%")
    install.progress = percent
    install.message = message
    events.record(session, client.mac, "progress", f"{percent}% {message}".strip(), source)
    return install


def done(session: Session, token: str, message: str, source: str | None) -> Install:
    """The installer finished. Accepted even after the deadline reaper failed the install:
    a late success is still a success."""
    install, client = by_token(session, token)
    late = (
        install.state == InstallState.FAILED
        and install.result == "deadline"
        and client.state == State.FAILED
    )
    if not late:
        require_active(install, client)
        target(Action.DONE, client.state)
    compare_and_set(session, client, State.INSTALLED)
    install.progress = 100
    install.message = message or State.INSTALLED.value
    _finish(session, install, InstallState.INSTALLED, "success")
    detail = f"install {install.id} done" + (" (after its deadline)" if late else "")
    events.record(session, client.mac, State.INSTALLED.value, detail, source)
    return install


def failed(session: Session, token: str, log: str, message: str, source: str | None) -> Install:
    install, client = by_token(session, token)
    require_active(install, client)
    compare_and_set(session, client, target(Action.FAILED, client.state))
    install.failure_log = _cap_log(log)
    install.message = message or "installer reported failure"
    _finish(session, install, InstallState.FAILED, "installer")
    events.record(
        session, client.mac, State.FAILED.value, f"install {install.id}: {install.message}", source
    )
    return install


def _cap_log(log: str) -> str:
    data = log.encode("utf-8", "replace")
    if len(data) <= FAILURE_LOG_MAX:
        return log
    # keep the end: the cause of a failure is usually in the last lines
    return "[...truncated...]\n" + data[-(FAILURE_LOG_MAX - 20) :].decode("utf-8", "ignore")


def _finish(session: Session, install: Install, state: InstallState, result: str) -> None:
    now = utcnow()
    install.state = state
    install.result = result
    install.finished_at = now
    install.updated_at = now
    install.deadline_at = None
    session.add(install)


def overdue(session: Session, now: datetime) -> list[int]:
    stmt = (
        select(Install.id)
        .where(col(Install.state).in_(RUNNING))
        .where(col(Install.deadline_at) < now)
    )
    return [i for i in session.exec(stmt) if i is not None]


def reap_one(session: Session, install_id: int, now: datetime) -> str | None:
    """Fail one install whose deadline passed; the client's MAC, or None if it moved on."""
    install = session.get(Install, install_id)
    if install is None or install.deadline_at is None or install.deadline_at >= now:
        return None
    client = session.get(Client, install.client_id)
    if client is None or client.install_id != install.id or client.state != install.state:
        return None
    what = "boot file fetch" if install.state == InstallState.BOOTING else "progress report"
    compare_and_set(session, client, State.FAILED)
    install.message = f"no {what} before the deadline"
    _finish(session, install, InstallState.FAILED, "deadline")
    events.record(
        session,
        client.mac,
        State.FAILED.value,
        f"install {install.id}: {install.message}",
        "reaper",
    )
    return client.mac


def not_served(session: Session, client: Client, why: str, source: str | None) -> None:
    """The installer was due but could not be served (booter.py): the client stays as it is."""
    events.record(session, client.mac, "boot_failed", f"installer not served: {why}", source)


def touch_boot(session: Session, install: Install, policy: Policy) -> None:
    """A boot-file fetch during booting pushes the boot deadline back."""
    if install.state == InstallState.BOOTING:
        install.deadline_at = utcnow() + timedelta(seconds=policy.boot_timeout)
        session.add(install)
