"""The conductor: moves scheduled group reinstalls (waves) along, and wakes each member when
its turn comes. The waves and their members live in the registry (registry/waves.py); this
thread only calls `advance` every few seconds and sends the Wake-on-LAN packets after commit.
"""

from __future__ import annotations

import logging
import threading

from sqlalchemy.engine import Engine

from server.errors import BootfleetError
from server.models import utcnow
from server.registry import wakes, waves
from server.registry.database import session_scope
from server.registry.installs import Checks, Policy

log = logging.getLogger(__name__)


class Conductor(threading.Thread):
    def __init__(
        self,
        engine: Engine,
        policy: Policy,
        checks: Checks,
        waker: wakes.Waker,
        interval: float = 5.0,
    ) -> None:
        super().__init__(name="bootfleet-conductor", daemon=True)
        self.engine = engine
        self.policy = policy
        self.checks = checks
        self.waker = waker
        self.interval = interval
        self.stopping = threading.Event()

    def round(self) -> int:
        """Advance every due wave once; how many members began their turn."""
        with session_scope(self.engine) as session:
            due = waves.due(session, utcnow())
        begun = 0
        for wave_id in due:
            try:
                with session_scope(self.engine, write=True) as session:
                    started = waves.advance(session, wave_id, self.policy, self.checks)
                    wake = waves.get(session, wave_id).wake
                    turns = [c.mac for c in started]
            except BootfleetError as exc:  # another server took this round, or a busy db
                log.info("wave %s: round skipped: %s", wave_id, exc.message)
                continue
            if turns:
                log.info("wave %s: turn of %s", wave_id, ", ".join(turns))
            begun += len(turns)
            if wake:
                wakes.wake(self.engine, self.waker, turns, f"wave {wave_id}")
        return begun

    def run(self) -> None:
        while True:
            try:
                self.round()
            except Exception:  # never let one bad round end the thread
                log.exception("conductor round failed")
            if self.stopping.wait(self.interval):
                return

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=10)
