"""Run a plan against a hub: `run_simulation()` and what it returns, `SimulationResult`."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from callhook.simulate.http import Connection, Endpoint, HttpError
from callhook.simulate.model import CALL_FLOWS, DEFAULT_MIX, ExpectedCall, PhoneState, Plan, Step
from callhook.simulate.phones import PhoneRunner
from callhook.simulate.scenarios import ScenarioConfig, generate, parse_mix

_LATE = 0.5  # sent this late (wall s), a report may reach the hub after one it caused (causal gap)


class SimulationError(Exception):
    """The run could not go on: bad settings, the hub unreachable, the token refused."""


@dataclass(frozen=True, slots=True)
class Progress:
    """Where a run is, for a progress bar."""

    sent: int
    total: int
    errors: int
    elapsed: float


@dataclass(slots=True)
class SimulationResult:
    """What was sent, how the hub answered, and what the hub should have made of it."""

    plan: Plan
    url: str
    elapsed: float = 0.0
    requests: int = 0
    by_event: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    max_lag: float = 0.0
    late: int = 0  # requests sent more than _LATE after their time
    lags: list[float] = field(default_factory=list, repr=False)

    def lag(self, quantile: float) -> float:
        """Send lag (wall seconds behind schedule) at `quantile` (0.5: the median)."""
        if not self.lags:
            return 0.0
        ordered = sorted(self.lags)
        return ordered[min(len(ordered) - 1, int(quantile * len(ordered)))]

    @property
    def calls(self) -> list[ExpectedCall]:
        """Every session the hub should close with one `call_cdr`, in start order."""
        return self.plan.calls

    @property
    def presence(self) -> dict[str, PhoneState]:
        """The DND, forwarding and registration state each extension should end in."""
        return self.plan.presence

    @property
    def failed(self) -> int:
        """Requests that got no 2xx response."""
        ok = sum(n for status, n in self.statuses.items() if 200 <= status < 300)
        return self.requests - ok

    def by_call_id(self) -> dict[str, ExpectedCall]:
        """Every phone leg's call id -> the expected call it belongs to."""
        return {cid: c for c in self.plan.calls for cid in c.call_ids}

    def outcomes(self) -> dict[str, Counter[str]]:
        """Expected CDR statuses by flow (call flows only)."""
        table: dict[str, Counter[str]] = {f: Counter() for f in CALL_FLOWS}
        for c in self.plan.calls:
            table[c.flow][c.status] += 1
        return table

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able summary, with every expected call (`callhook simulate --json`)."""
        return {
            "url": self.url,
            "elapsed_seconds": round(self.elapsed, 3),
            "requests": self.requests,
            "failed": self.failed,
            "requests_by_event": dict(sorted(self.by_event.items())),
            "http_statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "errors": dict(self.errors),
            "max_lag_seconds": round(self.max_lag, 3),
            "p99_lag_seconds": round(self.lag(0.99), 3),
            "late_requests": self.late,
            "flows": {k: v for k, v in self.plan.flows.items() if v},
            "expected_statuses": dict(Counter(c.status for c in self.plan.calls)),
            "notes": list(self.plan.notes),
            "hub_settings": dict(self.plan.hub_settings),
            "calls": [
                {
                    "index": c.index,
                    "flow": c.flow,
                    "part": c.part,
                    "status": c.status,
                    "caller": c.caller,
                    "callee": c.callee,
                    "call_ids": list(c.call_ids),
                    "extensions": list(c.extensions),
                    "talk_seconds": c.talk_seconds,
                    "end_reason": c.end_reason,
                }
                for c in self.plan.calls
            ],
            "presence": {
                ext: {"dnd": s.dnd, "forward": s.forward, "registered": s.registered}
                for ext, s in self.plan.presence.items()
            },
        }


async def run_simulation(
    url: str,
    token: str,
    *,
    phones: int = 20,
    first_extension: int = 101,
    calls: int = 100,
    duration: float | None = None,
    rate: float = 5.0,
    speed: float = 60.0,
    seed: int = 1,
    mix: Mapping[str, float] | str | None = None,
    vendors: Sequence[str] = ("grandstream",),
    min_ring: float = 5.0,
    max_talk: float = 900.0,
    request_timeout: float = 10.0,
    plan: Plan | None = None,
    on_progress: Callable[[Progress], None] | None = None,
) -> SimulationResult:
    """Simulate phones calling through the hub at `url` with ingest `token`.

    `duration` (wall seconds), when given, sets `calls` to `rate * duration`. `min_ring` is
    the hub's `correlation.min_ring_seconds`, which decides missed versus abandoned. A
    ready-made `plan` replaces the generated one. Raises SimulationError when the settings
    are bad, the hub cannot be reached or it refuses the token (404).
    """
    try:
        endpoint = Endpoint.parse(url)
        if plan is None:
            weights = parse_mix(mix) if isinstance(mix, str) else mix
            cfg = ScenarioConfig(
                phones=phones,
                first_extension=first_extension,
                calls=round(rate * duration) if duration is not None else calls,
                rate=rate,
                speed=speed,
                seed=seed,
                vendors=tuple(vendors),
                min_ring=min_ring,
                max_talk=max_talk,
                mix=dict(weights if weights is not None else DEFAULT_MIX),
            )
            plan = generate(cfg)
    except ValueError as exc:
        raise SimulationError(str(exc)) from None
    await _preflight(endpoint, url, request_timeout)
    return await _Run(plan, endpoint, url, token, request_timeout, on_progress).go()


async def _preflight(endpoint: Endpoint, url: str, request_timeout: float) -> None:
    """Fail fast, with one clear line, when nothing answers HTTP at `url`."""
    conn = Connection(endpoint, "callhook-simulate", request_timeout)
    try:
        await conn.get("/readyz")
    except HttpError as exc:
        raise SimulationError(f"cannot reach the hub at {url}: {exc}") from None
    finally:
        await conn.close()


class _Run:
    """One run: a task per phone, shared counters, and the stop signal."""

    def __init__(
        self,
        plan: Plan,
        endpoint: Endpoint,
        url: str,
        token: str,
        timeout: float,
        on_progress: Callable[[Progress], None] | None,
    ) -> None:
        self.plan = plan
        self.result = SimulationResult(plan, url)
        self.token = token
        self.on_progress = on_progress
        self.stop = asyncio.Event()
        self.refused = ""
        self.started = time.monotonic()
        by_phone: dict[str, list[Step]] = {p.extension: [] for p in plan.phones}
        for step in plan.steps:
            by_phone[step.phone].append(step)
        self.runners = [
            PhoneRunner(p, by_phone[p.extension], endpoint, token, plan.speed, timeout)
            for p in plan.phones
            if by_phone[p.extension]
        ]

    async def go(self) -> SimulationResult:
        self.started = time.monotonic()
        start = self.started + 0.05
        if self.on_progress is not None:
            self.on_progress(Progress(0, len(self.plan.steps), 0, 0.0))
        phones: asyncio.Future[list[None]] = asyncio.gather(
            *(r.run(start, self._record, self.stop) for r in self.runners)
        )
        stopped: asyncio.Future[bool] = asyncio.ensure_future(self.stop.wait())
        try:  # until every phone is done, or the run is stopped (token refused)
            waiting: set[asyncio.Future[Any]] = {phones, stopped}
            await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            if phones.done():
                phones.result()  # a bug in a phone task surfaces here
        finally:
            phones.cancel()
            stopped.cancel()
            await asyncio.gather(phones, stopped, return_exceptions=True)
        self.result.elapsed = time.monotonic() - self.started
        if self.refused:
            raise SimulationError(self.refused)
        return self.result

    async def _record(
        self, step: Step, lag: float, status: int | None, body: bytes, error: str
    ) -> None:
        r = self.result
        r.requests += 1
        r.by_event[step.event] += 1
        r.max_lag = max(r.max_lag, lag)
        r.lags.append(lag)
        r.late += lag > _LATE
        if status is None:
            r.errors[error] += 1
        else:
            r.statuses[status] += 1
            if status == 404 and not self.refused:
                self.refused = (
                    f"the hub at {r.url} refused token {self.token!r} (404 {_reason(body)})"
                )
                self.stop.set()
        if self.on_progress is not None:
            elapsed = time.monotonic() - self.started
            self.on_progress(Progress(r.requests, len(self.plan.steps), r.failed, elapsed))


def _reason(body: bytes) -> str:
    """`unknown-token: unknown ingest token` from the hub's JSON error body, or its text."""
    try:
        err = json.loads(body)["error"]
        return f"{err['code']}: {err['message']}"
    except (ValueError, KeyError, TypeError):
        return body.decode("utf-8", "replace").strip()[:200]
