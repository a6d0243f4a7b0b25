"""PostgreSQL engine: the shared writer thread (group commit) and readers, over psycopg.

The same design as SQLite's, on purpose: one writer connection takes every operation
waiting at that moment into one transaction, so `seq` is assigned gap-free in commit
order and a phone is answered only after COMMIT returned. A broken connection (a
restarted or unreachable server) fails the waiting operations with StoreError, which the
hub answers `503 storage-unavailable`, and the next operation connects again: the hub
recovers by itself when the server is back.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from functools import lru_cache
from typing import Any

import psycopg
from psycopg.conninfo import make_conninfo

from callhook.store import Fence, StoreError
from callhook.store.postgres import leases, schema
from callhook.store.postgres.connections import (
    TIMEOUT,
    dsn,
    liveness,
    nul_safe,
    server_liveness,
)
from callhook.store.sql import Conn, Cursor
from callhook.store.sql.engine import ThreadEngine

# The advisory lock a clustered node's writer holds from BEGIN to COMMIT in a batch with
# an unfenced write (store/sql/engine.py: ThreadEngine.shared_lock).
WRITER_LOCK = 0x63616C6C  # "call"


@lru_cache(maxsize=1024)
def _paramstyle(sql: str) -> str:
    """The shared SQL's `?` parameters as psycopg's `%s` (a literal `%` doubled)."""
    return re.sub(r"\?", "%s", sql.replace("%", "%%"))


class _Counted:
    """A cursor whose `rowcount` is read after the pipeline delivered it."""

    __slots__ = ("_cur", "_pipeline")

    def __init__(self, cur: psycopg.Cursor[Any], pipeline: psycopg.Pipeline) -> None:
        self._cur = cur
        self._pipeline = pipeline

    @property
    def rowcount(self) -> int:
        self._pipeline.sync()  # in pipeline mode the count comes with the results
        return self._cur.rowcount

    def fetchone(self) -> Any:
        return self._cur.fetchone()

    def fetchall(self) -> list[Any]:
        return self._cur.fetchall()

    def __iter__(self) -> Iterator[Any]:
        return iter(self._cur)


class PgConn:
    """A psycopg connection speaking the shared SQL's dialect (store.sql.Conn)."""

    __slots__ = ("pipeline", "raw")

    def __init__(self, raw: psycopg.Connection[Any]) -> None:
        self.raw = raw
        self.pipeline: psycopg.Pipeline | None = None  # set while a batch is pipelined

    def execute(self, sql: str, params: Sequence[Any] = (), /) -> Cursor:
        cur = self.raw.execute(_paramstyle(sql), params or None)
        return cur if self.pipeline is None else _Counted(cur, self.pipeline)

    def executemany(self, sql: str, params: Iterable[Sequence[Any]], /) -> Cursor:
        cur = self.raw.cursor()
        cur.executemany(_paramstyle(sql), params)
        return cur if self.pipeline is None else _Counted(cur, self.pipeline)

    @contextmanager
    def pipelined(self) -> Iterator[None]:
        with self.raw.pipeline() as p:
            self.pipeline = p
            try:
                yield
            finally:
                self.pipeline = None

    def close(self) -> None:
        self.raw.close()


def connect_raw(url: str, timeout: int = TIMEOUT) -> psycopg.Connection[Any]:
    try:
        conninfo = make_conninfo(dsn(url), **liveness(url, timeout))
        conn = psycopg.connect(conninfo, autocommit=True)
        nul_safe(conn)
    except psycopg.Error as exc:
        raise StoreError(f"cannot connect to PostgreSQL: {' '.join(str(exc).split())}") from exc
    try:
        settings = server_liveness(timeout)
        calls = ", ".join("set_config(%s, %s, false)" for _ in settings)
        conn.execute(f"SELECT {calls}", [x for kv in settings.items() for x in kv])
    except psycopg.Error as exc:
        conn.close()
        raise StoreError(f"cannot set up the PostgreSQL session: {exc}") from exc
    return conn


def upgrade(url: str, timeout: int = TIMEOUT) -> list[int]:
    """Run pending migrations on the database at `url` (`callhook db upgrade`)."""
    conn = connect_raw(url, timeout)
    try:
        return schema.upgrade(conn)
    except psycopg.Error as exc:
        raise StoreError(f"migrating PostgreSQL failed: {exc}") from exc
    finally:
        conn.close()


