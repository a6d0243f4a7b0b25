"""A cluster node's intake: every report goes to the inbox, whatever node owns its tenant.

Phone ingest, Kamailio reports, REST publish and end-call hand their checked report to
`InboxIntake` (the cluster's `callhook.pipeline.Intake`). A phone is answered once its
report is committed in the inbox: its events do not exist yet (the tenant's owner makes
them next, usually within milliseconds), so the answer says `"queued": true` instead of
naming them. A REST call that answers with the committed events waits for the owner's
commit (`Replies`), at most `wait` seconds (then `504 owner-timeout`: the report is
stored and will be correlated; nothing is lost, the caller just does not see it yet).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import Any

import orjson

from callhook.cluster.partitions import partition_of
from callhook.directory import Tenant
from callhook.errors import HubError
from callhook.events import Event
from callhook.ingest.model import ParsedRequest
from callhook.pipeline import Marks
from callhook.store import StoreError
from callhook.store.postgres.inbox import NewEntry, PgInbox

log = logging.getLogger("callhook.cluster")

POLL = 0.25  # seconds between checks for replies, in case a notification is missed


class OwnerTimeout(HubError):
    """The report is stored, but its partition's owner did not correlate it in time."""

    status = 504
    code = "owner-timeout"


class OwnerFailed(HubError):
    """The report is stored, but its partition's owner could not process it."""

    status = 500
    code = "owner-failed"


@dataclass(frozen=True, slots=True)
class Receipt:
    """A report handed to the inbox: stored when `done` completes without error."""

    done: asyncio.Future[Any]

    def committed(self) -> tuple[Event, ...] | None:
        """() once stored (its events come later, from the owner); None if not stored."""
        d = self.done
        if not d.done() or d.cancelled() or d.exception() is not None:
            return None
        return ()


class Replies:
    """Callers waiting for the owner's commit of their entry (by entry id)."""

    def __init__(self, inbox: PgInbox) -> None:
        self.inbox = inbox
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._poller: asyncio.Task[None] | None = None

    def notified(self, entry_id: int) -> None:
        """A `callhook_done` notification: fetch the reply if someone here waits for it."""
        if entry_id in self._waiting:
            asyncio.get_running_loop().create_task(self._fetch([entry_id]))

    async def wait(self, entry_id: int, within: float) -> dict[str, Any]:
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[entry_id] = fut
        if self._poller is None or self._poller.done():
            self._poller = asyncio.create_task(self._poll())
        try:
            await self._fetch([entry_id])  # the owner may have been quicker than us
            return await asyncio.wait_for(asyncio.shield(fut), within)
        except TimeoutError:
            raise OwnerTimeout(
                f"stored, but not correlated within {within:g} s (the owner of its"
                " partition is busy or changing): it will be; read the event log"
            ) from None
        finally:
            self._waiting.pop(entry_id, None)

    async def _fetch(self, ids: list[int]) -> None:
        try:
            found = await self.inbox.replies(ids)
        except StoreError as exc:
            log.warning("reading inbox replies failed: %s", exc)
            return
        for entry_id, reply in found.items():
            fut = self._waiting.get(entry_id)
            if fut is not None and not fut.done():
                fut.set_result(reply)

    async def _poll(self) -> None:
        while self._waiting:
            await asyncio.sleep(POLL)
            if self._waiting:
                await self._fetch(list(self._waiting))

    async def stop(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller


class InboxIntake:
    """Reports to the inbox (callhook.pipeline.Intake for a cluster node)."""

    answers_with_events = False

    def __init__(self, inbox: PgInbox, replies: Replies, wait: float = 10.0) -> None:
        self.inbox = inbox
        self.replies = replies
        self.wait = wait

    def accept(
        self,
        tenant: Tenant,
        parsed: ParsedRequest,
        source_ip: str,
        marks: Marks | None = None,
        dedupe: str = "",
    ) -> tuple[list[Event], Receipt]:
        body = {
            "event": parsed.event,
            "event_name": parsed.event_name,
            "variables": parsed.variables,
            "pairs": parsed.pairs,
            "vendor": parsed.vendor,
            "hints": list(parsed.hints),
            "source_ip": source_ip,
            "marks": list(marks) if marks else None,
        }
        entry = NewEntry(
            partition_of(tenant.name), tenant.name, "phone", orjson.dumps(body), dedupe
        )
        try:
            done: asyncio.Future[Any] = self.inbox.submit(entry)
        except StoreError as exc:  # closed (shutting down): not stored
            done = asyncio.get_running_loop().create_future()
            done.set_exception(exc)
        return [], Receipt(done)

    async def publish(self, event: Event, dedupe: str = "") -> tuple[Event, ...]:
        body = {
            "key": event.key,
            "body": event.body,
            "extensions": list(event.extensions),
            "queue": event.queue,
            "session_id": event.session_id,
            "created_at": event.created_at,
        }
        reply = await self._through(event.tenant, "publish", body, dedupe)
        return () if reply is None else _events(reply)

    async def end_call(self, tenant: str, session_id: str) -> tuple[Event, ...] | None:
        reply = await self._through(tenant, "end_call", {"session_id": session_id}, "")
        if reply is None or not reply.get("found"):
            return None
        return _events(reply)

    async def _through(
        self, tenant: str, kind: str, body: dict[str, Any], dedupe: str
    ) -> dict[str, Any] | None:
        """Store an entry, then wait for the owner's reply (None: stored before)."""
        entry = NewEntry(
            partition_of(tenant), tenant, kind, orjson.dumps(body), dedupe, want_id=True
        )
        entry_id = await asyncio.shield(self.inbox.submit(entry))
        if entry_id is None:
            return None
        reply = await self.replies.wait(entry_id, self.wait)
        if reply.get("failed"):
            raise OwnerFailed(
                f"stored, but the owner of its partition could not process it (inbox entry"
                f" {entry_id}: its log says why)"
            )
        return reply


def _events(reply: dict[str, Any]) -> tuple[Event, ...]:
    """The committed events a reply names (tenant, key, seq and event_id; no body)."""
    return tuple(
        Event(tenant=e["tenant"], key=e["key"], body={}, seq=e["seq"], event_id=e["event_id"])
        for e in reply.get("events", ())
    )
