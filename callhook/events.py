"""The canonical event: PortSIP's message format plus callhook's `topic`, `seq`, `event_id`.

Wire format: PortSIP's "Going Real-Time with PortSIP PBX Pub/Sub". `time` is a string of
Unix seconds, SIP addresses are `sip:EXT@domain`, ids are numeric strings.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import orjson

# topic -> keys it carries (docs/wsi.md). Keys are unique across topics.
TOPICS: dict[str, tuple[str, ...]] = {
    "extension_events": (
        "extension_register",
        "call_start",
        "call_established",
        "call_ended",
        "call_noanswer",
        "call_fail",
        "call_reroute",
        "call_hold",
        "call_unhold",
        "target_add",
        "target_ringing",
        "target_noanswer",
        "target_fail",
        "target_ended",
        "dnd_on",
        "dnd_off",
        "forward_on",
        "forward_off",
    ),
    "device_events": (
        "off_hook",
        "on_hook",
        "boot_completed",
        "syslog_on",
        "syslog_off",
        "action_url",
    ),
    "cdr_events": ("call_cdr",),
    "queue_events": ("queue_status", "queue_member_state"),
    "trunk_events": ("trunk_connected", "trunk_disconnected"),
    "webhook_events": ("endpoint_failing", "endpoint_disabled", "endpoint_recovered"),
}

KEY_TOPIC: dict[str, str] = {key: topic for topic, keys in TOPICS.items() for key in keys}


def topic_of(key: str) -> str:
    """The topic a key belongs to; KeyError for an unknown key."""
    return KEY_TOPIC[key]


class _IdGen:
    """Numeric string ids, unique and roughly time-ordered (snowflake-like, like PortSIP's)."""

    _EPOCH_MS = 1_600_000_000_000

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_ms = 0
        self._n = 0
        self._node = int.from_bytes(os.urandom(2), "big") & 0x3FF

    def next(self) -> str:
        return self.take(1)[0]

    def take(self, count: int) -> list[str]:
        """`count` new ids, with one lock and one clock reading for all (a batch's)."""
        out = []
        node = self._node << 12
        with self._lock:
            now = int(time.time() * 1000)
            for _ in range(count):
                ms = now
                if ms <= self._last_ms:
                    ms = self._last_ms
                    self._n += 1
                    if self._n >= 4096:  # 4096 ids per millisecond; borrow from the next one
                        ms += 1
                        self._n = 0
                else:
                    self._n = 0
                self._last_ms = ms
                out.append(str(((ms - self._EPOCH_MS) << 22) | node | self._n))
        return out


_ids = _IdGen()


def new_id() -> str:
    """A new numeric-string id (session_id, cdr_id, event_id, tenant_id ...)."""
    return _ids.next()


def new_ids(count: int) -> list[str]:
    """`count` new ids, as many new_id() calls would give (cheaper for a batch)."""
    return _ids.take(count)


@dataclass(slots=True)
class Event:
    """One canonical event. `body` holds the PortSIP message fields (incl. `event_type`).

    `extensions` and `queue` say whom the event concerns, for routing and permissions; they
    are not part of the wire body. The event log never changes an event it is given: what
    it committed comes back as new values (`stored`), with `seq`, `event_id` and the bytes
    it stored.
    """

    tenant: str
    key: str
    body: dict[str, Any]
    extensions: tuple[str, ...] = ()
    queue: str | None = None
    session_id: str | None = None
    seq: int = 0
    event_id: str = ""
    created_at: float = field(default_factory=time.time)
    meta: dict[str, Any] = field(default_factory=dict)  # pipeline-internal, never stored
    wire_stored: bytes | None = None  # the bytes the log stored (set on committed values)

    @property
    def topic(self) -> str:
        return KEY_TOPIC.get(self.key, "device_events")

    def wire(self) -> dict[str, Any]:
        """The JSON object sent to subscribers and stored in the log."""
        out = dict(self.body)
        out["event_type"] = self.key
        out["topic"] = self.topic
        out["seq"] = self.seq
        out["event_id"] = self.event_id
        return out

    def wire_bytes(self) -> bytes:
        """wire() as JSON; once committed, the bytes the log stored (serialised once)."""
        stored = self.wire_stored
        return stored if stored is not None else orjson.dumps(self.wire())

    def stored(self, seq: int, event_id: str) -> Event:
        """This event as the log commits it: a new value with `seq`, `event_id` and the
        wire bytes (serialised here, once, for the log, subscribers and webhooks)."""
        key = self.key
        # wire() of the new value, spelled out (once per event on the writer thread)
        wire = orjson.dumps({**self.body, "event_type": key,
                             "topic": KEY_TOPIC.get(key, "device_events"), "seq": seq,
                             "event_id": event_id})  # fmt: skip
        return Event(self.tenant, key, self.body, self.extensions, self.queue,
                     self.session_id, seq, event_id, self.created_at, self.meta, wire)  # fmt: skip


def unix_time(ts: float | None = None) -> str:
    """PortSIP's `time`: Unix seconds as a string."""
    return str(int(time.time() if ts is None else ts))


def sip_uri(number: str, domain: str) -> str:
    """`sip:102@domain` for an extension number."""
    return f"sip:{number}@{domain}"
