"""Schemas of canonical events published by PBXs and adapters (POST .../events).

Field names follow the message format of PortSIP's Pub/Sub guide; fields beyond the required ones
are kept as sent, so an adapter can forward what its PBX knows. Call events are correlated
(callhook/correlate/published.py): the hub writes their ids, times and parties, and keeps
the publisher's other fields on its event of the same key.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from callhook.events import TOPICS


class _Published(BaseModel):
    model_config = ConfigDict(extra="allow", str_max_length=1024)

    time: str | None = Field(default=None, pattern=r"^[0-9]{1,12}$")


Number = Annotated[str, StringConstraints(min_length=1, max_length=64)]


class ExtensionEvent(_Published):
    """extension_register, dnd_on/off, forward_on/off."""

    extension: Number
    registration_contacts: list[dict[str, Any]] | None = None
    removed_contacts: list[dict[str, Any]] | None = None
    forward_to: str | None = None


class CallEvent(_Published):
    """call_* and target_* events from a PBX that correlates calls itself."""

    call_id: str = Field(min_length=1, max_length=256)
    caller: Number
    callee: Number
    session_id: str | None = Field(default=None, max_length=64)
    direction: Literal["ext", "inbound", "outbound"] | None = None
    fail_code: int | None = Field(default=None, ge=100, le=699)


class HoldEvent(_Published):
    """call_hold / call_unhold: `aor` held (or resumed) the call, `peer_aor` is the other party."""

    call_id: str = Field(min_length=1, max_length=256)
    aor: Number
    peer_aor: Number | None = None
    session_id: str | None = Field(default=None, max_length=64)


class QueueStatus(_Published):
    """queue_status: the state of a call queue."""

    queue: Number
    waiting_calls: int = Field(default=0, ge=0)
    available_agents: int | None = Field(default=None, ge=0)
    longest_wait_seconds: int | None = Field(default=None, ge=0)


class QueueMemberState(_Published):
    """queue_member_state: an agent set ready or not ready."""

    queue: Number
    extension: Number
    state: Literal["ready", "not_ready", "paused", "logged_out"]


class TrunkEvent(_Published):
    """trunk_connected / trunk_disconnected."""

    trunk: Number
    reason: str | None = None


SCHEMAS: dict[str, type[_Published]] = {
    **dict.fromkeys(
        ("extension_register", "dnd_on", "dnd_off", "forward_on", "forward_off"), ExtensionEvent
    ),
    # call_* and target_* keys, as the event table has them
    **dict.fromkeys(
        (k for k in TOPICS["extension_events"] if k.startswith(("call_", "target_"))), CallEvent
    ),
    "call_hold": HoldEvent,
    "call_unhold": HoldEvent,
    "queue_status": QueueStatus,
    "queue_member_state": QueueMemberState,
    "trunk_connected": TrunkEvent,
    "trunk_disconnected": TrunkEvent,
}
