"""SQLite engine: one writer thread with group commit, pooled reader threads (WAL).

Every write goes through one queue to one thread, which takes all waiting operations into
a single `BEGIN IMMEDIATE` transaction (group commit): under load one fsync covers many
events, so durable acknowledgement costs little throughput. Results reach the
event loop only after COMMIT returned, in commit order.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from callhook.store import StoreError
from callhook.store.sqlite import schema

log = logging.getLogger("callhook.store")

T = TypeVar("T")
MAX_BATCH = 1024


@dataclass(slots=True)
class WriterState:
    """State owned by the writer thread: per-tenant next seq, and post-commit work."""

    seqs: dict[str, int] = field(default_factory=dict)
    after_commit: list[Callable[[], None]] = field(default_factory=list)
    # Undo of in-memory changes made for the open transaction, run if it rolls back.
    rollbacks: list[Callable[[], None]] = field(default_factory=list)
    # True while an operation is retried alone after its batch failed: an operation made
    # of independent parts (EventLog appends) then stores them one savepoint each.
    isolate: bool = False

    def next_seq(self, conn: sqlite3.Connection, tenant: str) -> int:
        cur = self.seqs.get(tenant)
        if cur is None:
            row = conn.execute("SELECT MAX(seq) FROM events WHERE tenant = ?", (tenant,)).fetchone()
            cur = int(row[0] or 0)
        cur += 1
        self.seqs[tenant] = cur
        return cur


WriteFn = Callable[[sqlite3.Connection, WriterState], T]


@dataclass(slots=True)
class _Op(Generic[T]):
    fn: WriteFn[T]
    future: asyncio.Future[T]
    loop: asyncio.AbstractEventLoop


_STOP = object()


def sqlite_path(url: str) -> str:
    """`sqlite:///relative.db` or `sqlite:////abs/path.db` -> a filesystem path."""
    path = url.removeprefix("sqlite:///")
    return path or "callhook.db"


def connect(path: str, *, durability: str = "full") -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={'FULL' if durability == 'full' else 'NORMAL'}")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


def upgrade(url: str) -> list[int]:
    """Run pending migrations on the database at `url` (`callhook db upgrade`)."""
    path = sqlite_path(url)
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        conn = connect(path)
        try:
            return schema.upgrade(conn)
        finally:
            conn.close()
    except (sqlite3.Error, OSError) as exc:
        raise StoreError(f"cannot open {path}: {exc}") from exc


class Engine:
    """One SQLite file: a single writer thread (group commit) and reader threads."""

    def __init__(self, url: str, *, durability: str = "full", readers: int = 4) -> None:
        self.path = sqlite_path(url)
        self.durability = durability
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._state = WriterState()
        self._local = threading.local()
        self._pool = ThreadPoolExecutor(max_workers=readers, thread_name_prefix="sqlite-read")
        self._reader_conns: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._closed = False
        self.batches = 0  # group commits done (metrics)
        self.ops = 0

    # lifecycle -------------------------------------------------------------------------
    async def open(self) -> None:
        try:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            conn = connect(self.path, durability=self.durability)
            schema.upgrade(conn)
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"cannot open {self.path}: {exc}") from exc
        self._thread = threading.Thread(
            target=self._run_writer, args=(conn,), name="sqlite-writer", daemon=True
        )
        self._thread.start()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._thread is not None:
            self._queue.put(_STOP)
            await asyncio.to_thread(self._thread.join, 30)
        self._pool.shutdown(wait=True)
        with self._lock:
            for c in self._reader_conns:
                c.close()
            self._reader_conns.clear()

    # writes ----------------------------------------------------------------------------
    async def write(self, fn: WriteFn[T]) -> T:
        """Run `fn(conn, state)` in the writer thread, inside a group-committed transaction.

        Returns after COMMIT; callbacks the op queued in `state.after_commit` have run by then,
        in commit order, on the event loop.
        """
        return await self.submit(fn)

    def submit(self, fn: WriteFn[T], future: asyncio.Future[T] | None = None) -> asyncio.Future[T]:
        """Queue `fn` to the writer without waiting: the future completes after COMMIT.

        For callers on the event loop that answer from callbacks instead of a task each (the
        ingest pipeline); `write()` is this, awaited. `future` (made on the running loop) is
        completed instead of a new one.
        """
        if self._closed:
            raise StoreError("store is closed")
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[T] = future if future is not None else loop.create_future()
        self._queue.put(_Op(fn, fut, loop))
        return fut

    def _run_writer(self, conn: sqlite3.Connection) -> None:
        try:
            while True:
                first = self._queue.get()
                if first is _STOP:
                    return
                batch: list[_Op[Any]] = [first]
                stop = False
                while len(batch) < MAX_BATCH:
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if item is _STOP:
                        stop = True
                        break
                    batch.append(item)
                self._commit(conn, batch)
                if stop:
                    return
        finally:
            conn.close()

    def _commit(self, conn: sqlite3.Connection, batch: list[_Op[Any]], alone: bool = False) -> None:
        saved = dict(self._state.seqs)
        self._state.after_commit = []
        self._state.rollbacks = []
        self._state.isolate = alone
        try:
            conn.execute("BEGIN IMMEDIATE")
            results = [op.fn(conn, self._state) for op in batch]
            conn.execute("COMMIT")
        except Exception as exc:
            self._rollback(conn, saved)
            if alone:
                self._finish(batch, [], exc)
                return
            # One bad op must not fail its neighbours: redo them one per transaction, each
            # free to keep its own parts apart (WriterState.isolate).
            for op in batch:
                self._commit(conn, [op], alone=True)
            return
        finally:
            self._state.isolate = False
            self._state.rollbacks = []
        self.batches += 1
        self.ops += len(batch)
        self._finish(batch, results, None)

    def _rollback(self, conn: sqlite3.Connection, saved: dict[str, int]) -> None:
        try:
            conn.execute("ROLLBACK")
        except sqlite3.Error:
            pass
        self._state.seqs = saved
        self._state.after_commit = []
        undo, self._state.rollbacks = self._state.rollbacks, []
        for fn in reversed(undo):
            try:
                fn()
            except Exception:
                log.exception("undo after rollback failed")

    def _finish(self, batch: list[_Op[Any]], results: list[Any], exc: Exception | None) -> None:
        callbacks = self._state.after_commit
        self._state.after_commit = []
        loop = batch[0].loop

        def complete() -> None:
            for cb in callbacks:
                try:
                    cb()
                except Exception:
                    log.exception("after-commit callback failed")
            for i, op in enumerate(batch):
                if op.future.done():
                    continue
                if exc is not None:
                    err = exc if isinstance(exc, StoreError) else StoreError(str(exc))
                    op.future.set_exception(err)
                else:
                    op.future.set_result(results[i])

        try:
            loop.call_soon_threadsafe(complete)
        except RuntimeError:  # loop closed during shutdown
            pass

    # reads -----------------------------------------------------------------------------
    def _reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = connect(self.path, durability=self.durability)
            conn.execute("PRAGMA query_only=ON")
            self._local.conn = conn
            with self._lock:
                self._reader_conns.append(conn)
        return conn

    async def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn(conn)` on a reader connection in a worker thread (WAL snapshot)."""
        if self._closed:
            raise StoreError("store is closed")
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._pool, lambda: fn(self._reader()))
        except sqlite3.Error as exc:
            raise StoreError(str(exc)) from exc
