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
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Any

import psycopg

from callhook.store import StoreError
from callhook.store.postgres import schema
from callhook.store.sql import Conn, Cursor
from callhook.store.sql.engine import ThreadEngine

# The advisory lock a clustered node's writer holds from BEGIN to COMMIT.
WRITER_LOCK = 0x63616C6C  # "call"
CONNECT_TIMEOUT = 5  # seconds; a dead server answers 503 in about this long


def dsn(url: str) -> str:
    """libpq takes `postgresql://` and `postgres://` URLs as they are."""
    return url


@lru_cache(maxsize=1024)
def _paramstyle(sql: str) -> str:
    """The shared SQL's `?` parameters as psycopg's `%s` (a literal `%` doubled)."""
    return re.sub(r"\?", "%s", sql.replace("%", "%%"))


class PgConn:
    """A psycopg connection speaking the shared SQL's dialect (store.sql.Conn)."""

    __slots__ = ("raw",)

    def __init__(self, raw: psycopg.Connection[Any]) -> None:
        self.raw = raw

    def execute(self, sql: str, params: Sequence[Any] = (), /) -> Cursor:
        return self.raw.execute(_paramstyle(sql), params or None)

    def executemany(self, sql: str, params: Iterable[Sequence[Any]], /) -> Cursor:
        cur = self.raw.cursor()
        cur.executemany(_paramstyle(sql), params)
        return cur

    def close(self) -> None:
        self.raw.close()


def connect_raw(url: str) -> psycopg.Connection[Any]:
    try:
        return psycopg.connect(dsn(url), autocommit=True, connect_timeout=CONNECT_TIMEOUT)
    except psycopg.Error as exc:
        raise StoreError(f"cannot connect to PostgreSQL: {' '.join(str(exc).split())}") from exc


def upgrade(url: str) -> list[int]:
    """Run pending migrations on the database at `url` (`callhook db upgrade`)."""
    conn = connect_raw(url)
    try:
        return schema.upgrade(conn)
    except psycopg.Error as exc:
        raise StoreError(f"migrating PostgreSQL failed: {exc}") from exc
    finally:
        conn.close()


class Engine(ThreadEngine):
    """One PostgreSQL database: a single writer connection (group commit), reader pool."""

    name = "postgres"
    begin = "BEGIN"

    def __init__(self, url: str, *, readers: int = 4, shared: bool = False) -> None:
        super().__init__(readers=readers)
        self.url = url
        if shared:  # several nodes write here: their writers take turns (docs/scaling.md)
            self.shared_lock = f"SELECT pg_advisory_xact_lock({WRITER_LOCK})"

    def migrate(self) -> None:
        upgrade(self.url)

    def connect(self, *, reader: bool) -> Conn:
        conn = PgConn(connect_raw(self.url))
        if self.shared_lock and not reader:
            # A node cut off in the middle of a transaction would keep every node's writer
            # waiting on its lock until PostgreSQL noticed the dead connection: the server
            # ends such a transaction after 5 s, and a writer waits for the lock 10 s at
            # most (its phones get 503 and send again).
            conn.execute("SET idle_in_transaction_session_timeout = '5s'")
            conn.execute("SET lock_timeout = '10s'")
        return conn

    def lost(self, exc: BaseException) -> bool:
        return isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError | StoreError)

    def errors(self) -> tuple[type[BaseException], ...]:
        return (psycopg.Error,)
