"""How to run callhook again, spelled the way it works from where the user stands.

After `make serve` in a clone, `callhook` is `.venv/bin/callhook` and not on PATH: a banner
that says `callhook tail ...` would answer "command not found". Banners print this instead.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys


def command(argv0: str | None = None, cwd: str | None = None) -> str:
    """`callhook` when that name on PATH is this program, else the path that started it."""
    argv0 = argv0 if argv0 is not None else sys.argv[0]
    if os.path.basename(argv0) != "callhook":  # `python -m callhook`, a test runner, ...
        return f"{shlex.quote(sys.executable)} -m callhook"
    on_path = shutil.which("callhook")
    if on_path and os.path.realpath(on_path) == os.path.realpath(argv0):
        return "callhook"
    path = os.path.abspath(argv0)
    here = os.path.abspath(cwd or os.getcwd())
    if path.startswith(here + os.sep):
        path = os.path.relpath(path, here)
    return shlex.quote(path)
