"""Who may follow what (pure): subscribe -> entries or refusal; unsubscribe -> removals."""

from __future__ import annotations

import pytest

from callhook.directory import Extension, Queue, Tenant
from callhook.events import TOPICS
from callhook.wsi.permissions import (
    ALL,
    EXT,
    QUEUE,
    Entry,
    Principal,
    Refused,
    grant,
    ignored_queues,
    revoke,
    still_allowed,
)
from callhook.wsi.protocol import Subscribe, Unsubscribe

ACME = Tenant(
    name="acme",
    tenant_id="1",
    domain="acme.example.com",
    extensions={
        "101": Extension("101", groups=("sales",)),
        "102": Extension("102", groups=("sales", "night")),
        "103": Extension("103", groups=("support",)),
        "104": Extension("104", groups=("night",)),
        "105": Extension("105"),
    },
    queues={
        "8001": Queue("8001", members=("101", "102")),
        "8002": Queue("8002", managers=("103",)),
    },
    trunks=("carrier1",),
)
TENANT = Principal("acme")


def ext(n: str) -> Principal:
    return Principal("acme", n)


def sub(*topics: str, keys: tuple[str, ...] = (), **kw: object) -> Subscribe:
    chosen = {t: frozenset(keys) if keys else frozenset(TOPICS[t]) for t in topics}
    return Subscribe(chosen, **kw)  # type: ignore[arg-type]


def scopes(entries: frozenset[Entry] | Refused) -> set[tuple[str, str]]:
    assert not isinstance(entries, Refused), entries
    return {(scope, value) for _, scope, value in entries}


@pytest.mark.parametrize(
    ("who", "cmd", "expected"),
    [
        (ext("101"), sub("extension_events"), {(EXT, "101"), (EXT, "102")}),
        (ext("102"), sub("extension_events"), {(EXT, "101"), (EXT, "102"), (EXT, "104")}),
        (ext("103"), sub("extension_events"), {(EXT, "103")}),
        (ext("105"), sub("cdr_events"), {(EXT, "105")}),  # in no group: itself only
        (ext("101"), sub("extension_events", extensions=("102",)), {(EXT, "102")}),
        (ext("101"), sub("queue_events"), {(QUEUE, "8001")}),
        (ext("103"), sub("queue_events"), {(QUEUE, "8002")}),  # a manager
        (ext("104"), sub("queue_events"), set()),  # nothing to follow: not an error
        # Queues it may not follow are left out, not refused (PortSIP: "will not push").
        (ext("104"), sub("queue_events", queues=("8001",)), set()),
        (ext("101"), sub("queue_events", queues=("8001", "8002")), {(QUEUE, "8001")}),
        (TENANT, sub("extension_events"), {(ALL, "")}),
        (TENANT, sub("trunk_events"), {(ALL, "")}),
        (TENANT, sub("extension_events", extensions=("103", "999")), {(EXT, "103"), (EXT, "999")}),
        (TENANT, sub("queue_events", queues=("8009",)), {(QUEUE, "8009")}),
        (
            TENANT,
            sub("extension_events", "queue_events", extensions=("101",), queues=("8001",)),
            {(EXT, "101"), (QUEUE, "8001")},
        ),
    ],
)
def test_grants(who: Principal, cmd: Subscribe, expected: set[tuple[str, str]]) -> None:
    assert scopes(grant(who, ACME, cmd)) == expected


@pytest.mark.parametrize(
    ("who", "cmd", "reason"),
    [
        (ext("101"), sub("extension_events", extensions=("103",)), "extensions 103"),
        (ext("101"), sub("cdr_events", extensions=("101", "104", "105")), "extensions 104, 105"),
        (ext("101"), sub("trunk_events"), "topics trunk_events"),
        (ext("101"), sub("webhook_events", "trunk_events"), "topics trunk_events, webhook_events"),
        (
            ext("103"),
            sub("trunk_events", "extension_events", extensions=("101",)),
            "topics trunk_events; extensions 101",
        ),
    ],
)
def test_refusals_name_what_was_refused(who: Principal, cmd: Subscribe, reason: str) -> None:
    assert grant(who, ACME, cmd) == Refused("not permitted: " + reason)


