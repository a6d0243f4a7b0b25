"""Redis Streams bus: every node's live fan-out sees every node's committed events.

Each committed event is added (XADD, after COMMIT) to the stream of its tenant's
partition, trimmed to about `MAXLEN` entries. Only a partition's owner appends its
tenants' events, and it hands them to its local subscribers at once; every node reads
the streams of the partitions it does not own (XREAD) and hands their events to its
local subscribers, so each event is read by the other nodes only. A partition just
taken: what its previous owner committed and this node has not read yet comes from the
log (`own`), and a `taken` entry on its stream has every other node read the log too
(the previous owner may have died between a COMMIT and its XADD). The PostgreSQL log
stays the source of truth: per tenant, a node delivers `seq` N only after N-1; an event
that arrives early (a gap: Redis was away, an XADD was lost, a stream was trimmed) makes
the node read the missing ones from the log first, and one that arrives again (already
delivered) is dropped. After losing Redis a node reads, per tenant, everything the log
has after what it delivered, then goes on with the streams: no gap, no duplicate.

Why Streams and not pub/sub alone: a pub/sub message sent while a node is disconnected
is gone, and nothing says it was missed. A stream keeps its entries, so a node that was
away for a moment reads on from its last entry id; the per-tenant `seq` check and the log
cover what the stream no longer has.

What the entries hold: callhook/bus/streams.py; the per-tenant ordering and the log
reads that fill gaps: callhook/bus/ordered.py.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from functools import partial
from typing import Any, cast

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import RedisError, ResponseError

from callhook.bus import Subscriber
from callhook.bus.ordered import InOrder
from callhook.bus.streams import (
    DIRECTORY,
    Entry,
    add_entries,
    decode,
    encode,
    partition_stream,
    stream_of,
    taken_entry,
)
from callhook.cluster.partitions import PARTITIONS
from callhook.events import Event
from callhook.store import EventLog

log = logging.getLogger("callhook.bus")

MAX_UNSENT = 100_000  # events kept for Redis while it is away; older ones: the log
NODE_KEY = "callhook:node:"  # + node id: a heartbeat, expiring unless renewed
HEARTBEAT = 1.0  # seconds between heartbeats
NODE_TTL = 5  # seconds a node is listed after its last heartbeat
RETRY = 0.5  # seconds between attempts to reach Redis again
REFUSED_WAIT = 30.0  # at most, between reads Redis keeps refusing (doubling from RETRY)


class RedisBus:
    """The bus of a clustered node (`[server] bus = "redis://..."`)."""

    def __init__(
        self, url: str, node: str, events: EventLog, tenants: Callable[[], Iterable[str]]
    ) -> None:
        self.url = url
        self.node = node
        self._redis: Redis | None = None
        self._order = InOrder(events, tenants, self._spawn)
        self._unsent: deque[Entry] = deque()
        self._dropped = 0  # unsent entries given up (too many while Redis was away)
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self.connected = False
        self.received = 0  # events of other nodes read from the streams
        self._me = node.encode()  # the `n` field of this node's own entries
        self.skipped = 0  # entries on the streams that were not events of a node
        self._skipped_logged = -1e9  # monotonic time of the last warning about them
        self.last_entry_at = 0.0  # wall clock of the last stream entry read
        # Set by the hub: reload the directory after another node changed it.
        self.on_directory: Callable[[], Awaitable[None]] | None = None
        self._reloading: asyncio.Task[None] | None = None
        self._reload_again = False
        self._ids: dict[str, str] = {}  # stream -> last entry id read
        self._owned: frozenset[int] = frozenset()  # partitions this node owns
        self._unread: frozenset[str] = frozenset()  # their streams, not read
        self._giving_up: set[int] = set()  # given up, not read until their newest id is known
        self.lag_ms = 0  # how far behind the newest entry of any stream the reading is
        self.started_at = time.time()

    # Bus -------------------------------------------------------------------------------
    def subscribe(self, fn: Subscriber) -> None:
        self._order.subscribers.append(fn)

    def publish(self, events: list[Event]) -> None:
        """Commit hook (commit order): local subscribers now, other nodes via Redis."""
        self._order.accept(events)
        for ev in events:
            self._unsent.append((stream_of(ev.tenant), encode(ev, self.node)))
        while len(self._unsent) > MAX_UNSENT:  # others fill this from the log
            self._unsent.popleft()
            self._dropped += 1
        self._wake.set()

    async def start(self) -> None:
        self._redis = Redis.from_url(
            self.url, socket_timeout=5, socket_connect_timeout=2, health_check_interval=10
        )
        await self._order.start()
        self._spawn(self._read_streams())
        self._spawn(self._send())
        self._spawn(self._heartbeat())

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass
        self._order.subscribers.clear()
        if self._redis is not None:
            await self._redis.aclose()

    @property
    def filled(self) -> int:
        """Events read from the log to fill gaps."""
        return self._order.filled

    @property
    def unsent(self) -> int:
        return len(self._unsent)

    def own(self, partitions: frozenset[int]) -> None:
        """This node owns `partitions` now. Their events are all its own, handed to its
        subscribers as committed (`publish`): their streams are read no more. A partition
        just taken has its tenants read from the log after what was delivered here: its
        previous owner may have died between a COMMIT and the XADD, or this node not have
        read its last entries yet, and a quiet tenant would wait for its next event. A
        stream given up is read on from its newest entry (`_give_up`), not from where this
        node stopped reading it when it took the partition: what lies between is this
        node's own events, up to MAXLEN of them, read back for nothing."""
        taken = partitions - self._owned
        given_up = self._owned - partitions
        self._owned = partitions
        self._giving_up |= given_up
        self._giving_up -= partitions  # taken back before its stream was read again
        self._unread = frozenset(partition_stream(p) for p in partitions | self._giving_up)
        if given_up:
            self._spawn(self._give_up(given_up))
        self._order.read_log_of(taken)
        # The other nodes read the log of a partition taken too: they wait on its stream
        # for events the previous owner may have committed and never sent.
        for p in sorted(taken):
            self._unsent.append(taken_entry(p, self.node))
        if taken:
            self._wake.set()

    async def _give_up(self, partitions: frozenset[int]) -> None:
        """Read the streams of `partitions`, given up, from their newest entry now, and
        their tenants from the log after what was delivered here. Nothing is missed: the
        entries after that newest one are read from the stream, and the new owner's
        before it were committed before the log is read. If Redis cannot say (away), the
        streams are read on from where this node stopped: slower, nothing missed either."""
        newest: dict[str, str] = {}
        try:
            if self._redis is not None:
                newest = await self._newest_ids([partition_stream(p) for p in sorted(partitions)])
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the streams must be read again whatever happened
            if not isinstance(exc, (RedisError, OSError)):
                log.exception("finding the newest entries of the streams given up failed")
        back = partitions - self._owned  # not taken back meanwhile
        for p in back:
            name = partition_stream(p)
            if name in newest and name in self._ids:
                self._ids[name] = newest[name]
        self._giving_up -= back
        self._unread = frozenset(
            partition_stream(p) for p in self._owned | self._giving_up
        )  # fmt: skip
        self._order.read_log_of(back)

    def directory_changed(self) -> None:
        """This node changed tenants, extensions, keys ...: tell the others (after what
        was published before it)."""
        self._unsent.append((DIRECTORY, {"n": self.node}))
        self._wake.set()

    async def nodes(self) -> list[dict[str, Any]]:
        """The nodes whose heartbeat is fresh, by node id (raises RedisError)."""
        assert self._redis is not None
        return await read_nodes(self._redis)

    def _reload(self) -> None:
        """Another node changed the directory: reload it (once more if it changes again
        while reloading)."""
        if self.on_directory is None:
            return
        if self._reloading is not None and not self._reloading.done():
            self._reload_again = True
            return
        self._reloading = asyncio.create_task(self._reload_loop(self.on_directory))

    async def _reload_loop(self, reload: Callable[[], Awaitable[None]]) -> None:
        while True:
            self._reload_again = False
            try:
                await reload()
            except Exception:
                log.exception("reloading the directory after another node changed it failed")
            if not self._reload_again:
                return

    async def _heartbeat(self) -> None:
        assert self._redis is not None
        key = NODE_KEY + self.node
        while True:
            if not self.connected:  # the reader has not reached Redis (yet, or again)
                await asyncio.sleep(HEARTBEAT / 4)
                continue
            try:
                newest = await self._newest_ids()
                self.lag_ms = max(
                    (_ms(newest[s]) - _ms(self._ids.get(s, "0-0")) for s in newest
                     if s not in self._unread),  # not read: nothing due
                    default=0,
                )  # fmt: skip
                state = {
                    "node_id": self.node,
                    "started_at": self.started_at,
                    "seen_at": time.time(),
                    "bus_connected": self.connected,
                    "lag_ms": max(self.lag_ms, 0),
                    "unsent": len(self._unsent),
                    "received": self.received,
                    "filled_from_log": self.filled,
                }
                await self._redis.set(key, json.dumps(state), ex=NODE_TTL)
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError):
                pass  # the reader says so in the log
            await asyncio.sleep(HEARTBEAT)

    async def _newest_ids(self, names: list[str] | None = None) -> dict[str, str]:
        """The id of the newest entry of each of `names` (every partition's stream by
        default) that has one."""
        assert self._redis is not None
        names = names or [partition_stream(p) for p in range(PARTITIONS)]

        def newest(pipe: Pipeline) -> None:
            for name in names:
                pipe.xrevrange(name, count=1)

        # One MULTI/EXEC: every partition's newest entry as of the same moment.
        out: dict[str, str] = {}
        for name, last in zip(names, await self._redis.transaction(newest), strict=True):
            if last:
                entry = last[0][0]
                out[name] = entry.decode() if isinstance(entry, bytes) else str(entry)
        return out

    # Redis -----------------------------------------------------------------------------
    async def _read_streams(self) -> None:
        assert self._redis is not None
        ids = self._ids
        down = True
        first = True
        refused = 0  # reads Redis refused in a row
        while True:
            try:
                if down:
                    secs, micros = await self._redis.time()
                    start = f"{secs * 1000 + micros // 1000}-0"
                    for p in range(PARTITIONS):  # kept across a blip: read on from there
                        ids.setdefault(partition_stream(p), start)
                    ids.setdefault(DIRECTORY, start)
                    self._order.sweep()  # whatever was committed meanwhile, from the log
                    if not first:
                        self._reload()  # notices sent while we were away are lost
                    first = False
                    if not self.connected and not refused:  # (a refusal says otherwise)
                        log.info("bus connected", extra={"node": self.node})
                    self.connected, down = True, False
                unread = self._unread
                reading = {name: last for name, last in ids.items() if name not in unread}
                reply = await self._redis.xread(reading, count=1000, block=1000)  # type: ignore[arg-type]
                if refused:
                    log.info("Redis allows the bus's reads again", extra={"node": self.node})
                    refused = 0
                got = cast("list[tuple[bytes, list[tuple[bytes, dict[bytes, bytes]]]]]", reply)
                events: list[Event] = []
                for stream, entries in got or []:
                    name = stream.decode() if isinstance(stream, bytes) else str(stream)
                    for entry_id, fields in entries:
                        ids[name] = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
                        if fields.get(b"n") == self._me:
                            continue
                        if name == DIRECTORY:
                            self._reload()
                            continue
                        if b"taken" in fields:  # a new owner: what the last one never sent
                            self._taken(name, ids[name], fields[b"taken"])
                            continue
                        try:
                            events.append(decode(fields))
                        except (KeyError, ValueError) as exc:  # not one of ours: skipped
                            self._unreadable(name, ids[name], exc)
                if events:
                    self.received += len(events)
                    self.last_entry_at = time.time()
                    self._order.accept(events)
            except asyncio.CancelledError:
                raise
            except ResponseError as exc:
                # Redis answers but refuses the read (an ACL without XREAD, a key of these
                # names holding another type): until someone mends it, every retry would
                # read every tenant's gap from the log and reload the directory. Said
                # loudly, and retried less and less often (the log keeps subscribers fed).
                refused += 1
                wait = min(REFUSED_WAIT, RETRY * 2**refused)
                log.error(
                    "Redis refuses the bus's reads (%s); subscribers get other nodes' events"
                    " from the log only, tried again in %.0f s: check that this node's Redis"
                    " user may read the callhook:* streams and that nothing else writes keys"
                    " named callhook:*",
                    exc, wait, extra={"node": self.node},
                )  # fmt: skip
                self.connected, down = False, True
                await asyncio.sleep(wait)
            except (RedisError, OSError) as exc:
                if self.connected:
                    log.warning(
                        "bus lost Redis; subscribers get what was missed from the log when"
                        " it is back: %s",
                        exc,
                        extra={"node": self.node},
                    )
                self.connected, down = False, True
                await asyncio.sleep(RETRY)
            except Exception:  # a bug must not end the reading: start over from the log
                log.exception(
                    "bus reader failed; reading on from the log", extra={"node": self.node}
                )
                self.connected, down = False, True
                await asyncio.sleep(RETRY)

    def _taken(self, stream: str, entry_id: str, partition: bytes) -> None:
        """Another node took a partition (its `taken` entry): the tenants of it read the
        log after what was delivered here."""
        try:
            p = int(partition)
        except ValueError as exc:
            self._unreadable(stream, entry_id, exc)
            return
        self._order.read_log_of(frozenset({p}))

    def _unreadable(self, stream: str, entry_id: str, exc: Exception) -> None:
        """An entry that is not a committed event of a node (another program writing to the
        stream, another version): skipped; a real event lost so shows as a `seq` gap, which
        the log fills. Logged at most every 10 s, with how many were skipped meanwhile."""
        self.skipped += 1
        now = time.monotonic()
        if now - self._skipped_logged >= 10.0:
            self._skipped_logged = now
            log.warning(
                "cannot read bus entry %s of %s (%s: %s); skipped (%d so far)",
                entry_id, stream, type(exc).__name__, exc, self.skipped,
                extra={"node": self.node},
            )  # fmt: skip

    async def _send(self) -> None:
        assert self._redis is not None
        while True:
            if not self._unsent:
                self._wake.clear()
                await self._wake.wait()
            batch = [self._unsent[i] for i in range(min(len(self._unsent), 1000))]
            dropped = self._dropped
            try:
                # One MULTI/EXEC: a batch cut off by a lost connection was added whole or
                # not at all, so sending it again adds no part of it twice.
                await self._redis.transaction(partial(add_entries, batch))
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError):
                await asyncio.sleep(RETRY)  # kept, sent again when Redis is back
                continue
            # Entries given up meanwhile were the oldest, i.e. some of this batch's.
            for _ in range(len(batch) - min(len(batch), self._dropped - dropped)):
                self._unsent.popleft()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _ms(entry_id: str) -> int:
    return int(entry_id.split("-", 1)[0])


async def read_nodes(redis: Redis) -> list[dict[str, Any]]:
    """Every node's last heartbeat (fresh ones only: the keys expire)."""
    keys = [k async for k in redis.scan_iter(match=NODE_KEY + "*", count=1000)]
    values = await redis.mget(keys) if keys else []
    nodes = [json.loads(v) for v in values if v]
    return sorted(nodes, key=lambda n: str(n.get("node_id")))
