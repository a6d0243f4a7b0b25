"""The seeded generator: a configuration in, a `Plan` (every step of a simulated day) out.

Flows arrive as a Poisson process of `rate` per wall-clock second (`rate / speed` per
simulated second). Each flow takes phones that are free, registered-or-not as it needs, and
not in DND or forwarding (a real PBX would not ring them); when too few are free the flow
waits for them, so no phone is ever on two calls at once. Toggle flows (DND, forwarding,
sign-off and re-registration) change a phone's state, and the plan records the state each
extension should end in. Same configuration, same seed: the same plan, step for step.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from callhook.ingest.vendors import VENDOR_EVENT_NAMES
from callhook.simulate import flows, multiparty
from callhook.simulate.model import (
    CALL_FLOWS,
    DEFAULT_MIX,
    FLOWS,
    TOGGLE_FLOWS,
    ExpectedCall,
    PhoneState,
    Plan,
    SimPhone,
    Step,
)
from callhook.simulate.timing import Timing, hub_settings

# vendor -> (MAC prefix (OUI), models, firmware)
DEVICES: dict[str, tuple[str, tuple[str, ...], str]] = {
    "grandstream": ("000B82", ("GXP2170", "GRP2614", "GXV3370"), "1.0.11.23"),
    "yealink": ("805EC0", ("SIP-T46U", "SIP-T54W"), "108.86.0.45"),
    "snom": ("000413", ("D785", "D735"), "10.1.159.12"),
    "fanvil": ("0C383E", ("X6U", "X4U"), "2.12.20"),
}
SIM_VENDORS: tuple[str, ...] = tuple(v for v in DEVICES if v in VENDOR_EVENT_NAMES)

_BUILDERS: dict[str, Callable[[flows.FlowBuilder], None]] = {
    "inbound": flows.inbound,
    "outbound": flows.outbound,
    "internal": flows.internal,
    "hold": flows.hold,
    "missed": lambda b: flows.unanswered(b, "missed"),
    "abandoned": lambda b: flows.unanswered(b, "abandoned"),
    "ring_group": multiparty.ring_group,
    "shared_line": multiparty.shared_line,
    "blind_transfer": multiparty.blind_transfer,
    "attended_transfer": multiparty.attended_transfer,
    "reboot": multiparty.reboot,
}
_TWO_PHONES = frozenset(
    {"internal", "ring_group", "shared_line", "blind_transfer", "attended_transfer"}
)
_NAMES = ("Anna Schmidt", "O'Brien, Seán", '"Acme" Support', "山田 太郎", "Zoë Müller", "")


@dataclass(frozen=True, slots=True)
class ScenarioConfig:
    """What to simulate. Times: `rate` per wall second, `max_talk` simulated seconds,
    `min_ring` the hub's `correlation.min_ring_seconds` (wall seconds)."""

    phones: int = 20
    first_extension: int = 101
    calls: int = 100
    rate: float = 5.0
    speed: float = 60.0
    seed: int = 1
    mix: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_MIX))
    vendors: tuple[str, ...] = ("grandstream",)
    min_ring: float = 5.0
    max_talk: float = 900.0
    register_at_start: bool = True
    causal_gap: float = 0.5  # wall seconds between a report and another it causes (Timing)

    def validate(self) -> None:
        """Raise ValueError naming the first bad setting."""
        checks = (
            (self.phones >= 1, f"phones must be at least 1, not {self.phones}"),
            (self.calls >= 0, f"calls must not be negative, not {self.calls}"),
            (self.rate > 0, f"rate must be above 0, not {self.rate}"),
            (self.speed > 0, f"speed must be above 0, not {self.speed}"),
            (self.min_ring >= 0, f"min-ring must not be negative, not {self.min_ring}"),
            (self.max_talk >= 4, f"max-talk must be at least 4 s, not {self.max_talk}"),
            (bool(self.vendors), "vendors must name at least one vendor"),
            (self.causal_gap >= 0, f"causal_gap must not be negative, not {self.causal_gap}"),
        )
        for ok, message in checks:
            if not ok:
                raise ValueError(message)
        for vendor in self.vendors:
            if vendor not in SIM_VENDORS:
                raise ValueError(f"unknown vendor {vendor!r} (use {', '.join(SIM_VENDORS)})")
        for name, weight in self.mix.items():
            if name not in FLOWS or weight < 0:
                raise ValueError(f"bad mix entry {name}={weight} (flows: {', '.join(FLOWS)})")
        feasible = [f for f in CALL_FLOWS if self.mix.get(f, 0) > 0]
        if self.phones < 2:
            feasible = [f for f in feasible if f not in _TWO_PHONES]
        if self.calls and not feasible:
            raise ValueError("the mix has no call flow these phones can make")


