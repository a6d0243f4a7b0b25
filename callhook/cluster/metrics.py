"""A clustered node's bus and inbox owner, as Prometheus metrics (read at each scrape).

What `GET /api/v1/cluster` says of a node (its bus lag, events waiting for Redis, events
read from other nodes and from the log), plus what only its log said so far: the owner's
passes over the inbox, the ones that failed, and the inbox entries set aside (logged
whole, not correlated: each needs a person to look at it).
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from callhook.bus.redis import RedisBus
from callhook.cluster.owner import Owner


class ClusterCollector(Collector):
    """The counts `bus` and `owner` keep, read when Prometheus scrapes."""

    def __init__(self, bus: RedisBus, owner: Owner) -> None:
        self.bus = bus
        self.owner = owner

    def collect(self) -> Iterator[Metric]:
        bus, owner = self.bus, self.owner
        yield GaugeMetricFamily(
            "callhook_bus_connected", "1 while this node reads the bus (Redis)", bus.connected
        )
        yield GaugeMetricFamily(
            "callhook_bus_lag_ms",
            "how far this node's reading of the bus is behind the newest entry (ms)",
            max(bus.lag_ms, 0),
        )
        yield GaugeMetricFamily(
            "callhook_bus_unsent", "events of this node waiting for Redis to take them", bus.unsent
        )
        yield CounterMetricFamily(
            "callhook_bus_received", "events of other nodes read from the bus", bus.received
        )
        yield CounterMetricFamily(
            "callhook_bus_filled",
            "events read from the log instead (a gap on the bus, Redis away, a partition taken)",
            bus.filled,
        )
        yield CounterMetricFamily(
            "callhook_inbox_passes", "passes of the owner over its partitions' inbox", owner.passes
        )
        yield CounterMetricFamily(
            "callhook_inbox_pass_failures",
            "owner passes that did not commit (PostgreSQL away, a lease lost, a write refused):"
            " their entries are read again",
            owner.failures,
        )
        yield CounterMetricFamily(
            "callhook_inbox_set_aside",
            "inbox entries that could not be processed: logged whole ('inbox entry set"
            " aside') and consumed; alert on any increase",
            owner.set_aside,
        )
