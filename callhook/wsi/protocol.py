"""The PortSIP WSI command language: parse and validate client commands, build replies (pure).

Wire format: PortSIP's "Going Real-Time with PortSIP PBX Pub/Sub". Every command is a JSON
object with a `command`; every reply is `{"status":0}` or `{"error":...,"status":-1}`.
Additions (docs/wsi.md): `since_seq` and `snapshot` on subscribe, and `ping`.

`parse` never raises: anything a client can send yields a command or a `ProtocolError`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from callhook.events import KEY_TOPIC, TOPICS

MAX_COMMAND_BYTES = 64 * 1024  # larger frames get an error reply
_MAX_NAME = 128  # extension numbers, domains, tenant names, passwords
_MAX_LIST = 10_000
_MAX_SEQ = 2**63 - 1

OK = b'{"status":0}'
PONG = b'{"status":0,"pong":true}'


def error_reply(message: str) -> bytes:
    """`{"error":message,"status":-1}`, keys in PortSIP's order."""
    return orjson.dumps({"error": message, "status": -1})


AUTH_FAILED = error_reply("name or password error")  # PortSIP's exact reply


@dataclass(frozen=True, slots=True)
class ProtocolError:
    """A command that cannot be understood; `message` goes to the client as is."""

    message: str


@dataclass(frozen=True, slots=True)
class Auth:
    """`auth` by extension (`extension`@`domain`) or by tenant (`tenant` = the `name`)."""

    password: str
    extension: str | None = None
    domain: str | None = None
    tenant: str | None = None

    def account(self) -> str:
        """A stable account label for rate limiting and the verification cache."""
        if self.extension is not None:
            return f"ext:{self.extension}@{self.domain or ''}"
        return f"tenant:{self.tenant}"


@dataclass(frozen=True, slots=True)
class Subscribe:
    """`subscribe`: keys per topic, optional extension/queue filters (None = not given)."""

    topics: dict[str, frozenset[str]]
    extensions: tuple[str, ...] | None = None
    queues: tuple[str, ...] | None = None
    since_seq: int | None = None
    snapshot: bool = False


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    """`unsubscribe`: like subscribe; an omitted `topics` means every topic."""

    topics: dict[str, frozenset[str]] | None
    extensions: tuple[str, ...] | None = None
    queues: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class Ping:
    """`{"command":"ping"}`: answered `{"status":0,"pong":true}`."""


Command = Auth | Subscribe | Unsubscribe | Ping


class _Invalid(Exception):
    pass


def parse(data: str | bytes) -> Command | ProtocolError:
    """One client frame -> a command, or the error to send back. Never raises."""
    if len(data) > MAX_COMMAND_BYTES:
        return ProtocolError(f"frame too large (limit {MAX_COMMAND_BYTES} bytes)")
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError:
        return ProtocolError("malformed JSON")
    if not isinstance(obj, dict):
        return ProtocolError("expected a JSON object")
    command = obj.get("command")
    if not isinstance(command, str):
        return ProtocolError("missing command")
    handler = _COMMANDS.get(command.strip().lower())
    if handler is None:
        return ProtocolError(f"unknown command: {command[:40]}")
    try:
        return handler(obj)
    except _Invalid as exc:
        return ProtocolError(str(exc))


def _name(obj: dict[str, Any], field: str, *, required: bool = False) -> str | None:
    value = obj.get(field)
    if value is None:
        if required:
            raise _Invalid(f"{field} is required")
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)  # extension numbers written as JSON numbers
    if not isinstance(value, str):
        raise _Invalid(f"{field} must be a string")
    if len(value) > _MAX_NAME:
        raise _Invalid(f"{field} too long")
    return value


def _auth(obj: dict[str, Any]) -> Auth:
    password = _name(obj, "password", required=True)
    assert password is not None
    domain = _name(obj, "domain")
    extension = _name(obj, "extension") or _name(obj, "extension_number")
    if extension is not None:
        return Auth(password, extension=extension, domain=domain)
    username = _name(obj, "username")  # PortSIP v22 spelling
    if username is not None:
        number, at, user_domain = username.partition("@")
        if at:
            return Auth(password, extension=number, domain=user_domain)
        if domain is not None:
            return Auth(password, extension=username, domain=domain)
        return Auth(password, tenant=username)
    name = _name(obj, "name")
    if name is not None:
        return Auth(password, tenant=name)
    raise _Invalid("auth needs extension and domain, or name")


def _strings(obj: dict[str, Any], field: str) -> tuple[str, ...] | None:
    value = obj.get(field)
    if value is None:
        return None
    if not isinstance(value, list) or len(value) > _MAX_LIST:
        raise _Invalid(f"{field} must be a list of strings")
    out = []
    for item in value:
        if isinstance(item, int) and not isinstance(item, bool):
            item = str(item)
        if not isinstance(item, str) or not item or len(item) > _MAX_NAME:
            raise _Invalid(f"{field} must be a list of strings")
        out.append(item)
    return tuple(dict.fromkeys(out))  # drop duplicates, keep order


def _topics(obj: dict[str, Any], *, required: bool) -> dict[str, frozenset[str]] | None:
    value = obj.get("topics")
    if value is None:
        if required:
            raise _Invalid("topics is required")
        return None
    if not isinstance(value, list) or not value:
        raise _Invalid("topics must be a non-empty list of {topic, keys}")
    out: dict[str, set[str]] = {}
    for item in value:
        if not isinstance(item, dict) or not isinstance(item.get("topic"), str):
            raise _Invalid("topics must be a non-empty list of {topic, keys}")
        topic = item["topic"]
        if topic not in TOPICS:
            raise _Invalid(f"unknown topic: {topic[:40]}")
        keys = item.get("keys")
        if keys is None or keys == []:
            chosen = set(TOPICS[topic])  # no keys: every key of the topic
        elif isinstance(keys, list) and all(isinstance(k, str) for k in keys):
            for k in keys:
                if KEY_TOPIC.get(k) != topic:
                    raise _Invalid(f"unknown key for {topic}: {k[:40]}")
            chosen = set(keys)
        else:
            raise _Invalid(f"keys of {topic} must be a list of strings")
        out.setdefault(topic, set()).update(chosen)
    return {t: frozenset(k) for t, k in out.items()}


def _subscribe(obj: dict[str, Any]) -> Subscribe:
    topics = _topics(obj, required=True)
    assert topics is not None
    since = obj.get("since_seq")
    if since is not None and (
        not isinstance(since, int) or isinstance(since, bool) or not 0 <= since <= _MAX_SEQ
    ):
        raise _Invalid("since_seq must be a non-negative integer")
    snapshot = obj.get("snapshot", False)
    if not isinstance(snapshot, bool):
        raise _Invalid("snapshot must be true or false")
    return Subscribe(
        topics,
        extensions=_strings(obj, "extensions"),
        queues=_strings(obj, "queues"),
        since_seq=since,
        snapshot=snapshot,
    )


def _unsubscribe(obj: dict[str, Any]) -> Unsubscribe:
    return Unsubscribe(
        _topics(obj, required=False),
        extensions=_strings(obj, "extensions"),
        queues=_strings(obj, "queues"),
    )


_COMMANDS: dict[str, Callable[[dict[str, Any]], Command]] = {
    "auth": _auth,
    "subscribe": _subscribe,
    "unsubscribe": _unsubscribe,
    "ping": lambda obj: Ping(),
}
