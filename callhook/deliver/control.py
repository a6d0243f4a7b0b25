"""Endpoint management for the API: create, change, delete, enable/disable, redeliver, replay.

Every change is written through the single writer, then the in-memory index is reloaded so
the outbox hook sees it for the next events. Targets are checked against the SSRF guard
here (with DNS) and again on every send.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from callhook import fields as field_rules
from callhook.deliver import rules, signing, targets
from callhook.deliver.rules import Endpoint, Kind
from callhook.deliver.service import DeliveryService
from callhook.errors import Conflict, NotFound, Unprocessable
from callhook.events import new_id

REPLAYABLE = ("failed", "held", "succeeded")


async def check_target(svc: DeliveryService, url: str) -> None:
    try:
        await targets.check_url(url, svc.settings.server.allow_private_targets)
    except targets.TargetRefused as exc:
        raise Unprocessable(str(exc), code="target-refused", field="url") from None


def check_fields(tenant: str, kind: Kind, fields: dict[str, Any], svc: DeliveryService) -> None:
    """422 for values the pydantic schema cannot judge alone (names of keys, extensions)."""
    checks: list[tuple[str, str, Callable[[str], str]]] = [
        ("secrets", "secret", field_rules.check_secret),
        ("topics", "topics", field_rules.check_topic),
        ("keys", "keys", field_rules.check_key),
    ]
    for name, shown, check in checks:
        for value in fields.get(name, ()):
            try:
                check(value)
            except ValueError as exc:
                raise Unprocessable(str(exc), field=shown) from None
    if kind == "webhook":
        return
    event = fields.get("event")
    if event is not None:
        try:
            fields["event"] = field_rules.check_call_event(event)
        except ValueError as exc:
            raise Unprocessable(str(exc), field="event") from None
    ext = fields.get("extension")
    t = svc.tenant(tenant)
    if ext is not None and t is not None and not t.is_extension(ext):
        raise Unprocessable(f"tenant {tenant!r} has no extension {ext!r}", field="extension")


def owned(svc: DeliveryService, tenant: str, kind: Kind, endpoint_id: str) -> Endpoint:
    ep = svc.index.get(endpoint_id)
    if ep is None or ep.tenant != tenant or ep.kind != kind:
        what = "webhook" if kind == "webhook" else "call event rule"
        raise NotFound(f"no {what} {endpoint_id!r}", code="unknown-endpoint")
    return ep


async def create(
    svc: DeliveryService, tenant: str, kind: Kind, fields: dict[str, Any]
) -> tuple[Endpoint, list[str]]:
    """Returns the endpoint and its secrets in full (shown this once)."""
    if kind == "webhook" and not fields.get("secrets"):
        fields["secrets"] = (signing.new_secret(),)
    check_fields(tenant, kind, fields, svc)
    await check_target(svc, fields["url"])
    now = svc.clock()
    ep = rules.build(endpoint_id=new_id(), tenant=tenant, kind=kind, created_at=now,
                     updated_at=now, **fields)  # fmt: skip
    await svc.store.insert_endpoint(ep)
    await svc.reload()
    svc.on_change()  # other nodes (a cluster) reload theirs
    return ep, list(ep.secrets)


async def update(
    svc: DeliveryService, tenant: str, kind: Kind, endpoint_id: str, fields: dict[str, Any]
) -> Endpoint:
    ep = owned(svc, tenant, kind, endpoint_id)
    if ep.source == "config":
        raise Conflict("declared in the config file: change it there", code="config-managed")
    enabled = fields.pop("enabled", None)
    check_fields(tenant, kind, fields, svc)
    if "url" in fields and fields["url"] != ep.url:
        await check_target(svc, fields["url"])
    new = rules.build(**{**_fields_of(ep), **fields, "updated_at": svc.clock()})
    await svc.store.update_endpoint(new)
    await svc.reload()
    svc.on_change()  # other nodes (a cluster) reload theirs
    if enabled is not None and enabled != ep.enabled:
        new = await set_enabled(svc, tenant, kind, endpoint_id, enabled)
    return new


def _fields_of(ep: Endpoint) -> dict[str, Any]:
    return {f: getattr(ep, f) for f in ep.__dataclass_fields__ if f != "signing_keys"}


async def delete(svc: DeliveryService, tenant: str, kind: Kind, endpoint_id: str) -> None:
    ep = owned(svc, tenant, kind, endpoint_id)
    if ep.source == "config":
        raise Conflict("declared in the config file: remove it there", code="config-managed")
    svc.dispatcher.drop(endpoint_id)
    await svc.store.delete_endpoint(endpoint_id)
    await svc.reload()
    svc.on_change()  # other nodes (a cluster) reload theirs


async def set_enabled(
    svc: DeliveryService, tenant: str, kind: Kind, endpoint_id: str, enabled: bool
) -> Endpoint:
    """Enable: clears a disable by the hub too. Disable: pending deliveries are held."""
    ep = owned(svc, tenant, kind, endpoint_id)
    now = svc.clock()
    if enabled and ep.disabled_reason == rules.BAD_SECRET:
        raise Conflict(
            "its stored secret is not valid and nothing is sent unsigned: set a new secret",
            code="bad-secret",
        )
    if enabled:
        new = replace(ep, enabled=True, disabled_reason="", health="ok", failing_since=None)
    else:
        new = replace(ep, enabled=False)
        svc.dispatcher.drop(endpoint_id)
        await svc.recorder.flush()
    new = replace(new, updated_at=now)
    await svc.store.update_endpoint(new, hold_at=None if enabled else now)
    await svc.reload()
    svc.on_change()  # other nodes (a cluster) reload theirs
    if enabled:
        await svc.requeued(endpoint_id)
    return new


async def redeliver(svc: DeliveryService, tenant: str, delivery_id: str) -> dict[str, Any]:
    now = svc.clock()
    endpoint_id = await svc.store.requeue_one(tenant, delivery_id, now)
    if endpoint_id is None:
        raise NotFound(f"no delivery {delivery_id!r}", code="unknown-delivery")
    ep = svc.index.get(endpoint_id)
    if ep is None or not ep.active:
        raise Conflict("the endpoint is disabled: enable it first", code="endpoint-disabled")
    queue = svc.dispatcher.queue(endpoint_id)
    known = queue.items.get(delivery_id)
    if known is not None:  # waiting for a retry: make it due now
        handle = queue.timers.pop(delivery_id, None)
        if handle is not None:
            handle.cancel()
            known.next_at = now
            known.schedule_base = known.attempts
            queue.arm(known)
    elif svc.claims is not None:
        await svc.requeued(endpoint_id)  # a node claims it like any due delivery
    else:
        items = await svc.store.load_items([delivery_id])
        svc.dispatcher.add_now(items)
    return {"id": delivery_id, "status": "pending"}


async def replay(
    svc: DeliveryService,
    tenant: str,
    kind: Kind,
    endpoint_id: str,
    *,
    since: float,
    until: float | None,
    statuses: list[str],
) -> int:
    """Requeue the endpoint's deliveries created in [since, until] with those statuses."""
    ep = owned(svc, tenant, kind, endpoint_id)
    if not ep.active:
        raise Conflict("the endpoint is disabled: enable it first", code="endpoint-disabled")
    for s in statuses:
        if s not in REPLAYABLE:
            raise Unprocessable(f"cannot replay status {s!r}", field="statuses")
    now = svc.clock()
    await svc.recorder.flush()
    n = await svc.store.requeue_range(
        endpoint_id, since=since, until=until or now, statuses=statuses, now=now
    )
    if n:
        await svc.requeued(endpoint_id)
    return n
