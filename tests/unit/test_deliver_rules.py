"""Which endpoints an event goes to: webhook filters and Call Events rules."""

from __future__ import annotations

from typing import Any

import pytest

from callhook.deliver import rules
from callhook.events import Event


def _webhook(eid: str = "w", **kw: Any) -> rules.Endpoint:
    return rules.build(endpoint_id=eid, tenant="acme", kind="webhook", url="http://x/", **kw)


def _rule(eid: str, ext: str, event: str, **kw: Any) -> rules.Endpoint:
    return rules.build(endpoint_id=eid, tenant="acme", kind="call_event", url="http://x/",
                       extension=ext, event=event, **kw)  # fmt: skip


def _event(key: str, exts: tuple[str, ...] = ("101",), tenant: str = "acme", **body: Any) -> Event:
    return Event(tenant, key, body, extensions=exts)


@pytest.mark.parametrize(
    ("filters", "event", "matches"),
    [
        ({}, _event("call_start"), True),
        ({}, _event("queue_status", ()), True),
        ({"topics": frozenset({"cdr_events"})}, _event("call_start"), False),
        ({"topics": frozenset({"cdr_events"})}, _event("call_cdr"), True),
        ({"keys": frozenset({"call_ended"})}, _event("call_start"), False),
        ({"keys": frozenset({"call_ended"})}, _event("call_ended"), True),
        ({"extensions": frozenset({"102"})}, _event("call_start", ("101",)), False),
        ({"extensions": frozenset({"102"})}, _event("call_start", ("101", "102")), True),
        ({"extensions": frozenset({"102"})}, _event("trunk_connected", ()), False),
        (
            {"topics": frozenset({"extension_events"}), "keys": frozenset({"call_start"})},
            _event("call_start"),
            True,
        ),
    ],
)
def test_webhook_filters(filters: dict[str, Any], event: Event, matches: bool) -> None:
    assert rules.webhook_matches(_webhook(**filters), event) is matches


def test_index_matches_by_tenant_key_and_extension() -> None:
    index = rules.Index(
        [
            _webhook("w1"),
            _webhook("w-off", enabled=False),
            _rule("r-in", "101", "dial_in"),
            _rule("r-out", "102", "dial_out"),
            _rule("r-hang", "101", "hangup"),
            _rule("r-off", "101", "dial_in", enabled=False),
            rules.build(endpoint_id="other", tenant="globex", kind="webhook", url="http://x/"),
        ]
    )
    start = _event(
        "call_start", ("101", "102"), caller="sip:102@acme", callee="sip:101@acme", direction="ext"
    )
    got = {(ep.endpoint_id, flow) for ep, flow in index.match(start)}
    assert got == {("w1", ""), ("r-in", "IN"), ("r-out", "OUT")}
    ended = _event("call_ended", ("101", "102"), caller="sip:102@acme", callee="sip:101@acme")
    assert {ep.endpoint_id for ep, _ in index.match(ended)} == {"w1", "r-hang"}
    assert index.get("r-off") is not None  # known (for the API), never matched


def test_disabled_by_the_hub_still_matches_so_deliveries_are_held() -> None:
    ep = _webhook("w", disabled_reason="gone")
    assert not ep.active and ep.status == "disabled"
    assert [e.endpoint_id for e, _ in rules.Index([ep]).match(_event("call_start"))] == ["w"]


def test_public_view_masks_secrets() -> None:
    ep = _webhook(secrets=("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",))
    view = ep.public()
    assert view["secrets"] == ["whsec_MfKQ..."]
    assert "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" not in repr(view)
    assert ep.signing_keys  # decoded once
