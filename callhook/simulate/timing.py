"""How long phones ring and talk, in simulated seconds, and what the hub will call it.

The hub measures ring time on its own wall clock, so whether an unanswered call is `missed`
or `abandoned` depends on the wall-clock ring (simulated / speed) against the hub's
`correlation.min_ring_seconds`. Missed calls ring well above that threshold and abandoned
ones well below it, so the expected status holds whatever the hub's rounding and the
network's jitter.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

# A caller who gives up "at once" hangs up within about two seconds (the definition).
ABANDON_MAX = 2.0
# A caller who lets it ring gives up after at least this long (simulated seconds).
MISSED_MIN = 15.0
# Wall-clock margins around the hub's threshold: jitter of the network and of the hub's
# event loop, and rounding of ring seconds to whole seconds.
_ABANDON_FACTOR = 0.5
_MISSED_FACTOR = 1.3
_MISSED_SLACK = 0.5


@dataclass(frozen=True, slots=True)
class Timing:
    """Ring and talk times for a run at `speed` against a hub with `min_ring` (wall s)."""

    speed: float
    min_ring: float = 5.0
    max_talk: float = 900.0
    causal: float = 0.5  # wall seconds between a report and another phone's report it causes

    def cause(self) -> float:
        """Simulated seconds from one phone's report to another phone's report that it
        causes (a dial and the called phone ringing, an answer and the others' ringing
        stopping, a transfer and its target ringing). Real phones are ~0.1 s apart; under
        compression the gap is kept in wall time, so network jitter cannot reorder cause
        and effect (the hub is tested on reports that really race, not on impossible ones).
        """
        return max(0.15, self.causal * self.speed)

    def answer_ring(self, rng: random.Random) -> float:
        """Ring time before someone answers (never shorter than a causal gap: every phone
        of a ring group rings before one answers)."""
        return max(rng.uniform(1.5, 12.0), self.cause())

    def talk(self, rng: random.Random, low: float = 4.0) -> float:
        """A conversation: log-normal, median one minute, within [low, max_talk]."""
        high = max(low, self.max_talk)
        return min(high, max(low, rng.lognormvariate(math.log(60.0), 0.9)))

    def missed_ring(self, rng: random.Random) -> float:
        """Ring time of a call nobody answered before the caller gave up."""
        wall = _MISSED_FACTOR * max(self.min_ring, self._boundary()) + _MISSED_SLACK
        return max(MISSED_MIN, wall * self.speed) * rng.uniform(1.0, 1.5)

    def abandoned_ring(self, rng: random.Random) -> float:
        """Ring time of a call the caller hung up on at once."""
        cap = min(ABANDON_MAX, _ABANDON_FACTOR * min(self.min_ring, self._boundary()) * self.speed)
        if cap <= 0:
            return rng.uniform(0.3, ABANDON_MAX)  # min_ring 0: every ring counts as missed
        return rng.uniform(min(0.3, cap / 2), cap)

    def unanswered_status(self, ring: float) -> str:
        """What the hub decides for an unanswered call to an extension that rang `ring`."""
        return "missed" if ring / self.speed >= self.min_ring else "abandoned"

    def _boundary(self) -> float:
        # The hub may compare whole seconds: a ring of x counts as round(x), so the threshold
        # really sits at ceil(min_ring) - 0.5 when that is below min_ring.
        if self.min_ring <= 0:
            return 0.0
        return max(0.25, math.ceil(self.min_ring) - 0.5)


def hub_settings(speed: float, max_talk: float = 900.0) -> dict[str, float]:
    """Correlation settings that make a hub judge a run at `speed` as it would judge the same
    calls in real time: its windows are wall-clock seconds, the simulated day is not.

    The defaults (`min_ring_seconds` 5, `merge_window` 5, `session_timeout` 4 h) are meant
    for real time; at `--speed 60` a 5 s merge window spans five simulated minutes, in which
    one extension makes several calls; below 1 s, though, the window would be narrower than
    the jitter of a busy hub's responses. The hub compares ring time in whole seconds, so
    the ring threshold stays at 1 s or more. `session_timeout` must outlast the longest silence
    of a call (`max_talk`), or talking calls are closed as if their phone had rebooted.
    """
    return {
        "min_ring_seconds": max(1.0, 5.0 / speed),
        "merge_window": max(1.0, 5.0 / speed),
        "session_timeout": max(5.0, round(1.5 * max_talk / speed + 1.0, 1)),
    }
