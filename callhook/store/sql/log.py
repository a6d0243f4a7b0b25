"""The durable event log: append (with correlation state, devices, CDRs) and read by seq."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any

import orjson

from callhook.events import Event, new_ids
from callhook.store import CommitHook, TxHook
from callhook.store.records import Append, Appended, DeviceSeen, NewDelivery, StoredEvent
from callhook.store.sql import Conn
from callhook.store.sql.engine import LAST_SEQ, WriterState
from callhook.store.sql.engine import ThreadEngine as Engine

log = logging.getLogger("callhook.store")

_INSERT_DELIVERY = (
    "INSERT INTO deliveries (delivery_id, endpoint_id, tenant, seq, event_id, key,"
    " session_id, status, attempts, schedule_base, next_at, context, created_at, updated_at)"
    " VALUES (?,?,?,?,?,?,?,?,0,0,?,?,?,?) ON CONFLICT DO NOTHING"
)


class _AppendTx:
    """What an in-transaction hook may do (store.AppendTx), on the writer's connection."""

    __slots__ = ("_conn", "_state", "created")

    def __init__(self, conn: Conn, state: WriterState) -> None:
        self._conn = conn
        self._state = state
        self.created: list[NewDelivery] = []

    def first_event_body(self, tenant: str, session: str, key: str, since: float) -> bytes | None:
        row = self._conn.execute(
            "SELECT body FROM events WHERE created_at >= ? AND tenant = ? AND session_id = ?"
            " AND key = ? LIMIT 1",
            (since, tenant, session, key),
        ).fetchone()
        return bytes(row[0]) if row else None

    def on_rollback(self, undo: Callable[[], None]) -> None:
        self._state.rollbacks.append(undo)

    def add_deliveries(self, rows: Sequence[NewDelivery]) -> None:
        self.created.extend(rows)
        self._conn.executemany(
            _INSERT_DELIVERY,
            [
                (r.delivery_id, r.endpoint_id, r.tenant, r.seq, r.event_id, r.key, r.session,
                 r.status, r.now, r.context, r.now, r.now)
                for r in rows
            ],
        )  # fmt: skip


_UPSERT_CDR = (
    "INSERT INTO cdrs VALUES (?,?,?,?,?,?,?,?,?) ON CONFLICT (tenant, cdr_id) DO UPDATE"
    " SET session_id = excluded.session_id, seq = excluded.seq,"
    " start_time = excluded.start_time, end_time = excluded.end_time,"
    " status = excluded.status, extensions = excluded.extensions, body = excluded.body"
)


def _cdr_row(ev: Event, body: bytes) -> tuple[Any, ...]:
    """The `cdrs` row of a committed call_cdr event (`body`: its stored bytes)."""
    b = ev.body
    exts = b.get("extensions") or list(ev.extensions)
    return (
        ev.tenant,
        str(b.get("cdr_id") or ev.event_id),
        str(b.get("session_id") or ""),
        ev.seq,
        _int_or_none(b.get("start_time")),
        _int_or_none(b.get("end_time")),
        str(b.get("status") or ""),
        _ext_column(tuple(str(x) for x in exts)),
        body,
    )


def _int_or_none(v: Any) -> int | None:
    try:
        return int(v)
    except (TypeError, ValueError):
        return None


def _ext_column(extensions: tuple[str, ...]) -> str:
    # ",101,102," so that looking for ",101," (EXTENSION_MATCH) matches whole numbers only
    return "," + ",".join(extensions) + "," if extensions else ""


# The filter on an `_ext_column` column, with `ext_needle(number)` as its argument. instr()
# compares exactly: LIKE would take `_` and `%` in a number as wildcards and ignore ASCII case.
EXTENSION_MATCH = "instr(extensions, ?) > 0"


def ext_needle(extension: str) -> str:
    """The argument of EXTENSION_MATCH: a number (without commas) as `_ext_column` spells it."""
    return f",{extension},"


