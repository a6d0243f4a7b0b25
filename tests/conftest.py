from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.hub import Hub

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

# Shared 2-core machines are noisy: no per-example deadline; on CI, derandomized so that
# main stays green for the same code (a failing example is still reported with its blob).
settings.register_profile(
    "default", deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True
)
settings.register_profile(
    "ci",
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,
)
settings.load_profile("ci" if IN_CI else "default")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Long files first. `make test` hands whole files to its workers in this order
    (`--dist loadfile --no-loadscope-reorder`): files with a `slow` test start at once,
    then the other end-to-end files, and the short unit files fill the end, so that no
    worker is left alone with a long file while the others idle."""
    slow = {item.path for item in items if item.get_closest_marker("slow")}

    def rank(item: pytest.Item) -> int:
        if item.path in slow:
            return 0
        return 1 if "e2e" in item.path.parts else 2

    items.sort(key=rank)  # stable: a file's tests stay together and in order


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh empty database of each backend, for repository tests: the same tests run
    on both. PostgreSQL is started once per test process (tests/support/postgres.py)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/store.db"
    from tests.support import postgres

    return postgres.server().new_database()


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    """A real `callhook serve` on free ports with the test config."""
    h = Hub(tmp_path).start()
    try:
        yield h
    finally:
        h.stop()


@pytest.fixture(scope="module")
def shared_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    """One hub for a module's read-mostly tests (faster than one per test).

    Its tests send thousands of requests with the unknown token `nope` from one address as
    "answered without a commit"; the token-guessing limit (tests/e2e/test_attack_defaults.py)
    is raised here so that they get their 404s."""
    unthrottled = "\n[auth]\ningest_max_unknown_tokens_per_source = 1000000\n"
    h = Hub(tmp_path_factory.mktemp("hub"), extra_config=unthrottled).start()
    try:
        yield h
    finally:
        h.stop()
