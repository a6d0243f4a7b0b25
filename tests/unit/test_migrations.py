"""One list of migrations for both backends: a fresh database and one made by an earlier
release, then upgraded, end with exactly the same schema, and the upgrade keeps the data.

The earlier release's schemas are the SQL it ran, kept as it was in tests/fixtures/
(`schema5-*.sql`, one section per version, and the SQLite file made by `callhook serve`
at schema version 3 that tests/e2e/test_upgrade_fixture.py starts a hub on).
"""

from __future__ import annotations

import re
import shutil
import sqlite3
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from callhook.store import StoreError, migrations, upgrade
from callhook.store.migrations import MIGRATIONS, Migration, Only, render

FIXTURES = Path(__file__).parent.parent / "fixtures"
LATEST = MIGRATIONS[-1].version


def _sections(backend: str) -> list[str]:
    """The earlier release's migration scripts, version 1 first."""
    text = (FIXTURES / f"schema5-{backend}.sql").read_text()
    return re.split(r"^-- version \d+\n", text, flags=re.M)[1:]


# -- SQLite ----------------------------------------------------------------------------


def _sqlite_schema(path: Path) -> list[tuple[Any, ...]]:
    with sqlite3.connect(path) as conn:
        rows = conn.execute(
            "SELECT type, name, tbl_name, sql FROM sqlite_master"
            " WHERE name != 'schema_migrations' ORDER BY type, name"
        ).fetchall()
        versions = conn.execute("SELECT version FROM schema_migrations ORDER BY 1").fetchall()
    conn.close()
    return [*rows, ("versions", [v for (v,) in versions])]


def _sqlite_made_by_release(path: Path, up_to: int) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at REAL)")
    for version, script in enumerate(_sections("sqlite")[:up_to], start=1):
        for statement in script.split(";"):
            if statement.strip():
                conn.execute(statement)
        conn.execute("INSERT INTO schema_migrations VALUES (?, ?)", (version, time.time()))
    conn.execute("INSERT INTO tenants (name, tenant_id, created_at) VALUES ('acme', 't-1', 1.5)")
    conn.execute(
        "INSERT INTO events (tenant, seq, event_id, topic, key, created_at, body)"
        " VALUES ('acme', 1, 'e-1', 'call', 'call_started', 2.5, X'7b7d')"
    )
    conn.close()


@pytest.mark.parametrize("up_to", [3, 5])
def test_sqlite_from_an_earlier_release_gets_the_fresh_schema(tmp_path: Path, up_to: int) -> None:
    old, fresh = tmp_path / "old.db", tmp_path / "fresh.db"
    _sqlite_made_by_release(old, up_to)
    assert upgrade(f"sqlite:///{old}") == list(range(up_to + 1, LATEST + 1))
    assert upgrade(f"sqlite:///{fresh}") == list(range(1, LATEST + 1))
    assert _sqlite_schema(old) == _sqlite_schema(fresh)
    with sqlite3.connect(old) as conn:
        assert conn.execute("SELECT tenant, seq, event_id, body FROM events").fetchall() == [
            ("acme", 1, "e-1", b"{}")
        ]
        assert conn.execute("SELECT name, extended_prefix FROM tenants").fetchall() == [
            ("acme", "")
        ]
    conn.close()


def test_the_sqlite_file_of_the_previous_release_gets_the_fresh_schema(tmp_path: Path) -> None:
    old, fresh = tmp_path / "old.db", tmp_path / "fresh.db"
    shutil.copy(FIXTURES / "callhook-0.1-schema3.db", old)
    with sqlite3.connect(old) as conn:
        before = conn.execute("SELECT tenant, seq, event_id, body FROM events").fetchall()
    conn.close()
    assert upgrade(f"sqlite:///{old}") == list(range(4, LATEST + 1))
    assert upgrade(f"sqlite:///{old}") == []  # applied once
    upgrade(f"sqlite:///{fresh}")
    assert _sqlite_schema(old) == _sqlite_schema(fresh)
    with sqlite3.connect(old) as conn:
        assert conn.execute("SELECT tenant, seq, event_id, body FROM events").fetchall() == before
    conn.close()
    assert len(before) == 8


# -- PostgreSQL ------------------------------------------------------------------------

_PG_CATALOG = {
    "columns": "SELECT table_name, column_name, ordinal_position, data_type, is_nullable,"
    " column_default, collation_name FROM information_schema.columns"
    " WHERE table_schema = 'public' AND table_name != 'schema_migrations'",
    "indexes": "SELECT tablename, indexname, indexdef FROM pg_indexes"
    " WHERE schemaname = 'public' AND tablename != 'schema_migrations'",
    "constraints": "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid)"
    " FROM pg_constraint WHERE connamespace = 'public'::regnamespace"
    " AND conrelid::regclass::text != 'schema_migrations'",
    "functions": "SELECT proname, pg_get_functiondef(oid) FROM pg_proc"
    " WHERE pronamespace = 'public'::regnamespace",
    "sequences": "SELECT sequence_name, data_type FROM information_schema.sequences"
    " WHERE sequence_schema = 'public'",
    "views": "SELECT table_name, view_definition FROM information_schema.views"
    " WHERE table_schema = 'public'",
    "versions": "SELECT version FROM schema_migrations",
}


