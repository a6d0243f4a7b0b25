"""Config reload (SIGHUP, `POST /api/v1/config/reload`, `callhook reload`): read the config
file again and apply its tenants to the database, as a start does, without a restart.

What a reload applies: every `[[tenant]]` table (extensions, queues, trunks, passwords,
ingest tokens, webhooks and call-event rules declared there). The directory is reloaded
and announced, so in a cluster every node sees the change within a second. The other
sections (listeners, database, bus, limits ...) need a restart: a reload that finds them
changed says which, and keeps running with the old ones.

A file that cannot be read, is not valid, or clashes with the database changes nothing:
the reload fails with the reason (logged, and in the API's answer); the node goes on as
it was.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from callhook import config
from callhook.config import SECTIONS, ConfigError, Settings

if TYPE_CHECKING:
    from callhook.app import Hub

log = logging.getLogger("callhook")


@dataclass(frozen=True, slots=True)
class Reloaded:
    """What a reload applied, and the sections that wait for a restart."""

    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    detached: list[str] = field(default_factory=list)
    restart_needed: list[str] = field(default_factory=list)


def read(path: str | None) -> Settings:
    """The file `serve` was started with (None: ./callhook.toml if any), as it is now."""
    if path is None:
        return config.load("callhook.toml", missing_ok=True)
    return config.load(path)


def restart_needed(running: Settings, new: Settings) -> list[str]:
    """The sections other than `[[tenant]]` that differ (a reload cannot apply them)."""
    server = new.server.model_copy(  # a worker's node id and count are its own
        update={"node_id": running.server.node_id, "workers": running.server.workers}
    )
    new = new.model_copy(update={"server": server})
    return [name for name in SECTIONS if getattr(running, name) != getattr(new, name)]


class ConfigReload:
    """One node's reload of its config file; one at a time."""

    def __init__(self, hub: Hub, path: str | None) -> None:
        self.hub = hub
        self.path = path
        self._lock = asyncio.Lock()

    async def __call__(self) -> Reloaded:
        """Apply the file's tenants; raises ConfigError (nothing changed) on a bad file."""
        async with self._lock:
            try:
                return await self._reload()
            except ConfigError as exc:
                log.error("config reload refused, nothing changed: %s", exc)
                raise

    def _use(self, settings: Settings) -> None:
        """What apply_config reads: the hub's settings and the delivery service's."""
        self.hub.settings = settings
        self.hub.delivery.settings = settings

    async def _reload(self) -> Reloaded:
        hub = self.hub
        new = read(self.path)
        problem = config.admin_key_problem(new.server)
        if problem is not None:
            raise ConfigError(problem)
        later = restart_needed(hub.settings, new)
        running = hub.settings
        self._use(running.model_copy(update={"tenant": new.tenant}))
        try:
            report = await hub.apply_config()
        except Exception:
            self._use(running)  # the database refused it: nothing was applied
            raise
        hub.forget_api_keys()  # and, after the webhooks too, every other node reloads
        for name in later:
            log.warning(
                "config reload: [%s] changed in the file; it takes effect at the next restart",
                name,
            )
        done = Reloaded(report.added, report.changed, report.removed, report.detached, later)
        log.info(
            "config reloaded",
            extra={"added": done.added, "changed": done.changed, "removed": done.removed,
                   "restart_needed": later},
        )  # fmt: skip
        return done
