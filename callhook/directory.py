"""What the hub knows about a tenant: its extensions, groups, queues and trunks (read model)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Extension:
    """An extension of a tenant."""

    number: str
    display_name: str = ""
    groups: tuple[str, ...] = ()
    extension_id: str = ""


@dataclass(frozen=True, slots=True)
class Queue:
    """A call queue with its members (agents) and managers."""

    number: str
    members: tuple[str, ...] = ()
    managers: tuple[str, ...] = ()


@dataclass(slots=True)
class Tenant:
    """A tenant and its numbering plan. `tenant_id` is a stable numeric string."""

    name: str
    tenant_id: str
    domain: str
    ingest_token: str = ""
    open_ingest_networks: tuple[str, ...] = ()
    extended_prefix: str = ""  # VoipNow extended numbers: `0003` -> CalledExtension 0003*101
    extensions: dict[str, Extension] = field(default_factory=dict)
    queues: dict[str, Queue] = field(default_factory=dict)
    trunks: tuple[str, ...] = ()

    def is_extension(self, number: str) -> bool:
        return number in self.extensions

    def display_name(self, number: str) -> str:
        ext = self.extensions.get(number)
        return ext.display_name if ext else ""

    def group_peers(self, number: str) -> set[str]:
        """Extensions sharing a group with `number`, itself included (PortSIP's permissions)."""
        ext = self.extensions.get(number)
        peers = {number}
        if ext is None or not ext.groups:
            return peers
        wanted = set(ext.groups)
        for other in self.extensions.values():
            if wanted.intersection(other.groups):
                peers.add(other.number)
        return peers

    def queues_of(self, number: str) -> set[str]:
        """Queues `number` is a member or manager of."""
        return {
            q.number for q in self.queues.values() if number in q.members or number in q.managers
        }