def _pg_schema(url: str) -> dict[str, list[tuple[Any, ...]]]:
    with psycopg.connect(url) as conn:
        return {k: sorted(conn.execute(q).fetchall()) for k, q in _PG_CATALOG.items()}


def _pg_database() -> str:
    from tests.support import postgres

    return postgres.server().new_database()


def _pg_made_by_release(url: str, up_to: int) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE schema_migrations"
            " (version INTEGER PRIMARY KEY, applied_at DOUBLE PRECISION)"
        )
        for version, script in enumerate(_sections("postgres")[:up_to], start=1):
            with conn.transaction():
                conn.execute(script.encode())  # run as the release ran it: one script
                conn.execute(
                    "INSERT INTO schema_migrations VALUES (%s, %s)", (version, time.time())
                )
        conn.execute(
            "INSERT INTO tenants (name, tenant_id, created_at) VALUES ('acme', 't-1', 1.5)"
        )
        conn.execute(
            "INSERT INTO events (tenant, seq, event_id, topic, key, created_at, body)"
            " VALUES ('acme', 1, 'e-1', 'call', 'call_started', 2.5, '\\x7b7d')"
        )


@pytest.mark.parametrize("up_to", [3, 5])
def test_postgres_from_an_earlier_release_gets_the_fresh_schema(up_to: int) -> None:
    old, fresh = _pg_database(), _pg_database()
    _pg_made_by_release(old, up_to)
    assert upgrade(old) == list(range(up_to + 1, LATEST + 1))
    assert upgrade(old) == []  # applied once
    assert upgrade(fresh) == list(range(1, LATEST + 1))
    assert _pg_schema(old) == _pg_schema(fresh)
    with psycopg.connect(old) as conn:
        assert conn.execute("SELECT tenant, seq, event_id, body FROM events").fetchall() == [
            ("acme", 1, "e-1", b"{}")
        ]
        assert conn.execute("SELECT name, extended_prefix FROM tenants").fetchall() == [
            ("acme", "")
        ]


def test_a_failing_postgres_step_leaves_the_previous_version() -> None:
    url = _pg_database()
    _pg_made_by_release(url, 3)
    with psycopg.connect(url, autocommit=True) as conn:  # step 4 will find its column
        conn.execute("ALTER TABLE tenants ADD COLUMN extended_prefix TEXT")
    with pytest.raises(StoreError, match="extended_prefix"):
        upgrade(url)
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT MAX(version) FROM schema_migrations").fetchone() == (3,)


# -- the list itself -------------------------------------------------------------------


def test_versions_are_one_to_n_in_order() -> None:
    assert [m.version for m in MIGRATIONS] == list(range(1, len(MIGRATIONS) + 1))


@pytest.mark.parametrize("dialect", ["sqlite", "postgres"])
def test_every_step_renders_without_a_token_left(dialect: migrations.Dialect) -> None:
    for m in MIGRATIONS:
        for statement in m.render(dialect):
            assert not re.search(r"\{[A-Z_]+\}", statement), (m.version, statement)


def test_a_step_for_one_engine_is_a_recorded_no_op_on_the_other(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    step = Migration(
        LATEST + 1,
        "a PostgreSQL-only table",
        (Only("postgres", "CREATE TABLE leases (k {KEY} PRIMARY KEY, n {INT})"),),
    )
    monkeypatch.setattr(migrations, "MIGRATIONS", (*MIGRATIONS, step))
    lite, pg = f"sqlite:///{tmp_path / 'x.db'}", _pg_database()
    assert upgrade(lite)[-1] == upgrade(pg)[-1] == LATEST + 1
    with sqlite3.connect(tmp_path / "x.db") as conn:
        names = {n for (n,) in conn.execute("SELECT name FROM sqlite_master")}
    conn.close()
    assert "leases" not in names and "events" in names
    with psycopg.connect(pg) as pconn:
        assert pconn.execute(
            "SELECT column_name, data_type, collation_name FROM information_schema.columns"
            " WHERE table_name = 'leases' ORDER BY ordinal_position"
        ).fetchall() == [("k", "text", "C"), ("n", "bigint", None)]


def test_dialect_spellings() -> None:
    sql = "CREATE TABLE t (id {AUTOINCREMENT}, n {INT}, at {REAL}, b {BLOB}, d TEXT DEFAULT '{}')"
    assert render(sql, "sqlite") == (
        "CREATE TABLE t (id INTEGER PRIMARY KEY AUTOINCREMENT, n INTEGER, at REAL,"
        " b BLOB, d TEXT DEFAULT '{}')"
    )
    assert render(sql, "postgres") == (
        "CREATE TABLE t (id BIGSERIAL PRIMARY KEY, n BIGINT, at DOUBLE PRECISION,"
        " b BYTEA, d TEXT DEFAULT '{}')"
    )
    with pytest.raises(KeyError, match="UUID"):
        render("CREATE TABLE t (id {UUID})", "sqlite")
