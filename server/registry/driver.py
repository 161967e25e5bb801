"""Core statements run on the SQLite driver itself, each compiled once.

The boot path runs a handful of short statements per request. Through a Core Connection each
execution costs more than the statement: BEGIN through the event hooks, the statement cache
lookup, parameter processing, the result wrapper, then COMMIT and the pool's reset (measured
on the unregistered-boot path, 16 threads: 240 µs of CPU per boot through Core, 100 µs through
the driver; `python -m bench.unregistered`).

So the boot path talks to the registry through `reading(engine)` and `writing(engine)`. On
SQLite they yield a `DriverConnection`: the same Core statement objects the rest of the
registry uses, compiled once for the dialect and run on the DB-API cursor, with the column
types' own bind and result processors, so a value is written and read exactly as the ORM would
(the same datetime text, the same State). On any other database they yield a Core Connection.
Either way the rules live once, in the module that builds the statements (events.py, seen.py);
this module only decides how a statement reaches the database.
"""

from __future__ import annotations

import sqlite3
import threading
import weakref
from collections import namedtuple
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy.engine import Dialect, Engine
from sqlalchemy.sql.base import Executable
from sqlalchemy.sql.compiler import SQLCompiler

from server.errors import Unavailable
from server.registry.database import (
    BUSY,
    read_connection,
    sqlite_writer,
    write_connection,
)

Processor = Callable[[Any], Any] | None
Params = Mapping[str, Any]
CACHE_MAX = 128  # statements kept compiled per engine: the boot path has a handful
SIZED_MAX = 64  # IN-list statements kept per list length (a group commit's batch sizes)


class Rows(Protocol):
    """What a statement's result offers both ways (a CursorResult, or DriverResult)."""

    @property
    def rowcount(self) -> int: ...

    def all(self) -> Sequence[Any]: ...

    def first(self) -> Any: ...


class Executes(Protocol):
    """A Core Connection, or a DriverConnection: `execute(statement, params)`."""

    def execute(self, statement: Any, parameters: Any = None, /) -> Rows: ...


@dataclass(frozen=True)
class _Compiled:
    """One statement as the driver's SQL, its parameter order and processors."""

    statement: Executable  # held so its id() is never reused while cached
    sql: str
    order: tuple[str, ...]
    bind: tuple[Processor, ...]
    fixed: dict[str, Any]  # values compiled in (literal(True), boots + 1, ...)
    expanding: frozenset[str]  # IN-lists, one placeholder per item at execution
    result: tuple[Processor, ...] | None  # None: the statement returns no rows
    row: Callable[[Iterable[Any]], tuple[Any, ...]]  # a row with its columns by name
    sized: dict[tuple[int, ...], str] = field(default_factory=dict)  # SQL by IN-list lengths

    @classmethod
    def of(cls, statement: Any, dialect: Dialect, keys: tuple[str, ...]) -> _Compiled:
        compiled: SQLCompiler = statement.compile(dialect=dialect, column_keys=list(keys))
        if compiled.returning:  # its rows would need Core's result handling
            raise TypeError("a statement with RETURNING runs through Core, not the driver")
        binds = compiled.binds
        order = tuple(compiled.positiontup or ())
        # What Core fills in itself: compiled-in values, and the columns' scalar defaults
        # (a callable default needs Core's execution context: the caller passes the value).
        fixed = {name: b.value for name, b in binds.items() if not b.required and not b.callable}
        for column, default in [
            *((c, c.default) for c in compiled.insert_prefetch),
            *((c, c.onupdate) for c in compiled.update_prefetch),
        ]:
            if default is None or not default.is_scalar:
                raise TypeError(f"pass a value for {column.key}: its default is computed by Core")
            fixed[column.key] = default.arg  # type: ignore[attr-defined]
        result = None
        row: Callable[[Iterable[Any]], tuple[Any, ...]] = tuple
        if getattr(statement, "selected_columns", None) is not None:
            columns = list(statement.selected_columns)
            result = tuple(
                c.type.dialect_impl(dialect).result_processor(dialect, None) for c in columns
            )
            named = namedtuple("Row", [c.key for c in columns], rename=True)  # type: ignore[misc]
            row = named._make
        return cls(
            statement=statement,
            sql=str(compiled),
            order=order,
            bind=tuple(
                binds[name].type.dialect_impl(dialect).bind_processor(dialect) for name in order
            ),
            fixed=fixed,
            expanding=frozenset(name for name in order if binds[name].expanding),
            result=result,
            row=row,
        )

    def args(self, params: Params) -> list[Any]:
        """The arguments in placeholder order, each through its type's bind processor; a
        missing required one is a KeyError, as Core makes it an error."""
        values = self.fixed | dict(params)
        out = [values[name] for name in self.order]
        for i, process in enumerate(self.bind):
            if process is not None:
                out[i] = process(out[i])
        return out

    def expand(self, params: Params) -> tuple[str, list[Any]]:
        """The SQL and arguments with each IN-list given one placeholder per item."""
        values = self.fixed | dict(params)
        out: list[Any] = []
        lengths = []
        for name, process in zip(self.order, self.bind, strict=True):
            value = values[name]
            if name in self.expanding:
                items = list(value)
                lengths.append(len(items))
                out += items if process is None else [process(v) for v in items]
            else:
                out.append(value if process is None else process(value))
        key = tuple(lengths)
        sql = self.sized.get(key)
        if sql is None:
            sql = self.sql
            for name, n in zip((n for n in self.order if n in self.expanding), key, strict=True):
                # no items: a set with no row, so IN is false and NOT IN true (as Core does)
                inside = ", ".join("?" * n) if n else "SELECT 1 WHERE 1 != 1"
                sql = sql.replace(f"__[POSTCOMPILE_{name}]", inside, 1)
            if len(self.sized) < SIZED_MAX:
                self.sized[key] = sql
        return sql, out


