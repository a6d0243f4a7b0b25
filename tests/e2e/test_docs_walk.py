"""The README's and docs/api.md's commands, run literally against a fresh `make serve`.

A new user copies the shell blocks in order, from a clone, with the hub that `make serve`
started on the sample config it wrote. So does this test: it builds a directory that looks
like a fresh clone (the Makefile, pyproject.toml and this checkout's virtualenv), runs
`make serve` there, and feeds every `sh` block to one bash, in document order, unchanged.

Everything runs in a private network namespace (`unshare`): the hub gets the sample's own
ports (8080, 8885) whatever else runs on this machine, and nothing leaves the machine. The
docs' webhook targets are on example.com; inside the namespace that name resolves to its
public address, which has no route, so the hub accepts the targets and its deliveries fail.

Only `curl` is wrapped, to record each response's status on stderr; commands and their
arguments are the documents' own.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# The documents' `make` lines: `serve` is started once for the walk; the others run the
# test suite, lint and benchmarks, which this test is part of.
MAKE_TARGETS = {"serve", "test", "lint", "bench"}
EXAMPLE_COM = "93.184.215.14"  # example.com's public address; unreachable in the namespace


@dataclass
class Block:
    source: str
    line: int
    text: str


def shell_blocks(doc: Path) -> list[Block]:
    """Every ```sh block of `doc`, with its `make ...` lines taken out (checked, not run)."""
    blocks = []
    rel = doc.relative_to(ROOT)
    for m in re.finditer(r"^```sh\n(.*?)^```", doc.read_text(encoding="utf-8"), re.S | re.M):
        kept = []
        for line in m.group(1).splitlines():
            if line.startswith("make "):
                target = line.split()[1]
                assert target in MAKE_TARGETS, f"{rel}: unexpected make target {target!r}"
                continue
            kept.append(line)
        line_no = doc.read_text(encoding="utf-8")[: m.start()].count("\n") + 1
        if any(k.strip() for k in kept):
            blocks.append(Block(f"{rel}:{line_no}", line_no, "\n".join(kept)))
    return blocks


def fresh_clone(where: Path) -> Path:
    """What a clone looks like to `make serve`: the Makefile, pyproject.toml, a virtualenv."""
    where.mkdir()
    shutil.copy2(ROOT / "Makefile", where / "Makefile")
    stamp = ROOT / ".venv" / ".installed"
    assert stamp.exists(), "run `make dev` first"
    shutil.copy2(ROOT / "pyproject.toml", where / "pyproject.toml")
    # Older than the install stamp, so `make serve` does not reinstall from this directory.
    before = stamp.stat().st_mtime - 60
    os.utime(where / "pyproject.toml", (before, before))
    (where / ".venv").symlink_to(ROOT / ".venv")
    return where


RUNNER_HEAD = r"""
set -u
ip link set lo up
set -m
make serve > serve.log 2>&1 &
SERVE=$!
set +m
for _ in $(seq 1 600); do
  command curl -s -o /dev/null http://127.0.0.1:8080/readyz && break
  sleep 0.1
done
curl() { command curl -sS -w '%{stderr}::status %{http_code} %{method} %{url_effective}\n' "$@"; }
trap 'echo "::failed rc=$? $BASH_COMMAND" >&2' ERR
"""

RUNNER_TAIL = r"""
trap - ERR
kill -INT -- -"$SERVE"
wait "$SERVE"
echo "::serve-exit $?" >&2
"""


@dataclass
class Walk:
    out: dict[str, str]  # block source -> its stdout
    err: dict[str, str]  # block source -> its stderr (curl statuses, failures)
    tail: str
    serve_log: str


def walk(clone: Path, blocks: list[Block]) -> Walk:
    parts = [RUNNER_HEAD]
    for b in blocks:
        marker = f"::block {b.source}"
        # A response without a final newline must not hide the marker.
        parts.append(f"printf '\\n%s\\n' '{marker}'; echo '{marker}' >&2\n{b.text}\n")
    parts.append("printf '\\n::block end\\n'; echo '::block end' >&2\n" + RUNNER_TAIL)
    (clone / "walk.sh").write_text("".join(parts), encoding="utf-8")
    hosts = clone / "hosts"
    hosts.write_text(f"127.0.0.1 localhost\n{EXAMPLE_COM} example.com\n")
    assert shutil.which("unshare"), "unshare (util-linux) is needed for a private network"
    proc = subprocess.run(
        [
            "unshare",
            "--map-root-user",
            "--net",
            "--mount",
            "--pid",
            "--fork",
            "--kill-child",
            "bash",
            "-c",
            f"mount --bind {hosts} /etc/hosts && exec bash walk.sh",
        ],
        cwd=clone,
        capture_output=True,
        text=True,
        timeout=300,
    )

    def split(text: str) -> tuple[dict[str, str], str]:
        chunks: dict[str, str] = {}
        current, lines = "", []
        for line in text.splitlines():
            if line.startswith("::block "):
                chunks[current] = "\n".join(lines)
                current, lines = line[len("::block ") :], []
            else:
                lines.append(line)
        chunks[current] = "\n".join(lines)
        return chunks, chunks.get("end", "")

    out, _ = split(proc.stdout)
    err, tail = split(proc.stderr)
    log = (
        (clone / "serve.log").read_text(errors="replace") if (clone / "serve.log").exists() else ""
    )
    return Walk(out, err, tail, log)


@pytest.fixture(scope="module")
def walked(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Block], Walk]:
    clone = fresh_clone(tmp_path_factory.mktemp("walk") / "callhook")
    blocks = shell_blocks(ROOT / "README.md") + shell_blocks(ROOT / "docs" / "api.md")
    return blocks, walk(clone, blocks)


def test_every_block_runs_as_written(walked: tuple[list[Block], Walk]) -> None:
    blocks, w = walked
    problems = []
    for b in blocks:
        err = w.err.get(b.source)
        if err is None:
            problems.append(f"{b.source}: never ran")
            continue
        for line in err.splitlines():
            if line.startswith("::failed"):
                problems.append(f"{b.source}: {line}")
            elif line.startswith("::status"):
                status = int(line.split()[1])
                if not 200 <= status < 400:
                    problems.append(f"{b.source}: {line}")
            elif line.strip() and not line.startswith("note: "):  # a hint is fine
                problems.append(f"{b.source}: stderr: {line}")
    assert not problems, "\n".join(problems) + "\n--- serve.log:\n" + w.serve_log[-3000:]
    # Stopped as Ctrl-C stops `make serve` (make itself then reports the signal).
    assert "::serve-exit" in w.tail, w.tail
    assert '"message":"callhook stopped"' in w.serve_log, w.serve_log[-3000:]
    assert "Traceback" not in w.serve_log, w.serve_log[-3000:]


def test_readme_first_call_ends_and_leaves_alice_idle(walked: tuple[list[Block], Walk]) -> None:
    blocks, w = walked
    first = next(b for b in blocks if "Incoming%20Call" in b.text)
    answers, text, decoder = [], w.out[first.source].strip(), json.JSONDecoder()
    while text:  # curl prints each JSON body without a newline after it
        value, end = decoder.raw_decode(text)
        answers.append(value)
        text = text[end:].strip()
    state, events = answers[-1], answers[-2]
    assert state["status"] == "available" and state["sessions"] == [], state
    assert state["ringing"] is False, state
    keys = [e["event_type"] for e in events]
    assert keys == [
        "call_start",
        "target_add",
        "target_ringing",
        "target_noanswer",
        "call_ended",
        "call_cdr",
    ], keys
    cdr = next(e for e in events if e["event_type"] == "call_cdr")
    assert cdr["status"] == "abandoned"  # as the README says: it rang under min_ring_seconds


def test_the_hub_was_started_the_way_make_serve_starts_it(
    walked: tuple[list[Block], Walk],
) -> None:
    _, w = walked
    assert "wrote a sample config to callhook.toml" in w.serve_log
    assert "127.0.0.1:8080" in w.serve_log
    # The banner says that real phones cannot reach a loopback listener, and names the
    # command the way it works from the clone (callhook is not on PATH there).
    assert "takes connections from this machine only" in w.serve_log
    assert "URLs for every event and vendor: .venv/bin/callhook phone-urls" in w.serve_log
