"""Races and vendor quirks found by the simulator: reports overtaking each other within the
merge window (redial, blind transfer) and Snom phones' `$local` (always the callee)."""

from __future__ import annotations

from typing import Any

from callhook.correlate import CorrelationSettings, Correlator
from callhook.directory import Extension, Tenant
from callhook.events import Event
from callhook.ingest.action_url import parse_request
from callhook.ingest.model import PhoneEvent

T0 = 1_700_000_000.0
DOMAIN = "acme.example.com"
EXTENSIONS = ("101", "105", "108", "111", "121")


def uri(n: str) -> str:
    return f"sip:{n}@{DOMAIN}"


class Hub:
    """A tenant, a correlator on a fake clock, and every event it gave."""

    def __init__(self) -> None:
        self.now = T0
        exts = {n: Extension(n) for n in EXTENSIONS}
        self.tenant = Tenant("acme", "1", DOMAIN, extensions=exts)
        self.c = Correlator(lambda _n: self.tenant, CorrelationSettings(), lambda: self.now)
        self.log: list[Event] = []

    def at(self, t: float, event: str, **variables: str) -> list[str]:
        self.now = T0 + t
        self.log += self.c.tick()
        out = self.c.feed(PhoneEvent("acme", event, variables))
        self.log += out
        return [e.key for e in out]

    def snom(self, t: float, event_name: str, **variables: str) -> list[str]:
        """A Snom request through the real parser (it swaps what it can)."""
        self.now = T0 + t
        self.log += self.c.tick()
        query = "vendor=snom&" + "&".join(f"{k}={v}" for k, v in variables.items())
        pr = parse_request("GET", f"/ingest/t/{event_name}".encode(), query.encode())
        pe = PhoneEvent(
            "acme", pr.event, pr.variables, pr.pairs, pr.event_name, "", self.now, pr.vendor,
            pr.hints,
        )  # fmt: skip
        out = self.c.feed(pe)
        self.log += out
        return [e.key for e in out]

    def end(self) -> None:
        self.now += 24 * 3600
        self.log += self.c.tick()

    def cdrs(self) -> list[dict[str, Any]]:
        return [e.body for e in self.log if e.key == "call_cdr"]


def test_redial_within_merge_window_is_a_new_call() -> None:
    """111 calls 105, gives up, calls 101 at once; 101's ring overtakes 111's Outgoing."""
    h = Hub()
    h.at(0.0, "outgoing_call", local="111", remote="105", call_id="a1")
    h.at(0.1, "incoming_call", local="105", remote="111", call_id="b1")
    h.at(1.0, "terminate_call", local="111", remote="105", call_id="a1", duration="0")
    h.at(1.05, "missed_call", local="105", remote="111", call_id="b1")
    ring = h.at(3.0, "incoming_call", local="101", remote="111", call_id="c2")
    assert ring == ["call_start", "target_add", "target_ringing"]
    assert h.at(3.05, "outgoing_call", local="111", remote="101", call_id="a2") == []
    assert h.c.presence("acme", "101")["sessions"]
    assert h.at(6.0, "establish_call", local="101", remote="111", call_id="c2") == [
        "call_established"
    ]
    h.at(6.05, "establish_call", local="111", remote="101", call_id="a2")
    h.at(60.0, "terminate_call", local="101", remote="111", call_id="c2", duration="54")
    h.at(60.05, "terminate_call", local="111", remote="101", call_id="a2", duration="54")
    h.end()
    first, second = h.cdrs()
    assert (first["callee"], first["status"]) == (uri("105"), "abandoned")
    assert (second["caller"], second["callee"]) == (uri("111"), uri("101"))
    assert (second["status"], second["talk_seconds"], second["direction"]) == (
        "answered",
        54,
        "ext",
    )
    assert sorted(second["extensions"]) == ["101", "111"]
    assert not h.c.presence("acme", "101")["sessions"]


