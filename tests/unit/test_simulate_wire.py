"""The simulator on the wire: request shapes per vendor, the HTTP client, the runner and the
summary, against a small recording server (the real hub is in tests/e2e)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from click.testing import CliRunner
from rich.console import Console

from callhook.cli import main
from callhook.ingest.action_url import parse_request
from callhook.simulate import (
    ScenarioConfig,
    SimulationError,
    generate,
    parse_mix,
    run_simulation,
)
from callhook.simulate.http import Connection, Endpoint, HttpError
from callhook.simulate.model import SimPhone, Step
from callhook.simulate.phones import request_target, user_agent
from callhook.simulate.report import render
from tests.support.ports import free_port

PHONES = {
    v: SimPhone("101", mac, v, model, "1.2.3", "10.20.0.2", False)
    for v, mac, model in (
        ("grandstream", "000B82A1B2C3", "GXP2170"),
        ("yealink", "805EC0A1B2C3", "SIP-T46U"),
        ("snom", "000413A1B2C3", "D785"),
        ("fanvil", "0C383EA1B2C3", "X6U"),
    )
}


def test_grandstream_request_is_the_seed_shape() -> None:
    step = Step(
        0.0,
        "101",
        "incoming_call",
        (("remote", "+4971122"), ("display_remote", "Zoë M"), ("call_id", "c1@h")),
    )
    target = request_target(PHONES["grandstream"], "gs-7f3a9c", step, set())
    assert target == (
        "/token=gs-7f3a9c&event=Incoming%20Call&mac=000B82A1B2C3&local=101"
        "&remote=%2B4971122&display_remote=Zo%C3%AB%20M&call_id=c1%40h"
    )
    assert user_agent(PHONES["grandstream"]) == "Grandstream GXP2170 1.2.3"


@pytest.mark.parametrize("vendor", sorted(PHONES))
@pytest.mark.parametrize(
    ("event", "variables"),
    [
        ("incoming_call", (("remote", "0711"), ("display_remote", "A B"), ("call_id", "c1"))),
        ("establish_call", (("remote", "0711"), ("call_id", "c1"))),
        ("terminate_call", (("remote", "0711"), ("call_id", "c1"), ("duration", "42"))),
        ("missed_call", (("remote", "0711"), ("call_id", "c1"))),
        ("registration", ()),
        ("dnd_on", ()),
        ("forward_off", ()),
        ("booting_completed", ()),
    ],
)
def test_every_dialect_parses_back(
    vendor: str, event: str, variables: tuple[tuple[str, str], ...]
) -> None:
    phone = PHONES[vendor]
    target = request_target(phone, "tok/en", Step(0.0, "101", event, variables), set())
    path, _, query = target.partition("?")
    parsed = parse_request("GET", path.encode(), query.encode(), user_agent=user_agent(phone))
    assert (parsed.token, parsed.event, parsed.vendor) == ("tok/en", event, vendor)
    want = {"mac": phone.mac, "local": "101", **dict(variables)}
    if event in ("registration", "booting_completed"):
        want |= {"phone_ip": phone.ip, "product": phone.model, "program_version": "1.2.3"}
    assert parsed.variables == want


def test_snom_swaps_local_and_remote_on_calls_it_placed() -> None:
    phone, placed = PHONES["snom"], set[str]()
    dial = Step(0.0, "101", "outgoing_call", (("remote", "0711"), ("call_id", "c9")))
    answer = Step(1.0, "101", "establish_call", (("remote", "0711"), ("call_id", "c9")))
    first = request_target(phone, "t", dial, placed)
    assert "local=sip%3A0711%40pbx.local&remote=sip%3A101%40pbx.local" in first
    parsed = parse_request("GET", *(x.encode() for x in first.split("?")))
    assert (parsed.variables["local"], parsed.variables["remote"]) == ("101", "0711")
    # Snom's $local is the callee whatever happens next: the hub cannot tell from the URL.
    later = request_target(phone, "t", answer, placed)
    parsed = parse_request("GET", *(x.encode() for x in later.split("?")))
    assert parsed.variables["local"] == "0711" and "snom-direction-unknown" in parsed.hints


@dataclass
class FakeHub:
    """A recording HTTP/1.1 server: 200 for token `good`, 404 otherwise."""

    port: int = 0
    lines: list[str] = field(default_factory=list)
    connections: int = 0
    chunked: bool = False
    close_after: int = 0  # close the connection after this many requests (0: never)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        served = 0
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                line = head.split(b"\r\n", 1)[0].decode()
                self.lines.append(line)
                good = "good" in line or "readyz" in line
                body = (
                    b'{"status":"ok"}'
                    if good
                    else b'{"error":{"code":"unknown-token","message":"unknown ingest token"}}'
                )
                status = "200 OK" if good else "404 Not Found"
                if self.chunked:
                    payload = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
                    hdr = "Transfer-Encoding: chunked"
                else:
                    payload, hdr = body, f"Content-Length: {len(body)}"
                writer.write(f"HTTP/1.1 {status}\r\n{hdr}\r\n\r\n".encode() + payload)
                await writer.drain()
                served += 1
                if self.close_after and served >= self.close_after:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@pytest.fixture
async def fake_hub() -> AsyncIterator[FakeHub]:
    hub = FakeHub()
    server = await asyncio.start_server(hub.handle, "127.0.0.1", 0)
    hub.port = server.sockets[0].getsockname()[1]
    async with server:
        yield hub
        server.close()


@pytest.mark.parametrize("chunked", [False, True])
async def test_connection_keeps_alive(fake_hub: FakeHub, chunked: bool) -> None:
    fake_hub.chunked = chunked
    conn = Connection(Endpoint.parse(f"http://127.0.0.1:{fake_hub.port}/base/"), "UA")
    try:
        for i in range(3):
            assert await conn.get(f"/good={i}") == (200, b'{"status":"ok"}')
    finally:
        await conn.close()
    assert fake_hub.connections == 1
    assert fake_hub.lines == [f"GET /base/good={i} HTTP/1.1" for i in range(3)]


async def test_connection_reconnects_when_the_server_closed_it(fake_hub: FakeHub) -> None:
    fake_hub.close_after = 1
    conn = Connection(Endpoint.parse(f"127.0.0.1:{fake_hub.port}"), "UA")
    try:
        for _ in range(3):
            status, _ = await conn.get("/good")
            assert status == 200
    finally:
        await conn.close()
    assert fake_hub.connections == 3


async def test_connection_refused() -> None:
    conn = Connection(Endpoint.parse(f"http://127.0.0.1:{free_port()}"), "UA", timeout=2)
    with pytest.raises(HttpError, match=r"refused|connect"):
        await conn.get("/x")
    await conn.close()


@pytest.mark.parametrize("url", ["ftp://x", "http://", "http://h:99999"])
def test_bad_urls(url: str) -> None:
    with pytest.raises(ValueError):
        Endpoint.parse(url)


async def test_run_simulation_sends_every_step_on_one_connection_per_phone(
    fake_hub: FakeHub,
) -> None:
    seen: list[int] = []
    planned = generate(
        ScenarioConfig(
            phones=4,
            calls=30,
            rate=200,
            speed=5000,
            seed=9,
            # No unanswered rings (a missed call rings >= min_ring of wall time), and causes
            # and effects 10 ms apart: the recording server does not reorder anything.
            mix=parse_mix(
                "inbound=3,internal=1,hold=1,blind_transfer=1,attended_transfer=1,dnd=1,"
                "registration=1"
            ),
            vendors=("grandstream", "yealink"),
            causal_gap=0.01,
        )
    )
    result = await run_simulation(
        f"http://127.0.0.1:{fake_hub.port}",
        "good",
        plan=planned,
        on_progress=lambda p: seen.append(p.sent),
    )
    plan = result.plan
    assert result.requests == len(plan.steps) == len(fake_hub.lines) - 1  # - the readyz probe
    assert result.statuses == {200: len(plan.steps)} and result.failed == 0
    assert sum(result.by_event.values()) == result.requests
    assert seen == list(range(result.requests + 1))  # 0 first: the total is known at once
    assert fake_hub.connections == 1 + 4  # the probe, then one keep-alive connection per phone
    assert any(line.startswith("GET /token=good&event=") for line in fake_hub.lines)
    assert any(line.startswith("GET /ingest/good/") for line in fake_hub.lines)
    data = result.to_dict()
    assert len(data["calls"]) == len(plan.calls) and data["requests"] == result.requests
    assert set(result.by_call_id()) == {cid for c in plan.calls for cid in c.call_ids}

    console = Console(record=True, width=120)
    render(result, console)
    text = console.export_text()
    for title in ("Requests sent", "Responses", "Calls by flow", "Expected final presence"):
        assert title in text


async def test_refused_token_stops_the_run(fake_hub: FakeHub) -> None:
    with pytest.raises(SimulationError, match=r"refused token 'bad' \(404 unknown-token"):
        await run_simulation(
            f"http://127.0.0.1:{fake_hub.port}", "bad", phones=3, calls=50, speed=1000
        )
    assert len(fake_hub.lines) < 10  # it stopped at once


async def test_unreachable_hub() -> None:
    with pytest.raises(SimulationError, match="cannot reach the hub"):
        await run_simulation(f"http://127.0.0.1:{free_port()}", "t", calls=1)


async def test_given_plan_is_sent_as_is(fake_hub: FakeHub) -> None:
    plan = generate(ScenarioConfig(phones=2, calls=3, speed=10_000, seed=4, mix={"inbound": 1}))
    result = await run_simulation(f"http://127.0.0.1:{fake_hub.port}", "good", plan=plan)
    assert result.plan is plan and result.requests == len(plan.steps)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--mix", "bogus=1"], "unknown flow 'bogus'"),
        (["--vendors", "nokia"], "unknown vendor 'nokia'"),
        (["--url", "ftp://x"], "not an http(s) URL"),
        (["--url", "http://127.0.0.1:{port}"], "cannot reach the hub at http://127.0.0.1:"),
    ],
)
def test_cli_errors_are_one_line(args: list[str], message: str) -> None:
    args = [a.format(port=free_port()) for a in args]
    result = CliRunner().invoke(main, ["simulate", "--token", "t", "--calls", "1", *args])
    assert result.exit_code == 1
    assert result.output.startswith("Error: ") and message in result.output
    assert result.output.count("\n") == 1 and "Traceback" not in result.output
