"""Applies the migrations of `callhook/store/migrations.py` to a PostgreSQL database."""

from __future__ import annotations

import time
from typing import Any

from callhook.store import migrations

MIGRATION_LOCK = 7261001  # the advisory lock held while migrating


def current_version(conn: Any) -> int:
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations"
        " (version INTEGER PRIMARY KEY, applied_at DOUBLE PRECISION)"
    )
    row = conn.execute("SELECT MAX(version) FROM schema_migrations").fetchone()
    return int(row[0] or 0)


def upgrade(conn: Any) -> list[int]:
    """Apply pending migrations, each in its own transaction; returns the versions applied.

    `conn` is a raw psycopg connection in autocommit mode. An advisory lock keeps two
    processes starting at once from applying the same migration twice.
    """
    applied = []
    conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK,))
    try:
        for version, statements in migrations.pending("postgres", current_version(conn)):
            with conn.transaction():
                for statement in statements:
                    conn.execute(statement)
                conn.execute(
                    "INSERT INTO schema_migrations (version, applied_at) VALUES (%s, %s)",
                    (version, time.time()),
                )
            applied.append(version)
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK,))
    return applied
