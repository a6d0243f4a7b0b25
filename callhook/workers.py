"""`callhook serve --workers N`: N node processes on one machine, sharing its ports.

Each worker is a whole node (`callhook serve` of the same config, node id
`NODE/1`..`NODE/N`) on the same PostgreSQL database and Redis bus as any other node; the
kernel spreads connections over them (SO_REUSEPORT on both listeners). This process only
supervises: it passes SIGINT/SIGTERM on, and when one worker exits it stops the others
and exits with that worker's status, for the service manager to restart the lot.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from types import FrameType

from callhook.config import Settings, redact_url


def check(settings: Settings, workers: int) -> str | None:
    """Why `workers` processes cannot run on these settings (one line), or None."""
    if workers > 1 and not settings.server.bus.startswith(("redis://", "rediss://")):
        database = settings.server.database
        return (
            f"--workers {workers}: several processes are several nodes, which share one"
            f' database and one bus: set [server] database = "postgresql://..." and'
            f' bus = "redis://HOST:6379/0" (now {redact_url(database)!r} and'
            f" {settings.server.bus!r}), or run one worker"
        )
    return None


def supervise(config_path: str, workers: int) -> int:
    """Run `workers` worker processes until a signal or until one exits; its status."""
    procs: list[subprocess.Popen[bytes]] = []
    for i in range(1, workers + 1):
        cmd = [sys.executable, "-m", "callhook.cli", "serve", "--config", config_path]
        procs.append(subprocess.Popen([*cmd, "--worker", f"{i}/{workers}"]))
    stopping = False

    def forward(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for p in procs:
            if p.poll() is None:
                p.send_signal(signum)

    def reload(_signum: int, _frame: FrameType | None) -> None:
        # One worker reloads the file into the database and announces it: the others
        # reload from the database (two applying the same file at once would race).
        if procs[0].poll() is None:
            procs[0].send_signal(signal.SIGHUP)

    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGHUP, reload)
    status = 0
    while any(p.poll() is None for p in procs):
        exited = [p for p in procs if p.poll() is not None]
        if exited and not stopping:  # one is gone: stop the rest, report its status
            status = exited[0].returncode or 1
            forward(signal.SIGTERM, None)
        time.sleep(0.2)
    for p in procs:
        if p.returncode:
            status = status or p.returncode
    return 0 if stopping and status in (0, -signal.SIGTERM, -signal.SIGINT) else status
