"""The phone ingest metrics, kept as plain numbers, expose what prometheus_client's locked
Counter and Histogram would: the same families, samples and values."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from callhook.ops import INGEST_BUCKETS, IngestMetrics

SAMPLES = [
    ("acme", "dnd_on", 0.0004),
    ("acme", "dnd_on", 0.001),  # on a bound: counted in that bucket (le)
    ("acme", "incoming_call", 0.0031),
    ("beta", "incoming_call", 0.7),
    ("beta", "incoming_call", 4.0),  # over the last bound: +Inf only
]


def exposed(
    registry: CollectorRegistry,
) -> dict[str, set[tuple[str, tuple[tuple[str, str], ...], float]]]:
    text = generate_latest(registry).decode()
    return {
        f.name: {
            (s.name, tuple(sorted(s.labels.items())), round(s.value, 9))
            for s in f.samples
            if not s.name.endswith("_created")
        }
        | {
            (s.name, tuple(sorted(s.labels.items())), 0.0)
            for s in f.samples
            if s.name.endswith("_created")
        }
        for f in text_string_to_metric_families(text)
    }


def test_the_same_families_and_values_as_prometheus_client() -> None:
    ours = CollectorRegistry()
    metrics = IngestMetrics(ours)
    theirs = CollectorRegistry()
    counter = Counter(
        "callhook_events_ingested", "Phone requests accepted", ["tenant", "event"], registry=theirs
    )
    histogram = Histogram(
        "callhook_ingest_seconds",
        "Phone request to durable acknowledgement",
        buckets=INGEST_BUCKETS,
        registry=theirs,
    )
    for tenant, event, seconds in SAMPLES:
        metrics.observe(tenant, event, seconds)
        counter.labels(tenant, event).inc()
        histogram.observe(seconds)
    assert exposed(ours) == exposed(theirs)


def test_nothing_observed_yet() -> None:
    registry = CollectorRegistry()
    IngestMetrics(registry)
    families = exposed(registry)
    assert families["callhook_events_ingested"] == set()
    assert ("callhook_ingest_seconds_count", (), 0.0) in families["callhook_ingest_seconds"]
