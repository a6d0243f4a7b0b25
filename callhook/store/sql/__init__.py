"""The SQL both backends run (SQLite and PostgreSQL): repositories over a `ThreadEngine`.

The statements here are written in the SQL both engines speak (`INSERT ... ON CONFLICT`,
`?` parameters, which the PostgreSQL connection turns into its own); the few functions
SQLite has and PostgreSQL lacks (`instr`, `json_each` over a JSON array in a text column)
are created by the PostgreSQL migrations. A backend package (`store/sqlite/`,
`store/postgres/`) holds only its engine (how to connect) and its migrations.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Protocol


class Cursor(Protocol):
    """What a statement returns: rows, and how many rows it changed."""

    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class Conn(Protocol):
    """The connection the SQL modules use: sqlite3's, or PostgreSQL's adapter of it."""

    def execute(self, sql: str, params: Sequence[Any] = ..., /) -> Cursor: ...

    def executemany(self, sql: str, params: Iterable[Sequence[Any]], /) -> Cursor: ...

    def close(self) -> None: ...
