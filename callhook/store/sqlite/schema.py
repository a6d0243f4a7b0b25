"""SQL migrations, applied in order by `callhook db upgrade` and at start."""

from __future__ import annotations

import sqlite3
import time

# Each entry is one migration; never edit a released one, append a new one.
MIGRATIONS: list[str] = [
    # 1: event log, directory, devices, correlation state, CDRs, API keys
    """
    CREATE TABLE tenants (
        name TEXT PRIMARY KEY,
        tenant_id TEXT NOT NULL UNIQUE,
        domain TEXT NOT NULL DEFAULT '',
        ingest_token TEXT NOT NULL DEFAULT '',
        password_hash TEXT NOT NULL DEFAULT '',
        open_ingest_networks TEXT NOT NULL DEFAULT '[]',
        source TEXT NOT NULL DEFAULT 'api',
        created_at REAL NOT NULL
    );
    CREATE TABLE extensions (
        tenant TEXT NOT NULL REFERENCES tenants(name) ON DELETE CASCADE,
        number TEXT NOT NULL,
        extension_id TEXT NOT NULL,
        display_name TEXT NOT NULL DEFAULT '',
        password_hash TEXT NOT NULL DEFAULT '',
        groups TEXT NOT NULL DEFAULT '[]',
        source TEXT NOT NULL DEFAULT 'api',
        PRIMARY KEY (tenant, number)
    );
    CREATE TABLE queues (
        tenant TEXT NOT NULL REFERENCES tenants(name) ON DELETE CASCADE,
        number TEXT NOT NULL,
        members TEXT NOT NULL DEFAULT '[]',
        managers TEXT NOT NULL DEFAULT '[]',
        source TEXT NOT NULL DEFAULT 'api',
        PRIMARY KEY (tenant, number)
    );
    CREATE TABLE trunks (
        tenant TEXT NOT NULL REFERENCES tenants(name) ON DELETE CASCADE,
        name TEXT NOT NULL,
        source TEXT NOT NULL DEFAULT 'api',
        PRIMARY KEY (tenant, name)
    );
    CREATE TABLE api_keys (
        key_id TEXT PRIMARY KEY,
        tenant TEXT NOT NULL REFERENCES tenants(name) ON DELETE CASCADE,
        key_hash TEXT NOT NULL UNIQUE,
        name TEXT NOT NULL DEFAULT '',
        created_at REAL NOT NULL,
        revoked_at REAL
    );
    CREATE TABLE devices (
        tenant TEXT NOT NULL,
        mac TEXT NOT NULL,
        vendor TEXT NOT NULL DEFAULT '',
        model TEXT NOT NULL DEFAULT '',
        firmware TEXT NOT NULL DEFAULT '',
        hardware TEXT NOT NULL DEFAULT '',
        ip TEXT NOT NULL DEFAULT '',
        extension TEXT NOT NULL DEFAULT '',
        last_event TEXT NOT NULL DEFAULT '',
        first_seen REAL NOT NULL,
        last_seen REAL NOT NULL,
        PRIMARY KEY (tenant, mac)
    );
    CREATE TABLE events (
        tenant TEXT NOT NULL,
        seq INTEGER NOT NULL,
        event_id TEXT NOT NULL UNIQUE,
        topic TEXT NOT NULL,
        key TEXT NOT NULL,
        session_id TEXT,
        extensions TEXT NOT NULL DEFAULT '',
        queue TEXT,
        created_at REAL NOT NULL,
        body BLOB NOT NULL,
        PRIMARY KEY (tenant, seq)
    ) WITHOUT ROWID;
    CREATE INDEX events_created ON events(created_at);
    CREATE TABLE sessions (
        tenant TEXT NOT NULL,
        session_id TEXT NOT NULL,
        state BLOB NOT NULL,
        PRIMARY KEY (tenant, session_id)
    );
    CREATE TABLE presence (
        tenant TEXT NOT NULL,
        extension TEXT NOT NULL,
        state BLOB NOT NULL,
        PRIMARY KEY (tenant, extension)
    );
    CREATE TABLE cdrs (
        tenant TEXT NOT NULL,
        cdr_id TEXT NOT NULL,
        session_id TEXT NOT NULL DEFAULT '',
        seq INTEGER NOT NULL,
        start_time INTEGER,
        end_time INTEGER,
        status TEXT NOT NULL DEFAULT '',
        extensions TEXT NOT NULL DEFAULT '',
        body BLOB NOT NULL,
        PRIMARY KEY (tenant, cdr_id)
    );
    CREATE INDEX cdrs_time ON cdrs(tenant, start_time);
    """,
    # 2: tenants deleted through the API whose events/CDRs are still being removed
    """
    CREATE TABLE tenant_purges (
        name TEXT PRIMARY KEY,
        requested_at REAL NOT NULL
    );
    """,
    # 3: webhook / Call Events endpoints, the delivery outbox and its attempt log
    # (callhook/deliver). Deliveries carry no foreign key: the outbox insert runs inside
    # the event's transaction and must never fail it; orphans are removed at start.
    """
    CREATE TABLE endpoints (
        endpoint_id TEXT PRIMARY KEY,
        tenant TEXT NOT NULL REFERENCES tenants(name) ON DELETE CASCADE,
        kind TEXT NOT NULL,
        url TEXT NOT NULL,
        enabled INTEGER NOT NULL DEFAULT 1,
        disabled_reason TEXT NOT NULL DEFAULT '',
        health TEXT NOT NULL DEFAULT 'ok',
        failing_since REAL,
        secrets TEXT NOT NULL DEFAULT '[]',
        spec TEXT NOT NULL DEFAULT '{}',
        source TEXT NOT NULL DEFAULT 'api',
        config_key TEXT,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL
    );
    CREATE INDEX endpoints_tenant ON endpoints(tenant, kind);
    CREATE TABLE deliveries (
        delivery_id TEXT PRIMARY KEY,
        endpoint_id TEXT NOT NULL,
        tenant TEXT NOT NULL,
        seq INTEGER NOT NULL,
        event_id TEXT NOT NULL,
        key TEXT NOT NULL,
        session_id TEXT,
        status TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        schedule_base INTEGER NOT NULL DEFAULT 0,
        next_at REAL NOT NULL,
        last_code INTEGER,
        last_error TEXT NOT NULL DEFAULT '',
        context TEXT NOT NULL DEFAULT '',
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        UNIQUE (endpoint_id, seq)
    );
    CREATE INDEX deliveries_pending ON deliveries(endpoint_id, seq) WHERE status = 'pending';
    CREATE INDEX deliveries_created ON deliveries(created_at);
    CREATE TABLE delivery_attempts (
        delivery_id TEXT NOT NULL,
        n INTEGER NOT NULL,
        at REAL NOT NULL,
        status_code INTEGER,
        latency_ms REAL,
        error TEXT NOT NULL DEFAULT '',
        response TEXT NOT NULL DEFAULT '',
        PRIMARY KEY (delivery_id, n)
    ) WITHOUT ROWID;
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


def current_version(conn: sqlite3.Connection) -> int:
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations"
        " (version INTEGER PRIMARY KEY, applied_at REAL)"
    )
    row = conn.execute("SELECT MAX(version) FROM schema_migrations").fetchone()
    return int(row[0] or 0)


def upgrade(conn: sqlite3.Connection) -> list[int]:
    """Apply pending migrations, each in its own transaction; returns the versions applied."""
    applied = []
    for version, script in enumerate(MIGRATIONS, start=1):
        if version <= current_version(conn):
            continue
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in script.split(";"):
                if statement.strip():
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
