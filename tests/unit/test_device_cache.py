"""Which phone requests write the phone's device row: a new phone, a change in what it says
of itself, or a minute since its row was written; not every request."""

from __future__ import annotations

from dataclasses import replace

from callhook.directory import Tenant
from callhook.ingest.model import PhoneEvent
from callhook.pipeline import DEVICE_REFRESH_SECONDS, DeviceCache, device_of

ACME = Tenant(name="acme", tenant_id="1", domain="acme.example.com")
T0 = 1_700_000_000.0


def report(at: float = T0, **variables: str) -> PhoneEvent:
    v = {"mac": "000B82112233", "local": "101", "product": "GXP2170", **variables}
    return PhoneEvent("acme", "incoming_call", v, source_ip="10.0.0.7", received_at=at)


def test_a_new_phone_is_written_then_not_again_until_it_changes_or_a_minute_passes() -> None:
    cache = DeviceCache()
    first = cache.seen(ACME, report())
    assert first == device_of(ACME, report())
    assert cache.seen(ACME, report(T0 + 1)) is None
    assert cache.seen(ACME, report(T0 + 2, program_version="1.0.11.3")) is not None
    assert cache.seen(ACME, report(T0 + 3, program_version="1.0.11.3")) is None
    assert cache.seen(ACME, report(T0 + 4, program_version="1.0.11.3", language="de")) is not None
    later = cache.seen(
        ACME, report(T0 + 4 + DEVICE_REFRESH_SECONDS, program_version="1.0.11.3", language="de")
    )
    assert later is not None and later.seen_at == T0 + 4 + DEVICE_REFRESH_SECONDS


def test_a_new_address_or_sign_off_is_written_and_no_mac_is_no_device() -> None:
    cache = DeviceCache()
    assert cache.seen(ACME, report()) is not None
    moved = replace(report(T0 + 1), source_ip="10.0.0.8")
    assert cache.seen(ACME, moved) is not None
    signed_off = replace(report(T0 + 2), source_ip="10.0.0.8", event="sign_off")
    row = cache.seen(ACME, signed_off)
    assert row is not None and row.extension == ""
    assert cache.seen(ACME, PhoneEvent("acme", "incoming_call", {"local": "101"})) is None


def test_a_row_that_was_not_stored_is_written_with_the_next_report() -> None:
    cache = DeviceCache()
    row = cache.seen(ACME, report())
    assert row is not None
    cache.forget(row)
    assert cache.seen(ACME, report(T0 + 1)) is not None