def test_entries_carry_every_key_of_each_topic() -> None:
    entries = grant(ext("101"), ACME, sub("extension_events", "cdr_events"))
    assert not isinstance(entries, Refused)
    keys = {k for k, _, _ in entries}
    assert keys == set(TOPICS["extension_events"]) | {"call_cdr"}
    assert len(entries) == len(keys) * 2  # per key: 101 and 102


CURRENT = {
    ("call_start", EXT, "102"),
    ("call_start", ALL, ""),
    ("call_cdr", EXT, "102"),
    ("call_cdr", EXT, "103"),
    ("queue_status", QUEUE, "8001"),
}


@pytest.mark.parametrize(
    ("cmd", "left"),
    [
        (Unsubscribe(None), set()),
        (
            Unsubscribe({"cdr_events": frozenset({"call_cdr"})}),  # PortSIP's CDR example
            {"call_start/ext/102", "call_start/all/", "queue_status/queue/8001"},
        ),
        (
            # a tenant-wide entry is not narrowed by naming extensions
            Unsubscribe({"extension_events": frozenset({"call_start"})}, extensions=("102",)),
            {"call_start/all/", "call_cdr/ext/102", "call_cdr/ext/103", "queue_status/queue/8001"},
        ),
        (
            Unsubscribe({"cdr_events": frozenset({"call_cdr"})}, extensions=("103", "999")),
            {
                "call_start/ext/102",
                "call_start/all/",
                "call_cdr/ext/102",
                "queue_status/queue/8001",
            },
        ),
        (Unsubscribe(None, queues=("8001",)), set()),  # omitted extensions: all of them
        (
            Unsubscribe({"queue_events": frozenset({"queue_status"})}, queues=("8002",)),
            {f"{k}/{s}/{v}" for k, s, v in CURRENT},
        ),
    ],
)
def test_revoke(cmd: Unsubscribe, left: set[str]) -> None:
    remaining = CURRENT - revoke(CURRENT, cmd)
    assert {f"{k}/{s}/{v}" for k, s, v in remaining} == left


@pytest.mark.parametrize(
    ("who", "cmd", "ignored"),
    [
        (ext("101"), sub("queue_events", queues=("8001", "8002", "8003")), ["8002", "8003"]),
        (ext("104"), sub("queue_events", queues=("8001",)), ["8001"]),
        (ext("101"), sub("queue_events", queues=("8001",)), []),
        (ext("101"), sub("queue_events"), []),  # omitted: every queue it may follow
        (ext("101"), sub("cdr_events", queues=("8009",)), []),  # no queue topic asked
        (TENANT, sub("queue_events", queues=("8009",)), []),  # a tenant follows any queue
    ],
)
def test_ignored_queues(who: Principal, cmd: Subscribe, ignored: list[str]) -> None:
    assert ignored_queues(who, ACME, cmd) == ignored


def test_still_allowed_narrows_an_extension_to_its_present_peers_and_queues() -> None:
    who = Principal("acme", "101")
    entries = grant(
        who,
        ACME,
        Subscribe(
            {
                "extension_events": frozenset({"call_start"}),
                "queue_events": frozenset({"queue_status"}),
            }
        ),
    )
    assert isinstance(entries, frozenset)
    assert still_allowed(who, ACME, entries) == entries  # nothing changed
    moved = Tenant(
        "acme",
        "1",
        "acme.example.com",
        extensions={"101": Extension("101", groups=("sales",)), "102": Extension("102")},
        queues={"8001": Queue("8001", members=("102",))},
    )
    assert still_allowed(who, moved, entries) == {("call_start", EXT, "101")}
    # a tenant follows everything in it, whatever changed
    everything = grant(TENANT, ACME, Subscribe({"extension_events": frozenset({"call_start"})}))
    assert isinstance(everything, frozenset)
    assert still_allowed(TENANT, moved, everything) == everything


def test_principal_equality_ignores_the_credential() -> None:
    assert Principal("acme", "101", "hash-a") == Principal("acme", "101", "hash-b")
