"""CDR CSV export against formula injection: a phone's values reach a spreadsheet.

A caller ID or call id is whatever the phone (or whoever reaches the ingest port) sends.
OWASP's rule for CSV exports: a cell that starts with `=`, `+`, `-`, `@`, tab or CR is
prefixed with `'` so spreadsheets show it as text instead of running it as a formula.
"""

from __future__ import annotations

import csv
import io
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.hub import ADMIN_KEY, Hub
from tests.support.phone import Phone

HOSTILE = {
    "eq": '=HYPERLINK("http://evil.example/","x")',
    "plus": "+1+cmd|' /C calc'!A0",
    "minus": "-2+3",
    "at": "@SUM(1,2)",
    "tab": "\t=1+2",
    "cr": "\r=1+2",
}


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    h = Hub(tmp_path_factory.mktemp("csv")).start()
    try:
        yield h
    finally:
        h.stop()


def _csv_rows(hub: Hub) -> list[dict[str, str]]:
    req = urllib.request.Request(
        hub.base + "/api/v1/tenants/acme/cdrs?format=csv&limit=1000",
        headers={"Authorization": f"Bearer {ADMIN_KEY}"},
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        text = r.read().decode("utf-8")
    return list(csv.DictReader(io.StringIO(text, newline="")))


def test_formula_cells_are_exported_as_text(hub: Hub, tmp_path: Path) -> None:
    alice = Phone(hub.port, "gs-7f3a9c", "101")
    for name, value in HOSTILE.items():
        r = alice.send("Terminate Call", remote=value, call_id=f"{value}#{name}", duration="1")
        assert r.status == 200, r.body
    deadline = time.monotonic() + 10
    while len(rows := _csv_rows(hub)) < len(HOSTILE):
        assert time.monotonic() < deadline, rows
        time.sleep(0.1)
    # Written to a file and read back with Python's csv, as a spreadsheet import would.
    path = tmp_path / "cdrs.csv"
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    with path.open(encoding="utf-8", newline="") as f:
        cells = [cell for row in csv.reader(f) for cell in row]
    dangerous = [c for c in cells if c[:1] in ("=", "+", "-", "@", "\t", "\r")]
    assert dangerous == []
    # Each value is kept, after the quote: the JSON export has the values as sent.
    status, page = hub.api("GET", "/api/v1/tenants/acme/cdrs?limit=1000")
    assert status == 200
    as_json = {c["cdr_id"]: c for c in page["cdrs"]}
    quoted = 0
    for row in rows:
        cdr = as_json[row["cdr_id"]]
        for column, cell in row.items():
            value = cdr.get(column)
            if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
                assert cell == "'" + value, (column, cell, value)
                quoted += 1
    assert quoted >= len(HOSTILE)  # each hostile call id at least
    # The JSON export is data, not a spreadsheet: values unchanged there (phone values are
    # trimmed of surrounding white space on ingest, so tab and CR arrive as `=1+2`).
    sent = {f"{v}#{n}".strip() for n, v in HOSTILE.items()}
    assert {c["call_id"] for c in page["cdrs"]} >= sent
