"""One subscriber's WSI session, whatever carries it (raw listener or `/ws` over ASGI).

Commands are handled in arrival order. Most complete synchronously inside the read
callback; the few that wait on something (auth, replay, snapshot) run in one short-lived
task per session that then drains whatever arrived meanwhile, so there is never a task per
message and never a task for an idle connection.

Resume without gap or duplicate (`since_seq`): the new entries go into the index first and
live events for the session are buffered; the log is replayed page by page; then the buffer
is flushed minus the events the replay already covered (same filter, seq <= last replayed).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

import orjson

from callhook.directory import Tenant
from callhook.events import Event
from callhook.wsi import replay
from callhook.wsi.frames import text_frame
from callhook.wsi.permissions import (
    Entry,
    Principal,
    Refused,
    grant,
    ignored_queues,
    revoke,
    still_allowed,
)
from callhook.wsi.protocol import (
    OK,
    PONG,
    Auth,
    Ping,
    ProtocolError,
    Subscribe,
    Unsubscribe,
    error_reply,
    parse,
)
from callhook.wsi.router import EntryFilter

if TYPE_CHECKING:
    from callhook.wsi.service import WsiService

log = logging.getLogger("callhook.wsi")

MAX_ERRORS = 10  # consecutive error replies before the client is dropped as garbage
MAX_INBOX = 32  # commands waiting behind a slow one (auth, replay)
MAX_INBOX_BYTES = 256 * 1024
MAX_ENTRIES = 50_000  # subscription entries per session
_NO_ENTRIES: frozenset[Entry] = frozenset()

# Close codes (RFC 6455 §7.4.1)
POLICY = 1008
GOING_AWAY = 1001
TRY_AGAIN_LATER = 1013
INVALID_DATA = 1007
INTERNAL_ERROR = 1011


class Outgoing:
    """One committed event, serialised once for every subscriber it goes to."""

    __slots__ = ("event", "frame", "payload")

    def __init__(self, event: Event) -> None:
        self.event = event
        self.payload = event.wire_bytes()
        self.frame = text_frame(self.payload)


class Session:
    """Protocol state of one subscriber; subclasses say how bytes reach the client."""

    __slots__ = (
        "address",
        "busy",
        "closed",
        "entries",
        "errors",
        "floor",
        "inbox",
        "inbox_bytes",
        "last_seq",
        "principal",
        "replay",
        "replay_bytes",
        "replay_pos",
        "service",
        "task",
        "ticks",
    )

    def __init__(self, service: WsiService, address: str) -> None:
        self.service = service
        self.address = address
        self.principal: Principal | None = None
        self.entries = _NO_ENTRIES
        self.errors = 0
        self.busy = False
        self.inbox: deque[bytes] | None = None
        self.inbox_bytes = 0
        self.task: asyncio.Task[None] | None = None
        self.replay: list[Outgoing] | None = None  # live events held back while replaying
        self.replay_bytes = 0
        self.replay_pos: int | None = None  # how far the replay has read the log
        self.last_seq = 0  # last event seq handed to the transport
        # The log position a replay reached: a live event at or below it was the replay's
        # to send (on a cluster, another node's event can reach the bus after the log).
        self.floor = 0
        self.closed = False
        self.ticks = 0

    # transport hooks -------------------------------------------------------------------
    def send(self, payload: bytes) -> None:
        """Queue a reply or replayed event after everything queued before."""
        raise NotImplementedError

    def deliver(self, out: Outgoing) -> bool:
        """Queue a live event; False when the client is over its byte budget."""
        raise NotImplementedError

    async def wait_writable(self) -> None:
        """Return once the client has read enough of what was queued (replay pacing)."""
        raise NotImplementedError

    def close(self, code: int, reason: str) -> None:
        raise NotImplementedError

    def close_slow(self, failed_seq: int) -> None:
        """Disconnect a client that cannot keep up, telling it where to resume.

        Everything queued before the close frame still reaches the client, so it resumes
        just before the event that did not fit, or where the replay had got to.
        """
        if self.closed:
            return
        resume = failed_seq - 1
        if self.replay is not None:
            resume = self.replay_pos if self.replay_pos is not None else resume
            if self.replay and self.replay_pos is None:
                resume = self.replay[0].event.seq - 1
        self.service.slow_consumers.inc()
        self.close(TRY_AGAIN_LATER, f"slow consumer: resume with since_seq {resume}")

    def tick(self) -> None:
        """Called by the service's shared timer: unauthenticated sessions do not linger."""
        if self.principal is None and not self.busy:  # an auth being checked is not idle
            self.ticks += 1
            if self.ticks >= 2:
                self.close(POLICY, "authentication timeout")

    def forget(self) -> None:
        """Leave the index; the transport is gone or going."""
        self.closed = True
        if self.principal is not None and self.entries:
            self.service.router.remove(self.principal.tenant, self, self.entries)
        self.entries = _NO_ENTRIES
        self.service.sessions.discard(self)
        task = self.task
        if task is not None and task is not asyncio.current_task():
            task.cancel()

    def recheck(self, tenant: Tenant | None, stored_hash: str | None) -> None:
        """After a directory change: close a session whose account is gone or whose password
        changed (1008, with the reason), and narrow subscriptions to what is now allowed.
        `stored_hash` None: not checked (a dashboard ticket has no password)."""
        who = self.principal
        if who is None or self.closed:
            return
        if tenant is None:
            self.close(POLICY, "tenant deleted")
        elif who.extension is not None and not tenant.is_extension(who.extension):
            self.close(POLICY, f"extension {who.extension} deleted")
        elif stored_hash is not None and stored_hash != who.credential:
            self.close(POLICY, "password changed: log in again")
        else:
            keep = still_allowed(who, tenant, self.entries)
            gone = self.entries - keep
            if gone:
                self.service.router.remove(who.tenant, self, gone)
                self.entries = keep

    def hold(self, out: Outgoing) -> bool:
        """Buffer a live event during replay; False when the buffer is already over budget."""
        assert self.replay is not None
        if self.replay_bytes > self.service.max_queue_bytes:
            return False
        self.replay.append(out)
        self.replay_bytes += len(out.frame)
        return True

    # commands --------------------------------------------------------------------------
    def on_message(self, data: bytes) -> None:
        """One complete client message."""
        if self.closed:
            return
        if self.busy:
            if self.inbox is None:
                self.inbox = deque()
            if len(self.inbox) >= MAX_INBOX or self.inbox_bytes + len(data) > MAX_INBOX_BYTES:
                self.close(POLICY, "too many commands in flight")
                return
            self.inbox.append(data)
            self.inbox_bytes += len(data)
            return
        work = self._process(data)
        if work is not None:
            self.busy = True
            self.task = asyncio.get_running_loop().create_task(self._drain(work))

    async def _drain(self, work: Coroutine[Any, Any, None]) -> None:
        try:
            await work
            while self.inbox and not self.closed:
                data = self.inbox.popleft()
                self.inbox_bytes -= len(data)
                nxt = self._process(data)
                if nxt is not None:
                    await nxt
        except Exception:
            log.exception("wsi command failed", extra={"peer": self.address})
            self.close(INTERNAL_ERROR, "internal error")
        finally:
            self.busy = False
            self.task = None
            self.inbox = None
            self.inbox_bytes = 0

    def _ok(self, payload: bytes) -> None:
        self.errors = 0
        self.send(payload)

    def _fail(self, reply: bytes) -> None:
        self.send(reply)
        self.errors += 1
        if self.errors >= MAX_ERRORS:
            self.close(POLICY, "too many invalid commands")

    def _process(self, data: bytes) -> Coroutine[Any, Any, None] | None:
        cmd = parse(data)
        if isinstance(cmd, ProtocolError):
            self._fail(error_reply(cmd.message))
        elif isinstance(cmd, Auth):
            if self.principal is None:
                return self._auth(cmd)
            self._fail(error_reply("already authenticated"))
        elif self.principal is None:
            self._fail(error_reply("not authenticated: send auth first"))
        elif isinstance(cmd, Ping):
            self._ok(PONG)
        elif isinstance(cmd, Subscribe):
            return self._subscribe(self.principal, cmd)
        elif isinstance(cmd, Unsubscribe):
            gone = revoke(self.entries, cmd)
            if gone:
                self.service.router.remove(self.principal.tenant, self, gone)
                self.entries = self.entries - gone
            self._ok(OK)
        return None

    async def _auth(self, cmd: Auth) -> None:
        result = await self.service.auth.authenticate(cmd, self.address)
        if self.closed:
            return
        if isinstance(result, bytes):
            self._fail(result)
        else:
            self.principal = result
            self._ok(OK)

    def _subscribe(self, who: Principal, cmd: Subscribe) -> Coroutine[Any, Any, None] | None:
        tenant = self.service.tenants.get(who.tenant)
        if tenant is None:
            self._fail(error_reply("tenant no longer exists"))
            return None
        granted = grant(who, tenant, cmd)
        if isinstance(granted, Refused):
            self._fail(error_reply(granted.reason))  # refused: nothing changes
            return None
        new = granted - self.entries
        if len(self.entries) + len(new) > MAX_ENTRIES:
            self._fail(error_reply(f"too many subscriptions (limit {MAX_ENTRIES})"))
            return None
        catch_up = cmd.since_seq is not None or cmd.snapshot
        if catch_up:
            self.replay = []  # from now on live events wait until the catch-up is sent
            self.replay_pos = cmd.since_seq
        if new:
            self.service.router.add(who.tenant, self, new)
            self.entries = self.entries | new
        ignored = ignored_queues(who, tenant, cmd)
        self._ok(OK if not ignored else orjson.dumps({"status": 0, "ignored_queues": ignored}))
        return self._catch_up(who, cmd, granted) if catch_up else None

    async def _catch_up(self, who: Principal, cmd: Subscribe, granted: frozenset[Entry]) -> None:
        wanted = EntryFilter(granted)
        now_wanted, seen = wanted, self.entries
        subscribed = self.entries  # a directory change (recheck) may narrow it meanwhile
        last = cmd.since_seq
        try:
            if last is not None:
                keys = wanted.keys
                while not self.closed:
                    rows = await replay.read_page(self.service.log, who.tenant, last, keys)
                    if self.closed:
                        break
                    if self.entries is not seen:
                        seen = self.entries
                        now_wanted = EntryFilter(granted & seen)
                    for row in rows:
                        if now_wanted(row.key, row.extensions, row.queue):
                            self.send(row.body)
                            self.last_seq = row.seq
                    if rows:
                        last = self.replay_pos = rows[-1].seq
                    if len(rows) < replay.PAGE:
                        break
                    await self.wait_writable()
            if cmd.snapshot and not self.closed:
                self.send(await self.service.snapshot(who, self.entries))
        finally:
            if last is not None:
                self.floor = max(self.floor, last)
            held, self.replay, self.replay_bytes = self.replay or [], None, 0
            allowed = EntryFilter(self.entries) if self.entries is not subscribed else None
            for out in held:
                if self.closed:
                    break
                ev = out.event
                if allowed is not None and not allowed(ev.key, ev.extensions, ev.queue):
                    continue  # held before a directory change took it away
                if last is not None and ev.seq <= last and wanted(ev.key, ev.extensions, ev.queue):
                    continue  # already sent by the replay
                if not self.deliver(out):
                    self.close_slow(ev.seq)
