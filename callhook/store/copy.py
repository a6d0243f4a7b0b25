"""Copy a hub's whole database into another one: a SQLite hub grows onto PostgreSQL.

`callhook db migrate-sqlite-to-postgres SRC DST`. Both are migrated to the current schema
first; the destination must be empty (no tenant, no event), so a copy is never merged
into a live hub's data by mistake. Tables are copied in the order their references need,
in batches, inside one transaction on the destination: a copy that fails leaves it
empty. Rows keep everything (seq, event_id, ids, delivery log), so subscribers resume
with the same `since_seq` and webhooks go on where they were. Run it with the hub
stopped (or accept that what it stores meanwhile is not copied).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from callhook.store import StoreError, scheme
from callhook.store import upgrade as upgrade_db
from callhook.store.sql import Conn

# Parents before children (foreign keys); every table the migrations create.
TABLES: tuple[str, ...] = (
    "tenants",
    "extensions",
    "queues",
    "trunks",
    "api_keys",
    "devices",
    "events",
    "sessions",
    "presence",
    "cdrs",
    "tenant_purges",
    "endpoints",
    "deliveries",
    "delivery_attempts",
)
BATCH = 2000


def _connect(url: str) -> Conn:
    if scheme(url) == "sqlite":
        from callhook.store.sqlite.engine import connect, sqlite_path

        return connect(sqlite_path(url))
    from callhook.store.postgres.engine import PgConn, connect_raw

    return PgConn(connect_raw(url))


def _columns(conn: Conn, table: str) -> list[str]:
    cur = conn.execute(f"SELECT * FROM {table} LIMIT 0")
    return [d[0] for d in cur.description]  # type: ignore[attr-defined]


def _rows(conn: Conn, table: str, columns: list[str]) -> Iterator[list[tuple[object, ...]]]:
    cur = conn.execute(f"SELECT {', '.join(columns)} FROM {table}")
    while batch := cur.fetchmany(BATCH):  # type: ignore[attr-defined]
        yield [tuple(r) for r in batch]


def copy_database(
    src: str, dst: str, progress: Callable[[str, int], None] = lambda t, n: None
) -> dict[str, int]:
    """Copy every row of `src` into the empty database `dst`; rows per table."""
    upgrade_db(src)
    upgrade_db(dst)
    source, target = _connect(src), _connect(dst)
    try:
        for table in ("tenants", "events"):
            row = target.execute(f"SELECT COUNT(*) FROM {table}").fetchone()
            if row and row[0]:
                raise StoreError(f"the destination is not empty: it has {table} ({row[0]} rows)")
        copied: dict[str, int] = {}
        target.execute("BEGIN")
        try:
            for table in TABLES:
                columns = _columns(source, table)
                marks = ",".join("?" * len(columns))
                insert = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})"
                n = 0
                for batch in _rows(source, table, columns):
                    target.executemany(insert, batch)
                    n += len(batch)
                    progress(table, n)
                copied[table] = n
            target.execute("COMMIT")
        except BaseException:
            target.execute("ROLLBACK")
            raise
        return copied
    finally:
        source.close()
        target.close()
