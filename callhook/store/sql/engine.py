"""The write path both SQL backends share: one writer thread with group commit, readers.

Every write goes through one queue to one thread, which takes all waiting operations into
a single transaction (group commit): under load one commit (one fsync) covers many
events, so durable acknowledgement costs little throughput. Results reach the event loop
only after COMMIT returned, in commit order. Reads run on a small pool of threads, each
with its own connection. A backend says how to connect and how to begin a transaction,
and which of its errors mean the connection itself is gone (`ThreadEngine` below).
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from callhook.store import Fence, LeaseLost, StoreError, WriteRefused
from callhook.store.sql import Conn

log = logging.getLogger("callhook.store")

T = TypeVar("T")
MAX_BATCH = 1024
# Runs of an operation alone while other writers take its seq: each collision means the
# other writer committed (progress), so this only bounds a writer losing every race.
SEQ_ATTEMPTS = 50


# A tenant's newest seq. Not `SELECT MAX(seq)`: a statement the driver prepared runs on a
# generic plan, and the one PostgreSQL makes for MAX on a table without statistics yet (a
# new database, until autovacuum analyzes it) reads every event of the tenant, in each
# commit of a cluster; ORDER BY .. LIMIT 1 gets the one-row backward index probe.
LAST_SEQ = "SELECT seq FROM events WHERE tenant = ? ORDER BY seq DESC LIMIT 1"


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
    # Whether an error says another writer took the seq this one assigned (a race, not
    # the part's fault: the transaction runs again, never refuses the part).
    seq_taken: Callable[[BaseException], bool] = field(default=lambda exc: False)

    def next_seq(self, conn: Conn, tenant: str) -> int:
        cur = self.seqs.get(tenant)
        if cur is None:
            row = conn.execute(LAST_SEQ, (tenant,)).fetchone()
            cur = int(row[0] or 0) if row else 0
        cur += 1
        self.seqs[tenant] = cur
        return cur


WriteFn = Callable[[Conn, WriterState], T]


@dataclass(slots=True)
class _Op(Generic[T]):
    fn: WriteFn[T]
    future: asyncio.Future[T]
    loop: asyncio.AbstractEventLoop
    fences: tuple[Fence, ...] = ()


@dataclass(frozen=True, slots=True)
class _Refused:
    """An op of the batch that was not run (its fence failed): its waiter gets `exc`."""

    exc: StoreError


_STOP = object()


class ConnectionLost(Exception):
    """The database connection broke (server restarted, network): nothing was written."""


class ThreadEngine:
    """A single writer thread (group commit) and reader threads over one database."""

    name = "sql"
    begin = "BEGIN"
    # Run after `begin` when several nodes write to one database (a cluster) and the batch
    # has an unfenced operation: a lock held until COMMIT, so that such writes (directory
    # changes: two nodes applying one config file) take turns. A batch of fenced
    # operations only (partition owners' passes) does not take it: each owner writes its
    # own partitions' tenants (their every event: webhook health events reach it through
    # the inbox), so owners commit in parallel.
    #
    # `seq` stays gap-free and in commit order across nodes either way: each writer keeps
    # the last seq it assigned per tenant (or read from the log), so it assigns N only
    # once N-1 is committed; if another node appended to the tenant since, N is taken,
    # the log's primary key (tenant, seq) fails the batch (a concurrent insert of N waits
    # for the other transaction first), and the batch runs again one operation at a time,
    # reading every seq from the log. No round trip checks them beforehand.
    shared_lock = ""

    def __init__(self, *, readers: int = 4) -> None:
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._state = WriterState(seq_taken=self.seq_taken)
        self._local = threading.local()
        self._pool = ThreadPoolExecutor(max_workers=readers, thread_name_prefix=f"{self.name}-read")
        self._reader_conns: list[Conn] = []
        self._lock = threading.Lock()
        self._closed = False
        self.batches = 0  # group commits done (metrics)
        self.ops = 0

    # what a backend provides -----------------------------------------------------------
    def connect(self, *, reader: bool) -> Conn:
        """A new connection (migrations already applied); raise on failure."""
        raise NotImplementedError

    def migrate(self) -> None:
        """Apply pending migrations (at open); raise StoreError on failure."""
        raise NotImplementedError

    def lost(self, exc: BaseException, conn: Conn) -> bool:
        """Whether `exc` on `conn` means the connection is gone (connect again)."""
        return False

    def errors(self) -> tuple[type[BaseException], ...]:
        """The driver's error classes, turned into StoreError on reads."""
        return ()

    def after_failed_transaction(self, conn: Conn) -> None:
        """Make `conn` fit to run operations again after a transaction that failed (rolled
        back already); raise if it cannot be."""

    def seq_taken(self, exc: BaseException) -> bool:
        """Whether `exc` is another writer's event holding the (tenant, seq) this one
        assigned: the writer reads the seqs again and runs the operation again."""
        return False

    def transient(self, exc: BaseException) -> bool:
        """Whether `exc`, failing one operation alone, may pass if it is run again (a
        deadlock, a serialization failure); otherwise it is `WriteRefused`."""
        return False

    def batch_context(self, conn: Conn, alone: bool) -> AbstractContextManager[Any]:
        """Wraps one group-commit transaction (PostgreSQL: its statements pipelined)."""
        return nullcontext()

    def failed_fences(self, conn: Conn, fences: set[Fence]) -> set[Fence]:
        """Those of `fences` not held now, the others locked until COMMIT (a cluster's
        partition leases live in PostgreSQL only)."""
        raise StoreError("fenced writes need PostgreSQL (a cluster's partition leases)")

    def assert_fences(self, conn: Conn, fences: set[Fence]) -> bool:
        """Check `fences` without waiting for the answer, failing the transaction if one
        is not held (the held ones locked until COMMIT); False: not done (not pipelined
        here), check them with `failed_fences`."""
        return False

    # lifecycle -------------------------------------------------------------------------
    async def open(self) -> None:
        await asyncio.to_thread(self.migrate)
        self._thread = threading.Thread(
            target=self._run_writer, name=f"{self.name}-writer", daemon=True
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
                _close_quietly(c)
            self._reader_conns.clear()

    # writes ----------------------------------------------------------------------------
    async def write(self, fn: WriteFn[T], fences: Sequence[Fence] = ()) -> T:
        """Run `fn(conn, state)` in the writer thread, inside a group-committed transaction.

        Returns after COMMIT; callbacks the op queued in `state.after_commit` have run by then,
        in commit order, on the event loop. With `fences`, the transaction first checks that
        each lease is still held (and keeps it locked until COMMIT); one that is not: `fn`
        is not run, nothing of it is written, and this raises `LeaseLost`.
        """
        return await self.submit(fn, fences=fences)

    def submit(
        self,
        fn: WriteFn[T],
        future: asyncio.Future[T] | None = None,
        fences: Sequence[Fence] = (),
    ) -> asyncio.Future[T]:
        """Queue `fn` to the writer without waiting: the future completes after COMMIT.

        For callers on the event loop that answer from callbacks instead of a task each (the
        ingest pipeline); `write()` is this, awaited. `future` (made on the running loop) is
        completed instead of a new one.
        """
        if self._closed:
            raise StoreError("store is closed")
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[T] = future if future is not None else loop.create_future()
        self._queue.put(_Op(fn, fut, loop, tuple(fences)))
        return fut

    def _run_writer(self) -> None:
        conn: Conn | None = None
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
                if conn is None:
                    try:
                        conn = self.connect(reader=False)
                        self._state.seqs.clear()  # re-read from the log: it is the truth
                    except Exception as exc:
                        self._finish(batch, [], StoreError(f"database unavailable: {exc}"))
                        if stop:
                            return
                        continue
                try:
                    self._commit(conn, batch)
                except ConnectionLost:
                    _close_quietly(conn)
                    conn = None
                if stop:
                    return
        finally:
            if conn is not None:
                _close_quietly(conn)

    def _commit(
        self, conn: Conn, batch: list[_Op[Any]], alone: bool = False, attempt: int = 1
    ) -> None:
        saved = dict(self._state.seqs)
        self._state.after_commit = []
        self._state.rollbacks = []
        self._state.isolate = alone
        try:
            with self.batch_context(conn, alone):
                conn.execute(self.begin)
                if self.shared_lock:
                    if not all(op.fences for op in batch):
                        conn.execute(self.shared_lock)
                    if alone:  # after a batch failed: maybe another node appended
                        self._state.seqs.clear()
                refused = self._fence(conn, batch, alone)
                results = [
                    refused[i] if i in refused else op.fn(conn, self._state)
                    for i, op in enumerate(batch)
                ]
                conn.execute("COMMIT")
        except Exception as exc:
            self._rollback(conn, saved)
            if self.lost(exc, conn):
                # Nothing of the batch was written (or, if COMMIT itself was cut off, the
                # log will say after reconnecting): every waiter hears so, none gets a 200.
                self._finish(batch, [], StoreError(f"database connection lost: {exc}"))
                raise ConnectionLost from exc
            try:
                self.after_failed_transaction(conn)
            except Exception as again:
                self._finish(batch, [], StoreError(f"database connection lost: {again}"))
                raise ConnectionLost from again
            if alone and self.seq_taken(exc) and attempt < SEQ_ATTEMPTS:
                return self._commit(conn, batch, alone=True, attempt=attempt + 1)
            if alone:  # a seq still taken is a race lost, not this write's fault
                transient = self.transient(exc) or self.seq_taken(exc)
                self._finish(batch, [], exc if transient else WriteRefused(str(exc)))
                return
            # One bad op must not fail its neighbours: redo them one per transaction, each
            # free to keep its own parts apart (WriterState.isolate).
            for i, op in enumerate(batch):
                try:
                    self._commit(conn, [op], alone=True)
                except ConnectionLost:
                    self._finish(batch[i + 1 :], [], StoreError("database connection lost"))
                    raise
            return
        finally:
            self._state.isolate = False
            self._state.rollbacks = []
        self.batches += 1
        self.ops += len(batch)
        self._finish(batch, results, None)

    def _fence(self, conn: Conn, batch: list[_Op[Any]], alone: bool) -> dict[int, _Refused]:
        """Check the batch's fences first; the ops (by index) whose lease is lost. In a
        pipelined batch a lost lease fails the whole transaction instead (then each op is
        run alone, and refused here if its own lease is lost)."""
        fences = {f for op in batch for f in op.fences}
        if not fences:
            return {}
        if not alone and self.assert_fences(conn, fences):
            return {}
        failed = self.failed_fences(conn, fences)
        refused = {}
        for i, op in enumerate(batch):
            lost = next((f for f in op.fences if f in failed), None)
            if lost is not None:
                refused[i] = _Refused(LeaseLost(lost))
        return refused

    def _rollback(self, conn: Conn, saved: dict[str, int]) -> None:
        try:
            conn.execute("ROLLBACK")
        except Exception:
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
        if not batch:
            return
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
                elif isinstance(results[i], _Refused):
                    op.future.set_exception(results[i].exc)
                else:
                    op.future.set_result(results[i])

        try:
            loop.call_soon_threadsafe(complete)
        except RuntimeError:  # loop closed during shutdown
            pass

    # reads -----------------------------------------------------------------------------
    def _reader(self) -> Conn:
        conn: Conn | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self.connect(reader=True)
            self._local.conn = conn
            with self._lock:
                self._reader_conns.append(conn)
        return conn

    def _read_in_thread(self, fn: Callable[[Conn], T]) -> T:
        conn = self._reader()
        try:
            return fn(conn)
        except Exception as exc:
            if not self.lost(exc, conn):
                raise
            self._drop_reader(conn)
        # The connection was gone (a restarted server): a read is safe to run again, once,
        # on a new connection; if that fails too the database really is unavailable.
        conn = self._reader()
        try:
            return fn(conn)
        except Exception as exc:
            if self.lost(exc, conn):
                self._drop_reader(conn)
            raise

    def _drop_reader(self, conn: Conn) -> None:
        self._local.conn = None
        with self._lock:
            if conn in self._reader_conns:
                self._reader_conns.remove(conn)
        _close_quietly(conn)

    async def read(self, fn: Callable[[Conn], T]) -> T:
        """Run `fn(conn)` on a reader connection in a worker thread."""
        if self._closed:
            raise StoreError("store is closed")
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._pool, self._read_in_thread, fn)
        except self.errors() as exc:
            raise StoreError(str(exc)) from exc


def _close_quietly(conn: Conn) -> None:
    try:
        conn.close()
    except Exception:
        pass
