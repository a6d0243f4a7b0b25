"""How banners spell the callhook command, and which listeners only this machine reaches."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from callhook.cli import loopback_only
from callhook.invocation import command


def test_a_clone_virtualenv_command_is_spelled_as_a_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    exe = tmp_path / ".venv" / "bin" / "callhook"
    exe.parent.mkdir(parents=True)
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    assert command(str(exe), cwd=str(tmp_path)) == ".venv/bin/callhook"
    assert command(str(exe), cwd="/") == str(exe)


def test_a_command_on_path_is_spelled_callhook(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    exe = tmp_path / "bin" / "callhook"
    exe.parent.mkdir()
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    monkeypatch.setenv("PATH", f"{exe.parent}{os.pathsep}/usr/bin")
    assert command(str(exe)) == "callhook"


def test_python_dash_m_is_spelled_as_such() -> None:
    assert command("/x/callhook/__main__.py") == f"{sys.executable} -m callhook"


@pytest.mark.parametrize(
    ("listen", "only_here"),
    [
        ("127.0.0.1:8080", True),
        ("127.0.0.5:8080", True),
        ("localhost:8080", True),
        ("[::1]:8080", True),
        ("0.0.0.0:8080", False),
        ("[::]:8080", False),
        ("192.0.2.10:8080", False),
        ("hub.example.com:8080", False),
    ],
)
def test_loopback_only(listen: str, only_here: bool) -> None:
    assert loopback_only(listen) is only_here