def parse_mix(text: str) -> dict[str, float]:
    """`inbound=3,missed=1` -> weights; flows not named get weight 0."""
    mix: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = part.partition("=")
        name = name.strip().replace("-", "_")
        try:
            weight = float(value) if sep else 1.0
        except ValueError:
            raise ValueError(f"bad mix weight {part!r} (write flow=weight)") from None
        if name not in FLOWS:
            raise ValueError(f"unknown flow {name!r} (flows: {', '.join(FLOWS)})")
        mix[name] = weight
    return mix


def make_phones(cfg: ScenarioConfig, rng: random.Random) -> tuple[SimPhone, ...]:
    """One phone per extension; vendors assigned round-robin."""
    phones = []
    for i in range(cfg.phones):
        vendor = cfg.vendors[i % len(cfg.vendors)]
        oui, models, firmware = DEVICES[vendor]
        phones.append(
            SimPhone(
                extension=str(cfg.first_extension + i),
                mac=f"{oui}{rng.getrandbits(24):06X}",
                vendor=vendor,
                model=rng.choice(models),
                firmware=firmware,
                ip=f"10.20.{i // 250}.{i % 250 + 2}",
                hook_urls=rng.random() < 0.5,
            )
        )
    return tuple(phones)


def generate(cfg: ScenarioConfig) -> Plan:
    """The plan of a whole run (pure: the same `cfg` always gives the same plan)."""
    cfg.validate()
    return _Scheduler(cfg).run()


