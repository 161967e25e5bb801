"""The race harness: workers (threads or processes) fire lifecycle calls at shared clients
through the real Flask app, and the outcome is checked against the registry afterwards.

A worker runs two phases:
- conflict rounds: all workers wait at a barrier, then make the same call on the same client
  at once (the harness prepared that client's state); exactly one may win;
- a free-for-all: seeded random calls (reinstall, cancel, boot, progress, done, failed) on a
  few shared clients, with whatever token the registry holds at that moment.
"""

from __future__ import annotations

import random
import threading
import traceback
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlmodel import col, select

from server.app import create_app
from server.config import Settings
from server.fleet import Fleet
from server.models import Client, Event, Install
from server.registry.database import session_scope
from tests.reliability.helpers import INSTALL_URL, PROFILE, mac

OPS = ("reinstall", "cancel", "boot", "progress", "done", "failed")
# The call every conflict round makes, and the state the harness puts its client in first.
CONFLICTS = (
    ("reinstall", "idle"),
    ("cancel", "pending"),
    ("boot", "pending"),
    ("done", "booting"),
    ("failed", "installing"),
    ("cancel", "installing"),
    ("reinstall", "failed"),
)


@dataclass(frozen=True)
class Outcome:
    op: str
    mac: str
    status: int
    phase: str  # "conflict-<round>" or "free"


def open_settings(data_dir: str, images_dir: str, db_url: str, deadline: int = 3600) -> Settings:
    return Settings(
        data_dir=Path(data_dir),
        images_dir=Path(images_dir),
        database_url=db_url,
        advertise="198.18.0.1",
        tftp_enabled=False,
        boot_timeout=deadline,
        progress_timeout=deadline,
        grace_seconds=3600,
    )


# Werkzeug compiles each URL rule with ast.parse, and CPython 3.11's AST constructor keeps
# its recursion depth per interpreter, not per thread: apps built by several threads at
# once fail at random with "SystemError: AST constructor recursion depth mismatch"
# (python/cpython gh-106905; what broke test_race[...-threads] now and then). The service
# builds its one app before any thread starts; the race's workers take turns.
_BUILDING_APP = threading.Lock()


class Caller:
    """One worker's view: its own test client over a shared or private Fleet."""

    def __init__(self, fleet: Fleet, admin_token: str) -> None:
        self.fleet = fleet
        with _BUILDING_APP:
            app = create_app(fleet=fleet, test_config={"TESTING": True})
        self.http = app.test_client()
        self.auth = {"Authorization": f"Bearer {admin_token}"}

    def token(self, address: str) -> str | None:
        """The current install's token, as the installer on that machine would hold it."""
        with session_scope(self.fleet.engine) as s:
            client = s.exec(select(Client).where(Client.mac == address)).first()
            if client is None or client.install_id is None:
                return None
            install = s.get(Install, client.install_id)
            return self.fleet.policy.token(install) if install else None

    def call(self, op: str, address: str) -> int:
        if op in ("reinstall", "cancel"):
            return self.http.post(f"/api/v1/clients/{address}/{op}", headers=self.auth).status_code
        if op == "boot":
            r = self.http.get(f"/ipxe?mac={address}")
            # 200 either way; 299 marks "got an installer" for the bookkeeping
            return 299 if r.status_code == 200 and INSTALL_URL.search(r.text) else r.status_code
        token = self.token(address)
        if token is None:
            return 0  # nothing to report on: not a request
        body: dict[str, Any] = {"percent": 50} if op == "progress" else {}
        return self.http.post(f"/api/v1/installs/{token}/{op}", json=body).status_code


def work(
    fleet: Fleet | None,
    cfg: tuple[str, str, str, int],
    admin_token: str,
    seed: int,
    conflict_macs: list[str],
    free_macs: list[str],
    free_calls: int,
    barrier: Any,
) -> list[Outcome]:
    own = fleet is None
    fleet = fleet or Fleet.open(open_settings(*cfg))
    try:
        caller = Caller(fleet, admin_token)
        outcomes: list[Outcome] = []
        for n, (op, _state) in enumerate(CONFLICTS):
            barrier.wait(timeout=120)  # the harness has prepared conflict_macs[n]
            outcomes.append(
                Outcome(op, conflict_macs[n], caller.call(op, conflict_macs[n]), f"conflict-{n}")
            )
            barrier.wait(timeout=120)
        rng = random.Random(seed)
        for _ in range(free_calls):
            op, address = rng.choice(OPS), rng.choice(free_macs)
            outcomes.append(Outcome(op, address, caller.call(op, address), "free"))
        return outcomes
    finally:
        if own:
            fleet.close()


