"""Group → shard routing: a pure, stable function every process computes alike.

A group's 64-bit key is the first 8 bytes of its BLAKE2b digest (Python's ``hash()`` is
salted per process, so it cannot be used). The key goes through Lamping & Veach's jump
consistent hash: growing the pool from N to N+1 shards moves only ~1/(N+1) of the groups,
all of them onto the new shard, and shrinking moves only the removed shard's groups.

Ordering during a resize: a moved group may still have messages on its old shard while
new ones arrive on the new shard, and the two shards are drained independently. Order
within such a group holds again once its old shard holds none of its messages, so resize
either with the old shards drained or accepting reordering for the moved groups meanwhile.
"""

import hashlib

_MASK64 = (1 << 64) - 1
_JUMP_MULTIPLIER = 2862933555777941757


def group_key(group: str) -> int:
    """Stable 64-bit key of a message group."""
    digest = hashlib.blake2b(group.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def jump_hash(key: int, buckets: int) -> int:
    """Jump consistent hash of a 64-bit key into ``range(buckets)``."""
    if buckets < 1:
        raise ValueError("buckets must be at least 1")
    bucket, jump = -1, 0
    while jump < buckets:
        bucket = jump
        key = (key * _JUMP_MULTIPLIER + 1) & _MASK64
        jump = int((bucket + 1) * (float(1 << 31) / float((key >> 33) + 1)))
    return bucket


def shard_for(group: str, shards: int) -> int:
    """The shard (0-based queue index) that owns ``group`` in a pool of ``shards`` queues."""
    return jump_hash(group_key(group), shards)
