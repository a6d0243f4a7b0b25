"""A host of its own for one node: a Linux network namespace joined to this machine by a veth pair.

`Netns.create()` makes the namespace and the pair (names unique to this process, a /30 of
10.213.0.0/16 that no interface of this machine uses), `host_ip` on this machine's end and
`ns_ip` inside. A node run with `exec_prefix()` (`ip netns exec NAME ...`) reaches this
machine only through the veth, and the test's phones reach it the same way; `cut()` takes
this machine's end down: from then on every packet between them is dropped in silence (no
reset, no ICMP), as when a cable or a switch dies; `restore()` brings it back.
`run_inside(fn)` runs `fn` on a thread that joined the namespace (a phone on the node's own
host, which still reaches it when the link is down). `close()` ends the processes left in
the namespace and removes it and the pair, whatever happened before (and the next
`create()` removes what a killed test process left).

Needs root and iproute2 (`make test` installs it): a skip on a developer's machine, a
failure under CI=true (`create()` raises `Unavailable`; `require()` turns it into either).
Traffic never leaves this machine.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import fcntl
import ipaddress
import itertools
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from tests.support.postgres import IN_CI

T = TypeVar("T")
RANGE = ipaddress.ip_network("10.213.0.0/16")  # private; split into /30s, one per pair
LOCK = "/tmp/callhook-netns.lock"  # test processes running at once pick their /30 in turn
CLONE_NEWNET = 0x40000000
_names = itertools.count(1)


class Unavailable(Exception):
    """Network namespaces cannot be made here (not root, no iproute2, no kernel support)."""


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    run = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if check and run.returncode != 0:
        raise Unavailable(f"ip {' '.join(args)}: {run.stderr.strip() or run.returncode}")
    return run


def _addresses_in_use() -> set[ipaddress.IPv4Address]:
    out = _ip("-o", "-4", "addr", "show").stdout
    used = set()
    for line in out.splitlines():
        fields = line.split()
        if "inet" in fields:
            used.add(ipaddress.IPv4Interface(fields[fields.index("inet") + 1]).ip)
    return used


class Netns:
    """One namespace and its veth pair (see the module's docstring)."""

    def __init__(self) -> None:
        n = next(_names)
        self.name = f"callhook-{os.getpid()}-{n}"
        # Interface names are 15 bytes at most.
        self.host_if = f"chh{os.getpid()}x{n}"[:15]
        self.ns_if = f"chn{os.getpid()}x{n}"[:15]
        self.host_ip = ""
        self.ns_ip = ""
        self.network = ""
        self._made = False

    @classmethod
    def create(cls) -> Netns:
        if os.geteuid() != 0:
            raise Unavailable("network namespaces need root")
        if shutil.which("ip") is None:
            raise Unavailable(
                "`ip` is not installed (Debian package iproute2; make test installs it)"
            )
        ns = cls()
        try:
            ns._create()
        except BaseException:
            ns.close()
            raise
        return ns

    def _create(self) -> None:
        self._made = True
        atexit.register(self.close)
        _sweep()
        _ip("netns", "del", self.name, check=False)  # a leftover of a killed run's pid
        _ip("link", "del", self.host_if, check=False)
        _ip("netns", "add", self.name)
        with open(LOCK, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # held until the addresses are set
            used = _addresses_in_use()
            net = next((s for s in RANGE.subnets(new_prefix=30) if not set(s.hosts()) & used), None)
            if net is None:
                raise Unavailable(f"no free /30 left in {RANGE}")
            host_ip, ns_ip = (str(a) for a in net.hosts())
            _ip("link", "add", self.host_if, "type", "veth", "peer", "name", self.ns_if)
            _ip("link", "set", self.ns_if, "netns", self.name)
            _ip("addr", "add", f"{host_ip}/30", "dev", self.host_if)
        self.host_ip, self.ns_ip, self.network = host_ip, ns_ip, str(net)
        _ip("link", "set", self.host_if, "up")
        inside = ("netns", "exec", self.name, "ip")
        _ip(*inside, "addr", "add", f"{ns_ip}/30", "dev", self.ns_if)
        _ip(*inside, "link", "set", self.ns_if, "up")
        _ip(*inside, "link", "set", "lo", "up")

    def exec_prefix(self) -> list[str]:
        """Put before a command to run it inside the namespace."""
        return ["ip", "netns", "exec", self.name]

    def cut(self) -> None:
        """Take this machine's end of the link down: silence both ways."""
        _ip("link", "set", self.host_if, "down")

    def restore(self) -> None:
        _ip("link", "set", self.host_if, "up")
        # The connected route comes back with the link; wait until it is there.
        deadline = time.monotonic() + 10
        while self.network not in _ip("-4", "route", "show", "dev", self.host_if).stdout:
            if time.monotonic() > deadline:
                raise RuntimeError(f"no route to {self.network} after the link came back")
            time.sleep(0.05)

    def run_inside(self, fn: Callable[[], T]) -> T:
        """`fn()` on a new thread that joined the namespace (its sockets are made there)."""

        def enter_and_run() -> T:
            libc = ctypes.CDLL(None, use_errno=True)
            fd = os.open(f"/var/run/netns/{self.name}", os.O_RDONLY)
            try:
                if libc.setns(fd, CLONE_NEWNET) != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, f"setns({self.name}): {os.strerror(err)}")
            finally:
                os.close(fd)
            return fn()

        # A thread of its own, never reused: the namespace stays with the thread.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="netns") as one:
            return one.submit(enter_and_run).result()

    def close(self) -> None:
        """End the processes still in the namespace, remove it and the pair (idempotent)."""
        if not self._made:
            return
        self._made = False
        pids = _ip("netns", "pids", self.name, check=False).stdout.split()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid), signal.SIGKILL)
        _ip("netns", "del", self.name, check=False)  # takes the namespace's end with it
        _ip("link", "del", self.host_if, check=False)  # and its peer, if that was not yet


def _sweep() -> None:
    """Remove what test processes that died without cleaning up (SIGKILL) left behind:
    namespaces named after a process that no longer runs, and their processes."""
    for line in _ip("netns", "list", check=False).stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        parts = name.split("-")
        if len(parts) != 3 or parts[0] != "callhook" or not parts[1].isdigit():
            continue
        try:
            os.kill(int(parts[1]), 0)
            continue  # its process still runs: its own
        except ProcessLookupError:
            pass
        except PermissionError:
            continue
        for pid in _ip("netns", "pids", name, check=False).stdout.split():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid), signal.SIGKILL)
        _ip("netns", "del", name, check=False)  # its veth pair goes with it


def require() -> Netns:
    """A new namespace, or a skip (a failure under CI=true) where none can be made."""
    import pytest

    try:
        return Netns.create()
    except Unavailable as exc:
        if IN_CI:
            pytest.fail(f"cannot make a network namespace: {exc}")
        pytest.skip(f"cannot make a network namespace: {exc}")
