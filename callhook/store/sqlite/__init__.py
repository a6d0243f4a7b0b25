"""SQLite backend (the default): one file in WAL mode, nothing to install.

`SQLiteStore` puts the repositories of `callhook.store` over one `Engine` (a single writer
thread with group commit and reader threads, engine.py).
"""

from __future__ import annotations

from callhook.store.sqlite.deliveries import SQLiteDeliveries
from callhook.store.sqlite.engine import Engine, sqlite_path, upgrade
from callhook.store.sqlite.log import SQLiteCorrelationState, SQLiteEventLog
from callhook.store.sqlite.repos import SQLiteDirectory, SQLiteMaintenance, SQLiteQueries


class SQLiteStore:
    """Everything callhook keeps, in one SQLite file (store.Store)."""

    def __init__(self, url: str, *, durability: str = "full", readers: int = 4) -> None:
        self.engine = Engine(url, durability=durability, readers=readers)
        self.log = SQLiteEventLog(self.engine)
        self.state = SQLiteCorrelationState(self.engine)
        self.directory = SQLiteDirectory(self.engine)
        self.queries = SQLiteQueries(self.engine)
        self.deliveries = SQLiteDeliveries(self.engine)
        self.maintenance = SQLiteMaintenance(self.engine)

    async def open(self) -> None:
        await self.engine.open()

    async def close(self) -> None:
        await self.engine.close()

    async def ping(self) -> None:
        await self.engine.read(lambda c: c.execute("SELECT 1").fetchone())


__all__ = ["Engine", "SQLiteStore", "sqlite_path", "upgrade"]
