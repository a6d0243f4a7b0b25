"""The correlator against the simulator's day of calls (callhook.simulate): every flow the
simulated phones report (inbound, outbound, internal, ring group, transfers, hold, missed,
abandoned, a phone rebooting mid-call, DND/forwarding/registration toggles) must give exactly
one CDR per call with the expected status and talk time, and the expected presence."""

from __future__ import annotations

import pytest

from callhook.correlate import CorrelationSettings, Correlator
from callhook.directory import Extension, Tenant
from callhook.events import Event
from callhook.ingest.model import PhoneEvent
from callhook.simulate.scenarios import ScenarioConfig, generate
from callhook.simulate.verify import check

DEVICE_EVENTS = frozenset({"registration", "sign_off", "booting_completed"})


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_simulated_day_correlates_as_expected(seed: int) -> None:
    plan = generate(ScenarioConfig(phones=12, calls=150, seed=seed, speed=60.0))
    phones = {p.extension: p for p in plan.phones}
    exts = {e: Extension(e) for e in phones}
    tenant = Tenant("acme", "1", "acme.example.com", extensions=exts)
    base = now = 1_700_000_000.0

    def clock() -> float:
        return now

    hub = plan.hub_settings  # the run's windows, scaled to its speed
    settings = CorrelationSettings(
        merge_window=hub["merge_window"],
        session_timeout=hub["session_timeout"],
        min_ring_seconds=hub["min_ring_seconds"],
    )
    c = Correlator(lambda _name: tenant, settings, clock)
    out: list[Event] = []
    last_tick = now
    for step in sorted(plan.steps, key=lambda s: s.at):
        now = base + step.at / plan.speed  # the hub's clock is the wall clock of the run
        if now - last_tick >= 0.25:
            out += c.tick()
            last_tick = now
        phone = phones[step.phone]
        v = {"mac": phone.mac, "local": phone.extension}
        if step.event in DEVICE_EVENTS:
            v.update(phone_ip=phone.ip, product=phone.model, program_version=phone.firmware)
        v.update(dict(step.variables))
        out += c.feed(PhoneEvent("acme", step.event, v))
    now += 24 * 3600  # past every timeout: the rebooted phones' calls close
    out += c.tick()
    cdrs = [e.body for e in out if e.key == "call_cdr"]
    presence = {e: c.presence("acme", e) for e in phones}
    result = check(plan.calls, cdrs, plan.presence, presence)
    assert result.problems == []
    assert result.matched == len(plan.calls) == len(cdrs)