# Errors that fail a whole batch at once, not one operation at a time: the shared writer
# lock not granted in time (every operation would wait for it again), the server shutting
# down. Like a broken connection: 503, and the next batch starts on a new connection.
_GIVE_UP = (
    psycopg.errors.LockNotAvailable,
    psycopg.errors.QueryCanceled,
    psycopg.errors.AdminShutdown,
)


# SQLSTATE classes of errors that are not the write's fault and may pass when it runs
# again: transaction rollback (deadlock, serialization), insufficient resources (disk
# full, out of memory), operator intervention, system error (I/O), internal error.
_TRANSIENT = frozenset({"40", "53", "57", "58", "XX"})


class Engine(ThreadEngine):
    """One PostgreSQL database: a single writer connection (group commit), reader pool."""

    name = "postgres"
    begin = "BEGIN"

    def __init__(
        self, url: str, *, readers: int = 4, shared: bool = False, timeout: int = TIMEOUT
    ) -> None:
        super().__init__(readers=readers)
        self.url = url
        self.timeout = timeout
        if shared:  # several nodes write here: their writers take turns (docs/scaling.md)
            self.shared_lock = f"SELECT pg_advisory_xact_lock({WRITER_LOCK})"

    def migrate(self) -> None:
        upgrade(self.url, self.timeout)

    def connect(self, *, reader: bool) -> Conn:
        conn = PgConn(connect_raw(self.url, self.timeout))
        if self.shared_lock and not reader:
            # A node cut off in the middle of a transaction would keep every node's writer
            # waiting on its lock until PostgreSQL noticed the dead connection: the server
            # ends such a transaction after 5 s idle, or after `timeout` s of silence if it
            # was cut in the middle of a pipeline (server_liveness), and a writer waits for
            # the lock 10 s at most (its phones get 503 and send again).
            conn.execute("SET idle_in_transaction_session_timeout = '5s'")
            conn.execute("SET lock_timeout = '10s'")
        return conn

    def lost(self, exc: BaseException, conn: Conn) -> bool:
        if isinstance(exc, (StoreError, *_GIVE_UP)):
            return True
        raw = conn.raw if isinstance(conn, PgConn) else None
        return raw is None or raw.closed or raw.broken

    def errors(self) -> tuple[type[BaseException], ...]:
        return (psycopg.Error,)

    def after_failed_transaction(self, conn: Conn) -> None:
        # After a failed transaction psycopg can be left believing a statement it
        # prepared exists on the server when it does not: every later run of it would
        # fail with "prepared statement ... does not exist" (seen after a pipelined batch
        # failed, and after a failed transaction it then ran again alone). A new session
        # starts both sides afresh; failures are rare (a seq another node took, a lease
        # lost, a write the database refuses), so the reconnection costs little.
        assert isinstance(conn, PgConn)
        fresh = self.connect(reader=False)
        assert isinstance(fresh, PgConn)
        old, conn.raw = conn.raw, fresh.raw
        old.close()

    def seq_taken(self, exc: BaseException) -> bool:
        return (
            isinstance(exc, psycopg.errors.UniqueViolation)
            and exc.diag.constraint_name == "events_pkey"
        )

    def transient(self, exc: BaseException) -> bool:
        state = getattr(exc, "sqlstate", None) or ""
        return state[:2] in _TRANSIENT

    def failed_fences(self, conn: Conn, fences: set[Fence]) -> set[Fence]:
        return leases.failed_fences(conn, fences)

    def assert_fences(self, conn: Conn, fences: set[Fence]) -> bool:
        if not isinstance(conn, PgConn) or conn.pipeline is None:
            return False
        leases.assert_fences(conn, fences)
        return True

    def batch_context(self, conn: Conn, alone: bool) -> AbstractContextManager[Any]:
        # A group commit's statements go out without waiting for each answer (libpq's
        # pipeline mode; a SELECT whose rows are needed waits for them). An error fails
        # the batch, which is then retried one operation at a time without a pipeline,
        # so that each request's savepoint catches its own error.
        if alone or not isinstance(conn, PgConn):
            return nullcontext()
        return conn.pipelined()
