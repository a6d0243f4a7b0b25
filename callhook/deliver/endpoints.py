"""Endpoints declared in the config file, and the plan that applies them to the store.

Rules and webhooks declared in the config file are applied idempotently at start, like the
directory: marked `source='config'`, found again by a key derived from
what identifies them, updated in place (keeping their id and delivery log), and removed
when they disappear from the file. Entries made over the API are left alone.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from callhook.config import CallEventConfig, Settings, WebhookConfig
from callhook.deliver import rules
from callhook.deliver.rules import Endpoint
from callhook.events import new_id
from callhook.store import EndpointPlan


def _from_call_event(tenant: str, c: CallEventConfig) -> dict[str, Any]:
    return {
        "tenant": tenant,
        "kind": "call_event",
        "url": c.url,
        "enabled": c.enabled,
        "secrets": (c.secret,) if c.secret else (),
        "extension": c.extension,
        "event": c.event,
        "method": c.method,
        "format": c.format,
        "notes": c.notes,
        "custom_data": tuple(sorted(c.custom_data.items())),
    }


def _from_webhook(tenant: str, w: WebhookConfig) -> dict[str, Any]:
    secrets = ([w.secret] if w.secret else []) + [s for s in w.secrets if s != w.secret]
    return {
        "tenant": tenant,
        "kind": "webhook",
        "url": w.url,
        "enabled": w.enabled,
        "secrets": tuple(secrets),
        "topics": frozenset(w.topics),
        "keys": frozenset(w.keys),
        "extensions": frozenset(w.extensions),
        "schedule": tuple(w.schedule) if w.schedule is not None else None,
    }


def declared(settings: Settings) -> dict[tuple[str, str], dict[str, Any]]:
    """(tenant, config key) -> endpoint fields, for every rule and webhook in the file."""
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for t in settings.tenant:
        seen: Counter[str] = Counter()
        entries: Iterable[tuple[str, dict[str, Any]]] = [
            (f"call_event|{c.extension}|{c.event}|{c.method}|{c.url}", _from_call_event(t.name, c))
            for c in t.call_event
        ] + [(f"webhook|{w.url}", _from_webhook(t.name, w)) for w in t.webhook]
        for ident, fields in entries:
            seen[ident] += 1
            out[(t.name, f"{ident}#{seen[ident]}")] = fields
    return out


def config_plan(settings: Settings, now: float) -> EndpointPlan:
    """What makes the stored config-declared endpoints match the file (a store plan)."""
    wanted = declared(settings)

    def plan(
        existing: dict[tuple[str, str], Endpoint],
    ) -> tuple[list[str], list[tuple[Endpoint, str]], list[Endpoint]]:
        deletes = [ep.endpoint_id for k, ep in existing.items() if k not in wanted]
        inserts: list[tuple[Endpoint, str]] = []
        updates: list[Endpoint] = []
        for (tenant, key), fields in wanted.items():
            old = existing.get((tenant, key))
            if old is None:
                ep = rules.build(endpoint_id=new_id(), source="config", created_at=now,
                                 updated_at=now, **fields)  # fmt: skip
                inserts.append((ep, key))
                continue
            candidate = rules.build(
                endpoint_id=old.endpoint_id,
                source="config",
                created_at=old.created_at,
                updated_at=old.updated_at,
                health=old.health,
                failing_since=old.failing_since,
                # The file's secret is valid (the config loader checked it): a stored one
                # that was not stops holding deliveries.
                disabled_reason=""
                if old.disabled_reason == rules.BAD_SECRET
                else old.disabled_reason,
                **fields,
            )
            if candidate != old:
                updates.append(replace(candidate, updated_at=now))
        return deletes, inserts, updates

    return plan
