"""Correlation: phone reports -> sessions (one per call), CDRs and presence.

The pipeline uses `Correlator` only; the modules behind it are: `sessions` (which session a
report belongs to, timers), `calls` (the call state machine), `apart` (calls that look like
one but are two, or the other way round), `cdr`, `presence`, `bodies` (PortSIP wire
shapes), `state` (what is remembered and persisted).
"""

from callhook.correlate.correlator import Correlator
from callhook.correlate.state import Changes, CorrelationSettings

__all__ = ["Changes", "CorrelationSettings", "Correlator"]
