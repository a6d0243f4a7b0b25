"""The pipeline on a real SQLite store: one writer operation per loop turn, answers only
after what came before them committed, every request answered when a batch fails."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

from callhook.correlate import CorrelationSettings, Correlator
from callhook.directory import Extension, Tenant
from callhook.ingest.action_url import parse_request
from callhook.ingest.model import ParsedRequest
from callhook.pipeline import Pipeline
from callhook.store import StoreError
from callhook.store.sqlite import SQLiteStore

TENANT = Tenant("acme", "1", "acme.example.com", extensions={"101": Extension("101")})


def report(target: str) -> tuple[Tenant, ParsedRequest, str]:
    return TENANT, parse_request("GET", target.encode(), b""), "192.0.2.1"


async def open_pipeline(tmp_path: Path) -> tuple[SQLiteStore, Pipeline]:
    store = SQLiteStore(f"sqlite:///{tmp_path}/p.db")
    await store.open()
    correlator = Correlator(lambda name: TENANT if name == "acme" else None, CorrelationSettings())
    return store, Pipeline(store.log, correlator)


async def test_one_loop_turn_is_one_write_in_order(tmp_path: Path) -> None:
    store, pipeline = await open_pipeline(tmp_path)
    try:
        accepted = [
            pipeline.accept(*report(f"/ingest/t/dnd_{'on' if i % 2 == 0 else 'off'}?local=101"))
            for i in range(20)
        ]
        ops_before = store.engine.ops
        await asyncio.gather(*(q.done for _, q in accepted))
        assert store.engine.ops - ops_before == 1  # all twenty in one writer operation
        seqs = [e.seq for _, q in accepted for e in q.committed() or ()]
        assert seqs == sorted(seqs) and len(seqs) == 20
        # What was given is never changed: the stored values are new ones.
        assert all(e.seq == 0 and not e.event_id for events, _ in accepted for e in events)
    finally:
        await store.close()


async def test_a_duplicate_is_answered_only_after_the_original_committed(tmp_path: Path) -> None:
    store, pipeline = await open_pipeline(tmp_path)
    release = threading.Event()
    try:
        # Hold the writer: whatever is queued behind this waits.
        blocker = store.engine.submit(lambda _c, _s: release.wait(10))
        original = pipeline.accept(
            *report("/ingest/t/booting_completed?local=101&mac=000B82000001")
        )
        await asyncio.sleep(0)  # the loop turn ends: the original's batch is queued
        duplicate = pipeline.accept(
            *report("/ingest/t/booting_completed?local=101&mac=000B82000001")
        )
        assert original[0] and not duplicate[0]  # the repeat changes nothing
        await asyncio.sleep(0.2)
        assert not original[1].done.done() and not duplicate[1].done.done()
        release.set()
        await asyncio.gather(blocker, original[1].done, duplicate[1].done)
    finally:
        release.set()
        await store.close()


async def test_every_request_of_a_failed_batch_gets_its_failure(tmp_path: Path) -> None:
    store, pipeline = await open_pipeline(tmp_path)
    await store.close()  # nothing can be written any more
    accepted = [pipeline.accept(*report("/ingest/t/dnd_on?local=101")) for _ in range(3)]
    results = await asyncio.gather(*(q.done for _, q in accepted), return_exceptions=True)
    assert all(isinstance(r, StoreError) for r in results)
    assert all(q.committed() is None for _, q in accepted)


async def test_a_refused_request_fails_alone_and_seq_stays_gap_free(tmp_path: Path) -> None:
    store, pipeline = await open_pipeline(tmp_path)
    try:
        with sqlite3.connect(store.engine.path) as db:
            db.execute(
                "CREATE TRIGGER refuse BEFORE INSERT ON events"
                " WHEN CAST(NEW.body AS TEXT) LIKE '%poison%'"
                " BEGIN SELECT RAISE(ABORT, 'disk says no'); END"
            )
        targets = [
            "/ingest/t/incoming_call?local=101&remote=0711&call_id=ok-1",
            "/ingest/t/incoming_call?local=101&remote=0712&call_id=poison-1&mac=000B82000009",
            "/ingest/t/dnd_on?local=101",
        ]
        accepted = [pipeline.accept(*report(t)) for t in targets]  # one loop turn: one batch
        await asyncio.gather(*(q.done for _, q in accepted))
        first, poisoned, last = (q.committed() for _, q in accepted)
        assert first and last and poisoned is None
        seqs = [e.seq for e in first + last]
        assert seqs == list(range(1, len(seqs) + 1))
        with sqlite3.connect(store.engine.path) as db:
            rows = db.execute("SELECT seq FROM events ORDER BY seq").fetchall()
            assert [r[0] for r in rows] == seqs
            # The refused request's device row went with its events.
            assert db.execute("SELECT count(*) FROM devices").fetchone()[0] == 0
        # ... and the phone's next report writes it (no cache says it was written).
        _, again = pipeline.accept(*report("/ingest/t/dnd_on?local=101&mac=000B82000009"))
        await again.done
        with sqlite3.connect(store.engine.path) as db:
            assert db.execute("SELECT count(*) FROM devices").fetchone()[0] == 1
    finally:
        await store.close()
