"""Who a call is between, and which of the tenant's extensions it concerns.

Phones disagree on this only in how much they know: the caller's phone knows the number
dialled, a called phone knows who called, a phone that did not say its direction gives a
guess. The best view wins; `extensions` decides routing and how parties are written.
"""

from __future__ import annotations

from callhook.correlate import bodies
from callhook.correlate.bodies import TenantView
from callhook.correlate.sessions import SessionTable
from callhook.correlate.state import Leg, Session
from callhook.normalise import CallReport


def learn(s: Session, leg: Leg, rep: CallReport, tv: TenantView, table: SessionTable) -> None:
    """Caller and callee from the most telling view: the caller's phone, else a called
    phone, else a guess (caller = this phone) that a better view replaces."""
    if rep.phase == "transfer":
        # A transfer's remote is its target. The phone transferring is the called party
        # of an incoming call ($calldirection), else taken for the caller.
        if leg.role == "target":
            if s.view == 0 and rep.own and s.caller == rep.own:
                # The first report gave no direction and was taken for the caller's: this
                # phone was called, by the other party it reported then.
                s.caller, s.callee = leg.remote if leg.remote != rep.own else "", rep.own
                s.view = 1
            s.callee = s.callee or rep.own
        elif not s.caller:
            s.caller = rep.own
        refresh_extensions(s, tv)
        return
    view = 2 if leg.role == "caller" else 1 if leg.role == "target" else 0
    if leg.role == "target":
        caller, callee, name = rep.remote, rep.own, rep.display_remote
    else:
        caller, callee, name = rep.own, rep.remote, rep.display_local
    if view > s.view or not (s.caller or s.callee):
        s.caller = caller or s.caller
        # A called phone in a ring group is not the number dialled: keep the caller's view.
        if s.view < 2 or view == 2:
            s.callee = callee or s.callee
        if name and (view > s.view or not s.caller_display_name):
            s.caller_display_name = name
        s.view = max(s.view, view)
    elif view == s.view:
        # The same side says more than its first report did (a caller learned late, from
        # an Establish or Terminate Call): fill in what is still unknown.
        s.caller = s.caller or caller
        s.callee = s.callee or callee
        if name and not s.caller_display_name and caller == s.caller:
            s.caller_display_name = name
    if s.view:
        table.index_caller(s, s.caller)
    elif leg.remote and leg.number:
        table.index_caller(s, leg.remote)  # the guess may be backwards
    if not s.caller_display_name and s.caller:
        s.caller_display_name = tv.display_name(s.caller)
    refresh_extensions(s, tv)


def refresh_extensions(s: Session, tv: TenantView) -> None:
    """The tenant's extensions a session concerns: reporting phones, caller, callee, who
    answered and transfer targets, each only when it is an extension (never a far party)."""
    exts = [leg.number for leg in s.legs.values() if leg.number and tv.is_extension(leg.number)]
    for n in (s.caller, s.callee, s.answered_by, *s.transfer_targets):
        if n and n not in exts and tv.is_extension(n):
            exts.append(n)
    s.extensions = tuple(exts)
    bodies.render_parties(s, tv)
