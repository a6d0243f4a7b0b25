"""Simulated IP phones sending real Action URL requests to a hub (`callhook simulate`).

`scenarios.generate` plans a seeded day of calls (pure); `run_simulation` sends it to a hub
over keep-alive HTTP/1.1 connections, one per phone, and returns a `SimulationResult` that
says which CDRs (status, call ids) and which final presence the hub should end up with.
"""

from callhook.simulate.model import CALL_FLOWS, DEFAULT_MIX, FLOWS, ExpectedCall, PhoneState, Plan
from callhook.simulate.runner import Progress, SimulationError, SimulationResult, run_simulation
from callhook.simulate.scenarios import ScenarioConfig, generate, parse_mix
from callhook.simulate.timing import hub_settings
from callhook.simulate.verify import Verification, check

__all__ = [
    "CALL_FLOWS",
    "DEFAULT_MIX",
    "FLOWS",
    "ExpectedCall",
    "PhoneState",
    "Plan",
    "Progress",
    "ScenarioConfig",
    "SimulationError",
    "SimulationResult",
    "Verification",
    "check",
    "generate",
    "hub_settings",
    "parse_mix",
    "run_simulation",
]
