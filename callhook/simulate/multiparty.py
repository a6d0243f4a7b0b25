"""Flows with more than one phone on one call, and the phone that reboots mid-call.

- ring group: several phones ring for one external caller (each its own call id); one
  answers and the others stop ringing (they report Missed Call), or nobody answers;
- blind transfer: the answering phone reports Blind Transferring with `$remote` the target,
  hangs up, and the target rings and answers: one call;
- attended transfer: the answering phone holds the caller, dials the target (a consultation
  call), reports Attended Transferring on that line and hangs up both lines; the target then
  talks to the caller on its consultation leg: two calls, the original and the consultation;
- reboot: an answered call whose phone sends Booting Completed and never Terminate Call: the
  hub must close it on its own (`end_reason` "timeout").
"""

from __future__ import annotations

from callhook.simulate.flows import GAP, FlowBuilder, answered_inbound, internal_start, talked


def ring_group(b: FlowBuilder) -> None:
    """An external caller rings 2-4 phones at once; one answers (85%) or nobody does."""
    number, name = b.new_external()
    answered = b.rng.random() >= 0.15
    ring = b.timing.answer_ring(b.rng) if answered else b.timing.missed_ring(b.rng)
    status = "answered" if answered else b.timing.unanswered_status(ring)
    callee = b.phones[0].extension
    call = b.call("ring_group", status, number, callee, ring_seconds=0.0 if answered else ring)
    cids = [b.leg(p, call) for p in b.phones]
    for i, (p, cid) in enumerate(zip(b.phones, cids, strict=True)):
        b.send(
            p,
            b.t + i * 0.02,
            "incoming_call",
            call,
            remote=number,
            display_remote=name,
            call_id=cid,
        )
    end = b.t + ring
    if not answered:
        for i, (p, cid) in enumerate(zip(b.phones, cids, strict=True)):
            b.send(
                p,
                end + i * GAP,
                "missed_call",
                call,
                remote=number,
                display_remote=name,
                call_id=cid,
            )
        return
    winner = b.rng.randrange(len(b.phones))
    w, wcid = b.phones[winner], cids[winner]
    b.off_hook(w, end - 0.2)
    b.send(w, end, "establish_call", call, remote=number, call_id=wcid)
    # The PBX cancels the other phones' ringing as soon as one answers.
    for i, (p, cid) in enumerate(zip(b.phones, cids, strict=True)):
        if i != winner:
            b.send(
                p,
                end + b.timing.cause() + i * GAP,
                "missed_call",
                call,
                remote=number,
                display_remote=name,
                call_id=cid,
            )
    talk = b.timing.talk(b.rng)
    talked(b, call, b.terminate(w, end + talk, call, wcid, number, end))


def shared_line(b: FlowBuilder) -> None:
    """One external number (a company's shared line) calls two extensions at once, as two
    calls: both ring within the merge window, as a ring group would, and both answer."""
    a, c = b.phones[0], b.phones[1]
    number, name = b.new_external()
    for i, p in enumerate((a, c)):
        b.t += i * 0.02
        call = b.call("shared_line", "answered", number, p.extension)
        cid = b.leg(p, call)
        b.send(p, b.t, "incoming_call", call, remote=number, display_remote=name, call_id=cid)
        answer = b.t + b.timing.answer_ring(b.rng)
        b.off_hook(p, answer - 0.2)
        b.send(p, answer, "establish_call", call, remote=number, call_id=cid)
        talk = b.timing.talk(b.rng)
        talked(b, call, b.terminate(p, answer + talk, call, cid, number, answer))


def blind_transfer(b: FlowBuilder) -> None:
    """`a` answers an external caller and blind-transfers the call to `c`, who answers."""
    a, c = b.phones[0], b.phones[1]
    call, cid, number, name, answer = answered_inbound(b, a, "blind_transfer")
    t = answer + b.timing.talk(b.rng, low=2.0) / 2
    b.send(a, t, "blind_transfer", call, remote=c.extension, call_id=cid)
    d1 = b.terminate(a, t + 0.3, call, cid, number, answer)
    ring_at = t + 0.3 + b.timing.cause()
    ccid = b.leg(c, call)
    b.send(c, ring_at, "incoming_call", call, remote=number, display_remote=name, call_id=ccid)
    answer2 = ring_at + b.timing.answer_ring(b.rng)
    b.off_hook(c, answer2 - 0.2)
    b.send(c, answer2, "establish_call", call, remote=number, call_id=ccid)
    talk = b.timing.talk(b.rng)
    talked(b, call, d1, b.terminate(c, answer2 + talk, call, ccid, number, answer2))


def attended_transfer(b: FlowBuilder) -> None:
    """`a` answers, holds the caller, consults `c`, then hands the caller over to `c`."""
    a, c = b.phones[0], b.phones[1]
    first, cid, number, _, answer = answered_inbound(b, a, "attended_transfer")
    b.calls[-1].part = "original"
    t = answer + b.timing.talk(b.rng, low=2.0) / 2
    b.send(a, t, "hold_call", first, remote=number, call_id=cid)
    b.t = t  # the consultation call starts now
    consult = b.call("attended_transfer", "answered", a.extension, c.extension, part="consult")
    ca, cc, rings = internal_start(b, consult, a, c, t + 1.5, lift=False)
    answer2 = rings + b.timing.answer_ring(b.rng)
    b.off_hook(c, answer2 - 0.2)
    b.send(c, answer2, "establish_call", consult, remote=a.extension, call_id=cc)
    b.send(a, answer2 + GAP, "establish_call", consult, remote=c.extension, call_id=ca)
    t = answer2 + b.rng.uniform(5.0, 30.0)
    b.send(a, t, "attended_transfer", consult, remote=c.extension, call_id=ca)
    d_consult = b.terminate(a, t + 0.2, consult, ca, c.extension, answer2 + GAP, False)
    talked(b, first, b.terminate(a, t + 0.3, first, cid, number, answer))
    # The target now talks to the caller on its consultation leg, and ends it.
    end = t + b.timing.talk(b.rng)
    talked(b, consult, d_consult, b.terminate(c, end, consult, cc, number, answer2))


def reboot(b: FlowBuilder) -> None:
    """An answered call whose phone reboots: Booting Completed, Registration, no Terminate."""
    a = b.phones[0]
    call, _, _, _, answer = answered_inbound(b, a, "reboot")
    b.calls[-1].end_reason = "timeout"
    t = answer + b.timing.talk(b.rng, low=2.0) / 2
    b.send(a, t, "booting_completed", call)
    b.send(a, t + b.rng.uniform(1.0, 3.0), "registration", call)
