"""The end-of-run summary: rich tables of requests, HTTP statuses, calls and presence."""

from __future__ import annotations

from rich.console import Console, Group
from rich.table import Table

from callhook.simulate.model import CALL_FLOWS, STATUSES, TOGGLE_FLOWS
from callhook.simulate.runner import SimulationResult


def _requests(result: SimulationResult) -> Table:
    t = Table(title="Requests sent", title_justify="left")
    t.add_column("event")
    t.add_column("requests", justify="right")
    for event, n in sorted(result.by_event.items(), key=lambda kv: (-kv[1], kv[0])):
        t.add_row(event, str(n))
    t.add_section()
    t.add_row("total", str(result.requests))
    return t


def _responses(result: SimulationResult) -> Table:
    t = Table(title="Responses", title_justify="left")
    t.add_column("HTTP status / error")
    t.add_column("requests", justify="right")
    for status, n in sorted(result.statuses.items()):
        t.add_row(str(status), str(n), style="" if 200 <= status < 300 else "red")
    for error, n in sorted(result.errors.items()):
        t.add_row(error, str(n), style="red")
    return t


def _calls(result: SimulationResult) -> Table:
    """Calls by flow and the CDR status the hub should give each (expected outcomes)."""
    outcomes = result.outcomes()
    used = [s for s in STATUSES if any(outcomes[f][s] for f in CALL_FLOWS)]
    t = Table(title="Calls by flow (expected CDR status)", title_justify="left")
    t.add_column("flow")
    t.add_column("flows", justify="right")
    t.add_column("CDRs", justify="right")
    for status in used:
        t.add_column(status, justify="right")
    for flow in CALL_FLOWS:
        row = outcomes[flow]
        if not result.plan.flows.get(flow):
            continue
        counts = [str(row[s]) for s in used]
        t.add_row(flow, str(result.plan.flows[flow]), str(sum(row.values())), *counts)
    t.add_section()
    total = [str(sum(outcomes[f][s] for f in CALL_FLOWS)) for s in used]
    flows = sum(result.plan.flows.get(f, 0) for f in CALL_FLOWS)
    t.add_row("total", str(flows), str(len(result.calls)), *total)
    return t


def _presence(result: SimulationResult) -> Table:
    """Extensions whose final state is not the default (registered, no DND, no forwarding)."""
    toggles = ", ".join(f"{f} {result.plan.flows.get(f, 0)}" for f in TOGGLE_FLOWS)
    t = Table(title=f"Expected final presence (toggles: {toggles})", title_justify="left")
    t.add_column("extension")
    t.add_column("DND")
    t.add_column("forward")
    t.add_column("registered")
    plain = 0
    for ext, state in result.presence.items():
        if not state.dnd and not state.forward and state.registered:
            plain += 1
            continue
        t.add_row(ext, _on(state.dnd), _on(state.forward), "yes" if state.registered else "no")
    t.add_row(f"{plain} others", "off", "off", "yes", style="dim")
    return t


def _on(flag: bool) -> str:
    return "on" if flag else "off"


def render(result: SimulationResult, console: Console) -> None:
    """Print the summary of `result` to `console`."""
    rate = result.requests / result.elapsed if result.elapsed else 0.0
    console.print(Group(_requests(result), _responses(result)))
    console.print(_calls(result))
    console.print(_presence(result))
    console.print(
        f"{result.requests} requests to {result.url} in {result.elapsed:.1f} s ({rate:.0f}/s), "
        f"{result.failed} failed; send lag p99 {result.lag(0.99):.3f} s, max "
        f"{result.max_lag:.2f} s ({result.late} over 0.5 s), "
        f"speed x{result.plan.speed:g}"
    )
    for note in result.plan.notes:
        console.print(f"note: {note}", style="yellow", markup=False)
    if result.plan.hub_settings:
        tuned = " ".join(f"{k}={v:g}" for k, v in result.plan.hub_settings.items())
        console.print(
            f"expected outcomes hold for a hub with [correlation] {tuned} (and --min-ring "
            "equal to its min_ring_seconds); see docs/simulate.md",
            style="dim",
            markup=False,
        )
