"""The deadline reaper: installs that stop showing signs of life are marked failed.

Deadlines live in the database, so they survive a restart; any number of servers may reap
the same registry, since each failure is a compare-and-set.
"""

from __future__ import annotations

import logging
import threading

from sqlalchemy.engine import Engine

from server.errors import BootfleetError
from server.models import utcnow
from server.registry import installs
from server.registry.database import session_scope
from server.retention import Retention

log = logging.getLogger(__name__)


def reap(engine: Engine) -> list[str]:
    """Fail every install past its deadline; the MACs of the clients that failed."""
    now = utcnow()
    with session_scope(engine) as session:
        ids = installs.overdue(session, now)
    failed = []
    for install_id in ids:
        try:
            with session_scope(engine, write=True) as session:
                mac = installs.reap_one(session, install_id, now)
        except BootfleetError as exc:  # lost a race to a callback, or the db is busy: next round
            log.info("reaper skipped install %s: %s", install_id, exc.message)
            continue
        if mac:
            log.warning("install %s of %s failed: deadline passed", install_id, mac)
            failed.append(mac)
    return failed


class Reaper(threading.Thread):
    """Fails overdue installs every `interval` seconds, and applies `retention` when due."""

    def __init__(self, engine: Engine, interval: float, retention: Retention | None = None) -> None:
        super().__init__(name="bootfleet-reaper", daemon=True)
        self.engine = engine
        self.interval = interval
        self.retention = retention
        self.stopping = threading.Event()

    def round(self) -> None:
        reap(self.engine)
        if self.retention is not None:
            self.retention.due()

    def run(self) -> None:
        # The first round runs at once: deadlines that passed while the server was down fire.
        while True:
            try:
                self.round()
            except Exception:  # never let one bad round end the thread
                log.exception("reaper round failed")
            if self.stopping.wait(self.interval):
                return

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=5)