class SqlEventLog:
    """Appends events durably and reads them back by (tenant, seq) (store.EventLog)."""

    def __init__(self, store: Engine) -> None:
        self.store = store
        self.tx_hooks: list[TxHook] = []
        self.commit_hooks: list[CommitHook] = []

    async def append(self, batch: Append) -> Appended:
        """What was committed (new event values with `seq` and `event_id`), after COMMIT."""
        return await self.store.write(lambda conn, st: self._append(conn, st, batch), batch.fences)

    def submit(
        self, batch: Append, future: asyncio.Future[Appended] | None = None
    ) -> asyncio.Future[Appended]:
        """append() without waiting: the future completes after COMMIT (see Engine.submit)."""
        return self.store.submit(
            lambda conn, st: self._append(conn, st, batch), future, batch.fences
        )

    def append_in(self, conn: Conn, st: WriterState, batch: Append) -> Appended:
        """append() as one part of a larger write running in the writer thread (a cluster
        owner's transaction also consumes the inbox entries it correlated)."""
        return self._append(conn, st, batch)

    def _append(self, conn: Conn, st: WriterState, batch: Append) -> Appended:
        parts: tuple[tuple[Event, ...] | None, ...]
        if st.isolate and len(batch.parts) > 1:
            parts = self._insert_parts(conn, st, batch)
            events = [ev for part in parts if part for ev in part]
        else:
            events = self._insert(conn, st, batch.events)
            for device in batch.devices:
                _upsert_device(conn, device)
            parts = tuple(tuple(events[s:e]) for s, e, _d in batch.parts) or (tuple(events),)
        _write_state(conn, batch)
        created: tuple[NewDelivery, ...] = ()
        if self.tx_hooks and events:
            tx = _AppendTx(conn, st)
            for hook in self.tx_hooks:
                hook(tx, events)
            created = tuple(tx.created)
        result = Appended(tuple(events), parts, created)
        if events and self.commit_hooks:
            hooks = list(self.commit_hooks)

            def publish() -> None:
                for hook in hooks:
                    try:
                        hook(result)
                    except Exception:  # one consumer's bug must not starve the next
                        log.exception("after-commit consumer failed")

            st.after_commit.append(publish)
        return result

    def _insert(self, conn: Conn, st: WriterState, events: list[Event]) -> list[Event]:
        """Insert `events` as new values with their seq, id and stored bytes."""
        rows = []
        cdrs = []
        stored: list[Event] = []
        ids = iter(new_ids(sum(1 for e in events if not e.event_id)))
        for given in events:
            ev = given.stored(st.next_seq(conn, given.tenant), given.event_id or next(ids))
            stored.append(ev)
            body = ev.wire_bytes()
            rows.append(
                (
                    ev.tenant,
                    ev.seq,
                    ev.event_id,
                    ev.topic,
                    ev.key,
                    ev.session_id,
                    _ext_column(ev.extensions),
                    ev.queue,
                    ev.created_at,
                    body,
                )
            )
            if ev.key == "call_cdr":
                cdrs.append(_cdr_row(ev, body))
        conn.executemany("INSERT INTO events VALUES (?,?,?,?,?,?,?,?,?,?)", rows)
        if cdrs:  # one statement for the batch's CDRs; a later one of a call wins, in order
            conn.executemany(_UPSERT_CDR, cdrs)
        return stored

    def _insert_parts(
        self, conn: Conn, st: WriterState, batch: Append
    ) -> tuple[tuple[Event, ...] | None, ...]:
        """The batch failed as a whole: store each request's part under a savepoint, so a
        part the database refuses fails alone (None in the result: nothing stored)."""
        out: list[tuple[Event, ...] | None] = []
        for start, end, device in batch.parts:
            part = batch.events[start:end]
            seqs = dict(st.seqs)
            conn.execute("SAVEPOINT part")
            try:
                stored = self._insert(conn, st, part)
                if device >= 0:
                    _upsert_device(conn, batch.devices[device])
            except Exception as exc:  # refused (a trigger, a constraint) or unwritable
                if st.seq_taken(exc):  # a race with another node, not this part's fault
                    raise
                conn.execute("ROLLBACK TO part")
                st.seqs = seqs  # seq stays gap-free
                log.error("events not stored: %s", exc, extra={"events": [e.key for e in part]})
                out.append(None)
            else:
                out.append(tuple(stored))
            conn.execute("RELEASE part")
        return tuple(out)

    # reads -----------------------------------------------------------------------------
    async def read(
        self,
        tenant: str,
        *,
        since_seq: int = 0,
        limit: int = 100,
        topic: str | None = None,
        key: str | None = None,
        extension: str | None = None,
    ) -> list[bytes]:
        """Stored wire bodies (JSON bytes) after `since_seq`, oldest first."""
        sql = "SELECT body FROM events WHERE tenant=? AND seq>?"
        args: list[Any] = [tenant, since_seq]
        if topic:
            sql += " AND topic=?"
            args.append(topic)
        if key:
            sql += " AND key=?"
            args.append(key)
        if extension:
            sql += " AND " + EXTENSION_MATCH
            args.append(ext_needle(extension))
        sql += " ORDER BY seq LIMIT ?"
        args.append(limit)
        return await self.store.read(lambda c: [r[0] for r in c.execute(sql, args)])

    async def last_seq(self, tenant: str) -> int:
        def q(c: Conn) -> int:
            row = c.execute(LAST_SEQ, (tenant,)).fetchone()
            return int(row[0]) if row else 0

        return await self.store.read(q)

    async def read_stored(
        self, tenant: str, since: int, keys: Sequence[str] | None, limit: int
    ) -> list[StoredEvent]:
        """Events after `since` with their routing columns, oldest first (WSI replay).

        Each SELECT is one WAL snapshot and events commit in `seq` order, so a page is
        always a gap-free prefix of the log.
        """
        if keys is not None and not keys:
            return []
        sql = "SELECT seq, key, extensions, queue, body FROM events WHERE tenant=? AND seq>?"
        args: list[object] = [tenant, since]
        if keys is not None:
            sql += f" AND key IN ({','.join('?' * len(keys))})"
            args.extend(keys)
        sql += " ORDER BY seq LIMIT ?"
        args.append(limit)

        def q(c: Conn) -> list[StoredEvent]:
            return [
                StoredEvent(int(seq), key, tuple(e for e in (exts or "").split(",") if e), queue,
                            bytes(body))
                for seq, key, exts, queue, body in c.execute(sql, args)
            ]  # fmt: skip

        return await self.store.read(q)


