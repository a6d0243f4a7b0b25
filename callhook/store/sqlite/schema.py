"""Applies the migrations of `callhook/store/migrations.py` to a SQLite file."""

from __future__ import annotations

import sqlite3
import time

from callhook.store import migrations


def current_version(conn: sqlite3.Connection) -> int:
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations"
        " (version INTEGER PRIMARY KEY, applied_at REAL)"
    )
    row = conn.execute("SELECT MAX(version) FROM schema_migrations").fetchone()
    return int(row[0] or 0)


def upgrade(conn: sqlite3.Connection) -> list[int]:
    """Apply pending migrations, each in its own transaction; returns the versions applied.

    `BEGIN IMMEDIATE` takes the write lock before the version is read again, so two
    processes starting at once do not apply the same migration twice.
    """
    applied = []
    for version, statements in migrations.pending("sqlite", current_version(conn)):
        conn.execute("BEGIN IMMEDIATE")
        try:
            if version <= current_version(conn):  # another process was first
                conn.execute("ROLLBACK")
                continue
            for statement in statements:
                conn.execute(statement)
            conn.execute(
                "INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)",
                (version, time.time()),
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        applied.append(version)
    return applied
