"""The subscription index: tables, and a model check against a brute-force scan."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callhook.wsi.permissions import ALL, EXT, QUEUE, Entry
from callhook.wsi.router import EntryFilter, Router

SUBS: dict[str, tuple[str, list[Entry]]] = {
    "tenant-wide": ("acme", [("call_start", ALL, ""), ("trunk_connected", ALL, "")]),
    "ext101": ("acme", [("call_start", EXT, "101"), ("call_start", EXT, "102")]),
    "ext103": ("acme", [("call_start", EXT, "103")]),
    "queue": ("acme", [("queue_status", QUEUE, "8001")]),
    "other-tenant": ("globex", [("call_start", ALL, "")]),
}


def router() -> Router[str]:
    r: Router[str] = Router()
    for name, (tenant, entries) in SUBS.items():
        r.add(tenant, name, entries)
    return r


@pytest.mark.parametrize(
    ("tenant", "key", "extensions", "queue", "expected"),
    [
        ("acme", "call_start", ("101",), None, {"tenant-wide", "ext101"}),
        ("acme", "call_start", ("102", "103"), None, {"tenant-wide", "ext101", "ext103"}),
        ("acme", "call_start", ("104",), None, {"tenant-wide"}),
        ("acme", "call_start", (), None, {"tenant-wide"}),  # no extensions: wide only
        ("acme", "call_ended", ("101",), None, set()),  # nobody asked for this key
        ("acme", "trunk_connected", (), None, {"tenant-wide"}),
        ("acme", "queue_status", (), "8001", {"queue"}),
        ("acme", "queue_status", (), "8002", set()),
        ("globex", "call_start", ("101",), None, {"other-tenant"}),
        ("initech", "call_start", ("101",), None, set()),
    ],
)
def test_match(
    tenant: str, key: str, extensions: tuple[str, ...], queue: str | None, expected: set[str]
) -> None:
    got = list(router().match(tenant, key, extensions, queue))
    assert len(got) == len(set(got))  # each subscriber once
    assert set(got) == expected


def test_remove_cleans_the_index() -> None:
    r = router()
    for name, (tenant, entries) in SUBS.items():
        r.remove(tenant, name, entries)
    assert r.size() == 0
    assert r._wide == {} and r._ext == {} and r._queue == {}
    r.remove("acme", "ghost", [("call_start", EXT, "101")])  # unknown: a no-op


entries_st = st.lists(
    st.tuples(
        st.sampled_from(["call_start", "call_cdr", "queue_status"]),
        st.sampled_from([ALL, EXT, QUEUE]),
        st.sampled_from(["101", "102", "8001"]),
    ).map(lambda e: (e[0], e[1], "" if e[1] == ALL else e[2])),
    max_size=6,
)


@given(
    subs=st.dictionaries(
        st.integers(0, 20), st.tuples(st.sampled_from(["acme", "globex"]), entries_st)
    ),
    removed=st.sets(st.integers(0, 20)),
    key=st.sampled_from(["call_start", "call_cdr", "queue_status"]),
    tenant=st.sampled_from(["acme", "globex"]),
    extensions=st.lists(st.sampled_from(["101", "102", "103"]), max_size=3, unique=True),
    queue=st.sampled_from([None, "8001", "8002"]),
)
def test_router_agrees_with_a_scan(
    subs: dict[int, tuple[str, list[Entry]]],
    removed: set[int],
    key: str,
    tenant: str,
    extensions: list[str],
    queue: str | None,
) -> None:
    r: Router[int] = Router()
    for sid, (t, entries) in subs.items():
        r.add(t, sid, entries)
    for sid in removed & subs.keys():
        r.remove(subs[sid][0], sid, subs[sid][1])
    live = {sid: v for sid, v in subs.items() if sid not in removed}
    expected = {
        sid
        for sid, (t, entries) in live.items()
        if t == tenant and EntryFilter(entries)(key, extensions, queue)
    }
    got = list(r.match(tenant, key, tuple(extensions), queue))
    assert sorted(got) == sorted(expected)


def test_entry_filter_keys() -> None:
    f = EntryFilter(
        [("call_start", ALL, ""), ("call_cdr", EXT, "101"), ("queue_status", QUEUE, "1")]
    )
    assert f.keys == {"call_start", "call_cdr", "queue_status"}
    assert f("call_cdr", ["102", "101"], None)
    assert not f("call_cdr", ["102"], None)
    assert f("queue_status", [], "1") and not f("queue_status", [], None)
