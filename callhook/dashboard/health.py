"""Delivery health per endpoint, for the dashboard: success rate, latency, last error.

A read-only summary of the delivery log of `callhook/deliver` over a recent window, from
`Deliveries.recent_health` (deliveries created in the window, their attempts newest
first). Success is a 2xx answer, as `deliver/backoff.classify` decides.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from callhook.store.records import AttemptRow

MAX_ATTEMPTS = 20_000  # per tenant and window: bounds the work of one dashboard refresh


@dataclass(slots=True)
class EndpointHealth:
    """One endpoint's deliveries and attempts in the window."""

    endpoint_id: str
    deliveries: dict[str, int] = field(default_factory=dict)  # status -> count
    attempts: int = 0
    succeeded_attempts: int = 0
    success_rate: float | None = None  # share of attempts answered 2xx; None: no attempt
    latency_avg_ms: float | None = None
    latency_p95_ms: float | None = None
    last_attempt_at: float | None = None
    last_error: str | None = None  # of the latest failed attempt
    last_error_at: float | None = None
    last_failed_delivery: str | None = None  # a delivery to redeliver: its latest failure
    _latencies: list[float] = field(default_factory=list, repr=False)

    def public(self) -> dict[str, Any]:
        out = asdict(self)
        del out["_latencies"]
        return out


def _ok(status_code: int | None) -> bool:
    return status_code is not None and 200 <= status_code < 300


def _error_text(status_code: int | None, error: str) -> str:
    if error:
        return error
    return f"HTTP {status_code}" if status_code is not None else "no response"


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(0.95 * len(ordered)) - 1)]


class HealthSource(Protocol):
    """The delivery log's recent rows (store.Deliveries)."""

    async def recent_health(
        self, tenant: str, since: float, max_attempts: int
    ) -> tuple[list[tuple[str, str, int]], list[AttemptRow]]: ...


async def endpoint_health(
    source: HealthSource, tenant: str, since: float, max_attempts: int = MAX_ATTEMPTS
) -> dict[str, EndpointHealth]:
    """Health of every endpoint of `tenant` with deliveries created at or after `since`."""
    out: dict[str, EndpointHealth] = {}

    def entry(endpoint_id: str) -> EndpointHealth:
        h = out.get(endpoint_id)
        if h is None:
            h = out[endpoint_id] = EndpointHealth(endpoint_id)
        return h

    counts, rows = await source.recent_health(tenant, since, max_attempts)
    for endpoint_id, status, n in counts:
        entry(endpoint_id).deliveries[status] = n
    for endpoint_id, delivery_id, status, at, code, latency, error in rows:
        h = entry(endpoint_id)
        first = h.attempts == 0  # rows come newest first
        h.attempts += 1
        if latency is not None:
            h._latencies.append(float(latency))
        if first:
            h.last_attempt_at = at
        if _ok(code):
            h.succeeded_attempts += 1
            continue
        if h.last_error_at is None:
            h.last_error = _error_text(code, error)
            h.last_error_at = at
        if h.last_failed_delivery is None and status != "succeeded":
            h.last_failed_delivery = delivery_id
    for h in out.values():
        if h.attempts:
            h.success_rate = h.succeeded_attempts / h.attempts
        if h._latencies:
            h.latency_avg_ms = round(sum(h._latencies) / len(h._latencies), 1)
            h.latency_p95_ms = round(_p95(h._latencies), 1)
    return out
