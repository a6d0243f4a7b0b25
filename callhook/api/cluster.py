"""GET /api/v1/cluster: the nodes sharing this hub's database and bus (admin key)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from callhook.api.auth import Principal, hub_of, principal, require_admin
from callhook.api.common import ERRORS

router = APIRouter(tags=["cluster"], responses=ERRORS)

Who = Annotated[Principal, Depends(principal)]


class Node(BaseModel):
    node_id: str
    started_at: float = Field(description="Unix time the node started")
    seen_at: float = Field(description="Unix time of its last heartbeat (every second)")
    bus_connected: bool
    lag_ms: int = Field(description="how far its reading of the bus is behind the newest entry")
    unsent: int = Field(description="events waiting for the bus to be reachable again")
    received: int = Field(description="events of other nodes read from the bus")
    filled_from_log: int = Field(description="events read from the log to fill bus gaps")


class Partition(BaseModel):
    partition: int = Field(description="0-15: a tenant's partition is crc32(name) mod 16")
    owner: str | None = Field(description="the node holding its lease now (null: none)")
    last_owner: str = Field(description='the node that held it last ("": never owned)')
    epoch: int = Field(description="fencing epoch: one higher each time it changes hands")
    expires_in: float = Field(description="seconds its lease has left unless renewed")
    inbox_lag: int | None = Field(description="inbox rows not processed yet (null: unknown)")


class DeliveryBacklog(BaseModel):
    claimed_by: str = Field(description='the node holding them ("": not claimed yet)')
    pending: int = Field(description="deliveries not finished (due, waiting for a retry, or"
                         " behind an earlier one of their call)")  # fmt: skip
    due: int = Field(description="of those, the ones whose time has come")
    oldest_due_s: float | None = Field(description="seconds the oldest due one has waited")


class ClusterStatus(BaseModel):
    clustered: bool = Field(description="false: one node on the in-process bus")
    node_id: str = Field(description="the node that answered")
    bus: str = Field(description="`memory`, or the Redis URL without its password")
    bus_reachable: bool
    nodes: list[Node] = Field(description="nodes whose heartbeat is at most 5 s old")
    leases_reachable: bool = Field(description="false: PostgreSQL did not answer")
    partitions: list[Partition] = Field(description="who owns each partition ([]: one node)")
    deliveries: list[DeliveryBacklog] | None = Field(
        description="webhook deliveries pending, by the node holding them (null: one node,"
        " or PostgreSQL did not answer)"
    )


@router.get(
    "/cluster",
    summary="The nodes sharing this hub's database and bus: alive, bus lag, partition owners",
    response_model=ClusterStatus,
)
async def cluster_status(request: Request, who: Who) -> dict[str, Any]:
    require_admin(who)
    return await hub_of(request).cluster_status()
