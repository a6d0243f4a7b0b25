"""Debian's Kamailio and SIPp for tests: installed when missing, run on loopback ports.

`Kamailio` runs the configuration `callhook kamailio-config` prints; `sipp()` runs one SIPp
scenario from adapters/kamailio/sipp/ to completion, `Uas` keeps a SIPp callee running.
All SIP traffic stays on 127.0.0.1.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.ports import free_port

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ROOT / "adapters" / "kamailio" / "sipp"
PACKAGES = ("kamailio", "kamailio-extra-modules", "kamailio-utils-modules", "sip-tester")
MODULES = Path("/usr/lib/x86_64-linux-gnu/kamailio/modules")
NEEDED = ("dialog.so", "jansson.so", "http_client.so", "mqueue.so", "rtimer.so")
DOMAIN = "acme.example.com"


def _missing() -> list[str]:
    out = [b for b in ("kamailio", "sipp") if shutil.which(b) is None]
    return out + [m for m in NEEDED if not (MODULES / m).exists()]


def ensure_installed() -> None:
    """Install Kamailio, its module packages and SIPp from Debian when missing; a test that
    needs them fails (never skips) when they cannot be had."""
    if not _missing():
        return
    if shutil.which("apt-get") is not None and os.geteuid() == 0:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        install = ["apt-get", "install", "-y", "--no-install-recommends", *PACKAGES]
        if subprocess.run(install, env=env, capture_output=True).returncode != 0:
            subprocess.run(["apt-get", "update"], env=env, capture_output=True)
            subprocess.run(install, env=env, capture_output=True)
    if _missing():
        pytest.fail(
            f"Kamailio/SIPp not installed ({', '.join(_missing())}): apt-get install "
            + " ".join(PACKAGES)
        )


def free_udp_port() -> int:
    return free_port(socket.SOCK_DGRAM)


class Kamailio:
    """A Kamailio process running a generated configuration on a free loopback port."""

    def __init__(self, workdir: Path, config_text: str, port: int) -> None:
        self.workdir = workdir
        self.port = port
        self.cfg = workdir / "kamailio.cfg"
        self.cfg.write_text(config_text)
        self.log_path = workdir / "kamailio.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @staticmethod
    def generate(
        hub_config: Path, hub_url: str, port: int, *, key: str | None = None, **options: str
    ) -> str:
        """The configuration `callhook kamailio-config` prints for tenant acme."""
        cmd = [
            sys.executable, "-m", "callhook.cli", "kamailio-config",
            "--config", str(hub_config), "--tenant", "acme", "--hub", hub_url,
            "--listen", f"udp:127.0.0.1:{port}",
        ]  # fmt: skip
        if key is not None:
            cmd += ["--key", key]
        for name, value in options.items():
            flag = "--" + name.replace("_", "-")
            cmd += [flag, value] if value else [flag]
        env = {k: v for k, v in os.environ.items() if not k.startswith("CALLHOOK_")}
        done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=hub_config.parent)
        assert done.returncode == 0, done.stderr
        return done.stdout

    def start(self, timeout: float = 20.0) -> Kamailio:
        run_dir = self.workdir / "run"
        run_dir.mkdir(exist_ok=True)
        cmd = ["kamailio", "-f", str(self.cfg), "-DD", "-E", "-Y", str(run_dir), "-m", "256",
               "-M", "16"]  # fmt: skip
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"kamailio exited {self.proc.returncode}:\n{self.logs()}")
            if self._answers():
                return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"kamailio not answering after {timeout}s:\n{self.logs()}")

    def _answers(self) -> bool:
        """Whether Kamailio answers a SIP OPTIONS on its port."""
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            s.settimeout(0.3)
            local = s.getsockname()[1]
            msg = (
                f"OPTIONS sip:{DOMAIN} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP 127.0.0.1:{local};branch=z9hG4bK-probe{time.monotonic_ns()}\r\n"
                f"From: <sip:probe@{DOMAIN}>;tag=probe\r\nTo: <sip:{DOMAIN}>\r\n"
                f"Call-ID: probe-{time.monotonic_ns()}\r\nCSeq: 1 OPTIONS\r\n"
                "Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
            )
            s.sendto(msg.encode(), ("127.0.0.1", self.port))
            try:
                data = s.recv(65535)
            except OSError:
                return False
            return data.startswith(b"SIP/2.0 ")

    def logs(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-6000:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@dataclass(frozen=True)
class SippRun:
    """One finished SIPp run."""

    returncode: int
    successful: int
    failed: int
    output: str


def _sipp_cmd(scenario: str, port: int, keys: dict[str, str], extra: list[str]) -> list[str]:
    # A lost datagram must fail the call, not leave it waiting forever (SIPp stops resending
    # an INVITE once 100 Trying came).
    cmd = ["sipp", "-sf", str(SCENARIOS / scenario), "-i", "127.0.0.1", "-p", str(port),
           "-nostdin", "-recv_timeout", "20000", "-buff_size", "4194304"]  # fmt: skip
    for k, v in keys.items():
        cmd += ["-key", k, v]
    return cmd + extra


def sipp(
    scenario: str,
    proxy_port: int,
    *,
    port: int,
    callee: str = "102",
    caller: str = "101",
    name: str = "Alice",
    calls: int = 1,
    rate: float = 10.0,
    pause_ms: int = 0,
    keys: dict[str, str] | None = None,
    call_ids: str = "",
    timeout: float = 60.0,
) -> SippRun:
    """Run a UAC scenario against Kamailio until all `calls` are done. `call_ids` is SIPp's
    `-cid_str` (`%u` the call number), to know the calls' Call-IDs in advance."""
    all_keys = {"dom": DOMAIN, "from": caller, "name": name, **(keys or {})}
    extra = ["-s", callee, "-m", str(calls), "-r", str(rate), "-l", str(max(calls, 1)),
             "-d", str(pause_ms), "-timeout", f"{int(timeout)}s", "-timeout_error",
             f"127.0.0.1:{proxy_port}"]  # fmt: skip
    if call_ids:
        extra = ["-cid_str", call_ids, *extra]
    done = subprocess.run(
        _sipp_cmd(scenario, port, all_keys, extra),
        capture_output=True,
        text=True,
        timeout=timeout + 15,
        cwd=SCENARIOS,
    )
    out = done.stdout[-3000:] + done.stderr[-2000:]
    return SippRun(
        done.returncode,
        _stat(done.stdout, "Successful call"),
        _stat(done.stdout, "Failed call"),
        out,
    )


