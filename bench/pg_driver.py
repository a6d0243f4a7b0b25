"""psycopg 3 (as the hub drives it) against asyncpg, on the hub's PostgreSQL workload.

    python bench/pg_driver.py [REQUESTS]     # about a minute; prints a table

The same requests go through both drivers, each into a fresh database with the hub's own
schema, on one PostgreSQL 15 started here (Debian's package, same machine, fsync off as
the tests run it). A request is what one phone GET commits, prepared beforehand so only
the driver's work differs: calls of three requests (`Incoming Call`, `Establish Call`,
`Terminate Call`) in 200 tenants, each request inserting its events with the tenant's next
`seq` (read from the log once per tenant, then counted in memory, as the writer does), its
correlation snapshots (session upsert or delete, presence upsert), the webhook outbox rows
of tenants with an endpoint (half of them), and on `Terminate Call` the CDR upsert. 64
requests wait at a time, as 64 phones waiting for their answers do; a writer takes every
request waiting into one transaction (group commit) and answers them after COMMIT.

Write shapes:
- `per batch`: close to the hub's. Its pipeline gathers the requests of one event-loop iteration
  into one append (`callhook/pipeline.py`), which writes all their events in one
  `executemany`, each kind of snapshot in one statement, the outbox rows in one
  `executemany` (`callhook/store/sql/log.py`); here, one such statement per kind for the
  whole group commit. psycopg sends them in libpq pipeline mode from one writer thread
  (the hub's `PgConn`), the loop handing each batch over; asyncpg runs them on the event
  loop, each `executemany` pipelined inside, each statement awaited.
- `per request`: each request's statements apart, in turn (what a writer that did not
  gather requests would send). asyncpg has no pipeline across statements: each is a
  round trip.

Reads: WSI replay pages (`seq, key, extensions, queue, body` after a `seq`, 500 rows), from
4 concurrent readers: psycopg in reader threads (the hub's), asyncpg on the loop.

Printed per case: requests/s (median of ROUNDS, drivers alternating), the client process's
CPU per request, mean requests per group commit. `RATIO pg_driver` = psycopg's ÷ asyncpg's
requests/s in the hub's shape, `per batch` (above 1: psycopg is faster for this workload).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import table
from callhook.store import upgrade
from callhook.store.postgres.engine import PgConn, connect_raw
from tests.support import postgres

try:
    import asyncpg
except ImportError:  # a dev/bench dependency only (pyproject.toml [dev])
    sys.exit("bench/pg_driver.py needs asyncpg: make dev (it is in the dev extras)")

TENANTS = 200
WAITING = 64  # requests waiting at once (phones waiting for their answer)
MAX_BATCH = 1024  # as the hub's writer
ROUNDS = 3
READERS = 4
PAGE = 500

# The hub's statements (callhook/store/sql/log.py), `?` parameters.
EVENT = "INSERT INTO events VALUES (?,?,?,?,?,?,?,?,?,?)"
CDR = (
    "INSERT INTO cdrs VALUES (?,?,?,?,?,?,?,?,?) ON CONFLICT (tenant, cdr_id) DO UPDATE"
    " SET session_id = excluded.session_id, seq = excluded.seq,"
    " start_time = excluded.start_time, end_time = excluded.end_time,"
    " status = excluded.status, extensions = excluded.extensions, body = excluded.body"
)
SESSION_GONE = "DELETE FROM sessions WHERE tenant=? AND session_id=?"
SESSION = (
    "INSERT INTO sessions VALUES (?,?,?) ON CONFLICT (tenant, session_id)"
    " DO UPDATE SET state = excluded.state"
)
PRESENCE = (
    "INSERT INTO presence VALUES (?,?,?) ON CONFLICT (tenant, extension)"
    " DO UPDATE SET state = excluded.state"
)
DELIVERY = (
    "INSERT INTO deliveries (delivery_id, endpoint_id, tenant, seq, event_id, key,"
    " session_id, status, attempts, schedule_base, next_at, context, created_at, updated_at)"
    " VALUES (?,?,?,?,?,?,?,?,0,0,?,?,?,?) ON CONFLICT DO NOTHING"
)
MAX_SEQ = "SELECT MAX(seq) FROM events WHERE tenant = ?"
REPLAY = (
    "SELECT seq, key, extensions, queue, body FROM events WHERE tenant=? AND seq>?"
    " ORDER BY seq LIMIT ?"
)


def dollar(sql: str) -> str:
    """`?` parameters as asyncpg's `$1, $2 ...`."""
    parts = sql.split("?")
    return "".join(p + (f"${i}" if i < len(parts) else "") for i, p in enumerate(parts, 1))


