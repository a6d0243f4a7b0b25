"""Shared benchmark plumbing: processes pinned to cores, readiness, load generation, tables.

These machines are shared and noisy, so every benchmark measures its own baseline in the
same run and reports a ratio (bench/README.md).
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path

from tests.support.ports import free_port as free_port  # for the benchmarks

ROOT = Path(__file__).resolve().parent.parent
SERVER_CPU = 0
CLIENT_CPU = 1 if (os.cpu_count() or 1) > 1 else 0


def start(
    cmd: Sequence[str],
    *,
    cpu: int | None = SERVER_CPU,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """Start a server process, pinned to one core (taskset semantics via sched_setaffinity)."""

    def pin() -> None:
        if cpu is not None and hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(0, {cpu})

    return subprocess.Popen(
        list(cmd),
        cwd=cwd,
        env=env,
        preexec_fn=pin,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            raise RuntimeError(f"server exited: {err[-2000:]}")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{url} not ready after {timeout}s")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wrk_available() -> bool:
    return shutil.which("wrk") is not None


def run_wrk(url: str, *, seconds: int, connections: int, script: str | None = None) -> float:
    """Requests/s measured by wrk on the client core; non-2xx responses make it fail."""
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency"]
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(script or "")
        f.write(
            "\nlocal bad = 0\nresponse = function(status, headers, body)\n"
            "  if status >= 300 then bad = bad + 1 end\nend\n"
            "done = function(summary, latency, requests)\n"
            '  io.write(string.format("NON2XX %d\\n", summary.errors.status))\nend\n'
        )
        path = f.name
    cmd += ["-s", path, url]

    def pin() -> None:
        if hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(0, {CLIENT_CPU})

    out = subprocess.run(cmd, capture_output=True, text=True, preexec_fn=pin, check=True).stdout
    os.unlink(path)
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    bad = re.search(r"NON2XX (\d+)", out)
    if not m:
        raise RuntimeError(f"cannot read wrk output:\n{out}")
    if bad and int(bad.group(1)) > 0:
        raise RuntimeError(f"wrk saw {bad.group(1)} non-2xx responses:\n{out}")
    return float(m.group(1))


async def _asyncio_load(
    host: str, port: int, targets: Callable[[int], str], seconds: float, connections: int
) -> float:
    """Fallback generator: keep-alive GETs on `connections` sockets; returns requests/s."""
    count = 0
    stop_at = time.monotonic() + seconds

    async def conn(n: int) -> None:
        nonlocal count
        reader, writer = await asyncio.open_connection(host, port)
        i = n
        try:
            while time.monotonic() < stop_at:
                target = targets(i)
                i += connections
                writer.write(f"GET {target} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
                head = await reader.readuntil(b"\r\n\r\n")
                status = int(head.split(b" ", 2)[1])
                if status >= 300:
                    raise RuntimeError(f"status {status} for {target}")
                m = re.search(rb"content-length: (\d+)", head, re.I)
                await reader.readexactly(int(m.group(1)) if m else 0)
                count += 1
        finally:
            writer.close()

    t0 = time.monotonic()
    await asyncio.gather(*(conn(n) for n in range(connections)))
    return count / (time.monotonic() - t0)


def load(
    host: str,
    port: int,
    *,
    targets: Callable[[int], str],
    wrk_script: str,
    seconds: int = 8,
    connections: int = 64,
) -> tuple[float, str]:
    """Requests/s and the tool used: wrk when installed, else the asyncio generator."""
    if wrk_available():
        return run_wrk(
            f"http://{host}:{port}/", seconds=seconds, connections=connections, script=wrk_script
        ), "wrk"
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {CLIENT_CPU})
    rate = asyncio.run(_asyncio_load(host, port, targets, seconds, connections))
    return rate, "asyncio"


def table(title: str, header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=False)]
    line = "  ".join(str(h).ljust(w) for h, w in zip(header, widths, strict=True))
    out = [title, line, "-" * len(line)]
    for r in rows:
        out.append("  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)))
    return "\n".join(out)


def python() -> str:
    return sys.executable


def database(tmp: Path, name: str = "bench.db") -> tuple[str, str]:
    """The hub's database for this run, and the suffix of its RATIO names.

    `BENCH_DATABASE=postgresql` runs the hub on a PostgreSQL 15 started here (Debian's
    package, on the same machine, unpinned), its ratios printed as `<name>_pg`; otherwise
    a SQLite file in `tmp`.
    """
    if os.environ.get("BENCH_DATABASE", "sqlite") == "postgresql":
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
        from tests.support import postgres

        return postgres.server().new_database(), "_pg"
    return f"sqlite:///{tmp / name}", ""


def _cpu_ns(pid: int) -> int:
    """On-CPU time of every thread of `pid`, in nanoseconds (0 once it has ended)."""
    total = 0
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return 0
    for task in tasks:
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (OSError, ValueError):
            pass  # a thread that just ended
    return total


def database_cpu_ns() -> int:
    """CPU time of the PostgreSQL server `database()` started (the postmaster and every
    process it forked, backends included), in nanoseconds; 0 when the hub runs on SQLite
    (its database work is in the hub's own CPU time)."""
    if os.environ.get("BENCH_DATABASE", "sqlite") != "postgresql":
        return 0
    from tests.support import postgres

    head = (postgres.server().data / "postmaster.pid").read_text().split("\n", 1)[0]
    postmaster = int(head)
    total = _cpu_ns(postmaster)
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            stat = (proc / "stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == postmaster:  # field 4: the parent
            total += _cpu_ns(int(proc.name))
    return total


def _stat_cpu_ns(pid: int) -> int:
    """User + system time of process `pid` in nanoseconds (0 once it has ended)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    ticks = int(fields[11]) + int(fields[12])  # fields 14 and 15: utime, stime
    return ticks * 1_000_000_000 // os.sysconf("SC_CLK_TCK")


def process_tree(root: int) -> list[int]:
    """`root` and every process under it (a PostgreSQL postmaster and its backends)."""
    children: dict[int, list[int]] = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            stat = (proc / "stat").read_text()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])  # field 4: the parent
        children.setdefault(parent, []).append(int(proc.name))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


class CpuMeter:
    """On-CPU time of named process trees between `start()` and `stop()`.

    Per process: user + system time (/proc/PID/stat, ended threads included) now minus at
    the start; a process that started meanwhile counts whole, one that ended meanwhile is
    lost (PostgreSQL backends of a connection pool live as long as the pool).
    """

    def __init__(self, roots: dict[str, int]) -> None:
        self.roots = roots
        self._before: dict[str, dict[int, int]] = {}

    def _read(self) -> dict[str, dict[int, int]]:
        return {name: {pid: _stat_cpu_ns(pid) for pid in process_tree(root)}
                for name, root in self.roots.items()}  # fmt: skip

    def start(self) -> None:
        self._before = self._read()

    def stop(self) -> dict[str, float]:
        """Seconds of CPU each tree used since `start()`."""
        after = self._read()
        return {
            name: sum(ns - self._before[name].get(pid, 0) for pid, ns in now.items()) / 1e9
            for name, now in after.items()
        }
