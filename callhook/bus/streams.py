"""What the cluster's Redis streams hold: one entry per committed event, on the stream of
its tenant's partition (`callhook:events:0` ... `:15`), a `taken` entry when a node takes a
partition, and directory notices on `callhook:directory`.

An event entry carries the node that added it (`n`), the tenant (`t`), `seq` (`s`),
`event_id` (`i`), key (`k`), extensions (`x`, comma-separated), queue (`q`) and the wire
bytes as the log stored them (`b`), so a reading node hands them to its subscribers
without encoding them again. A `taken` entry carries `n` and the partition (`taken`).
"""

from __future__ import annotations

from typing import Any

from redis.asyncio.client import Pipeline

from callhook.cluster.partitions import PARTITIONS, partition_of
from callhook.events import Event

MAXLEN = 10_000  # entries kept per stream (approximately): the rest is in the log
DIRECTORY = "callhook:directory"  # "this node changed the directory": the others reload

Entry = tuple[str, dict[str, str | bytes | int]]  # (stream, fields) to add


def stream_of(tenant: str, partitions: int = PARTITIONS) -> str:
    """The stream a tenant's events go to (the same on every node)."""
    return partition_stream(partition_of(tenant, partitions))


def partition_stream(partition: int) -> str:
    return f"callhook:events:{partition}"


def encode(ev: Event, node: str) -> dict[str, str | bytes | int]:
    return {
        "n": node,
        "t": ev.tenant,
        "s": ev.seq,
        "i": ev.event_id,
        "k": ev.key,
        "x": ",".join(ev.extensions),
        "q": ev.queue or "",
        "b": ev.wire_bytes(),
    }


def decode(fields: dict[bytes, bytes]) -> Event:
    """A committed event as another node published it (wire bytes as the log stored)."""
    exts = fields[b"x"].decode()
    ev = Event(
        fields[b"t"].decode(),
        fields[b"k"].decode(),
        {},
        tuple(exts.split(",")) if exts else (),
        fields[b"q"].decode() or None,
        seq=int(fields[b"s"]),
        event_id=fields[b"i"].decode(),
    )
    ev.wire_stored = fields[b"b"]
    return ev


def taken_entry(partition: int, node: str) -> Entry:
    """`node` took `partition`: the other nodes read its tenants from the log (the
    previous owner may have died between a COMMIT and its XADD)."""
    return partition_stream(partition), {"n": node, "taken": partition}


def from_log(tenant: str, s: Any) -> Event:
    """A stored event as the log gives it back (its wire bytes as stored)."""
    ev = Event(tenant, s.key, {}, s.extensions, s.queue, seq=s.seq)
    ev.wire_stored = s.body
    return ev


def add_entries(batch: list[Entry], pipe: Pipeline) -> None:
    for stream, fields in batch:
        keep = 1000 if stream == DIRECTORY else MAXLEN
        pipe.xadd(stream, fields, maxlen=keep, approximate=True)  # type: ignore[arg-type]