class SqlCorrelationState:
    """Open sessions and presence, as the appends left them (store.CorrelationState)."""

    def __init__(self, store: Engine) -> None:
        self.store = store

    async def load(
        self, tenants: Sequence[str] | None = None
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Every tenant's sessions and presence, or only those of `tenants`."""
        where, args = "", list(tenants or ())
        if tenants is not None:
            if not args:
                return [], []
            where = f" WHERE tenant IN ({','.join('?' * len(args))})"

        def q(c: Conn) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
            sessions = [
                orjson.loads(r[0]) for r in c.execute("SELECT state FROM sessions" + where, args)
            ]
            presence = [
                orjson.loads(r[0]) for r in c.execute("SELECT state FROM presence" + where, args)
            ]
            return sessions, presence

        return await self.store.read(q)


def _write_state(conn: Conn, batch: Append) -> None:
    """The sessions and presence a batch changed, one statement per kind (a round trip
    each on PostgreSQL, not one per row); the last change of a key wins."""
    gone: dict[tuple[str, str], tuple[str, str]] = {}
    kept: dict[tuple[str, str], tuple[str, str, bytes]] = {}
    for tenant, sid, state in batch.sessions:
        key = (tenant, sid)
        gone.pop(key, None)
        kept.pop(key, None)
        if state is None:
            gone[key] = key
        else:
            kept[key] = (tenant, sid, orjson.dumps(state))
    if gone:
        conn.executemany("DELETE FROM sessions WHERE tenant=? AND session_id=?", gone.values())
    if kept:
        conn.executemany(
            "INSERT INTO sessions VALUES (?,?,?) ON CONFLICT (tenant, session_id)"
            " DO UPDATE SET state = excluded.state",
            kept.values(),
        )
    presence = {(t, ext): (t, ext, orjson.dumps(state)) for t, ext, state in batch.presence}
    if presence:
        conn.executemany(
            "INSERT INTO presence VALUES (?,?,?) ON CONFLICT (tenant, extension)"
            " DO UPDATE SET state = excluded.state",
            presence.values(),
        )


def _upsert_device(conn: Conn, d: DeviceSeen) -> None:
    # Keep what we knew when this request did not carry a field (phones send what the
    # admin configured for each event, not every variable every time).
    conn.execute(
        """
        INSERT INTO devices (tenant, mac, vendor, model, firmware, hardware, ip, extension,
                             last_event, first_seen, last_seen, details)
        VALUES (?,?,?,?,?,?,?,?,?,?,?,?)
        ON CONFLICT (tenant, mac) DO UPDATE SET
            vendor = CASE WHEN excluded.vendor != '' THEN excluded.vendor ELSE devices.vendor END,
            model = CASE WHEN excluded.model != '' THEN excluded.model ELSE devices.model END,
            firmware = CASE WHEN excluded.firmware != '' THEN excluded.firmware
                        ELSE devices.firmware END,
            hardware = CASE WHEN excluded.hardware != '' THEN excluded.hardware
                        ELSE devices.hardware END,
            ip = CASE WHEN excluded.ip != '' THEN excluded.ip ELSE devices.ip END,
            extension = CASE WHEN excluded.extension != '' THEN excluded.extension
                             ELSE devices.extension END,
            last_event = excluded.last_event,
            last_seen = excluded.last_seen,
            details = CASE WHEN excluded.details != '{}' THEN excluded.details
                      ELSE devices.details END
        """,
        (
            d.tenant,
            d.mac,
            d.vendor,
            d.model,
            d.firmware,
            d.hardware,
            d.ip,
            d.extension,
            d.last_event,
            d.seen_at,
            d.seen_at,
            d.details,
        ),
    )
