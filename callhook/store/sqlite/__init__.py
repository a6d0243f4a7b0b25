"""SQLite backend (the default): one file in WAL mode, nothing to install."""

from __future__ import annotations

from callhook.store.sql.store import SqlStore
from callhook.store.sqlite.engine import Engine, sqlite_path, upgrade


class SQLiteStore(SqlStore):
    """Everything callhook keeps, in one SQLite file (store.Store)."""

    def __init__(
        self, url: str, *, durability: str = "full", readers: int = 4, **_: object
    ) -> None:
        super().__init__(Engine(url, durability=durability, readers=readers))


__all__ = ["Engine", "SQLiteStore", "sqlite_path", "upgrade"]