class _Scheduler:
    """Draws flows, finds them free phones, and keeps every phone's state."""

    def __init__(self, cfg: ScenarioConfig) -> None:
        self.cfg = cfg
        self.rng = random.Random(cfg.seed)
        self.phones = make_phones(cfg, self.rng)
        self.timing = Timing(cfg.speed, cfg.min_ring, cfg.max_talk, cfg.causal_gap)
        self.steps: list[Step] = []
        self.calls: list[ExpectedCall] = []
        self.flows: dict[str, int] = dict.fromkeys(FLOWS, 0)
        self.free_at = dict.fromkeys((p.extension for p in self.phones), 0.0)
        self.dnd = dict.fromkeys(self.free_at, False)
        self.forward = dict.fromkeys(self.free_at, False)
        self.registered = dict.fromkeys(self.free_at, cfg.register_at_start)
        self.max_blocked = max(0, min(cfg.phones // 2, cfg.phones - 2))
        self._ids = 0
        self._externals: set[str] = set()

    def run(self) -> Plan:
        cfg, rng = self.cfg, self.rng
        t = 0.0
        if cfg.register_at_start:  # the phones boot in the morning
            for i, p in enumerate(self.phones):
                self.steps.append(Step(i * 0.02, p.extension, "registration"))
            t = len(self.phones) * 0.02 + 1.0
        names = [f for f in FLOWS if cfg.mix.get(f, 0) > 0]
        weights = [cfg.mix[f] for f in names]
        mean_gap = cfg.speed / cfg.rate
        made, draws = 0, 0
        while made < cfg.calls and draws < 50 * cfg.calls + 1000:
            draws += 1
            t += rng.expovariate(1.0 / mean_gap)
            flow = rng.choices(names, weights)[0]
            if flow in TOGGLE_FLOWS:
                self._toggle(flow, t)
            elif (start := self._call(flow, t)) is not None:
                t, made = start, made + 1
        return self._plan(made)

    def _call(self, flow: str, t: float) -> float | None:
        """Schedule call flow `flow` at `t` or later; its start, or None if it cannot run."""
        rng = self.rng
        if flow == "ring_group":
            k = rng.randint(2, 4)
        elif flow in _TWO_PHONES:
            k = 2
        elif flow in ("missed", "abandoned"):
            k = 2 if rng.random() < 0.3 else 1
        else:
            k = 1
        pool = [p for p in self.phones if not (self.dnd[p.extension] or self.forward[p.extension])]
        k = min(k, len(pool))
        if k == 0 or (k < 2 and flow in _TWO_PHONES):
            return None
        free = [p for p in pool if self.free_at[p.extension] <= t]
        if len(free) < k:  # wait until enough phones hang up
            t = sorted(self.free_at[p.extension] for p in pool)[k - 1]
            free = [p for p in pool if self.free_at[p.extension] <= t]
        chosen = rng.sample(free, k)
        b = flows.FlowBuilder(
            rng, self.timing, t, chosen, self._call_id, self._external, len(self.calls)
        )
        _BUILDERS[flow](b)
        self.steps.extend(b.steps)
        self.calls.extend(b.calls)
        for ext, until in b.busy.items():
            self.free_at[ext] = max(self.free_at[ext], until)
        for step in b.steps:
            if step.event == "registration":
                self.registered[step.phone] = True
        self.flows[flow] += 1
        return t

    def _toggle(self, flow: str, t: float) -> None:
        free = [p.extension for p in self.phones if self.free_at[p.extension] <= t]
        if not free:
            return
        if flow == "registration":
            ext = self.rng.choice(free)
            back = t + self.rng.uniform(5.0, 60.0)
            self.steps += [Step(t, ext, "sign_off"), Step(back, ext, "registration")]
            self.free_at[ext] = back + 0.5
            self.registered[ext] = True
        else:
            state = self.dnd if flow == "dnd" else self.forward
            blocked = sum(self.dnd[e] or self.forward[e] for e in self.free_at)
            # Keep enough phones reachable: past the limit, only switch a toggle off.
            candidates = free if blocked < self.max_blocked else [e for e in free if state[e]]
            if not candidates:
                return
            ext = self.rng.choice(candidates)
            state[ext] = not state[ext]
            event = f"{flow}_{'on' if state[ext] else 'off'}"
            self.steps.append(Step(t, ext, event))
            self.free_at[ext] = t + 1.0
        self.flows[flow] += 1

    def _call_id(self, phone: SimPhone) -> str:
        self._ids += 1
        return f"{self.rng.getrandbits(32):08x}{self._ids:06d}@{phone.ip}"

    def _external(self) -> tuple[str, str]:
        """A caller number not used before in this run (calls must not merge by number)."""
        while True:
            number = self.rng.choice(("0711", "+4930", "089")) + str(self.rng.randrange(10**7))
            if number not in self._externals:
                self._externals.add(number)
                return number, self.rng.choice(_NAMES)

    def _plan(self, made: int) -> Plan:
        self.steps.sort(key=lambda s: s.at)  # stable: a flow's steps at one time keep order
        duration = self.steps[-1].at if self.steps else 0.0
        presence = {
            e: PhoneState(self.dnd[e], self.forward[e], self.registered[e]) for e in self.free_at
        }
        plan = Plan(self.phones, self.steps, self.calls, self.flows, presence, self.cfg.speed)
        plan.duration = duration
        plan.hub_settings = hub_settings(self.cfg.speed, self.cfg.max_talk)
        offered = self.cfg.calls / self.cfg.rate
        if made < self.cfg.calls:
            plan.notes.append(f"only {made} of {self.cfg.calls} calls could be scheduled")
        if self.cfg.calls and plan.wall_seconds > 1.25 * offered + 5:
            plan.notes.append(
                f"phones were busy: the calls need {plan.wall_seconds:.0f} s instead of "
                f"{offered:.0f} s at {self.cfg.rate:g}/s; add phones or raise --speed"
            )
        return plan
