"""SQLite engine: the shared writer thread and readers over one file in WAL mode."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from callhook.store import StoreError
from callhook.store.sql import Conn
from callhook.store.sql.engine import ThreadEngine
from callhook.store.sqlite import schema


def sqlite_path(url: str) -> str:
    """`sqlite:///relative.db` or `sqlite:////abs/path.db` -> a filesystem path."""
    path = url.removeprefix("sqlite:///")
    return path or "callhook.db"


def connect(path: str, *, durability: str = "full") -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={'FULL' if durability == 'full' else 'NORMAL'}")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


def upgrade(url: str) -> list[int]:
    """Run pending migrations on the database at `url` (`callhook db upgrade`)."""
    path = sqlite_path(url)
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        conn = connect(path)
        try:
            return schema.upgrade(conn)
        finally:
            conn.close()
    except (sqlite3.Error, OSError) as exc:
        raise StoreError(f"cannot open {path}: {exc}") from exc


class Engine(ThreadEngine):
    """One SQLite file: a single writer thread (group commit) and reader threads."""

    name = "sqlite"
    begin = "BEGIN IMMEDIATE"  # take the write lock at once: no upgrade deadlock

    def __init__(self, url: str, *, durability: str = "full", readers: int = 4) -> None:
        super().__init__(readers=readers)
        self.path = sqlite_path(url)
        self.durability = durability

    def migrate(self) -> None:
        try:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            conn = connect(self.path, durability=self.durability)
            try:
                schema.upgrade(conn)
            finally:
                conn.close()
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"cannot open {self.path}: {exc}") from exc

    def connect(self, *, reader: bool) -> Conn:
        conn = connect(self.path, durability=self.durability)
        if reader:
            conn.execute("PRAGMA query_only=ON")
        return conn

    def errors(self) -> tuple[type[BaseException], ...]:
        return (sqlite3.Error,)

    def transient(self, exc: BaseException) -> bool:
        return isinstance(exc, sqlite3.OperationalError)  # locked, I/O: not the data
