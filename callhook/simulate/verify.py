"""Compare what a simulation expected with the CDRs and presence a hub produced (pure).

Each `call_cdr` is matched to an expected call by its `call_id`, which must be one of the
call ids the phones sent for that call. Two calls of one shared line can share one: the
first call's CDR names the call id of the phone that rang first, which then proved to be
in a call of its own; such a CDR goes to the call of its caller that its answering
extension was in. `check()` lists every disagreement; an empty
`Verification.problems` means exactly one CDR per call, each with the expected status.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from callhook.simulate.model import ExpectedCall, PhoneState


@dataclass(slots=True)
class Verification:
    """The differences between expected calls/presence and what the hub reported."""

    matched: int = 0
    missing: list[ExpectedCall] = field(default_factory=list)
    duplicated: list[tuple[ExpectedCall, int]] = field(default_factory=list)
    unknown: list[dict[str, Any]] = field(default_factory=list)
    wrong: list[tuple[ExpectedCall, str, Any, Any]] = field(default_factory=list)  # what, want, got
    presence: list[tuple[str, str, bool, Any]] = field(default_factory=list)  # ext, what, want, got

    @property
    def problems(self) -> list[str]:
        """One line per disagreement (empty when the hub got everything right)."""
        out = [
            f"no CDR for call {c.index} ({c.flow}, call ids {', '.join(c.call_ids)})"
            for c in self.missing
        ]
        out += [
            f"{n} CDRs for call {c.index} ({c.flow} {c.part})".rstrip() for c, n in self.duplicated
        ]
        out += [
            f"CDR {d.get('cdr_id')} (call_id {d.get('call_id')!r}) matches no call"
            for d in self.unknown
        ]
        out += [
            f"call {c.index} ({c.flow} {c.part}): {what} {got!r}, expected {want!r}"
            for c, what, want, got in self.wrong
        ]
        out += [
            f"extension {ext}: {what} {got!r}, expected {want!r}"
            for ext, what, want, got in self.presence
        ]
        return out


def check(
    calls: Iterable[ExpectedCall],
    cdrs: Iterable[Mapping[str, Any]],
    presence: Mapping[str, PhoneState] | None = None,
    hub_presence: Mapping[str, Mapping[str, Any]] | None = None,
    *,
    talk: bool = True,
) -> Verification:
    """Match `cdrs` (call_cdr bodies) to `calls`; compare status, end reason, talk time, and
    (when both are given) each extension's DND/forward/registered state."""
    v = Verification()
    expected = list(calls)
    by_id = {cid: c for c in expected for cid in c.call_ids}
    found: dict[int, list[Mapping[str, Any]]] = {}
    for cdr in cdrs:
        match = by_id.get(str(cdr.get("call_id", "")))
        answerer = _number(cdr.get("call_target"))
        if match is not None and answerer and answerer not in match.extensions:
            match = next(
                (c for c in expected if c.caller == match.caller and answerer in c.extensions),
                match,
            )
        if match is None:
            v.unknown.append(dict(cdr))
        else:
            found.setdefault(match.index, []).append(cdr)
    for c in expected:
        got = found.get(c.index)
        if not got:
            v.missing.append(c)
            continue
        if len(got) > 1:
            v.duplicated.append((c, len(got)))
        v.matched += 1
        cdr = got[0]
        if cdr.get("status") != c.status:
            v.wrong.append((c, "status", c.status, cdr.get("status")))
        if c.end_reason and cdr.get("end_reason") != c.end_reason:
            v.wrong.append((c, "end_reason", c.end_reason, cdr.get("end_reason")))
        got_talk = cdr.get("talk_seconds")
        # Each phone rounds its own `$duration`; the two ends of a call may differ by 1 s.
        if talk and c.talk_seconds is not None and not _near(got_talk, c.talk_seconds):
            v.wrong.append((c, "talk_seconds", c.talk_seconds, cdr.get("talk_seconds")))
    if presence is not None and hub_presence is not None:
        for ext, want in presence.items():
            got_state = hub_presence.get(ext, {})
            for what in ("dnd", "forward", "registered"):
                if got_state.get(what) != getattr(want, what):
                    v.presence.append((ext, what, getattr(want, what), got_state.get(what)))
    return v


def _number(address: Any) -> str:
    """`sip:101@acme.example.com` -> `101`."""
    if not isinstance(address, str):
        return ""
    return address.removeprefix("sip:").split("@", 1)[0]


def _near(got: Any, want: int) -> bool:
    return isinstance(got, int) and abs(got - want) <= 1
