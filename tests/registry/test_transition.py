"""The compare-and-set under every lifecycle change (server/registry/transition.py)."""

import threading
from pathlib import Path

import pytest
from sqlmodel import Session

from server.errors import Conflict
from server.lifecycle import Action, State, target
from server.models import Client
from server.registry.database import make_engine, session_scope
from server.registry.migrations import migrate
from server.registry.transition import compare_and_set


@pytest.fixture
def file_engine(tmp_path: Path):  # type: ignore[no-untyped-def]
    engine = make_engine(f"sqlite:///{tmp_path / 'race.db'}")
    migrate(engine)
    with session_scope(engine, write=True) as s:
        s.add(Client(mac="52:54:00:00:00:01"))
    yield engine
    engine.dispose()


def test_compare_and_set_refuses_a_stale_read(file_engine) -> None:  # type: ignore[no-untyped-def]
    with (
        Session(file_engine, expire_on_commit=False) as s1,
        Session(file_engine, expire_on_commit=False) as s2,
    ):
        a = s1.get(Client, 1)
        b = s2.get(Client, 1)
        assert a and b
        s2.commit()  # b is now a stale copy, as in a read-modify-write across requests
        compare_and_set(s1, a, State.PENDING)
        s1.commit()
        with pytest.raises(Conflict):
            compare_and_set(s2, b, State.PENDING)
        s2.rollback()
    with Session(file_engine) as s:
        row = s.get(Client, 1)
        assert row and row.state is State.PENDING and row.version == 1


def test_racing_threads_have_exactly_one_winner(file_engine) -> None:  # type: ignore[no-untyped-def]
    """Real threads, a file database: each reads the client, then all try the same change."""
    threads = 8
    barrier = threading.Barrier(threads)
    results: list[str] = []
    lock = threading.Lock()

    def contender() -> None:
        with Session(file_engine, expire_on_commit=False) as s:
            client = s.get(Client, 1)
            assert client is not None
            s.commit()  # end the read; the write below must still see the version it read
            barrier.wait()
            try:
                compare_and_set(s, client, target(Action.REINSTALL, client.state))
                s.commit()
                outcome = "won"
            except Conflict:
                s.rollback()
                outcome = "conflict"
        with lock:
            results.append(outcome)

    workers = [threading.Thread(target=contender) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=30)
    assert sorted(results) == ["conflict"] * (threads - 1) + ["won"]
    with Session(file_engine) as s:
        row = s.get(Client, 1)
        assert row and row.state is State.PENDING and row.version == 1
