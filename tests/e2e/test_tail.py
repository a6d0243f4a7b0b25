"""`callhook tail` as a new user meets it: no hub, wrong arguments, config defaults, snapshot."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.support.hub import Hub, free_port
from tests.support.phone import Phone


def run_tail(
    *args: str, cwd: Path | None = None, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLHOOK_")}
    return subprocess.run(
        [sys.executable, "-m", "callhook", "tail", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        env=env,
    )


def test_an_unreachable_hub_is_one_line_then_exit_1(tmp_path: Path) -> None:
    url = f"ws://127.0.0.1:{free_port()}/"
    done = run_tail(
        "--url", url, "--tenant", "acme", "--password", "x", "--timeout", "2", cwd=tmp_path
    )
    assert done.returncode == 1, done
    lines = done.stderr.splitlines()
    assert len(lines) == 2, lines
    assert lines[0].startswith(f"cannot reach {url}: ") and "retrying" in lines[0]
    assert lines[1].startswith(f"Error: no hub at {url} for ")


def test_arguments_are_checked_before_the_password_is_asked(tmp_path: Path) -> None:
    bogus = run_tail("--tenant", "acme", "--key", "bogus", cwd=tmp_path)
    assert bogus.returncode == 2
    assert "unknown key 'bogus'" in bogus.stderr and "Password" not in bogus.stdout + bogus.stderr
    topic = run_tail("--tenant", "acme", "--topic", "calls", cwd=tmp_path)
    assert topic.returncode == 2 and "unknown topic 'calls'" in topic.stderr
    nobody = run_tail(cwd=tmp_path)  # no config here, no --tenant
    assert nobody.returncode == 2 and "give --tenant" in nobody.stderr
    assert "Password" not in nobody.stdout + nobody.stderr


def test_url_and_password_come_from_the_config_file(shared_hub: Hub) -> None:
    phone = Phone(shared_hub.port, "gs-7f3a9c", "101", mac="000B82770101")
    assert phone.send("DND On").status == 200
    done = run_tail(
        *("--config", str(shared_hub.config_path), "--tenant", "acme"),
        *("--key", "dnd_on", "--since-seq", "0", "--count", "1", "--json"),
    )
    assert done.returncode == 0, done.stderr
    event = json.loads(done.stdout.splitlines()[0])
    assert event["event_type"] == "dnd_on"


def test_snapshot_is_printed_in_text_mode(shared_hub: Hub) -> None:
    phone = Phone(shared_hub.port, "gs-7f3a9c", "102", mac="000B82770102")
    assert phone.send("DND On").status == 200
    done = run_tail(
        *("--url", f"ws://127.0.0.1:{shared_hub.wsi_port}/", "--tenant", "acme"),
        *("--password", "tenant-secret", "--snapshot", "--since-seq", "0"),
        *("--key", "dnd_on", "--count", "1"),
    )
    assert done.returncode == 0, done.stderr
    assert "snapshot as of seq" in done.stdout, done.stdout
    row = next(line.split() for line in done.stdout.splitlines() if line.split()[:1] == ["102"])
    assert "dnd" in row, done.stdout