@dataclass
class Request:
    """What one phone GET commits; `seq` and the rows that carry it are made at write time."""

    tenant: str
    events: list[tuple[str, str, str, str, bytes]]  # event_id, topic, key, session, body
    cdr: tuple[Any, ...] | None  # without tenant/seq
    session: tuple[str, bytes | None]  # (session_id, state or None: gone)
    presence: tuple[str, bytes]
    deliver: bool
    done: asyncio.Future[None] | None = field(default=None, repr=False)


def requests(n: int, tenants: int = TENANTS) -> list[Request]:
    out: list[Request] = []
    calls = (n + 2) // 3
    for c in range(calls):
        tenant = f"t{c % tenants:03d}"
        sid = f"s-{c}"
        ext = f"{100 + c % 50}"
        deliver = c % tenants % 2 == 0
        for step, key in enumerate(("call_started", "call_answered", "call_ended")):
            body = {
                "event_type": key,
                "tenant": tenant,
                "session_id": sid,
                "call_id": f"call-{c}",
                "extension": ext,
                "remote": "+15551230000",
                "direction": "inbound",
                "time": 1_765_000_000 + c,
                "details": {"vendor": "grandstream", "model": "GXP2170", "line": 1},
            }
            events = [(f"e-{c}-{step}", "call", key, sid, orjson.dumps(body))]
            cdr = None
            if key == "call_ended":
                cdr_body = {**body, "event_type": "call_cdr", "duration": 42, "status": "ok"}
                events.append((f"e-{c}-cdr", "call", "call_cdr", sid, orjson.dumps(cdr_body)))
                cdr = (f"cdr-{c}", sid, 1_765_000_000 + c, 1_765_000_042 + c, "answered",
                       f",{ext},", orjson.dumps(cdr_body))  # fmt: skip
            state = None if key == "call_ended" else orjson.dumps({"sid": sid, "step": step})
            presence = orjson.dumps({"extension": ext, "state": "busy" if state else "idle"})
            out.append(Request(tenant, events, cdr, (sid, state), (ext, presence), deliver))
    return out[:n]


class Rows:
    """The rows of a batch of requests, `seq` given from the writer's counters."""

    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []
        self.cdrs: list[tuple[Any, ...]] = []
        self.gone: list[tuple[Any, ...]] = []
        self.sessions: list[tuple[Any, ...]] = []
        self.presence: list[tuple[Any, ...]] = []
        self.deliveries: list[tuple[Any, ...]] = []


def rows_of(req: Request, seqs: dict[str, int]) -> Rows:
    r = Rows()
    now = time.time()
    for event_id, topic, key, sid, body in req.events:
        seq = seqs[req.tenant] = seqs[req.tenant] + 1
        r.events.append((req.tenant, seq, event_id, topic, key, sid, ",101,", None, now, body))
        if req.deliver:
            r.deliveries.append((f"d-{event_id}", f"ep-{req.tenant}", req.tenant, seq, event_id,
                                 key, sid, "pending", now, "", now, now))  # fmt: skip
        if key == "call_cdr" and req.cdr is not None:
            cdr_id, csid, start, end, status, exts, cbody = req.cdr
            r.cdrs.append((req.tenant, cdr_id, csid, seq, start, end, status, exts, cbody))
    sid, state = req.session
    if state is None:
        r.gone.append((req.tenant, sid))
    else:
        r.sessions.append((req.tenant, sid, state))
    r.presence.append((req.tenant, *req.presence))
    return r


def merged(batch: Sequence[Request], seqs: dict[str, int]) -> Rows:
    out = Rows()
    for req in batch:
        r = rows_of(req, seqs)
        for name in ("events", "cdrs", "gone", "sessions", "presence", "deliveries"):
            getattr(out, name).extend(getattr(r, name))
    # one statement per kind: the last change of a key wins (as log.py's _write_state)
    out.sessions = list({(t, s): (t, s, st) for t, s, st in out.sessions}.values())
    out.presence = list({(t, e): (t, e, st) for t, e, st in out.presence}.values())
    return out


STATEMENTS = (
    ("events", EVENT),
    ("cdrs", CDR),
    ("gone", SESSION_GONE),
    ("sessions", SESSION),
    ("presence", PRESENCE),
    ("deliveries", DELIVERY),
)