def process_main(args: tuple[Any, ...], results: Any) -> None:
    """Entry point of a worker process: its own Fleet on the shared database and data dir."""
    try:
        results.put(("ok", work(None, *args)))
    except BaseException:
        results.put(("error", traceback.format_exc()))
        args[-1].abort()  # the barrier: nobody waits for this worker any more
        raise


def thread_main(fleet: Fleet, args: tuple[Any, ...], results: Any) -> None:
    """Entry point of a worker thread: a failure reaches the harness with its traceback."""
    try:
        results.put(("ok", work(fleet, *args)))
    except BaseException:
        results.put(("error", traceback.format_exc()))
        args[-1].abort()  # the barrier: nobody waits for this worker any more


# --- the harness side ------------------------------------------------------------------------


def seed_registry(caller: Caller, count: int) -> list[str]:
    http, auth = caller.http, caller.auth
    assert http.post("/api/v1/profiles", json=PROFILE, headers=auth).status_code == 201
    macs = [mac(i) for i in range(1, count + 1)]
    for m in macs:
        r = http.post("/api/v1/clients", json={"mac": m, "profile": "debian12"}, headers=auth)
        assert r.status_code == 201, r.text
    return macs


def prepare(caller: Caller, address: str, state: str) -> list[Outcome]:
    """Walk one idle client to `state` with ordinary calls; their outcomes."""
    steps = {
        "idle": [],
        "pending": ["reinstall"],
        "booting": ["reinstall", "boot"],
        "installing": ["reinstall", "boot", "progress"],
        "failed": ["reinstall", "boot", "failed"],
    }[state]
    done = []
    for op in steps:
        done.append(Outcome(op, address, caller.call(op, address), "prepare"))
        assert done[-1].status in (200, 299), f"prepare {address} {op}: {done[-1].status}"
    assert current_state(caller.fleet, address) == state
    return done


def current_state(fleet: Fleet, address: str) -> str:
    with session_scope(fleet.engine) as s:
        client = s.exec(select(Client).where(Client.mac == address)).one()
        return client.state


def check_conflicts(outcomes: list[Outcome], participants: int) -> tuple[int, int]:
    """Each conflict round: exactly one 200 and the rest 409. Returns (wins, 409s)."""
    wins = refused = 0
    for n, (op, _state) in enumerate(CONFLICTS):
        got = Counter(o.status for o in outcomes if o.phase == f"conflict-{n}")
        if op == "boot":
            # Firmware re-reads: every caller gets the installer (the grace window), and
            # check_consistency holds the install to one boot transition and one event.
            assert got == Counter({299: participants}), f"round {n} (boot): {got}"
            continue
        assert got == Counter({200: 1, 409: participants - 1}), f"round {n} ({op}): {got}"
        wins += got[200]
        refused += got[409]
    return wins, refused


