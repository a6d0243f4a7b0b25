"""PostgreSQL backend: `[server] database = "postgresql://user:password@host/db"`."""

from __future__ import annotations

from callhook.store.postgres.connections import TIMEOUT
from callhook.store.postgres.engine import Engine, upgrade
from callhook.store.sql.store import SqlStore


class PostgresStore(SqlStore):
    """Everything callhook keeps, in one PostgreSQL database (store.Store)."""

    def __init__(
        self,
        url: str,
        *,
        readers: int = 4,
        shared: bool = False,
        timeout: int = TIMEOUT,
        **_: object,
    ) -> None:
        super().__init__(Engine(url, readers=readers, shared=shared, timeout=timeout))


__all__ = ["Engine", "PostgresStore", "upgrade"]