# psycopg, as the hub drives it: one writer thread, one pipelined transaction per batch ----
def psycopg_writer(
    url: str, shape: str
) -> tuple[Callable[[list[Request]], None], Callable[[], None]]:
    conn = PgConn(connect_raw(url))
    seqs: dict[str, int] = {}

    def seq_of(tenant: str) -> None:
        if tenant not in seqs:
            row = conn.execute(MAX_SEQ, (tenant,)).fetchone()
            seqs[tenant] = int(row[0] or 0) if row else 0

    def commit(batch: list[Request]) -> None:
        with conn.pipelined():
            conn.execute("BEGIN")
            for req in batch:
                seq_of(req.tenant)
            if shape == "per batch":
                rows = merged(batch, seqs)
                for name, sql in STATEMENTS:
                    if getattr(rows, name):
                        conn.executemany(sql, getattr(rows, name))
            else:
                for req in batch:
                    r = rows_of(req, seqs)
                    for name, sql in STATEMENTS:
                        if getattr(r, name):
                            conn.executemany(sql, getattr(r, name))
            conn.execute("COMMIT")

    return commit, conn.close


# asyncpg: the writer is a coroutine on the event loop ------------------------------------
async def asyncpg_writer(
    url: str, shape: str
) -> tuple[Callable[[list[Request]], Awaitable[None]], Callable[[], Awaitable[None]]]:
    conn = await asyncpg.connect(url)
    seqs: dict[str, int] = {}
    sql = {name: dollar(s) for name, s in STATEMENTS}
    max_seq = dollar(MAX_SEQ)

    async def commit(batch: list[Request]) -> None:
        async with conn.transaction():
            for req in batch:
                if req.tenant not in seqs:
                    seqs[req.tenant] = int(await conn.fetchval(max_seq, req.tenant) or 0)
            if shape == "per batch":
                rows = merged(batch, seqs)
                for name, _ in STATEMENTS:
                    if getattr(rows, name):
                        await conn.executemany(sql[name], getattr(rows, name))
            else:
                for req in batch:
                    r = rows_of(req, seqs)
                    for name, _ in STATEMENTS:
                        got = getattr(r, name)
                        if len(got) == 1:
                            await conn.execute(sql[name], *got[0])
                        elif got:
                            await conn.executemany(sql[name], got)

    return commit, conn.close


async def drive(reqs: list[Request], commit: Callable[[list[Request]], Awaitable[None]]) -> int:
    """WAITING producers, each submitting a request and waiting for its commit; a writer
    task commits every request waiting at that moment. Returns the number of commits."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[Request] = asyncio.Queue()
    batches = 0

    async def writer() -> None:
        nonlocal batches
        while True:
            batch = [await queue.get()]
            while len(batch) < MAX_BATCH and not queue.empty():
                batch.append(queue.get_nowait())
            await commit(batch)
            batches += 1
            for req in batch:
                assert req.done is not None
                req.done.set_result(None)

    async def phone(mine: list[Request]) -> None:
        for req in mine:
            req.done = loop.create_future()
            queue.put_nowait(req)
            await req.done

    task = asyncio.create_task(writer())
    await asyncio.gather(*(phone(reqs[i::WAITING]) for i in range(WAITING)))
    task.cancel()
    return batches


@dataclass
class Result:
    rate: float
    cpu_us: float
    per_batch: float


async def write_case(driver: str, shape: str, n: int) -> Result:
    url = postgres.server().new_database()
    upgrade(url)
    reqs = requests(n)
    if driver == "psycopg":
        sync_commit, close = psycopg_writer(url, shape)
        thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="writer")
        loop = asyncio.get_running_loop()

        async def commit(batch: list[Request]) -> None:
            await loop.run_in_executor(thread, sync_commit, batch)

        t0, c0 = time.perf_counter(), time.process_time()
        batches = await drive(reqs, commit)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        await loop.run_in_executor(thread, close)
        thread.shutdown()
    else:
        acommit, aclose = await asyncpg_writer(url, shape)
        t0, c0 = time.perf_counter(), time.process_time()
        batches = await drive(reqs, acommit)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        await aclose()
    check(url, n)
    return Result(n / wall, cpu / n * 1e6, n / batches)


def check(url: str, n: int) -> None:
    """Every request stored, each tenant's seq gap-free from 1."""
    conn = PgConn(connect_raw(url))
    try:
        rows = conn.execute("SELECT tenant, COUNT(*), MIN(seq), MAX(seq) FROM events GROUP BY 1")
        total = 0
        for tenant, count, lo, hi in rows.fetchall():
            assert lo == 1 and hi == count, (tenant, count, lo, hi)
            total += count
        assert total == n + n // 3, (total, n)
    finally:
        conn.close()


