"""Operations: structured logging, Prometheus metrics, health and readiness."""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from bisect import bisect_left
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import Any

import orjson
from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.samples import Sample


class ReadinessProbe:
    """The database check of `/readyz`: one ping at a time, its answer shared by every
    caller that asks meanwhile.

    A ping runs on a reader thread and goes on there after its caller gave up (a timeout
    cancels the wait, not the query). A probe per request would let a load balancer or a
    deploy script polling a slow database stack ping after ping on the readers, in front
    of the hub's own reads, and keep the node "not ready" long after the database
    recovered. Here a slow database costs one query in flight, however often it is asked.
    """

    def __init__(self, ping: Callable[[], Awaitable[None]], timeout: float = 5.0) -> None:
        self._ping = ping
        self._timeout = timeout
        self._running: asyncio.Task[bool] | None = None

    async def ok(self) -> bool:
        """Whether the database answered within the timeout (the ping in flight, if any)."""
        if self._running is None or self._running.done():
            self._running = asyncio.create_task(self._probe())
        # A caller that goes away (its client disconnected) leaves the ping to the others.
        return await asyncio.shield(self._running)

    async def _probe(self) -> bool:
        try:
            await asyncio.wait_for(self._ping(), self._timeout)
        except Exception:  # any failure: not ready (the store logs its own errors)
            return False
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and any `extra` fields."""

    _skip = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for k, v in record.__dict__.items():
            if k not in self._skip:
                out[k] = v
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(out, default=str).decode()


class TextFormatter(logging.Formatter):
    """Readable lines for a terminal: time, level, logger, message, then `key=value` fields."""

    _skip = JsonFormatter._skip

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = [
            f"{k}={_text_value(v)}" for k, v in record.__dict__.items() if k not in self._skip
        ]
        if not fields:
            return line
        head, sep, tail = line.partition("\n")  # a traceback stays below the fields
        return f"{head}  {' '.join(fields)}{sep}{tail}"


def _text_value(v: Any) -> str:
    if not isinstance(v, str):
        return orjson.dumps(v, default=str).decode()
    return v if v and not any(c in v for c in ' "=') else orjson.dumps(v).decode()


def setup_logging(level: str = "info", fmt: str = "auto") -> None:
    """JSON logs, or readable ones on a terminal (`log_format = "auto"`)."""
    handler = logging.StreamHandler(sys.stderr)
    pretty = fmt == "pretty" or (fmt == "auto" and sys.stderr.isatty())
    if pretty:
        handler.setFormatter(TextFormatter())
    else:
        handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("uvicorn.access", "uvicorn.error", "websockets"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


class AuthMetrics:
    """Credential checks and the attempts refused before one (brute-force limits)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.checks = Counter(
            "callhook_auth_checks",
            "Credential checks made (via: wsi = Argon2, api = key lookup)",
            ["via"],
            registry=registry,
        )
        self.refused = Counter(
            "callhook_auth_refused",
            "Attempts refused before any check (via: wsi, api, ingest; reason: rate-limited, busy)",
            ["via", "reason"],
            registry=registry,
        )
        self.hash_peak = Gauge(
            "callhook_auth_hash_peak", "Most Argon2 checks ever run at once", registry=registry
        )


INGEST_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class IngestMetrics:
    """Phone requests accepted (by tenant and event) and their latency, as plain numbers.

    Counted for every phone request on the event loop, where prometheus_client's Counter
    and Histogram take a lock for each increment (~2 µs a request); exposed as the same
    families when scraped (`callhook_events_ingested`, `callhook_ingest_seconds`).
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self._counts: dict[tuple[str, str], list[float]] = {}  # [count, created]
        self._buckets = [0] * (len(INGEST_BUCKETS) + 1)  # the last one: over every bound
        self._sum = 0.0
        self._created = time.time()
        registry.register(self)

    def observe(self, tenant: str, event: str, seconds: float) -> None:
        entry = self._counts.get((tenant, event))
        if entry is None:
            entry = self._counts[(tenant, event)] = [0, time.time()]
        entry[0] += 1
        self._buckets[bisect_left(INGEST_BUCKETS, seconds)] += 1  # the first bound >= it
        self._sum += seconds

    def describe(self) -> list[Metric]:
        return list(self._families(False))

    def collect(self) -> Iterator[Metric]:
        return self._families(True)

    def _families(self, values: bool) -> Iterator[Metric]:
        # Copies first: a scrape may run in a worker thread while the loop counts on.
        counts = list(self._counts.items()) if values else []
        buckets, total = list(self._buckets), self._sum
        ingested = CounterMetricFamily(
            "callhook_events_ingested", "Phone requests accepted", labels=["tenant", "event"]
        )
        for (tenant, event), (n, created) in counts:
            ingested.add_metric([tenant, event], n, created=created)
        yield ingested
        latency = HistogramMetricFamily(
            "callhook_ingest_seconds", "Phone request to durable acknowledgement"
        )
        if values:
            cumulative, running = [], 0
            for bound, n in zip((*map(repr, INGEST_BUCKETS), "+Inf"), buckets, strict=True):
                running += n
                cumulative.append((bound, float(running)))  # `le` as prometheus_client spells it
            latency.add_metric([], cumulative, total)
            latency.samples.append(Sample("callhook_ingest_seconds_created", {}, self._created))
        yield latency


class Metrics:
    """The hub's Prometheus metrics, on a registry of its own (one per hub)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.auth = AuthMetrics(r)
        self.ingest = IngestMetrics(r)
        self.events_appended = Counter(
            "callhook_events_appended",
            "Canonical events committed to the log",
            ["topic"],
            registry=r,
        )
        self.started = Gauge("callhook_start_time_seconds", "Start time", registry=r)
        self.fast_path = Gauge(
            "callhook_ingest_fast_path",
            "1 when phone GETs are answered on the HTTP protocol's fast path, 0 through ASGI",
            registry=r,
        )
        self.correlation_failures = Counter(
            "callhook_correlation_failures",
            "Phone reports the correlator failed on, stored raw as device_events/action_url",
            ["tenant"],
            registry=r,
        )
        self.started.set(time.time())

        # Labelled children, looked up once: `labels()` costs more than the increment.
        self._appended: dict[str, Any] = {}

    def ingested(self, tenant: str, event: str, seconds: float) -> None:
        """A phone request acknowledged `seconds` after it was read."""
        self.ingest.observe(tenant, event, seconds)

    def appended(self, events: Iterable[Any]) -> None:
        """Canonical events committed (anything with a `topic`): counted per topic first,
        so a batch costs one locked increment per topic, not one per event."""
        counts: dict[str, int] = {}
        for ev in events:
            topic = ev.topic
            counts[topic] = counts.get(topic, 0) + 1
        for topic, n in counts.items():
            child = self._appended.get(topic)
            if child is None:
                child = self._appended[topic] = self.events_appended.labels(topic)
            child.inc(n)
