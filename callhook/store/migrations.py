"""The schema of both backends: one ordered list of migrations, each step written once.

`callhook db upgrade` and the hub at start apply the steps a database has not had yet
(the backends' `schema.py` run them: SQLite in `BEGIN IMMEDIATE`, PostgreSQL under an
advisory lock) and record each version in `schema_migrations`. Versions are shared: version
N means the same schema on both engines, and a step for one engine only (`Only`) is
recorded, as a no-op, on the other.

A statement is written once in the SQL both engines speak; where they differ it names the
difference as a token, rendered per dialect by `DIALECTS`:

- `{INT}`: an integer column (INTEGER in SQLite, BIGINT in PostgreSQL);
- `{REAL}`: a time or other float (REAL, DOUBLE PRECISION);
- `{BLOB}`: stored bytes, such as an event's JSON (BLOB, BYTEA);
- `{KEY}`: text that is a key or a sort order. PostgreSQL compares it byte-wise
  (COLLATE "C"), as SQLite does, so cursors page the same way on both;
- `{CLUSTERED}`: after a table's closing parenthesis, a table stored in its primary
  key's order (SQLite's WITHOUT ROWID; PostgreSQL's heap has no such option);
- `{AUTOINCREMENT}`: an integer primary key the engine numbers (INTEGER PRIMARY KEY
  AUTOINCREMENT, BIGSERIAL PRIMARY KEY).

Never edit a released step (a database that has it would not get the change): append one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Dialect = Literal["sqlite", "postgres"]

DIALECTS: dict[str, dict[str, str]] = {
    "sqlite": {
        "INT": "INTEGER",
        "REAL": "REAL",
        "BLOB": "BLOB",
        "KEY": "TEXT",
        "CLUSTERED": " WITHOUT ROWID",
        "AUTOINCREMENT": "INTEGER PRIMARY KEY AUTOINCREMENT",
    },
    "postgres": {
        "INT": "BIGINT",
        "REAL": "DOUBLE PRECISION",
        "BLOB": "BYTEA",
        "KEY": 'TEXT COLLATE "C"',
        "CLUSTERED": "",
        "AUTOINCREMENT": "BIGSERIAL PRIMARY KEY",
    },
}

_TOKEN = re.compile(r"\{([A-Z_]+)\}")  # `'{}'` (an empty JSON object default) is not one


@dataclass(frozen=True)
class Only:
    """A statement for one engine only (a PostgreSQL function, an index one engine needs)."""

    dialect: Dialect
    sql: str


Statement = str | Only


@dataclass(frozen=True)
class Migration:
    """One version of the schema: its statements run in one transaction, in order."""

    version: int
    note: str
    statements: tuple[Statement, ...]

    def render(self, dialect: Dialect) -> list[str]:
        """The statements for `dialect`, tokens replaced (none: the step is a no-op)."""
        out = []
        for statement in self.statements:
            if isinstance(statement, Only):
                if statement.dialect != dialect:
                    continue
                statement = statement.sql
            out.append(render(statement, dialect))
        return out


def render(sql: str, dialect: Dialect) -> str:
    """`sql` with its tokens spelled for `dialect`; an unknown token is an error."""
    words = DIALECTS[dialect]

    def spell(match: re.Match[str]) -> str:
        if match[1] not in words:
            raise KeyError(f"unknown schema token {match[0]} (known: {', '.join(words)})")
        return words[match[1]]

    return _TOKEN.sub(spell, sql).strip()


def pending(dialect: Dialect, current: int) -> list[tuple[int, list[str]]]:
    """The versions after `current`, in order, each with its statements for `dialect`."""
    return [(m.version, m.render(dialect)) for m in MIGRATIONS if m.version > current]


# SQLite functions the shared SQL of `callhook/store/sql/` calls, made in PostgreSQL.
_SQLITE_FUNCTIONS = (
    Only(
        "postgres",
        """
    CREATE FUNCTION instr(haystack TEXT, needle TEXT) RETURNS INTEGER
        LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$ SELECT strpos(haystack, needle) $$""",
    ),
    Only(
        "postgres",
        """
    CREATE FUNCTION json_each(doc TEXT) RETURNS TABLE (value TEXT)
        LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
        AS $$ SELECT json_array_elements_text(doc::json) $$""",
    ),
)

MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "event log, directory, devices, correlation state, CDRs, API keys",
        (
            *_SQLITE_FUNCTIONS,
            """
    CREATE TABLE tenants (
        name {KEY} PRIMARY KEY,
        tenant_id TEXT NOT NULL UNIQUE,
        domain TEXT NOT NULL DEFAULT '',
        ingest_token TEXT NOT NULL DEFAULT '',
        password_hash TEXT NOT NULL DEFAULT '',
        open_ingest_networks TEXT NOT NULL DEFAULT '[]',
        source TEXT NOT NULL DEFAULT 'api',
        created_at {REAL} NOT NULL
    )""",
            """
    CREATE TABLE extensions (
        tenant {KEY} NOT NULL REFERENCES tenants(name) ON DELETE CASCADE,
        number {KEY} NOT NULL,
        extension_id TEXT NOT NULL,
        display_name TEXT NOT NULL DEFAULT '',
        password_hash TEXT NOT NULL DEFAULT '',
        groups TEXT NOT NULL DEFAULT '[]',
        source TEXT NOT NULL DEFAULT 'api',
        PRIMARY KEY (tenant, number)
    )""",
            """
    CREATE TABLE queues (
        tenant {KEY} NOT NULL REFERENCES tenants(name) ON DELETE CASCADE,
        number {KEY} NOT NULL,
        members TEXT NOT NULL DEFAULT '[]',
        managers TEXT NOT NULL DEFAULT '[]',
        source TEXT NOT NULL DEFAULT 'api',
        PRIMARY KEY (tenant, number)
    )""",
            """
    CREATE TABLE trunks (
        tenant {KEY} NOT NULL REFERENCES tenants(name) ON DELETE CASCADE,
        name {KEY} NOT NULL,
        source TEXT NOT NULL DEFAULT 'api',
        PRIMARY KEY (tenant, name)
    )""",
            """
    CREATE TABLE api_keys (
        key_id {KEY} PRIMARY KEY,
        tenant {KEY} NOT NULL REFERENCES tenants(name) ON DELETE CASCADE,
        key_hash TEXT NOT NULL UNIQUE,
        name TEXT NOT NULL DEFAULT '',
        created_at {REAL} NOT NULL,
        revoked_at {REAL}
    )""",
            """
    CREATE TABLE devices (
        tenant {KEY} NOT NULL,
        mac {KEY} NOT NULL,
        vendor TEXT NOT NULL DEFAULT '',
        model TEXT NOT NULL DEFAULT '',
        firmware TEXT NOT NULL DEFAULT '',
        hardware TEXT NOT NULL DEFAULT '',
        ip TEXT NOT NULL DEFAULT '',
        extension TEXT NOT NULL DEFAULT '',
        last_event TEXT NOT NULL DEFAULT '',
        first_seen {REAL} NOT NULL,
        last_seen {REAL} NOT NULL,
        PRIMARY KEY (tenant, mac)
    )""",
            """
    CREATE TABLE events (
        tenant {KEY} NOT NULL,
        seq {INT} NOT NULL,
        event_id TEXT NOT NULL UNIQUE,
        topic TEXT NOT NULL,
        key TEXT NOT NULL,
        session_id TEXT,
        extensions TEXT NOT NULL DEFAULT '',
        queue TEXT,
        created_at {REAL} NOT NULL,
        body {BLOB} NOT NULL,
        PRIMARY KEY (tenant, seq)
    ){CLUSTERED}""",
            "CREATE INDEX events_created ON events(created_at)",
            Only(
                "postgres",
                "CREATE INDEX events_session ON events(tenant, session_id)"
                " WHERE session_id IS NOT NULL",
            ),
            """
    CREATE TABLE sessions (
        tenant {KEY} NOT NULL,
        session_id {KEY} NOT NULL,
        state {BLOB} NOT NULL,
        PRIMARY KEY (tenant, session_id)
    )""",
            """
    CREATE TABLE presence (
        tenant {KEY} NOT NULL,
        extension {KEY} NOT NULL,
        state {BLOB} NOT NULL,
        PRIMARY KEY (tenant, extension)
    )""",
            """
    CREATE TABLE cdrs (
        tenant {KEY} NOT NULL,
        cdr_id {KEY} NOT NULL,
        session_id TEXT NOT NULL DEFAULT '',
        seq {INT} NOT NULL,
        start_time {INT},
        end_time {INT},
        status TEXT NOT NULL DEFAULT '',
        extensions TEXT NOT NULL DEFAULT '',
        body {BLOB} NOT NULL,
        PRIMARY KEY (tenant, cdr_id)
    )""",
            "CREATE INDEX cdrs_time ON cdrs(tenant, start_time)",
            Only("postgres", "CREATE INDEX cdrs_seq ON cdrs(tenant, seq)"),
        ),
    ),
    Migration(
        2,
        "tenants deleted through the API whose events and CDRs are still being removed",
        (
            """
    CREATE TABLE tenant_purges (
        name {KEY} PRIMARY KEY,
        requested_at {REAL} NOT NULL
    )""",
        ),
    ),
    # Deliveries carry no foreign key: the outbox insert runs inside the event's
    # transaction and must never fail it; orphans are removed at start.
    Migration(
        3,
        "webhook and Call Events endpoints, the delivery outbox and its attempt log",
        (
            """
    CREATE TABLE endpoints (
        endpoint_id {KEY} PRIMARY KEY,
        tenant {KEY} NOT NULL REFERENCES tenants(name) ON DELETE CASCADE,
        kind TEXT NOT NULL,
        url TEXT NOT NULL,
        enabled INTEGER NOT NULL DEFAULT 1,
        disabled_reason TEXT NOT NULL DEFAULT '',
        health TEXT NOT NULL DEFAULT 'ok',
        failing_since {REAL},
        secrets TEXT NOT NULL DEFAULT '[]',
        spec TEXT NOT NULL DEFAULT '{}',
        source TEXT NOT NULL DEFAULT 'api',
        config_key TEXT,
        created_at {REAL} NOT NULL,
        updated_at {REAL} NOT NULL
    )""",
            "CREATE INDEX endpoints_tenant ON endpoints(tenant, kind)",
            """
    CREATE TABLE deliveries (
        delivery_id {KEY} PRIMARY KEY,
        endpoint_id {KEY} NOT NULL,
        tenant {KEY} NOT NULL,
        seq {INT} NOT NULL,
        event_id TEXT NOT NULL,
        key TEXT NOT NULL,
        session_id TEXT,
        status TEXT NOT NULL,
        attempts {INT} NOT NULL DEFAULT 0,
        schedule_base {INT} NOT NULL DEFAULT 0,
        next_at {REAL} NOT NULL,
        last_code {INT},
        last_error TEXT NOT NULL DEFAULT '',
        context TEXT NOT NULL DEFAULT '',
        created_at {REAL} NOT NULL,
        updated_at {REAL} NOT NULL,
        UNIQUE (endpoint_id, seq)
    )""",
            "CREATE INDEX deliveries_pending ON deliveries(endpoint_id, seq)"
            " WHERE status = 'pending'",
            "CREATE INDEX deliveries_created ON deliveries(created_at)",
            """
    CREATE TABLE delivery_attempts (
        delivery_id {KEY} NOT NULL,
        n {INT} NOT NULL,
        at {REAL} NOT NULL,
        status_code {INT},
        latency_ms {REAL},
        error TEXT NOT NULL DEFAULT '',
        response TEXT NOT NULL DEFAULT '',
        PRIMARY KEY (delivery_id, n)
    ){CLUSTERED}""",
        ),
    ),
    Migration(
        4,
        "VoipNow extended extension numbers (`0003*101`) per tenant",
        ("ALTER TABLE tenants ADD COLUMN extended_prefix TEXT NOT NULL DEFAULT ''",),
    ),
    Migration(
        5,
        "what else a phone says about itself (language, SIP account and server, its name)",
        ("ALTER TABLE devices ADD COLUMN details TEXT NOT NULL DEFAULT '{}'",),
    ),
    # One SQLite file is one node: a cluster's tables are PostgreSQL's only. One row per
    # partition (callhook/cluster/partitions.py), never owned yet; the times are the
    # server's (no node's clock is trusted).
    Migration(
        6,
        "a cluster's partition leases (owner, fencing epoch, expiry) and node heartbeats",
        (
            Only(
                "postgres",
                """
    CREATE TABLE partition_leases (
        partition INTEGER PRIMARY KEY,
        owner TEXT NOT NULL DEFAULT '',
        epoch BIGINT NOT NULL DEFAULT 0,
        expires_at TIMESTAMPTZ NOT NULL DEFAULT to_timestamp(0)
    )""",
            ),
            Only(
                "postgres",
                "INSERT INTO partition_leases (partition) SELECT generate_series(0, 15)",
            ),
            Only(
                "postgres",
                """
    CREATE TABLE cluster_nodes (
        node_id TEXT PRIMARY KEY,
        seen_at TIMESTAMPTZ NOT NULL
    )""",
            ),
        ),
    ),
    # A cluster's inbox (callhook/store/postgres/inbox.py): reports any node stored, not
    # yet correlated by their partition's owner (which deletes them in the transaction
    # that commits their events); report ids stored once; replies for waiting callers.
    Migration(
        7,
        "a cluster's inbox, its dedupe keys and the replies to callers waiting on it",
        (
            Only(
                "postgres",
                """
    CREATE TABLE inbox (
        id BIGSERIAL PRIMARY KEY,
        partition INTEGER NOT NULL,
        tenant TEXT COLLATE "C" NOT NULL,
        kind TEXT NOT NULL,
        body BYTEA NOT NULL,
        received_at DOUBLE PRECISION NOT NULL
    )""",
            ),
            Only("postgres", "CREATE INDEX inbox_partition ON inbox(partition, id)"),
            Only(
                "postgres",
                """
    CREATE TABLE inbox_seen (
        tenant TEXT COLLATE "C" NOT NULL,
        dedupe TEXT COLLATE "C" NOT NULL,
        at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (tenant, dedupe)
    )""",
            ),
            Only("postgres", "CREATE INDEX inbox_seen_at ON inbox_seen(at)"),
            Only(
                "postgres",
                """
    CREATE TABLE inbox_replies (
        id BIGINT PRIMARY KEY,
        body BYTEA NOT NULL,
        at DOUBLE PRECISION NOT NULL
    )""",
            ),
        ),
    ),
    # In a cluster any node's workers claim due deliveries (callhook/deliver/claims.py):
    # `claimed_by` a node id ('' for none) until `claim_until` (the server's clock, Unix
    # seconds). A single node never claims: the columns stay at their defaults there.
    Migration(
        8,
        "webhook deliveries claimed by a cluster's nodes, with a claim expiry",
        (
            "ALTER TABLE deliveries ADD COLUMN claimed_by TEXT NOT NULL DEFAULT ''",
            "ALTER TABLE deliveries ADD COLUMN claim_until {REAL} NOT NULL DEFAULT 0",
            # Claimable: due and nobody's, or claimed with the claim expired.
            Only(
                "postgres",
                "CREATE INDEX deliveries_unclaimed ON deliveries(next_at)"
                " WHERE status = 'pending' AND claimed_by = ''",
            ),
            Only(
                "postgres",
                "CREATE INDEX deliveries_claimed ON deliveries(claim_until)"
                " WHERE status = 'pending' AND claimed_by <> ''",
            ),
            # The session-head rule: a delivery waits while an earlier one of its
            # (endpoint, session) is pending.
            Only(
                "postgres",
                "CREATE INDEX deliveries_session_pending"
                " ON deliveries(endpoint_id, session_id, seq) WHERE status = 'pending'",
            ),
        ),
    ),
    # A condition checked inside a pipelined transaction without waiting for its answer
    # (callhook/store/postgres/engine.py): false fails the transaction, which the writer
    # then runs again one operation at a time, reading what it checked.
    Migration(
        9,
        "an assertion a cluster's writer checks its lease fences with",
        (
            Only(
                "postgres",
                """
    CREATE FUNCTION callhook_assert(ok BOOLEAN, what TEXT) RETURNS VOID
        LANGUAGE plpgsql AS $$
        BEGIN
            IF ok IS NOT TRUE THEN
                RAISE EXCEPTION 'callhook: %', what USING ERRCODE = 'CH001';
            END IF;
        END $$""",
            ),
        ),
    ),
)
