"""Tenants hash to a fixed number of partitions: the unit a node owns and a stream holds.

The same function everywhere (the Redis bus's streams, the partition leases, the inbox):
a tenant's events all go through one partition, in order, whatever node took them.
"""

from __future__ import annotations

import zlib

PARTITIONS = 16  # fixed: changing it moves tenants between partitions (docs/scaling.md)


def partition_of(tenant: str, partitions: int = PARTITIONS) -> int:
    """The partition of `tenant`: crc32 of its name, modulo the number of partitions."""
    return zlib.crc32(tenant.encode()) % partitions
