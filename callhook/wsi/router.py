"""The subscription index: which subscribers an event goes to, without scanning connections.

Three dict indexes keyed by (tenant, key): tenant-wide subscribers, subscribers by extension,
subscribers by queue. Routing one event costs a few dict lookups plus the size of the
result, whatever the number of connections or extensions.
"""

from __future__ import annotations

from collections.abc import Collection, Hashable, Iterable
from typing import Generic, TypeVar

from callhook.wsi.permissions import ALL, EXT, Entry

S = TypeVar("S", bound=Hashable)

_NOTHING: frozenset[object] = frozenset()


class Router(Generic[S]):
    """Subscription index over subscribers of type `S` (connections, in practice)."""

    __slots__ = ("_ext", "_queue", "_wide")

    def __init__(self) -> None:
        self._wide: dict[tuple[str, str], set[S]] = {}
        self._ext: dict[tuple[str, str], dict[str, set[S]]] = {}
        self._queue: dict[tuple[str, str], dict[str, set[S]]] = {}

    def add(self, tenant: str, sub: S, entries: Iterable[Entry]) -> None:
        for key, scope, value in entries:
            tk = (tenant, key)
            if scope == ALL:
                self._wide.setdefault(tk, set()).add(sub)
            else:
                index = self._ext if scope == EXT else self._queue
                index.setdefault(tk, {}).setdefault(value, set()).add(sub)

    def remove(self, tenant: str, sub: S, entries: Iterable[Entry]) -> None:
        for key, scope, value in entries:
            tk = (tenant, key)
            if scope == ALL:
                subs = self._wide.get(tk)
                if subs is not None:
                    subs.discard(sub)
                    if not subs:  # keep the index as small as the live subscriptions
                        del self._wide[tk]
                continue
            index = self._ext if scope == EXT else self._queue
            by_value = index.get(tk)
            if by_value is None:
                continue
            subs = by_value.get(value)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del by_value[value]
                    if not by_value:
                        del index[tk]

    def match(
        self, tenant: str, key: str, extensions: tuple[str, ...], queue: str | None
    ) -> Collection[S]:
        """Subscribers of one event, each once.

        May return an internal set: iterate it before changing the index.
        """
        tk = (tenant, key)
        sources: list[set[S]] = []
        wide = self._wide.get(tk)
        if wide:
            sources.append(wide)
        if extensions:
            by_ext = self._ext.get(tk)
            if by_ext:
                for ext in extensions:
                    subs = by_ext.get(ext)
                    if subs:
                        sources.append(subs)
        if queue:
            by_queue = self._queue.get(tk)
            if by_queue:
                subs = by_queue.get(queue)
                if subs:
                    sources.append(subs)
        if not sources:
            return _NOTHING  # type: ignore[return-value]
        if len(sources) == 1:
            return sources[0]
        return set().union(*sources)

    def size(self) -> int:
        """Number of (subscriber, entry) pairs held (for metrics and tests)."""
        n = sum(len(s) for s in self._wide.values())
        for index in (self._ext, self._queue):
            n += sum(len(s) for by_value in index.values() for s in by_value.values())
        return n


class EntryFilter:
    """Does an event match a set of entries? Used to filter replayed events from the log."""

    __slots__ = ("_ext", "_queue", "_wide")

    def __init__(self, entries: Iterable[Entry]) -> None:
        self._wide: set[str] = set()
        self._ext: dict[str, set[str]] = {}
        self._queue: dict[str, set[str]] = {}
        for key, scope, value in entries:
            if scope == ALL:
                self._wide.add(key)
            else:
                (self._ext if scope == EXT else self._queue).setdefault(key, set()).add(value)

    @property
    def keys(self) -> set[str]:
        return self._wide | self._ext.keys() | self._queue.keys()

    def __call__(self, key: str, extensions: Iterable[str], queue: str | None) -> bool:
        if key in self._wide:
            return True
        exts = self._ext.get(key)
        if exts is not None and not exts.isdisjoint(extensions):
            return True
        queues = self._queue.get(key)
        return queues is not None and queue is not None and queue in queues