def test_ring_group_member_reporting_after_the_call_closed_still_joins_it() -> None:
    """The closed-session rule is for calls the caller's phone said went elsewhere only."""
    h = Hub()
    h.at(0.0, "incoming_call", local="101", remote="0711555", call_id="a")
    h.at(2.0, "terminate_call", local="101", remote="0711555", call_id="a")
    h.at(2.1, "missed_call", local="105", remote="0711555", call_id="b")
    h.end()
    assert len(h.cdrs()) == 1


def _blind_transfer(h: Hub, ring_at: float) -> None:
    h.at(0.0, "incoming_call", local="121", remote="0711555", call_id="a")
    h.at(1.0, "establish_call", local="121", remote="0711555", call_id="a")
    h.at(ring_at, "incoming_call", local="108", remote="0711555", call_id="b")
    h.at(ring_at + 0.1, "blind_transfer", local="121", remote="108", call_id="a")
    h.at(ring_at + 0.2, "terminate_call", local="121", remote="0711555", call_id="a", duration="3")
    h.at(ring_at + 3, "establish_call", local="108", remote="0711555", call_id="b")
    h.at(ring_at + 60, "terminate_call", local="108", remote="0711555", call_id="b", duration="57")
    h.end()


def test_blind_transfer_target_ringing_first_within_merge_window_keeps_its_leg() -> None:
    """Compressed: the target's ring joins the call before the transfer is known (taken for
    a late ring of the answered call); the transfer revives it, its answer and end count."""
    h = Hub()
    _blind_transfer(h, ring_at=4.0)
    (cdr,) = h.cdrs()
    assert (cdr["status"], cdr["talk_seconds"], cdr["end_reason"]) == ("answered", 57, "hangup")
    assert sorted(cdr["extensions"]) == ["108", "121"]
    keys = [(e.key, e.body.get("call_target")) for e in h.log if e.key.startswith("target_")]
    assert ("target_ringing", uri("108")) in keys
    assert ("target_ended", uri("108")) in keys
    assert ("target_noanswer", uri("108")) not in keys


def test_blind_transfer_target_ringing_first_after_merge_window_is_one_call() -> None:
    """The target's ring comes 0.1 s before the transfer report, long after the call began:
    it was a session of its own (two CDRs). It is held back, and the transfer takes it in."""
    h = Hub()
    _blind_transfer(h, ring_at=30.0)
    (cdr,) = h.cdrs()
    assert (cdr["status"], cdr["talk_seconds"], cdr["end_reason"]) == ("answered", 57, "hangup")
    assert sorted(cdr["extensions"]) == ["108", "121"]
    assert len({e.session_id for e in h.log}) == 1
    keys = [(e.key, e.body.get("call_target")) for e in h.log if e.key.startswith("target_")]
    assert ("target_ringing", uri("108")) in keys and ("target_ended", uri("108")) in keys


def test_a_ring_held_back_that_no_transfer_claims_is_a_call_of_its_own() -> None:
    """The same caller's second call (a shared line), ringing while the first is answered:
    held for merge_window, then its own call, stamped when it rang."""
    h = Hub()
    h.at(0.0, "incoming_call", local="121", remote="0711555", call_id="a")
    h.at(1.0, "establish_call", local="121", remote="0711555", call_id="a")
    assert h.at(30.0, "incoming_call", local="108", remote="0711555", call_id="b") == []
    assert h.at(40.0, "dnd_on", local="101") == ["dnd_on"]  # the held ring went out before
    starts = [e for e in h.log if e.key == "call_start"]
    assert len(starts) == 2 and starts[1].body["time"] == str(int(T0 + 30))
    assert h.at(42.0, "establish_call", local="108", remote="0711555", call_id="b") == [
        "call_established"
    ]
    h.at(50.0, "terminate_call", local="108", remote="0711555", call_id="b", duration="8")
    h.at(60.0, "terminate_call", local="121", remote="0711555", call_id="a", duration="59")
    h.end()
    second, first = h.cdrs()  # in the order they ended
    assert (second["call_id"], second["talk_seconds"], second["extensions"]) == ("b", 8, ["108"])
    assert (first["call_id"], first["talk_seconds"]) == ("a", 59)
    assert second["start_time"] == str(int(T0 + 30)) and second["session_id"] != first["session_id"]


