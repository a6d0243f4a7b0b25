"""The writer's "last seq of this tenant" query stays one index probe on PostgreSQL.

In a cluster the writer asks it in every transaction (another node may have appended).
psycopg prepares a statement after a few runs, and PostgreSQL may then keep a generic
plan made while the table was new (no statistics yet, until autovacuum analyzes it): for
`SELECT MAX(seq)` that plan read every event of the tenant, 2,000 rows per commit after
2,000 events and growing (bench/cluster.py: 1,000 to 2,000 rows read per phone request).
"""

from __future__ import annotations

import json

import psycopg

from callhook import store
from callhook.store.sql.engine import LAST_SEQ
from tests.support import postgres


def test_the_last_seq_of_a_tenant_reads_one_row_whatever_the_plan() -> None:
    url = postgres.fresh_database()
    store.upgrade(url)
    with psycopg.connect(url, autocommit=True) as pg:
        pg.execute("SET plan_cache_mode = force_generic_plan")
        pg.execute("PREPARE last_seq(text) AS " + LAST_SEQ.replace("?", "$1"))
        assert pg.execute("EXECUTE last_seq('acme')").fetchone() in ((None,), None)  # planned
        pg.execute(
            "INSERT INTO events (tenant, seq, event_id, topic, key, created_at, body)"
            " SELECT 'acme', n, 'e' || n, 'extension_events', 'call_start', 0, '\\x00'"
            " FROM generate_series(1, 2000) AS n"
        )
        assert pg.execute("EXECUTE last_seq('acme')").fetchone() == (2000,)
        row = pg.execute("EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE last_seq('acme')").fetchone()
        assert row is not None
        plan = row[0] if isinstance(row[0], list) else json.loads(row[0])

        def most_rows(node: dict[str, object]) -> int:
            below = node.get("Plans", [])
            assert isinstance(below, list)
            rows = int(str(node.get("Actual Rows", 0)))
            return max([rows, *(most_rows(n) for n in below)])

        assert most_rows(plan[0]["Plan"]) == 1, plan