READ_TENANTS = 10


async def read_case(driver: str, url: str, pages: int) -> float:
    """Replay pages of PAGE rows from READERS concurrent readers; rows/s."""
    tenants = [f"t{i:03d}" for i in range(READ_TENANTS)]
    loop = asyncio.get_running_loop()
    done = 0
    if driver == "psycopg":
        local = threading.local()
        conns: list[PgConn] = []
        pool = ThreadPoolExecutor(max_workers=READERS)

        def page(tenant: str) -> int:
            c = getattr(local, "conn", None)
            if c is None:
                c = local.conn = PgConn(connect_raw(url))
                conns.append(c)
            return len(
                [(s, k, e, q, bytes(b)) for s, k, e, q, b in c.execute(REPLAY, (tenant, 0, PAGE))]
            )

        async def one(i: int) -> int:
            return await loop.run_in_executor(pool, page, tenants[i % READ_TENANTS])

        await asyncio.gather(*(one(i) for i in range(READERS)))  # connect
        t0 = time.perf_counter()
        for start in range(0, pages, READERS):
            done += sum(await asyncio.gather(*(one(i) for i in range(start, start + READERS))))
        wall = time.perf_counter() - t0
        pool.shutdown()
        for c in conns:
            c.close()
    else:
        apool = await asyncpg.create_pool(url, min_size=READERS, max_size=READERS)
        q = dollar(REPLAY)

        async def aone(i: int) -> int:
            rows = await apool.fetch(q, tenants[i % READ_TENANTS], 0, PAGE)
            return len([(r[0], r[1], r[2], r[3], r[4]) for r in rows])

        t0 = time.perf_counter()
        for start in range(0, pages, READERS):
            done += sum(await asyncio.gather(*(aone(i) for i in range(start, start + READERS))))
        wall = time.perf_counter() - t0
        await apool.close()
    return done / wall


async def main(n: int) -> None:
    cases = [(d, s) for s in ("per request", "per batch") for d in ("psycopg", "asyncpg")]
    results: dict[tuple[str, str], list[Result]] = {c: [] for c in cases}
    for _ in range(ROUNDS):
        for d, s in cases:
            results[(d, s)].append(await write_case(d, s, n))
    rows = []
    hub_shape: dict[str, float] = {}
    for (d, s), rs in results.items():
        rate = statistics.median(r.rate for r in rs)
        if s == "per batch":
            hub_shape[d] = rate
        rows.append((d, s, f"{rate:,.0f}", ", ".join(f"{r.rate:,.0f}" for r in rs),
                     f"{statistics.median(r.cpu_us for r in rs):.0f}",
                     f"{statistics.median(r.per_batch for r in rs):.1f}"))  # fmt: skip
    print(table(
        f"group commits: {n:,} requests ({n + n // 3:,} events), {WAITING} waiting, "
        f"{TENANTS} tenants; median of {ROUNDS} rounds",
        ["driver", "shape", "req/s", "rounds", "client CPU µs/req", "req per commit"],
        rows,
    ))  # fmt: skip
    url = postgres.server().new_database()
    upgrade(url)
    commit, close = psycopg_writer(url, "per batch")
    reqs = requests(n, READ_TENANTS)
    for i in range(0, len(reqs), 256):
        commit(reqs[i : i + 256])
    close()
    reads: dict[str, list[float]] = {"psycopg": [], "asyncpg": []}
    for _ in range(ROUNDS):
        for d in reads:
            reads[d].append(await read_case(d, url, 400))
    print()
    print(table(
        f"replay: {READ_TENANTS} tenants of {(n + n // 3) // READ_TENANTS:,} events, pages of"
        f" {PAGE} rows from seq 0, {READERS} readers; median of {ROUNDS} rounds",
        ["driver", "rows/s", "rounds"],
        [(d, f"{statistics.median(v):,.0f}", ", ".join(f"{x:,.0f}" for x in v))
         for d, v in reads.items()],
    ))  # fmt: skip
    print(f"\nload average at the end: {os.getloadavg()[0]:.2f}")
    print(f"RATIO pg_driver {hub_shape['psycopg'] / hub_shape['asyncpg']:.3f}")


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 12_000))