class DriverResult:
    """A statement's rows, as a CursorResult offers them."""

    def __init__(self, rows: list[tuple[Any, ...]], rowcount: int) -> None:
        self._rows = rows
        self.rowcount = rowcount

    def all(self) -> list[tuple[Any, ...]]:
        return self._rows

    def first(self) -> tuple[Any, ...] | None:
        return self._rows[0] if self._rows else None


class _Cache:
    """Compiled statements of one engine, by statement and parameter names."""

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        self._found: dict[tuple[int, tuple[str, ...]], _Compiled] = {}
        self._lock = threading.Lock()

    def get(self, statement: Any, keys: tuple[str, ...]) -> _Compiled:
        key = (id(statement), keys)
        found = self._found.get(key)
        if found is None or found.statement is not statement:
            found = _Compiled.of(statement, self.dialect, keys)
            with self._lock:
                if len(self._found) >= CACHE_MAX:
                    self._found.clear()
                self._found[key] = found
        return found


class DriverConnection:
    """execute(statement, params) on a DB-API cursor, inside the caller's transaction."""

    def __init__(self, cursor: sqlite3.Cursor, cache: _Cache) -> None:
        self._cursor = cursor
        self._cache = cache

    def execute(
        self, statement: Any, parameters: Params | Sequence[Params] | None = None, /
    ) -> DriverResult:
        many = isinstance(parameters, list | tuple)  # (not Sequence: its check costs more)
        rows: Sequence[Params] = parameters if many else [parameters or {}]  # type: ignore[assignment,list-item]
        if not rows:  # nothing to write (Core would run the statement once, without values)
            return DriverResult([], 0)
        compiled = self._cache.get(statement, tuple(rows[0]))
        cur = self._cursor
        if compiled.expanding:
            if many:
                raise ValueError("an IN-list statement runs with one set of parameters")
            sql, args = compiled.expand(rows[0])
            cur.execute(sql, args)
        elif many:
            cur.executemany(compiled.sql, [compiled.args(p) for p in rows])
        else:
            cur.execute(compiled.sql, compiled.args(rows[0]))
        if compiled.result is None:
            return DriverResult([], cur.rowcount)
        processors = compiled.result
        make = compiled.row
        if any(p is not None for p in processors):
            found = [
                make(v if p is None else p(v) for p, v in zip(processors, row, strict=True))
                for row in cur.fetchall()
            ]
        else:
            found = [make(row) for row in cur.fetchall()]
        return DriverResult(found, cur.rowcount)  # -1 for a SELECT, as the driver (and Core) say


# One cache per engine, living exactly as long as the engine (as database's writer locks).
_CACHES: weakref.WeakKeyDictionary[Engine, _Cache] = weakref.WeakKeyDictionary()
_CACHES_GUARD = threading.Lock()


def _cache(engine: Engine) -> _Cache:
    found = _CACHES.get(engine)
    if found is None:
        with _CACHES_GUARD:
            found = _CACHES.setdefault(engine, _Cache(engine.dialect))
    return found


def _on_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


@contextmanager
def reading(engine: Engine) -> Iterator[Executes]:
    """A connection for reads (in WAL mode it never waits for a writer)."""
    if not _on_sqlite(engine):
        with read_connection(engine) as conn:
            yield conn
        return
    try:
        raw = engine.raw_connection()
        try:
            cur = raw.cursor()
            try:
                yield DriverConnection(cur, _cache(engine))  # type: ignore[arg-type]
            finally:
                cur.close()
        finally:
            raw.close()  # back to the pool
    except sqlite3.OperationalError as exc:
        raise Unavailable(BUSY) from exc


@contextmanager
def writing(engine: Engine) -> Iterator[Executes]:
    """A write transaction: committed if the block ends, rolled back if it raises. On
    SQLite it waits for this process's writer lock, then takes the database's (BEGIN
    IMMEDIATE), like write_connection."""
    if not _on_sqlite(engine):
        with write_connection(engine) as conn:
            yield conn
        return
    with sqlite_writer(engine):
        try:
            raw = engine.raw_connection()
            try:
                cur = raw.cursor()
                cur.execute("BEGIN IMMEDIATE")
                try:
                    yield DriverConnection(cur, _cache(engine))  # type: ignore[arg-type]
                    cur.execute("COMMIT")
                except BaseException:
                    if raw.driver_connection.in_transaction:  # type: ignore[union-attr]
                        cur.execute("ROLLBACK")
                    raise
                finally:
                    cur.close()
            finally:
                raw.close()
        except sqlite3.OperationalError as exc:
            raise Unavailable(BUSY) from exc