def test_a_held_ring_followed_by_its_own_answer_opens_its_call_first() -> None:
    h = Hub()
    h.at(0.0, "incoming_call", local="121", remote="0711555", call_id="a")
    h.at(1.0, "establish_call", local="121", remote="0711555", call_id="a")
    assert h.at(30.0, "incoming_call", local="108", remote="0711555", call_id="b") == []
    assert h.at(32.0, "establish_call", local="108", remote="0711555", call_id="b") == [
        "call_start",
        "target_add",
        "target_ringing",
        "call_established",
    ]
    assert [e.body["time"] for e in h.log[-4:-1]] == [str(int(T0 + 30))] * 3


def test_snom_dial_out_not_answered() -> None:
    h = Hub()
    sip = {"local": "sip:0711555@pbx", "remote": "sip:111@pbx", "mac": "000413000111"}
    h.snom(0.0, "action_outgoing_url", **sip, **{"call-id": "s1"})
    h.snom(20.0, "action_disconnected_url", **sip, **{"call-id": "s1"}, duration="0")
    h.end()
    (cdr,) = h.cdrs()
    assert (cdr["status"], cdr["direction"]) == ("no_answer", "outbound")
    assert (cdr["caller"], cdr["callee"]) == (uri("111"), uri("0711555"))
    assert cdr["extensions"] == ["111"]
    assert h.c.presence("acme", "0711555")["last_seen"] == 0


def test_snom_dial_out_answered() -> None:
    h = Hub()
    sip = {"local": "sip:0711555@pbx", "remote": "sip:111@pbx"}
    h.snom(0.0, "action_outgoing_url", **sip, **{"call-id": "s2"})
    assert h.snom(5.0, "action_connected_url", **sip, **{"call-id": "s2"}) == ["call_established"]
    h.snom(47.0, "action_disconnected_url", **sip, **{"call-id": "s2"}, duration="42")
    h.end()
    (cdr,) = h.cdrs()
    assert (cdr["status"], cdr["direction"], cdr["talk_seconds"]) == ("answered", "outbound", 42)
    assert cdr["extensions"] == ["111"]


def test_snom_internal_call_resolved_by_mac_when_the_call_id_is_new() -> None:
    """Both numbers are extensions: the phone is the one its MAC reported before."""
    h = Hub()
    mac = "000413000111"
    h.snom(0.0, "action_outgoing_url", local="sip:105@pbx", remote="sip:111@pbx", mac=mac)
    keys = h.snom(
        3.0, "action_connected_url", local="sip:105@pbx", remote="sip:111@pbx", mac=mac,
        **{"call-id": "x"},
    )  # fmt: skip
    assert keys == ["call_established"]
    h.snom(30.0, "action_disconnected_url", local="sip:105@pbx", remote="sip:111@pbx", mac=mac)
    h.end()
    (cdr,) = h.cdrs()
    assert (cdr["caller"], cdr["callee"], cdr["direction"]) == (uri("111"), uri("105"), "ext")


def test_a_held_ring_survives_a_restart() -> None:
    """The phone was answered 200 for it: a crash while it is held must not lose it."""
    h = Hub()
    h.at(0.0, "incoming_call", local="121", remote="0711555", call_id="a")
    h.at(1.0, "establish_call", local="121", remote="0711555", call_id="a")
    assert h.at(30.0, "incoming_call", local="108", remote="0711555", call_id="b") == []
    states = [d for _, _, d in h.c.drain_changes().sessions if d is not None]
    h2 = Hub()
    h2.now = h.now + 1
    h2.c.restore(states, [])
    h2.at(31.1, "blind_transfer", local="121", remote="108", call_id="a")
    h2.at(31.2, "terminate_call", local="121", remote="0711555", call_id="a", duration="30")
    h2.at(33.0, "establish_call", local="108", remote="0711555", call_id="b")
    h2.at(90.0, "terminate_call", local="108", remote="0711555", call_id="b", duration="57")
    h2.end()
    (cdr,) = h2.cdrs()
    assert sorted(cdr["extensions"]) == ["108", "121"] and cdr["talk_seconds"] == 57
    assert [e.key for e in h2.log if e.key == "call_start"] == []  # the call went on
