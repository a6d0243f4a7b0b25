"""GET /api/v1/tenants/{tenant}/cdrs: call detail records, JSON or CSV, cursor-paginated."""

from __future__ import annotations

import csv
import io
from datetime import datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Query, Request, Response

from callhook.api.auth import Principal, hub_of, principal, require_tenant
from callhook.api.common import INT64_MAX, ExtensionFilter, seq_query
from callhook.errors import BadRequest, Unprocessable
from callhook.store import CdrFilter

router = APIRouter(tags=["cdrs"])

CSV_COLUMNS = (
    "cdr_id",
    "session_id",
    "call_id",
    "caller",
    "callee",
    "direction",
    "start_time",
    "answer_time",
    "end_time",
    "ring_seconds",
    "talk_seconds",
    "status",
    "end_reason",
    "extensions",
)


def _time(value: str | None, name: str) -> int | None:
    """Unix seconds or ISO 8601 (`2026-11-22` or `2026-11-22T10:00:00+01:00`)."""
    if value is None or value == "":
        return None
    if value.isascii() and value.isdigit():  # str.isdigit() is true for "²" too
        seconds = int(value)
        if seconds > INT64_MAX:  # compared with an SQLite INTEGER
            raise Unprocessable(f"{name}: at most {INT64_MAX}", field=name)
        return seconds
    try:
        return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp())
    except (ValueError, OverflowError, OSError):  # naive dates near year 1 or 9999 overflow
        raise BadRequest(f"{name}: expected Unix seconds or ISO 8601", field=name) from None


@router.get(
    "/tenants/{tenant}/cdrs",
    summary="Call detail records (JSON, or CSV with Accept: text/csv or format=csv)",
    responses={
        200: {
            "description": '`{"cdrs": [...], "next_cursor": N|null}`, or CSV with a header row',
            "content": {
                "application/json": {"schema": {"type": "object"}},
                "text/csv": {"schema": {"type": "string"}},
            },
        }
    },
)
async def list_cdrs(
    request: Request,
    tenant: str,
    who: Annotated[Principal, Depends(principal)],
    from_: Annotated[
        str | None, Query(alias="from", max_length=64, description="start time >=")
    ] = None,
    to: Annotated[str | None, Query(max_length=64, description="start time <")] = None,
    extension: ExtensionFilter = None,
    status: Annotated[str | None, Query(max_length=32)] = None,
    cursor: Annotated[int, seq_query("next_cursor of the previous page")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    format: Annotated[str | None, Query(pattern="^(json|csv)$")] = None,
) -> Response:
    hub = hub_of(request)
    require_tenant(hub, who, tenant)
    f = CdrFilter(_time(from_, "from"), _time(to, "to"), extension, status, cursor, limit)
    rows = await hub.store.queries.cdrs(tenant, f)
    next_cursor = rows[-1][0] if len(rows) == limit else None
    as_csv = format == "csv" or (format is None and "text/csv" in request.headers.get("accept", ""))
    if as_csv:
        return _csv([orjson.loads(b) for _, b in rows], next_cursor)
    body = b'{"cdrs":[' + b",".join(b for _, b in rows) + b'],"next_cursor":'
    body += orjson.dumps(next_cursor) + b"}"
    return Response(body, media_type="application/json")


# OWASP "CSV Injection": a cell starting with one of these is a formula to a spreadsheet
# (`=HYPERLINK(...)`, `@SUM(...)`, `+cmd|...`); a leading `'` makes it text.
# https://owasp.org/www-community/attacks/CSV_Injection
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> Any:
    """A CDR value as a spreadsheet-safe CSV cell: text that could be a formula gets `'`."""
    if isinstance(value, list):
        value = " ".join(map(str, value))
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def _csv(cdrs: list[dict[str, Any]], next_cursor: int | None) -> Response:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for cdr in cdrs:
        writer.writerow([csv_cell(cdr.get(col, "")) for col in CSV_COLUMNS])
    headers = {"X-Next-Cursor": str(next_cursor)} if next_cursor is not None else {}
    return Response(out.getvalue(), media_type="text/csv; charset=utf-8", headers=headers)