def register(proxy_port: int, port: int, user: str, expires: int, ua: str = "SIPp phone") -> None:
    """REGISTER (or, with expires 0, sign off) `user`'s contact at 127.0.0.1:`port`."""
    keys = {"dom": DOMAIN, "user": user, "expires": str(expires), "ua": ua}
    extra = ["-m", "1", "-timeout", "10s", "-timeout_error", f"127.0.0.1:{proxy_port}"]
    done = subprocess.run(
        _sipp_cmd("register.xml", port, keys, extra), capture_output=True, text=True, timeout=20
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]


class Uas:
    """A SIPp callee answering `calls` calls with `scenario`, in the background."""

    def __init__(
        self,
        scenario: str,
        port: int,
        calls: int = 1,
        pause_ms: int = 0,
        keys: dict[str, str] | None = None,
    ) -> None:
        extra = ["-m", str(calls), "-d", str(pause_ms), "-timeout", "120s"]
        self.proc = subprocess.Popen(
            _sipp_cmd(scenario, port, keys or {}, extra),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            cwd=SCENARIOS,
        )
        deadline = time.monotonic() + 10
        while not _udp_bound(port):  # SIPp is ready once its socket is bound
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"SIPp callee did not start: {self.wait(1).output}")
            time.sleep(0.02)

    def wait(self, timeout: float = 30.0) -> SippRun:
        out, _ = self.proc.communicate(timeout=timeout)
        text = out.decode(errors="replace")
        return SippRun(self.proc.returncode, _stat(text, "Successful call"),
                       _stat(text, "Failed call"), text[-3000:])  # fmt: skip

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.communicate()  # reaps it and closes its output pipe


def _udp_bound(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
        return False


def _stat(output: str, label: str) -> int:
    """The cumulative column of a SIPp statistics line (`Successful call | 0 | 50`)."""
    for line in reversed(output.splitlines()):
        if line.strip().startswith(label):
            try:
                return int(line.split("|")[-1].split()[0])
            except (ValueError, IndexError):
                return 0
    return 0
