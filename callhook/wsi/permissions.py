"""Who may follow what (pure): subscribe commands become subscription entries, or a refusal.

PortSIP's Pub/Sub rules: an extension follows itself and the extensions sharing a group with it,
the queues it is a member or manager of, and never trunk events; a tenant follows everything
in the tenant. Asking for an extension or a topic it may not follow refuses the subscribe;
asking for a queue it may not follow only leaves that queue out (PortSIP: "the events will
not push to the extension"). Nothing crosses tenants: entries are always scoped to the
principal's tenant.

An entry is `(key, scope, value)`: scope `all` (every event of that key in the tenant),
`ext` (events concerning extension `value`) or `queue` (events of queue `value`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from callhook.directory import Tenant
from callhook.events import KEY_TOPIC
from callhook.wsi.protocol import Subscribe, Unsubscribe

ALL = "all"
EXT = "ext"
QUEUE = "queue"

Entry = tuple[str, str, str]

TENANT_ONLY_TOPICS = frozenset({"trunk_events", "webhook_events"})
QUEUE_TOPICS = frozenset({"queue_events"})


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated WSI account: a tenant, or one extension of it.

    `credential` is the stored password hash it logged in against ("" for a dashboard
    ticket): when the stored hash changes, the session is closed.
    """

    tenant: str
    extension: str | None = None
    credential: str = field(default="", compare=False, repr=False)

    @property
    def is_tenant(self) -> bool:
        return self.extension is None


@dataclass(frozen=True, slots=True)
class Refused:
    """A subscribe that was refused; `reason` names what was refused."""

    reason: str


def _dimension(topic: str) -> str:
    if topic in TENANT_ONLY_TOPICS:
        return ALL
    return QUEUE if topic in QUEUE_TOPICS else EXT


def grant(who: Principal, tenant: Tenant, cmd: Subscribe) -> frozenset[Entry] | Refused:
    """The entries `cmd` asks for, or a refusal naming every part that is not permitted."""
    refused: list[str] = []
    if not who.is_tenant:
        denied = sorted(t for t in cmd.topics if t in TENANT_ONLY_TOPICS)
        if denied:
            refused.append("topics " + ", ".join(denied))
    ext_scopes = _scopes(who, EXT, cmd.extensions, tenant, refused)
    queue_scopes = _scopes(who, QUEUE, cmd.queues, tenant, refused)
    if refused:
        return Refused("not permitted: " + "; ".join(refused))
    entries: set[Entry] = set()
    for topic, keys in cmd.topics.items():
        dim = _dimension(topic)
        scopes = [(ALL, "")] if dim == ALL else ext_scopes if dim == EXT else queue_scopes
        entries.update((key, scope, value) for key in keys for scope, value in scopes)
    return frozenset(entries)


def _scopes(
    who: Principal, dim: str, asked: tuple[str, ...] | None, tenant: Tenant, refused: list[str]
) -> list[tuple[str, str]]:
    if who.extension is None:
        return [(ALL, "")] if asked is None else [(dim, v) for v in asked]
    allowed = tenant.group_peers(who.extension) if dim == EXT else tenant.queues_of(who.extension)
    if asked is None:  # omitted: everything this extension may follow
        return [(dim, v) for v in sorted(allowed)]
    if dim == QUEUE:  # PortSIP: other queues' events "will not push": follow the rest
        return [(dim, v) for v in asked if v in allowed]
    denied = [v for v in asked if v not in allowed]
    if denied:
        refused.append("extensions " + ", ".join(denied))
    return [(dim, v) for v in asked]


def ignored_queues(who: Principal, tenant: Tenant, cmd: Subscribe) -> list[str]:
    """Queues `cmd` names that `who` may not follow: left out of the subscription, not refused
    (an extension follows the queues it is a member or manager of, whatever it asks)."""
    if who.extension is None or cmd.queues is None or not QUEUE_TOPICS & set(cmd.topics):
        return []
    allowed = tenant.queues_of(who.extension)
    return [q for q in cmd.queues if q not in allowed]


def still_allowed(who: Principal, tenant: Tenant, entries: frozenset[Entry]) -> frozenset[Entry]:
    """The part of `entries` that `who` may still follow after a directory change: an
    extension keeps only its present group peers and queues (a tenant keeps everything)."""
    if who.extension is None:
        return entries
    peers = tenant.group_peers(who.extension)
    queues = tenant.queues_of(who.extension)
    return frozenset(
        (key, scope, value)
        for key, scope, value in entries
        if (scope == EXT and value in peers) or (scope == QUEUE and value in queues)
    )


def revoke(current: frozenset[Entry] | set[Entry], cmd: Unsubscribe) -> set[Entry]:
    """The subset of `current` that `cmd` removes (never refused; unknown parts are no-ops).

    Omitted `extensions`/`queues` remove every scope of the named topics, as PortSIP's
    "unsubscribe from the CDR events" example expects. A tenant-wide (`all`) entry is
    removed only when the matching filter is omitted: it cannot be narrowed piecemeal.
    """
    keys: set[str] | None = None
    if cmd.topics is not None:
        keys = {k for ks in cmd.topics.values() for k in ks}
    exts = None if cmd.extensions is None else set(cmd.extensions)
    queues = None if cmd.queues is None else set(cmd.queues)
    out: set[Entry] = set()
    for entry in current:
        key, scope, value = entry
        if keys is not None and key not in keys:
            continue
        if scope == EXT:
            hit = exts is None or value in exts
        elif scope == QUEUE:
            hit = queues is None or value in queues
        else:
            dim = _dimension(KEY_TOPIC.get(key, "device_events"))
            hit = dim == ALL or (exts is None if dim == EXT else queues is None)
        if hit:
            out.add(entry)
    return out
