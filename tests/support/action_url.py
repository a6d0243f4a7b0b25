"""Parse a request target as a phone's GET puts it on the request line (parser tests)."""

from __future__ import annotations

from callhook.ingest.action_url import parse_request
from callhook.ingest.model import ParsedRequest


def get(target: str | bytes, user_agent: str = "") -> ParsedRequest:
    """Parse a GET of a request target as it would appear on the request line."""
    raw = target.encode() if isinstance(target, str) else target
    path, _, query = raw.partition(b"?")
    return parse_request("GET", path, query, user_agent=user_agent)
