"""Benchmark: phone reports per second through normalise + correlate alone (no I/O).

Compares a small tenant (100 extensions, 10 calls already open) with a large one (100,000
extensions, 10,000 open calls): the cost per report must not grow with either, since every
lookup is a dict access on the report's own keys. The workload mixes inbound, outbound and
internal calls (both phones reporting, different call ids), interleaved as concurrent calls,
with `tick()` and `drain_changes()` called as the pipeline would.

Run: python bench/correlate.py  (ends with `RATIO correlate_scale <large / small>`)
"""

from __future__ import annotations

import gc
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from callhook.correlate import CorrelationSettings, Correlator
from callhook.directory import Extension, Tenant
from callhook.ingest.model import PhoneEvent

CALLS = 3_000  # calls in the timed workload (about 11,700 reports)
CONCURRENT = 64  # calls in flight at once, their reports interleaved
ROUNDS = 7  # best of, to damp a shared machine's noise (best of 3 moved by ±0.08)
TICK_EVERY = 1_000  # reports between tick() calls
DRAIN_EVERY = 256  # reports between drain_changes() calls (one pipeline batch)


WARM = {
    "tenant": "acme",
    "reports": ["establish_call", "incoming_call", "outgoing_call", "terminate_call"],
}


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def tenant(extensions: int) -> Tenant:
    exts = {str(100_000 + i): Extension(str(100_000 + i)) for i in range(extensions)}
    return Tenant(name="acme", tenant_id="1", domain="acme.example.com", extensions=exts)


def call_reports(rng: random.Random, numbers: list[str], n: int) -> list[PhoneEvent]:
    """One call's reports, as its phones send them, in their natural order."""

    def ev(event: str, local: str, remote: str, cid: str, **extra: str) -> PhoneEvent:
        v = {"local": local, "remote": remote, "call_id": cid, "mac": "000B82112233", **extra}
        return PhoneEvent("acme", event, v)

    a = rng.choice(numbers)
    external = f"07{rng.randrange(10**8):08d}"
    kind = rng.random()
    if kind < 0.5:  # inbound, answered
        cid = f"in-{n}"
        return [
            ev("incoming_call", a, external, cid),
            ev("establish_call", a, external, cid),
            ev("terminate_call", a, external, cid, duration="42"),
        ]
    if kind < 0.7:  # outbound
        cid = f"out-{n}"
        return [
            ev("outgoing_call", a, external, cid),
            ev("establish_call", a, external, cid),
            ev("terminate_call", a, external, cid, duration="42"),
        ]
    b = rng.choice(numbers)  # internal: both phones report, each with its own call id
    while b == a:
        b = rng.choice(numbers)
    ca, cb = f"a-{n}", f"b-{n}"
    return [
        ev("outgoing_call", a, b, ca),
        ev("incoming_call", b, a, cb),
        ev("establish_call", b, a, cb),
        ev("establish_call", a, b, ca),
        ev("terminate_call", a, b, ca, duration="42"),
        ev("terminate_call", b, a, cb, duration="42"),
    ]


def workload(rng: random.Random, numbers: list[str]) -> list[PhoneEvent]:
    """CALLS calls, CONCURRENT at a time, their reports interleaved round-robin."""
    out: list[PhoneEvent] = []
    for start in range(0, CALLS, CONCURRENT):
        group = [call_reports(rng, numbers, n) for n in range(start, start + CONCURRENT)]
        for step in range(max(len(g) for g in group)):
            out.extend(g[step] for g in group if step < len(g))
    return out


class Case:
    """One tenant size and number of open calls: a correlator in steady state."""

    def __init__(self, t: Tenant, reports: list[PhoneEvent], open_sessions: int) -> None:
        self.reports = reports
        self.open_sessions = open_sessions
        self.clock = Clock()
        self.c = Correlator(lambda _name: t, CorrelationSettings(), self.clock)
        numbers = list(t.extensions)
        # Every phone has reported before (presence known, as after a restart)...
        self.c.restore([], ({**WARM, "extension": n, "last_seen": self.clock.now} for n in numbers))
        for i in range(open_sessions):  # ... and these calls stay open all along
            n = numbers[i % len(numbers)]
            for event in ("incoming_call", "establish_call"):
                v = {"local": n, "remote": f"0800{i:07d}", "call_id": f"bg-{i}"}
                self.c.feed(PhoneEvent("acme", event, v))
        self.c.drain_changes()

    def run(self) -> float:
        """Reports per CPU second for one pass of the workload."""
        c, clock = self.c, self.clock
        clock.now += 120  # the previous pass's calls are forgotten: the same state each pass
        c.tick()
        gc.collect()
        # CPU time, not wall time: the rate of this process, whatever else the machine runs.
        began = time.process_time()
        for i, pe in enumerate(self.reports, 1):
            clock.now += 0.002
            c.feed(pe)
            if i % DRAIN_EVERY == 0:
                c.drain_changes()
            if i % TICK_EVERY == 0:
                c.tick()
        elapsed = time.process_time() - began
        assert c.open_sessions == self.open_sessions, c.open_sessions  # workload calls closed
        return len(self.reports) / elapsed


def call_cost_ns() -> float:
    """This machine's cost of one Python function call, to read the rates against."""

    def f(x: int) -> int:
        return x

    began = time.process_time()
    for i in range(300_000):
        f(i)
    return (time.process_time() - began) / 300_000 * 1e9


def main() -> None:
    cases = [(100, 10), (100, 10_000), (100_000, 10), (100_000, 10_000)]
    tenants = {n: tenant(n) for n in (100, 100_000)}
    reports = {n: workload(random.Random(7), list(t.extensions)) for n, t in tenants.items()}
    runs = {(e, o): Case(tenants[e], reports[e], o) for e, o in cases}
    best: dict[tuple[int, int], float] = {}
    for _ in range(ROUNDS):  # rounds interleave the cases, so load changes hit all alike
        for key, case in runs.items():
            best[key] = max(case.run(), best.get(key, 0.0))
    rows = [(f"{e:,}", f"{o:,}", f"{len(reports[e]):,}", f"{best[(e, o)]:,.0f}") for e, o in cases]
    try:
        from rich.console import Console
        from rich.table import Table

        table = Table(
            title=f"normalise + correlate: phone reports per CPU second (best of {ROUNDS})",
            caption=f"one Python function call costs {call_cost_ns():.0f} ns here",
        )
        for col in ("extensions", "open calls", "reports", "reports/s"):
            table.add_column(col, justify="right")
        for row in rows:
            table.add_row(*row)
        Console().print(table)
    except ImportError:  # plain output without rich
        print(f"{'extensions':>12} {'open calls':>11} {'reports':>9} {'reports/s':>11}")
        print(f"(one Python function call costs {call_cost_ns():.0f} ns here)")
        for row in rows:
            print(f"{row[0]:>12} {row[1]:>11} {row[2]:>9} {row[3]:>11}")
    ratio = best[(100_000, 10_000)] / best[(100, 10)]
    print(f"RATIO correlate_scale {ratio:.3f}")


if __name__ == "__main__":
    main()
