"""PostgreSQL migrations, applied in order by `callhook db upgrade` and at start.

Entry N here makes the same tables as entry N of `store/sqlite/schema.py` (a test checks
they move in step): the SQL of `store/sql/` runs on both. Types differ where the engines
do: BIGINT for integers, DOUBLE PRECISION for times, BYTEA for stored JSON bytes. Text
keys sort byte-wise (COLLATE "C"), as in SQLite, so cursors page the same way.
"""

from __future__ import annotations

import time
from typing import Any

# Each entry is one migration; never edit a released one, append a new one.
MIGRATIONS: list[str] = [
    # 1: event log, directory, devices, correlation state, CDRs, API keys; and the two
    # SQLite functions the shared SQL uses
    """
    CREATE FUNCTION instr(haystack TEXT, needle TEXT) RETURNS INTEGER
        LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$ SELECT strpos(haystack, needle) $$;
    CREATE FUNCTION json_each(doc TEXT) RETURNS TABLE (value TEXT)
        LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
        AS $$ SELECT json_array_elements_text(doc::json) $$;
    CREATE TABLE tenants (
        name TEXT COLLATE "C" PRIMARY KEY,
        tenant_id TEXT NOT NULL UNIQUE,
        domain TEXT NOT NULL DEFAULT '',
        ingest_token TEXT NOT NULL DEFAULT '',
        password_hash TEXT NOT NULL DEFAULT '',
        open_ingest_networks TEXT NOT NULL DEFAULT '[]',
        source TEXT NOT NULL DEFAULT 'api',
        created_at DOUBLE PRECISION NOT NULL
    );
    CREATE TABLE extensions (
        tenant TEXT COLLATE "C" NOT NULL REFERENCES tenants(name) ON DELETE CASCADE,
        number TEXT COLLATE "C" NOT NULL,
        extension_id TEXT NOT NULL,
        display_name TEXT NOT NULL DEFAULT '',
        password_hash TEXT NOT NULL DEFAULT '',
        groups TEXT NOT NULL DEFAULT '[]',
        source TEXT NOT NULL DEFAULT 'api',
        PRIMARY KEY (tenant, number)
    );
    CREATE TABLE queues (
        tenant TEXT COLLATE "C" NOT NULL REFERENCES tenants(name) ON DELETE CASCADE,
        number TEXT COLLATE "C" NOT NULL,
        members TEXT NOT NULL DEFAULT '[]',
        managers TEXT NOT NULL DEFAULT '[]',
        source TEXT NOT NULL DEFAULT 'api',
        PRIMARY KEY (tenant, number)
    );
    CREATE TABLE trunks (
        tenant TEXT COLLATE "C" NOT NULL REFERENCES tenants(name) ON DELETE CASCADE,
        name TEXT COLLATE "C" NOT NULL,
        source TEXT NOT NULL DEFAULT 'api',
        PRIMARY KEY (tenant, name)
    );
    CREATE TABLE api_keys (
        key_id TEXT COLLATE "C" PRIMARY KEY,
        tenant TEXT COLLATE "C" NOT NULL REFERENCES tenants(name) ON DELETE CASCADE,
        key_hash TEXT NOT NULL UNIQUE,
        name TEXT NOT NULL DEFAULT '',
        created_at DOUBLE PRECISION NOT NULL,
        revoked_at DOUBLE PRECISION
    );
    CREATE TABLE devices (
        tenant TEXT COLLATE "C" NOT NULL,
        mac TEXT COLLATE "C" NOT NULL,
        vendor TEXT NOT NULL DEFAULT '',
        model TEXT NOT NULL DEFAULT '',
        firmware TEXT NOT NULL DEFAULT '',
        hardware TEXT NOT NULL DEFAULT '',
        ip TEXT NOT NULL DEFAULT '',
        extension TEXT NOT NULL DEFAULT '',
        last_event TEXT NOT NULL DEFAULT '',
        first_seen DOUBLE PRECISION NOT NULL,
        last_seen DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (tenant, mac)
    );
    CREATE TABLE events (
        tenant TEXT COLLATE "C" NOT NULL,
        seq BIGINT NOT NULL,
        event_id TEXT NOT NULL UNIQUE,
        topic TEXT NOT NULL,
        key TEXT NOT NULL,
        session_id TEXT,
        extensions TEXT NOT NULL DEFAULT '',
        queue TEXT,
        created_at DOUBLE PRECISION NOT NULL,
        body BYTEA NOT NULL,
        PRIMARY KEY (tenant, seq)
    );
    CREATE INDEX events_created ON events(created_at);
    CREATE INDEX events_session ON events(tenant, session_id) WHERE session_id IS NOT NULL;
    CREATE TABLE sessions (
        tenant TEXT COLLATE "C" NOT NULL,
        session_id TEXT COLLATE "C" NOT NULL,
        state BYTEA NOT NULL,
        PRIMARY KEY (tenant, session_id)
    );
    CREATE TABLE presence (
        tenant TEXT COLLATE "C" NOT NULL,
        extension TEXT COLLATE "C" NOT NULL,
        state BYTEA NOT NULL,
        PRIMARY KEY (tenant, extension)
    );
    CREATE TABLE cdrs (
        tenant TEXT COLLATE "C" NOT NULL,
        cdr_id TEXT COLLATE "C" NOT NULL,
        session_id TEXT NOT NULL DEFAULT '',
        seq BIGINT NOT NULL,
        start_time BIGINT,
        end_time BIGINT,
        status TEXT NOT NULL DEFAULT '',
        extensions TEXT NOT NULL DEFAULT '',
        body BYTEA NOT NULL,
        PRIMARY KEY (tenant, cdr_id)
    );
    CREATE INDEX cdrs_time ON cdrs(tenant, start_time);
    CREATE INDEX cdrs_seq ON cdrs(tenant, seq);
    """,
    # 2: tenants deleted through the API whose events/CDRs are still being removed
    """
    CREATE TABLE tenant_purges (
        name TEXT COLLATE "C" PRIMARY KEY,
        requested_at DOUBLE PRECISION NOT NULL
    );
    """,
    # 3: webhook / Call Events endpoints, the delivery outbox and its attempt log
    """
    CREATE TABLE endpoints (
        endpoint_id TEXT COLLATE "C" PRIMARY KEY,
        tenant TEXT COLLATE "C" NOT NULL REFERENCES tenants(name) ON DELETE CASCADE,
        kind TEXT NOT NULL,
        url TEXT NOT NULL,
        enabled INTEGER NOT NULL DEFAULT 1,
        disabled_reason TEXT NOT NULL DEFAULT '',
        health TEXT NOT NULL DEFAULT 'ok',
        failing_since DOUBLE PRECISION,
        secrets TEXT NOT NULL DEFAULT '[]',
        spec TEXT NOT NULL DEFAULT '{}',
        source TEXT NOT NULL DEFAULT 'api',
        config_key TEXT,
        created_at DOUBLE PRECISION NOT NULL,
        updated_at DOUBLE PRECISION NOT NULL
    );
    CREATE INDEX endpoints_tenant ON endpoints(tenant, kind);
    CREATE TABLE deliveries (
        delivery_id TEXT COLLATE "C" PRIMARY KEY,
        endpoint_id TEXT COLLATE "C" NOT NULL,
        tenant TEXT COLLATE "C" NOT NULL,
        seq BIGINT NOT NULL,
        event_id TEXT NOT NULL,
        key TEXT NOT NULL,
        session_id TEXT,
        status TEXT NOT NULL,
        attempts BIGINT NOT NULL DEFAULT 0,
        schedule_base BIGINT NOT NULL DEFAULT 0,
        next_at DOUBLE PRECISION NOT NULL,
        last_code BIGINT,
        last_error TEXT NOT NULL DEFAULT '',
        context TEXT NOT NULL DEFAULT '',
        created_at DOUBLE PRECISION NOT NULL,
        updated_at DOUBLE PRECISION NOT NULL,
        UNIQUE (endpoint_id, seq)
    );
    CREATE INDEX deliveries_pending ON deliveries(endpoint_id, seq) WHERE status = 'pending';
    CREATE INDEX deliveries_created ON deliveries(created_at);
    CREATE TABLE delivery_attempts (
        delivery_id TEXT COLLATE "C" NOT NULL,
        n BIGINT NOT NULL,
        at DOUBLE PRECISION NOT NULL,
        status_code BIGINT,
        latency_ms DOUBLE PRECISION,
        error TEXT NOT NULL DEFAULT '',
        response TEXT NOT NULL DEFAULT '',
        PRIMARY KEY (delivery_id, n)
    );
    """,
    # 4: VoipNow extended extension numbers (`0003*101`) per tenant
    """
    ALTER TABLE tenants ADD COLUMN extended_prefix TEXT NOT NULL DEFAULT '';
    """,
    # 5: what else a phone says about itself (language, SIP account and server, its name)
    """
    ALTER TABLE devices ADD COLUMN details TEXT NOT NULL DEFAULT '{}';
    """,
]


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
    conn.execute("SELECT pg_advisory_lock(7261001)")
    try:
        for version, script in enumerate(MIGRATIONS, start=1):
            if version <= current_version(conn):
                continue
            with conn.transaction():
                conn.execute(script)
                conn.execute(
                    "INSERT INTO schema_migrations (version, applied_at) VALUES (%s, %s)",
                    (version, time.time()),
                )
            applied.append(version)
    finally:
        conn.execute("SELECT pg_advisory_unlock(7261001)")
    return applied
