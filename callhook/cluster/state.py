"""Presence and open calls on a cluster node, for any tenant.

The owner of a tenant's partition has them live in its correlator; any other node reads
the snapshots that owner commits with every pass (the `sessions` and `presence` tables)
and answers from a correlator restored from them, for this one question. Never from an
empty local correlator: a node that does not own the tenant knows nothing of its calls.
"""

from __future__ import annotations

from collections.abc import Callable

from callhook.cluster.owner import Owner
from callhook.correlate import Correlator
from callhook.flow import TenantState
from callhook.store import CorrelationState


class ClusterState:
    """callhook.flow.StateView of a cluster node."""

    def __init__(
        self, owner: Owner, stored: CorrelationState, blank: Callable[[], Correlator]
    ) -> None:
        self.owner = owner
        self.stored = stored
        self.blank = blank  # a new, empty correlator with the node's settings

    async def of(self, tenant: str) -> TenantState:
        if self.owner.live(tenant):
            return self.owner.correlator
        sessions, presence = await self.stored.load([tenant])
        view = self.blank()
        view.restore(sessions, presence)
        return view