def check_consistency(fleet: Fleet, outcomes: list[Outcome], macs: list[str]) -> None:
    """The registry agrees with what the callers were told, client by client."""
    assert all(o.status in (0, 200, 299, 409) for o in outcomes), Counter(
        o.status for o in outcomes
    )
    accepted_event = {
        "reinstall": "reinstall",
        "cancel": "cancel",
        "progress": "progress",
        "done": "installed",
        "failed": "failed",
        "reaped": "failed",  # the deadline reaper's own failures
    }
    with session_scope(fleet.engine) as s:
        for address in macs:
            client = s.exec(select(Client).where(Client.mac == address)).one()
            mine = [o for o in outcomes if o.mac == address]
            ok = Counter(o.op for o in mine if o.status == 200)
            events = Counter(e.kind for e in s.exec(select(Event).where(Event.mac == address)))
            installs = list(
                s.exec(
                    select(Install).where(Install.client_id == client.id).order_by(col(Install.id))
                )
            )
            booted = sum(1 for i in installs if i.booted_at is not None)
            # every accepted change has its event, and no refused one has
            expected: Counter[str] = Counter()
            for op, kind in accepted_event.items():
                expected[kind] += ok[op]
            for kind, count in expected.items():
                assert events[kind] == count, f"{address}: {kind}: {ok} vs events {events}"
            assert events["boot"] == booted, f"{address}: boot events {events['boot']} vs {booted}"
            assert events["reinstall"] == len(installs)
            # the version counts every accepted state change exactly once
            changes = sum(ok[op] for op in accepted_event) + booted
            assert client.version == changes, f"{address}: version {client.version} != {changes}"
            # one live install at most, and it is the client's current one
            live = [i for i in installs if i.state in ("pending", "booting", "installing")]
            assert len(live) <= 1, f"{address}: {len(live)} live installs"
            if client.state in ("pending", "booting", "installing", "installed", "failed"):
                current = next(i for i in installs if i.id == client.install_id)
                assert current.state == client.state, f"{address}: {client.state}/{current.state}"
            else:
                assert client.state == "idle"
                assert not live


def run_race(
    fleet: Fleet,
    cfg: tuple[str, str, str, int],
    admin_token: str,
    *,
    workers: int,
    processes: bool,
    free_calls: int,
    free_clients: int = 4,
    reaper: bool = False,
) -> list[Outcome]:
    """Run one race with `workers` threads (sharing `fleet`) or processes (each its own
    Fleet on the same database); the outcomes of every call, the harness's included."""
    import multiprocessing
    import queue

    harness = Caller(fleet, admin_token)
    macs = seed_registry(harness, len(CONFLICTS) + free_clients)
    conflict_macs, free_macs = macs[: len(CONFLICTS)], macs[len(CONFLICTS) :]
    outcomes: list[Outcome] = []
    ctx = multiprocessing.get_context("spawn")
    barrier: Any = ctx.Barrier(workers + 1) if processes else threading.Barrier(workers + 1)
    results: Any = ctx.Queue() if processes else queue.Queue()
    runners: list[Any] = []
    for w in range(workers):
        args = (cfg, admin_token, 1000 + w, conflict_macs, free_macs, free_calls, barrier)
        if processes:
            runners.append(ctx.Process(target=process_main, args=(args, results), daemon=True))
        else:
            runners.append(threading.Thread(target=thread_main, args=(fleet, args, results)))
    for r in runners:
        r.start()
    try:
        for n, (_op, state) in enumerate(CONFLICTS):
            outcomes += prepare(harness, conflict_macs[n], state)
            try:
                barrier.wait(timeout=120)  # go
                barrier.wait(timeout=120)  # all done
            except threading.BrokenBarrierError:  # a worker failed: say how
                barrier.abort()
                raise AssertionError(f"round {n}: {worker_errors(results)}") from None
        reaped: list[Outcome] = []
        reaping = threading.Thread(target=reap_until, args=(fleet, runners, reaped))
        if reaper:  # the deadline reaper races the free-for-all, as it does in `serve`
            reaping.start()
        for _ in runners:
            kind, got = results.get(timeout=300)
            assert kind == "ok", got
            outcomes += got
    finally:
        for r in runners:
            r.join(timeout=60)
            if processes and r.is_alive():
                r.kill()  # by its PID; only our own worker
    if reaper:
        reaping.join(timeout=120)
        assert not reaping.is_alive()
        outcomes += reaped
    return outcomes


def worker_errors(results: Any) -> list[str]:
    """The failures workers reported so far (their tracebacks)."""
    import queue

    errors = []
    while True:
        try:
            kind, got = results.get(timeout=1)
        except queue.Empty:
            return errors
        if kind == "error":
            errors.append(got)


def reap_until(fleet: Fleet, runners: list[Any], outcomes: list[Outcome]) -> None:
    """Reaper rounds until the workers are done (and one more); each failure is an outcome."""
    from server.reaper import reap

    for _round in range(100_000):
        running = any(r.is_alive() for r in runners)
        outcomes += [Outcome("reaped", m, 200, "free") for m in reap(fleet.engine)]
        if not running:
            return
