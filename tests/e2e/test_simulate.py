"""`callhook simulate` against a real hub: one CDR per simulated call with the expected
status, no session left open, and presence as the last toggles left it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from callhook.simulate import ExpectedCall, PhoneState
from tests.support.hub import Hub, free_port
from tests.support.simulation import EVERY_FLOW, TOKEN, simulated, start_hub, verify

# Each test runs phones for seconds to tens of seconds: `make test` starts this file early.
pytestmark = pytest.mark.slow


def calls_from_json(data: dict[str, Any]) -> list[ExpectedCall]:
    return [
        ExpectedCall(
            c["index"],
            c["flow"],
            c["status"],
            c["caller"],
            c["callee"],
            0.0,
            tuple(c["call_ids"]),
            tuple(c["extensions"]),
            c["talk_seconds"],
            end_reason=c["end_reason"],
            part=c["part"],
        )
        for c in data["calls"]
    ]


def simulate_cli(hub_url: str, *args: str, token: str = TOKEN) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "callhook.cli", "simulate", "--url", hub_url, "--token", token]
    return subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=120, check=False)


def test_cli_run_gives_one_cdr_per_call(tmp_path: Path) -> None:
    speed, talk = 90.0, 60.0
    hub = start_hub(tmp_path, phones=30, speed=speed, max_talk=talk)
    try:
        run = simulate_cli(
            hub.base,
            *("--phones", "30", "--calls", "120", "--rate", "30", "--seed", "1"),
            *("--speed", str(speed), "--max-talk", str(talk), "--min-ring", "1"),
            *("--mix", EVERY_FLOW, "--json"),
        )
        assert run.returncode == 0, run.stderr
        data = json.loads(run.stdout)
        assert data["failed"] == 0 and data["requests"] == sum(data["requests_by_event"].values())
        calls = calls_from_json(data)
        assert len(calls) >= 120
        presence = {e: PhoneState(**s) for e, s in data["presence"].items()}
        v = verify(hub, calls, presence, speed, talk)
        assert v.problems == []
        assert v.matched == len(calls)

        # The human summary, on the same hub.
        run = simulate_cli(hub.base, "--calls", "5", "--speed", "200", "--mix", "inbound=1,dnd=1")
        assert run.returncode == 0, run.stderr
        for title in ("Requests sent", "Responses", "Calls by flow", "Expected final presence"):
            assert title in run.stdout
    finally:
        hub.stop()


async def test_in_process_run_with_several_vendors(tmp_path: Path) -> None:
    result, v = await simulated(
        tmp_path, phones=30, speed=90.0, talk=60.0, calls=120, rate=30, seed=7,
        mix=EVERY_FLOW, vendors=("grandstream", "yealink", "fanvil"), min_ring=1.0,
    )  # fmt: skip
    assert result.failed == 0, result.errors
    assert {p.vendor for p in result.plan.phones} == {"grandstream", "yealink", "fanvil"}
    assert v.problems == []
    statuses = {c.status for c in result.calls}
    assert statuses == {"answered", "missed", "abandoned", "no_answer"}
    assert any(c.end_reason == "timeout" for c in result.calls)  # reboots closed by the hub


async def test_registration_follows_sign_off(tmp_path: Path) -> None:
    """Phones signing off and back on within seconds: each Registration after a Sign Off
    is news, not a repeat for the hub's dedup memory."""
    result, v = await simulated(
        tmp_path, phones=4, speed=60.0, talk=60, calls=10, rate=20, seed=3, min_ring=1.0,
        mix="inbound=1,registration=3",
    )  # fmt: skip
    assert result.plan.flows["registration"] > 0
    assert v.problems == []


async def test_snom_phones_placing_calls(tmp_path: Path) -> None:
    _, v = await simulated(
        tmp_path, phones=10, speed=60.0, talk=60.0, calls=12, rate=10, seed=5,
        mix="outbound=1,internal=1,attended_transfer=1", vendors=("snom",), min_ring=1.0,
    )  # fmt: skip
    assert v.problems == []


def test_refused_token_is_one_clean_line(hub: Hub) -> None:
    run = simulate_cli(hub.base, "--calls", "3", token="nope")
    assert run.returncode == 1
    assert run.stderr == (
        f"Error: the hub at {hub.base} refused token 'nope' "
        "(404 unknown-token: unknown ingest token)\n"
    )


def test_unreachable_hub_is_one_clean_line() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    run = simulate_cli(url, "--calls", "3")
    assert run.returncode == 1
    assert run.stderr.startswith(f"Error: cannot reach the hub at {url}: ")
    assert run.stderr.count("\n") == 1 and "Traceback" not in run.stderr


def test_url_and_token_come_from_the_config_file(hub: Hub) -> None:
    cmd = [sys.executable, "-m", "callhook", "simulate", "--config", str(hub.config_path)]
    cmd += ["--tenant", "acme", "--calls", "2", "--speed", "300", "--json"]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 0, run.stderr
    data = json.loads(run.stdout)
    assert data["failed"] == 0 and data["requests"] > 0
    assert hub.events("acme")  # they reached the hub the config file describes
