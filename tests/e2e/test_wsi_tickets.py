"""The dashboard's one-time tickets open a tenant's live channel on /ws, once."""

from __future__ import annotations

import json

from tests.support.hub import Hub
from tests.support.wsi import open_ws, recv_json


async def _auth(hub: Hub, ticket: str) -> dict[str, object]:
    ws = await open_ws(hub.port, "/ws")
    try:
        await ws.send(json.dumps({"command": "auth", "name": "acme", "password": ticket}))
        return await recv_json(ws)
    finally:
        await ws.close()


async def test_a_ticket_opens_the_live_channel_once(shared_hub: Hub) -> None:
    status, body = shared_hub.api("POST", "/api/v1/tenants/acme/dashboard-ticket")
    assert status == 201, body
    assert body["ws_path"] == "/ws"
    assert await _auth(shared_hub, body["ticket"]) == {"status": 0}
    assert (await _auth(shared_hub, body["ticket"]))["status"] == -1  # used up


async def test_a_ticket_of_another_tenant_is_refused(shared_hub: Hub) -> None:
    status, body = shared_hub.api("POST", "/api/v1/tenants/globex/dashboard-ticket")
    assert status == 201, body
    assert (await _auth(shared_hub, body["ticket"]))["status"] == -1
