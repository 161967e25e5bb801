"""CPU per unregistered boot in process: BootRegistry.unregistered() from 16 threads.

    .venv/bin/python -m bench.unregistered [--runs 3] [--drop-index]

The boot path's write for a machine nobody registered (events.seen_unregistered_many, group
committed), without HTTP or TFTP around it: what bench/run's "unregistered" rows cost
beyond the framework. --drop-index removes schema 2's index on discovered.last_seen_at, to
tell its share from the code's.
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path

from sqlalchemy import text

from bench import registry
from server.models import utcnow
from server.registry.database import make_engine
from server.registry.migrations import migrate
from server.registry.seen import BootRegistry


def mac(i: int) -> str:
    """The i-th machine nobody registered: the MACs bench/run's unregistered loads use."""
    return registry.mac(registry.UNREGISTERED + i)


def run(folder: Path, *, threads: int, per_thread: int, known: int, drop_index: bool) -> str:
    engine = make_engine(f"sqlite:///{folder / 'bootfleet.db'}")
    migrate(engine)
    if drop_index:
        with engine.begin() as conn:
            conn.execute(text("DROP INDEX IF EXISTS ix_discovered_last_seen_at"))
    registry = BootRegistry(engine)
    try:
        started = time.process_time()
        for i in range(known):  # first boots: a row and a "discovered" event each
            registry.unregistered(mac(i), "198.18.0.9", "x86_64", utcnow())
        first = (time.process_time() - started) / known

        def boots(t: int) -> None:
            for n in range(per_thread):
                registry.unregistered(
                    mac((n * 7 + t * 7919) % known), "198.18.0.9", "x86_64", utcnow()
                )

        workers = [threading.Thread(target=boots, args=(t,)) for t in range(threads)]
        cpu, wall = time.process_time(), time.perf_counter()
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    finally:
        registry.close()
        engine.dispose()
    n = threads * per_thread
    return (
        f"again: {cpu / n * 1e6:.0f} µs CPU per boot, {n / wall:.0f} boots/s ({threads} threads); "
        f"first boot: {first * 1e6:.0f} µs CPU (1 thread)"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=16)
    ap.add_argument("--boots", type=int, default=1500, help="per thread")
    ap.add_argument("--drop-index", action="store_true")
    args = ap.parse_args()
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="bootfleet-unreg-") as folder:
            print(
                run(
                    Path(folder),
                    threads=args.threads,
                    per_thread=args.boots,
                    known=2000,
                    drop_index=args.drop_index,
                ),
                flush=True,
            )


if __name__ == "__main__":
    main()
