"""Bounded memory of recently seen reports, to drop a phone's repeats."""

from __future__ import annotations

from collections.abc import Hashable


class Dedup:
    """Remembers keys for `window` seconds, at most `limit` of them (oldest forgotten first)."""

    def __init__(self, window: float, limit: int) -> None:
        self._window = window
        self._limit = limit
        self._seen: dict[Hashable, float] = {}  # insertion order == time order

    def repeat(self, key: Hashable, now: float) -> bool:
        """True when `key` was seen within the window; otherwise remember it."""
        seen = self._seen
        horizon = now - self._window
        # Expire from the oldest end: amortised O(1) per call.
        while seen:
            oldest = next(iter(seen))
            if seen[oldest] >= horizon and len(seen) < self._limit:
                break
            del seen[oldest]
        at = seen.get(key)
        if at is not None and at >= horizon:
            return True
        seen.pop(key, None)
        seen[key] = now
        return False

    def __len__(self) -> int:
        return len(self._seen)
