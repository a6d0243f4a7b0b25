"""What the admin API's resource modules share: field rules, error docs, pagination, outcomes."""

from __future__ import annotations

from collections.abc import Awaitable, Iterable
from typing import Annotated, Any, TypeVar

from fastapi import FastAPI, Query, Request
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

from callhook.api.auth import Principal, hub_of, require_tenant
from callhook.errors import Conflict, NotFound
from callhook.fields import (
    DISPLAY_NAME_MAX,
    DOMAIN_PATTERN,
    NAME_PATTERN,
    NETWORK_PATTERN,
    NUMBER_PATTERN,
    PASSWORD_MAX,
    TOKEN_PATTERN,
    check_network,
    check_text,
)
from callhook.store import Directory

T = TypeVar("T")

# The same rules as the config file (callhook/fields.py), so both doors accept one language.
_text = AfterValidator(check_text)

Name = Annotated[str, Field(pattern=NAME_PATTERN, examples=["acme"])]
Number = Annotated[str, Field(pattern=NUMBER_PATTERN, examples=["101"])]
Token = Annotated[str, Field(pattern=TOKEN_PATTERN, examples=["gs-7f3a9c"])]
Domain = Annotated[str, Field(pattern=DOMAIN_PATTERN, examples=["acme.example.com"])]
Password = Annotated[str, Field(min_length=1, max_length=PASSWORD_MAX), _text]
DisplayName = Annotated[str, Field(max_length=DISPLAY_NAME_MAX), _text]
Network = Annotated[
    str,
    Field(max_length=64, pattern=NETWORK_PATTERN, examples=["192.168.40.0/24"]),
    AfterValidator(check_network),
]

Cursor = Annotated[
    str | None, Query(max_length=128, description="`next_cursor` of the previous page")
]
Limit = Annotated[int, Query(ge=1, le=1000, description="page size")]
# A number the API compares with extension numbers in the store: the rule they are made by.
ExtensionFilter = Annotated[
    str | None, Query(pattern=NUMBER_PATTERN, description="only those naming this extension")
]

# Integers reach SQLite, whose INTEGER is signed 64-bit: a larger one is an OverflowError
# there, so every integer parameter is bounded here (every input has a limit).
INT64_MAX = 2**63 - 1


def seq_query(description: str) -> Any:
    """A non-negative log position or cursor in the query string: 0 to INT64_MAX."""
    return Query(ge=0, le=INT64_MAX, description=description)


def _not_null(value: Any) -> Any:
    if value is None:
        raise ValueError("may not be null: omit the field to keep its value")
    return value


# `PATCH` bodies: `null` clears a field that may be empty; on a field that may not, it is
# this 422 (a stored null once broke every later read of the resource). Use it as
# `name: Annotated[T | SkipJsonSchema[None], NotNull] = None`: omitted means "unchanged",
# and the OpenAPI schema does not offer null.
NotNull = BeforeValidator(_not_null)


class Model(BaseModel):
    """Request bodies: unknown fields are errors, as in the config file."""

    model_config = ConfigDict(extra="forbid")


class ErrorDetail(BaseModel):
    """The error of an error response."""

    code: str = Field(examples=["unknown-tenant"])
    message: str
    field: str | None = None


class ErrorBody(BaseModel):
    """Every error response: `{"error": {"code", "message", "field"}}`."""

    error: ErrorDetail


_STATUS_TEXT = {
    400: "Bad request",
    401: "Missing or unknown API key",
    403: "The key may not do this",
    404: "No such resource",
    409: "Conflicts with an existing resource",
    413: "Request body too large",
    422: "Invalid request; `field` names the culprit",
    429: "Too many failed authentications",
}

# Error responses every API route may give, documented once (schemathesis checks them).
ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": text} for status, text in _STATUS_TEXT.items()
}


def page_by_id(endpoints: Iterable[Any], cursor: int, limit: int) -> list[Any]:
    """Endpoints in creation order (their numeric ids grow), after `cursor`, `limit` of them."""
    after = [e for e in endpoints if int(e.endpoint_id) > cursor]
    return sorted(after, key=lambda e: int(e.endpoint_id))[:limit]


def next_cursor(items: list[dict[str, Any]], key: str, limit: int) -> str | None:
    """The cursor of the page after `items`, or None when this page is the last."""
    return str(items[-1][key]) if len(items) == limit and items else None


def check_outcome(outcome: str, what: str, *, field: str | None = None) -> None:
    """Turn a store write outcome into the matching HubError."""
    if outcome == "exists":
        raise Conflict(f"{what} already exists", code="exists", field=field)
    if outcome == "missing":
        raise NotFound(f"no {what}", code="not-found")
    if outcome == "token-taken":
        raise Conflict(
            "this ingest_token is used by another tenant", code="token-taken", field="ingest_token"
        )
    if outcome == "purging":
        raise Conflict(
            f"{what} was deleted and its data is still being removed; retry shortly",
            code="tenant-being-deleted",
        )


# route helpers -------------------------------------------------------------------
def directory_of(request: Request) -> Directory:
    """The store's directory repository (tenants, numbering plan, keys)."""
    directory: Directory = hub_of(request).store.directory
    return directory


async def write_then_reload(request: Request, write: Awaitable[T]) -> T:
    """Await a numbering-plan write, then reload the hub's directory."""
    result = await write
    await hub_of(request).reload_directory()
    return result


async def found(
    request: Request, read: Awaitable[dict[str, Any] | None], what: str
) -> dict[str, Any]:
    row = await read
    if row is None:
        raise NotFound(f"no {what}", code="not-found")
    return row


def scope(request: Request, who: Principal, tenant: str) -> None:
    require_tenant(hub_of(request), who, tenant)


def allowed_methods(api: FastAPI, asgi_scope: Any) -> str:
    """Every method the API accepts at this request's path, for a 405's `Allow`.

    FastAPI makes one route per path and method, and the first route whose path matches
    raises the 405 naming only its own methods. The OpenAPI document lists them all."""
    from starlette.routing import compile_path

    path = asgi_scope.get("path", "")
    methods: set[str] = set()
    for template, operations in api.openapi()["paths"].items():
        if compile_path(template)[0].match(path):
            methods |= {m.upper() for m in operations if m != "parameters"}
    return ", ".join(sorted(methods))
