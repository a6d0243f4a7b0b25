"""CSV cells of the CDR export: the OWASP formula-injection rule (pure)."""

from __future__ import annotations

from typing import Any

import pytest

from callhook.api.cdrs import csv_cell


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ("=1+2", "'=1+2"),
        ("+4971122", "'+4971122"),
        ("-1", "'-1"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ("sip:101@acme.example.com", "sip:101@acme.example.com"),
        ("0711 =2", "0711 =2"),
        ("", ""),
        (12, 12),
        (None, None),
        (["101", "102"], "101 102"),
        (["=1", "2"], "'=1 2"),
    ],
)
def test_csv_cell(value: Any, cell: Any) -> None:
    assert csv_cell(value) == cell
