"""Errors that carry an HTTP status and a stable code; one renderer turns them into JSON."""

from __future__ import annotations

import math
from typing import Any

import orjson


class HubError(Exception):
    """Base: `status`, stable `code`, human `message`, optional `field`."""

    status = 400
    code = "bad-request"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        field: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        self.field = field
        self.headers = headers  # sent with the response (e.g. Retry-After)

    def body(self) -> dict[str, Any]:
        err: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.field:
            err["field"] = self.field
        return {"error": err}


class BadRequest(HubError):
    status = 400
    code = "bad-request"


class Unauthorized(HubError):
    status = 401
    code = "unauthorized"


class Forbidden(HubError):
    status = 403
    code = "forbidden"


class NotFound(HubError):
    status = 404
    code = "not-found"


class Conflict(HubError):
    status = 409
    code = "conflict"


class Unprocessable(HubError):
    status = 422
    code = "invalid"


class TooManyRequests(HubError):
    status = 429
    code = "rate-limited"

    def __init__(self, message: str, *, retry_after: float = 60.0) -> None:
        """`retry_after`: seconds until a request may succeed, sent as `Retry-After`."""
        super().__init__(message, headers={"Retry-After": str(max(1, math.ceil(retry_after)))})


class Unavailable(HubError):
    status = 503
    code = "unavailable"


def error_json(status_code: str, message: str, field: str | None = None) -> bytes:
    err: dict[str, Any] = {"code": status_code, "message": message}
    if field:
        err["field"] = field
    return orjson.dumps({"error": err})
