"""Prometheus metrics of the delivery service, on the hub's registry."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge

RESULTS = ("succeeded", "retry", "failed")


class DeliveryMetrics:
    """Attempts by endpoint kind and result, and what waits in memory."""

    def __init__(self, registry: CollectorRegistry | None, depth: Callable[[], int]) -> None:
        r = registry if registry is not None else CollectorRegistry()
        attempts = Counter(
            "callhook_webhook_attempts",
            "Delivery attempts (webhooks and Call Events) by kind and result",
            ["kind", "result"],
            registry=r,
        )
        # Children bound once: this runs for every attempt.
        self._attempts = {
            (kind, result): attempts.labels(kind, result)
            for kind in ("webhook", "call_event")
            for result in RESULTS
        }
        queued = Gauge(
            "callhook_webhook_queued", "Deliveries queued in memory, all endpoints", registry=r
        )
        queued.set_function(lambda: float(depth()))
        self.disabled = Counter(
            "callhook_webhook_endpoints_disabled",
            "Endpoints disabled by the hub (410 Gone, or failing for disable_after)",
            registry=r,
        )

    def attempt(self, kind: str, result: str, latency: float) -> None:
        # No latency histogram: observe() costs more than the rest of this per attempt;
        # every attempt's latency is in the delivery log (and the dashboard's health view).
        child = self._attempts.get((kind, result))
        if child is not None:
            child.inc()
