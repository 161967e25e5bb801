"""When a registered machine last asked for its boot config: written for every boot request.

A classroom that powers on at once sends hundreds of these in a second. Each caller still
waits until its own row is committed, but the callers that arrive while one transaction
commits are written together by the next one (group commit): one writer at a time, many
rows per transaction, no queue of threads at SQLite's write lock.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, func, update
from sqlalchemy.engine import Engine

from server.errors import Unavailable
from server.models import Client
from server.registry.database import SQLITE_BUSY_TIMEOUT_MS, write_connection

_CLIENT = Client.__table__  # type: ignore[attr-defined]
# COALESCE: a request without a peer or an arch keeps the stored one; written in SQL so a
# concurrent writer's newer value is never replaced by a stale read.
_SEEN = (
    update(_CLIENT)
    .where(_CLIENT.c.id == bindparam("b_id"))
    .values(
        last_ip=func.coalesce(bindparam("b_ip"), _CLIENT.c.last_ip),
        last_arch=func.coalesce(bindparam("b_arch"), _CLIENT.c.last_arch),
        last_seen_at=bindparam("b_seen", type_=_CLIENT.c.last_seen_at.type),
    )
)


@dataclass
class _Entry:
    params: dict[str, Any]
    done: bool = False
    error: BaseException | None = None


class SeenRecorder:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._queue: list[_Entry] = []
        self._queue_lock = threading.Lock()
        self._leader = threading.Lock()

    def record(self, client_id: int, ip: str | None, arch: str | None, at: datetime) -> None:
        """Store last_ip/last_arch/last_seen_at of one client; returns once committed."""
        entry = _Entry(
            {"b_id": client_id, "b_ip": ip or None, "b_arch": arch or None, "b_seen": at}
        )
        with self._queue_lock:
            self._queue.append(entry)
        if not self._leader.acquire(timeout=SQLITE_BUSY_TIMEOUT_MS / 1000):
            raise Unavailable("the registry database is busy or unreachable; retry shortly")
        try:
            if not entry.done:  # nobody took it along: lead, and take everyone waiting
                with self._queue_lock:
                    batch, self._queue = self._queue, []
                try:
                    with write_connection(self.engine) as conn:
                        conn.execute(_SEEN, [e.params for e in batch])
                except BaseException as exc:
                    for e in batch:
                        e.error = exc
                    raise
                finally:
                    for e in batch:
                        e.done = True
        finally:
            self._leader.release()
        if entry.error is not None:
            raise Unavailable("the registry database is busy or unreachable; retry shortly")
