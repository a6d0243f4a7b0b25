"""`SqlStore`: the repositories of `callhook.store` over one `ThreadEngine`."""

from __future__ import annotations

from callhook.store.sql.deliveries import SqlDeliveries
from callhook.store.sql.engine import ThreadEngine
from callhook.store.sql.log import SqlCorrelationState, SqlEventLog
from callhook.store.sql.repos import SqlDirectory, SqlMaintenance, SqlQueries


class SqlStore:
    """Everything callhook keeps, in one SQL database (store.Store)."""

    def __init__(self, engine: ThreadEngine) -> None:
        self.engine = engine
        self.log = SqlEventLog(engine)
        self.state = SqlCorrelationState(engine)
        self.directory = SqlDirectory(engine)
        self.queries = SqlQueries(engine)
        self.deliveries = SqlDeliveries(engine)
        self.maintenance = SqlMaintenance(engine)

    async def open(self) -> None:
        await self.engine.open()

    async def close(self) -> None:
        await self.engine.close()

    async def ping(self) -> None:
        await self.engine.read(lambda c: c.execute("SELECT 1").fetchone())
