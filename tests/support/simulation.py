"""A hub tuned for `callhook simulate` runs, and the check of what it made of them."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from callhook.simulate import (
    ExpectedCall,
    PhoneState,
    SimulationResult,
    Verification,
    check,
    hub_settings,
    run_simulation,
)
from tests.support.hub import Hub

TOKEN = "gs-7f3a9c"
EVERY_FLOW = (
    "inbound=30,outbound=25,internal=12,ring_group=10,shared_line=4,blind_transfer=6,"
    "attended_transfer=4,"
    "hold=5,missed=6,abandoned=6,reboot=2,dnd=3,forward=2,registration=2"
)


def start_hub(tmp_path: Path, phones: int, speed: float, max_talk: float) -> Hub:
    """A hub whose tenant acme has extensions 101.. and whose correlation windows are
    scaled to `speed` (simulate.hub_settings)."""
    hub = Hub(tmp_path)
    text = hub.config_path.read_text()
    tuned = "".join(f"{k} = {v}\n" for k, v in hub_settings(speed, max_talk).items())
    extensions = "".join(
        f'\n[[tenant.extension]]\nnumber = "{n}"\npassword = "secret{n}"\n'
        for n in range(104, 101 + phones)
    )
    marker = '\n[[tenant]]\nname = "globex"'
    assert "tick_interval = 0.2\n" in text and marker in text
    text = text.replace("tick_interval = 0.2\n", "tick_interval = 0.2\n" + tuned)
    hub.config_path.write_text(text.replace(marker, extensions + marker))
    return hub.start()


def settle(hub: Hub, timeout: float) -> None:
    """Wait until the hub holds no open session (reboots close on session_timeout)."""
    deadline = time.monotonic() + timeout
    while True:
        status, body = hub.api("GET", "/api/v1/tenants/acme/calls?active=true")
        assert status == 200, body
        if not body["calls"] or time.monotonic() > deadline:
            assert body["calls"] == [], f"sessions left open: {body['calls'][:5]}"
            return
        time.sleep(0.3)


def verify(
    hub: Hub, calls: list[ExpectedCall], presence: dict[str, PhoneState], speed: float, talk: float
) -> Verification:
    settle(hub, hub_settings(speed, talk)["session_timeout"] + 20)
    cdrs = hub.all_events(key="call_cdr")
    status, body = hub.api("GET", "/api/v1/tenants/acme/presence")
    assert status == 200, body
    states = {x["extension"]: x for x in body["extensions"]}
    return check(calls, cdrs, presence, states)


async def simulated(
    tmp_path: Path, *, phones: int, speed: float, talk: float, **run: Any
) -> tuple[SimulationResult, Verification]:
    """Phones simulated in process against a hub tuned for them (`start_hub`), and the
    check of what the hub made of them; `run`: the rest of run_simulation's arguments."""
    hub = start_hub(tmp_path, phones=phones, speed=speed, max_talk=talk)
    try:
        result = await run_simulation(
            hub.base, TOKEN, phones=phones, speed=speed, max_talk=talk, **run
        )
        return result, verify(hub, result.calls, result.presence, speed, talk)
    finally:
        hub.stop()
