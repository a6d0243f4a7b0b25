"""A node's four brute-force limits ([auth] in the config), in-process or cluster-wide."""

from __future__ import annotations

from dataclasses import dataclass

from callhook.bus import clustered
from callhook.config import AuthConfig
from callhook.limits import Limiter
from callhook.limits.local import LocalLimiter
from callhook.limits.shared import SharedLimiter, SharedLimits


@dataclass
class Limits:
    """API key failures and unknown ingest tokens per source; WSI login failures per
    account and per source."""

    api: Limiter
    ingest: Limiter
    wsi_account: Limiter
    wsi_source: Limiter
    shared: SharedLimits | None = None  # a cluster's counters in Redis

    async def start(self) -> None:
        if self.shared is not None:
            await self.shared.start()

    async def stop(self) -> None:
        if self.shared is not None:
            await self.shared.stop()


def node_limits(auth: AuthConfig, bus: str, node: str) -> Limits:
    """Counters in this process for one node; in Redis (the bus's server) for a cluster."""
    table = {
        "api": auth.api_max_failures_per_source,
        "ingest": auth.ingest_max_unknown_tokens_per_source,
        "wsi-account": auth.wsi_max_failures_per_account,
        "wsi-source": auth.wsi_max_failures_per_source,
    }
    if not clustered(bus):
        local = {kind: LocalLimiter(limit, auth.window) for kind, limit in table.items()}
        return Limits(local["api"], local["ingest"], local["wsi-account"], local["wsi-source"])
    shared = SharedLimits(bus, node)
    one = {kind: SharedLimiter(kind, limit, auth.window, shared) for kind, limit in table.items()}
    return Limits(one["api"], one["ingest"], one["wsi-account"], one["wsi-source"], shared)
