"""What one client may hold of the hub's listeners: open connections, per source and in total.

Both listeners (the main HTTP port and the WSI port) admit each new connection here before
reading from it. Over a cap the connection is answered at once (`503` on HTTP) and closed,
so the process never runs out of file descriptors and `accept` keeps working for phones.
What is shed is counted (`callhook_connections_shed_total{reason}`) and logged, at most
once every few seconds per reason.
"""

from __future__ import annotations

import logging
import resource
import time
from collections.abc import Callable
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge

log = logging.getLogger("callhook.connections")

FD_RESERVE = 64  # at least this many descriptors (or an eighth) are kept for the database,
# log files, webhook connections and the listeners themselves
LOG_EVERY = 10.0  # seconds between two log lines about the same kind of shedding


class Closable(Protocol):
    def is_closing(self) -> bool: ...


def raise_file_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit; return the figure now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):  # some systems cap below the hard limit
            pass
    return int(soft)


class ConnectionLimits:
    """Counts open connections per source address and in total; sheds over the caps."""

    def __init__(
        self,
        max_open: int,
        max_per_source: int,
        registry: CollectorRegistry | None = None,
        *,
        unlimited_source: Callable[[str], bool] | None = None,
    ) -> None:
        """`unlimited_source`: sources held only to `max_open` (trusted reverse proxies)."""
        self.unlimited_source = unlimited_source
        self.max_open = max_open
        self.max_per_source = max_per_source
        self.open: dict[Closable, str] = {}
        self.per_source: dict[str, int] = {}
        r = registry if registry is not None else CollectorRegistry()
        self.m_shed = Counter(
            "callhook_connections_shed",
            "Connections refused or closed by a limit ([connections] in the config)",
            ["reason"],
            registry=r,
        )
        Gauge("callhook_connections_open", "Open client connections", registry=r).set_function(
            lambda: len(self.open)
        )
        self._logged: dict[str, tuple[float, int]] = {}
        self._purged = 0.0

    def cap_to_file_limit(self, nofile: int) -> None:
        """Keep the total below what the process may open, with room for everything else."""
        self.max_open = max(1, min(self.max_open, nofile - max(FD_RESERVE, nofile // 8)))

    def admit(self, conn: Closable, source: str) -> str | None:
        """Count a new connection in; or say why not (`max_open`, `max_per_source`)."""
        reason = self._over(source)
        now = time.monotonic()
        if reason is not None and now - self._purged > 1.0:
            # A connection handed to uvicorn's WebSocket protocol (a path other than /ws)
            # is not released when it closes: look for those, at most once a second (a
            # scan per refused connection would make a flood at the cap cost more).
            self._purged = now
            self._purge()
            reason = self._over(source)
        if reason is not None:
            self.shed(reason, source)
            return reason
        self.open[conn] = source
        self.per_source[source] = self.per_source.get(source, 0) + 1
        return None

    def release(self, conn: Closable) -> None:
        source = self.open.pop(conn, None)
        if source is None:
            return
        left = self.per_source[source] - 1
        if left:
            self.per_source[source] = left
        else:
            del self.per_source[source]

    def shed(self, reason: str, source: str, **extra: Any) -> None:
        """Count and (now and then) log a connection refused or closed by a limit."""
        self.m_shed.labels(reason).inc()
        now = time.monotonic()
        last, skipped = self._logged.get(reason, (0.0, 0))
        if now - last < LOG_EVERY:
            self._logged[reason] = (last, skipped + 1)
            return
        self._logged[reason] = (now, 0)
        log.warning(
            "connection shed: %s",
            reason,
            extra={"reason": reason, "peer": source, "also_shed_since_last": skipped, **extra},
        )

    def _over(self, source: str) -> str | None:
        if len(self.open) >= self.max_open:
            return "max_open"
        if self.per_source.get(source, 0) >= self.max_per_source and not (
            self.unlimited_source is not None and self.unlimited_source(source)
        ):
            return "max_per_source"
        return None

    def _purge(self) -> None:
        for conn in [c for c in self.open if c.is_closing()]:
            self.release(conn)
