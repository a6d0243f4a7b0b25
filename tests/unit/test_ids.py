"""Ids from new_id() and new_ids(): unique across threads, increasing in the order taken."""

from __future__ import annotations

import threading

from callhook.events import new_id, new_ids


def test_batches_and_single_ids_are_unique_and_increasing() -> None:
    taken = new_ids(5000) + [new_id() for _ in range(10)] + new_ids(0) + new_ids(5000)
    numbers = [int(i) for i in taken]
    assert len(set(numbers)) == len(numbers) == 10_010
    assert numbers == sorted(numbers)


def test_threads_taking_ids_at_once_never_share_one() -> None:
    out: list[str] = []

    def take() -> None:
        for _ in range(200):
            out.extend(new_ids(37))
            out.append(new_id())

    threads = [threading.Thread(target=take) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(out)) == len(out) == 4 * 200 * 38
